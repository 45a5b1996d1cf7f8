//! What the agent currently knows about each of its pods, for the parts
//! that serve requests (logs, stats): shared, read-mostly, updated by the
//! pod workers after every change.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;

use crate::api::Time;
use crate::api::core::PodStatus;

/// One pod as the agent last reported it.
#[derive(Clone, Debug, Default)]
pub struct PodSummary {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub created: Option<Time>,
    pub labels: std::collections::BTreeMap<String, String>,
    /// Init and app container names, in spec order.
    pub containers: Vec<String>,
    /// The status the agent computed last.
    pub status: PodStatus,
    /// Whether the pod's cgroups exist (it has or may have sandboxes).
    pub active: bool,
}

/// The pods of this node by uid.
#[derive(Clone, Default)]
pub struct PodIndex {
    pods: Arc<RwLock<HashMap<String, Arc<PodSummary>>>>,
}

impl PodIndex {
    pub fn publish(&self, summary: PodSummary) {
        self.pods
            .write()
            .insert(summary.uid.clone(), Arc::new(summary));
    }

    pub fn remove(&self, uid: &str) {
        self.pods.write().remove(uid);
    }

    pub fn get(&self, uid: &str) -> Option<Arc<PodSummary>> {
        self.pods.read().get(uid).cloned()
    }

    /// The pod called `namespace/name`; the newest one if an old pod of
    /// that name is still being cleaned up.
    pub fn find(&self, namespace: &str, name: &str) -> Option<Arc<PodSummary>> {
        self.pods
            .read()
            .values()
            .filter(|p| p.namespace == namespace && p.name == name)
            .max_by_key(|p| p.created)
            .cloned()
    }

    pub fn all(&self) -> Vec<Arc<PodSummary>> {
        self.pods.read().values().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.pods.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_prefers_the_newest_pod_of_a_name() {
        let idx = PodIndex::default();
        for (uid, created) in [("old", 1), ("new", 5)] {
            idx.publish(PodSummary {
                uid: uid.into(),
                namespace: "default".into(),
                name: "web".into(),
                created: Time::from_unix(created),
                ..Default::default()
            });
        }
        assert_eq!(idx.find("default", "web").unwrap().uid, "new");
        assert!(idx.find("other", "web").is_none());
        idx.remove("new");
        assert_eq!(idx.find("default", "web").unwrap().uid, "old");
        assert_eq!(idx.len(), 1);
    }
}
