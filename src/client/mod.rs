//! Talking to the API: kubeconfig files and an HTTP client.
//!
//! Layout:
//! - `kubeconfig`: kubeconfig types, resolution (`--kubeconfig`,
//!   `$KUBECONFIG`, `~/.wasmk/kubeconfig`) and the admin kubeconfig writer

pub mod kubeconfig;

pub use kubeconfig::{ClusterAccess, Kubeconfig, KubeconfigError, resolve, write_admin_kubeconfig};
