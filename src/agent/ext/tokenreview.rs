//! `POST /apis/authentication.k8s.io/v1/tokenreviews`: tells an agent who
//! a bearer token belongs to. Callers must be agents (`system:nodes`) or
//! administrators (`system:masters`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde_json::{Value, json};

use crate::apiserver::error::{ApiError, ApiResult};
use crate::apiserver::http::{Body, Extension, RequestContext, error_response};
use crate::auth::Authenticator;
use crate::auth::token::{MASTERS_GROUP, NODES_GROUP};

/// The TokenReview route.
pub struct TokenReviews {
    pub auth: Arc<Authenticator>,
}

/// The TokenReview answer for `token` (pure).
pub fn review(auth: &Authenticator, token: &str) -> Value {
    let status = match auth.authenticate_token(token) {
        Ok(u) => json!({
            "authenticated": true,
            "user": {"username": u.name, "uid": u.uid, "groups": u.groups},
        }),
        Err(e) => json!({"authenticated": false, "error": e.to_string()}),
    };
    json!({
        "kind": "TokenReview",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"creationTimestamp": null},
        // The token is not echoed back: responses end up in logs.
        "spec": {},
        "status": status,
    })
}

impl TokenReviews {
    async fn handle(
        &self,
        ctx: &RequestContext,
        req: Request<Incoming>,
    ) -> ApiResult<Response<Body>> {
        let allowed = ctx
            .user
            .as_ref()
            .is_some_and(|u| u.in_group(NODES_GROUP) || u.in_group(MASTERS_GROUP));
        if !allowed {
            let who = ctx
                .user
                .as_ref()
                .map(|u| u.name.as_str())
                .unwrap_or("anonymous");
            return Err(ApiError::forbidden(format!(
                "tokenreviews.authentication.k8s.io is forbidden: User \"{who}\" cannot create resource \"tokenreviews\" in API group \"authentication.k8s.io\" at the cluster scope"
            )));
        }
        let body = Limited::new(req.into_body(), 64 * 1024)
            .collect()
            .await
            .map_err(|e| ApiError::bad_request(format!("cannot read the TokenReview: {e}")))?
            .to_bytes();
        let v: Value = serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("invalid TokenReview: {e}")))?;
        let token = v
            .pointer("/spec/token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError::bad_request("TokenReview spec.token is required"))?;
        let out = review(&self.auth, token);
        let mut r = Response::new(Full::new(Bytes::from(out.to_string())).boxed());
        *r.status_mut() = StatusCode::CREATED;
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        Ok(r)
    }
}

impl Extension for TokenReviews {
    fn handle<'a>(
        &'a self,
        ctx: &'a RequestContext,
        req: &'a mut Option<Request<Incoming>>,
    ) -> Pin<Box<dyn Future<Output = Option<Response<Body>>> + Send + 'a>> {
        Box::pin(async move {
            if ctx.path.trim_end_matches('/') != "/apis/authentication.k8s.io/v1/tokenreviews" {
                return None;
            }
            if ctx.method != Method::POST {
                return Some(error_response(&ApiError::method_not_allowed(
                    "tokenreviews only support create",
                )));
            }
            let r = req.take()?;
            Some(match self.handle(ctx, r).await {
                Ok(r) => r,
                Err(e) => error_response(&e),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::UserInfo;

    #[test]
    fn reviews_name_the_user_or_refuse() {
        let mut auth = Authenticator::default();
        auth.insert(
            "good",
            UserInfo {
                name: "system:apiserver".into(),
                uid: "u1".into(),
                groups: vec![MASTERS_GROUP.into()],
            },
        );
        let ok = review(&auth, "good");
        assert_eq!(ok["status"]["authenticated"], true);
        assert_eq!(ok["status"]["user"]["username"], "system:apiserver");
        assert_eq!(ok["status"]["user"]["groups"][0], MASTERS_GROUP);
        assert!(ok["spec"].get("token").is_none());
        let bad = review(&auth, "bad");
        assert_eq!(bad["status"]["authenticated"], false);
        assert_eq!(bad["status"]["error"], "invalid bearer token");
        // What the agent makes of these answers.
        let user = crate::agent::review::parse_review(&ok).unwrap();
        assert!(user.in_group(MASTERS_GROUP));
        assert!(crate::agent::review::parse_review(&bad).is_err());
    }
}
