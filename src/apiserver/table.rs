//! `meta.k8s.io/v1` Table responses, which `kubectl get` asks for.

use bytes::Bytes;
use chrono::Utc;
use serde_json::{Value, json};

use crate::api::registry::DynResource;

/// What each row carries besides its cells (`includeObject`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum IncludeObject {
    None,
    #[default]
    Metadata,
    Object,
}

impl IncludeObject {
    pub fn parse(s: &str) -> Option<IncludeObject> {
        match s {
            "None" => Some(IncludeObject::None),
            "Metadata" | "" => Some(IncludeObject::Metadata),
            "Object" => Some(IncludeObject::Object),
            _ => None,
        }
    }
}

/// The column definitions of a type.
pub fn columns(rt: &dyn DynResource) -> Value {
    let cols: Vec<Value> = rt
        .table_columns()
        .iter()
        .map(|c| {
            json!({"name": c.name, "type": c.type_, "format": c.format, "description": c.description, "priority": c.priority})
        })
        .collect();
    Value::Array(cols)
}

/// One row for a stored object.
pub fn row(rt: &dyn DynResource, obj: &[u8], include: IncludeObject) -> Value {
    let v: Value = serde_json::from_slice(obj).unwrap_or(Value::Null);
    let cells = rt.table_row(&v, Utc::now()).unwrap_or_else(|e| {
        let mut c = vec![Value::String(format!("<error: {e}>"))];
        c.resize(rt.table_columns().len(), Value::String(String::new()));
        c
    });
    let mut r = json!({"cells": cells});
    match include {
        IncludeObject::None => {}
        IncludeObject::Metadata => {
            r["object"] = json!({
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": v.get("metadata").cloned().unwrap_or(json!({})),
            });
        }
        IncludeObject::Object => r["object"] = v,
    }
    r
}

/// A whole Table for a list page.
pub fn table(
    rt: &dyn DynResource,
    items: &[Bytes],
    resource_version: u64,
    continue_token: &str,
    remaining: Option<i64>,
    include: IncludeObject,
) -> Value {
    let rows: Vec<Value> = items.iter().map(|i| row(rt, i, include)).collect();
    let mut meta = json!({"resourceVersion": resource_version.to_string()});
    if !continue_token.is_empty() {
        meta["continue"] = json!(continue_token);
    }
    if let Some(r) = remaining {
        meta["remainingItemCount"] = json!(r);
    }
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": meta,
        "columnDefinitions": columns(rt),
        "rows": rows,
    })
}

/// A single-object Table (GET of one object, or one watch event).
pub fn single(
    rt: &dyn DynResource,
    obj: &[u8],
    include: IncludeObject,
    with_columns: bool,
) -> Value {
    let v: Value = serde_json::from_slice(obj).unwrap_or(Value::Null);
    let rv = v
        .pointer("/metadata/resourceVersion")
        .cloned()
        .unwrap_or(json!(""));
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": rv},
        "columnDefinitions": if with_columns { columns(rt) } else { json!([]) },
        "rows": [row(rt, obj, include)],
    })
}
