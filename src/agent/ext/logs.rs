//! `GET /api/v1/namespaces/{ns}/pods/{name}/log`: picks the container as
//! the Kubernetes API server does, then streams the answer of the agent of
//! the pod's node (`/containerLogs/...`) back to the client.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use futures::StreamExt;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};

use super::NodeClients;
use crate::api::core::{Container, Node, Pod};
use crate::apiserver::error::{ApiError, ApiResult};
use crate::apiserver::http::{Body, Extension, RequestContext, error_response};
use crate::apiserver::rest::Api;
use crate::client::path::{encode_component, with_query};
use crate::runtime::Client;

/// Query parameters passed on to the agent.
const PASSED: [&str; 7] = [
    "follow",
    "tailLines",
    "previous",
    "timestamps",
    "sinceSeconds",
    "sinceTime",
    "limitBytes",
];

/// The pod log route.
pub struct PodLogs {
    pub api: Api,
    pub nodes: Arc<NodeClients>,
}

fn names(cs: &[Container]) -> String {
    cs.iter()
        .map(|c| c.name.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The container a log request means (the Kubernetes API server's
/// `LogLocation` rules): the one asked for, else the only one.
pub fn choose_container(pod: &Pod, asked: &str) -> Result<String, String> {
    let name = &pod.metadata.name;
    if !asked.is_empty() {
        let known = pod
            .spec
            .containers
            .iter()
            .chain(&pod.spec.init_containers)
            .any(|c| c.name == asked);
        return if known {
            Ok(asked.to_string())
        } else {
            Err(format!("container {asked} is not valid for pod {name}"))
        };
    }
    match pod.spec.containers.as_slice() {
        [one] => Ok(one.name.clone()),
        [] => Err(format!("a container name must be specified for pod {name}")),
        many => {
            let mut msg = format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                names(many)
            );
            if !pod.spec.init_containers.is_empty() {
                msg.push_str(&format!(
                    " or one of the init containers: [{}]",
                    names(&pod.spec.init_containers)
                ));
            }
            Err(msg)
        }
    }
}

impl PodLogs {
    async fn handle(
        &self,
        ctx: &RequestContext,
        ns: &str,
        name: &str,
    ) -> ApiResult<Response<Body>> {
        let client = Client::new(self.api.clone());
        let rt = client.rt::<Pod>()?;
        let pod: Pod = client
            .get(ns, name)
            .await?
            .ok_or_else(|| ApiError::not_found(rt.info(), name))?;
        let asked = ctx.query.get("container").cloned().unwrap_or_default();
        let container = choose_container(&pod, &asked).map_err(ApiError::bad_request)?;
        if pod.spec.node_name.is_empty() {
            // Not scheduled yet: no logs, and no error (as Kubernetes).
            return Ok(plain(StatusCode::OK, Vec::new()));
        }
        let node: Node = client.get("", &pod.spec.node_name).await?.ok_or_else(|| {
            ApiError::unavailable(format!(
                "node {} of pod {name} is not registered",
                pod.spec.node_name
            ))
        })?;
        let agent = self.nodes.for_node(&node).map_err(ApiError::unavailable)?;
        let pairs: Vec<(&str, String)> = PASSED
            .iter()
            .filter_map(|k| ctx.query.get(*k).map(|v| (*k, v.clone())))
            .collect();
        let path = with_query(
            &format!(
                "/containerLogs/{}/{}/{}",
                encode_component(ns),
                encode_component(name),
                encode_component(&container)
            ),
            &pairs,
        );
        let (status, headers, stream) = agent
            .raw_stream(Method::GET, &path, None, None)
            .await
            .map_err(|e| {
                ApiError::unavailable(format!(
                    "cannot reach the agent of node {}: {e}",
                    pod.spec.node_name
                ))
            })?;
        // The agent's stream is not Sync; a channel hands it to the body.
        let (tx, rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(16);
        tokio::spawn(async move {
            let mut stream = stream;
            while let Some(Ok(chunk)) = stream.next().await {
                if tx.send(chunk).await.is_err() {
                    return;
                }
            }
        });
        let body = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv()
                .await
                .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
        });
        let mut resp = Response::new(BodyExt::boxed(StreamBody::new(body)));
        *resp.status_mut() = status;
        let ct = headers
            .get(header::CONTENT_TYPE)
            .cloned()
            .unwrap_or_else(|| http::HeaderValue::from_static("text/plain"));
        resp.headers_mut().insert(header::CONTENT_TYPE, ct);
        Ok(resp)
    }
}

fn plain(code: StatusCode, body: Vec<u8>) -> Response<Body> {
    let mut r = Response::new(Full::new(bytes::Bytes::from(body)).boxed());
    *r.status_mut() = code;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    r
}

impl Extension for PodLogs {
    fn handle<'a>(
        &'a self,
        ctx: &'a RequestContext,
        _req: &'a mut Option<Request<Incoming>>,
    ) -> Pin<Box<dyn Future<Output = Option<Response<Body>>> + Send + 'a>> {
        Box::pin(async move {
            let segs: Vec<&str> = ctx.path.trim_matches('/').split('/').collect();
            let (ns, name) = match segs.as_slice() {
                ["api", "v1", "namespaces", ns, "pods", name, "log"] => (*ns, *name),
                _ => return None,
            };
            if ctx.method != Method::GET {
                return Some(error_response(&ApiError::method_not_allowed(
                    "pods/log only supports get",
                )));
            }
            Some(match self.handle(ctx, ns, name).await {
                Ok(r) => r,
                Err(e) => error_response(&e),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(apps: &[&str], inits: &[&str]) -> Pod {
        let mut p = Pod::default();
        p.metadata.name = "web".into();
        let c = |n: &&str| Container {
            name: n.to_string(),
            ..Default::default()
        };
        p.spec.containers = apps.iter().map(c).collect();
        p.spec.init_containers = inits.iter().map(c).collect();
        p
    }

    #[test]
    fn container_choice_follows_kubernetes() {
        let cases = [
            (pod(&["app"], &[]), "", Ok("app")),
            (pod(&["app", "side"], &[]), "side", Ok("side")),
            (pod(&["app"], &["init"]), "init", Ok("init")),
            (
                pod(&["app", "side"], &[]),
                "",
                Err("a container name must be specified for pod web, choose one of: [app side]"),
            ),
            (
                pod(&["app", "side"], &["init"]),
                "",
                Err(
                    "a container name must be specified for pod web, choose one of: [app side] or one of the init containers: [init]",
                ),
            ),
            (
                pod(&["app"], &[]),
                "nope",
                Err("container nope is not valid for pod web"),
            ),
        ];
        for (p, asked, want) in cases {
            assert_eq!(
                choose_container(&p, asked),
                want.map(str::to_string).map_err(str::to_string),
                "{asked}"
            );
        }
    }
}
