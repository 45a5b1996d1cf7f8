//! URL paths and query strings of the Kubernetes API.

/// The path of a resource collection, object or subresource:
/// `/api/v1/namespaces/ns/pods/x/log`, `/apis/apps/v1/deployments`.
/// An empty group is the core group (`/api/v1`).
pub fn resource_path(
    group: &str,
    version: &str,
    plural: &str,
    namespace: Option<&str>,
    name: Option<&str>,
    subresource: Option<&str>,
) -> String {
    let mut p = if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    };
    if let Some(ns) = namespace {
        p.push_str("/namespaces/");
        p.push_str(&encode_segment(ns));
    }
    p.push('/');
    p.push_str(plural);
    if let Some(n) = name {
        p.push('/');
        p.push_str(&encode_segment(n));
        if let Some(s) = subresource {
            p.push('/');
            p.push_str(s);
        }
    }
    p
}

/// Options of list and watch requests (`metav1.ListOptions`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListParams {
    /// `labelSelector`, e.g. `app=web,tier in (a,b)`.
    pub label_selector: Option<String>,
    /// `fieldSelector`, e.g. `spec.nodeName=n1`.
    pub field_selector: Option<String>,
    pub limit: Option<u32>,
    /// `continue` token from a previous page.
    pub continue_: Option<String>,
    pub resource_version: Option<String>,
    /// `resourceVersionMatch`: `Exact` or `NotOlderThan`.
    pub resource_version_match: Option<String>,
    /// `timeoutSeconds`: how long the server keeps a watch open.
    pub timeout_seconds: Option<u32>,
    /// `allowWatchBookmarks`.
    pub allow_watch_bookmarks: bool,
}

impl ListParams {
    /// The query pairs these options stand for, in a fixed order.
    pub fn query_pairs(&self) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        let mut opt = |key, v: &Option<String>| {
            if let Some(v) = v.as_ref().filter(|v| !v.is_empty()) {
                q.push((key, v.clone()));
            }
        };
        opt("labelSelector", &self.label_selector);
        opt("fieldSelector", &self.field_selector);
        opt("continue", &self.continue_);
        opt("resourceVersion", &self.resource_version);
        opt("resourceVersionMatch", &self.resource_version_match);
        if let Some(l) = self.limit {
            q.push(("limit", l.to_string()));
        }
        if let Some(t) = self.timeout_seconds {
            q.push(("timeoutSeconds", t.to_string()));
        }
        if self.allow_watch_bookmarks {
            q.push(("allowWatchBookmarks", "true".into()));
        }
        q
    }
}

/// Appends query pairs to a path that may already have a query.
pub fn with_query(path: &str, pairs: &[(&str, String)]) -> String {
    let mut out = path.to_string();
    for (i, (k, v)) in pairs.iter().enumerate() {
        let sep = if i == 0 && !path.contains('?') {
            '?'
        } else {
            '&'
        };
        out.push(sep);
        out.push_str(&encode_component(k));
        out.push('=');
        out.push_str(&encode_component(v));
    }
    out
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Names are DNS-like, so this rarely changes anything; it keeps a bad name
/// from escaping its path segment.
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b':' | b'@') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_paths() {
        type Case = (
            (&'static str, &'static str, &'static str),
            Option<&'static str>,
            Option<&'static str>,
            Option<&'static str>,
            &'static str,
        );
        let cases: [Case; 7] = [
            (
                ("", "v1", "pods"),
                Some("ns"),
                Some("x"),
                Some("log"),
                "/api/v1/namespaces/ns/pods/x/log",
            ),
            (
                ("apps", "v1", "deployments"),
                None,
                None,
                None,
                "/apis/apps/v1/deployments",
            ),
            (
                ("", "v1", "namespaces"),
                None,
                Some("kube-system"),
                None,
                "/api/v1/namespaces/kube-system",
            ),
            (
                ("", "v1", "namespaces"),
                None,
                Some("ns"),
                Some("finalize"),
                "/api/v1/namespaces/ns/finalize",
            ),
            (
                ("apps", "v1", "deployments"),
                Some("default"),
                Some("web"),
                Some("scale"),
                "/apis/apps/v1/namespaces/default/deployments/web/scale",
            ),
            (
                ("", "v1", "pods"),
                Some("ns"),
                None,
                Some("log"),
                "/api/v1/namespaces/ns/pods",
            ),
            (
                ("", "v1", "pods"),
                Some("ns"),
                Some("a/b c"),
                None,
                "/api/v1/namespaces/ns/pods/a%2Fb%20c",
            ),
        ];
        for ((g, v, p), ns, name, sub, want) in cases {
            assert_eq!(resource_path(g, v, p, ns, name, sub), want);
        }
    }

    #[test]
    fn list_params_become_a_query() {
        let lp = ListParams {
            label_selector: Some("app=web,tier in (a,b)".into()),
            field_selector: Some("spec.nodeName=n1".into()),
            limit: Some(500),
            continue_: Some("abc+/=".into()),
            resource_version: Some("42".into()),
            timeout_seconds: Some(30),
            allow_watch_bookmarks: true,
            ..Default::default()
        };
        assert_eq!(
            with_query("/api/v1/pods", &lp.query_pairs()),
            "/api/v1/pods?labelSelector=app%3Dweb%2Ctier%20in%20%28a%2Cb%29\
             &fieldSelector=spec.nodeName%3Dn1&continue=abc%2B%2F%3D&resourceVersion=42\
             &limit=500&timeoutSeconds=30&allowWatchBookmarks=true"
        );
        assert_eq!(with_query("/x", &ListParams::default().query_pairs()), "/x");
        assert_eq!(
            with_query("/x?follow=true", &[("watch", "1".to_string())]),
            "/x?follow=true&watch=1"
        );
    }
}
