//! Bootstrap tokens, as Kubernetes defines them: `<id>.<secret>` (6 and 16
//! characters of `[a-z0-9]`) backed by a Secret `bootstrap-token-<id>` of
//! type `bootstrap.kubernetes.io/token` in `kube-system`. They let a new node
//! join without editing any master's token file, and being API objects they
//! are replicated to every master by Raft. `wasmk token create` makes one.

use chrono::{DateTime, Utc};
use rand::Rng;

use super::AuthError;
use super::UserInfo;
use super::token::{NODES_GROUP, digests_equal};
use crate::api::core::Secret;
use sha2::{Digest, Sha256};

/// The Secret type of bootstrap tokens.
pub const SECRET_TYPE: &str = "bootstrap.kubernetes.io/token";
/// The namespace their Secrets live in.
pub const NAMESPACE: &str = "kube-system";
/// The group every bootstrap token's user is in.
pub const BOOTSTRAPPERS_GROUP: &str = "system:bootstrappers";
/// The extra group `wasmk token create` gives: these tokens join nodes.
pub const NODE_BOOTSTRAPPERS_GROUP: &str = "system:bootstrappers:wasmk:nodes";

/// The Secret name of token `id`.
pub fn secret_name(id: &str) -> String {
    format!("bootstrap-token-{id}")
}

fn valid_part(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// Splits a bootstrap token into (id, secret); `None` if it is not one.
pub fn parse(token: &str) -> Option<(&str, &str)> {
    let (id, secret) = token.split_once('.')?;
    (valid_part(id, 6) && valid_part(secret, 16)).then_some((id, secret))
}

/// A new random token: (id, secret).
pub fn generate() -> (String, String) {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let mut pick = |n: usize| -> String {
        (0..n)
            .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
            .collect()
    };
    (pick(6), pick(16))
}

/// Compares SHA-256 digests, so neither the secrets' contents nor their
/// lengths change how long the comparison takes.
fn secrets_equal(a: &str, b: &str) -> bool {
    digests_equal(
        &Sha256::digest(a.as_bytes()).into(),
        &Sha256::digest(b.as_bytes()).into(),
    )
}

/// When the token expires: `Ok(None)` for never, `Err` with the text when
/// `expiration` is not an RFC 3339 time.
pub fn expires_at(secret: &Secret) -> Result<Option<DateTime<Utc>>, String> {
    let Some(v) = secret.data.get("expiration") else {
        return Ok(None);
    };
    let text = String::from_utf8_lossy(v);
    DateTime::parse_from_rfc3339(&text)
        .map(|t| Some(t.with_timezone(&Utc)))
        .map_err(|_| text.into_owned())
}

/// Checks `token_secret` of token `id` against its Secret at `now`; the
/// user it authenticates as on success.
pub fn verify(
    secret: &Secret,
    id: &str,
    token_secret: &str,
    now: DateTime<Utc>,
) -> Result<UserInfo, AuthError> {
    let field = |k: &str| {
        secret
            .data
            .get(k)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    };
    if secret.type_ != SECRET_TYPE
        || field("token-id").as_deref() != Some(id)
        || field("usage-bootstrap-authentication").as_deref() != Some("true")
        || !secrets_equal(&field("token-secret").unwrap_or_default(), token_secret)
        || secret.metadata.deletion_timestamp.is_some()
    {
        return Err(AuthError::UnknownToken);
    }
    // An unreadable expiration is refused as if it had passed.
    if expires_at(secret).map_or(true, |t| t.is_some_and(|t| t <= now)) {
        return Err(AuthError::UnknownToken);
    }
    let mut groups = vec![BOOTSTRAPPERS_GROUP.to_string()];
    if let Some(extra) = field("auth-extra-groups") {
        groups.extend(
            extra
                .split(',')
                .map(str::trim)
                .filter(|g| g.starts_with("system:bootstrappers:"))
                .map(String::from),
        );
    }
    // Tokens made to join nodes act as nodes (wasmk has no CSR flow).
    if groups.iter().any(|g| g == NODE_BOOTSTRAPPERS_GROUP) {
        groups.push(NODES_GROUP.to_string());
    }
    Ok(UserInfo {
        name: format!("system:bootstrap:{id}"),
        uid: secret.metadata.uid.clone(),
        groups,
    })
}

/// The Secret for a new token, as `kubeadm token create` writes it.
pub fn secret_for(
    id: &str,
    token_secret: &str,
    expiration: Option<DateTime<Utc>>,
    description: &str,
) -> serde_json::Value {
    let mut data = serde_json::json!({
        "token-id": id,
        "token-secret": token_secret,
        "usage-bootstrap-authentication": "true",
        "usage-bootstrap-signing": "true",
        "auth-extra-groups": NODE_BOOTSTRAPPERS_GROUP,
    });
    if let Some(e) = expiration {
        data["expiration"] = e.to_rfc3339_opts(chrono::SecondsFormat::Secs, true).into();
    }
    if !description.is_empty() {
        data["description"] = description.into();
    }
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": secret_name(id), "namespace": NAMESPACE},
        "type": SECRET_TYPE,
        "stringData": data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(id: &str, s: &str, extra: &[(&str, &str)]) -> Secret {
        let mut sec = Secret {
            type_: SECRET_TYPE.into(),
            ..Default::default()
        };
        for (k, v) in [
            ("token-id", id),
            ("token-secret", s),
            ("usage-bootstrap-authentication", "true"),
        ]
        .into_iter()
        .chain(extra.iter().copied())
        {
            sec.data.insert(k.into(), v.as_bytes().to_vec());
        }
        sec
    }

    #[test]
    fn tokens_parse_only_in_their_format() {
        assert_eq!(
            parse("abcdef.0123456789abcdef"),
            Some(("abcdef", "0123456789abcdef"))
        );
        for bad in [
            "abcdef0123456789abcdef",
            "ABCDEF.0123456789abcdef",
            "abcde.0123456789abcdef",
            "abcdef.0123456789abcde!",
            "",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
        let (id, s) = generate();
        assert!(parse(&format!("{id}.{s}")).is_some());
    }

    #[test]
    fn verification_checks_secret_usage_and_expiry() {
        let now = Utc::now();
        let ok = secret(
            "abcdef",
            "0123456789abcdef",
            &[("auth-extra-groups", NODE_BOOTSTRAPPERS_GROUP)],
        );
        let u = verify(&ok, "abcdef", "0123456789abcdef", now).unwrap();
        assert_eq!(u.name, "system:bootstrap:abcdef");
        assert!(u.groups.contains(&NODES_GROUP.to_string()));
        assert!(verify(&ok, "abcdef", "0123456789abcdeX", now).is_err());
        assert!(verify(&ok, "zzzzzz", "0123456789abcdef", now).is_err());
        let expired = secret(
            "abcdef",
            "0123456789abcdef",
            &[("expiration", "2020-01-01T00:00:00Z")],
        );
        assert!(verify(&expired, "abcdef", "0123456789abcdef", now).is_err());
        let mut no_auth = ok.clone();
        no_auth
            .data
            .insert("usage-bootstrap-authentication".into(), b"false".to_vec());
        assert!(verify(&no_auth, "abcdef", "0123456789abcdef", now).is_err());
        let mut wrong_type = ok;
        wrong_type.type_ = "Opaque".into();
        assert!(verify(&wrong_type, "abcdef", "0123456789abcdef", now).is_err());
    }
}
