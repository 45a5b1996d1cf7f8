//! Simulation and fault tests of the replicated store (issue 5).
//!
//! - [`sim`]: a deterministic, seeded simulation of N masters
//!   ([`wasmk::store::NodeCore`]) with crashable disks, a faulty network,
//!   clients and a nemesis. [`sim::run`] returns a report or a failure that
//!   names its seed.
//! - [`network`]: the simulated network, transport and disk.
//! - [`linearizability`]: a Wing-Gong/Lowe (Porcupine-style) checker for
//!   per-key histories of creates, compare-and-swap updates, deletes and
//!   linearizable reads.
//! - [`invariants`]: Raft's safety properties, checked during the run.
//!
//! See `README.md` for how to run many seeds and replay one.

pub mod invariants;
pub mod linearizability;
pub mod network;
pub mod sim;
