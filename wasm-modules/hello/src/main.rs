//! Prints its arguments and environment, then exits 0.
fn main() {
    for (i, arg) in std::env::args().enumerate() {
        println!("arg[{i}]={arg}");
    }
    for (key, value) in std::env::vars() {
        println!("env {key}={value}");
    }
    println!("hello from wasm");
}
