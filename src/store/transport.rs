//! How Raft messages leave this master. A single-master cluster has no
//! peers; the multi-master transport (mutual TLS between masters) implements
//! the same trait, and simulations implement it with an in-memory network.

use raft::eraftpb::Message;

/// Sends Raft messages to peers. Must not block the Raft driver: queue and
/// return. Delivery is best effort (Raft retransmits).
pub trait Transport: Send + Sync {
    fn send(&self, messages: Vec<Message>);
}

/// The transport of a one-voter group: there is nobody to talk to.
#[derive(Debug, Default)]
pub struct NoPeers;

impl Transport for NoPeers {
    fn send(&self, messages: Vec<Message>) {
        for m in messages {
            tracing::warn!(to = m.to, msg_type = ?m.msg_type, "raft message to a peer, but this master has no peers");
        }
    }
}
