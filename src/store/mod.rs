//! (filled in by its owner; see src/lib.rs)
