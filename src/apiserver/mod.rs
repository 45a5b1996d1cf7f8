//! (filled in by its owner; see src/lib.rs)

pub mod patch;
