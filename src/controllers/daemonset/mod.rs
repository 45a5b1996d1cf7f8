//! The DaemonSet controller (Kubernetes' `pkg/controller/daemon`).
//!
//! One planning ([`plan`]) mirrors `syncDaemonSet`:
//! 1. claims the namespace's ControllerRevisions and pods by selector;
//! 2. finds the ControllerRevision holding the current template (creating
//!    it, or raising its revision number after a rollback); its
//!    `controller-revision-hash` label marks up-to-date pods;
//! 3. if the expectations are satisfied, *manages* the nodes: a pod on
//!    every eligible node without one (node selector, required node
//!    affinity, taints against the template's tolerations plus the ones
//!    Kubernetes adds to daemon pods), deletes pods that finished, pods
//!    where the DaemonSet no longer fits (an untolerated NoExecute taint,
//!    a changed selector) and extra pods on a node; failed pods are deleted
//!    with a per-node exponential backoff (1 s to 15 min), as Kubernetes
//!    does to avoid fighting an agent that keeps rejecting them;
//! 4. when managing changed nothing, runs the RollingUpdate strategy
//!    (replace at most `maxUnavailable` old pods at once, or with
//!    `maxSurge` start a new pod next to an old one and delete the old one
//!    once the new one is available); OnDelete replaces pods only when
//!    someone deletes them;
//! 5. deletes the oldest unused ControllerRevisions beyond
//!    `revisionHistoryLimit`;
//! 6. writes the status counts.
//!
//! Pods are created with `spec.nodeName` preset, so they start without a
//! trip through the scheduler, and with the required node affinity
//! `matchFields metadata.name In [node]` that current Kubernetes uses
//! instead, so the pod says where it belongs either way. Pods bound to a
//! node that no longer exists are deleted (Kubernetes leaves that to its
//! pod garbage collector, which wasmk does not have).

pub mod nodes;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use rand::Rng;
use serde_json::Value;

use crate::api::ObjectMeta;
use crate::api::apps::{ControllerRevision, DaemonSet, DaemonSetStatus, ON_DELETE};
use crate::api::core::{Node, Pod, PodSpec, PodTemplateSpec, pod_ready};
use crate::api::quantity::IntOrString;
use crate::api::selector::LabelSelectorExpr;

use super::deployment::util::compute_hash;
use super::events::{EventSpec, pod_deleted};
use super::expectations::Expectations;
use super::plan::{Action, ObjectRef, Plan, PodBatch};
use super::pods::{
    Claim, adopt_patch, available_in, claim, generate_name, is_available, name_prefix,
    pod_from_template, release_patch,
};
use nodes::{add_daemon_tolerations, pin_to_node, should_run, target_node};

/// The label holding the template hash on ControllerRevisions and pods.
pub const REVISION_HASH_LABEL: &str = "controller-revision-hash";
/// Most pods the controller creates or deletes in one sync.
pub const DAEMON_BURST_REPLICAS: usize = 250;
const BACKOFF_INITIAL: Duration = Duration::seconds(1);
const BACKOFF_MAX: Duration = Duration::minutes(15);

/// Per-node backoff for deleting failed daemon pods
/// (`flowcontrol.Backoff`, 1 s doubling to 15 min). The executor keeps one
/// per DaemonSet and passes it back.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FailedPodBackoff {
    /// node -> (current delay, last failure seen).
    entries: BTreeMap<String, (Duration, DateTime<Utc>)>,
}

impl FailedPodBackoff {
    /// How long the node is still in backoff at `now`, if it is.
    pub fn remaining(&self, node: &str, now: DateTime<Utc>) -> Option<Duration> {
        let (delay, last) = self.entries.get(node)?;
        let left = *last + *delay - now;
        (left > Duration::zero()).then_some(left)
    }

    /// Records a failure on `node` at `now`, doubling its delay.
    pub fn next(&mut self, node: &str, now: DateTime<Utc>) {
        let delay = match self.entries.get(node) {
            // An entry untouched for twice the maximum starts over.
            Some((d, last)) if now - *last <= BACKOFF_MAX * 2 => (*d * 2).min(BACKOFF_MAX),
            _ => BACKOFF_INITIAL,
        };
        self.entries.insert(node.to_string(), (delay, now));
    }
}

/// What the controller sees besides the DaemonSet.
#[derive(Clone, Copy, Debug)]
pub struct Observed<'a> {
    pub nodes: &'a [Node],
    /// Every pod of the DaemonSet's namespace.
    pub pods: &'a [&'a Pod],
    /// Every ControllerRevision of the namespace.
    pub revisions: &'a [ControllerRevision],
    pub expectations: Option<&'a Expectations>,
    pub backoff: &'a FailedPodBackoff,
    pub now: DateTime<Utc>,
}

/// A plan and the backoff state to keep for the next one.
#[derive(Clone, Debug)]
pub struct DaemonSetPlan {
    pub plan: Plan,
    pub backoff: FailedPodBackoff,
}

/// The `data` of the ControllerRevision for `ds`'s template (`getPatch`).
pub fn template_patch(ds: &DaemonSet) -> Value {
    let mut template = serde_json::to_value(&ds.spec.template).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut template {
        m.insert("$patch".into(), Value::String("replace".into()));
    }
    serde_json::json!({"spec": {"template": template}})
}

/// The daemon pod spec used for eligibility: the template's with the
/// daemon tolerations.
fn daemon_spec(ds: &DaemonSet) -> PodSpec {
    let mut s = ds.spec.template.spec.clone();
    add_daemon_tolerations(&mut s);
    s
}

/// `CreatePodTemplate`: tolerations and the revision hash label added.
fn daemon_template(ds: &DaemonSet, hash: &str) -> PodTemplateSpec {
    let mut t = ds.spec.template.clone();
    add_daemon_tolerations(&mut t.spec);
    t.metadata
        .labels
        .insert(REVISION_HASH_LABEL.into(), hash.into());
    t
}

fn is_updated(pod: &Pod, hash: &str) -> bool {
    !hash.is_empty()
        && pod
            .metadata
            .labels
            .get(REVISION_HASH_LABEL)
            .map(String::as_str)
            == Some(hash)
}

/// `podByCreationTimestampAndPhase`: scheduled first, then oldest, then name.
fn by_creation_and_phase(a: &&Pod, b: &&Pod) -> std::cmp::Ordering {
    let scheduled = |p: &Pod| !p.spec.node_name.is_empty();
    scheduled(b)
        .cmp(&scheduled(a))
        .then_with(|| {
            a.metadata
                .creation_timestamp
                .cmp(&b.metadata.creation_timestamp)
        })
        .then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

/// Resolves `maxSurge` and `maxUnavailable` against `desired` pods
/// (`SurgeCount`, `UnavailableCount`, both rounded up).
fn surge_and_unavailable(ds: &DaemonSet, desired: i64) -> (i64, i64) {
    let Some(ru) = ds
        .spec
        .update_strategy
        .rolling_update
        .as_ref()
        .filter(|_| ds.spec.update_strategy.type_ != ON_DELETE)
    else {
        return (0, 0);
    };
    let total = i32::try_from(desired).unwrap_or(i32::MAX);
    let scaled = |v: Option<&IntOrString>, default: i32| {
        v.map_or(Ok(default), |v| v.scaled_value(total, true))
            .map(|x| i64::from(x.max(0)))
            .unwrap_or(0)
    };
    let surge = scaled(ru.max_surge.as_ref(), 0);
    let unavailable = scaled(ru.max_unavailable.as_ref(), 1);
    (surge, unavailable)
}

/// `AllowsSurge`: a surge of even one pod is configured.
fn allows_surge(ds: &DaemonSet) -> bool {
    surge_and_unavailable(ds, 1).0 > 0
}

/// Plans one sync of `ds`. `rng` picks pod name suffixes.
pub fn plan(ds: &DaemonSet, observed: &Observed, rng: &mut impl Rng) -> DaemonSetPlan {
    let subject = ObjectRef::of(ds);
    let mut s = Sync {
        ds,
        subject: subject.clone(),
        plan: Plan::new(subject.clone()),
        backoff: observed.backoff.clone(),
        now: observed.now,
        spec: daemon_spec(ds),
        hash: String::new(),
    };
    let Some(selector) = ds
        .spec
        .selector
        .as_ref()
        .and_then(|sel| LabelSelectorExpr::from_label_selector(sel).ok())
    else {
        return s.done();
    };
    if selector.is_empty() {
        s.plan.events.push(EventSpec::warning(
            &subject,
            "SelectingAll",
            "This daemon set is selecting all pods. A non-empty selector is required.",
        ));
        return s.done();
    }
    if ds.metadata.deletion_timestamp.is_some() {
        return s.done();
    }
    let ns = &ds.metadata.namespace;
    let revisions = s.claim_all(
        observed
            .revisions
            .iter()
            .filter(|r| &r.metadata.namespace == ns),
        &selector,
        |r| &r.metadata,
    );
    let pods = s.claim_all(
        observed
            .pods
            .iter()
            .copied()
            .filter(|p| &p.metadata.namespace == ns),
        &selector,
        |p| &p.metadata,
    );
    let in_namespace: Vec<&ControllerRevision> = observed
        .revisions
        .iter()
        .filter(|r| &r.metadata.namespace == ns)
        .collect();
    let Some((hash, old)) = s.construct_history(&revisions, &in_namespace) else {
        return s.done();
    };
    s.hash = hash.clone();

    // node -> its daemon pods, skipping finished pods being deleted.
    let mut node_pods: BTreeMap<&str, Vec<&Pod>> = BTreeMap::new();
    for p in &pods {
        if p.is_terminal() && p.metadata.deletion_timestamp.is_some() {
            continue;
        }
        if let Some(node) = target_node(p) {
            node_pods.entry(node).or_default().push(p);
        }
    }

    let mut expectations = observed.expectations.cloned().unwrap_or_default();
    expectations.observe(
        observed
            .pods
            .iter()
            .copied()
            .filter(|p| &p.metadata.namespace == ns),
    );
    if !expectations.satisfied(s.now) {
        // Only counts; the generation was not acted on.
        s.status(observed.nodes, &node_pods, &hash, false);
        if let Some(left) = expectations.expires_in(s.now) {
            s.plan.requeue(left.to_std().unwrap_or_default());
        }
        s.plan.expectations = Some(expectations);
        return s.done();
    }
    let (mut create, mut delete) = s.manage(observed.nodes, &node_pods);
    if create.is_empty() && delete.is_empty() && ds.spec.update_strategy.type_ != ON_DELETE {
        (create, delete) = s.rolling_update(observed.nodes, &node_pods, &hash);
    }
    let taken: BTreeSet<&str> = observed
        .pods
        .iter()
        .map(|p| p.metadata.name.as_str())
        .collect();
    if let Some(e) = s.sync_nodes(&create, &delete, &hash, &taken, rng) {
        expectations = e;
    }
    s.plan.expectations = Some(expectations);
    s.cleanup_history(&old, &node_pods);
    s.status(observed.nodes, &node_pods, &hash, true);
    s.done()
}

/// The working state of one planning.
struct Sync<'a> {
    ds: &'a DaemonSet,
    subject: ObjectRef,
    plan: Plan,
    backoff: FailedPodBackoff,
    now: DateTime<Utc>,
    /// The daemon pod spec (template plus daemon tolerations).
    spec: PodSpec,
    /// The current revision's hash, once known.
    hash: String,
}

impl<'a> Sync<'a> {
    fn done(self) -> DaemonSetPlan {
        DaemonSetPlan {
            plan: self.plan,
            backoff: self.backoff,
        }
    }

    /// Claims objects by labels; returns the owned ones (adopted included).
    fn claim_all<T, I>(
        &mut self,
        items: I,
        selector: &LabelSelectorExpr,
        meta: fn(&T) -> &ObjectMeta,
    ) -> Vec<&'a T>
    where
        I: Iterator<Item = &'a T>,
        T: crate::api::Resource,
    {
        let mut owned = Vec::new();
        for item in items {
            let m = meta(item);
            match claim(&self.subject, false, selector.matches(&m.labels), m) {
                Claim::Owned => owned.push(item),
                Claim::Adopt => {
                    self.plan.actions.push(Action::Patch {
                        target: ObjectRef::of(item),
                        patch: adopt_patch(&self.subject, m, None),
                        event: None,
                    });
                    owned.push(item);
                }
                Claim::Release => self.plan.actions.push(Action::Patch {
                    target: ObjectRef::of(item),
                    patch: release_patch(&self.subject.uid, m),
                    event: None,
                }),
                Claim::Ignore => {}
            }
        }
        owned
    }

    /// `constructHistory`: the current revision's hash and the old
    /// revisions; `None` after a name collision (the status update with a
    /// raised collision count is planned).
    fn construct_history(
        &mut self,
        owned: &[&'a ControllerRevision],
        in_namespace: &[&ControllerRevision],
    ) -> Option<(String, Vec<&'a ControllerRevision>)> {
        let ds = self.ds;
        let patch = template_patch(ds);
        let (mut current, old): (Vec<&ControllerRevision>, Vec<&ControllerRevision>) =
            owned.iter().partition(|r| r.data == patch);
        let next_revision = old.iter().map(|r| r.revision).max().unwrap_or(0) + 1;
        if current.is_empty() {
            let hash = compute_hash(&ds.spec.template, ds.status.collision_count);
            let name = format!("{}-{hash}", ds.metadata.name);
            if in_namespace
                .iter()
                .any(|r| r.metadata.name == name && r.data != patch)
            {
                let mut copy = ds.clone();
                let count = ds.status.collision_count.unwrap_or(0);
                copy.status.collision_count = Some(count.saturating_add(1));
                self.plan.actions.push(Action::UpdateStatus {
                    object: copy.into(),
                });
                return None;
            }
            let mut labels = ds.spec.template.metadata.labels.clone();
            labels.insert(REVISION_HASH_LABEL.into(), hash.clone());
            let cr = ControllerRevision {
                metadata: ObjectMeta {
                    name,
                    namespace: ds.metadata.namespace.clone(),
                    labels,
                    annotations: ds.metadata.annotations.clone(),
                    owner_references: vec![self.subject.controller_ref()],
                    ..Default::default()
                },
                data: patch,
                revision: next_revision,
                ..Default::default()
            };
            self.plan.actions.push(Action::Create {
                object: cr.into(),
                event: None,
            });
            return Some((hash, old));
        }
        // Duplicates of the current template: keep the newest.
        current.sort_by_key(|r| std::cmp::Reverse(r.revision));
        for dup in &current[1..] {
            self.plan
                .actions
                .push(Action::delete(ObjectRef::of(*dup), "duplicate revision"));
        }
        let cur = current[0];
        let mut update = cur.clone();
        let hash = match cur.metadata.labels.get(REVISION_HASH_LABEL) {
            Some(h) => h.clone(),
            None => {
                update
                    .metadata
                    .labels
                    .insert(REVISION_HASH_LABEL.into(), cur.metadata.name.clone());
                cur.metadata.name.clone()
            }
        };
        // Rolled back to: the revision becomes the newest again.
        if update.revision < next_revision {
            update.revision = next_revision;
        }
        if &update != cur {
            self.plan.actions.push(Action::Update {
                object: update.into(),
                event: None,
            });
        }
        Some((hash, old))
    }

    fn delete_pod(&self, pod: &Pod, reason: &'static str) -> Action {
        Action::delete(ObjectRef::of(pod), reason)
            .with_event(pod_deleted(&self.subject, &pod.metadata.name))
    }

    /// `manage` / `podsShouldBeOnNode`: nodes needing a pod and pods to
    /// delete.
    fn manage(
        &mut self,
        nodes: &[Node],
        node_pods: &BTreeMap<&str, Vec<&Pod>>,
    ) -> (Vec<String>, Vec<Action>) {
        let mut create = Vec::new();
        let mut delete = Vec::new();
        for node in nodes {
            let name = node.metadata.name.as_str();
            let (run, keep) = should_run(&self.spec, node);
            let pods = node_pods.get(name);
            if run && pods.is_none() {
                create.push(name.to_string());
                continue;
            }
            let Some(pods) = pods else {
                continue;
            };
            if !keep {
                for p in pods
                    .iter()
                    .filter(|p| p.metadata.deletion_timestamp.is_none())
                {
                    delete.push(self.delete_pod(p, "does not fit the node"));
                }
                continue;
            }
            let mut running: Vec<&Pod> = Vec::new();
            for p in pods.iter().copied() {
                if p.metadata.deletion_timestamp.is_some() {
                    continue;
                }
                match p.status.phase.as_str() {
                    "Failed" => {
                        if let Some(left) = self.backoff.remaining(name, self.now) {
                            self.plan.requeue(left.to_std().unwrap_or_default());
                            continue;
                        }
                        self.backoff.next(name, self.now);
                        self.plan.events.push(EventSpec::warning(
                            &self.subject,
                            "FailedDaemonPod",
                            format!(
                                "Found failed daemon pod {}/{} on node {name}, will try to kill it",
                                p.metadata.namespace, p.metadata.name
                            ),
                        ));
                        delete.push(self.delete_pod(p, "failed pod"));
                    }
                    "Succeeded" => delete.push(self.delete_pod(p, "finished pod")),
                    _ => running.push(p),
                }
            }
            if running.len() <= 1 {
                continue;
            }
            running.sort_by(by_creation_and_phase);
            if !allows_surge(self.ds) {
                // One pod per node: the oldest stays.
                for p in &running[1..] {
                    delete.push(self.delete_pod(p, "extra pod on node"));
                }
                continue;
            }
            // With surge, an old and a new pod may share a node while the
            // new one is not available yet.
            let hash = self.hash.clone();
            let mut oldest_new: Option<&Pod> = None;
            let mut oldest_old: Option<&Pod> = None;
            for p in &running {
                let slot = if is_updated(p, &hash) {
                    &mut oldest_new
                } else {
                    &mut oldest_old
                };
                if slot.is_none() {
                    *slot = Some(p);
                } else {
                    delete.push(self.delete_pod(p, "extra pod on node"));
                }
            }
            if let (Some(new), Some(old)) = (oldest_new, oldest_old)
                && (!pod_ready(old) || is_available(new, self.ds.spec.min_ready_seconds, self.now))
            {
                delete.push(self.delete_pod(old, "replaced by an available pod"));
            }
        }
        // Pods pinned to nodes that are gone.
        let known: BTreeSet<&str> = nodes.iter().map(|n| n.metadata.name.as_str()).collect();
        for (node, pods) in node_pods {
            if known.contains(node) {
                continue;
            }
            for p in pods
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
            {
                delete.push(self.delete_pod(p, "node is gone"));
            }
        }
        (create, delete)
    }

    /// `rollingUpdate`: old pods to delete (their nodes get new pods from
    /// the next manage) or, with surge, nodes to start new pods on.
    fn rolling_update<'p>(
        &mut self,
        nodes: &'p [Node],
        node_pods: &BTreeMap<&'p str, Vec<&'p Pod>>,
        hash: &str,
    ) -> (Vec<String>, Vec<Action>) {
        let mrs = self.ds.spec.min_ready_seconds;
        let now = self.now;
        // Every node that should run a pod, with or without one.
        let mut all: BTreeMap<&'p str, Vec<&'p Pod>> = node_pods.clone();
        let mut desired = 0i64;
        let mut eligible = BTreeSet::new();
        for node in nodes {
            if should_run(&self.spec, node).0 {
                desired += 1;
                eligible.insert(node.metadata.name.as_str());
                all.entry(node.metadata.name.as_str()).or_default();
            }
        }
        let (mut max_surge, mut max_unavailable) = surge_and_unavailable(self.ds, desired);
        if desired > 0 && max_surge == 0 && max_unavailable == 0 {
            max_unavailable = 1;
        }
        if max_surge < 0 {
            max_surge = 0;
        }
        // (new pod, old pod) per node, or None with several of a kind.
        let split = |pods: &[&'p Pod]| -> Option<(Option<&'p Pod>, Option<&'p Pod>)> {
            let mut new = None;
            let mut old = None;
            for p in pods
                .iter()
                .copied()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
            {
                let slot = if is_updated(p, hash) {
                    &mut new
                } else {
                    &mut old
                };
                if slot.is_some() {
                    return None;
                }
                *slot = Some(p);
            }
            Some((new, old))
        };
        if max_surge == 0 {
            let mut unavailable = 0i64;
            let mut replace = Vec::new();
            let mut candidates = Vec::new();
            for pods in all.values() {
                let Some((new, old)) = split(pods) else {
                    unavailable += 1;
                    continue;
                };
                match (new, old) {
                    (None, None) | (Some(_), Some(_)) => unavailable += 1,
                    (Some(n), None) => {
                        if !is_available(n, mrs, now) {
                            unavailable += 1;
                        }
                    }
                    (None, Some(o)) => {
                        if !is_available(o, mrs, now) {
                            replace.push(o);
                            unavailable += 1;
                        } else if unavailable < max_unavailable {
                            candidates.push(o);
                        }
                    }
                }
            }
            let room = usize::try_from((max_unavailable - unavailable).max(0)).unwrap_or(0);
            replace.extend(candidates.into_iter().take(room));
            let delete = replace
                .into_iter()
                .map(|p| self.delete_pod(p, "rolling update"))
                .collect();
            return (Vec::new(), delete);
        }
        let mut delete_old = Vec::new();
        let mut should_not_run = Vec::new();
        let mut candidates = Vec::new();
        let mut allowed = Vec::new();
        let mut surging = 0i64;
        let mut available = 0i64;
        for (node, pods) in &all {
            let Some((new, old)) = split(pods) else {
                surging += 1;
                continue;
            };
            match (old, new) {
                (Some(o), _) if is_available(o, mrs, now) => available += 1,
                (None, Some(n)) if is_available(n, mrs, now) => available += 1,
                _ => {}
            }
            match (new, old) {
                (_, None) => {}
                (None, Some(o)) => {
                    let fits = eligible.contains(node);
                    if !is_available(o, mrs, now) {
                        if fits {
                            allowed.push(node.to_string());
                        } else {
                            delete_old.push(o);
                        }
                    } else if !fits {
                        should_not_run.push(o);
                    } else if surging < max_surge {
                        candidates.push(node.to_string());
                    }
                }
                (Some(n), Some(o)) => {
                    if is_available(n, mrs, now) {
                        delete_old.push(o);
                    } else {
                        surging += 1;
                    }
                }
            }
        }
        // Pods off nodes they no longer fit go only once enough others are
        // available elsewhere.
        let deletable = usize::try_from((available - desired).max(0)).unwrap_or(0);
        delete_old.extend(should_not_run.into_iter().take(deletable));
        let room = usize::try_from((max_surge - surging).max(0)).unwrap_or(0);
        allowed.extend(candidates.into_iter().take(room));
        let delete = delete_old
            .into_iter()
            .map(|p| self.delete_pod(p, "rolling update"))
            .collect();
        (allowed, delete)
    }

    /// `syncNodes`: creates pods on `nodes` and makes `deletes`, at most
    /// [`DAEMON_BURST_REPLICAS`] of each; the expectations for them.
    fn sync_nodes(
        &mut self,
        nodes: &[String],
        deletes: &[Action],
        hash: &str,
        taken: &BTreeSet<&str>,
        rng: &mut impl Rng,
    ) -> Option<Expectations> {
        if nodes.is_empty() && deletes.is_empty() {
            return None;
        }
        let template = daemon_template(self.ds, hash);
        let prefix = name_prefix(&self.ds.metadata.name);
        let mut names: Vec<String> = Vec::new();
        let mut pods = Vec::new();
        for node in nodes.iter().take(DAEMON_BURST_REPLICAS) {
            let name = generate_name(&prefix, rng, |n| {
                taken.contains(n) || names.iter().any(|x| x == n)
            });
            names.push(name.clone());
            let mut pod = pod_from_template(&template, &self.subject, name, prefix.clone());
            pod.spec.affinity = Some(pin_to_node(pod.spec.affinity.take(), node));
            pod.spec.node_name = node.clone();
            pods.push(pod);
        }
        let deletes: Vec<Action> = deletes
            .iter()
            .take(DAEMON_BURST_REPLICAS)
            .cloned()
            .collect();
        let uids = deletes.iter().filter_map(|a| match a {
            Action::Delete { target, .. } => Some(target.uid.clone()),
            _ => None,
        });
        let expectations = Expectations::new(names, uids, self.now);
        if !pods.is_empty() {
            self.plan
                .actions
                .push(Action::CreatePods(PodBatch { pods }));
        }
        self.plan.actions.extend(deletes);
        Some(expectations)
    }

    /// `cleanupHistory`: the oldest old revisions beyond the limit, unless
    /// a pod still runs their template.
    fn cleanup_history(
        &mut self,
        old: &[&ControllerRevision],
        node_pods: &BTreeMap<&str, Vec<&Pod>>,
    ) {
        let limit =
            usize::try_from(self.ds.spec.revision_history_limit.unwrap_or(10).max(0)).unwrap_or(0);
        let Some(mut to_kill) = old.len().checked_sub(limit).filter(|n| *n > 0) else {
            return;
        };
        let live: BTreeSet<&str> = node_pods
            .values()
            .flatten()
            .filter_map(|p| {
                p.metadata
                    .labels
                    .get(REVISION_HASH_LABEL)
                    .map(String::as_str)
            })
            .collect();
        let mut old = old.to_vec();
        old.sort_by_key(|r| r.revision);
        for r in old {
            if to_kill == 0 {
                break;
            }
            if r.metadata
                .labels
                .get(REVISION_HASH_LABEL)
                .is_some_and(|h| live.contains(h.as_str()))
            {
                continue;
            }
            self.plan
                .actions
                .push(Action::delete(ObjectRef::of(r), "revision history limit"));
            to_kill -= 1;
        }
    }

    /// `updateDaemonSetStatus`.
    fn status(
        &mut self,
        nodes: &[Node],
        node_pods: &BTreeMap<&str, Vec<&Pod>>,
        hash: &str,
        observe_generation: bool,
    ) {
        let ds = self.ds;
        let mrs = ds.spec.min_ready_seconds;
        let mut st = DaemonSetStatus {
            observed_generation: ds.status.observed_generation,
            collision_count: ds.status.collision_count,
            conditions: ds.status.conditions.clone(),
            ..Default::default()
        };
        let mut wait: Option<Duration> = None;
        for node in nodes {
            let run = should_run(&self.spec, node).0;
            let pods = node_pods
                .get(node.metadata.name.as_str())
                .filter(|p| !p.is_empty());
            if !run {
                st.number_misscheduled += i32::from(pods.is_some());
                continue;
            }
            st.desired_number_scheduled += 1;
            let Some(pods) = pods else {
                continue;
            };
            st.current_number_scheduled += 1;
            let mut pods = pods.clone();
            pods.sort_by(by_creation_and_phase);
            let pod = pods[0];
            if pod_ready(pod) {
                st.number_ready += 1;
                if is_available(pod, mrs, self.now) {
                    st.number_available += 1;
                } else if let Some(w) = available_in(pod, mrs, self.now) {
                    wait = Some(wait.map_or(w, |x| x.min(w)));
                }
            }
            st.updated_number_scheduled += i32::from(is_updated(pod, hash));
        }
        st.number_unavailable = st.desired_number_scheduled - st.number_available;
        if observe_generation {
            st.observed_generation = ds.metadata.generation;
        }
        if st != ds.status {
            let mut copy = ds.clone();
            copy.status = st;
            self.plan.actions.push(Action::UpdateStatus {
                object: copy.into(),
            });
        }
        if let Some(w) = wait {
            self.plan.requeue(w.to_std().unwrap_or(StdDuration::ZERO));
        }
    }
}
