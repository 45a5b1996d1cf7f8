//! Running several masters as one cluster: who the members are, how they
//! find each other, how members are added and removed, how the shared
//! CA and tokens reach a new master, and backups of the whole state.
//!
//! Layout:
//! - this file: member names and Raft ids, member records, the
//!   `--initial-cluster` syntax, [`ClusterError`]
//! - `members`: [`Membership`]: the peer address book kept from member
//!   records, each master's self-registration, adding and removing members
//!   (on the leader), promotion of caught-up learners
//! - `routes`: the cluster endpoints of the API (`/apis/wasmk.io/v1/cluster/…`)
//! - `bundle`: the cluster bundle (CA and token file) that every master
//!   shares, `init-pki`, and joining a running cluster
//! - `backup`: consistent snapshots through the API and restoring them into
//!   the data directories of a new cluster
//!
//! Members. A master is named (`--name`, a DNS label); its Raft id is
//! derived from the name by [`raft_id`]. The replicated state holds one
//! record per member under the internal key `~members/NAME` (never served
//! as a resource): its id, peer URL and client URL. Records are what lets
//! every master reach every other one, including members added after it
//! started; `--initial-cluster` seeds the address book before any record
//! exists and, for the names it lists, takes precedence over records (it is
//! this master's view of where its peers are).
//!
//! A new cluster's log starts after a bootstrap snapshot at index 1 that
//! every initial member writes identically ([`bootstrap_raft_dir`]), so a
//! member added later always receives a snapshot (with the membership in
//! it) rather than log entries from index 1, which carry none.

pub mod backup;
pub mod bundle;
pub mod members;
pub mod routes;

use std::path::Path;

use prost::Message as _;
use raft::eraftpb::{ConfState, SnapshotMetadata};
use serde::{Deserialize, Serialize};

pub use crate::store::peer::raft_id;
pub use members::Membership;
pub use routes::ClusterRoutes;

/// Storage keys of member records.
pub const MEMBER_PREFIX: &str = "~members/";

/// Errors of cluster operations.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("invalid member name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },
    #[error("invalid --initial-cluster entry {entry:?}: {reason}")]
    InitialCluster { entry: String, reason: String },
    #[error(
        "members {a:?} and {b:?} would share Raft id {id}; choose another name for one of them"
    )]
    IdCollision { a: String, b: String, id: u64 },
    #[error("this master is not the leader (leader: {leader})")]
    NotLeader { leader: u64 },
    #[error("{0}")]
    Refused(String),
    #[error("no member named {name:?}")]
    NoSuchMember { name: String },
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("peer transport: {0}")]
    Peer(#[from] crate::store::peer::PeerError),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: {reason}")]
    Corrupt { what: String, reason: String },
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthError),
    #[error("{what}: {source}")]
    Client {
        what: String,
        #[source]
        source: crate::client::ClientError,
    },
}

/// One master, as its record in the replicated state describes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub name: String,
    /// Its Raft id ([`raft_id`] of the name).
    pub id: u64,
    /// `https://HOST:PORT` of its peer port.
    #[serde(rename = "peerURL")]
    pub peer_url: String,
    /// `https://HOST:PORT` of its API.
    #[serde(rename = "clientURL", default)]
    pub client_url: String,
}

impl Member {
    /// The member named `name` at the given URLs.
    pub fn new(name: &str, peer_url: &str, client_url: &str) -> Member {
        Member {
            name: name.to_string(),
            id: raft_id(name),
            peer_url: peer_url.to_string(),
            client_url: client_url.to_string(),
        }
    }

    /// The storage key of its record.
    pub fn key(&self) -> String {
        format!("{MEMBER_PREFIX}{}", self.name)
    }

    /// The record as stored (the state machine wants a `metadata` object).
    pub fn to_record(&self) -> Vec<u8> {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.insert("metadata".into(), serde_json::json!({ "name": self.name }));
        }
        serde_json::to_vec(&v).unwrap_or_default()
    }

    /// Reads a stored record.
    pub fn from_record(bytes: &[u8]) -> Option<Member> {
        serde_json::from_slice(bytes).ok()
    }
}

/// Checks a member name: a DNS label (lower-case letters, digits and `-`,
/// at most 63, starting and ending with a letter or digit), since peers
/// verify each other's certificates for it.
pub fn validate_name(name: &str) -> Result<(), ClusterError> {
    let bad = |reason| ClusterError::InvalidName {
        name: name.to_string(),
        reason,
    };
    if name.is_empty() || name.len() > 63 {
        return Err(bad("must be 1 to 63 characters"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(bad("only lower-case letters, digits and '-' are allowed"));
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Err(bad("must start and end with a letter or digit"));
    }
    Ok(())
}

/// Parses `NAME=https://HOST:PORT,...`: names valid and distinct, URLs
/// well-formed, Raft ids distinct.
pub fn parse_initial_cluster(text: &str) -> Result<Vec<(String, String)>, ClusterError> {
    let mut out: Vec<(String, String)> = Vec::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let bad = |reason: String| ClusterError::InitialCluster {
            entry: entry.to_string(),
            reason,
        };
        let (name, url) = entry
            .split_once('=')
            .ok_or_else(|| bad("expected NAME=https://HOST:PORT".into()))?;
        let (name, url) = (name.trim(), url.trim());
        validate_name(name).map_err(|e| bad(e.to_string()))?;
        crate::store::peer::dial_address(url).map_err(|e| bad(e.to_string()))?;
        if out.iter().any(|(n, _)| n == name) {
            return Err(bad(format!("{name} is listed twice")));
        }
        if let Some((other, _)) = out.iter().find(|(n, _)| raft_id(n) == raft_id(name)) {
            return Err(ClusterError::IdCollision {
                a: other.clone(),
                b: name.to_string(),
                id: raft_id(name),
            });
        }
        out.push((name.to_string(), url.to_string()));
    }
    if out.is_empty() {
        return Err(ClusterError::InitialCluster {
            entry: text.to_string(),
            reason: "no members".into(),
        });
    }
    Ok(out)
}

/// Whether `raft_dir` holds no Raft state yet.
pub fn raft_dir_is_fresh(raft_dir: &Path) -> bool {
    match std::fs::read_dir(raft_dir) {
        Ok(mut entries) => entries.next().is_none(),
        Err(_) => true,
    }
}

/// Writes the starting point of a new cluster into a fresh `raft_dir`: a
/// snapshot at `index` (at least 1) and term 1 whose configuration is
/// `voters` and whose contents are `data` (an encoded
/// [`crate::store::state::SnapshotData`]; empty for a new cluster). Every
/// initial member writes the same, so they start in agreement.
pub fn bootstrap_raft_dir(
    raft_dir: &Path,
    voters: &[u64],
    index: u64,
    data: &[u8],
) -> Result<(), ClusterError> {
    use crate::store::Durable;
    let mut d = crate::store::durable::DiskDurable::open(raft_dir)?;
    d.recover()?;
    let meta = SnapshotMetadata {
        conf_state: Some(ConfState {
            voters: voters.to_vec(),
            ..Default::default()
        }),
        index: index.max(1),
        term: 1,
    };
    d.save_snapshot(&meta, data)?;
    d.sync()?;
    Ok(())
}

/// The snapshot data of an empty cluster at index 1.
pub fn empty_state() -> Vec<u8> {
    crate::store::state::SnapshotData {
        applied: 1,
        ..Default::default()
    }
    .encode_to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_names() {
        for ok in ["m1", "master-2", "a", &"x".repeat(63)] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "M1", "m_1", "-m", "m-", "m.1", &"x".repeat(64)] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn initial_cluster_syntax() {
        let got =
            parse_initial_cluster("m1=https://10.0.0.1:2380, m2=https://10.0.0.2:2380").unwrap();
        assert_eq!(
            got,
            vec![
                ("m1".to_string(), "https://10.0.0.1:2380".to_string()),
                ("m2".to_string(), "https://10.0.0.2:2380".to_string())
            ]
        );
        let cases = [
            ("", "no members"),
            ("m1", "NAME=https"),
            ("M1=https://a:1", "lower-case"),
            ("m1=http://a:1", "https://"),
            ("m1=https://a:1,m1=https://b:1", "listed twice"),
        ];
        for (text, want) in cases {
            let err = parse_initial_cluster(text).unwrap_err().to_string();
            assert!(err.contains(want), "{text}: {err}");
        }
    }

    #[test]
    fn member_records_round_trip() {
        let m = Member::new("m1", "https://10.0.0.1:2380", "https://10.0.0.1:6443");
        let rec = m.to_record();
        let v: serde_json::Value = serde_json::from_slice(&rec).unwrap();
        assert_eq!(v["metadata"]["name"], "m1");
        assert_eq!(v["peerURL"], "https://10.0.0.1:2380");
        assert_eq!(Member::from_record(&rec), Some(m));
        assert_eq!(Member::from_record(b"[]"), None);
    }

    #[test]
    fn a_bootstrapped_raft_dir_recovers_its_snapshot() {
        use crate::store::Durable;
        let dir = tempfile::tempdir().unwrap();
        let raft = dir.path().join("raft");
        assert!(raft_dir_is_fresh(&raft));
        bootstrap_raft_dir(&raft, &[3, 1, 2], 1, &empty_state()).unwrap();
        assert!(!raft_dir_is_fresh(&raft));
        let mut d = crate::store::durable::DiskDurable::open(&raft).unwrap();
        let (meta, data) = d.recover().unwrap().snapshot.unwrap();
        assert_eq!((meta.index, meta.term), (1, 1));
        assert_eq!(meta.get_conf_state().voters, vec![3, 1, 2]);
        assert_eq!(data, empty_state());
    }
}
