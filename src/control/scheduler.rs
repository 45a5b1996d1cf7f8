//! The binding loop around the [`crate::scheduler`] framework: nodes and
//! bound pods feed the cache, unbound pods queue up, each batch of queued
//! pods is placed (assuming each placement before the next) and bound with
//! one write per pod; pods that fit nowhere get PodScheduled=False with the
//! reason per node and wait until a node or a pod changes.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::json;
use tokio::sync::{Notify, watch};

use super::executor::Executor;
use crate::api::Time;
use crate::api::core::{Node, Pod};
use crate::api::registry::UpdateScope;
use crate::apiserver::patch::PatchType;
use crate::apiserver::rest::WriteOptions;
use crate::controllers::events::EventSpec;
use crate::controllers::plan::ObjectRef;
use crate::runtime::reflector::{Event, Informer, key_of};
use crate::scheduler::{
    Cache, PodInfo, needs_scheduling, schedule_batch, unschedulable_condition, update_pod_condition,
};

struct State {
    cache: Cache,
    /// Unbound pods waiting for a scheduling attempt (`ns/name`).
    active: BTreeSet<String>,
    /// Pods that fit nowhere, waiting for the cluster to change.
    parked: HashSet<String>,
}

/// Starts the scheduler.
pub fn start(
    exec: Arc<Executor>,
    nodes: &Informer<Node>,
    pods: &Informer<Pod>,
    stop: watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let state = Arc::new(Mutex::new(State {
        cache: Cache::new(),
        active: BTreeSet::new(),
        parked: HashSet::new(),
    }));
    let wake = Arc::new(Notify::new());
    let unpark = |s: &mut State| {
        let parked: Vec<String> = s.parked.drain().collect();
        s.active.extend(parked);
    };
    {
        let (state, wake) = (state.clone(), wake.clone());
        nodes.add_handler(move |e| {
            let mut s = state.lock();
            match e {
                Event::Applied { new, .. } => s.cache.update_node(new),
                Event::Deleted(n) => {
                    let _ = s.cache.remove_node(&n.metadata.name);
                }
            }
            unpark(&mut s);
            wake.notify_one();
        });
    }
    {
        let (state, wake) = (state.clone(), wake.clone());
        pods.add_handler(move |e| {
            let mut s = state.lock();
            match e {
                Event::Applied { new, .. } => {
                    let key = key_of(new.as_ref());
                    if !new.spec.node_name.is_empty() {
                        s.active.remove(&key);
                        s.parked.remove(&key);
                        // Confirms an assumed placement or records a foreign one.
                        if let Err(err) = s.cache.add_pod(new) {
                            tracing::debug!(pod = %key, error = %err, "scheduler cache");
                        }
                        // A pod that finished frees room.
                        if new.is_terminal() {
                            unpark(&mut s);
                            wake.notify_one();
                        }
                    } else if needs_scheduling(new) {
                        if !s.parked.contains(&key) {
                            s.active.insert(key);
                            wake.notify_one();
                        }
                    } else {
                        s.active.remove(&key);
                        s.parked.remove(&key);
                    }
                }
                Event::Deleted(p) => {
                    let key = key_of(p.as_ref());
                    s.active.remove(&key);
                    s.parked.remove(&key);
                    if !p.spec.node_name.is_empty() {
                        let _ = s.cache.remove_pod(p);
                        unpark(&mut s);
                        wake.notify_one();
                    }
                }
            }
        });
    }
    let (nodes, pods) = (nodes.store(), pods.store());
    let mut stop_rx = stop.clone();
    let h3 = tokio::spawn(async move {
        nodes.wait_synced().await;
        pods.wait_synced().await;
        loop {
            let batch: Vec<Arc<Pod>> = {
                let mut s = state.lock();
                let keys: Vec<String> = std::mem::take(&mut s.active).into_iter().collect();
                keys.iter()
                    .filter_map(|k| pods.get(k))
                    .filter(|p| needs_scheduling(p))
                    .collect()
            };
            if batch.is_empty() {
                tokio::select! {
                    _ = wake.notified() => {}
                    // Unschedulable pods are retried now and then even
                    // without a change (a lease expiry is not an event here).
                    _ = tokio::time::sleep(Duration::from_secs(30)) => {
                        let mut s = state.lock();
                        unpark(&mut s);
                    }
                    _ = stop_rx.changed() => return,
                }
                continue;
            }
            let infos: Vec<PodInfo> = batch.iter().map(|p| PodInfo::from_pod(p)).collect();
            let results = {
                let mut s = state.lock();
                schedule_batch(&infos, &mut s.cache)
            };
            let mut binds = Vec::new();
            for ((pod, info), (_, result)) in batch.iter().zip(&infos).zip(results) {
                match result {
                    Ok(node) => binds.push(bind(&exec, &state, pod.clone(), info.clone(), node)),
                    Err(fit) => {
                        state.lock().parked.insert(key_of(pod.as_ref()));
                        unschedulable(&exec, pod, &fit).await;
                    }
                }
            }
            // Bind concurrently: the store batches the writes into few fsyncs.
            futures::future::join_all(binds).await;
            if *stop_rx.borrow() {
                return;
            }
        }
    });
    vec![h3]
}

async fn bind(exec: &Executor, state: &Mutex<State>, pod: Arc<Pod>, info: PodInfo, node: String) {
    let m = &pod.metadata;
    let binding = json!({
        "apiVersion": "v1", "kind": "Binding",
        "metadata": {"name": m.name, "namespace": m.namespace, "uid": m.uid},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node},
    });
    match exec
        .api
        .bind(&m.namespace, &m.name, &binding, &WriteOptions::default())
        .await
    {
        Ok(_) => exec.record(&EventSpec::normal(
            &ObjectRef::of(pod.as_ref()),
            "Scheduled",
            format!(
                "Successfully assigned {}/{} to {}",
                m.namespace, m.name, node
            ),
        )),
        Err(e) => {
            tracing::debug!(pod = %info.key(), node = %node, error = %e, "binding failed");
            let mut s = state.lock();
            let _ = s.cache.forget_pod(&info);
            // Unless the pod is gone or bound elsewhere, try again.
            if e.code != 404 {
                s.active.insert(info.key());
            }
        }
    }
}

async fn unschedulable(exec: &Executor, pod: &Pod, fit: &crate::scheduler::FitError) {
    let mut status = pod.status.clone();
    if update_pod_condition(&mut status, unschedulable_condition(fit, Time::now())) {
        let patch = json!({"status": {"conditions": status.conditions}});
        if let Ok(rt) = exec.api.resource("", "v1", "pods") {
            let _ = exec
                .api
                .patch(
                    rt,
                    &pod.metadata.namespace,
                    &pod.metadata.name,
                    PatchType::Merge,
                    &patch,
                    UpdateScope::Status,
                    &WriteOptions::default(),
                )
                .await;
        }
        exec.record(&EventSpec::warning(
            &ObjectRef::of(pod),
            "FailedScheduling",
            fit.to_string(),
        ));
    }
}
