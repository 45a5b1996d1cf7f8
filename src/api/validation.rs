//! Field errors and the common checks (DNS-1123 names, label keys and values).
//!
//! Errors carry the JSON path of the bad field (`spec.containers[0].name`) and
//! become the `causes` of a 422 `Status`, as in Kubernetes.

use std::fmt;

/// Why a field is bad; the names are Kubernetes' `CauseType` strings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    Required,
    Invalid,
    NotSupported,
    Duplicate,
    Forbidden,
    TooLong,
    TooMany,
}

impl ErrorKind {
    /// The `StatusCause.reason` string.
    pub fn reason(self) -> &'static str {
        match self {
            ErrorKind::Required => "FieldValueRequired",
            ErrorKind::Invalid => "FieldValueInvalid",
            ErrorKind::NotSupported => "FieldValueNotSupported",
            ErrorKind::Duplicate => "FieldValueDuplicate",
            ErrorKind::Forbidden => "FieldValueForbidden",
            ErrorKind::TooLong => "FieldValueTooLong",
            ErrorKind::TooMany => "FieldValueTooMany",
        }
    }
}

/// One bad field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub kind: ErrorKind,
    /// JSON path, e.g. `metadata.name` or `spec.containers[0].image`.
    pub field: String,
    /// The offending value rendered for people (empty for Required).
    pub value: String,
    pub detail: String,
}

impl fmt::Display for FieldError {
    /// Kubernetes style: `spec.replicas: Invalid value: -1: must be greater than or equal to 0`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            ErrorKind::Required => write!(f, "{}: Required value", self.field)?,
            ErrorKind::Invalid => write!(f, "{}: Invalid value: {}", self.field, self.value)?,
            ErrorKind::NotSupported => {
                write!(f, "{}: Unsupported value: {}", self.field, self.value)?
            }
            ErrorKind::Duplicate => write!(f, "{}: Duplicate value: {}", self.field, self.value)?,
            ErrorKind::Forbidden => write!(f, "{}: Forbidden", self.field)?,
            ErrorKind::TooLong => write!(f, "{}: Too long", self.field)?,
            ErrorKind::TooMany => write!(f, "{}: Too many", self.field)?,
        }
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        Ok(())
    }
}

/// An accumulating list of field errors.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldErrors(pub Vec<FieldError>);

impl FieldErrors {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn push(
        &mut self,
        kind: ErrorKind,
        field: impl Into<String>,
        value: impl fmt::Display,
        detail: impl Into<String>,
    ) {
        self.0.push(FieldError {
            kind,
            field: field.into(),
            value: value.to_string(),
            detail: detail.into(),
        });
    }
    pub fn required(&mut self, field: impl Into<String>, detail: impl Into<String>) {
        self.push(ErrorKind::Required, field, "", detail);
    }
    /// `value` renders with `Debug`, so strings are quoted and numbers not,
    /// as in Kubernetes' messages.
    pub fn invalid(
        &mut self,
        field: impl Into<String>,
        value: impl fmt::Debug,
        detail: impl Into<String>,
    ) {
        self.push(ErrorKind::Invalid, field, format!("{value:?}"), detail);
    }
    pub fn not_supported(
        &mut self,
        field: impl Into<String>,
        value: impl fmt::Debug,
        supported: &[&str],
    ) {
        let list = supported
            .iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        self.push(
            ErrorKind::NotSupported,
            field,
            format!("{value:?}"),
            format!("supported values: {list}"),
        );
    }
    pub fn forbidden(&mut self, field: impl Into<String>, detail: impl Into<String>) {
        self.push(ErrorKind::Forbidden, field, "", detail);
    }
    pub fn duplicate(&mut self, field: impl Into<String>, value: impl fmt::Debug) {
        self.push(ErrorKind::Duplicate, field, format!("{value:?}"), "");
    }
    pub fn extend(&mut self, other: FieldErrors) {
        self.0.extend(other.0);
    }
    /// Kubernetes' aggregate message: `[a, b]` for several errors, `a` for one.
    pub fn summary(&self) -> String {
        match self.0.len() {
            0 => String::new(),
            1 => self.0[0].to_string(),
            _ => format!(
                "[{}]",
                self.0
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

const DNS1123_LABEL_MAX: usize = 63;
const DNS1123_SUBDOMAIN_MAX: usize = 253;

/// RFC 1123 label: lower-case alphanumerics and '-', starting and ending alphanumeric, <= 63.
pub fn dns1123_label(value: &str) -> Result<(), String> {
    if value.len() > DNS1123_LABEL_MAX {
        return Err(format!(
            "must be no more than {DNS1123_LABEL_MAX} characters"
        ));
    }
    if !is_label(value) {
        return Err("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')".to_string());
    }
    Ok(())
}

/// RFC 1123 subdomain: dot-separated labels, <= 253.
pub fn dns1123_subdomain(value: &str) -> Result<(), String> {
    if value.len() > DNS1123_SUBDOMAIN_MAX {
        return Err(format!(
            "must be no more than {DNS1123_SUBDOMAIN_MAX} characters"
        ));
    }
    if value.is_empty() || !value.split('.').all(is_label) {
        return Err("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')".to_string());
    }
    Ok(())
}

/// RFC 1035 label (service names): like a 1123 label but starting with a letter.
pub fn dns1035_label(value: &str) -> Result<(), String> {
    if value.len() > DNS1123_LABEL_MAX {
        return Err(format!(
            "must be no more than {DNS1123_LABEL_MAX} characters"
        ));
    }
    if !is_label(value) || !value.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')".to_string());
    }
    Ok(())
}

fn is_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= DNS1123_LABEL_MAX
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// A qualified name (label key, annotation key, finalizer): `[prefix/]name`
/// where name is <= 63 chars of alphanumerics, '-', '_', '.', starting and
/// ending alphanumeric, and prefix is a DNS subdomain.
pub fn qualified_name(value: &str) -> Result<(), String> {
    let (prefix, name) = match value.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, value),
    };
    if let Some(p) = prefix {
        if p.is_empty() {
            return Err("prefix part must be non-empty".into());
        }
        dns1123_subdomain(p).map_err(|e| format!("prefix part {e}"))?;
    }
    if name.is_empty() {
        return Err("name part must be non-empty".into());
    }
    if name.len() > 63 {
        return Err("name part must be no more than 63 characters".into());
    }
    if !is_qualified_token(name) {
        return Err("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')".into());
    }
    Ok(())
}

/// A label value: empty, or <= 63 chars like a qualified name part.
pub fn label_value(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Ok(());
    }
    if value.len() > 63 {
        return Err("must be no more than 63 characters".into());
    }
    if !is_qualified_token(value) {
        return Err("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')".into());
    }
    Ok(())
}

fn is_qualified_token(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_' || *c == b'.')
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

/// Validates `metadata.labels` into `errs` under `path`.
pub fn validate_labels(
    labels: &std::collections::BTreeMap<String, String>,
    path: &str,
    errs: &mut FieldErrors,
) {
    for (k, v) in labels {
        if let Err(e) = qualified_name(k) {
            errs.invalid(path, k, e);
        }
        if let Err(e) = label_value(v) {
            errs.invalid(format!("{path}[{k}]"), v, e);
        }
    }
}

/// Validates `metadata.annotations` keys and their total size (256 KiB).
pub fn validate_annotations(
    ann: &std::collections::BTreeMap<String, String>,
    path: &str,
    errs: &mut FieldErrors,
) {
    let mut total = 0usize;
    for (k, v) in ann {
        if let Err(e) = qualified_name(&k.to_lowercase()) {
            errs.invalid(path, k, e);
        }
        total += k.len() + v.len();
    }
    if total > 256 * 1024 {
        errs.push(
            ErrorKind::TooLong,
            path,
            "",
            "may not have more than 262144 bytes",
        );
    }
}

/// Validates what every type checks in `metadata`: the name (by the type's
/// naming rule, e.g. [`dns1123_subdomain`]), labels and annotations.
pub fn validate_object_meta(
    meta: &super::meta::ObjectMeta,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels() {
        for ok in ["a", "abc", "a-b", "0", "a1"] {
            assert!(dns1123_label(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", "a-", "A", "a_b", "a.b", &"x".repeat(64)] {
            assert!(dns1123_label(bad).is_err(), "{bad}");
        }
        assert!(dns1123_subdomain("a.b-c.d").is_ok());
        assert!(dns1123_subdomain("a..b").is_err());
        assert!(dns1035_label("1abc").is_err());
        assert!(dns1035_label("abc1").is_ok());
    }

    #[test]
    fn qualified_names_and_label_values() {
        for ok in ["app", "app.kubernetes.io/name", "My_Key.1"] {
            assert!(qualified_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "/a", "a/", "-a", "Foo.Bar/x", "a b"] {
            assert!(qualified_name(bad).is_err(), "{bad}");
        }
        assert!(label_value("").is_ok());
        assert!(label_value("v1.2_x").is_ok());
        assert!(label_value("-v").is_err());
    }

    #[test]
    fn messages_follow_kubernetes() {
        let mut e = FieldErrors::default();
        e.required("spec.containers", "");
        e.invalid("spec.replicas", -1, "must be greater than or equal to 0");
        assert_eq!(
            e.summary(),
            "[spec.containers: Required value, spec.replicas: Invalid value: -1: must be greater than or equal to 0]"
        );
    }
}
