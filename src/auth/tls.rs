//! rustls configurations built from PEM: the API server's (with ALPN `h2`
//! and `http/1.1`, optionally verifying client certificates) and clients'
//! (trusting only the given CA, optionally presenting a certificate).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};

use super::AuthError;

/// ALPN protocols the API server offers; kubectl speaks HTTP/2 over TLS.
pub const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// The crypto provider every wasmk TLS configuration uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Whether a server asks for client certificates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    /// No client certificates (bearer tokens only).
    None,
    /// A certificate signed by the cluster CA is verified when presented,
    /// but clients without one are let in (to authenticate by token).
    Optional,
    /// Every client must present a certificate signed by the cluster CA
    /// (mutual TLS between masters).
    Required,
}

/// A certificate chain and its private key, PEM-encoded.
#[derive(Clone, PartialEq, Eq)]
pub struct Identity {
    /// The leaf certificate first, then any intermediates.
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for Identity {
    // Never print the private key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// The certificate chain as DER.
    pub fn cert_chain(&self) -> Result<Vec<CertificateDer<'static>>, AuthError> {
        certs_from_pem(self.cert_pem.as_bytes(), "certificate")
    }

    /// The private key as DER.
    pub fn private_key(&self) -> Result<PrivateKeyDer<'static>, AuthError> {
        PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).map_err(|e| AuthError::Pem {
            what: "private key".into(),
            reason: e.to_string(),
        })
    }

    /// Fails unless the key belongs to the leaf certificate.
    pub fn check_key_matches(&self) -> Result<(), AuthError> {
        let key = provider()
            .key_provider
            .load_private_key(self.private_key()?)
            .map_err(|source| AuthError::Tls {
                what: "unusable private key",
                source,
            })?;
        rustls::sign::CertifiedKey::new(self.cert_chain()?, key)
            .keys_match()
            .map_err(|source| AuthError::Tls {
                what: "certificate and key do not match",
                source,
            })
    }
}

/// Every certificate in a PEM bundle; at least one is required.
pub fn certs_from_pem(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, AuthError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| AuthError::Pem {
            what: what.to_string(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(AuthError::Pem {
            what: what.to_string(),
            reason: "no CERTIFICATE block".into(),
        });
    }
    Ok(certs)
}

/// A root store holding every certificate of a PEM bundle.
pub fn root_store(ca_pem: &[u8]) -> Result<RootCertStore, AuthError> {
    let mut roots = RootCertStore::empty();
    for cert in certs_from_pem(ca_pem, "CA certificate")? {
        roots.add(cert).map_err(|source| AuthError::Tls {
            what: "unusable CA certificate",
            source,
        })?;
    }
    Ok(roots)
}

/// A server configuration presenting `identity`, offering `h2` and
/// `http/1.1`, and checking client certificates against `ca_pem` as
/// `client_auth` asks.
pub fn server_config(
    identity: &Identity,
    ca_pem: &[u8],
    client_auth: ClientAuth,
) -> Result<ServerConfig, AuthError> {
    let provider = provider();
    let tls = |what| move |source| AuthError::Tls { what, source };
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(tls("TLS protocol versions"))?;
    let builder = match client_auth {
        ClientAuth::None => builder.with_no_client_auth(),
        ClientAuth::Optional | ClientAuth::Required => {
            let verifier = WebPkiClientVerifier::builder_with_provider(
                Arc::new(root_store(ca_pem)?),
                provider,
            );
            let verifier = if client_auth == ClientAuth::Optional {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            let verifier = verifier.build().map_err(|e| AuthError::Pem {
                what: "client certificate verifier".into(),
                reason: e.to_string(),
            })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(identity.cert_chain()?, identity.private_key()?)
        .map_err(tls("serving certificate"))?;
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// A client configuration trusting only the certificates in `ca_pem`,
/// presenting `identity` when given. ALPN is left to the HTTP layer.
pub fn client_config(
    ca_pem: &[u8],
    identity: Option<&Identity>,
) -> Result<ClientConfig, AuthError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|source| AuthError::Tls {
            what: "TLS protocol versions",
            source,
        })?
        .with_root_certificates(root_store(ca_pem)?);
    with_identity(builder, identity)
}

/// A client configuration that accepts any server certificate
/// (`insecure-skip-tls-verify: true` in a kubeconfig). Handshake signatures
/// are still checked, so the connection is encrypted to whoever answers.
pub fn insecure_client_config(identity: Option<&Identity>) -> Result<ClientConfig, AuthError> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|source| AuthError::Tls {
            what: "TLS protocol versions",
            source,
        })?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyServer(provider)));
    with_identity(builder, identity)
}

fn with_identity(
    builder: rustls::ConfigBuilder<ClientConfig, rustls::client::WantsClientCert>,
    identity: Option<&Identity>,
) -> Result<ClientConfig, AuthError> {
    match identity {
        None => Ok(builder.with_no_client_auth()),
        Some(id) => builder
            .with_client_auth_cert(id.cert_chain()?, id.private_key()?)
            .map_err(|source| AuthError::Tls {
                what: "client certificate",
                source,
            }),
    }
}

#[derive(Debug)]
struct AcceptAnyServer(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
