//! (filled in by its owner; see src/api/mod.rs)
