//! List-then-watch of one collection over HTTPS, resumed from the last
//! resourceVersion after a dropped watch and re-listed after `410 Gone`,
//! delivering objects to a channel in the order the API wrote them.

use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;
use tokio::sync::{mpsc, watch};

use crate::client::{ApiClient, ListParams, WatchEventType};

/// What an informer reports.
#[derive(Debug)]
pub enum InformerEvent {
    /// A full list: the collection as of now (objects not in it are gone).
    Listed(Vec<Value>),
    /// An object was created or changed.
    Applied(Value),
    /// An object was deleted (its last state).
    Deleted(Value),
}

/// Pause after a failed list or watch before trying again.
const RETRY: Duration = Duration::from_secs(1);
/// How long the server keeps one watch open.
const WATCH_SECONDS: u32 = 300;

fn rv_of(v: &Value) -> Option<String> {
    v.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// Lists and watches `path` (a collection) with `field_selector` until
/// `shutdown` turns true or the receiver is dropped.
pub async fn run(
    client: ApiClient,
    path: String,
    field_selector: Option<String>,
    tx: mpsc::UnboundedSender<InformerEvent>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut rv: Option<String> = None;
    loop {
        if *shutdown.borrow() || tx.is_closed() {
            return;
        }
        if rv.is_none() {
            let params = ListParams {
                field_selector: field_selector.clone(),
                ..Default::default()
            };
            match client.list(&path, &params).await {
                Ok(list) => {
                    rv = list
                        .pointer("/metadata/resourceVersion")
                        .and_then(Value::as_str)
                        .map(str::to_string);
                    let items = match list.get("items") {
                        Some(Value::Array(items)) => items.clone(),
                        _ => Vec::new(),
                    };
                    if tx.send(InformerEvent::Listed(items)).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    tracing::warn!(%path, error = %e, "list failed; retrying");
                    if pause(&mut shutdown).await {
                        return;
                    }
                    continue;
                }
            }
        }
        let params = ListParams {
            field_selector: field_selector.clone(),
            resource_version: rv.clone(),
            timeout_seconds: Some(WATCH_SECONDS),
            allow_watch_bookmarks: true,
            ..Default::default()
        };
        let mut stream = match client.watch(&path, &params).await {
            Ok(s) => s,
            Err(e) => {
                if e.code() == Some(410) {
                    rv = None;
                } else {
                    tracing::warn!(%path, error = %e, "watch failed; retrying");
                    if pause(&mut shutdown).await {
                        return;
                    }
                }
                continue;
            }
        };
        loop {
            let next = tokio::select! {
                n = stream.next() => n,
                _ = super::stopped(&mut shutdown) => return,
            };
            let Some(event) = next else { break };
            let event = match event {
                Ok(e) => e,
                Err(e) => {
                    tracing::debug!(%path, error = %e, "watch stream ended");
                    break;
                }
            };
            if let Some(err) = event.error() {
                if err.code == 410 {
                    rv = None;
                } else {
                    tracing::warn!(%path, error = %err, "watch error event");
                }
                break;
            }
            if let Some(v) = rv_of(&event.object) {
                rv = Some(v);
            }
            let sent = match event.type_ {
                WatchEventType::Added | WatchEventType::Modified => {
                    tx.send(InformerEvent::Applied(event.object))
                }
                WatchEventType::Deleted => tx.send(InformerEvent::Deleted(event.object)),
                WatchEventType::Bookmark | WatchEventType::Error => Ok(()),
            };
            if sent.is_err() {
                return;
            }
        }
    }
}

/// Sleeps [`RETRY`]; true if shutdown came first.
async fn pause(shutdown: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(RETRY) => false,
        _ = super::stopped(shutdown) => true,
    }
}
