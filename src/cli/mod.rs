//! The `wasmk` command line.

/// Entry point called by `main.rs`.
pub fn run() -> anyhow::Result<()> {
    anyhow::bail!("wasmk: the command line is not built yet")
}
