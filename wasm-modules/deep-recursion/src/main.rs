//! Recurses without bound until the wasm call stack is exhausted. The depth
//! comes from the argument count so the compiler cannot fold the recursion.
fn descend(n: u64) -> u64 {
    if n == 0 {
        return 0;
    }
    // Work after the call keeps this from becoming a loop.
    descend(n - 1).wrapping_mul(31).wrapping_add(n)
}

fn main() {
    println!("descending");
    let depth = u64::MAX - std::env::args().count() as u64;
    println!("result {}", descend(depth));
}
