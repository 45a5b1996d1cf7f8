//! Shared helpers for the benchmark binaries in `src/bin/` (one per figure
//! in docs/benchmarks.md).

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
