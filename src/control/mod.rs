//! The control loops of the leader: scheduler, workload controllers,
//! garbage collector, namespace lifecycle, node lifecycle. Each loop is an
//! executor of a pure planner from [`crate::controllers`] (or of the
//! [`crate::scheduler`] framework): reflectors feed caches and enqueue keys,
//! workers plan one key at a time and carry the plan out through the
//! in-process API.
//!
//! Everything here runs only while this master leads the Raft group, with
//! writes fenced to the term it was elected in; when leadership is lost
//! every loop stops before the next leader's start matters.

pub mod executor;
pub mod gc;
pub mod metacache;
pub mod namespace;
pub mod nodelifecycle;
pub mod quota;
pub mod scheduler;
pub mod workloads;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::api::core::{Node, Pod};
use crate::apiserver::rest::Api;
use crate::runtime::WorkQueue;
use crate::runtime::reflector::{Informer, Reflector};

pub use executor::Executor;

/// Runs `workers` tasks that take keys from `queue` and call `sync`; a sync
/// error requeues the key with backoff, a requested delay requeues it then.
pub fn spawn_workers<F, Fut>(
    queue: WorkQueue<String>,
    workers: usize,
    mut shutdown: watch::Receiver<bool>,
    sync: F,
) -> Vec<tokio::task::JoinHandle<()>>
where
    F: Fn(String) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Option<Duration>, String>> + Send,
{
    let mut handles = Vec::new();
    {
        let q = queue.clone();
        handles.push(tokio::spawn(async move {
            let _ = shutdown.wait_for(|s| *s).await;
            q.shutdown();
        }));
    }
    for _ in 0..workers {
        let q = queue.clone();
        let sync = sync.clone();
        handles.push(tokio::spawn(async move {
            while let Some(key) = q.next().await {
                match sync(key.clone()).await {
                    Ok(requeue) => {
                        q.forget(&key);
                        if let Some(d) = requeue {
                            q.add_after(key.clone(), d);
                        }
                    }
                    Err(e) => {
                        tracing::debug!(key = %key, error = %e, "sync failed; requeued with backoff");
                        q.add_rate_limited(key.clone());
                    }
                }
                q.done(&key);
            }
        }));
    }
    handles
}

/// Tunables of the control loops.
#[derive(Clone, Debug)]
pub struct ControlConfig {
    /// The master's name, as events report it.
    pub host: String,
    /// How long a node may go without renewing its Lease before it is
    /// Unknown and its pods are evicted.
    pub node_grace: Duration,
}

impl Default for ControlConfig {
    fn default() -> Self {
        ControlConfig {
            host: crate::auth::pki::host_name().unwrap_or_else(|| "wasmk".into()),
            node_grace: Duration::from_secs(8),
        }
    }
}

/// Starts every control loop with writes fenced to `term`; they stop when
/// `stop` turns true. Returns their tasks.
pub fn start_loops(
    api: &Api,
    term: u64,
    cfg: &ControlConfig,
    stop: watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let api = api.fenced(term);
    let exec = Arc::new(Executor::new(api.clone(), &cfg.host));
    let mut tasks = Vec::new();
    // One cache per shared type, whatever the number of controllers using it.
    let (nodes, h) = Informer::<Node>::spawn(Reflector::default(), api.clone(), stop.clone());
    tasks.push(h);
    let (pods, h) = Informer::<Pod>::spawn(Reflector::default(), api.clone(), stop.clone());
    tasks.push(h);
    let (meta, h) = metacache::MetaCache::spawn(api.store.clone(), stop.clone());
    tasks.push(h);
    tasks.extend(scheduler::start(exec.clone(), &nodes, &pods, stop.clone()));
    tasks.extend(nodelifecycle::start(
        exec.clone(),
        &nodes,
        &pods,
        cfg.node_grace,
        stop.clone(),
    ));
    tasks.extend(gc::start(exec.clone(), &meta, stop.clone()));
    tasks.extend(namespace::start(exec.clone(), &meta, stop.clone()));
    tasks.extend(quota::start(exec.clone(), &meta, stop.clone()));
    tasks.extend(workloads::start(exec, &nodes, &pods, stop));
    tasks
}

/// Runs the control loops whenever this master leads, until `shutdown`.
pub async fn run_when_leader(api: Api, cfg: ControlConfig, mut shutdown: watch::Receiver<bool>) {
    let mut role = api.store.role_watch();
    loop {
        // Wait to lead (or to be told to stop).
        let term = loop {
            let r = *role.borrow_and_update();
            if r.is_leader {
                break r.term;
            }
            tokio::select! {
                c = role.changed() => if c.is_err() { return },
                _ = shutdown.changed() => return,
            }
            if *shutdown.borrow() {
                return;
            }
        };
        tracing::info!(term, "leading: starting the control loops");
        let (stop_tx, stop_rx) = watch::channel(false);
        let tasks = start_loops(&api, term, &cfg, stop_rx);
        // Lead until the role or term changes.
        let stopping = loop {
            tokio::select! {
                c = role.changed() => {
                    if c.is_err() { break true; }
                    let r = *role.borrow_and_update();
                    if !r.is_leader || r.term != term { break false; }
                }
                _ = shutdown.changed() => break true,
            }
        };
        let _ = stop_tx.send(true);
        for t in tasks {
            let _ = t.await;
        }
        tracing::info!(term, "control loops stopped");
        if stopping || *shutdown.borrow() {
            return;
        }
    }
}
