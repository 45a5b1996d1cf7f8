//! `metrics.k8s.io/v1beta1` (what `kubectl top` reads): NodeMetrics and
//! PodMetrics, list and get, in the JSON metrics-server gives, built from
//! the usage summaries of the agents (`/stats/summary`).

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{SecondsFormat, Utc};
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use serde_json::{Value, json};

use super::NodeClients;
use crate::api::core::{Node, Pod};
use crate::api::quantity::Quantity;
use crate::apiserver::error::{ApiError, ApiResult};
use crate::apiserver::http::{Body, Extension, RequestContext, error_response};
use crate::apiserver::rest::Api;
use crate::runtime::Client;

const GROUP_VERSION: &str = "metrics.k8s.io/v1beta1";
/// How long one agent may take to answer.
const AGENT_TIMEOUT: Duration = Duration::from_secs(5);
/// The window reported when an agent had no earlier sample.
const DEFAULT_WINDOW: &str = "15s";

/// The metrics routes.
pub struct Metrics {
    pub api: Api,
    pub nodes: Arc<NodeClients>,
}

fn cpu(nanocores: u64) -> String {
    format!("{nanocores}n")
}

fn memory(bytes: u64) -> String {
    Quantity::from_bytes(i64::try_from(bytes).unwrap_or(i64::MAX)).0
}

fn u(v: &Value, path: &str) -> u64 {
    v.pointer(path).and_then(Value::as_u64).unwrap_or(0)
}

fn window_of(v: &Value) -> String {
    v.get("window")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| DEFAULT_WINDOW.into())
}

fn timestamp(v: &Value, path: &str) -> Value {
    v.pointer(path)
        .cloned()
        .unwrap_or_else(|| json!(Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)))
}

/// A NodeMetrics from an agent's summary.
pub fn node_metrics(node: &Node, summary: &Value) -> Value {
    let n = summary.get("node").cloned().unwrap_or(Value::Null);
    json!({
        "kind": "NodeMetrics",
        "apiVersion": GROUP_VERSION,
        "metadata": {
            "name": node.metadata.name,
            "creationTimestamp": Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
            "labels": node.metadata.labels,
        },
        "timestamp": timestamp(&n, "/cpu/time"),
        "window": window_of(&n),
        "usage": {
            "cpu": cpu(u(&n, "/cpu/usageNanoCores")),
            "memory": memory(u(&n, "/memory/workingSetBytes")),
        },
    })
}

/// A PodMetrics from a pod's entry in an agent's summary; `None` when no
/// container of it is running.
pub fn pod_metrics(pod: &Pod, entry: &Value) -> Option<Value> {
    let containers: Vec<Value> = entry
        .get("containers")
        .and_then(Value::as_array)?
        .iter()
        .map(|c| {
            json!({
                "name": c.get("name").cloned().unwrap_or(Value::Null),
                "usage": {
                    "cpu": cpu(u(c, "/cpu/usageNanoCores")),
                    "memory": memory(u(c, "/memory/workingSetBytes")),
                },
            })
        })
        .collect();
    if containers.is_empty() {
        return None;
    }
    Some(json!({
        "kind": "PodMetrics",
        "apiVersion": GROUP_VERSION,
        "metadata": {
            "name": pod.metadata.name,
            "namespace": pod.metadata.namespace,
            "creationTimestamp": Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
            "labels": pod.metadata.labels,
        },
        "timestamp": timestamp(entry, "/cpu/time"),
        "window": window_of(entry),
        "containers": containers,
    }))
}

fn list(kind: &str, items: Vec<Value>) -> Value {
    json!({"kind": kind, "apiVersion": GROUP_VERSION, "metadata": {}, "items": items})
}

fn respond(v: &Value) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(v.to_string())).boxed());
    *r.status_mut() = StatusCode::OK;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

fn not_found(resource: &str, name: &str) -> ApiError {
    let mut e = ApiError::new(
        404,
        "NotFound",
        format!("{resource}.metrics.k8s.io \"{name}\" not found"),
    );
    e.code = 404;
    e
}

impl Metrics {
    /// The summaries of `nodes`, fetched at once; nodes that do not answer
    /// are left out.
    async fn summaries(&self, nodes: &[Node]) -> HashMap<String, Value> {
        let fetches = nodes.iter().map(|n| async move {
            let client = self.nodes.for_node(n).ok()?;
            let v = tokio::time::timeout(AGENT_TIMEOUT, client.get("/stats/summary"))
                .await
                .ok()?
                .map_err(
                    |e| tracing::debug!(node = %n.metadata.name, error = %e, "no usage from agent"),
                )
                .ok()?;
            Some((n.metadata.name.clone(), v))
        });
        futures::future::join_all(fetches)
            .await
            .into_iter()
            .flatten()
            .collect()
    }

    async fn nodes(&self, name: Option<&str>, selector: Option<&str>) -> ApiResult<Value> {
        let client = Client::new(self.api.clone());
        let nodes: Vec<Node> = match name {
            Some(n) => client.get::<Node>("", n).await?.into_iter().collect(),
            None => client.list(None, selector).await?,
        };
        let summaries = self.summaries(&nodes).await;
        let items: Vec<Value> = nodes
            .iter()
            .filter_map(|n| summaries.get(&n.metadata.name).map(|s| node_metrics(n, s)))
            .collect();
        match name {
            Some(n) => items
                .into_iter()
                .next()
                .ok_or_else(|| not_found("nodes", n)),
            None => Ok(list("NodeMetricsList", items)),
        }
    }

    async fn pods(
        &self,
        ns: Option<&str>,
        name: Option<&str>,
        selector: Option<&str>,
    ) -> ApiResult<Value> {
        let client = Client::new(self.api.clone());
        let pods: Vec<Pod> = match (ns, name) {
            (Some(ns), Some(n)) => client.get::<Pod>(ns, n).await?.into_iter().collect(),
            _ => client.list(ns, selector).await?,
        };
        let mut by_node: BTreeMap<String, ()> = BTreeMap::new();
        for p in &pods {
            if !p.spec.node_name.is_empty() && !p.is_terminal() {
                by_node.insert(p.spec.node_name.clone(), ());
            }
        }
        let mut nodes = Vec::new();
        for n in by_node.keys() {
            if let Some(node) = client.get::<Node>("", n).await? {
                nodes.push(node);
            }
        }
        let summaries = self.summaries(&nodes).await;
        let mut entries: HashMap<String, Value> = HashMap::new();
        for s in summaries.values() {
            for e in s
                .get("pods")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(uid) = e.pointer("/podRef/uid").and_then(Value::as_str) {
                    entries.insert(uid.to_string(), e.clone());
                }
            }
        }
        let items: Vec<Value> = pods
            .iter()
            .filter_map(|p| pod_metrics(p, entries.get(&p.metadata.uid)?))
            .collect();
        match name {
            Some(n) => items.into_iter().next().ok_or_else(|| not_found("pods", n)),
            None => Ok(list("PodMetricsList", items)),
        }
    }
}

impl Extension for Metrics {
    fn handle<'a>(
        &'a self,
        ctx: &'a RequestContext,
        _req: &'a mut Option<Request<Incoming>>,
    ) -> Pin<Box<dyn Future<Output = Option<Response<Body>>> + Send + 'a>> {
        Box::pin(async move {
            let segs: Vec<&str> = ctx.path.trim_matches('/').split('/').collect();
            let rest = match segs.as_slice() {
                ["apis", "metrics.k8s.io", "v1beta1", rest @ ..] if !rest.is_empty() => rest,
                _ => return None,
            };
            if ctx.method != Method::GET {
                return Some(error_response(&ApiError::method_not_allowed(
                    "metrics.k8s.io only supports get and list",
                )));
            }
            let selector = ctx
                .query
                .get("labelSelector")
                .filter(|s| !s.is_empty())
                .map(String::as_str);
            let result = match rest {
                ["nodes"] => self.nodes(None, selector).await,
                ["nodes", name] => self.nodes(Some(name), None).await,
                ["pods"] => self.pods(None, None, selector).await,
                ["namespaces", ns, "pods"] => self.pods(Some(ns), None, selector).await,
                ["namespaces", ns, "pods", name] => self.pods(Some(ns), Some(name), None).await,
                _ => Err(ApiError::no_route(&ctx.path)),
            };
            Some(match result {
                Ok(v) => respond(&v),
                Err(e) => error_response(&e),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_documents_as_metrics_server_gives_them() {
        let mut node = Node::default();
        node.metadata.name = "n1".into();
        let summary = json!({
            "node": {"window": "10.000s", "cpu": {"time": "2024-05-01T10:20:30Z", "usageNanoCores": 250000000u64},
                     "memory": {"workingSetBytes": 2147483648u64}},
        });
        let nm = node_metrics(&node, &summary);
        assert_eq!(nm["kind"], "NodeMetrics");
        assert_eq!(nm["usage"]["cpu"], "250000000n");
        assert_eq!(nm["usage"]["memory"], "2Gi");
        assert_eq!(nm["timestamp"], "2024-05-01T10:20:30Z");
        assert_eq!(nm["window"], "10.000s");

        let mut pod = Pod::default();
        pod.metadata.name = "web".into();
        pod.metadata.namespace = "default".into();
        let entry = json!({"containers": [
            {"name": "app", "cpu": {"usageNanoCores": 1234}, "memory": {"workingSetBytes": 1500000}}
        ]});
        let pm = pod_metrics(&pod, &entry).unwrap();
        assert_eq!(pm["metadata"]["namespace"], "default");
        assert_eq!(pm["containers"][0]["name"], "app");
        assert_eq!(pm["containers"][0]["usage"]["cpu"], "1234n");
        assert_eq!(pm["containers"][0]["usage"]["memory"], "1500k");
        assert_eq!(pm["window"], DEFAULT_WINDOW);
        assert!(pod_metrics(&pod, &json!({"containers": []})).is_none());
    }
}
