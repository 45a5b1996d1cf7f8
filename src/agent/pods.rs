//! The pods bound to this node: a watch (`fieldSelector
//! spec.nodeName=NODE`) feeding one [`Worker`] per pod, re-adoption of the
//! sandboxes a previous agent left running, and removal of what is left of
//! pods that no longer exist.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::Ctx;
use super::containers::Layout;
use super::informer::{self, InformerEvent};
use super::process::{self, ContainerCheckpoint, PodCheckpoint};
use super::worker::{Adopted, Msg, Worker};
use crate::api::core::Pod;

/// Reads the pod state directories left under `pods/`.
pub fn scan_local(ctx: &Ctx) -> HashMap<String, Adopted> {
    let mut out = HashMap::new();
    let dir = ctx.layout.pods_dir();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let uid = entry.file_name().to_string_lossy().into_owned();
        let pod = match process::read_json::<PodCheckpoint>(&ctx.layout.pod_checkpoint(&uid)) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "unreadable pod checkpoint");
                None
            }
        };
        let mut containers = Vec::new();
        if let Ok(files) = std::fs::read_dir(ctx.layout.containers_dir(&uid)) {
            for f in files.flatten() {
                let path = f.path();
                let file = f.file_name().to_string_lossy().into_owned();
                if let Some(name) = Layout::container_of_checkpoint(&file) {
                    match process::read_json::<ContainerCheckpoint>(&path) {
                        Ok(Some(cp)) => containers.push((name.to_string(), cp)),
                        Ok(None) => {}
                        Err(e) => tracing::warn!(error = %e, "unreadable container checkpoint"),
                    }
                }
            }
        }
        out.insert(uid, Adopted { pod, containers });
    }
    out
}

/// Kills and removes everything of a pod that no longer exists.
fn clean_orphan(ctx: &Ctx, uid: &str) {
    if let (Ok(mgr), Ok(cg)) = (ctx.cgroups.manager(), ctx.cgroups.pod(uid))
        && let Err(e) = mgr.remove(&cg)
    {
        tracing::warn!(%uid, error = %e, "cannot remove the cgroup of a deleted pod");
    }
    remove_dir(&ctx.layout.pod_dir(uid));
}

fn remove_dir(dir: &Path) {
    if let Err(e) = std::fs::remove_dir_all(dir)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(path = %dir.display(), error = %e, "cannot remove directory");
    }
}

struct Handle {
    tx: mpsc::UnboundedSender<Msg>,
    terminal: bool,
}

/// Dispatches pod events to workers.
pub struct PodManager {
    ctx: Arc<Ctx>,
    workers: HashMap<String, Handle>,
    tasks: JoinSet<String>,
    /// State found on disk at start, until the first list claims it.
    local: Option<HashMap<String, Adopted>>,
}

impl PodManager {
    pub fn new(ctx: Arc<Ctx>) -> PodManager {
        let local = scan_local(&ctx);
        PodManager {
            ctx,
            workers: HashMap::new(),
            tasks: JoinSet::new(),
            local: Some(local),
        }
    }

    /// Runs until `shutdown`. Sandboxes keep running when the agent stops:
    /// the next agent re-adopts them.
    pub async fn run(mut self, shutdown: watch::Receiver<bool>) {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let selector = format!("spec.nodeName={}", self.ctx.cfg.node_name);
        let informer = tokio::spawn(informer::run(
            self.ctx.client.clone(),
            "/api/v1/pods".into(),
            Some(selector),
            tx,
            shutdown.clone(),
        ));
        let mut shutdown = shutdown;
        loop {
            tokio::select! {
                ev = rx.recv() => match ev {
                    Some(ev) => self.handle(ev),
                    None => break,
                },
                Some(done) = self.tasks.join_next(), if !self.tasks.is_empty() => {
                    if let Ok(uid) = done {
                        self.workers.remove(&uid);
                    }
                }
                _ = super::stopped(&mut shutdown) => break,
            }
        }
        self.tasks.shutdown().await;
        let _ = informer.await;
    }

    fn handle(&mut self, ev: InformerEvent) {
        match ev {
            InformerEvent::Listed(items) => {
                let mut seen = HashSet::new();
                for v in items {
                    if let Some(uid) = self.apply(v) {
                        seen.insert(uid);
                    }
                }
                for (uid, h) in &self.workers {
                    if !seen.contains(uid) {
                        let _ = h.tx.send(Msg::Gone);
                    }
                }
                if let Some(local) = self.local.take() {
                    for uid in local.into_keys() {
                        if !seen.contains(&uid) {
                            tracing::info!(%uid, "removing what is left of a deleted pod");
                            let ctx = self.ctx.clone();
                            tokio::task::spawn_blocking(move || clean_orphan(&ctx, &uid));
                        }
                    }
                }
            }
            InformerEvent::Applied(v) => {
                self.apply(v);
            }
            InformerEvent::Deleted(v) => {
                let uid = v
                    .pointer("/metadata/uid")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                match self.workers.get(&uid) {
                    Some(h) => {
                        let _ = h.tx.send(Msg::Gone);
                    }
                    None => {
                        let ctx = self.ctx.clone();
                        if ctx.layout.pod_dir(&uid).exists() && !uid.is_empty() {
                            tokio::task::spawn_blocking(move || clean_orphan(&ctx, &uid));
                        }
                    }
                }
            }
        }
    }

    /// Routes a pod to its worker, starting one if needed.
    fn apply(&mut self, v: Value) -> Option<String> {
        let pod: Pod = match serde_json::from_value(v.clone()) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "cannot decode a pod from the watch");
                return None;
            }
        };
        let uid = pod.metadata.uid.clone();
        if pod.spec.node_name != self.ctx.cfg.node_name || uid.is_empty() {
            return None;
        }
        let terminal = pod.is_terminal();
        if let Some(h) = self.workers.get_mut(&uid) {
            self.ctx.status.observe(&uid, &v);
            h.terminal = terminal;
            let _ = h.tx.send(Msg::Pod(Arc::new(pod)));
            return Some(uid);
        }
        let adopted = self
            .local
            .as_mut()
            .and_then(|l| l.remove(&uid))
            .or_else(|| {
                // Watch events after the first list: only our own state dirs.
                self.ctx
                    .layout
                    .pod_dir(&uid)
                    .exists()
                    .then(|| super::pods::scan_one(&self.ctx, &uid))
            });
        if terminal && adopted.is_none() {
            // Finished before this agent knew it: nothing local to serve.
            return Some(uid);
        }
        self.ctx.status.observe(&uid, &v);
        let running = self.workers.values().filter(|h| !h.terminal).count();
        let max = self.ctx.cfg.max_pods as usize;
        let admit = if !terminal && running >= max {
            Err(format!(
                "Node didn't have enough resource: pods, requested: 1, used: {running}, capacity: {max}"
            ))
        } else {
            Ok(())
        };
        let (worker, tx) = Worker::new(self.ctx.clone(), Arc::new(pod), adopted, admit);
        let id = uid.clone();
        self.tasks.spawn(async move {
            worker.run().await;
            id
        });
        self.workers.insert(uid.clone(), Handle { tx, terminal });
        Some(uid)
    }
}

/// The local state of one pod.
pub fn scan_one(ctx: &Ctx, uid: &str) -> Adopted {
    let mut all = scan_local(ctx);
    all.remove(uid).unwrap_or_default()
}
