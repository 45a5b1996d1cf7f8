//! The Kubernetes-compatible API server.
//!
//! - `rest`: what each verb means (admission, concurrency, deletion,
//!   subresources, watch), shared by HTTP and in-process callers
//! - `http`: TLS, authentication, routing, content negotiation, streaming
//! - `patch`: merge, strategic-merge and JSON patches
//! - `protobuf`: Kubernetes protobuf request bodies decoded to JSON
//! - `discovery`, `openapi`, `table`: the documents kubectl reads
//! - `error`: API errors as `Status` objects

pub mod admission;
pub mod discovery;
pub mod error;
pub mod http;
pub mod openapi;
pub mod patch;
pub mod protobuf;
pub mod rest;
pub mod table;

pub use error::{ApiError, ApiResult};
pub use http::{ApiServer, serve};
pub use rest::Api;
