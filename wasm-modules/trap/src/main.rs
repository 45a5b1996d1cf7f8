//! Executes the `unreachable` instruction.
fn main() {
    println!("about to trap");
    #[cfg(target_family = "wasm")]
    core::arch::wasm32::unreachable();
    #[cfg(not(target_family = "wasm"))]
    std::process::abort();
}
