//! Kubeconfig files: the YAML kubectl reads, which wasmk writes for its
//! admin and reads for its own CLI.
//!
//! Only the fields wasmk uses are typed; every other field (exec plugins,
//! extensions, preferences, proxy URLs, ...) is kept as YAML so that
//! rewriting a user's file loses nothing.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Deserializer, Serialize};

use crate::auth::Identity;
use crate::auth::files::{self, FileError, PRIVATE};

/// The cluster entry `wasmk up` writes.
pub const ADMIN_CLUSTER: &str = "wasmk";
/// The admin user entry `wasmk up` writes.
pub const ADMIN_USER: &str = "wasmk-admin";
/// The context `wasmk up` writes and makes current.
pub const ADMIN_CONTEXT: &str = "wasmk";

type Extra = BTreeMap<String, serde_yaml_ng::Value>;

/// What can go wrong with a kubeconfig.
#[derive(Debug, thiserror::Error)]
pub enum KubeconfigError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error("cannot parse kubeconfig {path}: {source}")]
    Parse {
        path: PathBuf,
        source: serde_yaml_ng::Error,
    },
    #[error("cannot render kubeconfig: {0}")]
    Render(#[source] serde_yaml_ng::Error),
    #[error("no kubeconfig given and no home directory to find ~/.wasmk/kubeconfig in")]
    NoHome,
    #[error("{path}: current-context is not set")]
    NoCurrentContext { path: PathBuf },
    #[error("{path}: context {name:?} not found")]
    ContextNotFound { path: PathBuf, name: String },
    #[error("{path}: cluster {name:?} of context {context:?} not found")]
    ClusterNotFound {
        path: PathBuf,
        context: String,
        name: String,
    },
    #[error("{path}: user {name:?} of context {context:?} not found")]
    UserNotFound {
        path: PathBuf,
        context: String,
        name: String,
    },
    #[error("{path}: cluster {cluster:?} has no server")]
    NoServer { path: PathBuf, cluster: String },
    #[error("{path}: {field} of {owner:?} is not valid base64: {source}")]
    Base64 {
        path: PathBuf,
        owner: String,
        field: &'static str,
        source: base64::DecodeError,
    },
    #[error("{path}: user {user:?} has {has} but not {missing}")]
    HalfIdentity {
        path: PathBuf,
        user: String,
        has: &'static str,
        missing: &'static str,
    },
}

/// A kubeconfig file (`apiVersion: v1`, `kind: Config`). Field order is
/// kubectl's, so files we write look like files kubectl writes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Kubeconfig {
    #[serde(rename = "apiVersion", default)]
    pub api_version: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub clusters: Vec<NamedCluster>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub contexts: Vec<NamedContext>,
    #[serde(rename = "current-context", default)]
    pub current_context: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferences: Option<serde_yaml_ng::Value>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub users: Vec<NamedUser>,
    #[serde(flatten)]
    pub extra: Extra,
    /// Where the file was loaded from: relative file references in it are
    /// relative to its directory, as kubectl resolves them.
    #[serde(skip)]
    pub origin: Option<PathBuf>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
/// An entry of `clusters`.
pub struct NamedCluster {
    pub name: String,
    #[serde(default)]
    pub cluster: Cluster,
    #[serde(flatten)]
    pub extra: Extra,
}

/// How to reach and trust one API server.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Cluster {
    /// Base64 of the CA bundle (PEM).
    #[serde(
        rename = "certificate-authority-data",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub certificate_authority_data: Option<String>,
    /// Path of the CA bundle file.
    #[serde(
        rename = "certificate-authority",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub certificate_authority: Option<String>,
    #[serde(
        rename = "insecure-skip-tls-verify",
        default,
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub insecure_skip_tls_verify: bool,
    #[serde(default)]
    pub server: String,
    #[serde(
        rename = "tls-server-name",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub tls_server_name: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
/// An entry of `users`.
pub struct NamedUser {
    pub name: String,
    #[serde(default)]
    pub user: AuthInfo,
    #[serde(flatten)]
    pub extra: Extra,
}

/// A user's credentials.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AuthInfo {
    #[serde(
        rename = "client-certificate",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub client_certificate: Option<String>,
    #[serde(
        rename = "client-certificate-data",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub client_certificate_data: Option<String>,
    #[serde(
        rename = "client-key",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub client_key: Option<String>,
    #[serde(
        rename = "client-key-data",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub client_key_data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(rename = "tokenFile", default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl std::fmt::Debug for AuthInfo {
    // Credentials stay out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthInfo")
            .field("client_certificate", &self.client_certificate)
            .field("client_key", &self.client_key)
            .field("token_file", &self.token_file)
            .field("has_token", &self.token.is_some())
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
/// An entry of `contexts`.
pub struct NamedContext {
    pub name: String,
    #[serde(default)]
    pub context: Context,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
/// A cluster, a user and a default namespace.
pub struct Context {
    #[serde(default)]
    pub cluster: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default)]
    pub user: String,
    #[serde(flatten)]
    pub extra: Extra,
}

/// kubectl writes `users: null` for an empty list.
fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Everything needed to talk to the API server a context points at.
#[derive(Clone, Default, PartialEq)]
pub struct ClusterAccess {
    /// The context these settings come from.
    pub context: String,
    /// Base URL of the API server (`https://127.0.0.1:6443`).
    pub server: String,
    /// CA bundle (PEM) to verify the server with.
    pub ca_pem: Option<Vec<u8>>,
    pub insecure_skip_tls_verify: bool,
    /// Name to verify the server certificate against instead of the host.
    pub tls_server_name: Option<String>,
    /// Bearer token (from `token` or the contents of `tokenFile`).
    pub token: Option<String>,
    /// Client certificate and key.
    pub identity: Option<Identity>,
    /// The context's namespace, `default` when unset.
    pub namespace: String,
}

impl std::fmt::Debug for ClusterAccess {
    // The token stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterAccess")
            .field("context", &self.context)
            .field("server", &self.server)
            .field("insecure_skip_tls_verify", &self.insecure_skip_tls_verify)
            .field("tls_server_name", &self.tls_server_name)
            .field("has_token", &self.token.is_some())
            .field("identity", &self.identity)
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

impl Kubeconfig {
    /// An empty kubeconfig as kubectl would start one.
    pub fn new() -> Self {
        Kubeconfig {
            api_version: "v1".into(),
            kind: "Config".into(),
            preferences: Some(serde_yaml_ng::Value::Mapping(Default::default())),
            ..Default::default()
        }
    }

    /// Parses kubeconfig YAML; `origin` is where it came from.
    pub fn parse(text: &str, origin: &Path) -> Result<Kubeconfig, KubeconfigError> {
        let mut config: Kubeconfig = if text.trim().is_empty() {
            Kubeconfig::new()
        } else {
            serde_yaml_ng::from_str(text).map_err(|source| KubeconfigError::Parse {
                path: origin.to_path_buf(),
                source,
            })?
        };
        config.origin = Some(origin.to_path_buf());
        Ok(config)
    }

    /// Reads and parses the kubeconfig at `path`.
    pub fn load(path: &Path) -> Result<Kubeconfig, KubeconfigError> {
        let bytes = files::read(path)?;
        Kubeconfig::parse(&String::from_utf8_lossy(&bytes), path)
    }

    /// The YAML text of this kubeconfig.
    pub fn to_yaml(&self) -> Result<String, KubeconfigError> {
        serde_yaml_ng::to_string(self).map_err(KubeconfigError::Render)
    }

    /// Writes this kubeconfig to `path` atomically with mode `0600`,
    /// creating parent directories.
    pub fn save(&self, path: &Path) -> Result<(), KubeconfigError> {
        files::write_atomic(path, self.to_yaml()?.as_bytes(), PRIVATE)?;
        Ok(())
    }

    /// The settings of the current context.
    pub fn current(&self) -> Result<ClusterAccess, KubeconfigError> {
        self.access(None)
    }

    /// The settings of `context`, or of the current context when `None`.
    pub fn access(&self, context: Option<&str>) -> Result<ClusterAccess, KubeconfigError> {
        let path = self.origin.clone().unwrap_or_default();
        let name = match context {
            Some(c) => c.to_string(),
            None if self.current_context.is_empty() => {
                return Err(KubeconfigError::NoCurrentContext { path });
            }
            None => self.current_context.clone(),
        };
        let ctx = self
            .contexts
            .iter()
            .find(|c| c.name == name)
            .ok_or_else(|| KubeconfigError::ContextNotFound {
                path: path.clone(),
                name: name.clone(),
            })?;
        let cluster = self
            .clusters
            .iter()
            .find(|c| c.name == ctx.context.cluster)
            .ok_or_else(|| KubeconfigError::ClusterNotFound {
                path: path.clone(),
                context: name.clone(),
                name: ctx.context.cluster.clone(),
            })?;
        let user = if ctx.context.user.is_empty() {
            AuthInfo::default()
        } else {
            self.users
                .iter()
                .find(|u| u.name == ctx.context.user)
                .map(|u| u.user.clone())
                .ok_or_else(|| KubeconfigError::UserNotFound {
                    path: path.clone(),
                    context: name.clone(),
                    name: ctx.context.user.clone(),
                })?
        };
        let c = &cluster.cluster;
        if c.server.is_empty() {
            return Err(KubeconfigError::NoServer {
                path,
                cluster: cluster.name.clone(),
            });
        }
        let ca_pem = self.data_or_file(
            c.certificate_authority_data.as_deref(),
            c.certificate_authority.as_deref(),
            &cluster.name,
            "certificate-authority-data",
        )?;
        let set = |o: &Option<String>| o.as_deref().is_some_and(|v| !v.is_empty());
        let has_cert = set(&user.client_certificate_data) || set(&user.client_certificate);
        let has_key = set(&user.client_key_data) || set(&user.client_key);
        let half = |has, missing| KubeconfigError::HalfIdentity {
            path: path.clone(),
            user: ctx.context.user.clone(),
            has,
            missing,
        };
        match (has_cert, has_key) {
            (true, false) => return Err(half("a client certificate", "a client key")),
            (false, true) => return Err(half("a client key", "a client certificate")),
            _ => {}
        }
        let cert = self.data_or_file(
            user.client_certificate_data.as_deref(),
            user.client_certificate.as_deref(),
            &ctx.context.user,
            "client-certificate-data",
        )?;
        let key = self.data_or_file(
            user.client_key_data.as_deref(),
            user.client_key.as_deref(),
            &ctx.context.user,
            "client-key-data",
        )?;
        let identity = match (cert, key) {
            (Some(cert), Some(key)) => Some(Identity {
                cert_pem: String::from_utf8_lossy(&cert).into_owned(),
                key_pem: String::from_utf8_lossy(&key).into_owned(),
            }),
            _ => None,
        };
        let token = match (&user.token, &user.token_file) {
            (Some(t), _) if !t.is_empty() => Some(t.clone()),
            (_, Some(f)) if !f.is_empty() => {
                let bytes = files::read(&self.relative(f))?;
                Some(String::from_utf8_lossy(&bytes).trim().to_string())
            }
            _ => None,
        };
        Ok(ClusterAccess {
            context: name,
            server: c.server.clone(),
            ca_pem,
            insecure_skip_tls_verify: c.insecure_skip_tls_verify,
            tls_server_name: c.tls_server_name.clone().filter(|n| !n.is_empty()),
            token,
            identity,
            namespace: ctx
                .context
                .namespace
                .clone()
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| "default".into()),
        })
    }

    /// Inline base64 data wins over a file reference, as in kubectl.
    fn data_or_file(
        &self,
        data: Option<&str>,
        file: Option<&str>,
        owner: &str,
        field: &'static str,
    ) -> Result<Option<Vec<u8>>, KubeconfigError> {
        if let Some(d) = data.filter(|d| !d.is_empty()) {
            let compact: String = d.chars().filter(|c| !c.is_whitespace()).collect();
            return BASE64
                .decode(compact)
                .map(Some)
                .map_err(|source| KubeconfigError::Base64 {
                    path: self.origin.clone().unwrap_or_default(),
                    owner: owner.to_string(),
                    field,
                    source,
                });
        }
        match file.filter(|f| !f.is_empty()) {
            Some(f) => Ok(Some(files::read(&self.relative(f))?)),
            None => Ok(None),
        }
    }

    fn relative(&self, file: &str) -> PathBuf {
        let p = Path::new(file);
        match self.origin.as_deref().and_then(Path::parent) {
            Some(dir) if p.is_relative() => dir.join(p),
            _ => p.to_path_buf(),
        }
    }

    /// Adds or replaces the wasmk admin cluster, user and context and makes
    /// the context current. Fields of existing entries that wasmk does not
    /// set (extensions, a namespace chosen by the user) are kept.
    pub fn set_admin(&mut self, server_url: &str, ca_pem: &[u8], token: &str) {
        let cluster = upsert(&mut self.clusters, ADMIN_CLUSTER, |c| &c.name);
        cluster.name = ADMIN_CLUSTER.into();
        cluster.cluster.server = server_url.into();
        cluster.cluster.certificate_authority_data = Some(BASE64.encode(ca_pem));
        cluster.cluster.certificate_authority = None;
        cluster.cluster.insecure_skip_tls_verify = false;

        let user = upsert(&mut self.users, ADMIN_USER, |u| &u.name);
        user.name = ADMIN_USER.into();
        user.user = AuthInfo {
            token: Some(token.into()),
            ..Default::default()
        };

        let context = upsert(&mut self.contexts, ADMIN_CONTEXT, |c| &c.name);
        context.name = ADMIN_CONTEXT.into();
        context.context.cluster = ADMIN_CLUSTER.into();
        context.context.user = ADMIN_USER.into();
        if context.context.namespace.is_none() {
            context.context.namespace = Some("default".into());
        }
        self.current_context = ADMIN_CONTEXT.into();
        if self.api_version.is_empty() {
            self.api_version = "v1".into();
        }
        if self.kind.is_empty() {
            self.kind = "Config".into();
        }
    }
}

fn upsert<'a, T: Default>(
    items: &'a mut Vec<T>,
    name: &str,
    name_of: impl Fn(&T) -> &String,
) -> &'a mut T {
    let index = match items.iter().position(|i| name_of(i) == name) {
        Some(i) => i,
        None => {
            items.push(T::default());
            items.len() - 1
        }
    };
    &mut items[index]
}

/// Writes the admin kubeconfig that `wasmk up` prints: the file at `path`
/// gets (or keeps, updated) a `wasmk` cluster with the CA inline, a
/// `wasmk-admin` user with the token and a current `wasmk` context. An
/// existing file is merged into, never clobbered; it must parse.
pub fn write_admin_kubeconfig(
    path: &Path,
    server_url: &str,
    ca_pem: &[u8],
    token: &str,
) -> Result<(), KubeconfigError> {
    let mut config = match std::fs::symlink_metadata(path) {
        Ok(_) => Kubeconfig::load(path)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Kubeconfig::new(),
        Err(source) => {
            return Err(FileError {
                op: "inspect",
                path: path.to_path_buf(),
                source,
            }
            .into());
        }
    };
    config.set_admin(server_url, ca_pem, token);
    config.save(path)
}

/// The kubeconfig to use: `explicit` (`--kubeconfig`), else the first
/// existing entry of `$KUBECONFIG` (or its last entry when none exists, the
/// one kubectl would create), else `~/.wasmk/kubeconfig`.
pub fn resolve(explicit: Option<&Path>) -> Result<PathBuf, KubeconfigError> {
    let env = std::env::var_os("KUBECONFIG");
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from);
    resolve_from(explicit, env.as_deref(), home.as_deref(), |p| p.exists())
}

/// [`resolve`] over given facts, for tests and callers with their own
/// environment.
pub fn resolve_from(
    explicit: Option<&Path>,
    kubeconfig_env: Option<&OsStr>,
    home: Option<&Path>,
    exists: impl Fn(&Path) -> bool,
) -> Result<PathBuf, KubeconfigError> {
    if let Some(p) = explicit.filter(|p| !p.as_os_str().is_empty()) {
        return Ok(p.to_path_buf());
    }
    if let Some(env) = kubeconfig_env {
        let entries: Vec<PathBuf> = std::env::split_paths(env)
            .filter(|p| !p.as_os_str().is_empty())
            .collect();
        if let Some(p) = entries.iter().find(|p| exists(p)) {
            return Ok(p.clone());
        }
        if let Some(last) = entries.last() {
            return Ok(last.clone());
        }
    }
    home.map(|h| h.join(".wasmk").join("kubeconfig"))
        .ok_or(KubeconfigError::NoHome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// As written by `kubectl config set-cluster/set-credentials/set-context`
    /// (v1.3x), plus an exec user and extensions kubectl keeps.
    const KUBECTL_WRITTEN: &str = r#"apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUIKLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo=
    extensions:
    - extension:
        last-update: Mon, 01 Jan 2024 10:00:00 UTC
        provider: minikube.sigs.k8s.io
      name: cluster_info
    server: https://192.168.49.2:8443
  name: minikube
- cluster:
    insecure-skip-tls-verify: true
    server: https://10.0.0.1:6443
    tls-server-name: api.internal
  name: lab
contexts:
- context:
    cluster: minikube
    namespace: apps
    user: minikube
  name: minikube
- context:
    cluster: lab
    user: lab-exec
  name: lab
current-context: minikube
kind: Config
preferences: {}
users:
- name: minikube
  user:
    client-certificate: certs/client.crt
    client-key: /abs/client.key
- name: lab-exec
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      command: aws
      args:
      - eks
      - get-token
      interactiveMode: IfAvailable
      provideClusterInfo: false
"#;

    #[test]
    fn parses_a_kubectl_written_file_and_round_trips_unknown_fields() {
        let k = Kubeconfig::parse(KUBECTL_WRITTEN, Path::new("/home/u/.kube/config")).unwrap();
        assert_eq!(k.current_context, "minikube");
        assert_eq!(k.clusters.len(), 2);
        assert_eq!(
            k.clusters[1].cluster.tls_server_name.as_deref(),
            Some("api.internal")
        );
        assert!(k.clusters[0].cluster.extra.contains_key("extensions"));
        assert!(k.users[1].user.extra.contains_key("exec"));

        let again: serde_yaml_ng::Value = serde_yaml_ng::from_str(&k.to_yaml().unwrap()).unwrap();
        let original: serde_yaml_ng::Value = serde_yaml_ng::from_str(KUBECTL_WRITTEN).unwrap();
        assert_eq!(again, original);
    }

    #[test]
    fn current_context_resolves_files_relative_to_the_kubeconfig() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("certs")).unwrap();
        std::fs::write(tmp.path().join("certs/client.crt"), "CERT").unwrap();
        std::fs::write(tmp.path().join("client.key"), "KEY").unwrap();
        std::fs::write(tmp.path().join("tok"), "  secret-token\n").unwrap();
        let text = KUBECTL_WRITTEN.replace(
            "/abs/client.key",
            &tmp.path().join("client.key").display().to_string(),
        );
        let k = Kubeconfig::parse(&text, &tmp.path().join("config")).unwrap();
        let a = k.current().unwrap();
        assert_eq!(a.context, "minikube");
        assert_eq!(a.server, "https://192.168.49.2:8443");
        assert_eq!(a.namespace, "apps");
        let ca = String::from_utf8(a.ca_pem.unwrap()).unwrap();
        assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"));
        let id = a.identity.unwrap();
        assert_eq!((id.cert_pem.as_str(), id.key_pem.as_str()), ("CERT", "KEY"));

        let lab = k.access(Some("lab")).unwrap();
        assert!(lab.insecure_skip_tls_verify);
        assert_eq!(lab.namespace, "default");
        assert_eq!(lab.token, None);
        assert_eq!(lab.ca_pem, None);

        let mut with_file = k.clone();
        with_file.users[1].user.token_file = Some("tok".into());
        assert_eq!(
            with_file.access(Some("lab")).unwrap().token.as_deref(),
            Some("secret-token")
        );
    }

    #[test]
    fn bad_references_are_named() {
        let k = Kubeconfig::parse(KUBECTL_WRITTEN, Path::new("/k")).unwrap();
        let cases: Vec<(Kubeconfig, &str)> = vec![
            (
                Kubeconfig {
                    current_context: String::new(),
                    ..k.clone()
                },
                "current-context is not set",
            ),
            (
                Kubeconfig {
                    current_context: "nope".into(),
                    ..k.clone()
                },
                "context \"nope\" not found",
            ),
            (
                {
                    let mut b = k.clone();
                    b.clusters.remove(0);
                    b
                },
                "cluster \"minikube\" of context \"minikube\" not found",
            ),
            (
                {
                    let mut b = k.clone();
                    b.users.remove(0);
                    b
                },
                "user \"minikube\" of context \"minikube\" not found",
            ),
            (
                {
                    let mut b = k.clone();
                    b.clusters[0].cluster.certificate_authority_data = Some("!!".into());
                    b
                },
                "certificate-authority-data of \"minikube\" is not valid base64",
            ),
            (
                {
                    let mut b = k.clone();
                    b.users[0].user.client_key = None;
                    b
                },
                "has a client certificate but not a client key",
            ),
        ];
        for (config, want) in cases {
            let err = config.current().unwrap_err().to_string();
            assert!(err.contains(want), "{err:?} lacks {want:?}");
            assert!(err.starts_with("/k"), "{err:?}");
        }
        let missing_file = k.current().unwrap_err().to_string();
        assert!(missing_file.contains("/certs/client.crt"), "{missing_file}");
    }

    #[test]
    fn accepts_null_lists_and_empty_files() {
        let k = Kubeconfig::parse(
            "apiVersion: v1\nclusters: null\ncontexts: null\ncurrent-context: \"\"\nkind: Config\npreferences: {}\nusers: null\n",
            Path::new("k"),
        )
        .unwrap();
        assert!(k.clusters.is_empty() && k.users.is_empty());
        let empty = Kubeconfig::parse("", Path::new("k")).unwrap();
        assert_eq!(empty.kind, "Config");
        assert!(Kubeconfig::parse("clusters: 7\n", Path::new("k")).is_err());
    }

    #[test]
    fn resolution_order() {
        let exists = |p: &Path| p.starts_with("/there");
        let home = Some(Path::new("/home/u"));
        // (--kubeconfig, $KUBECONFIG, $HOME, expected path or None for NoHome)
        type Case<'a> = (
            Option<&'a str>,
            Option<&'a str>,
            Option<&'a str>,
            Option<&'a str>,
        );
        let cases: Vec<Case> = vec![
            (
                Some("/x/cfg"),
                Some("/there/a"),
                home.and_then(Path::to_str),
                Some("/x/cfg"),
            ),
            (
                None,
                Some("/missing:/there/b:/there/c"),
                None,
                Some("/there/b"),
            ),
            (None, Some("/missing1::/missing2"), None, Some("/missing2")),
            (
                None,
                Some(""),
                Some("/home/u"),
                Some("/home/u/.wasmk/kubeconfig"),
            ),
            (
                None,
                None,
                Some("/home/u"),
                Some("/home/u/.wasmk/kubeconfig"),
            ),
            (
                Some(""),
                None,
                Some("/home/u"),
                Some("/home/u/.wasmk/kubeconfig"),
            ),
            (None, None, None, None),
        ];
        for (explicit, env, home, want) in cases {
            let got = resolve_from(
                explicit.map(Path::new),
                env.map(OsStr::new),
                home.map(Path::new),
                exists,
            );
            match want {
                Some(w) => assert_eq!(got.unwrap(), PathBuf::from(w), "{explicit:?} {env:?}"),
                None => assert!(matches!(got, Err(KubeconfigError::NoHome))),
            }
        }
    }

    #[test]
    fn writes_admin_kubeconfig_atomically_and_merges() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("new/dir/kubeconfig");
        let ca = b"-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n";
        write_admin_kubeconfig(&path, "https://127.0.0.1:6443", ca, "tok1").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let a = Kubeconfig::load(&path).unwrap().current().unwrap();
        assert_eq!(a.server, "https://127.0.0.1:6443");
        assert_eq!(a.ca_pem.as_deref(), Some(&ca[..]));
        assert_eq!(a.token.as_deref(), Some("tok1"));
        assert_eq!(a.namespace, "default");

        // Into a user's own file: their entries and unknown fields survive.
        let user_file = tmp.path().join("config");
        std::fs::write(&user_file, KUBECTL_WRITTEN).unwrap();
        write_admin_kubeconfig(&user_file, "https://10.0.0.9:6443", ca, "tok2").unwrap();
        write_admin_kubeconfig(&user_file, "https://10.0.0.9:6443", ca, "tok3").unwrap();
        let k = Kubeconfig::load(&user_file).unwrap();
        assert_eq!(k.clusters.len(), 3);
        assert_eq!(k.users.len(), 3);
        assert_eq!(k.current().unwrap().token.as_deref(), Some("tok3"));
        assert!(k.users[1].user.extra.contains_key("exec"));
        assert!(k.clusters[0].cluster.extra.contains_key("extensions"));

        std::fs::write(&user_file, "clusters: [unclosed\n").unwrap();
        let err = write_admin_kubeconfig(&user_file, "https://x", ca, "t").unwrap_err();
        assert!(matches!(err, KubeconfigError::Parse { .. }));
        assert_eq!(
            std::fs::read_to_string(&user_file).unwrap(),
            "clusters: [unclosed\n"
        );
    }
}
