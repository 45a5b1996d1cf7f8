//! Forwards raft-rs' slog records to `tracing`.

use slog::{Drain, Level, OwnedKVList, Record};

/// A slog drain writing to `tracing`; raft's Info messages (every election
/// step) go to debug so a healthy cluster's log stays quiet.
pub struct TracingDrain;

impl Drain for TracingDrain {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, record: &Record<'_>, _values: &OwnedKVList) -> Result<(), slog::Never> {
        let msg = record.msg();
        match record.level() {
            Level::Critical | Level::Error => tracing::error!(target: "raft", "{msg}"),
            Level::Warning => tracing::warn!(target: "raft", "{msg}"),
            Level::Info => tracing::debug!(target: "raft", "{msg}"),
            Level::Debug => tracing::debug!(target: "raft", "{msg}"),
            Level::Trace => tracing::trace!(target: "raft", "{msg}"),
        }
        Ok(())
    }
}
