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
