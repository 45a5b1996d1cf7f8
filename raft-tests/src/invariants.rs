//! Raft's safety properties, checked on what the simulated masters do:
//!
//! - Election Safety: at most one leader per term.
//! - State Machine Safety: every master that applies index `i` applies the
//!   same entry there, in every incarnation (a committed entry is never
//!   lost or replaced), and state machines at equal applied indexes are
//!   identical.
//! - Leader Completeness: a new leader's log holds every entry any master
//!   has applied.
//! - Log Matching: two logs with an entry of the same index and term agree
//!   on every entry up to it.

use std::collections::BTreeMap;

use raft::GetEntriesContext;
use raft::eraftpb::Entry;
use wasmk::store::node::ApplyRecord;
use wasmk::store::storage::RaftStorage;

/// A broken invariant, with what is needed to find it in a trace.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Broken {
    #[error("election safety: masters {first} and {second} were both leader in term {term}")]
    TwoLeaders { term: u64, first: u64, second: u64 },
    #[error(
        "state machine safety: master {node} applied entry (term {got_term}) at index {index}, but (term {want_term}) was applied there before (first by master {first_node})"
    )]
    DifferentEntry {
        index: u64,
        node: u64,
        got_term: u64,
        want_term: u64,
        first_node: u64,
    },
    #[error(
        "state machine safety: master {node}'s state at index {index} differs from master {first_node}'s at the same index"
    )]
    DifferentState {
        index: u64,
        node: u64,
        first_node: u64,
    },
    #[error(
        "leader completeness: master {leader}, leader of term {term}, {problem} at index {index}"
    )]
    LeaderIncomplete {
        leader: u64,
        term: u64,
        index: u64,
        problem: String,
    },
    #[error(
        "log matching: masters {a} and {b} both hold index {at} in term {term} but differ at index {index}"
    )]
    LogMismatch {
        a: u64,
        b: u64,
        at: u64,
        term: u64,
        index: u64,
    },
    #[error("could not read master {node}'s log: {reason}")]
    Unreadable { node: u64, reason: String },
}

/// The entry applied at an index, and who applied it first.
#[derive(Clone, Debug)]
struct AppliedAt {
    term: u64,
    data: Vec<u8>,
    first_node: u64,
    /// The highest term any leader had when it was first applied: it was
    /// committed by a leader of this term or an earlier one.
    committed_by: u64,
}

/// What the checker has learnt so far in one run.
#[derive(Debug, Default)]
pub struct Invariants {
    /// The leader of each term.
    leaders: BTreeMap<u64, u64>,
    applied: BTreeMap<u64, AppliedAt>,
    /// State digest at an applied index, and the master that reported it.
    states: BTreeMap<u64, ([u8; 32], u64)>,
}

impl Invariants {
    pub fn new() -> Invariants {
        Invariants::default()
    }

    /// Records that `node` is leader in `term`. Returns true the first time
    /// this term's leader is seen (when Leader Completeness is worth checking).
    pub fn observe_leader(&mut self, node: u64, term: u64) -> Result<bool, Broken> {
        match self.leaders.get(&term) {
            Some(&first) if first != node => Err(Broken::TwoLeaders {
                term,
                first,
                second: node,
            }),
            Some(_) => Ok(false),
            None => {
                self.leaders.insert(term, node);
                Ok(true)
            }
        }
    }

    /// Records what `node`'s state machine consumed.
    pub fn observe_apply(&mut self, node: u64, record: &ApplyRecord) -> Result<(), Broken> {
        let ApplyRecord::Entry { index, term, data } = record else {
            // Snapshots are covered by the state digests.
            return Ok(());
        };
        match self.applied.get(index) {
            Some(a) if a.term != *term || a.data != *data => Err(Broken::DifferentEntry {
                index: *index,
                node,
                got_term: *term,
                want_term: a.term,
                first_node: a.first_node,
            }),
            Some(_) => Ok(()),
            None => {
                let committed_by = self.leaders.keys().next_back().copied().unwrap_or(0);
                self.applied.insert(
                    *index,
                    AppliedAt {
                        term: *term,
                        data: data.clone(),
                        first_node: node,
                        committed_by,
                    },
                );
                Ok(())
            }
        }
    }

    /// Records the digest of `node`'s state machine at applied `index`.
    pub fn observe_state(&mut self, node: u64, index: u64, digest: [u8; 32]) -> Result<(), Broken> {
        match self.states.get(&index) {
            Some((d, first_node)) if *d != digest => Err(Broken::DifferentState {
                index,
                node,
                first_node: *first_node,
            }),
            Some(_) => Ok(()),
            None => {
                self.states.insert(index, (digest, node));
                Ok(())
            }
        }
    }

    /// The data of the entry applied at `index`, if any master applied it.
    pub fn applied_entry(&self, index: u64) -> Option<&[u8]> {
        self.applied.get(&index).map(|a| a.data.as_slice())
    }

    /// The highest index any master applied.
    pub fn max_applied(&self) -> u64 {
        self.applied.keys().next_back().copied().unwrap_or(0)
    }

    /// Leader Completeness for the leader of `term`, whose log is `log`:
    /// it holds every entry committed in an earlier term. (A leader of an
    /// old term, elected late, need not hold what later terms committed.)
    pub fn check_leader_log(&self, leader: u64, term: u64, log: &Log) -> Result<(), Broken> {
        let broken = |index: u64, problem: String| Broken::LeaderIncomplete {
            leader,
            term,
            index,
            problem,
        };
        let last = log.last_index();
        let before = |a: &AppliedAt| a.committed_by < term;
        if let Some((&index, _)) = self.applied.range(last + 1..).find(|(_, a)| before(a)) {
            return Err(broken(
                index,
                format!(
                    "has a log ending at {last}, but an entry committed in an earlier term was applied"
                ),
            ));
        }
        for e in &log.entries {
            if let Some(a) = self.applied.get(&e.index)
                && before(a)
                && (a.term != e.term || a.data != e.data)
            {
                return Err(broken(
                    e.index,
                    format!(
                        "holds an entry of term {} where term {} was applied",
                        e.term, a.term
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// A master's log: entries from `first` on (earlier ones are compacted
/// into a snapshot).
#[derive(Clone, Debug)]
pub struct Log {
    pub node: u64,
    pub first: u64,
    pub entries: Vec<Entry>,
}

impl Log {
    /// The stable and unstable entries raft-rs holds for `node`.
    pub fn read(node: u64, log: &raft::RaftLog<RaftStorage>) -> Result<Log, Broken> {
        let first = log.first_index();
        let last = log.last_index();
        let entries = if last >= first {
            log.entries(first, None, GetEntriesContext::empty(false))
                .map_err(|e| Broken::Unreadable {
                    node,
                    reason: e.to_string(),
                })?
        } else {
            Vec::new()
        };
        Ok(Log {
            node,
            first,
            entries,
        })
    }

    pub fn last_index(&self) -> u64 {
        self.entries
            .last()
            .map_or(self.first.saturating_sub(1), |e| e.index)
    }

    fn get(&self, index: u64) -> Option<&Entry> {
        let i = usize::try_from(index.checked_sub(self.first)?).ok()?;
        self.entries.get(i)
    }
}

/// Log Matching between every pair of logs.
pub fn check_log_matching(logs: &[Log]) -> Result<(), Broken> {
    for (i, a) in logs.iter().enumerate() {
        for b in &logs[i + 1..] {
            let lo = a.first.max(b.first);
            let hi = a.last_index().min(b.last_index());
            // The highest common index where the terms agree: everything
            // from `lo` up to it must be identical.
            let Some(at) = (lo..=hi).rev().find(
                |&ix| matches!((a.get(ix), b.get(ix)), (Some(x), Some(y)) if x.term == y.term),
            ) else {
                continue;
            };
            for ix in lo..=at {
                if let (Some(x), Some(y)) = (a.get(ix), b.get(ix))
                    && (x.term != y.term || x.data != y.data || x.entry_type != y.entry_type)
                {
                    return Err(Broken::LogMismatch {
                        a: a.node,
                        b: b.node,
                        at,
                        term: a.get(at).map_or(0, |e| e.term),
                        index: ix,
                    });
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ent(index: u64, term: u64, data: &[u8]) -> Entry {
        Entry {
            index,
            term,
            data: data.to_vec(),
            ..Default::default()
        }
    }

    fn rec(index: u64, term: u64, data: &[u8]) -> ApplyRecord {
        ApplyRecord::Entry {
            index,
            term,
            data: data.to_vec(),
        }
    }

    #[test]
    fn one_leader_per_term() {
        let mut inv = Invariants::new();
        assert_eq!(inv.observe_leader(1, 2), Ok(true));
        assert_eq!(inv.observe_leader(1, 2), Ok(false));
        assert_eq!(inv.observe_leader(2, 3), Ok(true));
        assert!(matches!(
            inv.observe_leader(3, 2),
            Err(Broken::TwoLeaders { term: 2, .. })
        ));
    }

    #[test]
    fn an_applied_index_never_changes() {
        let mut inv = Invariants::new();
        inv.observe_apply(1, &rec(5, 2, b"a")).unwrap();
        inv.observe_apply(2, &rec(5, 2, b"a")).unwrap();
        assert!(matches!(
            inv.observe_apply(3, &rec(5, 3, b"b")),
            Err(Broken::DifferentEntry {
                index: 5,
                node: 3,
                ..
            })
        ));
        assert!(inv.observe_apply(3, &rec(5, 2, b"b")).is_err());
        inv.observe_state(1, 5, [1; 32]).unwrap();
        assert!(inv.observe_state(2, 5, [2; 32]).is_err());
        assert_eq!(inv.max_applied(), 5);
    }

    #[test]
    fn leader_must_hold_every_entry_committed_in_an_earlier_term() {
        let mut inv = Invariants::new();
        inv.observe_leader(1, 1).unwrap();
        inv.observe_apply(1, &rec(1, 1, b"x")).unwrap();
        inv.observe_apply(1, &rec(2, 1, b"y")).unwrap();
        let good = Log {
            node: 2,
            first: 1,
            entries: vec![ent(1, 1, b"x"), ent(2, 1, b"y"), ent(3, 2, b"")],
        };
        inv.check_leader_log(2, 2, &good).unwrap();
        let short = Log {
            node: 3,
            first: 1,
            entries: vec![ent(1, 1, b"x")],
        };
        assert!(inv.check_leader_log(3, 3, &short).is_err());
        let wrong = Log {
            node: 3,
            first: 2,
            entries: vec![ent(2, 3, b"z")],
        };
        assert!(inv.check_leader_log(3, 3, &wrong).is_err());
        // Entries committed under term 4 need not be in a late leader of
        // term 3, but must be in the leader of term 5.
        inv.observe_leader(2, 4).unwrap();
        inv.observe_apply(2, &rec(3, 4, b"w")).unwrap();
        inv.check_leader_log(2, 3, &good).unwrap();
        assert!(inv.check_leader_log(2, 5, &good).is_err());
    }

    #[test]
    fn log_matching() {
        let a = Log {
            node: 1,
            first: 1,
            entries: vec![ent(1, 1, b"a"), ent(2, 1, b"b"), ent(3, 2, b"c")],
        };
        // Diverges after index 2 in a later term: fine.
        let b = Log {
            node: 2,
            first: 2,
            entries: vec![ent(2, 1, b"b"), ent(3, 3, b"d")],
        };
        check_log_matching(&[a.clone(), b]).unwrap();
        // Same term at 3 but different content at 2: broken.
        let c = Log {
            node: 3,
            first: 1,
            entries: vec![ent(1, 1, b"a"), ent(2, 1, b"X"), ent(3, 2, b"c")],
        };
        assert!(matches!(
            check_log_matching(&[a, c]),
            Err(Broken::LogMismatch { index: 2, .. })
        ));
    }
}
