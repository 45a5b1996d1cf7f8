//! Checking the bearer tokens of requests to the agent by asking the API
//! server (`POST /apis/authentication.k8s.io/v1/tokenreviews`), with
//! answers cached for a minute (denials for ten seconds) so a stream of
//! log requests costs one review.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::auth::UserInfo;
use crate::client::ApiClient;

/// How long an accepted token is trusted without asking again.
pub const ACCEPT_TTL: Duration = Duration::from_secs(60);
/// How long a refused token is refused without asking again.
pub const DENY_TTL: Duration = Duration::from_secs(10);
/// Cached answers kept at most (a flood of random tokens must not grow it).
const MAX_ENTRIES: usize = 4096;

/// Why a request to the agent is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReviewError {
    #[error("the token was not accepted: {0}")]
    Denied(String),
    #[error("cannot review the token with the API server: {0}")]
    Unavailable(String),
}

/// The user a TokenReview response names, or why it was refused.
pub fn parse_review(v: &Value) -> Result<UserInfo, ReviewError> {
    let status = v.get("status").cloned().unwrap_or(Value::Null);
    if status.get("authenticated").and_then(Value::as_bool) != Some(true) {
        let why = status
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("not authenticated");
        return Err(ReviewError::Denied(why.to_string()));
    }
    let user = status.get("user").cloned().unwrap_or(Value::Null);
    let s = |k: &str| {
        user.get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    Ok(UserInfo {
        name: s("username"),
        uid: s("uid"),
        groups: user
            .get("groups")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|g| g.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
    })
}

type Cached = (Result<UserInfo, ReviewError>, Instant);

/// Reviews tokens through the API, with a cache.
pub struct TokenReviewer {
    client: ApiClient,
    cache: Mutex<HashMap<[u8; 32], Cached>>,
}

impl TokenReviewer {
    pub fn new(client: ApiClient) -> TokenReviewer {
        TokenReviewer {
            client,
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn cached(&self, key: &[u8; 32], now: Instant) -> Option<Result<UserInfo, ReviewError>> {
        let cache = self.cache.lock();
        let (answer, until) = cache.get(key)?;
        (*until > now).then(|| answer.clone())
    }

    fn remember(&self, key: [u8; 32], answer: &Result<UserInfo, ReviewError>, now: Instant) {
        let ttl = match answer {
            Ok(_) => ACCEPT_TTL,
            Err(ReviewError::Denied(_)) => DENY_TTL,
            // Outages are not cached: the next request asks again.
            Err(ReviewError::Unavailable(_)) => return,
        };
        let mut cache = self.cache.lock();
        if cache.len() >= MAX_ENTRIES {
            cache.retain(|_, (_, until)| *until > now);
            if cache.len() >= MAX_ENTRIES {
                cache.clear();
            }
        }
        cache.insert(key, (answer.clone(), now + ttl));
    }

    /// The user `token` belongs to.
    pub async fn review(&self, token: &str) -> Result<UserInfo, ReviewError> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = Instant::now();
        if let Some(answer) = self.cached(&key, now) {
            return answer;
        }
        let body = json!({
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": {"token": token},
        });
        let answer = match self
            .client
            .create("/apis/authentication.k8s.io/v1/tokenreviews", &body)
            .await
        {
            Ok(v) => parse_review(&v),
            Err(e) => Err(ReviewError::Unavailable(e.to_string())),
        };
        self.remember(key, &answer, now);
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn review_responses() {
        let ok = json!({"status": {"authenticated": true, "user": {
            "username": "system:apiserver", "uid": "u1", "groups": ["system:masters"]}}});
        let user = parse_review(&ok).unwrap();
        assert_eq!(user.name, "system:apiserver");
        assert!(user.in_group("system:masters"));
        let denied = json!({"status": {"authenticated": false, "error": "invalid bearer token"}});
        assert_eq!(
            parse_review(&denied),
            Err(ReviewError::Denied("invalid bearer token".into()))
        );
        assert!(parse_review(&json!({})).is_err());
    }

    #[test]
    fn answers_are_cached_for_their_ttl() {
        // Nothing listens there: only the cache is exercised.
        let client = ApiClient::new(vec!["http://127.0.0.1:1".into()], b"", None).unwrap();
        let r = TokenReviewer::new(client);
        let now = Instant::now();
        let user = UserInfo {
            name: "a".into(),
            ..Default::default()
        };
        r.remember([1; 32], &Ok(user.clone()), now);
        r.remember([2; 32], &Err(ReviewError::Denied("no".into())), now);
        r.remember([3; 32], &Err(ReviewError::Unavailable("down".into())), now);
        assert_eq!(r.cached(&[1; 32], now), Some(Ok(user)));
        assert!(r.cached(&[1; 32], now + ACCEPT_TTL).is_none());
        assert!(r.cached(&[2; 32], now + Duration::from_secs(1)).is_some());
        assert!(r.cached(&[2; 32], now + DENY_TTL).is_none());
        assert!(r.cached(&[3; 32], now).is_none());
    }
}
