//! The scheduler's cache: one [`NodeInfo`] per node and the placement of
//! every bound or assumed pod, updated incrementally from watch events and
//! from the scheduler's own decisions (Kubernetes' `internal/cache`).
//!
//! Pod lifecycle in the cache, as in Kubernetes:
//! - [`Cache::assume_pod`]: the scheduler chose a node and is about to bind;
//!   the pod counts against the node at once so the next decision sees it.
//! - [`Cache::add_pod`] / [`Cache::update_pod`]: the API reports the pod
//!   bound (confirming an assumption, or a pod bound by someone else).
//! - [`Cache::forget_pod`]: the binding failed; the assumption is undone.
//! - [`Cache::remove_pod`]: the pod is gone (deleted or terminal).
//!
//! Pods may name a node the cache does not know (yet, or any more): their
//! usage is parked and given to the node when it is added.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::atomic::AtomicUsize;

use crate::api::core::{Node, Pod};

use super::framework::{NodeInfo, OwnerId, PodInfo, PodUsage, Usage};

/// Why a cache operation was refused; the cache is unchanged when one is returned.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CacheError {
    #[error("node {name:?} is not in the scheduler cache")]
    NodeNotFound { name: String },
    #[error("pod {key:?} is not in the scheduler cache")]
    PodNotFound { key: String },
    #[error("pod {key:?} is already in the scheduler cache on node {node:?}")]
    PodExists { key: String, node: String },
    #[error(
        "pod {key:?} was not assumed (it is bound to node {node:?}), so it cannot be forgotten"
    )]
    PodNotAssumed { key: String, node: String },
    #[error("pod {key:?} has no spec.nodeName: only bound pods enter the cache through add_pod")]
    PodNotBound { key: String },
}

#[derive(Clone, Debug)]
struct PodEntry {
    node: String,
    usage: PodUsage,
    /// Placed by this scheduler and not yet confirmed by the API.
    assumed: bool,
}

/// Nodes and pod placements; see the module documentation.
#[derive(Debug, Default)]
pub struct Cache {
    nodes: Vec<NodeInfo>,
    index: HashMap<String, usize>,
    /// Usage of pods whose node is not in the cache.
    parked: HashMap<String, Usage>,
    /// Placed pods by [`PodInfo::cache_key`].
    pods: HashMap<String, PodEntry>,
    owners: HashMap<String, OwnerId>,
    /// Per owner id: its uid and how many cached pods it has.
    owner_slots: Vec<(String, u32)>,
    free_owner_ids: Vec<u32>,
    /// Where the next partial node search starts, so every node gets its
    /// turn (Kubernetes' `nextStartNodeIndex`).
    pub(crate) next_start: AtomicUsize,
}

impl Cache {
    /// An empty cache.
    pub fn new() -> Self {
        Cache::default()
    }

    /// A cache holding `nodes` and the bound, non-terminal ones of `pods`
    /// (what the binding loop builds from its initial lists).
    pub fn from_objects<'a>(
        nodes: impl IntoIterator<Item = &'a Node>,
        pods: impl IntoIterator<Item = &'a Pod>,
    ) -> Self {
        let mut cache = Cache::new();
        for n in nodes {
            cache.add_node(n);
        }
        for p in pods {
            if !p.spec.node_name.is_empty() {
                // Only PodNotBound can fail, and unbound pods are skipped.
                let _ = cache.add_pod(p);
            }
        }
        cache
    }

    /// Adds a node, or replaces what the cache knows of it while keeping
    /// the usage of its pods.
    pub fn add_node(&mut self, node: &Node) {
        let name = &node.metadata.name;
        match self.index.get(name) {
            Some(&i) => {
                let usage = std::mem::take(&mut self.nodes[i].usage);
                self.nodes[i] = NodeInfo::from_node(node).with_usage(usage);
            }
            None => {
                let usage = self.parked.remove(name).unwrap_or_default();
                self.index.insert(name.clone(), self.nodes.len());
                self.nodes.push(NodeInfo::from_node(node).with_usage(usage));
            }
        }
    }

    /// Same as [`Cache::add_node`]: node updates replace labels, taints,
    /// conditions and allocatable.
    pub fn update_node(&mut self, node: &Node) {
        self.add_node(node);
    }

    /// Removes a node. Its pods stay in the cache until they are removed,
    /// and count again if the node comes back.
    pub fn remove_node(&mut self, name: &str) -> Result<(), CacheError> {
        let i = self
            .index
            .remove(name)
            .ok_or_else(|| CacheError::NodeNotFound {
                name: name.to_string(),
            })?;
        let removed = self.nodes.swap_remove(i);
        if let Some(moved) = self.nodes.get(i) {
            self.index.insert(moved.name().to_string(), i);
        }
        if removed.usage.pods > 0 {
            self.parked.insert(name.to_string(), removed.usage);
        }
        Ok(())
    }

    /// Counts `pod` against `node` before the API confirms the binding.
    pub fn assume_pod(&mut self, pod: &PodInfo, node: &str) -> Result<(), CacheError> {
        let key = pod.cache_key();
        if let Some(e) = self.pods.get(&key) {
            return Err(CacheError::PodExists {
                key,
                node: e.node.clone(),
            });
        }
        if !self.index.contains_key(node) {
            return Err(CacheError::NodeNotFound {
                name: node.to_string(),
            });
        }
        self.place(key, pod, node, true);
        Ok(())
    }

    /// Undoes [`Cache::assume_pod`] after a failed binding.
    pub fn forget_pod(&mut self, pod: &PodInfo) -> Result<(), CacheError> {
        let key = pod.cache_key();
        match self.pods.get(&key) {
            None => Err(CacheError::PodNotFound { key }),
            Some(e) if !e.assumed => Err(CacheError::PodNotAssumed {
                key,
                node: e.node.clone(),
            }),
            Some(_) => {
                self.unplace(&key);
                Ok(())
            }
        }
    }

    /// Records a pod the API reports bound: confirms an assumed pod (moving
    /// it if the API bound it elsewhere) or adds one bound by someone else.
    /// A terminal pod releases its resources instead.
    pub fn add_pod(&mut self, pod: &Pod) -> Result<(), CacheError> {
        let info = PodInfo::from_pod(pod);
        let key = info.cache_key();
        if pod.spec.node_name.is_empty() {
            return Err(CacheError::PodNotBound { key: info.key() });
        }
        if self.pods.contains_key(&key) {
            self.unplace(&key);
        }
        if !pod.is_terminal() {
            self.place(key, &info, &pod.spec.node_name, false);
        }
        Ok(())
    }

    /// Same as [`Cache::add_pod`]: picks up changed requests, owner or phase.
    pub fn update_pod(&mut self, pod: &Pod) -> Result<(), CacheError> {
        self.add_pod(pod)
    }

    /// Releases a deleted pod.
    pub fn remove_pod(&mut self, pod: &Pod) -> Result<(), CacheError> {
        let key = PodInfo::from_pod(pod).cache_key();
        if self.unplace(&key) {
            Ok(())
        } else {
            Err(CacheError::PodNotFound { key })
        }
    }

    /// The nodes, in the order the scheduler visits them.
    pub fn nodes(&self) -> &[NodeInfo] {
        &self.nodes
    }

    /// One node by name.
    pub fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.index.get(name).map(|&i| &self.nodes[i])
    }

    pub(crate) fn node_index(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    /// The node a pod is placed on, by [`PodInfo::cache_key`].
    pub fn pod_node(&self, key: &str) -> Option<&str> {
        self.pods.get(key).map(|e| e.node.as_str())
    }

    /// Whether the pod is assumed and not yet confirmed.
    pub fn is_assumed(&self, key: &str) -> bool {
        self.pods.get(key).is_some_and(|e| e.assumed)
    }

    /// How many pods are placed (bound or assumed).
    pub fn pod_count(&self) -> usize {
        self.pods.len()
    }

    /// The interned id of a controller owner uid, if any cached pod has it.
    pub fn owner_id(&self, uid: &str) -> Option<OwnerId> {
        self.owners.get(uid).copied()
    }

    fn place(&mut self, key: String, pod: &PodInfo, node: &str, assumed: bool) {
        let usage = PodUsage {
            requests: pod.requests,
            non_zero_requests: pod.non_zero_requests,
            owner: pod.owner_uid.as_deref().map(|uid| self.intern_owner(uid)),
        };
        self.usage_mut(node).apply(&usage, 1);
        self.pods.insert(
            key,
            PodEntry {
                node: node.to_string(),
                usage,
                assumed,
            },
        );
    }

    /// Removes a placed pod; false when it was not placed.
    fn unplace(&mut self, key: &str) -> bool {
        let Some(e) = self.pods.remove(key) else {
            return false;
        };
        self.usage_mut(&e.node).apply(&e.usage, -1);
        if let Entry::Occupied(p) = self.parked.entry(e.node.clone())
            && p.get().pods == 0
        {
            p.remove();
        }
        if let Some(o) = e.usage.owner {
            self.release_owner(o);
        }
        true
    }

    fn usage_mut(&mut self, node: &str) -> &mut Usage {
        match self.index.get(node) {
            Some(&i) => &mut self.nodes[i].usage,
            None => self.parked.entry(node.to_string()).or_default(),
        }
    }

    fn intern_owner(&mut self, uid: &str) -> OwnerId {
        if let Some(&id) = self.owners.get(uid) {
            self.owner_slots[id.0 as usize].1 += 1;
            return id;
        }
        let id = match self.free_owner_ids.pop() {
            Some(i) => {
                self.owner_slots[i as usize] = (uid.to_string(), 1);
                OwnerId(i)
            }
            None => {
                self.owner_slots.push((uid.to_string(), 1));
                OwnerId((self.owner_slots.len() - 1) as u32)
            }
        };
        self.owners.insert(uid.to_string(), id);
        id
    }

    fn release_owner(&mut self, id: OwnerId) {
        let Some(slot) = self.owner_slots.get_mut(id.0 as usize) else {
            return;
        };
        slot.1 = slot.1.saturating_sub(1);
        if slot.1 == 0 {
            let uid = std::mem::take(&mut slot.0);
            self.owners.remove(&uid);
            self.free_owner_ids.push(id.0);
        }
    }

    /// Recomputes every node's usage from the placed pods and compares it
    /// with the incremental bookkeeping (for tests).
    #[cfg(test)]
    pub(crate) fn check_consistency(&self) {
        let mut expected: HashMap<&str, Usage> = HashMap::new();
        for e in self.pods.values() {
            expected
                .entry(e.node.as_str())
                .or_default()
                .apply(&e.usage, 1);
        }
        for n in &self.nodes {
            let want = expected.remove(n.name()).unwrap_or_default();
            assert_eq!(n.usage, want, "usage of node {}", n.name());
        }
        for (name, want) in expected {
            assert_eq!(self.parked.get(name), Some(&want), "parked usage of {name}");
        }
        for (i, n) in self.nodes.iter().enumerate() {
            assert_eq!(self.index.get(n.name()), Some(&i));
        }
        assert_eq!(self.index.len(), self.nodes.len());
        let live: usize = self.owner_slots.iter().filter(|s| s.1 > 0).count();
        assert_eq!(live, self.owners.len());
        for n in &self.nodes {
            for o in n.usage.owners() {
                assert!(self.owner_slots[o.0 as usize].1 > 0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::plugins::test_util::{node, pod};

    #[test]
    fn assume_confirm_forget_remove() {
        let mut c = Cache::from_objects([&node("a").obj(), &node("b").obj()], []);
        let p = pod("p").request("1", "1Gi").owner("rs1").build();
        c.assume_pod(&p, "a").unwrap();
        assert!(c.is_assumed("uid-p"));
        assert_eq!(c.node("a").unwrap().requested().milli_cpu, 1000);
        assert_eq!(
            c.assume_pod(&p, "b"),
            Err(CacheError::PodExists {
                key: "uid-p".into(),
                node: "a".into()
            })
        );
        c.forget_pod(&p).unwrap();
        assert_eq!(c.node("a").unwrap().requested().milli_cpu, 0);
        assert_eq!(c.owner_id("rs1"), None);
        assert!(matches!(
            c.forget_pod(&p),
            Err(CacheError::PodNotFound { .. })
        ));

        // Assumed on a, the API reports it bound on b: it moves.
        c.assume_pod(&p, "a").unwrap();
        let bound = pod("p")
            .request("1", "1Gi")
            .owner("rs1")
            .node_name("b")
            .obj();
        c.add_pod(&bound).unwrap();
        assert!(!c.is_assumed("uid-p"));
        assert_eq!(c.pod_node("uid-p"), Some("b"));
        assert_eq!(c.node("a").unwrap().pod_count(), 0);
        assert_eq!(c.node("b").unwrap().pod_count(), 1);
        let owner = c.owner_id("rs1").unwrap();
        assert_eq!(c.node("b").unwrap().owner_count(owner), 1);
        assert!(matches!(
            c.forget_pod(&p),
            Err(CacheError::PodNotAssumed { .. })
        ));
        c.check_consistency();

        c.remove_pod(&bound).unwrap();
        assert_eq!(c.pod_count(), 0);
        assert!(matches!(
            c.remove_pod(&bound),
            Err(CacheError::PodNotFound { .. })
        ));
        c.check_consistency();
    }

    #[test]
    fn terminal_and_unbound_pods() {
        let mut c = Cache::from_objects([&node("a").obj()], []);
        let unbound = pod("p").obj();
        assert!(matches!(
            c.add_pod(&unbound),
            Err(CacheError::PodNotBound { .. })
        ));
        let mut running = pod("p").request("500m", "").node_name("a").obj();
        c.add_pod(&running).unwrap();
        assert_eq!(c.node("a").unwrap().requested().milli_cpu, 500);
        running.status.phase = "Succeeded".into();
        c.update_pod(&running).unwrap();
        assert_eq!(c.node("a").unwrap().requested().milli_cpu, 0);
        assert_eq!(c.pod_count(), 0);
        c.check_consistency();
    }

    #[test]
    fn pods_survive_their_node_going_away() {
        let mut c = Cache::new();
        // The pod's bind event arrives before its node.
        let p = pod("p").request("1", "").node_name("a").obj();
        c.add_pod(&p).unwrap();
        c.add_node(&node("a").obj());
        assert_eq!(c.node("a").unwrap().requested().milli_cpu, 1000);
        c.add_node(&node("b").obj());
        c.remove_node("a").unwrap();
        assert!(c.node("a").is_none());
        assert_eq!(c.node("b").unwrap().pod_count(), 0);
        c.check_consistency();
        c.add_node(&node("a").obj());
        assert_eq!(c.node("a").unwrap().pod_count(), 1);
        assert_eq!(
            c.remove_node("zzz"),
            Err(CacheError::NodeNotFound { name: "zzz".into() })
        );
        // Updates keep usage but take new allocatable.
        c.update_node(&node("a").capacity("8", "8Gi", "110").obj());
        assert_eq!(c.node("a").unwrap().allocatable().milli_cpu, 8000);
        assert_eq!(c.node("a").unwrap().requested().milli_cpu, 1000);
        c.remove_pod(&p).unwrap();
        c.check_consistency();
        assert!(matches!(
            c.assume_pod(&pod("q").build(), "nowhere"),
            Err(CacheError::NodeNotFound { .. })
        ));
    }

    #[test]
    fn owner_ids_are_reused() {
        let mut c = Cache::from_objects([&node("a").obj()], []);
        let p1 = pod("p1").owner("rs1").build();
        c.assume_pod(&p1, "a").unwrap();
        let id1 = c.owner_id("rs1").unwrap();
        c.forget_pod(&p1).unwrap();
        let p2 = pod("p2").owner("rs2").build();
        c.assume_pod(&p2, "a").unwrap();
        assert_eq!(c.owner_id("rs2"), Some(id1));
        assert_eq!(c.node("a").unwrap().owner_count(id1), 1);
        c.check_consistency();
    }
}
