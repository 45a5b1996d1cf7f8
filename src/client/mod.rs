//! Talking to the API: kubeconfig files and an HTTP client.
//!
//! Layout:
//! - `kubeconfig`: kubeconfig types, resolution (`--kubeconfig`,
//!   `$KUBECONFIG`, `~/.wasmk/kubeconfig`) and the admin kubeconfig writer
//! - `rest`: [`ApiClient`], JSON verbs, watch, streams, failover
//! - `connector`: TCP (rustls) or Unix-socket connections to a server
//! - `path`: resource paths and list/watch query parameters
//! - `watch`: watch events and their stream decoder
//! - `error`: [`ClientError`] and decoding of `Status` error bodies

pub mod connector;
pub mod error;
pub mod kubeconfig;
pub mod path;
pub mod rest;
pub mod watch;

#[cfg(test)]
mod tls_tests;

pub use error::{ApiError, ClientError};
pub use kubeconfig::{ClusterAccess, Kubeconfig, KubeconfigError, resolve, write_admin_kubeconfig};
pub use path::{ListParams, resource_path};
pub use rest::{ApiClient, ApiClientConfig, ByteStream, PatchType, WatchStream};
pub use watch::{WatchEvent, WatchEventType};
