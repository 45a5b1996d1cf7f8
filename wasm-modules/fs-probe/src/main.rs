//! Tries file system operations named by its arguments and reports each
//! outcome on its own line, so tests can check what the sandbox allows:
//! `read:PATH`, `write:PATH`, `list:PATH`. Exits 0 whatever the outcomes.
fn main() {
    for op in std::env::args().skip(1) {
        let Some((verb, path)) = op.split_once(':') else {
            println!("{op}: bad operation");
            continue;
        };
        let outcome = match verb {
            "read" => std::fs::read(path).map(|b| format!("{} bytes", b.len())),
            "write" => std::fs::write(path, b"written by fs-probe\n").map(|()| "written".to_string()),
            "list" => std::fs::read_dir(path).map(|d| format!("{} entries", d.count())),
            _ => {
                println!("{op}: unknown verb");
                continue;
            }
        };
        match outcome {
            Ok(what) => println!("{verb} {path}: ok ({what})"),
            Err(e) => println!("{verb} {path}: denied ({e})"),
        }
    }
}
