fn main() {
    if let Err(e) = wasmk::cli::run() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
