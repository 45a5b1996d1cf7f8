//! Reflectors: a local cache of one resource type kept current by
//! list+watch, with a callback per change. A watch that ends or falls behind
//! the store's history is replaced by a fresh list (differences become
//! events), so the cache converges whatever happened in between.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use crate::api::Resource;
use crate::apiserver::rest::{Api, ListOptions};

/// A change seen by a reflector.
pub enum Event<T> {
    /// Created or updated (`old` is the previous cached state).
    Applied {
        new: Arc<T>,
        old: Option<Arc<T>>,
    },
    Deleted(Arc<T>),
}

/// `namespace/name` (or `name` for cluster-scoped objects).
pub fn key_of<T: Resource>(obj: &T) -> String {
    let m = obj.meta();
    if m.namespace.is_empty() {
        m.name.clone()
    } else {
        format!("{}/{}", m.namespace, m.name)
    }
}

/// The read side of a reflector's cache.
pub struct Store<T> {
    map: Arc<RwLock<HashMap<String, Arc<T>>>>,
    synced: watch::Receiver<bool>,
}

impl<T> Clone for Store<T> {
    fn clone(&self) -> Self {
        Store {
            map: self.map.clone(),
            synced: self.synced.clone(),
        }
    }
}

impl<T: Resource> Store<T> {
    pub fn get(&self, key: &str) -> Option<Arc<T>> {
        self.map.read().get(key).cloned()
    }

    pub fn get_ns(&self, ns: &str, name: &str) -> Option<Arc<T>> {
        if ns.is_empty() {
            self.get(name)
        } else {
            self.get(&format!("{ns}/{name}"))
        }
    }

    pub fn list(&self) -> Vec<Arc<T>> {
        self.map.read().values().cloned().collect()
    }

    /// Objects for which `f` holds.
    pub fn filter(&self, f: impl Fn(&T) -> bool) -> Vec<Arc<T>> {
        self.map.read().values().filter(|o| f(o)).cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.map.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.read().is_empty()
    }

    /// Waits until the first list has been loaded.
    pub async fn wait_synced(&self) {
        let mut rx = self.synced.clone();
        let _ = rx.wait_for(|s| *s).await;
    }
}

/// Options of a reflector.
#[derive(Clone, Debug, Default)]
pub struct Reflector {
    pub namespace: Option<String>,
    pub label_selector: Option<String>,
    pub field_selector: Option<String>,
}

impl Reflector {
    /// Starts the reflector; `on_event` runs for every change (keep it
    /// cheap: enqueue keys). Stops when `shutdown` turns true.
    pub fn spawn<T, F>(
        self,
        api: Api,
        on_event: F,
        mut shutdown: watch::Receiver<bool>,
    ) -> (Store<T>, tokio::task::JoinHandle<()>)
    where
        T: Resource + DeserializeOwned,
        F: Fn(Event<T>) + Send + Sync + 'static,
    {
        let map: Arc<RwLock<HashMap<String, Arc<T>>>> = Arc::new(RwLock::new(HashMap::new()));
        let (synced_tx, synced_rx) = watch::channel(false);
        let store = Store {
            map: map.clone(),
            synced: synced_rx,
        };
        let handle = tokio::spawn(async move {
            let rt = match api.resource(T::GROUP, T::VERSION, T::PLURAL) {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!(kind = T::KIND, error = %e, "reflector for an unknown type");
                    return;
                }
            };
            let mut backoff = Duration::from_millis(50);
            loop {
                if *shutdown.borrow() {
                    return;
                }
                let opts = ListOptions {
                    label_selector: self.label_selector.clone(),
                    field_selector: self.field_selector.clone(),
                    ..Default::default()
                };
                // List, then reconcile the cache with what the list says.
                let page = match api.list(rt, self.namespace.as_deref(), &opts).await {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::debug!(kind = T::KIND, error = %e, "reflector list failed; retrying");
                        tokio::select! {
                            _ = tokio::time::sleep(backoff) => {}
                            _ = shutdown.changed() => {}
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                        continue;
                    }
                };
                backoff = Duration::from_millis(50);
                let mut fresh: HashMap<String, Arc<T>> = HashMap::new();
                for b in &page.items {
                    match serde_json::from_slice::<T>(b) {
                        Ok(o) => {
                            fresh.insert(key_of(&o), Arc::new(o));
                        }
                        Err(e) => {
                            tracing::warn!(kind = T::KIND, error = %e, "skipping an object that does not decode")
                        }
                    }
                }
                let events = {
                    let mut m = map.write();
                    let mut events = Vec::new();
                    for (k, old) in m.iter() {
                        if !fresh.contains_key(k) {
                            events.push(Event::Deleted(old.clone()));
                        }
                    }
                    for (k, new) in &fresh {
                        let old = m.get(k).cloned();
                        let changed = old.as_ref().is_none_or(|o| {
                            o.meta().resource_version != new.meta().resource_version
                        });
                        if changed {
                            events.push(Event::Applied {
                                new: new.clone(),
                                old,
                            });
                        }
                    }
                    *m = fresh;
                    events
                };
                for e in events {
                    on_event(e);
                }
                let _ = synced_tx.send(true);
                let wopts = ListOptions {
                    resource_version: Some(page.resource_version.to_string()),
                    ..opts
                };
                let mut stream = match api
                    .watch(rt, self.namespace.as_deref(), &wopts, false)
                    .await
                {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::debug!(kind = T::KIND, error = %e, "reflector watch failed; relisting");
                        continue;
                    }
                };
                loop {
                    let item = tokio::select! {
                        i = stream.next() => i,
                        _ = shutdown.changed() => return,
                    };
                    let Some(item) = item else { break };
                    match item.type_ {
                        "ADDED" | "MODIFIED" => match serde_json::from_slice::<T>(&item.object) {
                            Ok(o) => {
                                let new = Arc::new(o);
                                let old = map.write().insert(key_of(new.as_ref()), new.clone());
                                on_event(Event::Applied { new, old });
                            }
                            Err(e) => {
                                tracing::warn!(kind = T::KIND, error = %e, "skipping an object that does not decode")
                            }
                        },
                        "DELETED" => {
                            if let Ok(o) = serde_json::from_slice::<T>(&item.object) {
                                let removed = map.write().remove(&key_of(&o));
                                on_event(Event::Deleted(removed.unwrap_or_else(|| Arc::new(o))));
                            }
                        }
                        // ERROR (too old) or anything else: relist.
                        _ => break,
                    }
                }
            }
        });
        (store, handle)
    }
}

type Handler<T> = Box<dyn Fn(&Event<T>) + Send + Sync>;

/// A reflector shared by several controllers: one cache, one watch, any
/// number of event handlers (Kubernetes' shared informers). Keeping one
/// cache per type instead of one per controller is what keeps the master's
/// memory proportional to the cluster, not to the number of controllers.
pub struct Informer<T> {
    store: Store<T>,
    handlers: Arc<RwLock<Vec<Handler<T>>>>,
}

impl<T> Clone for Informer<T> {
    fn clone(&self) -> Self {
        Informer {
            store: self.store.clone(),
            handlers: self.handlers.clone(),
        }
    }
}

impl<T: Resource + DeserializeOwned> Informer<T> {
    /// Starts the shared reflector.
    pub fn spawn(
        reflector: Reflector,
        api: Api,
        shutdown: watch::Receiver<bool>,
    ) -> (Informer<T>, tokio::task::JoinHandle<()>) {
        let handlers: Arc<RwLock<Vec<Handler<T>>>> = Arc::new(RwLock::new(Vec::new()));
        let hs = handlers.clone();
        let (store, h) = reflector.spawn::<T, _>(
            api,
            move |e| {
                for h in hs.read().iter() {
                    h(&e);
                }
            },
            shutdown,
        );
        (Informer { store, handlers }, h)
    }

    /// The shared cache.
    pub fn store(&self) -> Store<T> {
        self.store.clone()
    }

    /// Adds a handler; it first sees every object already cached.
    pub fn add_handler(&self, h: impl Fn(&Event<T>) + Send + Sync + 'static) {
        let mut hs = self.handlers.write();
        for o in self.store.list() {
            h(&Event::Applied { new: o, old: None });
        }
        hs.push(Box::new(h));
    }
}
