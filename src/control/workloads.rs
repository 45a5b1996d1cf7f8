//! Workload controller loops: ReplicaSet, ReplicationController,
//! Deployment, DaemonSet, Job, CronJob. Each keys its queue by
//! `namespace/name`; reflectors of the objects they own enqueue the owner.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::watch;

use super::executor::Executor;
use super::spawn_workers;
use crate::api::apps::{ControllerRevision, DaemonSet, Deployment, ReplicaSet};
use crate::api::batch::{CronJob, Job};
use crate::api::core::{Node, Pod, ReplicationController};
use crate::api::{ObjectMeta, Resource};
use crate::controllers::daemonset::FailedPodBackoff;
use crate::controllers::{cronjob, daemonset, deployment, job, replicaset};
use crate::runtime::WorkQueue;
use crate::runtime::reflector::{Event, Informer, Reflector, Store, key_of};

/// `namespace/name` of the controller owning `meta` with `kind`, if any.
fn owner_key(meta: &ObjectMeta, kind: &str) -> Option<String> {
    let r = meta.controller_ref()?;
    (r.kind == kind).then(|| format!("{}/{}", meta.namespace, r.name))
}

fn split(key: &str) -> (&str, &str) {
    key.split_once('/').unwrap_or(("", key))
}

/// Typed objects of one namespace, cloned out of a cache.
fn in_ns<T: Resource>(store: &Store<T>, ns: &str) -> Vec<T> {
    shared_in_ns(store, ns)
        .into_iter()
        .map(|o| (*o).clone())
        .collect()
}

/// Objects of one namespace, shared with the cache (for the big lists a
/// sync only reads: copying every pod of a namespace on each sync made a
/// 1,000-replica ReplicaSet quadratic).
fn shared_in_ns<T: Resource>(store: &Store<T>, ns: &str) -> Vec<Arc<T>> {
    store.filter(|o| o.meta().namespace == ns)
}

/// Enqueues the key of every object in `store` in `ns` (for events that may
/// concern any of them, such as an orphan pod that one may adopt).
fn enqueue_all_in<T: Resource>(q: &WorkQueue<String>, store: &Store<T>, ns: &str) {
    for o in store.filter(|o| o.meta().namespace == ns) {
        q.add(key_of(o.as_ref()));
    }
}

/// Starts every workload controller.
pub fn start(
    exec: Arc<Executor>,
    nodes: &Informer<Node>,
    pods: &Informer<Pod>,
    stop: watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let api = exec.api.clone();
    let rs_q: WorkQueue<String> = WorkQueue::new();
    let rc_q: WorkQueue<String> = WorkQueue::new();
    let dep_q: WorkQueue<String> = WorkQueue::new();
    let ds_q: WorkQueue<String> = WorkQueue::new();
    let job_q: WorkQueue<String> = WorkQueue::new();
    let cj_q: WorkQueue<String> = WorkQueue::new();
    let mut tasks = Vec::new();

    // Owner caches first: pod events look owners up.
    let (rs_store, h) = {
        let (rq, dq) = (rs_q.clone(), dep_q.clone());
        Reflector::default().spawn::<ReplicaSet, _>(
            api.clone(),
            move |e| {
                let rs = match &e {
                    Event::Applied { new, .. } => new,
                    Event::Deleted(o) => o,
                };
                rq.add(key_of(rs.as_ref()));
                if let Some(k) = owner_key(&rs.metadata, "Deployment") {
                    dq.add(k);
                }
            },
            stop.clone(),
        )
    };
    tasks.push(h);
    let (rc_store, h) = {
        let q = rc_q.clone();
        Reflector::default().spawn::<ReplicationController, _>(
            api.clone(),
            move |e| match e {
                Event::Applied { new, .. } => q.add(key_of(new.as_ref())),
                Event::Deleted(o) => q.add(key_of(o.as_ref())),
            },
            stop.clone(),
        )
    };
    tasks.push(h);
    let (dep_store, h) = {
        let q = dep_q.clone();
        Reflector::default().spawn::<Deployment, _>(
            api.clone(),
            move |e| match e {
                Event::Applied { new, .. } => q.add(key_of(new.as_ref())),
                Event::Deleted(o) => q.add(key_of(o.as_ref())),
            },
            stop.clone(),
        )
    };
    tasks.push(h);
    let (ds_store, h) = {
        let q = ds_q.clone();
        Reflector::default().spawn::<DaemonSet, _>(
            api.clone(),
            move |e| match e {
                Event::Applied { new, .. } => q.add(key_of(new.as_ref())),
                Event::Deleted(o) => q.add(key_of(o.as_ref())),
            },
            stop.clone(),
        )
    };
    tasks.push(h);
    let (job_store, h) = {
        let (jq, cq) = (job_q.clone(), cj_q.clone());
        Reflector::default().spawn::<Job, _>(
            api.clone(),
            move |e| {
                let j = match &e {
                    Event::Applied { new, .. } => new,
                    Event::Deleted(o) => o,
                };
                jq.add(key_of(j.as_ref()));
                if let Some(k) = owner_key(&j.metadata, "CronJob") {
                    cq.add(k);
                }
            },
            stop.clone(),
        )
    };
    tasks.push(h);
    let (cj_store, h) = {
        let q = cj_q.clone();
        Reflector::default().spawn::<CronJob, _>(
            api.clone(),
            move |e| match e {
                Event::Applied { new, .. } => q.add(key_of(new.as_ref())),
                Event::Deleted(o) => q.add(key_of(o.as_ref())),
            },
            stop.clone(),
        )
    };
    tasks.push(h);
    let (cr_store, h) = {
        let q = ds_q.clone();
        Reflector::default().spawn::<ControllerRevision, _>(
            api.clone(),
            move |e| {
                let r = match &e {
                    Event::Applied { new, .. } => new,
                    Event::Deleted(o) => o,
                };
                if let Some(k) = owner_key(&r.metadata, "DaemonSet") {
                    q.add(k);
                }
            },
            stop.clone(),
        )
    };
    tasks.push(h);
    {
        let q = ds_q.clone();
        let ds_store = ds_store.clone();
        nodes.add_handler(move |_| {
            for d in ds_store.list() {
                q.add(key_of(d.as_ref()));
            }
        });
    }
    let node_store = nodes.store();
    {
        let (rq, cq, dq, sq, jq) = (
            rs_q.clone(),
            rc_q.clone(),
            dep_q.clone(),
            ds_q.clone(),
            job_q.clone(),
        );
        let (rs_s, rc_s, ds_s, job_s) = (
            rs_store.clone(),
            rc_store.clone(),
            ds_store.clone(),
            job_store.clone(),
        );
        pods.add_handler(move |e| {
            let p = match e {
                Event::Applied { new, .. } => new,
                Event::Deleted(o) => o,
            };
            let m = &p.metadata;
            match m.controller_ref().map(|r| r.kind.as_str()) {
                Some("ReplicaSet") => {
                    if let Some(k) = owner_key(m, "ReplicaSet") {
                        // Recreate rollouts wait on the pods of old ReplicaSets.
                        if let Some(rs) = rs_s.get(&k)
                            && let Some(dk) = owner_key(&rs.metadata, "Deployment")
                        {
                            dq.add(dk);
                        }
                        rq.add(k);
                    }
                }
                Some("ReplicationController") => {
                    if let Some(k) = owner_key(m, "ReplicationController") {
                        cq.add(k);
                    }
                }
                Some("DaemonSet") => {
                    if let Some(k) = owner_key(m, "DaemonSet") {
                        sq.add(k);
                    }
                }
                Some("Job") => {
                    if let Some(k) = owner_key(m, "Job") {
                        jq.add(k);
                    }
                }
                Some(_) => {}
                None => {
                    // An orphan: any controller of its namespace may adopt it.
                    enqueue_all_in(&rq, &rs_s, &m.namespace);
                    enqueue_all_in(&cq, &rc_s, &m.namespace);
                    enqueue_all_in(&sq, &ds_s, &m.namespace);
                    enqueue_all_in(&jq, &job_s, &m.namespace);
                }
            }
        });
    }
    let pod_store = pods.store();

    // Errors of the previous plan's pod calls, per subject (ReplicaFailure).
    let last_errors: Arc<Mutex<HashMap<String, String>>> = Arc::default();

    // ReplicaSets.
    {
        let (exec, rs_store, pod_store, last_errors) = (
            exec.clone(),
            rs_store.clone(),
            pod_store.clone(),
            last_errors.clone(),
        );
        tasks.extend(spawn_workers(rs_q, 2, stop.clone(), move |key: String| {
            let (exec, rs_store, pod_store, last_errors) = (
                exec.clone(),
                rs_store.clone(),
                pod_store.clone(),
                last_errors.clone(),
            );
            async move {
                pod_store.wait_synced().await;
                let (ns, name) = split(&key);
                let ekey = Executor::key_for("ReplicaSet", ns, name);
                let Some(rs) = rs_store.get(&key) else {
                    exec.forget_expectations(&ekey);
                    return Ok(None);
                };
                let pods = shared_in_ns(&pod_store, ns);
                let pods: Vec<&Pod> = pods.iter().map(AsRef::as_ref).collect();
                let exp = exec.expectations(&ekey);
                let err = last_errors.lock().get(&ekey).cloned();
                let plan = replicaset::plan(
                    replicaset::Target::ReplicaSet(&rs),
                    &replicaset::Observed {
                        pods: &pods,
                        expectations: exp.as_ref(),
                        last_error: err.as_deref(),
                        now: chrono::Utc::now(),
                    },
                    &mut rand::rng(),
                );
                finish(&exec, plan, &last_errors, &ekey).await
            }
        }));
    }
    // ReplicationControllers.
    {
        let (exec, rc_store, pod_store, last_errors) = (
            exec.clone(),
            rc_store.clone(),
            pod_store.clone(),
            last_errors.clone(),
        );
        tasks.extend(spawn_workers(rc_q, 1, stop.clone(), move |key: String| {
            let (exec, rc_store, pod_store, last_errors) = (
                exec.clone(),
                rc_store.clone(),
                pod_store.clone(),
                last_errors.clone(),
            );
            async move {
                pod_store.wait_synced().await;
                let (ns, name) = split(&key);
                let ekey = Executor::key_for("ReplicationController", ns, name);
                let Some(rc) = rc_store.get(&key) else {
                    exec.forget_expectations(&ekey);
                    return Ok(None);
                };
                let pods = shared_in_ns(&pod_store, ns);
                let pods: Vec<&Pod> = pods.iter().map(AsRef::as_ref).collect();
                let exp = exec.expectations(&ekey);
                let err = last_errors.lock().get(&ekey).cloned();
                let plan = replicaset::plan(
                    replicaset::Target::ReplicationController(&rc),
                    &replicaset::Observed {
                        pods: &pods,
                        expectations: exp.as_ref(),
                        last_error: err.as_deref(),
                        now: chrono::Utc::now(),
                    },
                    &mut rand::rng(),
                );
                finish(&exec, plan, &last_errors, &ekey).await
            }
        }));
    }
    // Deployments.
    {
        let (exec, dep_store, rs_store, pod_store) = (
            exec.clone(),
            dep_store.clone(),
            rs_store.clone(),
            pod_store.clone(),
        );
        tasks.extend(spawn_workers(dep_q, 2, stop.clone(), move |key: String| {
            let (exec, dep_store, rs_store, pod_store) = (
                exec.clone(),
                dep_store.clone(),
                rs_store.clone(),
                pod_store.clone(),
            );
            async move {
                rs_store.wait_synced().await;
                pod_store.wait_synced().await;
                let (ns, _) = split(&key);
                let Some(d) = dep_store.get(&key) else {
                    return Ok(None);
                };
                let rss = in_ns(&rs_store, ns);
                let pods = shared_in_ns(&pod_store, ns);
                let pods: Vec<&Pod> = pods.iter().map(AsRef::as_ref).collect();
                let plan = deployment::plan(
                    &d,
                    &deployment::Observed {
                        replica_sets: &rss,
                        pods: &pods,
                        now: chrono::Utc::now(),
                    },
                );
                exec.execute(plan).await.map_err(|e| e.error.message)
            }
        }));
    }
    // DaemonSets.
    {
        let backoffs: Arc<Mutex<HashMap<String, FailedPodBackoff>>> = Arc::default();
        let (exec, ds_store, pod_store, node_store, cr_store) = (
            exec.clone(),
            ds_store.clone(),
            pod_store.clone(),
            node_store.clone(),
            cr_store.clone(),
        );
        tasks.extend(spawn_workers(ds_q, 1, stop.clone(), move |key: String| {
            let (exec, ds_store, pod_store, node_store, cr_store, backoffs) = (
                exec.clone(),
                ds_store.clone(),
                pod_store.clone(),
                node_store.clone(),
                cr_store.clone(),
                backoffs.clone(),
            );
            async move {
                pod_store.wait_synced().await;
                node_store.wait_synced().await;
                cr_store.wait_synced().await;
                let (ns, name) = split(&key);
                let ekey = Executor::key_for("DaemonSet", ns, name);
                let Some(ds) = ds_store.get(&key) else {
                    exec.forget_expectations(&ekey);
                    backoffs.lock().remove(&key);
                    return Ok(None);
                };
                let nodes: Vec<Node> = node_store
                    .list()
                    .into_iter()
                    .map(|n| (*n).clone())
                    .collect();
                let pods = shared_in_ns(&pod_store, ns);
                let pods: Vec<&Pod> = pods.iter().map(AsRef::as_ref).collect();
                let revs = in_ns(&cr_store, ns);
                let exp = exec.expectations(&ekey);
                let backoff = backoffs.lock().get(&key).cloned().unwrap_or_default();
                let dp = daemonset::plan(
                    &ds,
                    &daemonset::Observed {
                        nodes: &nodes,
                        pods: &pods,
                        revisions: &revs,
                        expectations: exp.as_ref(),
                        backoff: &backoff,
                        now: chrono::Utc::now(),
                    },
                    &mut rand::rng(),
                );
                backoffs.lock().insert(key.clone(), dp.backoff);
                exec.execute(dp.plan).await.map_err(|e| e.error.message)
            }
        }));
    }
    // Jobs.
    {
        let (exec, job_store, pod_store) = (exec.clone(), job_store.clone(), pod_store.clone());
        tasks.extend(spawn_workers(job_q, 2, stop.clone(), move |key: String| {
            let (exec, job_store, pod_store) = (exec.clone(), job_store.clone(), pod_store.clone());
            async move {
                pod_store.wait_synced().await;
                let (ns, name) = split(&key);
                let ekey = Executor::key_for("Job", ns, name);
                let Some(j) = job_store.get(&key) else {
                    exec.forget_expectations(&ekey);
                    return Ok(None);
                };
                let pods = shared_in_ns(&pod_store, ns);
                let pods: Vec<&Pod> = pods.iter().map(AsRef::as_ref).collect();
                let exp = exec.expectations(&ekey);
                let plan = job::plan(
                    &j,
                    &job::Observed {
                        pods: &pods,
                        expectations: exp.as_ref(),
                        now: chrono::Utc::now(),
                    },
                    &mut rand::rng(),
                );
                exec.execute(plan).await.map_err(|e| e.error.message)
            }
        }));
    }
    // CronJobs.
    {
        let (exec, cj_store, job_store) = (exec.clone(), cj_store.clone(), job_store.clone());
        tasks.extend(spawn_workers(cj_q, 1, stop, move |key: String| {
            let (exec, cj_store, job_store) = (exec.clone(), cj_store.clone(), job_store.clone());
            async move {
                job_store.wait_synced().await;
                let (ns, _) = split(&key);
                let Some(cj) = cj_store.get(&key) else {
                    return Ok(None);
                };
                let jobs = in_ns(&job_store, ns);
                let plan = cronjob::plan(
                    &cj,
                    &cronjob::Observed {
                        jobs: &jobs,
                        now: chrono::Utc::now(),
                    },
                );
                exec.execute(plan).await.map_err(|e| e.error.message)
            }
        }));
    }
    tasks
}

/// Executes a plan, keeping the pod-call error the ReplicaSet planner reads
/// back as `last_error`.
async fn finish(
    exec: &Executor,
    plan: crate::controllers::plan::Plan,
    last_errors: &Mutex<HashMap<String, String>>,
    ekey: &str,
) -> Result<Option<Duration>, String> {
    match exec.execute(plan).await {
        Ok(r) => {
            last_errors.lock().remove(ekey);
            Ok(r)
        }
        Err(e) => {
            if e.pod_call {
                last_errors
                    .lock()
                    .insert(ekey.to_string(), e.error.message.clone());
            }
            Err(e.error.message)
        }
    }
}
