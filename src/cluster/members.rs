//! [`Membership`]: this master's part in keeping the member list.
//!
//! - The address book: the peer transport learns every member's peer URL
//!   from the records in the replicated state (followed by a watch), with
//!   `--initial-cluster` entries taking precedence for the names they list.
//! - Self-registration: each master keeps its own record current (peer and
//!   client URL), so a cluster created with `--initial-cluster` gets
//!   records without anyone writing them by hand.
//! - Changes (on the leader only; the API forwards them there): adding a
//!   member writes its record, then adds it as a Raft learner; a learner
//!   that has caught up is promoted to voter by the leader's promotion loop,
//!   so a new master never counts towards the quorum before it holds the
//!   log. Removing a member removes it from the configuration, then its
//!   record; the leader hands leadership over before removing itself.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use raft::eraftpb::{ConfChangeSingle, ConfChangeType, ConfChangeV2};
use tokio::sync::watch;

use super::{ClusterError, MEMBER_PREFIX, Member, raft_id, validate_name};
use crate::store::peer::{PeerAddr, PeerTransport, dial_address};
use crate::store::{Op, Store, StoreError};

/// How often the leader looks for learners to promote and a master checks
/// its own record.
const LOOP_INTERVAL: Duration = Duration::from_millis(500);
/// A learner this many entries behind the leader's commit index (or closer)
/// has caught up.
const CAUGHT_UP: u64 = 100;

/// A member as `cluster status` lists it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberStatus {
    #[serde(flatten)]
    pub member: Member,
    /// voter, learner, or none (a record whose member is not in the
    /// configuration, e.g. half-added).
    pub role: &'static str,
}

/// This master's membership duties (see the module docs).
pub struct Membership {
    store: Store,
    transport: Arc<PeerTransport>,
    me: Member,
    /// Peer URLs given at start (`--initial-cluster`, or the member list a
    /// joining master fetched): name -> peer URL.
    seeds: HashMap<String, String>,
    /// Whether seeds override records (`--initial-cluster` does: it is this
    /// master's view of its peers) or only fill in for missing ones.
    seeds_win: bool,
    /// Serializes membership changes made through this master.
    changes: tokio::sync::Mutex<()>,
}

impl Membership {
    /// `me` is this master; `seeds` peer URLs known at start, which
    /// override member records when `seeds_win`.
    pub fn new(
        store: Store,
        transport: Arc<PeerTransport>,
        me: Member,
        seeds: &[(String, String)],
        seeds_win: bool,
    ) -> Arc<Membership> {
        let m = Arc::new(Membership {
            store,
            transport,
            me,
            seeds: seeds.iter().cloned().collect(),
            seeds_win,
            changes: tokio::sync::Mutex::new(()),
        });
        m.sync_address_book(&m.records());
        m
    }

    /// This master.
    pub fn me(&self) -> &Member {
        &self.me
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The member records in the local state, by name.
    pub fn records(&self) -> Vec<Member> {
        self.store.read(|sm| {
            sm.list(MEMBER_PREFIX, None, 0)
                .0
                .into_iter()
                .filter_map(|(_, s)| Member::from_record(&s.value))
                .collect()
        })
    }

    /// Members with their place in the configuration: every record, plus
    /// configured ids without one.
    pub fn status(&self) -> Vec<MemberStatus> {
        let raft = self.store.raft_status();
        let role = |id: u64| {
            if raft.voters.contains(&id) {
                "voter"
            } else if raft.learners.contains(&id) {
                "learner"
            } else {
                "none"
            }
        };
        let mut out: Vec<MemberStatus> = self
            .records()
            .into_iter()
            .map(|m| MemberStatus {
                role: role(m.id),
                member: m,
            })
            .collect();
        for id in raft.voters.iter().chain(&raft.learners) {
            if out.iter().all(|m| m.member.id != *id) {
                let seed = self
                    .seeds
                    .iter()
                    .find(|(n, _)| raft_id(n) == *id)
                    .map(|(n, u)| (n.clone(), u.clone()));
                let (name, peer_url) = seed.unwrap_or_else(|| (format!("#{id}"), String::new()));
                out.push(MemberStatus {
                    member: Member {
                        name,
                        id: *id,
                        peer_url,
                        client_url: String::new(),
                    },
                    role: role(*id),
                });
            }
        }
        out.sort_by(|a, b| a.member.name.cmp(&b.member.name));
        out
    }

    /// The member whose Raft id is `id`, if it has a record.
    pub fn member_by_id(&self, id: u64) -> Option<Member> {
        self.records().into_iter().find(|m| m.id == id)
    }

    /// Points the transport at every known member.
    fn sync_address_book(&self, records: &[Member]) {
        let mut want: HashMap<u64, PeerAddr> = HashMap::new();
        for m in records {
            want.insert(
                m.id,
                PeerAddr {
                    name: m.name.clone(),
                    url: m.peer_url.clone(),
                },
            );
        }
        for (name, url) in &self.seeds {
            let id = raft_id(name);
            if self.seeds_win || !want.contains_key(&id) {
                want.insert(
                    id,
                    PeerAddr {
                        name: name.clone(),
                        url: url.clone(),
                    },
                );
            }
        }
        want.remove(&self.me.id);
        for (id, addr) in &want {
            if let Err(e) = self.transport.set_peer(*id, addr.clone()) {
                tracing::warn!(peer = %addr.name, error = %e, "unusable peer address");
            }
        }
        for id in self.transport.peers().keys() {
            if !want.contains_key(id) {
                self.transport.remove_peer(*id);
            }
        }
    }

    /// Starts the address book, self-registration and (while leading)
    /// learner promotion; they stop when `shutdown` turns true.
    pub fn start(
        self: &Arc<Self>,
        shutdown: watch::Receiver<bool>,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        vec![
            tokio::spawn(self.clone().follow_records(shutdown.clone())),
            tokio::spawn(self.clone().maintain(shutdown)),
        ]
    }

    async fn follow_records(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        loop {
            let (items, _, mut sub) = self.store.list_and_watch(MEMBER_PREFIX);
            let records: Vec<Member> = items
                .iter()
                .filter_map(|(_, s)| Member::from_record(&s.value))
                .collect();
            self.sync_address_book(&records);
            loop {
                let next = tokio::select! {
                    e = sub.next() => e,
                    _ = shutdown.changed() => return,
                };
                match next {
                    Ok(_) => self.sync_address_book(&self.records()),
                    // Replaced by a snapshot, or fell behind: relist.
                    Err(StoreError::TooOld { .. }) => break,
                    Err(_) => return,
                }
            }
        }
    }

    async fn maintain(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        loop {
            if self.store.role().leader != 0 {
                if let Err(e) = self.register().await {
                    tracing::debug!(error = %e, "could not update this master's member record");
                }
                if self.store.role().is_leader
                    && let Err(e) = self.promote_learners().await
                {
                    tracing::info!(error = %e, "learner promotion failed; will retry");
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(LOOP_INTERVAL) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    /// Writes this master's record if it is missing or out of date.
    async fn register(&self) -> Result<(), ClusterError> {
        let key = self.me.key();
        let current = self.store.read(|sm| sm.get(&key).cloned());
        let op = match &current {
            Some(s) if Member::from_record(&s.value).as_ref() == Some(&self.me) => return Ok(()),
            Some(s) => Op::update(key, self.me.to_record(), s.rv),
            None => Op::create(key, self.me.to_record()),
        };
        self.store.txn(vec![op]).await?;
        tracing::info!(name = %self.me.name, "member record written");
        Ok(())
    }

    /// Promotes learners that have caught up with the leader.
    async fn promote_learners(&self) -> Result<(), ClusterError> {
        let _guard = self.changes.lock().await;
        let status = self.store.raft_status();
        if status.role != "Leader" {
            return Ok(());
        }
        for learner in &status.learners {
            let Some(pr) = status.progress.iter().find(|p| p.id == *learner) else {
                continue;
            };
            if pr.recent_active && pr.matched + CAUGHT_UP >= status.commit {
                self.change(ConfChangeType::AddNode, *learner).await?;
                tracing::info!(id = learner, "learner caught up: promoted to voter");
            }
        }
        Ok(())
    }

    async fn change(&self, kind: ConfChangeType, id: u64) -> Result<(), ClusterError> {
        let cc = ConfChangeV2 {
            changes: vec![ConfChangeSingle {
                change_type: kind as i32,
                node_id: id,
            }],
            ..Default::default()
        };
        self.store.change_membership(cc).await?;
        Ok(())
    }

    fn require_leader(&self) -> Result<crate::store::RaftStatus, ClusterError> {
        let status = self.store.raft_status();
        if status.role != "Leader" {
            return Err(ClusterError::NotLeader {
                leader: status.leader,
            });
        }
        Ok(status)
    }

    /// Adds a member as a learner (promoted once it caught up). Idempotent:
    /// adding a member again updates its URLs. Leader only.
    pub async fn add(&self, m: &Member) -> Result<MemberStatus, ClusterError> {
        validate_name(&m.name)?;
        dial_address(&m.peer_url)?;
        if m.id != raft_id(&m.name) {
            return Err(ClusterError::Refused(format!(
                "member {} must have Raft id {}, not {}",
                m.name,
                raft_id(&m.name),
                m.id
            )));
        }
        let _guard = self.changes.lock().await;
        let status = self.require_leader()?;
        if status.first_index <= 1 {
            return Err(ClusterError::Refused(
                "this cluster's log still starts at index 1 (it was created by `wasmk up`), so a new master \
                 could not learn the membership from it; save a snapshot and restore it into a cluster \
                 started with `wasmk server --initial-cluster`"
                    .into(),
            ));
        }
        let records = self.records();
        if let Some(other) = records.iter().find(|r| r.id == m.id && r.name != m.name) {
            return Err(ClusterError::IdCollision {
                a: other.name.clone(),
                b: m.name.clone(),
                id: m.id,
            });
        }
        let key = m.key();
        let current = self.store.read(|sm| sm.get(&key).cloned());
        match &current {
            Some(s) if Member::from_record(&s.value).as_ref() == Some(m) => {}
            Some(s) => {
                self.store
                    .txn(vec![Op::update(key, m.to_record(), s.rv)])
                    .await?;
            }
            None => {
                self.store.txn(vec![Op::create(key, m.to_record())]).await?;
            }
        }
        let role = if status.voters.contains(&m.id) {
            "voter"
        } else {
            if !status.learners.contains(&m.id) {
                self.change(ConfChangeType::AddLearnerNode, m.id).await?;
                tracing::info!(name = %m.name, id = m.id, "added a learner");
            }
            "learner"
        };
        Ok(MemberStatus {
            member: m.clone(),
            role,
        })
    }

    /// Removes member `name` from the configuration and its record. When it
    /// is this (leading) master, leadership is handed over first and
    /// `NotLeader` returned, so the caller asks the new leader. Leader only.
    pub async fn remove(&self, name: &str) -> Result<(), ClusterError> {
        validate_name(name)?;
        let id = raft_id(name);
        let _guard = self.changes.lock().await;
        let status = self.require_leader()?;
        let key = format!("{MEMBER_PREFIX}{name}");
        let record = self.store.read(|sm| sm.get(&key).cloned());
        let configured = status.voters.contains(&id) || status.learners.contains(&id);
        if !configured && record.is_none() {
            return Err(ClusterError::NoSuchMember {
                name: name.to_string(),
            });
        }
        if configured {
            if status.voters == [id] {
                return Err(ClusterError::Refused(format!(
                    "{name} is the only voter; a cluster cannot remove its last master"
                )));
            }
            if id == self.me.id {
                let to = status
                    .progress
                    .iter()
                    .filter(|p| p.id != id && status.voters.contains(&p.id))
                    .max_by_key(|p| (p.recent_active, p.matched))
                    .map(|p| p.id)
                    .ok_or_else(|| ClusterError::Refused("no other voter to lead".into()))?;
                self.store.transfer_leader(to)?;
                for _ in 0..100 {
                    if !self.store.role().is_leader {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                return Err(ClusterError::NotLeader {
                    leader: self.store.role().leader,
                });
            }
            // Voters and learners alike.
            self.change(ConfChangeType::RemoveNode, id).await?;
            tracing::info!(name, id, "removed a member");
        }
        if let Some(s) = record {
            match self.store.txn(vec![Op::delete(key, Some(s.rv))]).await {
                Ok(_) | Err(StoreError::Apply(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}
