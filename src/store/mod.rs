//! (filled in by its owner; see src/lib.rs)

pub mod snapfile;
pub mod wal;
