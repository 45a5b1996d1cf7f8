//! Allocates (and touches) memory in 1 MiB chunks until allocation fails.
fn main() {
    const CHUNK: usize = 1 << 20;
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        let chunk = vec![0xa5u8; CHUNK];
        hoard.push(std::hint::black_box(chunk));
        if hoard.len() % 16 == 0 {
            println!("allocated {} MiB", hoard.len());
        }
    }
}
