//! The cluster bundle: what every master of one cluster must share — the
//! CA certificate and key (peers verify each other against it, and each
//! master issues its own serving and peer certificates from it) and the
//! static token file (any master must accept the same tokens).
//!
//! How masters get it:
//! - `wasmk cluster init-pki DIR` creates a bundle directory: `ca.crt`,
//!   `ca.key`, `tokens.csv` (with an admin token). Copy it to each initial
//!   master and start it with `--pki-bundle DIR`: the files are installed
//!   into the data directory (`pki/ca.crt`, `pki/ca.key`, `tokens.csv`) on
//!   first start, and must match on later starts.
//! - A master joining a running cluster (`--join URL --token-file FILE`)
//!   needs only the token file and the CA *certificate* (`--ca-file`,
//!   default `ca.crt` next to the token file): it verifies the API server
//!   with the certificate before sending the admin token, then fetches the
//!   whole bundle (`GET /apis/wasmk.io/v1/cluster/bundle`, admins only).

use std::path::{Path, PathBuf};

use http::Method;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::members::MemberStatus;
use super::{ClusterError, Member};
use crate::auth::files::{self, PRIVATE, PUBLIC};
use crate::auth::{Pki, ServingNames, TokenFile};
use crate::client::ApiClient;

pub const CA_CERT: &str = "ca.crt";
pub const CA_KEY: &str = "ca.key";
pub const TOKENS: &str = "tokens.csv";
/// API paths of the cluster endpoints.
pub const BUNDLE_PATH: &str = "/apis/wasmk.io/v1/cluster/bundle";
pub const MEMBERS_PATH: &str = "/apis/wasmk.io/v1/cluster/members";
pub const STATUS_PATH: &str = "/apis/wasmk.io/v1/cluster/status";

/// The shared files, in memory.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bundle {
    pub ca_cert: String,
    pub ca_key: String,
    pub tokens: String,
}

impl std::fmt::Debug for Bundle {
    // Never print the key or the tokens.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bundle").finish_non_exhaustive()
    }
}

fn read_text(path: &Path) -> Result<String, ClusterError> {
    std::fs::read_to_string(path).map_err(|source| ClusterError::Io {
        what: "read",
        path: path.to_path_buf(),
        source,
    })
}

/// Where a data directory keeps the bundle's files: (CA cert, CA key, tokens).
pub fn data_dir_paths(data_dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let pki = data_dir.join("pki");
    (
        pki.join(CA_CERT),
        pki.join(CA_KEY),
        crate::auth::token::token_file_path(data_dir),
    )
}

impl Bundle {
    /// Reads a bundle directory made by [`init_pki`].
    pub fn load_dir(dir: &Path) -> Result<Bundle, ClusterError> {
        Ok(Bundle {
            ca_cert: read_text(&dir.join(CA_CERT))?,
            ca_key: read_text(&dir.join(CA_KEY))?,
            tokens: read_text(&dir.join(TOKENS))?,
        })
    }

    /// Reads the bundle a master's data directory holds.
    pub fn load_data_dir(data_dir: &Path) -> Result<Bundle, ClusterError> {
        let (cert, key, tokens) = data_dir_paths(data_dir);
        Ok(Bundle {
            ca_cert: read_text(&cert)?,
            ca_key: read_text(&key)?,
            tokens: read_text(&tokens)?,
        })
    }

    /// Installs the bundle into a data directory. Files already there must
    /// match (the token file may hold more tokens than the bundle's): a
    /// data directory of another cluster is refused.
    pub fn install(&self, data_dir: &Path) -> Result<(), ClusterError> {
        let (cert, key, tokens) = data_dir_paths(data_dir);
        if let Some(pki) = cert.parent() {
            files::create_private_dir(pki).map_err(crate::auth::AuthError::from)?;
        }
        let bundle_tokens = TokenFile::parse(&self.tokens, Path::new(TOKENS))?;
        let matches = |path: &Path, existing: &str, text: &str| -> bool {
            if path != tokens {
                return existing == text;
            }
            TokenFile::parse(existing, path).is_ok_and(|have| {
                bundle_tokens
                    .entries()
                    .iter()
                    .all(|e| have.entries().contains(e))
            })
        };
        for (path, text, mode) in [
            (&cert, &self.ca_cert, PUBLIC),
            (&key, &self.ca_key, PRIVATE),
            (&tokens, &self.tokens, PRIVATE),
        ] {
            match std::fs::read_to_string(path) {
                Ok(existing) if matches(path, &existing, text) => {}
                Ok(_) => {
                    return Err(ClusterError::Refused(format!(
                        "{} differs from the cluster bundle: this data directory belongs to another cluster",
                        path.display()
                    )));
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    files::write_atomic(path, text.as_bytes(), mode)
                        .map_err(crate::auth::AuthError::from)?;
                }
                Err(source) => {
                    return Err(ClusterError::Io {
                        what: "read",
                        path: path.clone(),
                        source,
                    });
                }
            }
        }
        Ok(())
    }

    /// The admin token of the bundle's token file.
    pub fn admin_token(&self) -> Result<String, ClusterError> {
        let tf = TokenFile::parse(&self.tokens, Path::new(TOKENS))?;
        tf.admin_token()
            .map(str::to_string)
            .ok_or_else(|| ClusterError::Refused("the token file has no admin token".into()))
    }
}

/// Creates a bundle directory: a new CA and a token file with an admin
/// token. Refuses a directory that already holds one.
pub fn init_pki(dir: &Path) -> Result<Bundle, ClusterError> {
    if dir.join(CA_CERT).exists() || dir.join(CA_KEY).exists() || dir.join(TOKENS).exists() {
        return Err(ClusterError::Refused(format!(
            "{} already holds a bundle; remove it or choose another directory",
            dir.display()
        )));
    }
    let pki = Pki::load_or_create(dir, &ServingNames::loopback())?;
    // Each master issues its own serving certificate; this one is not
    // part of the bundle.
    for f in ["server.crt", "server.key"] {
        let _ = std::fs::remove_file(pki.dir().join(f));
    }
    let mut tokens = TokenFile::load_or_create(&dir.join(TOKENS))?;
    // The identity masters use towards node agents: agents check it with
    // any master, so every master must hold the same one.
    tokens.ensure_token(
        &dir.join(TOKENS),
        crate::agent::ext::APISERVER_USER,
        &[crate::auth::token::MASTERS_GROUP],
    )?;
    Bundle::load_dir(dir)
}

/// The admin token in a token file and the CA certificate next to it (or
/// at `ca_file`): what a joining master starts from.
pub fn join_credentials(
    token_file: &Path,
    ca_file: Option<&Path>,
) -> Result<(String, String), ClusterError> {
    let tokens = TokenFile::load(token_file)?;
    let token = tokens.admin_token().map(str::to_string).ok_or_else(|| {
        ClusterError::Refused(format!(
            "{} has no token of a member of system:masters",
            token_file.display()
        ))
    })?;
    let ca = match ca_file {
        Some(p) => p.to_path_buf(),
        None => token_file
            .parent()
            .unwrap_or_else(|| Path::new("."))
            .join(CA_CERT),
    };
    let ca_pem = read_text(&ca).map_err(|e| {
        ClusterError::Refused(format!(
            "{e}: a joining master verifies the cluster with its CA certificate (--ca-file)"
        ))
    })?;
    Ok((token, ca_pem))
}

fn client_err(what: &str) -> impl FnOnce(crate::client::ClientError) -> ClusterError {
    let what = what.to_string();
    move |source| ClusterError::Client { what, source }
}

/// Fetches the bundle from a running cluster.
pub async fn fetch(client: &ApiClient) -> Result<Bundle, ClusterError> {
    let v = client
        .get(BUNDLE_PATH)
        .await
        .map_err(client_err("fetch the cluster bundle"))?;
    serde_json::from_value(v).map_err(|e| ClusterError::Corrupt {
        what: "cluster bundle".into(),
        reason: e.to_string(),
    })
}

/// The cluster's members as a running master lists them.
pub async fn members(client: &ApiClient) -> Result<Vec<Member>, ClusterError> {
    let v = client
        .get(STATUS_PATH)
        .await
        .map_err(client_err("read the cluster status"))?;
    let members = v.get("members").cloned().unwrap_or_default();
    serde_json::from_value(members).map_err(|e| ClusterError::Corrupt {
        what: "cluster status".into(),
        reason: e.to_string(),
    })
}

/// Asks the cluster to add `m` (as a learner, promoted once caught up).
pub async fn add_member(client: &ApiClient, m: &Member) -> Result<MemberStatusView, ClusterError> {
    let body = json!({"name": m.name, "peerURL": m.peer_url, "clientURL": m.client_url});
    let v = client
        .create(MEMBERS_PATH, &body)
        .await
        .map_err(client_err(&format!("add master {}", m.name)))?;
    serde_json::from_value(v).map_err(|e| ClusterError::Corrupt {
        what: "add-member answer".into(),
        reason: e.to_string(),
    })
}

/// Asks the cluster to remove member `name`.
pub async fn remove_member(client: &ApiClient, name: &str) -> Result<(), ClusterError> {
    let path = format!("{MEMBERS_PATH}/{name}");
    let (status, _, body) = client
        .raw(Method::DELETE, &path, None, None)
        .await
        .map_err(client_err(&format!("remove master {name}")))?;
    if status.is_success() {
        return Ok(());
    }
    let err = crate::client::ApiError::from_response(status, &body);
    Err(ClusterError::Refused(format!(
        "remove master {name}: {}",
        err.message
    )))
}

/// A member with its role, as the API returns it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct MemberStatusView {
    #[serde(flatten)]
    pub member: Member,
    pub role: String,
}

impl From<MemberStatus> for MemberStatusView {
    fn from(s: MemberStatus) -> Self {
        MemberStatusView {
            member: s.member,
            role: s.role.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bundle_installs_once_and_refuses_another_cluster() {
        let dir = tempfile::tempdir().unwrap();
        let b = init_pki(&dir.path().join("bundle")).unwrap();
        assert!(b.ca_cert.contains("BEGIN CERTIFICATE"));
        assert!(!b.admin_token().unwrap().is_empty());
        // Every master gets the same identity towards node agents, and the
        // admin token stays the first of system:masters.
        let mut tf = TokenFile::load(&dir.path().join("bundle").join(TOKENS)).unwrap();
        let before = tf.entries().len();
        let apiserver = tf
            .ensure_token(
                &dir.path().join("bundle").join(TOKENS),
                crate::agent::ext::APISERVER_USER,
                &[crate::auth::token::MASTERS_GROUP],
            )
            .unwrap();
        assert_eq!(
            tf.entries().len(),
            before,
            "init-pki made no apiserver token"
        );
        assert_ne!(b.admin_token().unwrap(), apiserver);
        assert!(!dir.path().join("bundle/server.crt").exists());
        assert!(init_pki(&dir.path().join("bundle")).is_err());
        let data = dir.path().join("data");
        b.install(&data).unwrap();
        b.install(&data).unwrap();
        // A master may add tokens of its own to its copy.
        let (_, _, tokens) = data_dir_paths(&data);
        let mut tf = TokenFile::load(&tokens).unwrap();
        tf.ensure_node_token(&tokens, "n1").unwrap();
        b.install(&data).unwrap();
        assert_eq!(Bundle::load_data_dir(&data).unwrap().ca_key, b.ca_key);
        // The data directory's PKI loads the bundle's CA.
        let pki = Pki::load_or_create(&data.join("pki"), &ServingNames::loopback()).unwrap();
        assert_eq!(pki.ca_cert_pem(), b.ca_cert);
        let other = init_pki(&dir.path().join("other")).unwrap();
        let err = other.install(&data).unwrap_err().to_string();
        assert!(err.contains("another cluster"), "{err}");
        let (token, ca) = join_credentials(&dir.path().join("bundle").join(TOKENS), None).unwrap();
        assert_eq!(token, b.admin_token().unwrap());
        assert_eq!(ca, b.ca_cert);
    }
}
