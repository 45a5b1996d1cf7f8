//! Runs until stopped, printing a heartbeat every second and idling between
//! beats (the sleep is a WASI clock wait, so the host can park the process).
use std::time::Duration;

fn main() {
    let mut beat: u64 = 0;
    loop {
        println!("heartbeat {beat}");
        beat += 1;
        std::thread::sleep(Duration::from_secs(1));
    }
}
