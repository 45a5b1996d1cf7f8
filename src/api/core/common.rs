//! Checks and formatting shared by several core/v1 types.

use std::collections::BTreeMap;
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::api::quantity::{ResourceList, validate_quantity};
use crate::api::validation::{
    ErrorKind, FieldErrors, label_value, qualified_name, validate_annotations, validate_labels,
};
use crate::api::{LabelSelector, ObjectMeta, Time};

/// Kubernetes' limit on the summed size of a ConfigMap's or Secret's data.
pub(crate) const MAX_DATA_BYTES: usize = 1024 * 1024;

pub(crate) const PROTOCOLS: [&str; 3] = ["TCP", "UDP", "SCTP"];

/// Name, labels and annotations, as every type checks them.
pub(crate) fn validate_meta(
    meta: &ObjectMeta,
    name_rule: fn(&str) -> Result<(), String>,
    errs: &mut FieldErrors,
) {
    if meta.name.is_empty() {
        if meta.generate_name.is_empty() {
            errs.required("metadata.name", "name or generateName is required");
        }
    } else if let Err(e) = name_rule(&meta.name) {
        errs.invalid("metadata.name", &meta.name, e);
    }
    validate_labels(&meta.labels, "metadata.labels", errs);
    validate_annotations(&meta.annotations, "metadata.annotations", errs);
}

/// A port number 1..=65535.
pub(crate) fn validate_port_number(port: i32, path: &str, errs: &mut FieldErrors) {
    if !(1..=65535).contains(&port) {
        errs.invalid(path, port, "must be between 1 and 65535, inclusive");
    }
}

/// An IANA service name (port names): 1-15 lower-case alphanumerics and
/// '-', with at least one letter, no leading, trailing or double '-'.
pub(crate) fn iana_svc_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 15 {
        return Err("must be no more than 15 characters".into());
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(
            "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".into(),
        );
    }
    if name.contains("--") {
        return Err("must not contain consecutive hyphens".into());
    }
    if !name.bytes().any(|b| b.is_ascii_lowercase()) {
        return Err("must contain at least one letter (a-z)".into());
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Err("must not begin or end with a hyphen".into());
    }
    Ok(())
}

/// A port given as a number (1..=65535) or a port name.
pub(crate) fn validate_port_num_or_name(
    port: &crate::api::quantity::IntOrString,
    path: &str,
    errs: &mut FieldErrors,
) {
    use crate::api::quantity::IntOrString;
    match port {
        IntOrString::Int(p) => validate_port_number(*p, path, errs),
        IntOrString::String(s) => {
            if let Err(e) = iana_svc_name(s) {
                errs.invalid(path, s, e);
            }
        }
    }
}

/// A protocol TCP, UDP or SCTP; empty is allowed because defaulting sets TCP.
pub(crate) fn validate_protocol(protocol: &str, path: &str, errs: &mut FieldErrors) {
    if !protocol.is_empty() && !PROTOCOLS.contains(&protocol) {
        errs.not_supported(path, protocol, &PROTOCOLS);
    }
}

/// One of `allowed`, or empty when defaulting fills the field.
pub(crate) fn validate_enum(value: &str, allowed: &[&str], path: &str, errs: &mut FieldErrors) {
    if !value.is_empty() && !allowed.contains(&value) {
        errs.not_supported(path, value, allowed);
    }
}

/// A resource name: a qualified name such as `cpu`, `memory` or `example.com/gpu`.
pub(crate) fn validate_resource_name(name: &str, path: &str, errs: &mut FieldErrors) {
    if let Err(e) = qualified_name(name) {
        errs.invalid(path, name, e);
    }
}

/// Every name and quantity of a resource list.
pub(crate) fn validate_resource_list(list: &ResourceList, path: &str, errs: &mut FieldErrors) {
    for (name, q) in list {
        validate_resource_name(name, path, errs);
        validate_quantity(q, &format!("{path}[{name}]"), errs);
    }
}

/// A metav1.LabelSelector: valid keys, values and operators.
pub(crate) fn validate_label_selector(sel: &LabelSelector, path: &str, errs: &mut FieldErrors) {
    validate_labels(&sel.match_labels, &format!("{path}.matchLabels"), errs);
    for (i, req) in sel.match_expressions.iter().enumerate() {
        let p = format!("{path}.matchExpressions[{i}]");
        if let Err(e) = qualified_name(&req.key) {
            errs.invalid(format!("{p}.key"), &req.key, e);
        }
        match req.operator.as_str() {
            "In" | "NotIn" => {
                if req.values.is_empty() {
                    errs.required(
                        format!("{p}.values"),
                        "must be specified when `operator` is 'In' or 'NotIn'",
                    );
                }
            }
            "Exists" | "DoesNotExist" => {
                if !req.values.is_empty() {
                    errs.forbidden(
                        format!("{p}.values"),
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    );
                }
            }
            other => errs.not_supported(
                format!("{p}.operator"),
                other,
                &["In", "NotIn", "Exists", "DoesNotExist"],
            ),
        }
        for (j, v) in req.values.iter().enumerate() {
            if let Err(e) = label_value(v) {
                errs.invalid(format!("{p}.values[{j}]"), v, e);
            }
        }
    }
}

/// A ConfigMap/Secret data key: `[-._a-zA-Z0-9]+`, at most 253, not `.`,
/// `..` or starting with `..`.
pub(crate) fn config_map_key(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("must not be empty".into());
    }
    if key.len() > 253 {
        return Err("must be no more than 253 characters".into());
    }
    if !key
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        return Err("a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')".into());
    }
    if key == "." {
        return Err("must not be '.'".into());
    }
    if key == ".." {
        return Err("must not be '..'".into());
    }
    if key.starts_with("..") {
        return Err("must not start with '..'".into());
    }
    Ok(())
}

/// A relative file path without `..` elements (projected keys, subPath).
pub(crate) fn validate_relative_path(p: &str, path: &str, errs: &mut FieldErrors) {
    if p.starts_with('/') {
        errs.invalid(path, p, "must be a relative path");
    }
    if p.split('/').any(|part| part == "..") {
        errs.invalid(path, p, "must not contain '..'");
    }
}

/// The IP family name of an address.
pub(crate) fn ip_family(ip: &str) -> Option<&'static str> {
    match ip.parse::<IpAddr>() {
        Ok(IpAddr::V4(_)) => Some("IPv4"),
        Ok(IpAddr::V6(_)) => Some("IPv6"),
        Err(_) => None,
    }
}

pub(crate) fn validate_ip(ip: &str, path: &str, errs: &mut FieldErrors) {
    if ip_family(ip).is_none() {
        errs.invalid(
            path,
            ip,
            "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
        );
    }
}

/// A CIDR such as `10.244.0.0/24`.
pub(crate) fn validate_cidr(cidr: &str, path: &str, errs: &mut FieldErrors) {
    let ok = cidr.split_once('/').is_some_and(|(ip, bits)| {
        let max = match ip_family(ip) {
            Some("IPv4") => 32,
            Some(_) => 128,
            None => return false,
        };
        bits.parse::<u8>().is_ok_and(|b| b <= max)
    });
    if !ok {
        errs.invalid(
            path,
            cidr,
            "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
        );
    }
}

pub(crate) fn validate_non_negative(v: i64, path: &str, errs: &mut FieldErrors) {
    if v < 0 {
        errs.invalid(path, v, "must be greater than or equal to 0");
    }
}

pub(crate) fn too_long(path: &str, max: usize, errs: &mut FieldErrors) {
    errs.push(
        ErrorKind::TooLong,
        path,
        "",
        format!("must have at most {max} bytes"),
    );
}

/// `k=v,k2=v2` in key order, or `<none>` (kubectl's `labels.FormatLabels`).
pub fn format_labels(labels: &BTreeMap<String, String>) -> String {
    if labels.is_empty() {
        return "<none>".to_string();
    }
    selector_string(labels)
}

/// `k=v,k2=v2` in key order; empty for an empty map (Scale.status.selector).
pub(crate) fn selector_string(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Container names and images joined by commas, as kubectl's wide
/// `Containers` and `Images` columns show them.
pub fn container_cells(containers: &[super::Container]) -> (String, String) {
    let names = containers
        .iter()
        .map(|c| c.name.as_str())
        .collect::<Vec<_>>()
        .join(",");
    let images = containers
        .iter()
        .map(|c| c.image.as_str())
        .collect::<Vec<_>>()
        .join(",");
    (names, images)
}

pub(crate) fn s(v: impl Into<String>) -> Value {
    Value::String(v.into())
}

pub(crate) fn int(v: i64) -> Value {
    Value::from(v)
}

/// kubectl's age cell for an optional time: `<unknown>` when unset.
pub(crate) fn since(t: Option<&Time>, now: DateTime<Utc>) -> String {
    match t {
        Some(t) => crate::api::human_duration(now - t.0),
        None => "<unknown>".to_string(),
    }
}

/// The generic `Created At` cell: the creation time in RFC 3339, UTC.
pub(crate) fn created_at(meta: &ObjectMeta) -> Value {
    match meta.creation_timestamp {
        Some(t) => s(t.0.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
        // Go's zero time, which is what Kubernetes prints for it.
        None => s("0001-01-01T00:00:00Z"),
    }
}

/// Which spec fields differ, for error messages (`containers`, `volumes`).
pub(crate) fn changed_fields<T: serde::Serialize>(new: &T, old: &T) -> Vec<String> {
    let (Ok(Value::Object(n)), Ok(Value::Object(o))) =
        (serde_json::to_value(new), serde_json::to_value(old))
    else {
        return Vec::new();
    };
    let mut keys: Vec<&String> = n.keys().chain(o.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| n.get(*k) != o.get(*k))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iana_names() {
        for ok in ["http", "web-8080", "a1", "metrics"] {
            assert!(iana_svc_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "8080",
            "http--x",
            "-http",
            "http-",
            "Http",
            "a-very-long-port-name",
        ] {
            assert!(iana_svc_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn config_keys() {
        for ok in [
            "a",
            "app.properties",
            "KEY_NAME",
            "key-name",
            ".hidden",
            "a..b",
        ] {
            assert!(config_map_key(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "..a", "a/b", "a b", &"k".repeat(254)] {
            assert!(config_map_key(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cidrs_and_ips() {
        let check = |c: &str| {
            let mut e = FieldErrors::default();
            validate_cidr(c, "spec.podCIDR", &mut e);
            e.is_empty()
        };
        assert!(check("10.244.0.0/24"));
        assert!(check("fd00::/64"));
        assert!(!check("10.244.0.0/33"));
        assert!(!check("10.244.0.0"));
        assert!(!check("x/8"));
        assert_eq!(ip_family("10.0.0.1"), Some("IPv4"));
        assert_eq!(ip_family("::1"), Some("IPv6"));
        assert_eq!(ip_family("None"), None);
    }

    #[test]
    fn label_selector_rules() {
        let sel: LabelSelector = serde_json::from_value(serde_json::json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": []},
                {"key": "env", "operator": "Exists", "values": ["x"]},
                {"key": "zone", "operator": "Near"},
                {"key": "ok", "operator": "NotIn", "values": ["a"]}
            ]
        }))
        .unwrap();
        let mut e = FieldErrors::default();
        validate_label_selector(&sel, "spec.selector", &mut e);
        let fields: Vec<_> = e.0.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec.selector.matchExpressions[0].values",
                "spec.selector.matchExpressions[1].values",
                "spec.selector.matchExpressions[2].operator",
            ]
        );
    }

    #[test]
    fn labels_format_like_kubectl() {
        let mut m = BTreeMap::new();
        assert_eq!(format_labels(&m), "<none>");
        assert_eq!(selector_string(&m), "");
        m.insert("tier".to_string(), "web".to_string());
        m.insert("app".to_string(), "shop".to_string());
        assert_eq!(format_labels(&m), "app=shop,tier=web");
    }

    #[test]
    fn changed_fields_names_top_level_keys() {
        let a = serde_json::json!({"x": 1, "y": [1], "z": "s"});
        let b = serde_json::json!({"x": 1, "y": [2]});
        assert_eq!(changed_fields(&a, &b), ["y", "z"]);
    }
}
