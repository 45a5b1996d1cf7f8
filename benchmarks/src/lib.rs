//! Shared helpers for the benchmark binaries in `src/bin/` (one per figure
//! in docs/benchmarks.md).

use std::io::{BufRead, BufReader};
use std::process::Child;
use std::time::Duration;

use anyhow::{Context, Result};

/// The rest of the first line of `child`'s stdout that starts with
/// `prefix` (e.g. `wasmk is up: API at `). The child's stdout keeps being
/// drained afterwards, so it never writes into a closed pipe.
pub fn wait_for_line(child: &mut Child, prefix: &'static str, timeout: Duration) -> Result<String> {
    let out = child
        .stdout
        .take()
        .context("the child's stdout is not piped")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix(prefix) {
                let _ = tx.send(rest.trim().to_string());
            }
        }
    });
    rx.recv_timeout(timeout)
        .with_context(|| format!("no {prefix:?} line within {timeout:?}"))
}

/// Percentile of a sorted slice (nearest rank); `None` when empty.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

#[cfg(test)]
mod tests {
    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(super::percentile(&v, 50.0), Some(50.0));
        assert_eq!(super::percentile(&v, 99.0), Some(99.0));
        assert_eq!(super::percentile(&v, 100.0), Some(100.0));
        assert_eq!(super::percentile(&[], 50.0), None);
    }
}
