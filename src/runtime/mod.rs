//! The machinery controllers run on: a typed in-process client over the
//! REST core, reflectors that keep a local cache of one resource type from a
//! list+watch, and a deduplicating work queue with delayed requeues.
//!
//! Shaped after kube-runtime and client-go: event handlers only enqueue
//! keys; workers reconcile one key at a time from the cache.

pub mod client;
pub mod queue;
pub mod reflector;

pub use client::Client;
pub use queue::WorkQueue;
pub use reflector::{Reflector, Store as Cache};
