//! Prints the file named by its first argument (e.g. a file in a volume).
use std::io::Write;

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: config-reader FILE");
        std::process::exit(2);
    };
    match std::fs::read(&path) {
        Ok(bytes) => {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(&bytes);
            let _ = out.flush();
        }
        Err(e) => {
            eprintln!("config-reader: cannot read {path}: {e}");
            std::process::exit(1);
        }
    }
}
