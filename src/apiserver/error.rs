//! API errors: each becomes a `metav1.Status` with the HTTP code and reason
//! Kubernetes uses, and a message a person can act on.

use crate::api::registry::ResourceInfo;
use crate::api::validation::FieldErrors;
use crate::api::{Status, StatusCause, StatusDetails};

/// An error answered to an API client.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub code: u16,
    /// Kubernetes `StatusReason`: NotFound, AlreadyExists, Conflict, Invalid, ...
    pub reason: &'static str,
    pub message: String,
    /// Boxed: errors travel in every `Result` of the API server.
    pub details: Option<Box<StatusDetails>>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.reason, self.message)
    }
}

impl std::error::Error for ApiError {}

pub type ApiResult<T> = Result<T, ApiError>;

fn details(info: &ResourceInfo, name: &str) -> Option<Box<StatusDetails>> {
    Some(Box::new(StatusDetails {
        name: name.to_string(),
        group: info.group.to_string(),
        kind: info.plural.to_string(),
        ..Default::default()
    }))
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "BadRequest", message)
    }

    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(401, "Unauthorized", message)
    }

    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(403, "Forbidden", message)
    }

    /// `pods "web" not found`
    pub fn not_found(info: &ResourceInfo, name: &str) -> ApiError {
        ApiError {
            details: details(info, name),
            ..ApiError::new(
                404,
                "NotFound",
                format!("{} \"{}\" not found", info.qualified(), name),
            )
        }
    }

    /// A path that names no resource.
    pub fn no_route(path: &str) -> ApiError {
        ApiError::new(
            404,
            "NotFound",
            format!("the server could not find the requested resource ({path})"),
        )
    }

    pub fn method_not_allowed(message: impl Into<String>) -> ApiError {
        ApiError::new(405, "MethodNotAllowed", message)
    }

    pub fn not_acceptable(message: impl Into<String>) -> ApiError {
        ApiError::new(406, "NotAcceptable", message)
    }

    /// `pods "web" already exists`
    pub fn already_exists(info: &ResourceInfo, name: &str) -> ApiError {
        ApiError {
            details: details(info, name),
            ..ApiError::new(
                409,
                "AlreadyExists",
                format!("{} \"{}\" already exists", info.qualified(), name),
            )
        }
    }

    /// The optimistic-concurrency conflict kubectl users know.
    pub fn conflict(info: &ResourceInfo, name: &str, why: &str) -> ApiError {
        ApiError {
            details: details(info, name),
            ..ApiError::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {} \"{}\": {}",
                    info.qualified(),
                    name,
                    why
                ),
            )
        }
    }

    pub fn stale(info: &ResourceInfo, name: &str) -> ApiError {
        ApiError::conflict(
            info,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    pub fn gone(message: impl Into<String>) -> ApiError {
        ApiError::new(410, "Expired", message)
    }

    pub fn too_large(limit: usize) -> ApiError {
        ApiError::new(
            413,
            "RequestEntityTooLarge",
            format!("Request entity too large: limit is {limit}"),
        )
    }

    pub fn unsupported_media_type(message: impl Into<String>) -> ApiError {
        ApiError::new(415, "UnsupportedMediaType", message)
    }

    /// `Deployment.apps "web" is invalid: [spec.replicas: Invalid value: -1: ...]`
    pub fn invalid(info: &ResourceInfo, name: &str, errs: &FieldErrors) -> ApiError {
        let kind = if info.group.is_empty() {
            info.kind.to_string()
        } else {
            format!("{}.{}", info.kind, info.group)
        };
        ApiError {
            code: 422,
            reason: "Invalid",
            message: format!("{kind} \"{name}\" is invalid: {}", errs.summary()),
            details: Some(Box::new(StatusDetails {
                name: name.to_string(),
                group: info.group.to_string(),
                kind: info.kind.to_string(),
                causes: errs
                    .0
                    .iter()
                    .map(|e| StatusCause {
                        reason: e.kind.reason().to_string(),
                        message: e
                            .to_string()
                            .split_once(": ")
                            .map_or(String::new(), |(_, m)| m.to_string()),
                        field: e.field.clone(),
                    })
                    .collect(),
                ..Default::default()
            })),
        }
    }

    pub fn too_many_requests(message: impl Into<String>) -> ApiError {
        ApiError::new(429, "TooManyRequests", message)
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(500, "InternalError", message)
    }

    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(503, "ServiceUnavailable", message)
    }

    pub fn timeout(message: impl Into<String>) -> ApiError {
        ApiError::new(504, "Timeout", message)
    }

    /// The `Status` body.
    pub fn to_status(&self) -> Status {
        Status {
            api_version: "v1".into(),
            kind: "Status".into(),
            status: "Failure".into(),
            message: self.message.clone(),
            reason: self.reason.to_string(),
            details: self.details.as_deref().cloned(),
            code: self.code as i32,
            ..Default::default()
        }
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> ApiError {
        use crate::store::StoreError as E;
        match e {
            E::NoLeader { .. } => ApiError::unavailable(format!("{e}; retry shortly")),
            E::Timeout { .. } => ApiError::timeout(e.to_string()),
            E::TooOld { .. } => ApiError::gone(format!("too old resource version: {e}")),
            E::Stopped(_) => ApiError::unavailable(e.to_string()),
            other => ApiError::internal(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::registry::Registry;

    #[test]
    fn messages_match_kubernetes() {
        let pods = Registry::get().resolve("pods").unwrap().info();
        assert_eq!(
            ApiError::not_found(pods, "web").message,
            "pods \"web\" not found"
        );
        let deploy = Registry::get().resolve("deploy").unwrap().info();
        assert_eq!(
            ApiError::already_exists(deploy, "web").message,
            "deployments.apps \"web\" already exists"
        );
        let mut errs = FieldErrors::default();
        errs.invalid("spec.replicas", -1, "must be greater than or equal to 0");
        let e = ApiError::invalid(deploy, "web", &errs);
        assert_eq!(
            e.message,
            "Deployment.apps \"web\" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0"
        );
        let st = e.to_status();
        assert_eq!(st.code, 422);
        assert_eq!(st.details.unwrap().causes[0].field, "spec.replicas");
    }
}
