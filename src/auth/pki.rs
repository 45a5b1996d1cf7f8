//! The cluster PKI under `DATA_DIR/pki/`.
//!
//! - `ca.crt`, `ca.key`: the cluster CA (ECDSA P-256, which both rustls/ring
//!   and Go's TLS stack in kubectl accept), valid for ten years.
//! - `server.crt`, `server.key`: the API serving certificate, signed by the
//!   CA, with SANs for every name clients use to reach this master.
//!
//! On later starts everything is loaded, not regenerated. The serving
//! certificate is re-issued from the same CA when it no longer verifies for a
//! required name (a new listen address, an added `--tls-san`), does not match
//! its key, or is within 30 days of expiring. Peer certificates (mutual TLS
//! between masters) and client certificates (user = CN, groups = O) are
//! issued on demand and not stored here.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use chrono::Datelike;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::{DnsName, ServerName, UnixTime};
use rustls::{ClientConfig, ServerConfig};

use super::AuthError;
use super::files::{self, PRIVATE, PUBLIC};
use super::subject::subject_common_name;
use super::tls::{self, ClientAuth, Identity};

const CA_CERT: &str = "ca.crt";
const CA_KEY: &str = "ca.key";
const SERVING_CERT: &str = "server.crt";
const SERVING_KEY: &str = "server.key";
/// Prefix of the CA's common name; a creation timestamp and a random suffix
/// make each cluster's CA name distinct, so a client holding another cluster's CA is
/// told "unknown issuer" rather than "bad signature".
const CA_NAME_PREFIX: &str = "wasmk-ca@";
const CA_VALIDITY_DAYS: i64 = 3650;
const LEAF_VALIDITY_DAYS: i64 = 365;
/// A serving certificate this close to expiry is re-issued on start.
const RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);

/// The names a serving (or peer) certificate must be valid for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServingNames {
    dns: BTreeSet<String>,
    ips: BTreeSet<IpAddr>,
}

impl ServingNames {
    /// `localhost`, `127.0.0.1` and `::1`.
    pub fn loopback() -> Self {
        let mut n = ServingNames::default();
        n.dns.insert("localhost".into());
        n.ips.insert(IpAddr::V4(Ipv4Addr::LOCALHOST));
        n.ips.insert(IpAddr::V6(Ipv6Addr::LOCALHOST));
        n
    }

    /// The loopback names, this machine's host name and the listen address;
    /// when it is unspecified (`0.0.0.0`, `::`), every interface address.
    pub fn detect(listen: Option<SocketAddr>) -> Self {
        ServingNames::for_host(host_name().as_deref(), listen, &interface_ips())
    }

    /// What [`ServingNames::detect`] computes, from given host facts.
    pub fn for_host(
        host_name: Option<&str>,
        listen: Option<SocketAddr>,
        interface_ips: &[IpAddr],
    ) -> Self {
        let mut n = ServingNames::loopback();
        if let Some(h) = host_name {
            // A host name that is not a valid DNS name cannot be a SAN; the
            // machine stays reachable by address.
            let _ = n.add(h);
        }
        match listen.map(|a| a.ip()) {
            Some(ip) if ip.is_unspecified() => n.ips.extend(interface_ips.iter().copied()),
            Some(ip) => {
                n.ips.insert(ip);
            }
            None => {}
        }
        n
    }

    /// Adds a DNS name or an IP address.
    pub fn add(&mut self, name: &str) -> Result<(), AuthError> {
        let name = name.trim();
        let unbracketed = name.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = unbracketed.parse::<IpAddr>() {
            self.ips.insert(ip);
            return Ok(());
        }
        let lower = name.to_ascii_lowercase();
        DnsName::try_from(lower.as_str()).map_err(|_| AuthError::InvalidName {
            name: name.to_string(),
            reason: "not an IP address or a valid DNS name",
        })?;
        self.dns.insert(lower);
        Ok(())
    }

    /// Adds every name of `names` (as [`ServingNames::add`]).
    pub fn with(mut self, names: &[String]) -> Result<Self, AuthError> {
        for name in names {
            self.add(name)?;
        }
        Ok(self)
    }

    /// The DNS names, lower-case and sorted.
    pub fn dns_names(&self) -> impl Iterator<Item = &str> {
        self.dns.iter().map(String::as_str)
    }

    /// The IP addresses, sorted.
    pub fn ips(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.ips.iter().copied()
    }

    fn server_names(&self) -> Vec<ServerName<'static>> {
        let dns = self
            .dns
            .iter()
            .filter_map(|d| ServerName::try_from(d.clone()).ok());
        let ips = self
            .ips
            .iter()
            .map(|ip| ServerName::IpAddress((*ip).into()));
        dns.chain(ips).collect()
    }

    fn sans(&self) -> Result<Vec<SanType>, AuthError> {
        let mut sans = Vec::new();
        for d in &self.dns {
            let name = d
                .clone()
                .try_into()
                .map_err(|source| AuthError::Certificate {
                    what: format!("a SAN for {d:?}"),
                    source,
                })?;
            sans.push(SanType::DnsName(name));
        }
        sans.extend(self.ips.iter().map(|ip| SanType::IpAddress(*ip)));
        Ok(sans)
    }
}

/// The cluster CA and this master's serving certificate.
pub struct Pki {
    dir: PathBuf,
    ca_cert_pem: String,
    /// The CA's subject CN, needed to sign with the loaded key.
    ca_name: String,
    ca_key: KeyPair,
    serving: Identity,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl Pki {
    /// Loads the PKI in `dir`, creating what is missing, and makes sure the
    /// serving certificate is valid for every name in `names`.
    pub fn load_or_create(dir: &Path, names: &ServingNames) -> Result<Pki, AuthError> {
        files::create_private_dir(dir)?;
        let (ca_cert_pem, ca_name, ca_key) = load_or_create_ca(dir)?;
        let mut pki = Pki {
            dir: dir.to_path_buf(),
            ca_cert_pem,
            ca_name,
            ca_key,
            serving: Identity {
                cert_pem: String::new(),
                key_pem: String::new(),
            },
        };
        let cert_path = dir.join(SERVING_CERT);
        let key_path = dir.join(SERVING_KEY);
        let existing = match (read_text(&cert_path)?, read_text(&key_path)?) {
            (Some(cert_pem), Some(key_pem)) => Some(Identity { cert_pem, key_pem }),
            _ => None,
        };
        let renew_at = SystemTime::now() + RENEW_BEFORE;
        match existing.map(|id| pki.check_serving(&id, names, renew_at).map(|()| id)) {
            Some(Ok(id)) => pki.serving = id,
            reason => {
                if let Some(Err(why)) = reason {
                    tracing::info!(path = %cert_path.display(), %why, "re-issuing the serving certificate");
                }
                let id = pki.issue(
                    "the serving certificate",
                    "wasmk-apiserver",
                    &[],
                    names,
                    &[ExtendedKeyUsagePurpose::ServerAuth],
                )?;
                pki.check_serving(&id, names, SystemTime::now())
                    .map_err(|e| AuthError::ForeignCa {
                        path: dir.join(CA_CERT),
                        reason: e.to_string(),
                    })?;
                files::write_atomic(&key_path, id.key_pem.as_bytes(), PRIVATE)?;
                files::write_atomic(&cert_path, id.cert_pem.as_bytes(), PUBLIC)?;
                pki.serving = id;
            }
        }
        Ok(pki)
    }

    /// The directory the PKI lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The CA certificate (PEM), what clients trust.
    pub fn ca_cert_pem(&self) -> &str {
        &self.ca_cert_pem
    }

    /// Path of the CA certificate file.
    pub fn ca_cert_path(&self) -> PathBuf {
        self.dir.join(CA_CERT)
    }

    /// The serving certificate and key.
    pub fn serving_identity(&self) -> &Identity {
        &self.serving
    }

    /// The serving certificate (PEM).
    pub fn serving_cert_pem(&self) -> &str {
        &self.serving.cert_pem
    }

    /// The API server's TLS configuration (ALPN `h2`, `http/1.1`).
    pub fn server_config(&self, client_auth: ClientAuth) -> Result<ServerConfig, AuthError> {
        tls::server_config(&self.serving, self.ca_cert_pem.as_bytes(), client_auth)
    }

    /// A client configuration trusting only the cluster CA.
    pub fn client_config(&self, identity: Option<&Identity>) -> Result<ClientConfig, AuthError> {
        tls::client_config(self.ca_cert_pem.as_bytes(), identity)
    }

    /// A certificate for a master named `name` reachable at `addrs`, usable
    /// both as server and as client in mutual TLS between masters.
    pub fn issue_peer_cert(&self, name: &str, addrs: &[IpAddr]) -> Result<Identity, AuthError> {
        let mut names = ServingNames::default();
        names.add(name)?;
        names.ips.extend(addrs.iter().copied());
        self.issue(
            &format!("a peer certificate for {name:?}"),
            name,
            &[],
            &names,
            &[
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
        )
    }

    /// A client certificate for `user` (the subject CN) in `groups` (O).
    /// At most two groups: rcgen keeps one value per attribute type, and the
    /// second O is written under its raw OID.
    pub fn issue_client_cert(&self, user: &str, groups: &[String]) -> Result<Identity, AuthError> {
        if user.is_empty() {
            return Err(AuthError::InvalidName {
                name: user.into(),
                reason: "a client certificate needs a user name",
            });
        }
        if groups.len() > 2 {
            return Err(AuthError::InvalidName {
                name: groups.join(","),
                reason: "a client certificate carries at most two groups",
            });
        }
        self.issue(
            &format!("a client certificate for {user:?}"),
            user,
            groups,
            &ServingNames::default(),
            &[ExtendedKeyUsagePurpose::ClientAuth],
        )
    }

    fn issue(
        &self,
        what: &str,
        common_name: &str,
        groups: &[String],
        names: &ServingNames,
        usages: &[ExtendedKeyUsagePurpose],
    ) -> Result<Identity, AuthError> {
        let cert_err = |source| AuthError::Certificate {
            what: what.to_string(),
            source,
        };
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        let org_types = [
            DnType::OrganizationName,
            DnType::CustomDnType(vec![2, 5, 4, 10]),
        ];
        for (group, ty) in groups.iter().zip(org_types) {
            params.distinguished_name.push(ty, group.as_str());
        }
        params.subject_alt_names = names.sans()?;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = usages.to_vec();
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(random_serial());
        set_validity(&mut params, LEAF_VALIDITY_DAYS);
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(cert_err)?;
        let issuer = Issuer::new(ca_params(&self.ca_name), &self.ca_key);
        let cert = params.signed_by(&key, &issuer).map_err(cert_err)?;
        Ok(Identity {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Whether `id` is a usable serving certificate for every name at `at`.
    fn check_serving(
        &self,
        id: &Identity,
        names: &ServingNames,
        at: SystemTime,
    ) -> Result<(), AuthError> {
        id.check_key_matches()?;
        let chain = id.cert_chain()?;
        let (leaf, intermediates) = chain.split_first().ok_or(AuthError::Pem {
            what: "serving certificate".into(),
            reason: "empty".into(),
        })?;
        let roots = Arc::new(tls::root_store(self.ca_cert_pem.as_bytes())?);
        let verifier = WebPkiServerVerifier::builder_with_provider(roots, tls::provider())
            .build()
            .map_err(|e| AuthError::Pem {
                what: "CA certificate".into(),
                reason: e.to_string(),
            })?;
        let now = UnixTime::since_unix_epoch(
            at.duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default(),
        );
        for name in names.server_names() {
            verifier
                .verify_server_cert(leaf, intermediates, &name, &[], now)
                .map_err(|source| AuthError::Tls {
                    what: "serving certificate does not verify",
                    source,
                })?;
        }
        Ok(())
    }
}

/// The CA's parameters. Also rebuilt from the CA's CN on every start to sign
/// with the loaded key: issued certificates name the issuer by exactly
/// this subject.
fn ca_params(common_name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

/// The CA certificate (PEM), its CN and its key.
fn load_or_create_ca(dir: &Path) -> Result<(String, String, KeyPair), AuthError> {
    let cert_path = dir.join(CA_CERT);
    let key_path = dir.join(CA_KEY);
    match (read_text(&cert_path)?, read_text(&key_path)?) {
        (Some(cert_pem), Some(key_pem)) => {
            let id = Identity { cert_pem, key_pem };
            id.check_key_matches()?;
            let key = KeyPair::from_pem(&id.key_pem).map_err(|source| AuthError::Certificate {
                what: format!("a signing key from {}", key_path.display()),
                source,
            })?;
            let chain = id.cert_chain()?;
            let name = chain
                .first()
                .map(|c| subject_common_name(c))
                .transpose()
                .map_err(|e| AuthError::ForeignCa {
                    path: cert_path.clone(),
                    reason: e.to_string(),
                })?
                .unwrap_or_default();
            Ok((id.cert_pem, name, key))
        }
        (Some(_), None) => Err(AuthError::MissingCaKey {
            cert: cert_path,
            key: key_path,
        }),
        // No certificate: nothing can trust a lone key yet, so start afresh.
        (None, _) => {
            let cert_err = |source| AuthError::Certificate {
                what: "the cluster CA".into(),
                source,
            };
            let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(cert_err)?;
            let name = format!(
                "{CA_NAME_PREFIX}{}-{:08x}",
                chrono::Utc::now().timestamp(),
                rand::random::<u32>()
            );
            let mut params = ca_params(&name);
            params.serial_number = Some(random_serial());
            set_validity(&mut params, CA_VALIDITY_DAYS);
            let cert = params.self_signed(&key).map_err(cert_err)?;
            files::write_atomic(&key_path, key.serialize_pem().as_bytes(), PRIVATE)?;
            files::write_atomic(&cert_path, cert.pem().as_bytes(), PUBLIC)?;
            Ok((cert.pem(), name, key))
        }
    }
}

fn read_text(path: &Path) -> Result<Option<String>, AuthError> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(files::FileError {
            op: "read",
            path: path.to_path_buf(),
            source,
        }
        .into()),
    }
}

/// A positive 128-bit serial without a leading zero byte.
fn random_serial() -> SerialNumber {
    let mut bytes = rand::random::<[u8; 16]>();
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    SerialNumber::from_slice(&bytes)
}

/// Validity from yesterday (clock skew between machines) to `days` from
/// today, at midnight UTC: certificate dates have day precision here.
fn set_validity(params: &mut CertificateParams, days: i64) {
    let date = |offset: i64| {
        let d = (chrono::Utc::now() + chrono::Duration::days(offset)).date_naive();
        // chrono dates are always valid calendar dates, which rcgen requires.
        rcgen::date_time_ymd(d.year(), d.month() as u8, d.day() as u8)
    };
    params.not_before = date(-1);
    params.not_after = date(days);
}

/// This machine's host name, if it has a readable one.
pub fn host_name() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its whole length, and gethostname
    // writes at most that many bytes.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let name = std::str::from_utf8(&buf[..end]).ok()?.trim();
    (!name.is_empty()).then(|| name.to_string())
}

/// The addresses of this machine's interfaces (IPv6 link-local excluded:
/// they are unusable without a zone).
pub fn interface_ips() -> Vec<IpAddr> {
    let mut out = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: on success getifaddrs stores a list in `head`, which is only
    // read below and then released with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return out;
    }
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned.
        let ifa = unsafe { &*cur };
        if !ifa.ifa_addr.is_null() {
            // SAFETY: ifa_addr points to a sockaddr whose family tells its
            // real type, checked before each cast.
            let family = i32::from(unsafe { (*ifa.ifa_addr).sa_family });
            if family == libc::AF_INET {
                let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                out.push(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                    sin.sin_addr.s_addr,
                ))));
            } else if family == libc::AF_INET6 {
                let sin6 = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in6) };
                let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
                if ip.segments()[0] & 0xffc0 != 0xfe80 {
                    out.push(IpAddr::V6(ip));
                }
            }
        }
        cur = ifa.ifa_next;
    }
    // SAFETY: `head` came from a successful getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::subject::user_from_cert;
    use rustls::{ClientConnection, ServerConnection};
    use std::os::unix::fs::PermissionsExt;

    fn names(extra: &[&str]) -> ServingNames {
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        ServingNames::loopback().with(&extra).unwrap()
    }

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    /// Runs a TLS handshake in memory; the error is whichever side failed.
    fn handshake(
        server: ServerConfig,
        client: ClientConfig,
        name: &str,
    ) -> Result<ServerConnection, rustls::Error> {
        let sn = ServerName::try_from(name.to_string()).unwrap();
        let mut c = ClientConnection::new(Arc::new(client), sn)?;
        let mut s = ServerConnection::new(Arc::new(server))?;
        for _ in 0..10 {
            let mut buf = Vec::new();
            while c.wants_write() {
                c.write_tls(&mut buf).unwrap();
            }
            let mut rd = &buf[..];
            while !rd.is_empty() {
                s.read_tls(&mut rd).unwrap();
                s.process_new_packets()?;
            }
            let mut buf = Vec::new();
            while s.wants_write() {
                s.write_tls(&mut buf).unwrap();
            }
            let mut rd = &buf[..];
            while !rd.is_empty() {
                c.read_tls(&mut rd).unwrap();
                c.process_new_packets()?;
            }
            if !c.is_handshaking() && !s.is_handshaking() {
                return Ok(s);
            }
        }
        panic!("handshake did not finish");
    }

    #[test]
    fn creates_then_loads_without_regenerating() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("pki");
        let n = names(&["10.1.2.3", "api.example.com"]);
        let first = Pki::load_or_create(&dir, &n).unwrap();
        for (file, want) in [
            (CA_KEY, 0o600),
            (SERVING_KEY, 0o600),
            (CA_CERT, 0o644),
            (SERVING_CERT, 0o644),
        ] {
            assert_eq!(mode(&dir.join(file)), want, "{file}");
        }
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(
            std::fs::read_to_string(dir.join(CA_CERT)).unwrap(),
            first.ca_cert_pem()
        );
        let second = Pki::load_or_create(&dir, &n).unwrap();
        assert_eq!(second.ca_cert_pem(), first.ca_cert_pem());
        assert_eq!(second.serving_identity(), first.serving_identity());
        // Fewer names than the certificate has: still fine as it is.
        let third = Pki::load_or_create(&dir, &ServingNames::loopback()).unwrap();
        assert_eq!(third.serving_identity(), first.serving_identity());
    }

    #[test]
    fn reissues_serving_certificate_for_a_new_name_from_the_same_ca() {
        let tmp = tempfile::tempdir().unwrap();
        let first = Pki::load_or_create(tmp.path(), &names(&[])).unwrap();
        let n = names(&["192.168.7.7", "master-2.local"]);
        let second = Pki::load_or_create(tmp.path(), &n).unwrap();
        assert_eq!(second.ca_cert_pem(), first.ca_cert_pem());
        assert_ne!(second.serving_cert_pem(), first.serving_cert_pem());
        second
            .check_serving(second.serving_identity(), &n, SystemTime::now())
            .unwrap();
        let stale = first.check_serving(first.serving_identity(), &n, SystemTime::now());
        assert!(stale.is_err());
    }

    #[test]
    fn reissues_a_serving_certificate_that_does_not_match_its_key() {
        let tmp = tempfile::tempdir().unwrap();
        let first = Pki::load_or_create(tmp.path(), &names(&[])).unwrap();
        let other = first.issue_peer_cert("x", &[]).unwrap();
        std::fs::write(tmp.path().join(SERVING_KEY), other.key_pem).unwrap();
        let second = Pki::load_or_create(tmp.path(), &names(&[])).unwrap();
        assert_ne!(second.serving_cert_pem(), first.serving_cert_pem());
        second.serving_identity().check_key_matches().unwrap();
    }

    #[test]
    fn serving_certificate_near_expiry_fails_the_check() {
        let tmp = tempfile::tempdir().unwrap();
        let pki = Pki::load_or_create(tmp.path(), &names(&[])).unwrap();
        let in_two_years = SystemTime::now() + Duration::from_secs(2 * 365 * 24 * 3600);
        let r = pki.check_serving(pki.serving_identity(), &names(&[]), in_two_years);
        assert!(r.is_err());
    }

    #[test]
    fn missing_ca_key_is_an_error_not_a_new_ca() {
        let tmp = tempfile::tempdir().unwrap();
        Pki::load_or_create(tmp.path(), &names(&[])).unwrap();
        std::fs::remove_file(tmp.path().join(CA_KEY)).unwrap();
        let err = Pki::load_or_create(tmp.path(), &names(&[])).unwrap_err();
        assert!(matches!(err, AuthError::MissingCaKey { .. }), "{err}");
    }

    #[test]
    fn foreign_cas_are_used_or_reported() {
        // (subject attributes, usable)
        let cases = [
            (vec![(DnType::CommonName, "my-own-ca")], true),
            (
                vec![
                    (DnType::OrganizationName, "Acme"),
                    (DnType::CommonName, "acme-ca"),
                ],
                false,
            ),
        ];
        for (dn, usable) in cases {
            let tmp = tempfile::tempdir().unwrap();
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::default();
            params.distinguished_name = DistinguishedName::new();
            for (t, v) in dn {
                params.distinguished_name.push(t, v);
            }
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
            let cert = params.self_signed(&key).unwrap();
            std::fs::write(tmp.path().join(CA_CERT), cert.pem()).unwrap();
            std::fs::write(tmp.path().join(CA_KEY), key.serialize_pem()).unwrap();
            match Pki::load_or_create(tmp.path(), &names(&[])) {
                Ok(pki) => {
                    assert!(usable);
                    assert_eq!(pki.ca_cert_pem(), cert.pem());
                }
                Err(err) => {
                    assert!(!usable, "{err}");
                    assert!(matches!(err, AuthError::ForeignCa { .. }), "{err}");
                }
            }
        }
    }

    #[test]
    fn serving_tls_verifies_only_against_its_ca() {
        let tmp = tempfile::tempdir().unwrap();
        let pki = Pki::load_or_create(&tmp.path().join("a"), &names(&["api.example.com"])).unwrap();
        let other = Pki::load_or_create(&tmp.path().join("b"), &names(&[])).unwrap();
        let server = || pki.server_config(ClientAuth::None).unwrap();
        assert_eq!(
            server().alpn_protocols,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
        for name in ["localhost", "api.example.com", "127.0.0.1", "::1"] {
            handshake(server(), pki.client_config(None).unwrap(), name)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        let wrong_name = handshake(
            server(),
            pki.client_config(None).unwrap(),
            "evil.example.com",
        );
        assert!(wrong_name.is_err());
        let wrong_ca = handshake(server(), other.client_config(None).unwrap(), "localhost");
        assert!(wrong_ca.is_err());
        let insecure = tls::insecure_client_config(None).unwrap();
        handshake(server(), insecure, "evil.example.com").unwrap();
    }

    #[test]
    fn peer_certificates_do_mutual_tls() {
        let tmp = tempfile::tempdir().unwrap();
        let pki = Pki::load_or_create(tmp.path(), &names(&[])).unwrap();
        let ip: IpAddr = "10.0.0.2".parse().unwrap();
        let m1 = pki.issue_peer_cert("master-1", &[ip]).unwrap();
        let m2 = pki.issue_peer_cert("master-2", &[]).unwrap();
        let ca = pki.ca_cert_pem().as_bytes();
        let server = || tls::server_config(&m1, ca, ClientAuth::Required).unwrap();
        let s = handshake(server(), pki.client_config(Some(&m2)).unwrap(), "master-1").unwrap();
        let peer = s.peer_certificates().unwrap();
        assert_eq!(user_from_cert(&peer[0]).unwrap().name, "master-2");
        handshake(server(), pki.client_config(Some(&m2)).unwrap(), "10.0.0.2").unwrap();
        let anonymous = handshake(server(), pki.client_config(None).unwrap(), "master-1");
        assert!(anonymous.is_err());
        // A serving-only certificate is not a valid client certificate.
        let serving = pki.serving_identity().clone();
        let wrong_usage = handshake(
            server(),
            pki.client_config(Some(&serving)).unwrap(),
            "master-1",
        );
        assert!(wrong_usage.is_err());
    }

    #[test]
    fn client_certificates_name_user_and_groups() {
        let tmp = tempfile::tempdir().unwrap();
        let pki = Pki::load_or_create(tmp.path(), &names(&[])).unwrap();
        let groups = vec!["system:masters".to_string(), "dev".into()];
        let id = pki.issue_client_cert("alice", &groups).unwrap();
        let server = || pki.server_config(ClientAuth::Optional).unwrap();
        let s = handshake(server(), pki.client_config(Some(&id)).unwrap(), "localhost").unwrap();
        let user = user_from_cert(&s.peer_certificates().unwrap()[0]).unwrap();
        assert_eq!(user.name, "alice");
        assert_eq!(user.groups, groups);
        // Optional: a client without a certificate still gets in.
        let s = handshake(server(), pki.client_config(None).unwrap(), "localhost").unwrap();
        assert!(s.peer_certificates().is_none());
        let too_many: Vec<String> = vec!["a".into(), "b".into(), "c".into()];
        assert!(pki.issue_client_cert("bob", &too_many).is_err());
        assert!(pki.issue_client_cert("", &[]).is_err());
    }

    #[test]
    fn serving_names_from_host_facts() {
        let v4: IpAddr = "192.168.1.5".parse().unwrap();
        let v6: IpAddr = "2001:db8::5".parse().unwrap();
        let ifaces = [v4, v6];
        // (host name, listen address, DNS SANs, IP SANs)
        type Case<'a> = (Option<&'a str>, Option<&'a str>, Vec<&'a str>, Vec<&'a str>);
        let cases: Vec<Case> = vec![
            (None, None, vec!["localhost"], vec!["127.0.0.1", "::1"]),
            (
                Some("Node-A"),
                Some("10.0.0.1:6443"),
                vec!["localhost", "node-a"],
                vec!["10.0.0.1", "127.0.0.1", "::1"],
            ),
            (
                Some("bad host!"),
                Some("0.0.0.0:6443"),
                vec!["localhost"],
                vec!["127.0.0.1", "192.168.1.5", "::1", "2001:db8::5"],
            ),
            (
                Some("h"),
                Some("[::]:6443"),
                vec!["h", "localhost"],
                vec!["127.0.0.1", "192.168.1.5", "::1", "2001:db8::5"],
            ),
        ];
        for (host, listen, dns, ips) in cases {
            let n = ServingNames::for_host(host, listen.map(|l| l.parse().unwrap()), &ifaces);
            assert_eq!(
                n.dns_names().collect::<Vec<_>>(),
                dns,
                "{host:?} {listen:?}"
            );
            let got: Vec<String> = n.ips().map(|i| i.to_string()).collect();
            assert_eq!(got, ips, "{host:?} {listen:?}");
        }
        let mut n = ServingNames::default();
        n.add("[fd00::1]").unwrap();
        n.add(" API.Example.com ").unwrap();
        assert_eq!(n.ips().next(), Some("fd00::1".parse().unwrap()));
        assert_eq!(n.dns_names().next(), Some("api.example.com"));
        for bad in ["", "has space", "under_score!", "*.example.com"] {
            assert!(n.add(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn detect_includes_loopback_and_listen_address() {
        let n = ServingNames::detect(Some("127.0.0.2:6443".parse().unwrap()));
        assert!(n.dns_names().any(|d| d == "localhost"));
        assert!(n.ips().any(|i| i.to_string() == "127.0.0.2"));
    }

    /// Cross-check with an independent X.509 implementation when present.
    #[test]
    fn openssl_accepts_the_certificates() {
        let Ok(out) = std::process::Command::new("openssl")
            .arg("version")
            .output()
        else {
            eprintln!("openssl not found; skipping the cross-check");
            return;
        };
        assert!(out.status.success());
        let tmp = tempfile::tempdir().unwrap();
        let pki = Pki::load_or_create(tmp.path(), &names(&["10.9.8.7", "api.test"])).unwrap();
        let verify = std::process::Command::new("openssl")
            .args(["verify", "-purpose", "sslserver", "-CAfile"])
            .arg(pki.ca_cert_path())
            .arg(tmp.path().join(SERVING_CERT))
            .output()
            .unwrap();
        assert!(
            verify.status.success(),
            "{}",
            String::from_utf8_lossy(&verify.stderr)
        );
        let text = std::process::Command::new("openssl")
            .args(["x509", "-noout", "-text", "-in"])
            .arg(tmp.path().join(SERVING_CERT))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&text.stdout);
        for want in [
            "DNS:localhost",
            "DNS:api.test",
            "IP Address:10.9.8.7",
            "IP Address:127.0.0.1",
        ] {
            assert!(text.contains(want), "missing {want} in\n{text}");
        }
    }
}
