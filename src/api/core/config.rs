//! ConfigMap and Secret behaviour.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::common::{MAX_DATA_BYTES, config_map_key, int, s, too_long, validate_meta};
use super::{ConfigMap, Secret};
use crate::api::validation::{FieldErrors, dns1123_subdomain};
use crate::api::{ApiObject, TableColumn, age};

const IMMUTABLE: &str = "field is immutable when `immutable` is set";

fn validate_keys<'a>(keys: impl Iterator<Item = &'a String>, field: &str, errs: &mut FieldErrors) {
    for k in keys {
        if let Err(e) = config_map_key(k) {
            errs.invalid(format!("{field}[{k}]"), k, e);
        }
    }
}

/// The rules immutable ConfigMaps and Secrets share: they stay immutable
/// and none of the `changed` fields (name, whether it changed) may change.
fn validate_immutable(
    new_immutable: Option<bool>,
    old_immutable: Option<bool>,
    changed: &[(&str, bool)],
    errs: &mut FieldErrors,
) {
    if old_immutable != Some(true) {
        return;
    }
    if new_immutable != Some(true) {
        errs.forbidden("immutable", IMMUTABLE);
    }
    for (field, differs) in changed {
        if *differs {
            errs.forbidden(*field, IMMUTABLE);
        }
    }
}

impl ApiObject for ConfigMap {
    fn validate(&self) -> FieldErrors {
        let mut errs = FieldErrors::default();
        validate_meta(&self.metadata, dns1123_subdomain, &mut errs);
        validate_keys(self.data.keys(), "data", &mut errs);
        validate_keys(self.binary_data.keys(), "binaryData", &mut errs);
        for k in self.binary_data.keys() {
            if self.data.contains_key(k) {
                errs.invalid(
                    format!("data[{k}]"),
                    k,
                    "duplicate of key present in binaryData",
                );
            }
        }
        let size: usize = self.data.values().map(String::len).sum::<usize>()
            + self.binary_data.values().map(Vec::len).sum::<usize>();
        if size > MAX_DATA_BYTES {
            too_long("", MAX_DATA_BYTES, &mut errs);
        }
        errs
    }

    fn validate_update(&self, old: &Self) -> FieldErrors {
        let mut errs = FieldErrors::default();
        validate_immutable(
            self.immutable,
            old.immutable,
            &[
                ("data", self.data != old.data),
                ("binaryData", self.binary_data != old.binary_data),
            ],
            &mut errs,
        );
        errs
    }

    fn table_columns() -> Vec<TableColumn> {
        vec![
            TableColumn {
                format: "name",
                ..TableColumn::new("Name", "string", 0)
            },
            TableColumn::new("Data", "string", 0),
            TableColumn::new("Age", "string", 0),
        ]
    }

    fn table_row(&self, now: DateTime<Utc>) -> Vec<Value> {
        vec![
            s(&self.metadata.name),
            int((self.data.len() + self.binary_data.len()) as i64),
            age(self.metadata.creation_timestamp.as_ref(), now),
        ]
    }
}

/// Keys each well-known secret type must carry.
fn validate_secret_type(secret: &Secret, errs: &mut FieldErrors) {
    let data = &secret.data;
    let need = |key: &str, errs: &mut FieldErrors| {
        if !data.contains_key(key) {
            errs.required(format!("data[{key}]"), "");
        }
    };
    match secret.type_.as_str() {
        "kubernetes.io/service-account-token"
            if !secret
                .metadata
                .annotations
                .contains_key("kubernetes.io/service-account.name") =>
        {
            errs.required(
                "metadata.annotations[kubernetes.io/service-account.name]",
                "",
            );
        }
        "kubernetes.io/dockercfg" => {
            need(".dockercfg", errs);
            validate_json(data, ".dockercfg", errs);
        }
        "kubernetes.io/dockerconfigjson" => {
            need(".dockerconfigjson", errs);
            validate_json(data, ".dockerconfigjson", errs);
        }
        "kubernetes.io/basic-auth"
            if !data.contains_key("username") && !data.contains_key("password") =>
        {
            errs.required("data[username]", "");
            errs.required("data[password]", "");
        }
        "kubernetes.io/ssh-auth" => need("ssh-privatekey", errs),
        "kubernetes.io/tls" => {
            need("tls.crt", errs);
            need("tls.key", errs);
        }
        _ => {}
    }
}

fn validate_json(data: &BTreeMap<String, Vec<u8>>, key: &str, errs: &mut FieldErrors) {
    if let Some(v) = data.get(key)
        && let Err(e) = serde_json::from_slice::<Value>(v)
    {
        errs.invalid(
            format!("data[{key}]"),
            "<secret contents redacted>",
            e.to_string(),
        );
    }
}

impl ApiObject for Secret {
    /// Type Opaque; `stringData` merged into `data` and cleared, as the
    /// Kubernetes API server does (stringData wins over data).
    fn set_defaults(&mut self) {
        if self.type_.is_empty() {
            self.type_ = "Opaque".into();
        }
        for (k, v) in std::mem::take(&mut self.string_data) {
            self.data.insert(k, v.into_bytes());
        }
    }

    fn validate(&self) -> FieldErrors {
        let mut errs = FieldErrors::default();
        validate_meta(&self.metadata, dns1123_subdomain, &mut errs);
        validate_keys(self.data.keys(), "data", &mut errs);
        validate_keys(self.string_data.keys(), "stringData", &mut errs);
        let size: usize = self.data.values().map(Vec::len).sum::<usize>()
            + self.string_data.values().map(String::len).sum::<usize>();
        if size > MAX_DATA_BYTES {
            too_long("data", MAX_DATA_BYTES, &mut errs);
        }
        validate_secret_type(self, &mut errs);
        errs
    }

    fn validate_update(&self, old: &Self) -> FieldErrors {
        let mut errs = FieldErrors::default();
        if self.type_ != old.type_ {
            errs.invalid("type", &self.type_, "field is immutable");
        }
        validate_immutable(
            self.immutable,
            old.immutable,
            &[("data", self.data != old.data)],
            &mut errs,
        );
        errs
    }

    fn table_columns() -> Vec<TableColumn> {
        vec![
            TableColumn {
                format: "name",
                ..TableColumn::new("Name", "string", 0)
            },
            TableColumn::new("Type", "string", 0),
            TableColumn::new("Data", "string", 0),
            TableColumn::new("Age", "string", 0),
        ]
    }

    fn table_row(&self, now: DateTime<Utc>) -> Vec<Value> {
        vec![
            s(&self.metadata.name),
            s(&self.type_),
            int(self.data.len() as i64),
            age(self.metadata.creation_timestamp.as_ref(), now),
        ]
    }

    fn field_value(&self, field: &str) -> Option<String> {
        match field {
            "type" => Some(self.type_.clone()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::json;

    use super::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap()
    }

    fn fields(errs: FieldErrors) -> Vec<String> {
        errs.0.into_iter().map(|e| e.field).collect()
    }

    fn cm(v: Value) -> ConfigMap {
        serde_json::from_value(v).unwrap()
    }

    fn secret(v: Value) -> Secret {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn config_map_validation() {
        let big = "x".repeat(MAX_DATA_BYTES);
        let cases: Vec<(Value, Vec<&str>)> = vec![
            (
                json!({"data": {"app.properties": "a=1", "KEY_1": "v"}}),
                vec![],
            ),
            (json!({"data": {"a/b": "x"}}), vec!["data[a/b]"]),
            (json!({"data": {"..x": "x"}}), vec!["data[..x]"]),
            (
                json!({"binaryData": {"bad key": "AAEC"}}),
                vec!["binaryData[bad key]"],
            ),
            (
                json!({"data": {"k": "x"}, "binaryData": {"k": "AAEC"}}),
                vec!["data[k]"],
            ),
            (json!({"data": {"k": big}}), vec![]),
            (json!({"data": {"k": big, "j": "y"}}), vec![""]),
        ];
        for (body, want) in cases {
            let mut v = body.clone();
            v["metadata"] = json!({"name": "cfg"});
            assert_eq!(
                fields(cm(v).validate()),
                want,
                "{}",
                body.to_string().chars().take(80).collect::<String>()
            );
        }
        let bad_name = cm(json!({"metadata": {"name": "Cfg"}}));
        assert_eq!(fields(bad_name.validate()), ["metadata.name"]);
    }

    #[test]
    fn immutable_config_maps_stay_as_they_are() {
        let old = cm(json!({"metadata": {"name": "c"}, "data": {"a": "1"}, "immutable": true}));
        let cases: Vec<(Value, Vec<&str>)> = vec![
            (json!({"data": {"a": "1"}, "immutable": true}), vec![]),
            (json!({"data": {"a": "2"}, "immutable": true}), vec!["data"]),
            (
                json!({"data": {"a": "1"}, "binaryData": {"b": "AA=="}, "immutable": true}),
                vec!["binaryData"],
            ),
            (
                json!({"data": {"a": "1"}, "immutable": false}),
                vec!["immutable"],
            ),
            (json!({"data": {"a": "1"}}), vec!["immutable"]),
        ];
        for (body, want) in cases {
            let mut v = body.clone();
            v["metadata"] = json!({"name": "c"});
            assert_eq!(fields(cm(v).validate_update(&old)), want, "{body}");
        }
        let mutable = cm(json!({"metadata": {"name": "c"}, "data": {"a": "1"}}));
        let changed = cm(json!({"metadata": {"name": "c"}, "data": {"a": "2"}, "immutable": true}));
        assert!(changed.validate_update(&mutable).is_empty());
    }

    #[test]
    fn config_map_table() {
        let c = cm(
            json!({"metadata": {"name": "cfg", "creationTimestamp": "2024-05-01T11:59:55Z"},
            "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}}),
        );
        assert_eq!(c.table_row(now()), [json!("cfg"), json!(3), json!("5s")]);
        assert_eq!(c.binary_data["c"], vec![0u8]);
    }

    #[test]
    fn secret_defaults_merge_string_data() {
        let mut s = secret(json!({"metadata": {"name": "creds"},
            "data": {"user": "YWRtaW4=", "pass": "b2xk"}, "stringData": {"pass": "new", "token": "t"}}));
        s.set_defaults();
        assert_eq!(s.type_, "Opaque");
        assert!(s.string_data.is_empty());
        assert_eq!(s.data["user"], b"admin");
        assert_eq!(s.data["pass"], b"new");
        assert_eq!(s.data["token"], b"t");
        let out = serde_json::to_value(&s).unwrap();
        assert_eq!(out["data"]["pass"], "bmV3");
        assert!(out.get("stringData").is_none());
        assert_eq!(s.field_value("type").as_deref(), Some("Opaque"));
        assert_eq!(s.field_value("data"), None);
    }

    #[test]
    fn secret_base64_is_checked_at_decode() {
        let err =
            serde_json::from_value::<Secret>(json!({"data": {"k": "not base64!"}})).unwrap_err();
        assert!(err.to_string().contains("\"k\""), "{err}");
    }

    #[test]
    fn secret_validation() {
        let b64 = |s: &str| {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(s)
        };
        let cases: Vec<(Value, Vec<&str>)> = vec![
            (json!({"type": "Opaque", "data": {"k": b64("v")}}), vec![]),
            (
                json!({"type": "Opaque", "data": {"k/x": b64("v")}}),
                vec!["data[k/x]"],
            ),
            (
                json!({"type": "kubernetes.io/tls", "data": {"tls.crt": b64("c")}}),
                vec!["data[tls.key]"],
            ),
            (
                json!({"type": "kubernetes.io/tls", "data": {"tls.crt": b64("c"), "tls.key": b64("k")}}),
                vec![],
            ),
            (
                json!({"type": "kubernetes.io/dockerconfigjson", "data": {}}),
                vec!["data[.dockerconfigjson]"],
            ),
            (
                json!({"type": "kubernetes.io/dockerconfigjson", "data": {".dockerconfigjson": b64("{")}}),
                vec!["data[.dockerconfigjson]"],
            ),
            (
                json!({"type": "kubernetes.io/dockerconfigjson", "data": {".dockerconfigjson": b64("{\"auths\":{}}")}}),
                vec![],
            ),
            (
                json!({"type": "kubernetes.io/basic-auth", "data": {}}),
                vec!["data[username]", "data[password]"],
            ),
            (
                json!({"type": "kubernetes.io/basic-auth", "data": {"password": b64("p")}}),
                vec![],
            ),
            (
                json!({"type": "kubernetes.io/ssh-auth"}),
                vec!["data[ssh-privatekey]"],
            ),
            (
                json!({"type": "kubernetes.io/service-account-token"}),
                vec!["metadata.annotations[kubernetes.io/service-account.name]"],
            ),
            (
                json!({"type": "example.com/custom", "data": {"x": b64("y")}}),
                vec![],
            ),
            (
                json!({"type": "Opaque", "data": {"k": b64(&"x".repeat(MAX_DATA_BYTES + 1))}}),
                vec!["data"],
            ),
        ];
        for (body, want) in cases {
            let mut v = body.clone();
            v["metadata"] = json!({"name": "s"});
            let desc = body.to_string().chars().take(90).collect::<String>();
            assert_eq!(fields(secret(v).validate()), want, "{desc}");
        }
    }

    #[test]
    fn secret_updates() {
        let old = secret(
            json!({"metadata": {"name": "s"}, "type": "Opaque", "data": {"k": "dg=="}, "immutable": true}),
        );
        let same = old.clone();
        assert!(same.validate_update(&old).is_empty());
        let mut retyped = old.clone();
        retyped.type_ = "kubernetes.io/tls".into();
        assert_eq!(fields(retyped.validate_update(&old)), ["type"]);
        let mut edited = old.clone();
        edited.data.insert("k".into(), b"w".to_vec());
        edited.immutable = None;
        assert_eq!(fields(edited.validate_update(&old)), ["immutable", "data"]);
        let mut mutable = old.clone();
        mutable.immutable = None;
        assert!(edited.validate_update(&mutable).is_empty());
    }

    #[test]
    fn secret_table() {
        let s = secret(
            json!({"metadata": {"name": "tls", "creationTimestamp": "2024-05-01T09:00:00Z"},
            "type": "kubernetes.io/tls", "data": {"tls.crt": "Yw==", "tls.key": "aw=="}}),
        );
        assert_eq!(
            s.table_row(now()),
            [
                json!("tls"),
                json!("kubernetes.io/tls"),
                json!(2),
                json!("3h")
            ]
        );
        assert_eq!(
            Secret::table_columns()
                .iter()
                .map(|c| c.name)
                .collect::<Vec<_>>(),
            ["Name", "Type", "Data", "Age"]
        );
    }
}
