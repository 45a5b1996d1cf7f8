//! The namespace lifecycle loop: a namespace being deleted has its content
//! deleted, then its `kubernetes` finalizer removed, then goes away.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::watch;

use super::executor::Executor;
use super::metacache::{Change, MetaCache};
use super::spawn_workers;
use crate::api::core::Namespace;
use crate::controllers::namespace::{Observed, plan};
use crate::runtime::WorkQueue;
use crate::runtime::reflector::{Event, Reflector};

/// Starts the namespace controller.
pub fn start(
    exec: Arc<Executor>,
    content: &MetaCache,
    stop: watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let queue: WorkQueue<String> = WorkQueue::new();
    let q = queue.clone();
    let (namespaces, h1) = Reflector::default().spawn::<Namespace, _>(
        exec.api.clone(),
        move |e| {
            if let Event::Applied { new, .. } = e
                && new.metadata.deletion_timestamp.is_some()
            {
                q.add(new.metadata.name.clone());
            }
        },
        stop.clone(),
    );
    let q = queue.clone();
    let ns_cache = namespaces.clone();
    content.add_handler(move |change| {
        // Content leaving a terminating namespace may let it finish.
        if let Change::Removed { namespace, .. } = change
            && !namespace.is_empty()
            && ns_cache
                .get(namespace)
                .is_some_and(|n| n.metadata.deletion_timestamp.is_some())
        {
            q.add(namespace.clone());
        }
    });
    let content = content.clone();
    let errors: Arc<Mutex<HashMap<String, Vec<String>>>> = Arc::default();
    let mut tasks = vec![h1];
    tasks.extend(spawn_workers(queue, 1, stop, move |name: String| {
        let exec = exec.clone();
        let namespaces = namespaces.clone();
        let content = content.clone();
        let errors = errors.clone();
        async move {
            let Some(ns) = namespaces.get(&name) else {
                return Ok(None);
            };
            if ns.metadata.deletion_timestamp.is_none() {
                return Ok(None);
            }
            let objects = content.namespace_content(&name);
            let prev = errors.lock().get(&name).cloned().unwrap_or_default();
            let p = plan(
                &ns,
                &Observed {
                    content: &objects,
                    delete_errors: &prev,
                    now: chrono::Utc::now(),
                },
            );
            match exec.execute(p).await {
                Ok(requeue) => {
                    errors.lock().remove(&name);
                    // Keep looking while content remains.
                    Ok(requeue
                        .or(Some(std::time::Duration::from_secs(2)))
                        .filter(|_| !objects.is_empty()))
                }
                Err(e) => {
                    errors.lock().insert(name, vec![e.error.message.clone()]);
                    Err(e.error.message)
                }
            }
        }
    }));
    tasks
}
