//! Client errors, and decoding of the `Status` bodies the server answers
//! failures with.

use std::fmt;
use std::time::Duration;

use http::StatusCode;

use super::kubeconfig::KubeconfigError;
use crate::api::Status;
use crate::auth::AuthError;

/// A failure the API server reported: its `Status` (or one made up from
/// the HTTP code when the body was not a `Status`, as client-go does).
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    /// HTTP status code (`Status.code`).
    pub code: u16,
    /// CamelCase reason: `NotFound`, `AlreadyExists`, `Conflict`, ...
    pub reason: String,
    pub message: String,
    /// The full status, with details and causes.
    pub status: Status,
}

impl ApiError {
    /// Decodes an error response body; anything that is not a `Status`
    /// becomes one with the generic reason and message for `code`.
    pub fn from_response(code: StatusCode, body: &[u8]) -> ApiError {
        if let Ok(status) = serde_json::from_slice::<Status>(body)
            && status.kind == "Status"
        {
            let code = u16::try_from(status.code)
                .ok()
                .filter(|c| *c != 0)
                .unwrap_or(code.as_u16());
            let reason = if status.reason.is_empty() {
                generic(code).0.to_string()
            } else {
                status.reason.clone()
            };
            return ApiError {
                code,
                reason,
                message: status.message.clone(),
                status,
            };
        }
        let (reason, generic_message) = generic(code.as_u16());
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        let message = if text.is_empty() || text.len() > 512 {
            generic_message.to_string()
        } else {
            format!("{generic_message} ({text})")
        };
        ApiError {
            code: code.as_u16(),
            reason: reason.to_string(),
            message: message.clone(),
            status: Status {
                api_version: "v1".into(),
                kind: "Status".into(),
                status: "Failure".into(),
                message,
                reason: reason.to_string(),
                code: i32::from(code.as_u16()),
                ..Default::default()
            },
        }
    }
}

/// Reason and message for an HTTP error code without a `Status` body.
fn generic(code: u16) -> (&'static str, &'static str) {
    match code {
        400 => ("BadRequest", "the server rejected the request"),
        401 => (
            "Unauthorized",
            "the server has asked for the client to provide credentials",
        ),
        403 => (
            "Forbidden",
            "the server does not allow access to the requested resource",
        ),
        404 => (
            "NotFound",
            "the server could not find the requested resource",
        ),
        405 => (
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        ),
        406 => (
            "NotAcceptable",
            "the server cannot produce the requested content type",
        ),
        409 => ("Conflict", "the server reported a conflict"),
        410 => (
            "Expired",
            "the requested resource version is no longer available",
        ),
        413 => ("RequestEntityTooLarge", "the request is too large"),
        415 => (
            "UnsupportedMediaType",
            "the server does not support the content type of the request",
        ),
        422 => ("Invalid", "the server rejected the request as invalid"),
        429 => (
            "TooManyRequests",
            "the server has received too many requests, try again later",
        ),
        500 => (
            "InternalError",
            "an error on the server prevented the request from succeeding",
        ),
        503 => (
            "ServiceUnavailable",
            "the server is currently unable to handle the request",
        ),
        504 => (
            "Timeout",
            "the server did not answer in time; the request may still be processed",
        ),
        _ => ("", "unexpected response from the server"),
    }
}

impl fmt::Display for ApiError {
    /// What kubectl prints (without its `error: ` prefix for 401).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.reason == "Unauthorized" {
            write!(f, "You must be logged in to the server ({})", self.message)
        } else if self.reason.is_empty() {
            write!(f, "Error from server: {}", self.message)
        } else {
            write!(f, "Error from server ({}): {}", self.reason, self.message)
        }
    }
}

impl std::error::Error for ApiError {}

/// One server that could not be reached, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectFailure {
    pub server: String,
    pub reason: String,
}

/// Everything that can go wrong when calling the API.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error status (boxed: a full `Status`
    /// would make every `Result` of this crate large).
    #[error(transparent)]
    Api(Box<ApiError>),
    /// No server could be connected to (refused, TLS failure, timeout).
    #[error("{}", unreachable(.0))]
    Unreachable(Vec<ConnectFailure>),
    #[error("request to {server} failed: {reason}")]
    Request { server: String, reason: String },
    #[error("no answer from {server} within {after:?}")]
    Timeout { server: String, after: Duration },
    #[error("cannot decode the response of {server}{path}: {source}")]
    Decode {
        server: String,
        path: String,
        source: serde_json::Error,
    },
    #[error("cannot encode the request body: {0}")]
    Encode(#[source] serde_json::Error),
    #[error("invalid server URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("no API server URL configured")]
    NoServers,
    #[error("the bearer token contains characters not allowed in an HTTP header")]
    InvalidToken,
    #[error("invalid tls-server-name {name:?}: {reason}")]
    InvalidServerName { name: String, reason: String },
    #[error(
        "no CA certificate for {server}: set certificate-authority(-data) or insecure-skip-tls-verify"
    )]
    NoCa { server: String },
    #[error(transparent)]
    Tls(#[from] AuthError),
    #[error(transparent)]
    Kubeconfig(#[from] KubeconfigError),
}

fn unreachable(failures: &[ConnectFailure]) -> String {
    match failures {
        [one] => format!(
            "cannot connect to the API server {}: {}",
            one.server, one.reason
        ),
        many => {
            let parts: Vec<String> = many
                .iter()
                .map(|f| format!("{}: {}", f.server, f.reason))
                .collect();
            format!("cannot connect to any API server ({})", parts.join("; "))
        }
    }
}

impl From<ApiError> for ClientError {
    fn from(e: ApiError) -> Self {
        ClientError::Api(Box::new(e))
    }
}

impl ClientError {
    /// The API error, when the server answered with one.
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            ClientError::Api(e) => Some(e),
            _ => None,
        }
    }

    /// The HTTP code of an API error.
    pub fn code(&self) -> Option<u16> {
        self.api().map(|e| e.code)
    }

    /// 404 from the server.
    pub fn is_not_found(&self) -> bool {
        self.code() == Some(404)
    }

    /// 409 from the server (a stale resourceVersion, or AlreadyExists).
    pub fn is_conflict(&self) -> bool {
        self.code() == Some(409)
    }

    /// The object to create exists already.
    pub fn is_already_exists(&self) -> bool {
        self.api().is_some_and(|e| e.reason == "AlreadyExists")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_status_bodies_like_kubectl_prints_them() {
        let not_found = br#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
            "message":"pods \"x\" not found","reason":"NotFound",
            "details":{"name":"x","kind":"pods"},"code":404}"#;
        let e = ApiError::from_response(StatusCode::NOT_FOUND, not_found);
        assert_eq!(e.code, 404);
        assert_eq!(e.status.details.as_ref().unwrap().name, "x");
        assert_eq!(
            e.to_string(),
            "Error from server (NotFound): pods \"x\" not found"
        );

        let cases: [(u16, &[u8], &str); 5] = [
            (
                401,
                br#"{"kind":"Status","status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}"#,
                "You must be logged in to the server (Unauthorized)",
            ),
            (
                401,
                b"",
                "You must be logged in to the server (the server has asked for the client to provide credentials)",
            ),
            (
                502,
                b"bad gateway",
                "Error from server: unexpected response from the server (bad gateway)",
            ),
            (
                409,
                br#"{"kind":"Status","message":"the object has been modified","code":0}"#,
                "Error from server (Conflict): the object has been modified",
            ),
            (
                503,
                br#"{"kind":"Other"}"#,
                "Error from server (ServiceUnavailable): the server is currently unable to handle the request ({\"kind\":\"Other\"})",
            ),
        ];
        for (code, body, want) in cases {
            let e = ApiError::from_response(StatusCode::from_u16(code).unwrap(), body);
            assert_eq!(e.to_string(), want);
            assert_eq!(e.code, code);
        }
    }

    #[test]
    fn connection_failures_name_every_server() {
        let one = ClientError::Unreachable(vec![ConnectFailure {
            server: "https://a:6443".into(),
            reason: "connection refused".into(),
        }]);
        assert_eq!(
            one.to_string(),
            "cannot connect to the API server https://a:6443: connection refused"
        );
        let two = ClientError::Unreachable(vec![
            ConnectFailure {
                server: "https://a".into(),
                reason: "refused".into(),
            },
            ConnectFailure {
                server: "https://b".into(),
                reason: "503".into(),
            },
        ]);
        assert_eq!(
            two.to_string(),
            "cannot connect to any API server (https://a: refused; https://b: 503)"
        );
    }
}
