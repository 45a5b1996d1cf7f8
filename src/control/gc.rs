//! The garbage collector loop: the ownership graph from [`MetaCache`], one
//! object at a time planned by [`crate::controllers::gc::plan_item`].

use std::sync::Arc;

use tokio::sync::watch;

use super::executor::Executor;
use super::metacache::{Change, MetaCache};
use super::spawn_workers;
use crate::runtime::WorkQueue;

/// Starts the garbage collector.
pub fn start(
    exec: Arc<Executor>,
    cache: &MetaCache,
    stop: watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let queue: WorkQueue<String> = WorkQueue::new();
    let q = queue.clone();
    cache.add_handler(move |change| match change.clone() {
        Change::Upsert {
            uid, dependents, ..
        } => {
            q.add(uid);
            for d in dependents {
                q.add(d);
            }
        }
        Change::Removed {
            owners, dependents, ..
        } => {
            // Dependents may now be dangling; owners in foreground
            // deletion may now be unblocked.
            for u in owners.into_iter().chain(dependents) {
                q.add(u);
            }
        }
    });
    let cache = cache.clone();
    let mut tasks = Vec::new();
    tasks.extend(spawn_workers(queue, 2, stop, move |uid: String| {
        let exec = exec.clone();
        let cache = cache.clone();
        async move { sync(&exec, &cache, &uid).await }
    }));
    tasks
}

async fn sync(
    exec: &Executor,
    cache: &MetaCache,
    uid: &str,
) -> Result<Option<std::time::Duration>, String> {
    let gp = cache.with_graph(|g| crate::controllers::gc::plan_item(g, uid));
    if gp.plan.is_noop() {
        return Ok(gp.plan.requeue_after);
    }
    // The graph may lag: confirm each owner is really gone before acting.
    for owner in &gp.verify_absent {
        let (group, _) = owner.api_version.rsplit_once('/').unwrap_or(("", ""));
        let Some(rt) = exec.api.registry.by_kind(group, &owner.kind) else {
            continue;
        };
        match exec
            .api
            .get(rt.info(), &owner.namespace, &owner.name, None)
            .await
        {
            Ok(b) => {
                let v: serde_json::Value = serde_json::from_slice(&b).unwrap_or_default();
                if v.pointer("/metadata/uid").and_then(|u| u.as_str()) == Some(owner.uid.as_str()) {
                    return Ok(None);
                }
            }
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e.message),
        }
    }
    exec.execute(gp.plan).await.map_err(|e| e.error.message)
}
