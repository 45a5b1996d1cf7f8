//! Writes lines as fast as it can: `output-flood [LINES] [LINE_BYTES]`.
//! Without LINES it never stops.
use std::io::Write;

fn main() {
    let mut args = std::env::args().skip(1);
    let lines: Option<u64> = args.next().and_then(|a| a.parse().ok());
    let width: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100);
    let body = "x".repeat(width.saturating_sub(21));
    let mut out = std::io::stdout().lock();
    let mut n: u64 = 0;
    while lines.is_none_or(|max| n < max) {
        if writeln!(out, "{n:020} {body}").is_err() {
            std::process::exit(1);
        }
        n += 1;
    }
    let _ = out.flush();
}
