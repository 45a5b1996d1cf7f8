//! An in-memory API server and cluster for the planners' tests: it carries
//! out plans with the API's semantics (uids, resourceVersions and their
//! preconditions, generations, status subresources, finalizers, deletion
//! timestamps) and plays the node agents (pods start, become ready, finish,
//! terminate).

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::api::apps::{ControllerRevision, DaemonSet, Deployment, ReplicaSet};
use crate::api::batch::{CronJob, Job};
use crate::api::core::{
    ContainerState, ContainerStateTerminated, ContainerStatus, Namespace, Node, Pod, PodCondition,
    ReplicationController,
};
use crate::api::{ApiObject, ObjectMeta};

use super::events::EventSpec;
use super::expectations::Expectations;
use super::plan::{Action, Object, ObjectRef, Plan};
use super::pods::time;

/// The test epoch: 2023-11-14T22:13:20Z.
pub(crate) fn epoch() -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default()
}

/// Runs `$body` with `$o` bound to the typed object inside an [`Object`].
macro_rules! with_object {
    ($obj:expr, $o:ident => $body:expr) => {
        match $obj {
            Object::Pod($o) => $body,
            Object::ReplicaSet($o) => $body,
            Object::ReplicationController($o) => $body,
            Object::Deployment($o) => $body,
            Object::DaemonSet($o) => $body,
            Object::ControllerRevision($o) => $body,
            Object::Job($o) => $body,
            Object::CronJob($o) => $body,
            Object::Namespace($o) => $body,
        }
    };
}

fn meta_mut(o: &mut Object) -> &mut ObjectMeta {
    use crate::api::Resource;
    with_object!(o, x => x.meta_mut())
}

/// `old` updated by `new` as a PUT of the main resource: status kept,
/// generation bumped when the spec changed.
fn update_main(old: &Object, new: &Object) -> Option<Object> {
    macro_rules! upd {
        ($($v:ident),*) => {
            match (old, new) {
                $((Object::$v(o), Object::$v(n)) => {
                    let mut n = n.clone();
                    n.keep_status(Some(o));
                    n.metadata.generation = o.metadata.generation + i64::from(n.spec_changed(o));
                    n.metadata.creation_timestamp = o.metadata.creation_timestamp;
                    n.metadata.deletion_timestamp = o.metadata.deletion_timestamp;
                    Some(Object::$v(n))
                })*
                _ => None,
            }
        };
    }
    upd!(
        Pod,
        ReplicaSet,
        ReplicationController,
        Deployment,
        DaemonSet,
        ControllerRevision,
        Job,
        CronJob,
        Namespace
    )
}

/// `old` with the status of `new` (PUT of `/status`).
fn update_status(old: &Object, new: &Object) -> Option<Object> {
    macro_rules! upd {
        ($($v:ident),*) => {
            match (old, new) {
                $((Object::$v(o), Object::$v(n)) => {
                    let mut n = n.clone();
                    let annotations = n.metadata.annotations.clone();
                    n.keep_all_but_status(o);
                    if <$v as crate::api::ApiObject>::STATUS_CARRIES_ANNOTATIONS {
                        n.metadata.annotations = annotations;
                    }
                    Some(Object::$v(n))
                })*
                _ => None,
            }
        };
    }
    upd!(
        Pod,
        ReplicaSet,
        ReplicationController,
        Deployment,
        DaemonSet,
        ControllerRevision,
        Job,
        CronJob,
        Namespace
    )
}

fn spec_changed(old: &Object, new: &Object) -> bool {
    macro_rules! chg {
        ($($v:ident),*) => {
            match (old, new) {
                $((Object::$v(o), Object::$v(n)) => n.spec_changed(o),)*
                _ => false,
            }
        };
    }
    chg!(
        Pod,
        ReplicaSet,
        ReplicationController,
        Deployment,
        DaemonSet,
        ControllerRevision,
        Job,
        CronJob,
        Namespace
    )
}

fn set_defaults(o: &mut Object) {
    with_object!(o, x => x.set_defaults())
}

/// The cluster.
pub(crate) struct World {
    pub now: DateTime<Utc>,
    pub objects: Vec<Object>,
    pub nodes: Vec<Node>,
    /// Events recorded, in order.
    pub events: Vec<EventSpec>,
    /// Expectations stored per subject uid.
    pub expectations: BTreeMap<String, Expectations>,
    /// The last failed call's message per subject uid.
    pub last_error: BTreeMap<String, String>,
    /// Failed-pod backoff per DaemonSet uid.
    pub ds_backoff: BTreeMap<String, super::daemonset::FailedPodBackoff>,
    /// Creates of objects of these kinds fail (quota, admission).
    pub fail_creates_of: Vec<&'static str>,
    pub rng: StdRng,
    next_uid: u64,
    next_rv: u64,
}

impl World {
    pub fn new() -> Self {
        World {
            now: epoch(),
            objects: Vec::new(),
            nodes: Vec::new(),
            events: Vec::new(),
            expectations: BTreeMap::new(),
            last_error: BTreeMap::new(),
            ds_backoff: BTreeMap::new(),
            fail_creates_of: Vec::new(),
            rng: StdRng::seed_from_u64(42),
            next_uid: 0,
            next_rv: 0,
        }
    }

    pub fn advance(&mut self, secs: i64) {
        self.now += Duration::seconds(secs);
    }

    fn rv(&mut self) -> String {
        self.next_rv += 1;
        self.next_rv.to_string()
    }

    /// Stores a new object as the API server's create does.
    pub fn create(&mut self, object: impl Into<Object>) -> Result<ObjectRef, String> {
        let mut object = object.into();
        if self.fail_creates_of.contains(&object.kind()) {
            return Err(format!("{} creation refused", object.kind()));
        }
        let (kind, ns, name) = {
            let m = object.meta();
            (object.kind(), m.namespace.clone(), m.name.clone())
        };
        if self.find(kind, &ns, &name).is_some() {
            return Err(format!("{kind} {ns}/{name} already exists"));
        }
        self.next_uid += 1;
        let uid = format!("{}-uid-{}", kind.to_lowercase(), self.next_uid);
        let rv = self.rv();
        let now = self.now;
        let m = meta_mut(&mut object);
        m.uid = uid;
        m.resource_version = rv;
        m.generation = 1;
        m.creation_timestamp = Some(time(now));
        set_defaults(&mut object);
        let r = object.object_ref();
        self.objects.push(object);
        Ok(r)
    }

    fn find(&self, kind: &str, ns: &str, name: &str) -> Option<usize> {
        self.objects
            .iter()
            .position(|o| o.kind() == kind && o.meta().namespace == ns && o.meta().name == name)
    }

    fn find_ref(&self, r: &ObjectRef) -> Result<usize, String> {
        let i = self
            .find(&r.kind, &r.namespace, &r.name)
            .ok_or_else(|| format!("{} {} not found", r.kind, r.key()))?;
        if !r.uid.is_empty() && self.objects[i].meta().uid != r.uid {
            return Err(format!("{} {}: uid precondition failed", r.kind, r.key()));
        }
        Ok(i)
    }

    fn check_rv(
        &self,
        i: usize,
        rv: &str,
        chained: &BTreeMap<String, String>,
    ) -> Result<(), String> {
        let m = self.objects[i].meta();
        let want = chained.get(&m.uid).map(String::as_str).unwrap_or(rv);
        if !want.is_empty() && want != m.resource_version {
            return Err(format!(
                "conflict on {}: {want} != {}",
                m.name, m.resource_version
            ));
        }
        Ok(())
    }

    /// Removes an object, or marks it deleted while finalizers remain.
    /// Pods are deleted gracefully: marked first, gone once their agent
    /// stopped them ([`World::terminate_pods`]).
    fn remove(&mut self, i: usize) {
        let graceful = matches!(self.objects[i], Object::Pod(_));
        if self.objects[i].meta().finalizers.is_empty() && !graceful {
            self.objects.remove(i);
        } else {
            let now = self.now;
            let rv = self.rv();
            let m = meta_mut(&mut self.objects[i]);
            if m.deletion_timestamp.is_none() {
                m.deletion_timestamp = Some(time(now));
            }
            m.resource_version = rv;
        }
    }

    /// Carries out `plan` as an executor would: in order, stopping at the
    /// first failure, recording events and expectations.
    pub fn apply(&mut self, plan: &Plan) -> Result<(), String> {
        let key = plan.subject.uid.clone();
        let mut exp = plan.expectations.clone();
        self.events.extend(plan.events.iter().cloned());
        let mut chained: BTreeMap<String, String> = BTreeMap::new();
        let mut result = Ok(());
        for (n, action) in plan.actions.iter().enumerate() {
            let r = self.apply_action(action, &mut chained);
            match r {
                Ok(()) => self.events.extend(action.success_events(&plan.subject)),
                Err(e) => {
                    if let Some(ev) = super::events::failure_event(&plan.subject, action, &e) {
                        self.events.push(ev);
                    }
                    if let Some(exp) = exp.as_mut() {
                        for a in &plan.actions[n..] {
                            match a {
                                Action::CreatePods(b) => {
                                    for p in &b.pods {
                                        if self
                                            .find("Pod", &p.metadata.namespace, &p.metadata.name)
                                            .is_none()
                                        {
                                            exp.creation_failed(&p.metadata.name);
                                        }
                                    }
                                }
                                Action::Delete { target, .. }
                                    if target.kind == "Pod"
                                        && self.find_ref(target).is_ok_and(|i| {
                                            self.objects[i].meta().deletion_timestamp.is_none()
                                        }) =>
                                {
                                    exp.deletion_failed(&target.uid);
                                }
                                _ => {}
                            }
                        }
                    }
                    result = Err(e);
                    break;
                }
            }
        }
        if let Some(exp) = exp {
            self.expectations.insert(key.clone(), exp);
        }
        match &result {
            Ok(()) => {
                self.last_error.remove(&key);
            }
            Err(e) => {
                self.last_error.insert(key, e.clone());
            }
        }
        result
    }

    fn apply_action(
        &mut self,
        action: &Action,
        chained: &mut BTreeMap<String, String>,
    ) -> Result<(), String> {
        match action {
            Action::Create { object, .. } => self.create(object.clone()).map(|_| ()),
            Action::CreatePods(batch) => {
                for p in &batch.pods {
                    self.create(p.clone())?;
                }
                Ok(())
            }
            Action::Update { object, .. } | Action::UpdateStatus { object } => {
                let i = self.find_ref(&object.object_ref())?;
                self.check_rv(i, &object.meta().resource_version, chained)?;
                let updated = if matches!(action, Action::Update { .. }) {
                    update_main(&self.objects[i], object)
                } else {
                    update_status(&self.objects[i], object)
                };
                let mut updated = updated.ok_or("kind mismatch")?;
                let rv = self.rv();
                let m = meta_mut(&mut updated);
                m.resource_version = rv.clone();
                chained.insert(m.uid.clone(), rv);
                self.objects[i] = updated;
                Ok(())
            }
            Action::Patch { target, patch, .. } => {
                let i = match self.find_ref(target) {
                    Ok(i) => i,
                    Err(e) if e.ends_with("not found") => return Ok(()),
                    Err(e) => return Err(e),
                };
                self.check_rv(i, &patch.resource_version, chained)?;
                let old = self.objects[i].clone();
                let mut new = old.clone();
                patch.apply_to(meta_mut(&mut new));
                let bump = spec_changed(&old, &new);
                let rv = self.rv();
                let m = meta_mut(&mut new);
                m.generation += i64::from(bump);
                m.resource_version = rv.clone();
                chained.insert(m.uid.clone(), rv);
                let finalized = m.deletion_timestamp.is_some() && m.finalizers.is_empty();
                self.objects[i] = new;
                if finalized {
                    self.objects.remove(i);
                }
                Ok(())
            }
            Action::Delete {
                target,
                preconditions,
                propagation,
                ..
            } => {
                let i = match self.find(&target.kind, &target.namespace, &target.name) {
                    Some(i) => i,
                    None => return Ok(()),
                };
                let m = self.objects[i].meta();
                if m.uid != preconditions.uid {
                    return Err(format!("{}: uid precondition failed", target.key()));
                }
                if !preconditions.resource_version.is_empty()
                    && m.resource_version != preconditions.resource_version
                {
                    return Err(format!(
                        "{}: resourceVersion precondition failed",
                        target.key()
                    ));
                }
                if m.deletion_timestamp.is_none() {
                    let fin = match propagation.map(|p| p.as_str()) {
                        Some("Foreground") => Some("foregroundDeletion"),
                        Some("Orphan") => Some("orphan"),
                        _ => None,
                    };
                    if let Some(f) = fin {
                        meta_mut(&mut self.objects[i]).finalizers.push(f.into());
                    }
                }
                self.remove(i);
                Ok(())
            }
            Action::FinalizeNamespace(ns) => {
                let i = self.find_ref(&ObjectRef::of(ns.as_ref()))?;
                self.check_rv(i, &ns.metadata.resource_version, chained)?;
                let rv = self.rv();
                if let Object::Namespace(stored) = &mut self.objects[i] {
                    stored.spec.finalizers = ns.spec.finalizers.clone();
                    stored.metadata.resource_version = rv;
                }
                Ok(())
            }
        }
    }

    // ----- typed views -----

    pub fn pods(&self) -> Vec<Pod> {
        self.objects
            .iter()
            .filter_map(|o| match o {
                Object::Pod(p) => Some(p.as_ref().clone()),
                _ => None,
            })
            .collect()
    }

    pub fn replica_sets(&self) -> Vec<ReplicaSet> {
        self.objects
            .iter()
            .filter_map(|o| match o {
                Object::ReplicaSet(r) => Some(r.as_ref().clone()),
                _ => None,
            })
            .collect()
    }

    pub fn deployment(&self, name: &str) -> Option<Deployment> {
        self.objects.iter().find_map(|o| match o {
            Object::Deployment(d) if d.metadata.name == name => Some(d.as_ref().clone()),
            _ => None,
        })
    }

    pub fn daemon_set(&self, name: &str) -> Option<DaemonSet> {
        self.objects.iter().find_map(|o| match o {
            Object::DaemonSet(d) if d.metadata.name == name => Some(d.as_ref().clone()),
            _ => None,
        })
    }

    pub fn controller_revisions(&self) -> Vec<ControllerRevision> {
        self.objects
            .iter()
            .filter_map(|o| match o {
                Object::ControllerRevision(r) => Some(r.as_ref().clone()),
                _ => None,
            })
            .collect()
    }

    pub fn jobs(&self) -> Vec<Job> {
        self.objects
            .iter()
            .filter_map(|o| match o {
                Object::Job(j) => Some(j.as_ref().clone()),
                _ => None,
            })
            .collect()
    }

    pub fn job(&self, name: &str) -> Option<Job> {
        self.jobs().into_iter().find(|j| j.metadata.name == name)
    }

    pub fn cron_job(&self, name: &str) -> Option<CronJob> {
        self.objects.iter().find_map(|o| match o {
            Object::CronJob(c) if c.metadata.name == name => Some(c.as_ref().clone()),
            _ => None,
        })
    }

    pub fn namespace(&self, name: &str) -> Option<Namespace> {
        self.objects.iter().find_map(|o| match o {
            Object::Namespace(n) if n.metadata.name == name => Some(n.as_ref().clone()),
            _ => None,
        })
    }

    /// Replaces an object's stored copy through `f` (a user's edit): the
    /// generation moves when the spec changed.
    pub fn edit<T>(
        &mut self,
        kind: &str,
        ns: &str,
        name: &str,
        f: impl FnOnce(&mut T),
    ) -> Result<(), String>
    where
        T: Clone,
        Object: From<T>,
        for<'a> &'a Object: TryInto<&'a T>,
    {
        let i = self.find(kind, ns, name).ok_or("not found")?;
        let old = self.objects[i].clone();
        let typed: &T = (&old).try_into().map_err(|_| "kind mismatch".to_string())?;
        let mut new = typed.clone();
        f(&mut new);
        let mut new = Object::from(new);
        let bump = spec_changed(&old, &new);
        let rv = self.rv();
        let m = meta_mut(&mut new);
        m.generation += i64::from(bump);
        m.resource_version = rv;
        self.objects[i] = new;
        Ok(())
    }

    // ----- the node agents -----

    /// Every pending pod starts on its node (or `node-1`) and is ready now.
    pub fn start_pods(&mut self) {
        let now = time(self.now);
        for o in &mut self.objects {
            if let Object::Pod(p) = o
                && p.metadata.deletion_timestamp.is_none()
                && (p.status.phase.is_empty() || p.status.phase == "Pending")
            {
                if p.spec.node_name.is_empty() {
                    p.spec.node_name = "node-1".into();
                }
                p.status.phase = "Running".into();
                p.status.start_time = Some(now);
                p.status.conditions = vec![PodCondition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    last_transition_time: Some(now),
                    ..Default::default()
                }];
            }
        }
    }

    /// The pod `name` finishes with `exit_code` (Succeeded when 0).
    pub fn finish_pod(&mut self, name: &str, exit_code: i32) {
        let now = time(self.now);
        for o in &mut self.objects {
            if let Object::Pod(p) = o
                && p.metadata.name == name
            {
                p.status.phase = if exit_code == 0 {
                    "Succeeded"
                } else {
                    "Failed"
                }
                .into();
                p.status.conditions.clear();
                let container = p
                    .spec
                    .containers
                    .first()
                    .map(|c| c.name.clone())
                    .unwrap_or_default();
                p.status.container_statuses = vec![ContainerStatus {
                    name: container,
                    state: ContainerState {
                        terminated: Some(ContainerStateTerminated {
                            exit_code,
                            finished_at: Some(now),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                    ..Default::default()
                }];
            }
        }
    }

    /// Pods being deleted stop; with no finalizer left they are gone, with
    /// finalizers they stay, finished, until those are removed.
    pub fn terminate_pods(&mut self) {
        for o in &mut self.objects {
            if let Object::Pod(p) = o
                && p.metadata.deletion_timestamp.is_some()
                && !p.is_terminal()
            {
                p.status.phase = "Failed".into();
                p.status.conditions.clear();
            }
        }
        self.objects.retain(|o| {
            !(matches!(o, Object::Pod(_))
                && o.meta().deletion_timestamp.is_some()
                && o.meta().finalizers.is_empty())
        });
    }

    /// The garbage collector in its simplest form: objects whose every
    /// owner is gone are deleted.
    pub fn collect_orphans(&mut self) {
        loop {
            let uids: std::collections::BTreeSet<String> =
                self.objects.iter().map(|o| o.meta().uid.clone()).collect();
            let before = self.objects.len();
            let mut doomed = Vec::new();
            for (i, o) in self.objects.iter().enumerate() {
                let refs = &o.meta().owner_references;
                if !refs.is_empty() && refs.iter().all(|r| !uids.contains(&r.uid)) {
                    doomed.push(i);
                }
            }
            for i in doomed.into_iter().rev() {
                self.remove(i);
            }
            if self.objects.len() == before {
                break;
            }
        }
    }

    /// Plans and applies every ReplicaSet once.
    pub fn sync_replica_sets(&mut self) {
        for rs in self.replica_sets() {
            let pods = self.pods();
            let pods: Vec<&Pod> = pods.iter().collect();
            let exp = self.expectations.get(&rs.metadata.uid).cloned();
            let err = self.last_error.get(&rs.metadata.uid).cloned();
            let observed = super::replicaset::Observed {
                pods: &pods,
                expectations: exp.as_ref(),
                last_error: err.as_deref(),
                now: self.now,
            };
            let plan = super::replicaset::plan(
                super::replicaset::Target::ReplicaSet(&rs),
                &observed,
                &mut self.rng,
            );
            let _ = self.apply(&plan);
        }
    }

    /// Plans and applies the DaemonSet `name` once.
    pub fn sync_daemon_set(&mut self, name: &str) -> Option<Plan> {
        let ds = self.daemon_set(name)?;
        let pods = self.pods();
        let pods: Vec<&Pod> = pods.iter().collect();
        let revisions = self.controller_revisions();
        let key = ds.metadata.uid.clone();
        let exp = self.expectations.get(&key).cloned();
        let backoff = self.ds_backoff.get(&key).cloned().unwrap_or_default();
        let observed = super::daemonset::Observed {
            nodes: &self.nodes,
            pods: &pods,
            revisions: &revisions,
            expectations: exp.as_ref(),
            backoff: &backoff,
            now: self.now,
        };
        let out = super::daemonset::plan(&ds, &observed, &mut self.rng);
        self.ds_backoff.insert(key, out.backoff);
        let _ = self.apply(&out.plan);
        Some(out.plan)
    }

    /// Plans and applies the Job `name` once.
    pub fn sync_job(&mut self, name: &str) -> Option<Plan> {
        let job = self.job(name)?;
        let pods = self.pods();
        let pods: Vec<&Pod> = pods.iter().collect();
        let exp = self.expectations.get(&job.metadata.uid).cloned();
        let observed = super::job::Observed {
            pods: &pods,
            expectations: exp.as_ref(),
            now: self.now,
        };
        let plan = super::job::plan(&job, &observed, &mut self.rng);
        let _ = self.apply(&plan);
        Some(plan)
    }

    /// Plans and applies the Deployment `name` once.
    pub fn sync_deployment(&mut self, name: &str) -> Option<Plan> {
        let d = self.deployment(name)?;
        let rss = self.replica_sets();
        let pods = self.pods();
        let pods: Vec<&Pod> = pods.iter().collect();
        let observed = super::deployment::Observed {
            replica_sets: &rss,
            pods: &pods,
            now: self.now,
        };
        let plan = super::deployment::plan(&d, &observed);
        let _ = self.apply(&plan);
        Some(plan)
    }
}

macro_rules! try_into_ref {
    ($($v:ident),*) => {
        $(impl<'a> TryFrom<&'a Object> for &'a $v {
            type Error = ();
            fn try_from(o: &'a Object) -> Result<Self, ()> {
                match o {
                    Object::$v(x) => Ok(x.as_ref()),
                    _ => Err(()),
                }
            }
        })*
    };
}

try_into_ref!(
    Pod,
    ReplicaSet,
    ReplicationController,
    Deployment,
    DaemonSet,
    ControllerRevision,
    Job,
    CronJob,
    Namespace
);

/// `kubectl rollout status` for a Deployment (apps/v1): the line it prints
/// and whether it is done, or the error it exits with.
pub(crate) fn rollout_status(d: &Deployment) -> Result<(String, bool), String> {
    let name = &d.metadata.name;
    let st = &d.status;
    if d.metadata.generation > st.observed_generation {
        return Ok((
            "Waiting for deployment spec update to be observed...".into(),
            false,
        ));
    }
    if st
        .conditions
        .iter()
        .any(|c| c.type_ == "Progressing" && c.reason == "ProgressDeadlineExceeded")
    {
        return Err(format!(
            "deployment {name:?} exceeded its progress deadline"
        ));
    }
    let replicas = d.replicas();
    if st.updated_replicas < replicas {
        return Ok((
            format!(
                "Waiting for deployment {name:?} rollout to finish: {} out of {replicas} new replicas have been updated...",
                st.updated_replicas
            ),
            false,
        ));
    }
    if st.replicas > st.updated_replicas {
        return Ok((
            format!(
                "Waiting for deployment {name:?} rollout to finish: {} old replicas are pending termination...",
                st.replicas - st.updated_replicas
            ),
            false,
        ));
    }
    if st.available_replicas < st.updated_replicas {
        return Ok((
            format!(
                "Waiting for deployment {name:?} rollout to finish: {} of {} updated replicas are available...",
                st.available_replicas, st.updated_replicas
            ),
            false,
        ));
    }
    Ok((format!("deployment {name:?} successfully rolled out"), true))
}
