//! Who may talk to the cluster: the cluster PKI (CA, serving, peer and client
//! certificates, rustls configurations) and bearer tokens from a static token
//! file.
//!
//! Layout:
//! - `pki`: the cluster CA under `DATA_DIR/pki/` and the certificates it issues
//! - `tls`: rustls server and client configurations built from PEM
//! - `subject`: the user and groups named by a client certificate
//! - `token`: the Kubernetes static token file and the bearer [`Authenticator`]
//! - `files`: atomic, mode-restricted file writes shared with the client

pub mod bootstrap;
pub mod files;
pub mod pki;
pub mod subject;
pub mod tls;
pub mod token;

use std::path::PathBuf;

pub use pki::{Pki, ServingNames};
pub use tls::{ClientAuth, Identity};
pub use token::{Authenticator, TokenFile};

/// An authenticated user, as Kubernetes' `user.Info` describes one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserInfo {
    /// The user name (`admin`, `system:node:worker-1`).
    pub name: String,
    /// A stable identifier; empty when the credential carries none.
    pub uid: String,
    /// Groups the user belongs to (`system:masters`, `system:nodes`).
    pub groups: Vec<String>,
}

impl UserInfo {
    /// Whether the user is a member of `group`.
    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }
}

/// Everything that can go wrong in authentication and certificate handling.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error(transparent)]
    File(#[from] files::FileError),
    #[error("{path}:{line}: {reason}")]
    TokenFileLine {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("no Authorization header")]
    MissingAuthorization,
    #[error("malformed Authorization header: {reason}")]
    MalformedAuthorization { reason: &'static str },
    #[error("invalid bearer token")]
    UnknownToken,
    #[error("cannot create {what}: {source}")]
    Certificate { what: String, source: rcgen::Error },
    #[error("{what}: {reason}")]
    Pem { what: String, reason: String },
    #[error("{what}: {source}")]
    Tls {
        what: &'static str,
        source: rustls::Error,
    },
    #[error("invalid certificate name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },
    #[error(
        "{cert} exists but the CA key {key} is missing; restore it or remove both to create a new CA"
    )]
    MissingCaKey { cert: PathBuf, key: PathBuf },
    #[error(
        "cannot sign with the CA in {path}; wasmk signs only with CAs whose subject is a single CN ({reason})"
    )]
    ForeignCa { path: PathBuf, reason: String },
    #[error("client certificate: {reason}")]
    ClientCertificate { reason: String },
}
