//! The Deployment controller (Kubernetes' `pkg/controller/deployment`).
//!
//! One planning ([`plan`]) mirrors `syncDeployment`:
//! 1. claims the namespace's ReplicaSets by the Deployment's selector
//!    (adopt orphans, release strays);
//! 2. a Deployment being deleted only gets its status refreshed;
//! 3. records the `DeploymentPaused` / `DeploymentResumed` Progressing
//!    condition;
//! 4. a paused Deployment, or one whose `spec.replicas` changed (a *scaling
//!    event*: an active ReplicaSet's desired-replicas annotation differs),
//!    is scaled proportionally across its ReplicaSets without rolling out;
//! 5. otherwise the strategy runs: RollingUpdate (`reconcileNewReplicaSet`,
//!    `reconcileOldReplicaSets` with `cleanupUnhealthyReplicas`) or
//!    Recreate (old ReplicaSets to zero, wait for their pods to go, then the
//!    new one up);
//! 6. old ReplicaSets beyond `revisionHistoryLimit` are deleted once the
//!    rollout completed;
//! 7. the status (counts, Available and Progressing conditions with
//!    Kubernetes' reasons and messages) is written when it changed.
//!
//! Each step works on in-memory copies updated by the writes it plans, so
//! later steps see what earlier ones did, exactly as Kubernetes' sequential
//! calls do. The new ReplicaSet is found by template (ignoring the
//! `pod-template-hash` label), so `kubectl rollout undo`, which copies an
//! old ReplicaSet's template into the Deployment, makes that ReplicaSet the
//! new one again and raises its revision.
//!
//! The Deployment's revision annotation is written with its status through
//! the status subresource, which for Deployments keeps annotations and does
//! not bump `metadata.generation`, as in Kubernetes.

pub mod util;

#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::api::ObjectMeta;
use crate::api::apps::{Deployment, DeploymentStatus, RECREATE, ReplicaSet, ReplicaSetSpec};
use crate::api::core::Pod;
use crate::api::selector::LabelSelectorExpr;

use super::events::{EventSpec, scaling_replica_set};
use super::plan::{Action, ObjectRef, Plan, Propagation};
use super::pods::{Claim, adopt_patch, claim, release_patch};
use util::*;

/// What the controller sees besides the Deployment.
#[derive(Clone, Copy, Debug)]
pub struct Observed<'a> {
    /// Every ReplicaSet of the Deployment's namespace.
    pub replica_sets: &'a [ReplicaSet],
    /// Every pod of the namespace (Recreate waits for old pods to go).
    pub pods: &'a [&'a Pod],
    pub now: DateTime<Utc>,
}

/// Plans one sync of `d`.
pub fn plan(d: &Deployment, observed: &Observed) -> Plan {
    let subject = ObjectRef::of(d);
    let mut plan = Plan::new(subject.clone());
    let Some(selector) = d
        .spec
        .selector
        .as_ref()
        .and_then(|s| LabelSelectorExpr::from_label_selector(s).ok())
    else {
        return plan;
    };
    if selector.is_empty() {
        plan.events.push(EventSpec::warning(
            &subject,
            "SelectingAll",
            "This deployment is selecting all pods. A non-empty selector is required.",
        ));
        if d.status.observed_generation < d.metadata.generation {
            let mut copy = d.clone();
            copy.status.observed_generation = d.metadata.generation;
            plan.actions.push(Action::UpdateStatus {
                object: copy.into(),
            });
        }
        return plan;
    }
    let deleting = d.metadata.deletion_timestamp.is_some();
    let namespace = &d.metadata.namespace;
    let mut s = Sync::new(d, subject.clone(), observed.now);
    for rs in observed
        .replica_sets
        .iter()
        .filter(|r| &r.metadata.namespace == namespace)
    {
        s.namespace_rss.push(rs);
        let matches = selector.matches(&rs.metadata.labels);
        match claim(&subject, deleting, matches, &rs.metadata) {
            Claim::Owned => s.rss.push(rs.clone()),
            Claim::Adopt => {
                let patch = adopt_patch(&subject, &rs.metadata, None);
                let mut copy = rs.clone();
                patch.apply_to(&mut copy.metadata);
                s.actions.push(Action::Patch {
                    target: ObjectRef::of(rs),
                    patch,
                    event: None,
                });
                s.rss.push(copy);
            }
            Claim::Release => s.actions.push(Action::Patch {
                target: ObjectRef::of(rs),
                patch: release_patch(&subject.uid, &rs.metadata),
                event: None,
            }),
            Claim::Ignore => {}
        }
    }
    let uids: BTreeSet<&str> = s.rss.iter().map(|r| r.metadata.uid.as_str()).collect();
    s.pods = observed
        .pods
        .iter()
        .copied()
        .filter(|p| &p.metadata.namespace == namespace && selector.matches(&p.metadata.labels))
        .filter(|p| {
            p.metadata
                .controller_ref()
                .is_some_and(|r| uids.contains(r.uid.as_str()))
        })
        .collect();

    if deleting {
        s.sync_status_only();
    } else {
        s.check_paused_conditions();
        // Paused Deployments and scaling events only resize.
        if d.spec.paused || s.is_scaling_event() {
            s.sync();
        } else if d.spec.strategy.type_ == RECREATE {
            s.rollout_recreate();
        } else {
            s.rollout_rolling();
        }
    }
    s.finish(plan)
}

/// The working state of one planning.
struct Sync<'a> {
    /// The Deployment as observed.
    original: &'a Deployment,
    /// The Deployment as this plan leaves it (status, revision annotation).
    d: Deployment,
    subject: ObjectRef,
    /// The owned ReplicaSets, updated by the writes planned so far.
    rss: Vec<ReplicaSet>,
    /// Every ReplicaSet of the namespace, for name collisions.
    namespace_rss: Vec<&'a ReplicaSet>,
    /// Pods of the owned ReplicaSets.
    pods: Vec<&'a Pod>,
    actions: Vec<Action>,
    now: DateTime<Utc>,
    /// The revision annotation of the Deployment changed.
    revision_changed: bool,
    /// A hash collision: stop after recording the new collision count.
    collided: bool,
}

impl<'a> Sync<'a> {
    fn new(d: &'a Deployment, subject: ObjectRef, now: DateTime<Utc>) -> Self {
        Sync {
            original: d,
            d: d.clone(),
            subject,
            rss: Vec::new(),
            namespace_rss: Vec::new(),
            pods: Vec::new(),
            actions: Vec::new(),
            now,
            revision_changed: false,
            collided: false,
        }
    }

    fn replicas(&self) -> i64 {
        i64::from(self.d.replicas().max(0))
    }

    /// Indices of the owned ReplicaSets sorted by creation.
    fn by_creation(&self, mut idx: Vec<usize>) -> Vec<usize> {
        idx.sort_by(|&a, &b| by_creation(&self.rss[a], &self.rss[b]));
        idx
    }

    /// `FindNewReplicaSet`: the oldest ReplicaSet whose template equals the
    /// Deployment's.
    fn find_new(&self) -> Option<usize> {
        self.by_creation((0..self.rss.len()).collect())
            .into_iter()
            .find(|&i| equal_ignore_hash(&self.rss[i].spec.template, &self.d.spec.template))
    }

    fn olds(&self, new: Option<usize>) -> Vec<usize> {
        (0..self.rss.len()).filter(|i| Some(*i) != new).collect()
    }

    fn active(&self, idx: &[usize]) -> Vec<usize> {
        idx.iter()
            .copied()
            .filter(|&i| spec_replicas(&self.rss[i]) > 0)
            .collect()
    }

    fn sum(&self, idx: &[usize], f: impl Fn(&ReplicaSet) -> i64) -> i64 {
        idx.iter().map(|&i| f(&self.rss[i])).sum()
    }

    fn set_revision(&mut self, revision: &str) {
        if self
            .d
            .metadata
            .annotations
            .get(REVISION_ANNOTATION)
            .map(String::as_str)
            != Some(revision)
        {
            self.d
                .metadata
                .annotations
                .insert(REVISION_ANNOTATION.into(), revision.into());
            self.revision_changed = true;
        }
    }

    /// `getNewReplicaSet` (through `getAllReplicaSetsAndSyncRevision`):
    /// finds the new ReplicaSet and syncs its revision, or creates it when
    /// `create` is set.
    fn new_rs(&mut self, create: bool) -> Option<usize> {
        let new = self.find_new();
        let olds = self.olds(new);
        let max_old = olds
            .iter()
            .map(|&i| revision(&self.rss[i]))
            .max()
            .unwrap_or(0);
        let new_revision = max_old + 1;
        if let Some(i) = new {
            let mut copy = self.rss[i].clone();
            let annotated = set_new_replica_set_annotations(&self.d, &mut copy, new_revision, true);
            let min_ready = copy.spec.min_ready_seconds != self.d.spec.min_ready_seconds;
            if annotated || min_ready {
                copy.spec.min_ready_seconds = self.d.spec.min_ready_seconds;
                self.rss[i] = copy.clone();
                self.actions.push(Action::Update {
                    object: copy.into(),
                    event: None,
                });
                return Some(i);
            }
            let rev = copy
                .metadata
                .annotations
                .get(REVISION_ANNOTATION)
                .cloned()
                .unwrap_or_default();
            self.set_revision(&rev);
            if has_progress_deadline(&self.d)
                && get_condition(&self.d.status, PROGRESSING).is_none()
            {
                let msg = format!("Found new replica set {:?}", copy.metadata.name);
                set_condition(
                    &mut self.d.status,
                    condition(PROGRESSING, "True", FOUND_NEW_REPLICA_SET, msg, self.now),
                );
            }
            return Some(i);
        }
        if !create {
            return None;
        }
        let hash = compute_hash(&self.d.spec.template, self.d.status.collision_count);
        let name = format!("{}-{hash}", self.d.metadata.name);
        let template = new_rs_template(&self.d, &hash);
        let mut selector = self.d.spec.selector.clone().unwrap_or_default();
        selector.match_labels = with_hash(&selector.match_labels, &hash);
        let mut rs = ReplicaSet {
            metadata: ObjectMeta {
                name: name.clone(),
                namespace: self.d.metadata.namespace.clone(),
                labels: template.metadata.labels.clone(),
                owner_references: vec![self.subject.controller_ref()],
                ..Default::default()
            },
            spec: ReplicaSetSpec {
                replicas: Some(0),
                min_ready_seconds: self.d.spec.min_ready_seconds,
                selector: Some(selector),
                template,
            },
            ..Default::default()
        };
        let count = self.new_rs_new_replicas(&olds, &rs);
        rs.spec.replicas = Some(clamp32(count));
        set_new_replica_set_annotations(&self.d, &mut rs, new_revision, false);
        if let Some(existing) = self.namespace_rss.iter().find(|r| r.metadata.name == name) {
            let ours = existing
                .metadata
                .controller_ref()
                .is_some_and(|r| r.uid == self.subject.uid);
            if !(ours && equal_ignore_hash(&existing.spec.template, &self.d.spec.template)) {
                // Someone else's ReplicaSet has our name: change the hash.
                let count = self.d.status.collision_count.unwrap_or(0);
                self.d.status.collision_count = Some(count.saturating_add(1));
                self.collided = true;
                return None;
            }
        }
        let event =
            (count > 0).then(|| scaling_replica_set(&self.subject, &name, 0, clamp32(count)));
        self.actions.push(Action::Create {
            object: rs.clone().into(),
            event,
        });
        self.rss.push(rs);
        self.set_revision(&new_revision.to_string());
        if has_progress_deadline(&self.d) {
            let msg = format!("Created new replica set {name:?}");
            set_condition(
                &mut self.d.status,
                condition(PROGRESSING, "True", NEW_REPLICA_SET_CREATED, msg, self.now),
            );
        }
        Some(self.rss.len() - 1)
    }

    /// `NewRSNewReplicas`: how big the new ReplicaSet may be now.
    fn new_rs_new_replicas(&self, olds: &[usize], new: &ReplicaSet) -> i64 {
        let replicas = self.replicas();
        if self.d.spec.strategy.type_ == RECREATE {
            return replicas;
        }
        let current = self.sum(olds, spec_replicas) + spec_replicas(new);
        let max_total = replicas + max_surge(&self.d);
        if current >= max_total {
            return spec_replicas(new);
        }
        let up = (max_total - current).min(replicas - spec_replicas(new));
        spec_replicas(new) + up
    }

    /// `scaleReplicaSet`: sets the size and the replica annotations;
    /// whether the size changed.
    fn scale_rs(&mut self, i: usize, size: i64) -> bool {
        let desired = self.replicas();
        let max = desired + max_surge(&self.d);
        let rs = &self.rss[i];
        let old = spec_replicas(rs);
        let resize = old != size;
        if !resize && !replicas_annotations_need_update(rs, desired, max) {
            return false;
        }
        let mut copy = rs.clone();
        copy.spec.replicas = Some(clamp32(size));
        set_replicas_annotations(&mut copy, desired, max);
        let event = resize.then(|| {
            scaling_replica_set(
                &self.subject,
                &copy.metadata.name,
                clamp32(old),
                clamp32(size),
            )
        });
        self.rss[i] = copy.clone();
        self.actions.push(Action::Update {
            object: copy.into(),
            event,
        });
        resize
    }

    /// `scaleReplicaSetAndRecordEvent`: only when the size differs.
    fn scale_to(&mut self, i: usize, size: i64) -> bool {
        spec_replicas(&self.rss[i]) != size && self.scale_rs(i, size)
    }

    /// `isScalingEvent`: an active ReplicaSet was sized for a different
    /// `spec.replicas`.
    fn is_scaling_event(&mut self) -> bool {
        // Syncing the revision may rewrite the new ReplicaSet first.
        self.new_rs(false);
        let all: Vec<usize> = (0..self.rss.len()).collect();
        let replicas = self.replicas();
        self.active(&all)
            .into_iter()
            .filter_map(|i| desired_replicas_annotation(&self.rss[i]))
            .any(|d| d != replicas)
    }

    /// `sync`: proportional scaling without rolling out (paused Deployments
    /// and scaling events).
    fn sync(&mut self) {
        let new = self.new_rs(false);
        if self.collided {
            return;
        }
        let olds = self.olds(new);
        self.scale(new, &olds);
        if self.d.spec.paused {
            self.cleanup(&olds);
        }
        self.d.status = self.calculate_status(new);
    }

    fn sync_status_only(&mut self) {
        let new = self.new_rs(false);
        self.d.status = self.calculate_status(new);
    }

    /// `FindActiveOrLatest`.
    fn active_or_latest(&self, new: Option<usize>, olds: &[usize]) -> Option<usize> {
        if new.is_none() && olds.is_empty() {
            return None;
        }
        let mut sorted = self.by_creation(olds.to_vec());
        sorted.reverse();
        let mut all = sorted.clone();
        all.extend(new);
        let active = self.active(&all);
        match active.len() {
            0 => new.or_else(|| sorted.first().copied()),
            1 => Some(active[0]),
            _ => None,
        }
    }

    /// `IsSaturated`.
    fn saturated(&self, new: Option<usize>) -> bool {
        let Some(rs) = new.map(|i| &self.rss[i]) else {
            return false;
        };
        let r = self.replicas();
        spec_replicas(rs) == r
            && desired_replicas_annotation(rs) == Some(r)
            && i64::from(rs.status.available_replicas) == r
    }

    /// `scale`: brings the ReplicaSets to `spec.replicas` (+ surge),
    /// proportionally when several are active.
    fn scale(&mut self, new: Option<usize>, olds: &[usize]) {
        let replicas = self.replicas();
        if let Some(i) = self.active_or_latest(new, olds) {
            if spec_replicas(&self.rss[i]) != replicas {
                self.scale_to(i, replicas);
            }
            return;
        }
        if self.saturated(new) {
            for i in self.active(olds) {
                self.scale_to(i, 0);
            }
            return;
        }
        if !is_rolling(&self.d) {
            return;
        }
        let mut all = olds.to_vec();
        all.extend(new);
        let mut all = self.active(&all);
        let total = self.sum(&all, spec_replicas);
        let allowed = if replicas > 0 {
            replicas + max_surge(&self.d)
        } else {
            0
        };
        let to_add = allowed - total;
        if to_add > 0 {
            all.sort_by(|&a, &b| by_size_newer(&self.rss[a], &self.rss[b]));
        } else if to_add < 0 {
            all.sort_by(|&a, &b| by_size_older(&self.rss[a], &self.rss[b]));
        }
        let mut added = 0;
        let mut sizes = Vec::with_capacity(all.len());
        for &i in &all {
            let rs = &self.rss[i];
            if to_add != 0 {
                let p = proportion(rs, &self.d, to_add, added);
                sizes.push(spec_replicas(rs) + p);
                added += p;
            } else {
                sizes.push(spec_replicas(rs));
            }
        }
        for (k, &i) in all.iter().enumerate() {
            let mut size = sizes[k];
            // The largest ReplicaSet takes what rounding left over.
            if k == 0 && to_add != 0 {
                size = (size + to_add - added).max(0);
            }
            self.scale_rs(i, size);
        }
    }

    /// `cleanupDeployment`: deletes the oldest empty ReplicaSets beyond
    /// `revisionHistoryLimit`.
    fn cleanup(&mut self, olds: &[usize]) {
        let Some(limit) = self
            .d
            .spec
            .revision_history_limit
            .filter(|l| *l != i32::MAX)
        else {
            return;
        };
        let mut cleanable: Vec<usize> = olds
            .iter()
            .copied()
            .filter(|&i| self.rss[i].metadata.deletion_timestamp.is_none())
            .collect();
        let diff = i64::try_from(cleanable.len()).unwrap_or(i64::MAX) - i64::from(limit.max(0));
        if diff <= 0 {
            return;
        }
        cleanable.sort_by(|&a, &b| by_revision(&self.rss[a], &self.rss[b]));
        for &i in cleanable.iter().take(usize::try_from(diff).unwrap_or(0)) {
            let rs = &self.rss[i];
            if rs.status.replicas != 0
                || spec_replicas(rs) != 0
                || rs.metadata.generation > rs.status.observed_generation
            {
                continue;
            }
            let mut action = Action::delete(ObjectRef::of(rs), "revision history limit");
            if let Action::Delete { propagation, .. } = &mut action {
                *propagation = Some(Propagation::Background);
            }
            self.actions.push(action);
        }
    }

    fn rollout_rolling(&mut self) {
        let Some(new) = self.new_rs(true) else {
            return;
        };
        let olds = self.olds(Some(new));
        let mut all = olds.clone();
        all.push(new);
        if self.reconcile_new(&all, new) {
            self.sync_rollout_status(Some(new));
            return;
        }
        let active_olds = self.active(&olds);
        if self.reconcile_olds(&active_olds, new) {
            self.sync_rollout_status(Some(new));
            return;
        }
        if deployment_complete(&self.d, &self.d.status) {
            self.cleanup(&olds);
        }
        self.sync_rollout_status(Some(new));
    }

    /// `reconcileNewReplicaSet`.
    fn reconcile_new(&mut self, all: &[usize], new: usize) -> bool {
        let replicas = self.replicas();
        let current = spec_replicas(&self.rss[new]);
        if current == replicas {
            return false;
        }
        if current > replicas {
            return self.scale_to(new, replicas);
        }
        let olds: Vec<usize> = all.iter().copied().filter(|&i| i != new).collect();
        let count = self.new_rs_new_replicas(&olds, &self.rss[new].clone());
        self.scale_to(new, count)
    }

    /// `reconcileOldReplicaSets`.
    fn reconcile_olds(&mut self, olds: &[usize], new: usize) -> bool {
        let old_pods = self.sum(olds, spec_replicas);
        if old_pods == 0 {
            return false;
        }
        let mut all = olds.to_vec();
        all.push(new);
        let all_pods = self.sum(&all, spec_replicas);
        let min_available = self.replicas() - max_unavailable(&self.d);
        let new_rs = &self.rss[new];
        let new_unavailable = spec_replicas(new_rs) - i64::from(new_rs.status.available_replicas);
        let max_scaled_down = all_pods - min_available - new_unavailable;
        if max_scaled_down <= 0 {
            return false;
        }
        let cleaned = self.cleanup_unhealthy(olds, max_scaled_down);
        let scaled = self.scale_down_olds_rolling(&all, olds);
        cleaned + scaled > 0
    }

    /// `cleanupUnhealthyReplicas`: first removes old pods that are not
    /// available anyway, so they cannot block the rollout.
    fn cleanup_unhealthy(&mut self, olds: &[usize], max_cleanup: i64) -> i64 {
        let mut total = 0;
        for i in self.by_creation(olds.to_vec()) {
            if total >= max_cleanup {
                break;
            }
            let rs = &self.rss[i];
            let spec = spec_replicas(rs);
            let available = i64::from(rs.status.available_replicas);
            if spec == 0 || spec == available {
                continue;
            }
            let down = (max_cleanup - total).min(spec - available);
            if spec - down > spec {
                continue;
            }
            self.scale_to(i, spec - down);
            total += down;
        }
        total
    }

    /// `scaleDownOldReplicaSetsForRollingUpdate`.
    fn scale_down_olds_rolling(&mut self, all: &[usize], olds: &[usize]) -> i64 {
        let min_available = self.replicas() - max_unavailable(&self.d);
        let available = self.sum(all, |r| i64::from(r.status.available_replicas));
        if available <= min_available {
            return 0;
        }
        let to_scale = available - min_available;
        let mut total = 0;
        for i in self.by_creation(olds.to_vec()) {
            if total >= to_scale {
                break;
            }
            let spec = spec_replicas(&self.rss[i]);
            if spec == 0 {
                continue;
            }
            let down = spec.min(to_scale - total);
            self.scale_to(i, spec - down);
            total += down;
        }
        total
    }

    fn rollout_recreate(&mut self) {
        let mut new = self.new_rs(false);
        if self.collided {
            return;
        }
        let olds = self.olds(new);
        let mut scaled_down = false;
        for i in self.active(&olds) {
            scaled_down |= self.scale_to(i, 0);
        }
        if scaled_down || self.old_pods_running(new, &olds) {
            self.sync_rollout_status(new);
            return;
        }
        if new.is_none() {
            new = self.new_rs(true);
        }
        let Some(n) = new else {
            return;
        };
        let replicas = self.replicas();
        self.scale_to(n, replicas);
        if deployment_complete(&self.d, &self.d.status) {
            let olds = self.olds(new);
            self.cleanup(&olds);
        }
        self.sync_rollout_status(new);
    }

    /// `oldPodsRunning`: old ReplicaSets still report pods, or a pod of
    /// theirs has not finished.
    fn old_pods_running(&self, new: Option<usize>, olds: &[usize]) -> bool {
        if self.sum(olds, |r| i64::from(r.status.replicas)) > 0 {
            return true;
        }
        let new_uid = new.map(|i| self.rss[i].metadata.uid.as_str());
        self.pods.iter().any(|p| {
            let owner = p.metadata.controller_ref().map(|r| r.uid.as_str());
            owner != new_uid && !p.is_terminal()
        })
    }

    /// `calculateStatus`.
    fn calculate_status(&self, new: Option<usize>) -> DeploymentStatus {
        let all: Vec<usize> = (0..self.rss.len()).collect();
        let available = self.sum(&all, |r| i64::from(r.status.available_replicas));
        let total = self.sum(&all, spec_replicas);
        let terminating: Vec<i32> = self
            .rss
            .iter()
            .filter_map(|r| r.status.terminating_replicas)
            .collect();
        let mut status = DeploymentStatus {
            observed_generation: self.d.metadata.generation,
            replicas: clamp32(self.sum(&all, |r| i64::from(r.status.replicas))),
            updated_replicas: new.map_or(0, |i| self.rss[i].status.replicas),
            ready_replicas: clamp32(self.sum(&all, |r| i64::from(r.status.ready_replicas))),
            available_replicas: clamp32(available),
            unavailable_replicas: clamp32((total - available).max(0)),
            terminating_replicas: (!terminating.is_empty())
                .then(|| clamp32(terminating.iter().map(|t| i64::from(*t)).sum())),
            conditions: self.d.status.conditions.clone(),
            collision_count: self.d.status.collision_count,
        };
        let c = if available >= self.replicas() - max_unavailable(&self.d) {
            condition(
                AVAILABLE,
                "True",
                MINIMUM_REPLICAS_AVAILABLE,
                "Deployment has minimum availability.".into(),
                self.now,
            )
        } else {
            condition(
                AVAILABLE,
                "False",
                MINIMUM_REPLICAS_UNAVAILABLE,
                "Deployment does not have minimum availability.".into(),
                self.now,
            )
        };
        set_condition(&mut status, c);
        status
    }

    /// `syncRolloutStatus`: the status plus the Progressing condition
    /// (complete, progressing or timed out) and ReplicaFailure.
    fn sync_rollout_status(&mut self, new: Option<usize>) {
        let mut st = self.calculate_status(new);
        let has_deadline = has_progress_deadline(&self.d);
        if !has_deadline {
            remove_condition(&mut st, PROGRESSING);
        }
        let current = get_condition(&self.d.status, PROGRESSING).cloned();
        let complete_before = st.replicas == st.updated_replicas
            && current
                .as_ref()
                .is_some_and(|c| c.reason == NEW_REPLICA_SET_AVAILABLE);
        let about = |what: &str| match new {
            Some(i) => format!("ReplicaSet {:?} {what}", self.rss[i].metadata.name),
            None => format!("Deployment {:?} {what}", self.d.metadata.name),
        };
        if has_deadline && !complete_before {
            if deployment_complete(&self.d, &st) {
                let msg = about("has successfully progressed.");
                set_condition(
                    &mut st,
                    condition(
                        PROGRESSING,
                        "True",
                        NEW_REPLICA_SET_AVAILABLE,
                        msg,
                        self.now,
                    ),
                );
            } else if deployment_progressing(&self.d, &st) {
                let msg = about("is progressing.");
                let mut c = condition(PROGRESSING, "True", REPLICA_SET_UPDATED, msg, self.now);
                // Progress refreshes lastUpdateTime even with the same reason.
                if let Some(cur) = &current {
                    if cur.status == "True" {
                        c.last_transition_time = cur.last_transition_time;
                    }
                    remove_condition(&mut st, PROGRESSING);
                }
                set_condition(&mut st, c);
            } else if deployment_timed_out(&self.d, &st, self.now) {
                let msg = about("has timed out progressing.");
                set_condition(
                    &mut st,
                    condition(
                        PROGRESSING,
                        "False",
                        PROGRESS_DEADLINE_EXCEEDED,
                        msg,
                        self.now,
                    ),
                );
            }
        }
        match self.replica_failure(new) {
            Some(c) => set_condition(&mut st, c),
            None => remove_condition(&mut st, REPLICA_FAILURE),
        }
        self.d.status = st;
    }

    /// `getReplicaFailures`: the new ReplicaSet's failure first, else any.
    fn replica_failure(&self, new: Option<usize>) -> Option<crate::api::apps::DeploymentCondition> {
        let from = |rs: &ReplicaSet| {
            rs.status
                .conditions
                .iter()
                .find(|c| c.type_ == REPLICA_FAILURE)
                .map(|c| crate::api::apps::DeploymentCondition {
                    type_: c.type_.clone(),
                    status: c.status.clone(),
                    last_update_time: c.last_transition_time,
                    last_transition_time: c.last_transition_time,
                    reason: c.reason.clone(),
                    message: c.message.clone(),
                })
        };
        new.and_then(|i| from(&self.rss[i]))
            .or_else(|| self.rss.iter().find_map(from))
    }

    /// `checkPausedConditions`.
    fn check_paused_conditions(&mut self) {
        if !has_progress_deadline(&self.d) {
            return;
        }
        let reason = get_condition(&self.d.status, PROGRESSING).map(|c| c.reason.clone());
        if reason.as_deref() == Some(PROGRESS_DEADLINE_EXCEEDED) {
            return;
        }
        let paused_recorded = reason.as_deref() == Some(DEPLOYMENT_PAUSED);
        let c = if self.d.spec.paused && !paused_recorded {
            condition(
                PROGRESSING,
                "Unknown",
                DEPLOYMENT_PAUSED,
                "Deployment is paused".into(),
                self.now,
            )
        } else if !self.d.spec.paused && paused_recorded {
            condition(
                PROGRESSING,
                "Unknown",
                DEPLOYMENT_RESUMED,
                "Deployment is resumed".into(),
                self.now,
            )
        } else {
            return;
        };
        set_condition(&mut self.d.status, c);
    }

    /// `requeueStuckDeployment`: look again when the progress deadline
    /// passes.
    fn stuck_requeue(&self) -> Option<Duration> {
        if !has_progress_deadline(&self.d) {
            return None;
        }
        let c = get_condition(&self.d.status, PROGRESSING)?;
        if deployment_complete(&self.d, &self.d.status)
            || c.reason == PROGRESS_DEADLINE_EXCEEDED
            || c.reason == NEW_REPLICA_SET_AVAILABLE
            || self.d.spec.paused
        {
            return None;
        }
        let deadline = chrono::Duration::seconds(i64::from(
            self.d.spec.progress_deadline_seconds.unwrap_or(0),
        ));
        let after = c.last_update_time?.0.checked_add_signed(deadline)? - self.now;
        // One more second so that the deadline has surely passed.
        let after = (after + chrono::Duration::seconds(1)).max(chrono::Duration::seconds(1));
        after.to_std().ok()
    }

    fn finish(self, mut plan: Plan) -> Plan {
        plan.actions.extend(self.actions.iter().cloned());
        // The revision annotation goes with the status, through the status
        // subresource, which for Deployments keeps annotations and does not
        // bump the generation (Kubernetes' deploymentStatusStrategy).
        if self.revision_changed || self.d.status != self.original.status {
            let mut object = self.original.clone();
            object.status = self.d.status.clone();
            object.metadata.annotations = self.d.metadata.annotations.clone();
            plan.actions.push(Action::UpdateStatus {
                object: object.into(),
            });
        }
        if let Some(after) = self.stuck_requeue() {
            plan.requeue(after);
        }
        plan
    }
}

fn clamp32(v: i64) -> i32 {
    i32::try_from(v.clamp(i64::from(i32::MIN), i64::from(i32::MAX))).unwrap_or(0)
}
