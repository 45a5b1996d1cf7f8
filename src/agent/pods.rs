//! The pods bound to this node: a watch (`fieldSelector
//! spec.nodeName=NODE`) feeding one [`Worker`] per pod, re-adoption of the
//! sandboxes a previous agent left running, and removal of what is left of
//! pods that no longer exist.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::Ctx;
use super::containers::Layout;
use super::informer::{self, InformerEvent};
use super::journal::PodState;
use super::worker::{Adopted, Msg, Worker, discard_local};
use crate::api::core::Pod;

fn adopted(state: PodState) -> Adopted {
    Adopted {
        pod: state.pod,
        containers: state.containers.into_iter().collect(),
    }
}

/// What a previous agent left: the pods in the checkpoint journal
/// (`journal`, as read at start) and every pod with files under `pods/`
/// (one without checkpoints belongs to a pod whose first start was cut
/// short).
pub fn scan_local(layout: &Layout, journal: HashMap<String, PodState>) -> HashMap<String, Adopted> {
    let mut out: HashMap<String, Adopted> = journal
        .into_iter()
        .map(|(uid, state)| (uid, adopted(state)))
        .collect();
    if let Ok(entries) = std::fs::read_dir(layout.pods_dir()) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let uid = Layout::pod_of_entry(&name);
            if !uid.is_empty() && !out.contains_key(uid) {
                out.insert(uid.to_string(), Adopted::default());
            }
        }
    }
    out
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
    /// `journal`: the checkpoints the journal held when it was opened.
    pub fn new(ctx: Arc<Ctx>, journal: HashMap<String, PodState>) -> PodManager {
        let local = scan_local(&ctx.layout, journal);
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
                            tokio::task::spawn_blocking(move || discard_local(&ctx, &uid));
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
                        let known = ctx.journal.contains(&uid) || ctx.layout.pod_dir(&uid).exists();
                        if known && !uid.is_empty() {
                            tokio::task::spawn_blocking(move || discard_local(&ctx, &uid));
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
                // Watch events after the first list: only our own state.
                match self.ctx.journal.get(&uid) {
                    Some(state) => Some(adopted(state)),
                    None => self
                        .ctx
                        .layout
                        .pod_dir(&uid)
                        .exists()
                        .then(Adopted::default),
                }
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
