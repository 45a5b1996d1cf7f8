//! Runs the simulation over seeds. See README.md.

use raft_tests::sim::{self, Failure, Report, SimConfig};

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    match v.trim().parse() {
        Ok(n) => Some(n),
        Err(e) => panic!("{name}={v:?} is not a number: {e}"),
    }
}

fn run_seed(seed: u64, trace: bool) -> Result<Report, Failure> {
    let mut cfg = SimConfig::from_seed(seed);
    cfg.trace = trace;
    sim::run(cfg)
}

/// Runs `seeds`, printing every failure with its replay command; panics at
/// the end if any failed.
fn run_seeds(seeds: impl Iterator<Item = u64>, verbose: bool) {
    let mut failures = Vec::new();
    let mut runs = 0;
    for seed in seeds {
        runs += 1;
        match run_seed(seed, false) {
            Ok(r) if verbose => println!("{r}"),
            Ok(_) => {}
            Err(f) => {
                eprintln!("FAILED {f}\n");
                failures.push(f.seed);
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {runs} seeds failed: {failures:?}",
        failures.len()
    );
}

/// A bounded mix of seeds (every fault profile) for CI.
#[test]
fn seeds() {
    let n = env_u64("RAFT_SIM_CI_SEEDS").unwrap_or(400);
    run_seeds(0..n, true);
}

/// A seed fixes the run: same seed, same events and results; another seed,
/// another run.
#[test]
fn same_seed_same_run() {
    for seed in [3, 4] {
        let a = run_seed(seed, false).unwrap_or_else(|f| panic!("{f}"));
        let b = run_seed(seed, false).unwrap_or_else(|f| panic!("{f}"));
        assert_eq!(a, b, "seed {seed} ran differently twice");
    }
    let a = run_seed(3, false).unwrap_or_else(|f| panic!("{f}"));
    let c = run_seed(8, false).unwrap_or_else(|f| panic!("{f}"));
    assert_ne!(a.fingerprint, c.fingerprint);
}

/// Replays one seed: `RAFT_SIM_SEED=<n> cargo test -p raft-tests -- replay`
/// (`RAFT_SIM_TRACE=1` prints every fault, election and operation).
#[test]
fn replay() {
    let seed = env_u64("RAFT_SIM_SEED").unwrap_or(0);
    let trace = std::env::var("RAFT_SIM_TRACE").is_ok_and(|v| v != "0");
    match run_seed(seed, trace) {
        Ok(r) => println!("{r}"),
        Err(f) => panic!("{f}"),
    }
}

/// The long run: `RAFT_SIM_SEEDS=5000 cargo test --release -p raft-tests
/// -- --ignored many_seeds` (from `RAFT_SIM_FIRST_SEED`, default 0).
#[test]
#[ignore = "long: thousands of seeds, run by hand"]
fn many_seeds() {
    let first = env_u64("RAFT_SIM_FIRST_SEED").unwrap_or(0);
    let n = env_u64("RAFT_SIM_SEEDS").unwrap_or(1000);
    run_seeds(first..first + n, false);
}
