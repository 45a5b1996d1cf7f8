//! The garbage collector (Kubernetes' `pkg/controller/garbagecollector`)
//! over an ownership graph.
//!
//! The executor keeps a [`Graph`] of every object it watches (uid,
//! identity, ownerReferences, deletionTimestamp, finalizers) and plans the
//! objects the graph says changed ([`plan_item`]), or all of them
//! ([`plan_all`]). For one object:
//! - **background**: an object none of whose owners exists any more is
//!   deleted; owners are identified by uid, so an ownerReference naming an
//!   object that was deleted and recreated under the same name is
//!   dangling;
//! - **owners partly gone**: references to absent owners (and to owners
//!   being deleted in the foreground) are removed when a live owner
//!   remains;
//! - **foreground**: an object being deleted with the `foregroundDeletion`
//!   finalizer keeps it while dependents with `blockOwnerDeletion` exist;
//!   its dependents are deleted (in the foreground themselves when they
//!   have dependents, which makes chains such as Deployment -> ReplicaSet
//!   -> Pod go from the leaves up); once none blocks, the finalizer goes;
//! - **orphan**: an object being deleted with the `orphan` finalizer has
//!   its dependents' references to it removed, then the finalizer.
//!
//! The graph is built from watches and may lag the store. Before deleting
//! an object because owners are absent, the executor confirms with a live
//! GET that each owner in [`GcPlan::verify_absent`] is really gone (not
//! found, or a different uid), as Kubernetes does; deletes also carry the
//! uid and resourceVersion the decision was made on.

use std::collections::{BTreeMap, BTreeSet};

use crate::api::{ObjectMeta, OwnerReference};

use super::plan::{Action, MetadataPatch, ObjectRef, Plan, Preconditions, Propagation};

/// The finalizer of an object deleted with `propagationPolicy: Foreground`.
pub const FOREGROUND_FINALIZER: &str = "foregroundDeletion";
/// The finalizer of an object deleted with `propagationPolicy: Orphan`.
pub const ORPHAN_FINALIZER: &str = "orphan";

/// One object as the garbage collector sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GcNode {
    pub object: ObjectRef,
    pub resource_version: String,
    pub owner_references: Vec<OwnerReference>,
    /// Whether the object has a deletionTimestamp.
    pub deleting: bool,
    pub finalizers: Vec<String>,
}

impl GcNode {
    /// The node of an object of `api_version`/`kind` with `meta`.
    pub fn new(api_version: &str, kind: &str, meta: &ObjectMeta) -> Self {
        GcNode {
            object: ObjectRef {
                api_version: api_version.into(),
                kind: kind.into(),
                namespace: meta.namespace.clone(),
                name: meta.name.clone(),
                uid: meta.uid.clone(),
            },
            resource_version: meta.resource_version.clone(),
            owner_references: meta.owner_references.clone(),
            deleting: meta.deletion_timestamp.is_some(),
            finalizers: meta.finalizers.clone(),
        }
    }

    fn has_finalizer(&self, f: &str) -> bool {
        self.finalizers.iter().any(|x| x == f)
    }

    /// Being deleted in the foreground (waiting for its dependents).
    pub fn deleting_dependents(&self) -> bool {
        self.deleting && self.has_finalizer(FOREGROUND_FINALIZER)
    }
}

/// The API group of an `apiVersion` (`apps/v1` -> `apps`, `v1` -> ``).
fn group(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(g, _)| g)
}

/// The lookup key of an object: group, kind, namespace, name.
type NameKey = (String, String, String, String);

/// The ownership graph the executor maintains from watches.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    nodes: BTreeMap<String, GcNode>,
    by_name: BTreeMap<NameKey, String>,
    /// owner uid -> uids of objects that reference it.
    dependents: BTreeMap<String, BTreeSet<String>>,
    /// (group, kind) of every watched kind: references to other kinds are
    /// never taken as dangling.
    kinds: BTreeSet<(String, String)>,
}

impl Graph {
    /// Declares that objects of `api_version`/`kind` are watched.
    pub fn track_kind(&mut self, api_version: &str, kind: &str) {
        self.kinds
            .insert((group(api_version).to_string(), kind.to_string()));
    }

    fn name_key(o: &ObjectRef) -> NameKey {
        (
            group(&o.api_version).to_string(),
            o.kind.clone(),
            o.namespace.clone(),
            o.name.clone(),
        )
    }

    /// Adds or replaces a node (a watch event).
    pub fn upsert(&mut self, node: GcNode) {
        self.remove(&node.object.uid.clone());
        self.track_kind(&node.object.api_version, &node.object.kind);
        let uid = node.object.uid.clone();
        self.by_name
            .insert(Self::name_key(&node.object), uid.clone());
        for r in &node.owner_references {
            self.dependents
                .entry(r.uid.clone())
                .or_default()
                .insert(uid.clone());
        }
        self.nodes.insert(uid, node);
    }

    /// Removes a node (a delete event).
    pub fn remove(&mut self, uid: &str) {
        let Some(node) = self.nodes.remove(uid) else {
            return;
        };
        let key = Self::name_key(&node.object);
        if self.by_name.get(&key).map(String::as_str) == Some(uid) {
            self.by_name.remove(&key);
        }
        for r in &node.owner_references {
            if let Some(set) = self.dependents.get_mut(&r.uid) {
                set.remove(uid);
                if set.is_empty() {
                    self.dependents.remove(&r.uid);
                }
            }
        }
    }

    /// The node with `uid`.
    pub fn get(&self, uid: &str) -> Option<&GcNode> {
        self.nodes.get(uid)
    }

    /// Every node's uid.
    pub fn uids(&self) -> impl Iterator<Item = &str> {
        self.nodes.keys().map(String::as_str)
    }

    /// The nodes whose ownerReferences name `uid`.
    pub fn dependents_of(&self, uid: &str) -> Vec<&GcNode> {
        self.dependents
            .get(uid)
            .into_iter()
            .flatten()
            .filter_map(|d| self.nodes.get(d))
            .collect()
    }

    /// The owner `r` of `dependent`, if it exists with the referenced uid.
    /// `Err(())` when the owner's kind is not watched (unknown).
    fn owner(&self, dependent: &GcNode, r: &OwnerReference) -> Result<Option<&GcNode>, ()> {
        let g = group(&r.api_version).to_string();
        if !self.kinds.contains(&(g.clone(), r.kind.clone())) {
            return Err(());
        }
        // Namespaced owners share the dependent's namespace; otherwise the
        // owner is cluster-scoped.
        for ns in [dependent.object.namespace.as_str(), ""] {
            let key = (g.clone(), r.kind.clone(), ns.to_string(), r.name.clone());
            if let Some(uid) = self.by_name.get(&key) {
                return Ok(self.nodes.get(uid).filter(|n| n.object.uid == r.uid));
            }
        }
        Ok(None)
    }
}

/// A plan plus the owners whose absence justifies it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GcPlan {
    pub plan: Plan,
    /// Owners the graph says are gone; confirm each with a live GET before
    /// carrying out the plan, and drop the plan if one exists after all.
    pub verify_absent: Vec<ObjectRef>,
}

fn delete(node: &GcNode, propagation: Propagation, reason: &'static str) -> Action {
    Action::Delete {
        target: node.object.clone(),
        preconditions: Preconditions {
            uid: node.object.uid.clone(),
            resource_version: node.resource_version.clone(),
        },
        propagation: Some(propagation),
        reason,
        event: None,
    }
}

fn guard(node: &GcNode) -> MetadataPatch {
    MetadataPatch {
        uid: node.object.uid.clone(),
        resource_version: node.resource_version.clone(),
        ..Default::default()
    }
}

fn remove_finalizer(node: &GcNode, f: &str) -> Action {
    let mut patch = guard(node);
    patch.finalizers = Some(
        node.finalizers
            .iter()
            .filter(|x| *x != f)
            .cloned()
            .collect(),
    );
    Action::Patch {
        target: node.object.clone(),
        patch,
        event: None,
    }
}

/// Plans the garbage collection of the object with `uid`.
pub fn plan_item(graph: &Graph, uid: &str) -> GcPlan {
    let Some(node) = graph.get(uid) else {
        return GcPlan::default();
    };
    let mut out = GcPlan {
        plan: Plan::new(node.object.clone()),
        verify_absent: Vec::new(),
    };
    let actions = &mut out.plan.actions;
    if node.deleting {
        if node.has_finalizer(FOREGROUND_FINALIZER) {
            let blocking = graph.dependents_of(uid).into_iter().any(|d| {
                d.owner_references
                    .iter()
                    .any(|r| r.uid == uid && r.block_owner_deletion == Some(true))
            });
            if !blocking {
                actions.push(remove_finalizer(node, FOREGROUND_FINALIZER));
            }
        } else if node.has_finalizer(ORPHAN_FINALIZER) {
            for d in graph.dependents_of(uid) {
                let mut patch = guard(d);
                patch.owner_references = Some(
                    d.owner_references
                        .iter()
                        .filter(|r| r.uid != uid)
                        .cloned()
                        .collect(),
                );
                actions.push(Action::Patch {
                    target: d.object.clone(),
                    patch,
                    event: None,
                });
            }
            actions.push(remove_finalizer(node, ORPHAN_FINALIZER));
        }
        return out;
    }
    if node.owner_references.is_empty() {
        return out;
    }
    let mut solid = Vec::new();
    let mut dangling = Vec::new();
    let mut waiting = Vec::new();
    for r in &node.owner_references {
        match graph.owner(node, r) {
            // An owner of a kind nobody watches cannot be checked: keep it.
            Err(()) => solid.push(r),
            Ok(None) => dangling.push(r),
            Ok(Some(o)) if o.deleting_dependents() => waiting.push(r),
            Ok(Some(_)) => solid.push(r),
        }
    }
    let absent = |refs: &[&OwnerReference]| -> Vec<ObjectRef> {
        refs.iter()
            .map(|r| ObjectRef::from_owner(r, &node.object.namespace))
            .collect()
    };
    if !solid.is_empty() {
        if dangling.is_empty() && waiting.is_empty() {
            return out;
        }
        // Drop the references to owners that are gone or going.
        let gone: BTreeSet<&str> = dangling
            .iter()
            .chain(&waiting)
            .map(|r| r.uid.as_str())
            .collect();
        let mut patch = guard(node);
        patch.owner_references = Some(
            node.owner_references
                .iter()
                .filter(|r| !gone.contains(r.uid.as_str()))
                .cloned()
                .collect(),
        );
        actions.push(Action::Patch {
            target: node.object.clone(),
            patch,
            event: None,
        });
        out.verify_absent = absent(&dangling);
        return out;
    }
    let dependents = graph.dependents_of(uid);
    if !waiting.is_empty() && !dependents.is_empty() {
        // A dependent that itself waits on us would deadlock a cycle: make
        // our references non-blocking first.
        if dependents.iter().any(|d| d.deleting_dependents()) {
            let mut patch = guard(node);
            patch.owner_references = Some(
                node.owner_references
                    .iter()
                    .map(|r| {
                        let mut r = r.clone();
                        if waiting.iter().any(|w| w.uid == r.uid) {
                            r.block_owner_deletion = Some(false);
                        }
                        r
                    })
                    .collect(),
            );
            actions.push(Action::Patch {
                target: node.object.clone(),
                patch,
                event: None,
            });
        }
        actions.push(delete(
            node,
            Propagation::Foreground,
            "owner deleted in the foreground",
        ));
    } else {
        let policy = if node.has_finalizer(ORPHAN_FINALIZER) {
            Propagation::Orphan
        } else if node.has_finalizer(FOREGROUND_FINALIZER) {
            Propagation::Foreground
        } else {
            Propagation::Background
        };
        actions.push(delete(node, policy, "owners are gone"));
    }
    out.verify_absent = absent(&dangling);
    out
}

/// Plans every object of the graph; only plans with actions are returned.
pub fn plan_all(graph: &Graph) -> Vec<GcPlan> {
    graph
        .uids()
        .map(|uid| plan_item(graph, uid))
        .filter(|p| !p.plan.actions.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::apps::{Deployment, ReplicaSet};
    use crate::api::core::Pod;
    use crate::controllers::plan::Object;
    use crate::controllers::sim::World;

    /// The graph of everything in the world.
    fn graph_of(w: &World) -> Graph {
        let mut g = Graph::default();
        for (v, k) in [
            ("v1", "Pod"),
            ("apps/v1", "ReplicaSet"),
            ("apps/v1", "Deployment"),
        ] {
            g.track_kind(v, k);
        }
        for o in &w.objects {
            g.upsert(GcNode::new(&o.api_version(), o.kind(), o.meta()));
        }
        g
    }

    /// One garbage-collector pass with the executor's live check.
    fn collect(w: &mut World) -> usize {
        let plans = plan_all(&graph_of(w));
        let mut n = 0;
        for p in plans {
            let gone = p.verify_absent.iter().all(|o| {
                !w.objects
                    .iter()
                    .any(|x| x.kind() == o.kind && x.meta().name == o.name && x.meta().uid == o.uid)
            });
            if gone && w.apply(&p.plan).is_ok() {
                n += 1;
            }
        }
        w.terminate_pods();
        n
    }

    fn collect_all(w: &mut World) {
        for _ in 0..10 {
            collect(w);
        }
    }

    /// Deployment `web` -> ReplicaSet `web-1` -> pods `p0`, `p1`.
    fn chain() -> World {
        let mut w = World::new();
        let d = w.create(Deployment {
            metadata: ObjectMeta {
                name: "web".into(),
                namespace: "default".into(),
                ..Default::default()
            },
            ..Default::default()
        });
        let d = d.unwrap();
        let rs = w
            .create(ReplicaSet {
                metadata: ObjectMeta {
                    name: "web-1".into(),
                    namespace: "default".into(),
                    owner_references: vec![d.controller_ref()],
                    ..Default::default()
                },
                ..Default::default()
            })
            .unwrap();
        for i in 0..2 {
            w.create(Pod {
                metadata: ObjectMeta {
                    name: format!("p{i}"),
                    namespace: "default".into(),
                    owner_references: vec![rs.controller_ref()],
                    ..Default::default()
                },
                ..Default::default()
            })
            .unwrap();
        }
        w
    }

    fn delete_deployment(w: &mut World, propagation: Propagation) {
        let d = w.deployment("web").unwrap();
        let mut a = Action::delete(ObjectRef::of(&d), "user");
        if let Action::Delete { propagation: p, .. } = &mut a {
            *p = Some(propagation);
        }
        w.apply(&Plan {
            actions: vec![a],
            ..Default::default()
        })
        .unwrap();
    }

    fn kinds(w: &World) -> Vec<String> {
        let mut v: Vec<String> = w
            .objects
            .iter()
            .map(|o| format!("{}/{}", o.kind(), o.meta().name))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn background_deletion_cascades() {
        let mut w = chain();
        delete_deployment(&mut w, Propagation::Background);
        assert_eq!(kinds(&w), ["Pod/p0", "Pod/p1", "ReplicaSet/web-1"]);
        // First the ReplicaSet, whose owner is gone...
        let plans = plan_all(&graph_of(&w));
        assert_eq!(plans.len(), 1);
        assert_eq!(plans[0].verify_absent[0].name, "web");
        let Some(Action::Delete {
            target,
            propagation,
            preconditions,
            ..
        }) = plans[0].plan.actions.first()
        else {
            panic!()
        };
        assert_eq!(
            (target.name.as_str(), *propagation),
            ("web-1", Some(Propagation::Background))
        );
        assert!(!preconditions.resource_version.is_empty());
        collect(&mut w);
        // ...then its pods.
        collect_all(&mut w);
        assert!(kinds(&w).is_empty());
    }

    #[test]
    fn foreground_deletion_goes_leaves_first() {
        let mut w = chain();
        delete_deployment(&mut w, Propagation::Foreground);
        let d = w.deployment("web").unwrap();
        assert!(d.metadata.deletion_timestamp.is_some());
        // The ReplicaSet has dependents: it is deleted in the foreground too.
        let plans = plan_all(&graph_of(&w));
        let rs_plan = plans
            .iter()
            .find(|p| p.plan.subject.name == "web-1")
            .unwrap();
        assert!(matches!(
            rs_plan.plan.actions[0],
            Action::Delete {
                propagation: Some(Propagation::Foreground),
                ..
            }
        ));
        // The Deployment waits for its blocking ReplicaSet.
        assert!(plans.iter().all(|p| p.plan.subject.name != "web"));
        let mut order = Vec::new();
        for _ in 0..10 {
            let before = kinds(&w);
            collect(&mut w);
            for gone in before.iter().filter(|k| !kinds(&w).contains(k)) {
                order.push(gone.clone());
            }
        }
        assert!(kinds(&w).is_empty(), "{:?}", kinds(&w));
        // Pods before the ReplicaSet before the Deployment.
        let pos = |k: &str| order.iter().position(|x| x == k).unwrap();
        assert!(pos("Pod/p0") < pos("ReplicaSet/web-1"));
        assert!(pos("Pod/p1") < pos("ReplicaSet/web-1"));
        assert!(pos("ReplicaSet/web-1") < pos("Deployment/web"));
    }

    #[test]
    fn orphan_deletion_keeps_dependents() {
        let mut w = chain();
        delete_deployment(&mut w, Propagation::Orphan);
        let plans = plan_all(&graph_of(&w));
        assert_eq!(plans.len(), 1);
        let actions = &plans[0].plan.actions;
        // The ReplicaSet's reference goes, then the finalizer.
        assert!(
            matches!(&actions[0], Action::Patch { target, patch, .. } if target.name == "web-1" && patch.owner_references == Some(vec![]))
        );
        assert!(
            matches!(&actions[1], Action::Patch { target, patch, .. } if target.name == "web" && patch.finalizers == Some(vec![]))
        );
        collect_all(&mut w);
        assert_eq!(kinds(&w), ["Pod/p0", "Pod/p1", "ReplicaSet/web-1"]);
        assert!(w.replica_sets()[0].metadata.owner_references.is_empty());
    }

    #[test]
    fn owners_are_matched_by_uid() {
        let mut w = chain();
        // The Deployment is replaced by a new one with the same name.
        let d = w.deployment("web").unwrap();
        w.objects.retain(|o| !matches!(o, Object::Deployment(_)));
        let mut again = d.clone();
        again.metadata.uid = String::new();
        w.create(again).unwrap();
        assert_ne!(w.deployment("web").unwrap().metadata.uid, d.metadata.uid);
        collect_all(&mut w);
        assert_eq!(kinds(&w), ["Deployment/web"]);
    }

    #[test]
    fn live_owners_keep_dependents_and_dangling_references_go() {
        let mut w = chain();
        let rs = w.replica_sets()[0].clone();
        let d = w.deployment("web").unwrap();
        // p0 also references a ReplicaSet that does not exist.
        let ghost = OwnerReference {
            api_version: "apps/v1".into(),
            kind: "ReplicaSet".into(),
            name: "ghost".into(),
            uid: "ghost-uid".into(),
            ..Default::default()
        };
        // And an owner of a kind nobody watches, which must be left alone.
        let unknown = OwnerReference {
            api_version: "example.com/v1".into(),
            kind: "Widget".into(),
            name: "w".into(),
            uid: "widget-uid".into(),
            ..Default::default()
        };
        w.edit("Pod", "default", "p0", |p: &mut Pod| {
            p.metadata.owner_references.push(ghost.clone());
            p.metadata.owner_references.push(unknown.clone());
        })
        .unwrap();
        let plans = plan_all(&graph_of(&w));
        assert_eq!(plans.len(), 1);
        let Action::Patch { target, patch, .. } = &plans[0].plan.actions[0] else {
            panic!()
        };
        assert_eq!(target.name, "p0");
        assert_eq!(patch.owner_references.as_ref().map(|r| r.len()), Some(2));
        assert_eq!(plans[0].verify_absent[0].name, "ghost");
        collect_all(&mut w);
        assert_eq!(kinds(&w).len(), 4);
        // A pod whose only owner is of an unwatched kind stays.
        w.edit("Pod", "default", "p1", |p: &mut Pod| {
            p.metadata.owner_references = vec![unknown.clone()];
        })
        .unwrap();
        assert!(plan_all(&graph_of(&w)).is_empty());
        assert_eq!(
            (rs.metadata.name.as_str(), d.metadata.name.as_str()),
            ("web-1", "web")
        );
    }

    #[test]
    fn the_executor_check_stops_stale_deletes() {
        let w = chain();
        let mut g = graph_of(&w);
        // The graph missed the Deployment, which still exists.
        let d = w.deployment("web").unwrap();
        g.remove(&d.metadata.uid);
        let p = plan_item(&g, &w.replica_sets()[0].metadata.uid);
        assert!(matches!(p.plan.actions[0], Action::Delete { .. }));
        let still_there = p.verify_absent.iter().any(|o| {
            o.uid == d.metadata.uid
                && w.deployment(&o.name)
                    .is_some_and(|x| x.metadata.uid == o.uid)
        });
        assert!(still_there, "the live check finds the owner");
        // Graph bookkeeping follows updates and removals.
        g.upsert(GcNode::new("apps/v1", "Deployment", &d.metadata));
        assert_eq!(g.dependents_of(&d.metadata.uid).len(), 1);
        g.remove(&w.replica_sets()[0].metadata.uid);
        assert!(g.dependents_of(&d.metadata.uid).is_empty());
    }
}
