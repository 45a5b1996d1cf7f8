//! The commands replicated through the Raft log.
//!
//! A [`Txn`] is a list of operations applied atomically by every replica's
//! state machine: all preconditions are checked first against the state at
//! that log position; if any fails nothing is written. Every object written
//! by a transaction gets the entry's log index as its `resourceVersion`.
//!
//! Encoded with prost (hand-written message definitions, so no `.proto` build
//! step); field numbers are the wire contract between versions of wasmk.

use prost::Message;

/// What an operation does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum OpKind {
    /// Write `value` at `key`.
    Put = 0,
    /// Remove `key`.
    Delete = 1,
    /// Write nothing; only check the precondition.
    Check = 2,
    /// Store a chunk of a content-addressed blob (`key` is the blob digest,
    /// `chunk` its index); the state machine keeps blob data on disk.
    PutBlobChunk = 3,
}

/// What must hold for an operation to apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum Precondition {
    /// Nothing.
    None = 0,
    /// The key must not exist (create).
    NotExists = 1,
    /// The key must exist.
    Exists = 2,
    /// The key must exist with resourceVersion `expect_rv` (optimistic concurrency).
    RvEquals = 3,
}

/// One operation of a transaction.
#[derive(Clone, PartialEq, Message)]
pub struct Op {
    #[prost(enumeration = "OpKind", tag = "1")]
    pub kind: i32,
    #[prost(string, tag = "2")]
    pub key: String,
    /// Object JSON for `Put` (its `metadata.resourceVersion` is replaced by
    /// the log index when applied); blob bytes for `PutBlobChunk`.
    #[prost(bytes = "vec", tag = "3")]
    pub value: Vec<u8>,
    #[prost(enumeration = "Precondition", tag = "4")]
    pub precondition: i32,
    #[prost(uint64, tag = "5")]
    pub expect_rv: u64,
    /// For `PutBlobChunk`: the chunk's index within the blob.
    #[prost(uint32, tag = "6")]
    pub chunk: u32,
}

impl Op {
    /// Create `key`; fails if it exists.
    pub fn create(key: impl Into<String>, value: Vec<u8>) -> Op {
        Op {
            kind: OpKind::Put as i32,
            key: key.into(),
            value,
            precondition: Precondition::NotExists as i32,
            expect_rv: 0,
            chunk: 0,
        }
    }
    /// Replace `key` if its resourceVersion is still `rv`.
    pub fn update(key: impl Into<String>, value: Vec<u8>, rv: u64) -> Op {
        Op {
            kind: OpKind::Put as i32,
            key: key.into(),
            value,
            precondition: Precondition::RvEquals as i32,
            expect_rv: rv,
            chunk: 0,
        }
    }
    /// Delete `key` if its resourceVersion is still `rv` (or unconditionally
    /// when `rv` is `None`, failing only if it is missing).
    pub fn delete(key: impl Into<String>, rv: Option<u64>) -> Op {
        let (precondition, expect_rv) = match rv {
            Some(rv) => (Precondition::RvEquals, rv),
            None => (Precondition::Exists, 0),
        };
        Op {
            kind: OpKind::Delete as i32,
            key: key.into(),
            value: Vec::new(),
            precondition: precondition as i32,
            expect_rv,
            chunk: 0,
        }
    }
    /// Check that `key` still has resourceVersion `rv`, writing nothing.
    pub fn check_rv(key: impl Into<String>, rv: u64) -> Op {
        Op {
            kind: OpKind::Check as i32,
            key: key.into(),
            value: Vec::new(),
            precondition: Precondition::RvEquals as i32,
            expect_rv: rv,
            chunk: 0,
        }
    }
    /// Store chunk `index` of blob `digest`.
    pub fn blob_chunk(digest: impl Into<String>, index: u32, data: Vec<u8>) -> Op {
        Op {
            kind: OpKind::PutBlobChunk as i32,
            key: digest.into(),
            value: data,
            precondition: Precondition::None as i32,
            expect_rv: 0,
            chunk: index,
        }
    }
    pub fn op_kind(&self) -> OpKind {
        OpKind::from_i32(self.kind).unwrap_or(OpKind::Check)
    }
    pub fn op_precondition(&self) -> Precondition {
        Precondition::from_i32(self.precondition).unwrap_or(Precondition::None)
    }
}

/// A transaction: the payload of one normal Raft entry.
#[derive(Clone, PartialEq, Message)]
pub struct Txn {
    /// Identifies the proposal so the proposing master can hand the result
    /// back to its caller: `(proposer raft id << 48) | counter`. Zero for
    /// internal entries nobody waits for.
    #[prost(uint64, tag = "1")]
    pub request_id: u64,
    #[prost(message, repeated, tag = "2")]
    pub ops: Vec<Op>,
    /// Raft term the proposer believed current; a leader-only writer (the
    /// scheduler, controllers) sets it so that writes from a deposed leader
    /// are refused once a newer term has committed entries. Zero = unfenced.
    #[prost(uint64, tag = "3")]
    pub fence_term: u64,
}

impl Txn {
    pub fn encode(&self) -> Vec<u8> {
        self.encode_to_vec()
    }
    pub fn decode_bytes(b: &[u8]) -> Result<Txn, prost::DecodeError> {
        Txn::decode(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn txn_round_trips() {
        let t = Txn {
            request_id: 7 << 48 | 3,
            ops: vec![
                Op::create("pods/default/a", b"{}".to_vec()),
                Op::update("pods/default/b", b"{\"x\":1}".to_vec(), 42),
                Op::delete("pods/default/c", None),
                Op::check_rv("namespaces/default", 5),
            ],
            fence_term: 2,
        };
        let back = Txn::decode_bytes(&t.encode()).unwrap();
        assert_eq!(back, t);
        assert_eq!(back.ops[1].op_precondition(), Precondition::RvEquals);
        assert_eq!(back.ops[2].op_kind(), OpKind::Delete);
    }

    #[test]
    fn garbage_does_not_decode_silently_into_ops() {
        assert!(Txn::decode_bytes(&[0xff, 0xff, 0xff]).is_err());
    }
}
