//! Kubernetes' `ControllerExpectations` as a pure value.
//!
//! A controller that created or deleted pods must not act again on a
//! snapshot that does not show those changes yet, or it would create or
//! delete twice. Kubernetes counts pending creations and remembers the uids
//! of pending deletions, lowers them as watch events arrive, and lets a
//! controller sync again when they reach zero or after five minutes.
//!
//! Here creations are tracked by pod name (the planner chooses names) and
//! deletions by uid, and the planner itself lowers them from each snapshot
//! ([`Expectations::observe`]): a pending creation is done once a pod with
//! that name is seen, a pending deletion once the pod is gone or has a
//! deletionTimestamp. The executor only stores the value a plan returns and
//! reports calls that did not happen.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};

use crate::api::core::Pod;

/// How long expectations may stay unmet before the controller acts anyway
/// (a lost watch event must not wedge it forever).
pub const EXPECTATIONS_TIMEOUT: Duration = Duration::minutes(5);

/// Pending pod creations and deletions of one controller.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Expectations {
    /// Names of pods created but not yet seen.
    creates: BTreeSet<String>,
    /// Uids of pods deleted but still seen without a deletionTimestamp.
    deletes: BTreeSet<String>,
    /// When these expectations were set (for the timeout).
    set_at: Option<DateTime<Utc>>,
}

impl Expectations {
    /// Expectations for the given creations (pod names) and deletions (pod
    /// uids), set at `now`.
    pub fn new(
        creates: impl IntoIterator<Item = String>,
        deletes: impl IntoIterator<Item = String>,
        now: DateTime<Utc>,
    ) -> Self {
        Expectations {
            creates: creates.into_iter().collect(),
            deletes: deletes.into_iter().collect(),
            set_at: Some(now),
        }
    }

    /// Nothing is pending.
    pub fn fulfilled(&self) -> bool {
        self.creates.is_empty() && self.deletes.is_empty()
    }

    /// Whether the controller may act: everything was observed, or the
    /// expectations are older than [`EXPECTATIONS_TIMEOUT`].
    pub fn satisfied(&self, now: DateTime<Utc>) -> bool {
        self.fulfilled() || self.set_at.is_none_or(|t| now - t > EXPECTATIONS_TIMEOUT)
    }

    /// How long until unmet expectations expire; `None` when nothing is
    /// pending.
    pub fn expires_in(&self, now: DateTime<Utc>) -> Option<Duration> {
        if self.fulfilled() {
            return None;
        }
        let set_at = self.set_at?;
        Some((set_at + EXPECTATIONS_TIMEOUT - now).max(Duration::zero()))
    }

    /// Lowers the expectations by what `pods` (the controller's snapshot)
    /// shows.
    pub fn observe<'a>(&mut self, pods: impl IntoIterator<Item = &'a Pod>) {
        if self.fulfilled() {
            return;
        }
        let mut live = BTreeSet::new();
        for p in pods {
            self.creates.remove(&p.metadata.name);
            if p.metadata.deletion_timestamp.is_none() {
                live.insert(p.metadata.uid.as_str());
            }
        }
        self.deletes.retain(|uid| live.contains(uid.as_str()));
    }

    /// The creation of `name` was not made (failed or skipped): stop
    /// waiting for it.
    pub fn creation_failed(&mut self, name: &str) {
        self.creates.remove(name);
    }

    /// The deletion of `uid` failed: stop waiting for it.
    pub fn deletion_failed(&mut self, uid: &str) {
        self.deletes.remove(uid);
    }

    /// Pod names still expected to appear.
    pub fn pending_creates(&self) -> impl Iterator<Item = &str> {
        self.creates.iter().map(String::as_str)
    }

    /// Pod uids still expected to go.
    pub fn pending_deletes(&self) -> impl Iterator<Item = &str> {
        self.deletes.iter().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Time;

    fn pod(name: &str, uid: &str, deleting: bool) -> Pod {
        let mut p = Pod::default();
        p.metadata.name = name.into();
        p.metadata.uid = uid.into();
        if deleting {
            p.metadata.deletion_timestamp = Time::from_unix(1);
        }
        p
    }

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap()
    }

    #[test]
    fn lowered_by_snapshots() {
        let mut e = Expectations::new(
            ["a".to_string(), "b".to_string()],
            ["u1".to_string(), "u2".to_string()],
            t(0),
        );
        assert!(!e.satisfied(t(1)));
        // The snapshot shows pod a and the deletion of u1 in progress.
        e.observe(&[
            pod("a", "ua", false),
            pod("x", "u1", true),
            pod("y", "u2", false),
        ]);
        assert_eq!(e.pending_creates().collect::<Vec<_>>(), ["b"]);
        assert_eq!(e.pending_deletes().collect::<Vec<_>>(), ["u2"]);
        // b failed to be created; u2 disappears from the snapshot.
        e.creation_failed("b");
        e.observe(&[pod("a", "ua", false)]);
        assert!(e.fulfilled());
        assert!(e.satisfied(t(2)));
    }

    #[test]
    fn expire_after_the_timeout() {
        let e = Expectations::new(["a".to_string()], [], t(0));
        assert!(!e.satisfied(t(300)));
        assert!(e.satisfied(t(301)));
        assert!(Expectations::default().satisfied(t(0)));
        let mut d = Expectations::new([], ["u".to_string()], t(0));
        d.deletion_failed("u");
        assert!(d.satisfied(t(0)));
    }
}
