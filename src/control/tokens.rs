//! The bootstrap token cleaner: deletes the Secrets of bootstrap tokens
//! whose `expiration` has passed, as Kubernetes' tokencleaner does
//! (authentication already refuses them; this keeps them from piling up).

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use super::executor::Executor;
use crate::api::core::Secret;
use crate::apiserver::rest::{DeleteOptions, Preconditions};
use crate::auth::bootstrap::{self, NAMESPACE, SECRET_TYPE};

/// How often expired tokens are looked for.
const PERIOD: Duration = Duration::from_secs(30);

/// Whether `secret` is a bootstrap token that expired before `now`.
pub fn expired(secret: &Secret, now: DateTime<Utc>) -> bool {
    // An unreadable expiration is left alone (authentication refuses it).
    secret.type_ == SECRET_TYPE
        && bootstrap::expires_at(secret).is_ok_and(|t| t.is_some_and(|t| t <= now))
}

/// Starts the cleaner.
pub fn start(
    exec: std::sync::Arc<Executor>,
    mut stop: watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    vec![tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(PERIOD) => {}
                _ = stop.changed() => return,
            }
            let now = Utc::now();
            let prefix = format!("secrets/{NAMESPACE}/bootstrap-token-");
            let doomed: Vec<Secret> = exec.api.store.read(|sm| {
                sm.list(&prefix, None, 0)
                    .0
                    .into_iter()
                    .filter_map(|(_, s)| serde_json::from_slice::<Secret>(&s.value).ok())
                    .filter(|s| expired(s, now))
                    .collect()
            });
            let Ok(rt) = exec.api.resource("", "v1", "secrets") else {
                return;
            };
            for s in doomed {
                let opts = DeleteOptions {
                    preconditions: Some(Preconditions {
                        uid: Some(s.metadata.uid.clone()),
                        resource_version: None,
                    }),
                    ..Default::default()
                };
                match exec
                    .api
                    .delete(rt, NAMESPACE, &s.metadata.name, &opts)
                    .await
                {
                    Ok(_) => {
                        tracing::info!(secret = %s.metadata.name, "deleted expired bootstrap token")
                    }
                    Err(e) => {
                        tracing::debug!(secret = %s.metadata.name, error = %e, "cannot delete expired bootstrap token")
                    }
                }
            }
        }
    })]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_expired_bootstrap_tokens_are_doomed() {
        let now = Utc::now();
        let mut s = Secret {
            type_: SECRET_TYPE.into(),
            ..Default::default()
        };
        assert!(!expired(&s, now), "no expiration: kept");
        s.data
            .insert("expiration".into(), b"2020-01-01T00:00:00Z".to_vec());
        assert!(expired(&s, now));
        s.data
            .insert("expiration".into(), b"2999-01-01T00:00:00Z".to_vec());
        assert!(!expired(&s, now));
        s.data
            .insert("expiration".into(), b"2020-01-01T00:00:00Z".to_vec());
        s.type_ = "Opaque".into();
        assert!(!expired(&s, now), "other secrets are never touched");
    }
}
