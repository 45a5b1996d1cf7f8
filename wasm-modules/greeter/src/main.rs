//! The README's first module: greets once, then says it is alive every ten
//! seconds until stopped. Reads GREETING and POD_NAME when set.
use std::time::Duration;

fn main() {
    let greeting = std::env::var("GREETING").unwrap_or_else(|_| "Hello".to_string());
    let who = std::env::var("POD_NAME").unwrap_or_else(|_| "a wasmk pod".to_string());
    println!("{greeting} from {who}!");
    let mut ticks = 0u64;
    loop {
        std::thread::sleep(Duration::from_secs(10));
        ticks += 1;
        println!("still here after {}s", ticks * 10);
    }
}
