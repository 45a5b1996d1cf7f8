//! The node agent (work in progress).

pub mod env;
pub mod lifecycle;
pub mod plan;
pub mod status;
pub mod volumes;
