//! The static token file (`DATA_DIR/tokens.csv`) and bearer authentication.
//!
//! The file has Kubernetes' `--token-auth-file` format, one credential per
//! line: `token,user,uid,"group1,group2"` (the groups column is optional and
//! quoted when it holds several groups). Lines starting with `#` and blank
//! lines are ignored.
//!
//! Tokens are compared in constant time on their SHA-256 digests, so neither
//! the position of the first differing byte nor the token length leaks
//! through timing.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use http::HeaderMap;
use http::header::AUTHORIZATION;
use sha2::{Digest, Sha256};

use super::files::{self, PRIVATE};
use super::{AuthError, UserInfo};

/// The admin user created with a fresh cluster.
pub const ADMIN_USER: &str = "admin";
/// Group whose members may do anything (Kubernetes' superuser group).
pub const MASTERS_GROUP: &str = "system:masters";
/// Group of node agents.
pub const NODES_GROUP: &str = "system:nodes";

/// The user name of the node agent on `node`.
pub fn node_user(node: &str) -> String {
    format!("system:node:{node}")
}

/// A new random token: 32 random bytes as 64 hex digits (safe in CSV,
/// headers and YAML without quoting).
pub fn generate_token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// One line of the token file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenEntry {
    pub token: String,
    pub user: UserInfo,
}

/// The parsed token file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TokenFile {
    entries: Vec<TokenEntry>,
}

impl TokenFile {
    /// Parses the text of a token file; `origin` names it in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<TokenFile, AuthError> {
        let mut entries: Vec<TokenEntry> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line_no = i + 1;
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |reason: String| AuthError::TokenFileLine {
                path: origin.to_path_buf(),
                line: line_no,
                reason,
            };
            let fields = split_csv_line(line).map_err(|r| bad(r.to_string()))?;
            if fields.len() < 3 {
                return Err(bad(format!(
                    "need at least 3 columns (token, user name, user uid), found {}",
                    fields.len()
                )));
            }
            let token = fields[0].clone();
            if token.is_empty() {
                return Err(bad("empty token".into()));
            }
            if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(bad("token contains whitespace".into()));
            }
            if fields[1].is_empty() {
                return Err(bad("empty user name".into()));
            }
            if entries.iter().any(|e| e.token == token) {
                return Err(bad("duplicate token".into()));
            }
            let groups = fields
                .get(3)
                .map(|g| {
                    g.split(',')
                        .map(str::trim)
                        .filter(|g| !g.is_empty())
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default();
            entries.push(TokenEntry {
                token,
                user: UserInfo {
                    name: fields[1].clone(),
                    uid: fields[2].clone(),
                    groups,
                },
            });
        }
        Ok(TokenFile { entries })
    }

    /// Reads and parses the token file at `path`.
    pub fn load(path: &Path) -> Result<TokenFile, AuthError> {
        let bytes = files::read(path)?;
        let text = String::from_utf8(bytes).map_err(|_| AuthError::TokenFileLine {
            path: path.to_path_buf(),
            line: 0,
            reason: "not UTF-8".into(),
        })?;
        TokenFile::parse(&text, path)
    }

    /// Loads the token file, creating it (mode `0600`) with a random token
    /// for `admin` in `system:masters` when it does not exist yet.
    pub fn load_or_create(path: &Path) -> Result<TokenFile, AuthError> {
        match std::fs::symlink_metadata(path) {
            Ok(_) => TokenFile::load(path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let admin = TokenEntry {
                    token: generate_token(),
                    user: UserInfo {
                        name: ADMIN_USER.into(),
                        uid: uuid::Uuid::new_v4().to_string(),
                        groups: vec![MASTERS_GROUP.into()],
                    },
                };
                let text = format!(
                    "# wasmk static tokens: token,user,uid,\"group1,group2\"\n{}\n",
                    render_line(&admin)
                );
                files::write_atomic(path, text.as_bytes(), PRIVATE)?;
                Ok(TokenFile {
                    entries: vec![admin],
                })
            }
            Err(e) => Err(files::FileError {
                op: "inspect",
                path: path.to_path_buf(),
                source: e,
            }
            .into()),
        }
    }

    /// All entries, in file order.
    pub fn entries(&self) -> &[TokenEntry] {
        &self.entries
    }

    /// The first token of a member of `system:masters`: what `wasmk up` puts
    /// into the admin kubeconfig.
    pub fn admin_token(&self) -> Option<&str> {
        self.entries
            .iter()
            .find(|e| e.user.in_group(MASTERS_GROUP))
            .map(|e| e.token.as_str())
    }

    /// The token of the agent on `node`, adding one (user
    /// `system:node:<node>`, group `system:nodes`) to the file at `path` when
    /// there is none yet. The file is rewritten atomically; existing lines and
    /// comments are kept as they are.
    pub fn ensure_node_token(&mut self, path: &Path, node: &str) -> Result<String, AuthError> {
        self.ensure_token(path, &node_user(node), &[NODES_GROUP])
    }

    /// The token of `user`, adding one (with `groups`) to the file at
    /// `path` when the user has none yet, as [`TokenFile::ensure_node_token`]
    /// does for nodes.
    pub fn ensure_token(
        &mut self,
        path: &Path,
        user: &str,
        groups: &[&str],
    ) -> Result<String, AuthError> {
        if let Some(e) = self.entries.iter().find(|e| e.user.name == user) {
            return Ok(e.token.clone());
        }
        let entry = TokenEntry {
            token: generate_token(),
            user: UserInfo {
                name: user.to_string(),
                uid: uuid::Uuid::new_v4().to_string(),
                groups: groups.iter().map(|g| g.to_string()).collect(),
            },
        };
        let mut text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => {
                return Err(files::FileError {
                    op: "read",
                    path: path.to_path_buf(),
                    source: e,
                }
                .into());
            }
        };
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&render_line(&entry));
        text.push('\n');
        files::write_atomic(path, text.as_bytes(), PRIVATE)?;
        let token = entry.token.clone();
        self.entries.push(entry);
        Ok(token)
    }
}

/// Renders one entry as a token file line.
pub fn render_line(e: &TokenEntry) -> String {
    let mut line = format!(
        "{},{},{}",
        csv_field(&e.token),
        csv_field(&e.user.name),
        csv_field(&e.user.uid)
    );
    if !e.user.groups.is_empty() {
        line.push(',');
        line.push_str(&csv_field(&e.user.groups.join(",")));
    }
    line
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"']) || s.starts_with(' ') || s.ends_with(' ') {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Splits one CSV record (RFC 4180 quoting, `""` for a quote inside quotes).
fn split_csv_line(line: &str) -> Result<Vec<String>, &'static str> {
    let mut fields = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err("unterminated quoted field"),
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                }
            }
            match chars.next() {
                None => {
                    fields.push(field);
                    return Ok(fields);
                }
                Some(',') => fields.push(field),
                Some(_) => return Err("extraneous text after a quoted field"),
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        fields.push(field);
                        return Ok(fields);
                    }
                    Some(',') => break,
                    Some('"') => return Err("bare quote in an unquoted field"),
                    Some(c) => field.push(c),
                }
            }
            fields.push(field);
        }
    }
}

/// Equality of two digests without data-dependent branches or early exit.
pub(super) fn digests_equal(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b.iter()) {
        diff |= x ^ y;
    }
    // Keeps the compiler from turning the fold back into an early-exit compare.
    std::hint::black_box(diff) == 0
}

/// Finds the Secret of bootstrap token `id` (in the cluster's state).
pub type BootstrapLookup = Arc<dyn Fn(&str) -> Option<crate::api::core::Secret> + Send + Sync>;

/// Checks bearer tokens against a token file, and bootstrap tokens against
/// their Secrets when a lookup is installed.
#[derive(Clone, Default)]
pub struct Authenticator {
    /// SHA-256 of each token, so every comparison has the same length.
    entries: Vec<([u8; 32], UserInfo)>,
    bootstrap: Option<BootstrapLookup>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("tokens", &self.entries.len())
            .field("bootstrap", &self.bootstrap.is_some())
            .finish()
    }
}

impl Authenticator {
    /// An authenticator accepting exactly the tokens of `file`.
    pub fn new(file: &TokenFile) -> Self {
        let mut a = Authenticator::default();
        for e in file.entries() {
            a.insert(&e.token, e.user.clone());
        }
        a
    }

    /// Accepts `token` as `user` from now on.
    pub fn insert(&mut self, token: &str, user: UserInfo) {
        self.entries
            .push((Sha256::digest(token.as_bytes()).into(), user));
    }

    /// The user a token belongs to. Every entry is compared, whatever
    /// matches, so the time taken does not depend on which one matches.
    pub fn authenticate_token(&self, token: &str) -> Result<UserInfo, AuthError> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        for (i, (d, _)) in self.entries.iter().enumerate() {
            if digests_equal(&digest, d) && found.is_none() {
                found = Some(i);
            }
        }
        if let Some(i) = found {
            return Ok(self.entries[i].1.clone());
        }
        match (&self.bootstrap, super::bootstrap::parse(token)) {
            (Some(lookup), Some((id, secret))) => {
                let stored = lookup(id).ok_or(AuthError::UnknownToken)?;
                super::bootstrap::verify(&stored, id, secret, chrono::Utc::now())
            }
            _ => Err(AuthError::UnknownToken),
        }
    }

    /// Also accepts bootstrap tokens whose Secrets `lookup` finds.
    pub fn with_bootstrap(mut self, lookup: BootstrapLookup) -> Self {
        self.bootstrap = Some(lookup);
        self
    }

    /// Authenticates a request by its `Authorization: Bearer <token>` header.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<UserInfo, AuthError> {
        let token = bearer_token(headers)?;
        self.authenticate_token(token)
    }
}

/// Extracts the token of an `Authorization: Bearer <token>` header. The
/// scheme is case-insensitive, as in Kubernetes.
pub fn bearer_token(headers: &HeaderMap) -> Result<&str, AuthError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let value = values.next().ok_or(AuthError::MissingAuthorization)?;
    if values.next().is_some() {
        return Err(AuthError::MalformedAuthorization {
            reason: "more than one Authorization header",
        });
    }
    let value = value
        .to_str()
        .map_err(|_| AuthError::MalformedAuthorization {
            reason: "not visible ASCII",
        })?;
    let mut parts = value.split_ascii_whitespace();
    let scheme = parts.next().ok_or(AuthError::MalformedAuthorization {
        reason: "empty value",
    })?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::MalformedAuthorization {
            reason: "scheme is not Bearer",
        });
    }
    let token = parts.next().ok_or(AuthError::MalformedAuthorization {
        reason: "Bearer without a token",
    })?;
    if parts.next().is_some() {
        return Err(AuthError::MalformedAuthorization {
            reason: "extra text after the token",
        });
    }
    Ok(token)
}

/// Path of the token file in a data directory.
pub fn token_file_path(data_dir: &Path) -> PathBuf {
    data_dir.join("tokens.csv")
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use std::os::unix::fs::PermissionsExt;

    fn parse(text: &str) -> Result<TokenFile, AuthError> {
        TokenFile::parse(text, Path::new("tokens.csv"))
    }

    #[test]
    fn parses_kubernetes_token_files() {
        let f = parse(
            "# comment\n\
             \n\
             t1,alice,u1\n\
             t2,bob,u2,\"dev,ops\"\n\
             t3,carol,u3,solo,extra-column\n\
             \x20 # indented comment\n\
             t4,\"d,ave\",u4,\"a, b ,,c\"\n",
        )
        .unwrap();
        let users: Vec<_> = f
            .entries()
            .iter()
            .map(|e| {
                (
                    e.token.as_str(),
                    e.user.name.as_str(),
                    e.user.groups.clone(),
                )
            })
            .collect();
        assert_eq!(
            users,
            vec![
                ("t1", "alice", vec![]),
                ("t2", "bob", vec!["dev".to_string(), "ops".into()]),
                ("t3", "carol", vec!["solo".to_string()]),
                ("t4", "d,ave", vec!["a".to_string(), "b".into(), "c".into()]),
            ]
        );
        assert_eq!(f.entries()[1].user.uid, "u2");
    }

    #[test]
    fn malformed_lines_name_the_line() {
        let cases = [
            ("t1,alice,u1\nt2,bob\n", 2, "at least 3 columns"),
            ("# c\n\n,alice,u1\n", 3, "empty token"),
            ("t1,,u1\n", 1, "empty user"),
            ("t1,a,u1\nt1,b,u2\n", 2, "duplicate token"),
            ("t1,a,u1,\"g1,g2\n", 1, "unterminated"),
            ("t1,a,u1,\"g\"x\n", 1, "extraneous"),
            ("t\"1,a,u1\n", 1, "bare quote"),
            ("t 1,a,u1\n", 1, "whitespace"),
        ];
        for (text, line, what) in cases {
            match parse(text) {
                Err(AuthError::TokenFileLine {
                    line: l, reason, ..
                }) => {
                    assert_eq!(l, line, "{text:?}");
                    assert!(reason.contains(what), "{text:?}: {reason}");
                }
                other => panic!("{text:?}: expected a line error, got {other:?}"),
            }
        }
    }

    #[test]
    fn rendered_lines_parse_back() {
        let e = TokenEntry {
            token: generate_token(),
            user: UserInfo {
                name: "we\"ird,name".into(),
                uid: "u".into(),
                groups: vec!["system:masters".into(), "dev".into()],
            },
        };
        let f = parse(&render_line(&e)).unwrap();
        assert_eq!(f.entries(), &[e]);
    }

    #[test]
    fn creates_admin_token_once_with_private_mode() {
        let tmp = tempfile::tempdir().unwrap();
        let path = token_file_path(tmp.path());
        let first = TokenFile::load_or_create(&path).unwrap();
        let token = first.admin_token().unwrap().to_string();
        assert_eq!(token.len(), 64);
        assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(first.entries()[0].user.name, ADMIN_USER);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let second = TokenFile::load_or_create(&path).unwrap();
        assert_eq!(second, first);
    }

    #[test]
    fn node_tokens_are_added_once_and_keep_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let path = token_file_path(tmp.path());
        std::fs::write(&path, "# mine\nt1,admin,u1,system:masters").unwrap();
        let mut f = TokenFile::load(&path).unwrap();
        let t = f.ensure_node_token(&path, "worker-1").unwrap();
        assert_eq!(f.ensure_node_token(&path, "worker-1").unwrap(), t);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# mine\nt1,admin,u1,system:masters\n"));
        let reloaded = TokenFile::load(&path).unwrap();
        assert_eq!(reloaded, f);
        let a = Authenticator::new(&reloaded);
        let u = a.authenticate_token(&t).unwrap();
        assert_eq!(u.name, "system:node:worker-1");
        assert_eq!(u.groups, vec![NODES_GROUP.to_string()]);
    }

    #[test]
    fn digest_compare_is_exact() {
        let a = [7u8; 32];
        let mut cases = vec![(a, true)];
        for i in [0usize, 15, 31] {
            let mut b = a;
            b[i] ^= 0x80;
            cases.push((b, false));
        }
        for (b, want) in cases {
            assert_eq!(digests_equal(&a, &b), want);
        }
    }

    fn headers(values: &[&[u8]]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(AUTHORIZATION, HeaderValue::from_bytes(v).unwrap());
        }
        h
    }

    #[test]
    fn authenticates_bearer_headers() {
        let f = parse("secret-1,alice,u1,\"dev,ops\"\nsecret-2,bob,u2\n").unwrap();
        let a = Authenticator::new(&f);
        let ok = a.authenticate(&headers(&[b"Bearer secret-1"])).unwrap();
        assert_eq!(ok.name, "alice");
        assert_eq!(ok.groups, vec!["dev".to_string(), "ops".into()]);
        assert_eq!(
            a.authenticate(&headers(&[b"bearer   secret-2 "]))
                .unwrap()
                .name,
            "bob"
        );

        let missing = a.authenticate(&headers(&[]));
        assert!(matches!(missing, Err(AuthError::MissingAuthorization)));
        for bad in [
            &b"Basic YWxpY2U6eA=="[..],
            b"Bearer",
            b"",
            b"Bearer a b",
            b"Bearer \xff",
        ] {
            let r = a.authenticate(&headers(&[bad]));
            assert!(
                matches!(r, Err(AuthError::MalformedAuthorization { .. })),
                "{bad:?}: {r:?}"
            );
        }
        let twice = a.authenticate(&headers(&[b"Bearer secret-1", b"Bearer secret-2"]));
        assert!(matches!(
            twice,
            Err(AuthError::MalformedAuthorization { .. })
        ));
        for unknown in [
            &b"Bearer secret-3"[..],
            b"Bearer secret-",
            b"Bearer secret-11",
        ] {
            let r = a.authenticate(&headers(&[unknown]));
            assert!(matches!(r, Err(AuthError::UnknownToken)), "{unknown:?}");
        }
    }
}
