//! Prints a message and exits with status 3.
fn main() {
    println!("about to fail");
    eprintln!("fail: exiting with status 3 on purpose");
    std::process::exit(3);
}
