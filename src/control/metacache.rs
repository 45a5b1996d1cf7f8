//! A cache of every object's metadata, from one watch of the whole store:
//! the garbage collector's ownership graph and the namespace controller's
//! view of what a namespace still holds.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;
use serde::Deserialize;
use tokio::sync::watch;

use crate::api::registry::Registry;
use crate::api::{ObjectMeta, Time};
use crate::controllers::gc::{GcNode, Graph};
use crate::controllers::namespace::Content;
use crate::store::{EventType, Store, StoreError};

/// Internal keys (Service IP allocations) are not objects.
const INTERNAL_PREFIX: char = '~';

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Lite {
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    metadata: ObjectMeta,
    #[serde(default)]
    spec: LiteSpec,
    #[serde(default)]
    status: LiteStatus,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct LiteSpec {
    #[serde(default)]
    termination_grace_period_seconds: Option<i64>,
}

#[derive(Deserialize, Default)]
struct LiteStatus {
    #[serde(default)]
    phase: Option<String>,
}

/// One object's metadata.
#[derive(Clone, Debug)]
pub struct Entry {
    pub node: GcNode,
    /// The resource's plural (`pods`).
    pub plural: &'static str,
    pub deletion_timestamp: Option<Time>,
    /// For pods that have not finished: their termination grace period.
    pub grace_period_seconds: Option<i64>,
}

/// What changed, for the controllers' queues.
#[derive(Clone, Debug)]
pub enum Change {
    /// `dependents` is filled when the object is being deleted (its
    /// dependents must be re-planned: foreground and orphan propagation).
    Upsert {
        uid: String,
        namespace: String,
        dependents: Vec<String>,
    },
    Removed {
        uid: String,
        namespace: String,
        owners: Vec<String>,
        dependents: Vec<String>,
    },
}

#[derive(Default)]
struct Inner {
    by_key: HashMap<String, Entry>,
    graph: Graph,
}

type Handler = Box<dyn Fn(&Change) + Send + Sync>;

/// The cache; clones share it.
#[derive(Clone, Default)]
pub struct MetaCache {
    inner: Arc<RwLock<Inner>>,
    handlers: Arc<RwLock<Vec<Handler>>>,
}

fn parse(key: &str, bytes: &[u8]) -> Option<Entry> {
    if key.starts_with(INTERNAL_PREFIX) {
        return None;
    }
    let lite: Lite = serde_json::from_slice(bytes).ok()?;
    let (group, _) = lite.api_version.rsplit_once('/').unwrap_or(("", ""));
    let rt = Registry::get().by_kind(group, &lite.kind)?;
    let terminal = matches!(lite.status.phase.as_deref(), Some("Succeeded" | "Failed"));
    let grace = if lite.kind == "Pod" && !terminal {
        Some(lite.spec.termination_grace_period_seconds.unwrap_or(30))
    } else {
        None
    };
    Some(Entry {
        node: GcNode::new(&lite.api_version, &lite.kind, &lite.metadata),
        plural: rt.info().plural,
        deletion_timestamp: lite.metadata.deletion_timestamp,
        grace_period_seconds: grace,
    })
}

impl MetaCache {
    fn new() -> MetaCache {
        let mut inner = Inner::default();
        for t in Registry::get().all() {
            inner
                .graph
                .track_kind(&t.info().api_version(), t.info().kind);
        }
        MetaCache {
            inner: Arc::new(RwLock::new(inner)),
            handlers: Arc::default(),
        }
    }

    /// Adds a change handler (cheap: enqueue keys); it first sees every
    /// object already cached as an upsert.
    pub fn add_handler(&self, h: impl Fn(&Change) + Send + Sync + 'static) {
        let mut hs = self.handlers.write();
        let existing: Vec<Change> = self
            .inner
            .read()
            .by_key
            .values()
            .map(|e| Change::Upsert {
                uid: e.node.object.uid.clone(),
                namespace: e.node.object.namespace.clone(),
                dependents: Vec::new(),
            })
            .collect();
        for c in &existing {
            h(c);
        }
        hs.push(Box::new(h));
    }

    fn emit(&self, c: Change) {
        for h in self.handlers.read().iter() {
            h(&c);
        }
    }

    fn upsert(&self, key: &str, e: Entry) -> Change {
        let mut g = self.inner.write();
        let uid = e.node.object.uid.clone();
        let namespace = e.node.object.namespace.clone();
        let deleting = e.node.deleting;
        g.graph.upsert(e.node.clone());
        g.by_key.insert(key.to_string(), e);
        let dependents = if deleting {
            g.graph
                .dependents_of(&uid)
                .iter()
                .map(|d| d.object.uid.clone())
                .collect()
        } else {
            Vec::new()
        };
        Change::Upsert {
            uid,
            namespace,
            dependents,
        }
    }

    fn remove(&self, key: &str) -> Option<Change> {
        let mut g = self.inner.write();
        let e = g.by_key.remove(key)?;
        let uid = e.node.object.uid.clone();
        let dependents = g
            .graph
            .dependents_of(&uid)
            .iter()
            .map(|d| d.object.uid.clone())
            .collect();
        g.graph.remove(&uid);
        Some(Change::Removed {
            uid,
            namespace: e.node.object.namespace.clone(),
            owners: e
                .node
                .owner_references
                .iter()
                .map(|o| o.uid.clone())
                .collect(),
            dependents,
        })
    }

    /// Runs `f` on the ownership graph.
    pub fn with_graph<R>(&self, f: impl FnOnce(&Graph) -> R) -> R {
        f(&self.inner.read().graph)
    }

    /// Every object still in namespace `ns`.
    pub fn namespace_content(&self, ns: &str) -> Vec<Content> {
        self.inner
            .read()
            .by_key
            .values()
            .filter(|e| e.node.object.namespace == ns)
            .map(|e| Content {
                object: e.node.object.clone(),
                plural: e.plural.to_string(),
                finalizers: e.node.finalizers.clone(),
                deletion_timestamp: e.deletion_timestamp,
                grace_period_seconds: e.grace_period_seconds,
            })
            .collect()
    }

    /// Starts the cache; handlers added with [`MetaCache::add_handler`] see
    /// every change.
    pub fn spawn(
        store: Store,
        mut shutdown: watch::Receiver<bool>,
    ) -> (MetaCache, tokio::task::JoinHandle<()>) {
        let cache = MetaCache::new();
        let c = cache.clone();
        let handle = tokio::spawn(async move {
            loop {
                if *shutdown.borrow() {
                    return;
                }
                let (items, _, mut sub) = store.list_and_watch("");
                // Reconcile with a full listing (first start or after falling behind).
                let fresh: HashMap<String, Entry> = items
                    .iter()
                    .filter_map(|(k, s)| parse(k, &s.value).map(|e| (k.clone(), e)))
                    .collect();
                let stale: Vec<String> = c
                    .inner
                    .read()
                    .by_key
                    .keys()
                    .filter(|k| !fresh.contains_key(*k))
                    .cloned()
                    .collect();
                for k in stale {
                    if let Some(ch) = c.remove(&k) {
                        c.emit(ch);
                    }
                }
                for (k, e) in fresh {
                    c.emit(c.upsert(&k, e));
                }
                loop {
                    let ev = tokio::select! {
                        e = sub.next() => e,
                        _ = shutdown.changed() => return,
                    };
                    match ev {
                        Ok(ev) => match ev.kind {
                            EventType::Deleted => {
                                if let Some(ch) = c.remove(&ev.key) {
                                    c.emit(ch);
                                }
                            }
                            _ => {
                                if let Some(e) = parse(&ev.key, &ev.object) {
                                    c.emit(c.upsert(&ev.key, e));
                                }
                            }
                        },
                        Err(StoreError::TooOld { .. }) => break,
                        Err(_) => return,
                    }
                }
            }
        });
        (cache, handle)
    }
}
