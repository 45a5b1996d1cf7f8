//! wasmk: a lightweight orchestrator that runs WebAssembly modules the way
//! Kubernetes runs containers.
//!
//! Where things live:
//! - [`api`]: the object model (types, defaults, validation, the registry of
//!   served resources). Pure data and functions.
//! - [`store`]: the Raft-replicated store: write-ahead log, raft-rs driver,
//!   state machine assigning `resourceVersion` from the log index, watch
//!   history.
//! - [`apiserver`]: the Kubernetes-compatible HTTP API over the store
//!   (routing, verbs, patches, watch, discovery, OpenAPI, tables).
//! - [`auth`]: the cluster CA, serving certificates and bearer tokens.
//! - [`client`]: kubeconfig files and an HTTP client for the API.
//! - [`modules`]: the content-addressed module store (push, blobs).
//! - [`runtime`]: what controllers run on: typed in-process client,
//!   reflectors (list+watch caches), work queues.
//! - [`scheduler`]: Filter/Score plugins and the binding loop.
//! - [`server`]: running a master (data dir, PKI, store, API, control loops).
//! - [`control`]: the leader's control loops (executors of the planners,
//!   garbage collector, namespace lifecycle), started on leadership.
//! - [`controllers`]: ReplicaSet, Deployment, DaemonSet, Job, CronJob,
//!   namespace and garbage collection; pure planning plus executors.
//! - [`agent`]: the node agent: registration, leases, pod lifecycle.
//! - [`sandbox`]: the per-container process that runs a Wasm module with
//!   wasmtime under WASI.
//! - [`cgroup`]: cgroup v1 and v2 managers over cgroupfs.
//! - [`cli`]: the `wasmk` command line.
//!
//! `main.rs` only parses arguments and calls [`cli::run`].

pub mod agent;
pub mod api;
pub mod apiserver;
pub mod auth;
pub mod cgroup;
pub mod cli;
pub mod client;
pub mod control;
pub mod controllers;
pub mod modules;
pub mod runtime;
pub mod sandbox;
pub mod scheduler;
pub mod server;
pub mod store;
