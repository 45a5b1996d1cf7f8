//! Spins forever without making a host call: only epoch interruption (or a
//! kill) can stop it.
fn main() {
    println!("spinning");
    let mut x: u64 = 0;
    loop {
        x = std::hint::black_box(x.wrapping_add(1));
    }
}
