//! The cluster endpoints, served next to the Kubernetes API by every master
//! and open to members of `system:masters` only:
//!
//! - `GET /apis/wasmk.io/v1/cluster/status`: this master's view: its Raft
//!   state (term, commit and applied index, configuration, and on the
//!   leader each member's replication progress) and the member list.
//! - `POST /apis/wasmk.io/v1/cluster/members` `{"name", "peerURL",
//!   "clientURL"}`: adds a master (as a learner, promoted once caught up).
//! - `DELETE /apis/wasmk.io/v1/cluster/members/{name}`: removes one.
//! - `GET /apis/wasmk.io/v1/cluster/bundle`: the CA and token file, for a
//!   joining master.
//! - `GET /apis/wasmk.io/v1/cluster/snapshot`: a backup (see `backup`).
//!
//! Membership changes are made by the leader: a follower forwards the
//! request to the leader's client URL with the caller's credentials (once;
//! `forwarded=1` marks the forwarded request).

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde_json::{Value, json};

use super::bundle::Bundle;
use super::members::Membership;
use super::{ClusterError, Member};
use crate::apiserver::error::{ApiError, ApiResult};
use crate::apiserver::http::{Body, Extension, RequestContext, error_response};
use crate::auth::token::MASTERS_GROUP;
use crate::client::ApiClient;

const PREFIX: &str = "/apis/wasmk.io/v1/cluster/";

/// The cluster endpoints (see the module docs).
pub struct ClusterRoutes {
    pub membership: Arc<Membership>,
    /// The data directory, whose `pki/` and `tokens.csv` form the bundle.
    pub data_dir: PathBuf,
    /// The cluster CA, to reach the leader when forwarding.
    pub ca_pem: String,
    /// Where blob chunks live (for backups).
    pub blob_dir: Option<PathBuf>,
}

fn json_response(code: StatusCode, v: &Value) -> Response<Body> {
    let mut r =
        Response::new(Full::new(Bytes::from(serde_json::to_vec(v).unwrap_or_default())).boxed());
    *r.status_mut() = code;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

impl From<ClusterError> for ApiError {
    fn from(e: ClusterError) -> ApiError {
        match e {
            ClusterError::InvalidName { .. } | ClusterError::Peer(_) => {
                ApiError::new(422, "Invalid", e.to_string())
            }
            ClusterError::IdCollision { .. } => ApiError::new(409, "Conflict", e.to_string()),
            ClusterError::Refused(m) => ApiError::new(409, "Conflict", m),
            ClusterError::NoSuchMember { .. } => ApiError::new(404, "NotFound", e.to_string()),
            ClusterError::NotLeader { .. } => ApiError::unavailable(format!("{e}; retry shortly")),
            ClusterError::Store(s) => s.into(),
            other => ApiError::internal(other.to_string()),
        }
    }
}

impl ClusterRoutes {
    fn status(&self) -> Value {
        let m = &self.membership;
        let raft = m.store().raft_status();
        let leader = (raft.leader != 0).then(|| {
            let rec = m.member_by_id(raft.leader);
            json!({
                "id": raft.leader,
                "name": rec.as_ref().map(|r| r.name.clone()),
                "clientURL": rec.as_ref().map(|r| r.client_url.clone()),
            })
        });
        json!({
            "kind": "ClusterStatus",
            "apiVersion": "wasmk.io/v1",
            "name": m.me().name,
            "id": m.me().id,
            "peerURL": m.me().peer_url,
            "clientURL": m.me().client_url,
            "health": if raft.leader != 0 { "ok" } else { "no leader" },
            "leader": leader,
            "raft": raft,
            "members": m.status(),
        })
    }

    /// Forwards a membership change to the leader, unless this master is
    /// the leader (None) or it already was forwarded.
    async fn forward(
        &self,
        ctx: &RequestContext,
        method: Method,
        path: &str,
        body: Option<Bytes>,
    ) -> ApiResult<Option<Response<Body>>> {
        let role = self.membership.store().role();
        if role.is_leader {
            return Ok(None);
        }
        if ctx.query.contains_key("forwarded") {
            return Err(ApiError::unavailable(
                "a forwarded membership change reached a master that is not the leader; retry shortly",
            ));
        }
        if role.leader == 0 {
            return Err(ApiError::unavailable(
                "no Raft leader is known; retry shortly",
            ));
        }
        let leader = self
            .membership
            .member_by_id(role.leader)
            .filter(|m| !m.client_url.is_empty())
            .ok_or_else(|| {
                ApiError::unavailable(format!(
                    "the leader (raft id {}) has not registered its API address yet; retry shortly",
                    role.leader
                ))
            })?;
        let token = ctx
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_string);
        let client = ApiClient::new(
            vec![leader.client_url.clone()],
            self.ca_pem.as_bytes(),
            token,
        )
        .map_err(|e| ApiError::internal(format!("cannot reach the leader: {e}")))?;
        let sep = if path.contains('?') { '&' } else { '?' };
        let (status, _, bytes) = client
            .raw(
                method,
                &format!("{path}{sep}forwarded=1"),
                body,
                Some("application/json"),
            )
            .await
            .map_err(|e| {
                ApiError::unavailable(format!(
                    "cannot reach the leader {} at {}: {e}",
                    leader.name, leader.client_url
                ))
            })?;
        let mut r = Response::new(Full::new(bytes).boxed());
        *r.status_mut() = status;
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        Ok(Some(r))
    }

    async fn add(&self, ctx: &RequestContext, req: Request<Incoming>) -> ApiResult<Response<Body>> {
        let body = Limited::new(req.into_body(), 64 << 10)
            .collect()
            .await
            .map_err(|e| ApiError::bad_request(format!("reading the request body: {e}")))?
            .to_bytes();
        if let Some(r) = self
            .forward(
                ctx,
                Method::POST,
                super::bundle::MEMBERS_PATH,
                Some(body.clone()),
            )
            .await?
        {
            return Ok(r);
        }
        let v: Value = serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request(format!("the request body is not valid JSON: {e}"))
        })?;
        let field = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let (name, peer_url, client_url) = (field("name"), field("peerURL"), field("clientURL"));
        if name.is_empty() || peer_url.is_empty() {
            return Err(ApiError::new(
                422,
                "Invalid",
                "a member needs \"name\" and \"peerURL\" (and should have \"clientURL\")",
            ));
        }
        let added = self
            .membership
            .add(&Member::new(&name, &peer_url, &client_url))
            .await?;
        let v = serde_json::to_value(&added).map_err(|e| ApiError::internal(e.to_string()))?;
        Ok(json_response(StatusCode::CREATED, &v))
    }

    async fn remove(&self, ctx: &RequestContext, name: &str) -> ApiResult<Response<Body>> {
        let path = format!("{}/{name}", super::bundle::MEMBERS_PATH);
        let forwarded = ctx.query.contains_key("forwarded");
        // The leader removing itself hands leadership over first and
        // answers 503; the master that took the request then asks the new
        // leader.
        for _ in 0..5 {
            let outcome = match self.forward(ctx, Method::DELETE, &path, None).await? {
                Some(r) if r.status() == StatusCode::SERVICE_UNAVAILABLE && !forwarded => None,
                Some(r) => return Ok(r),
                None => match self.membership.remove(name).await {
                    Ok(()) => Some(json_response(
                        StatusCode::OK,
                        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                                "message": format!("master {name} removed"), "code": 200}),
                    )),
                    Err(ClusterError::NotLeader { .. }) if !forwarded => None,
                    Err(e) => return Err(e.into()),
                },
            };
            if let Some(r) = outcome {
                return Ok(r);
            }
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        }
        Err(ApiError::unavailable(
            "leadership is moving; retry the removal shortly",
        ))
    }

    fn bundle(&self) -> ApiResult<Response<Body>> {
        let b =
            Bundle::load_data_dir(&self.data_dir).map_err(|e| ApiError::internal(e.to_string()))?;
        let v = serde_json::to_value(&b).map_err(|e| ApiError::internal(e.to_string()))?;
        Ok(json_response(StatusCode::OK, &v))
    }

    async fn snapshot(&self) -> ApiResult<Response<Body>> {
        let (index, body) =
            super::backup::backup_body(self.membership.store(), self.blob_dir.clone()).await?;
        let mut r = Response::new(body);
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/octet-stream"),
        );
        if let Ok(v) = http::HeaderValue::from_str(&index.to_string()) {
            r.headers_mut().insert("x-wasmk-snapshot-index", v);
        }
        Ok(r)
    }
}

impl Extension for ClusterRoutes {
    fn handle<'a>(
        &'a self,
        ctx: &'a RequestContext,
        req: &'a mut Option<Request<Incoming>>,
    ) -> Pin<Box<dyn Future<Output = Option<Response<Body>>> + Send + 'a>> {
        Box::pin(async move {
            let rest = ctx.path.strip_prefix(PREFIX)?;
            let segs: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
            let allowed = ctx.user.as_ref().is_none_or(|u| u.in_group(MASTERS_GROUP));
            let result = if !allowed {
                Err(ApiError::forbidden(format!(
                    "cluster operations are for members of {MASTERS_GROUP}"
                )))
            } else {
                match (segs.as_slice(), &ctx.method) {
                    (["status"], &Method::GET) => Ok(json_response(StatusCode::OK, &self.status())),
                    (["members"], &Method::GET) => Ok(json_response(
                        StatusCode::OK,
                        &json!({"members": self.membership.status()}),
                    )),
                    (["members"], &Method::POST) => match req.take() {
                        Some(r) => self.add(ctx, r).await,
                        None => Err(ApiError::internal("request already consumed")),
                    },
                    (["members", name], &Method::DELETE) => self.remove(ctx, name).await,
                    (["bundle"], &Method::GET) => self.bundle(),
                    (["snapshot"], &Method::GET) => self.snapshot().await,
                    _ => return None,
                }
            };
            Some(match result {
                Ok(r) => r,
                Err(e) => error_response(&e),
            })
        })
    }
}
