//! The OpenAPI documents kubectl reads: `/openapi/v3` (the index),
//! `/openapi/v3/{api/v1|apis/G/V}` (one document per group version, with
//! component schemas and the `fieldValidation` parameter on PATCH, which is
//! how kubectl decides that the server validates fields itself) and
//! `/openapi/v2` (one Swagger 2.0 document, JSON only).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use serde_json::{Map, Value, json};
use sha2::Digest;

use super::error::{ApiError, ApiResult};
use super::http::Body;
use crate::api::registry::{DynResource, Registry};

/// Documents built once per process (they depend only on the registry).
#[derive(Default)]
pub struct Cache {
    v3: OnceLock<BTreeMap<String, (String, Bytes)>>,
    v2: OnceLock<Bytes>,
}

fn respond(b: Bytes, etag: Option<&str>) -> Response<Body> {
    let mut r = Response::new(Full::new(b).boxed());
    *r.status_mut() = StatusCode::OK;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(e) = etag.and_then(|e| HeaderValue::from_str(&format!("\"{e}\"")).ok()) {
        r.headers_mut().insert(header::ETAG, e);
    }
    r
}

/// `api/v1` or `apis/apps/v1`.
fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

fn schema_name(t: &dyn DynResource) -> String {
    let i = t.info();
    let g = if i.group.is_empty() { "core" } else { i.group };
    format!("io.wasmk.{}.{}.{}", g.replace('.', "_"), i.version, i.kind)
}

fn gvk(t: &dyn DynResource) -> Value {
    let i = t.info();
    json!({"group": i.group, "version": i.version, "kind": i.kind})
}

fn query_param(name: &str, description: &str, type_: &str) -> Value {
    json!({"name": name, "in": "query", "description": description, "schema": {"type": type_, "uniqueItems": true}})
}

fn write_params() -> Vec<Value> {
    vec![
        query_param(
            "dryRun",
            "When present, modifications are not persisted. Valid value: All.",
            "string",
        ),
        query_param(
            "fieldManager",
            "A name associated with the actor or entity that is making these changes.",
            "string",
        ),
        query_param(
            "fieldValidation",
            "How the server treats unknown or duplicate fields: Ignore, Warn (default) or Strict.",
            "string",
        ),
    ]
}

fn list_params() -> Vec<Value> {
    vec![
        query_param(
            "labelSelector",
            "A selector to restrict the list of returned objects by their labels.",
            "string",
        ),
        query_param(
            "fieldSelector",
            "A selector to restrict the list of returned objects by their fields.",
            "string",
        ),
        query_param("limit", "Maximum number of responses to return.", "integer"),
        query_param(
            "continue",
            "The continue token of a previous paged list.",
            "string",
        ),
        query_param(
            "resourceVersion",
            "Which resource versions the request may be served from.",
            "string",
        ),
        query_param(
            "watch",
            "Watch for changes to the described resources.",
            "boolean",
        ),
        query_param(
            "allowWatchBookmarks",
            "Requests watch events with type BOOKMARK.",
            "boolean",
        ),
        query_param(
            "timeoutSeconds",
            "Timeout for the list/watch call.",
            "integer",
        ),
    ]
}

fn op(
    t: &dyn DynResource,
    action: &str,
    description: String,
    params: Vec<Value>,
    body_ref: Option<&str>,
    resp_ref: &str,
) -> Value {
    let mut o = json!({
        "description": description,
        "operationId": format!("{action}{}", t.info().kind),
        "parameters": params,
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": resp_ref}}}}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": gvk(t),
    });
    if let Some(r) = body_ref {
        let media = if action == "patch" {
            json!({
                "application/json-patch+json": {"schema": {"type": "object"}},
                "application/merge-patch+json": {"schema": {"type": "object"}},
                "application/strategic-merge-patch+json": {"schema": {"type": "object"}},
            })
        } else {
            json!({"application/json": {"schema": {"$ref": r}}})
        };
        o["requestBody"] = json!({"content": media, "required": true});
    }
    o
}

fn paths_for(t: &dyn DynResource) -> Vec<(String, Value)> {
    let i = t.info();
    let base = format!("/{}", gv_path(i.group, i.version));
    let schema = format!("#/components/schemas/{}", schema_name(t));
    let list_schema = format!("#/components/schemas/{}List", schema_name(t));
    let ns_param =
        json!({"name": "namespace", "in": "path", "required": true, "schema": {"type": "string"}});
    let name_param =
        json!({"name": "name", "in": "path", "required": true, "schema": {"type": "string"}});
    let (coll, item) = if i.namespaced {
        (
            format!("{base}/namespaces/{{namespace}}/{}", i.plural),
            format!("{base}/namespaces/{{namespace}}/{}/{{name}}", i.plural),
        )
    } else {
        (
            format!("{base}/{}", i.plural),
            format!("{base}/{}/{{name}}", i.plural),
        )
    };
    let mut scope_params = Vec::new();
    if i.namespaced {
        scope_params.push(ns_param);
    }
    let mut item_params = scope_params.clone();
    item_params.push(name_param);
    let mut out = vec![
        (
            coll,
            json!({
                "get": op(t, "list", format!("list or watch objects of kind {}", i.kind), list_params(), None, &list_schema),
                "post": op(t, "post", format!("create a {}", i.kind), write_params(), Some(&schema), &schema),
                "delete": op(t, "deletecollection", format!("delete collection of {}", i.kind), list_params(), None, &list_schema),
                "parameters": scope_params,
            }),
        ),
        (
            item.clone(),
            json!({
                "get": op(t, "get", format!("read the specified {}", i.kind), vec![], None, &schema),
                "put": op(t, "put", format!("replace the specified {}", i.kind), write_params(), Some(&schema), &schema),
                "patch": op(t, "patch", format!("partially update the specified {}", i.kind), write_params(), Some(&schema), &schema),
                "delete": op(t, "delete", format!("delete a {}", i.kind), vec![query_param("gracePeriodSeconds", "The duration in seconds before the object should be deleted.", "integer"), query_param("propagationPolicy", "Whether and how garbage collection will be performed.", "string")], None, &schema),
                "parameters": item_params.clone(),
            }),
        ),
    ];
    if i.subresources.contains(&"status") {
        out.push((
            format!("{item}/status"),
            json!({
                "get": op(t, "get", format!("read status of the specified {}", i.kind), vec![], None, &schema),
                "put": op(t, "put", format!("replace status of the specified {}", i.kind), write_params(), Some(&schema), &schema),
                "patch": op(t, "patch", format!("partially update status of the specified {}", i.kind), write_params(), Some(&schema), &schema),
                "parameters": item_params,
            }),
        ));
    }
    out
}

fn list_schema(t: &dyn DynResource) -> Value {
    let i = t.info();
    json!({
        "description": format!("{}List is a list of {}.", i.kind, i.kind),
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "items": {"type": "array", "items": {"$ref": format!("#/components/schemas/{}", schema_name(t))}},
        },
        "x-kubernetes-group-version-kind": [{"group": i.group, "version": i.version, "kind": i.list_kind()}],
    })
}

/// Schemas of the given types in OpenAPI 3 form, named by [`schema_name`],
/// with the GVK extension on each top-level type.
fn components(types: &[&dyn DynResource], ref_prefix: &str) -> Map<String, Value> {
    let mut generator = schemars::generate::SchemaSettings::openapi3()
        .with(|s| {
            s.meta_schema = None;
            s.definitions_path = ref_prefix
                .trim_start_matches('#')
                .trim_end_matches('/')
                .to_string()
                .into();
        })
        .into_generator();
    let mut tops = Vec::new();
    for t in types {
        let s = t.schema(&mut generator);
        tops.push((schema_name(*t), s, *t));
    }
    let mut defs = generator.take_definitions(true);
    let mut out = Map::new();
    for (name, top, t) in tops {
        // subschema_for returns a $ref; resolve it to the definition.
        let resolved = top
            .as_object()
            .and_then(|o| o.get("$ref"))
            .and_then(Value::as_str)
            .and_then(|r| r.rsplit('/').next())
            .and_then(|n| defs.get(n).cloned())
            .unwrap_or_else(|| top.to_value());
        let mut v = resolved;
        let i = t.info();
        v["x-kubernetes-group-version-kind"] =
            json!([{"group": i.group, "version": i.version, "kind": i.kind}]);
        out.insert(name.clone(), v);
        out.insert(format!("{name}List"), list_schema(t));
    }
    for (k, v) in std::mem::take(&mut defs) {
        out.entry(k).or_insert(v);
    }
    let kinds: Vec<(String, &'static str)> = types
        .iter()
        .map(|t| (schema_name(*t), t.info().kind))
        .collect();
    for (name, kind) in kinds {
        annotate_patch_strategies(&mut out, &name, kind, &mut Vec::new(), 0);
    }
    out
}

/// The definition name a schema points at (`$ref`, or `allOf: [{$ref}]`).
fn ref_target(s: &Value) -> Option<String> {
    let r = s
        .get("$ref")
        .or_else(|| s.get("allOf")?.as_array()?.first()?.get("$ref"))?;
    Some(r.as_str()?.rsplit('/').next()?.to_string())
}

/// Adds `x-kubernetes-patch-strategy` / `x-kubernetes-patch-merge-key` to
/// the properties kubectl's three-way strategic merge must merge (container
/// lists by name, ...), walking definitions from `kind`'s root. Without them
/// kubectl treats every list as atomic and `apply` of an unchanged manifest
/// would still send a patch.
fn annotate_patch_strategies(
    defs: &mut Map<String, Value>,
    def: &str,
    kind: &str,
    path: &mut Vec<String>,
    depth: usize,
) {
    if depth > 12 {
        return;
    }
    let Some(props) = defs
        .get(def)
        .and_then(|d| d.get("properties"))
        .and_then(Value::as_object)
        .cloned()
    else {
        return;
    };
    for (field, schema) in props {
        path.push(field.clone());
        let p: Vec<&str> = path.iter().map(String::as_str).collect();
        if let Some(meta) = super::patch::strategic_patch_meta(kind, &p) {
            let mut strategy = Vec::new();
            if meta.merge {
                strategy.push("merge");
            }
            if meta.retain_keys {
                strategy.push("retainKeys");
            }
            if let Some(prop) = defs
                .get_mut(def)
                .and_then(|d| d.get_mut("properties"))
                .and_then(|ps| ps.get_mut(&field))
                .and_then(Value::as_object_mut)
            {
                if !strategy.is_empty() {
                    prop.insert(
                        "x-kubernetes-patch-strategy".into(),
                        json!(strategy.join(",")),
                    );
                }
                if let Some(k) = meta.merge_key {
                    prop.insert("x-kubernetes-patch-merge-key".into(), json!(k));
                }
            }
        }
        // Descend into objects and list items.
        let item = schema.get("items").cloned();
        let target = ref_target(&schema).or_else(|| item.as_ref().and_then(ref_target));
        if let Some(t) = target
            && t != def
        {
            annotate_patch_strategies(defs, &t, kind, path, depth + 1);
        }
        path.pop();
    }
}

fn rewrite_refs(v: &mut Value, from: &str, to: &str) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if k == "$ref" {
                    if let Value::String(s) = x
                        && let Some(rest) = s.strip_prefix(from)
                    {
                        *s = format!("{to}{rest}");
                    }
                } else {
                    rewrite_refs(x, from, to);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| rewrite_refs(x, from, to)),
        _ => {}
    }
}

fn build_v3(reg: &Registry) -> BTreeMap<String, (String, Bytes)> {
    let mut gvs: Vec<(&'static str, &'static str)> = vec![("", "v1")];
    gvs.extend(reg.group_versions());
    let mut out = BTreeMap::new();
    for (g, v) in gvs {
        let types: Vec<&dyn DynResource> = reg
            .all()
            .filter(|t| t.info().group == g && t.info().version == v)
            .collect();
        let mut paths = Map::new();
        for t in &types {
            for (p, item) in paths_for(*t) {
                paths.insert(p, item);
            }
        }
        let doc = json!({
            "openapi": "3.0.0",
            "info": {"title": "wasmk", "version": format!("v{}.{}.0", super::discovery::KUBE_MAJOR, super::discovery::KUBE_MINOR)},
            "paths": paths,
            "components": {"schemas": components(&types, "#/components/schemas/")},
        });
        let bytes = Bytes::from(serde_json::to_vec(&doc).unwrap_or_default());
        let hash = hex::encode(&sha2::Sha256::digest(&bytes)[..16]);
        out.insert(gv_path(g, v), (hash, bytes));
    }
    out
}

impl Cache {
    fn v3_docs(&self, reg: &Registry) -> &BTreeMap<String, (String, Bytes)> {
        self.v3.get_or_init(|| build_v3(reg))
    }

    /// `GET /openapi/v3`.
    pub fn v3_root(&self, reg: &Registry) -> ApiResult<Response<Body>> {
        let paths: Map<String, Value> = self
            .v3_docs(reg)
            .iter()
            .map(|(p, (hash, _))| {
                (
                    p.clone(),
                    json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={hash}")}),
                )
            })
            .collect();
        let b = Bytes::from(serde_json::to_vec(&json!({"paths": paths})).unwrap_or_default());
        Ok(respond(b, None))
    }

    /// `GET /openapi/v3/{gv}`.
    pub fn v3_group(&self, reg: &Registry, gv: &str) -> ApiResult<Response<Body>> {
        let (hash, doc) = self
            .v3_docs(reg)
            .get(gv)
            .ok_or_else(|| ApiError::no_route(&format!("/openapi/v3/{gv}")))?;
        Ok(respond(doc.clone(), Some(hash)))
    }

    /// `GET /openapi/v2` (JSON only).
    pub fn v2(&self, reg: &Registry, headers: &HeaderMap) -> ApiResult<Response<Body>> {
        let accept = headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let json_ok = accept.is_empty()
            || accept.split(',').any(|m| {
                matches!(
                    m.split(';').next().unwrap_or("").trim(),
                    "application/json" | "*/*" | "application/*"
                )
            });
        if !json_ok {
            return Err(ApiError::not_acceptable(
                "the OpenAPI v2 document is served as application/json only",
            ));
        }
        let b = self.v2.get_or_init(|| {
            let types: Vec<&dyn DynResource> = reg.all().collect();
            let mut defs = components(&types, "#/definitions/");
            let mut paths = Map::new();
            for t in &types {
                for (p, mut item) in paths_for(*t) {
                    rewrite_refs(&mut item, "#/components/schemas/", "#/definitions/");
                    paths.insert(p, item);
                }
            }
            let mut defs_v = Value::Object(std::mem::take(&mut defs));
            rewrite_refs(&mut defs_v, "#/components/schemas/", "#/definitions/");
            let doc = json!({
                "swagger": "2.0",
                "info": {"title": "wasmk", "version": format!("v{}.{}.0", super::discovery::KUBE_MAJOR, super::discovery::KUBE_MINOR)},
                "paths": paths,
                "definitions": defs_v,
            });
            Bytes::from(serde_json::to_vec(&doc).unwrap_or_default())
        });
        Ok(respond(b.clone(), None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v3_documents_carry_field_validation_on_patch() {
        let docs = build_v3(Registry::get());
        let (_, apps) = docs.get("apis/apps/v1").expect("apps/v1 document");
        let doc: Value = serde_json::from_slice(apps).unwrap();
        let p = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(p["x-kubernetes-group-version-kind"]["kind"], "Deployment");
        assert!(
            p["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x["name"] == "fieldValidation" && x["in"] == "query")
        );
        let schema = &doc["components"]["schemas"]["io.wasmk.apps.v1.Deployment"];
        assert_eq!(
            schema["x-kubernetes-group-version-kind"][0]["kind"],
            "Deployment"
        );
        assert!(schema["properties"]["spec"].is_object(), "{schema}");
        // Merge keys let kubectl's three-way apply merge container lists.
        let text = serde_json::to_string(&doc["components"]["schemas"]).unwrap();
        assert!(
            text.contains("\"x-kubernetes-patch-merge-key\":\"name\""),
            "no merge keys in schemas"
        );
        assert!(docs.contains_key("api/v1"));
    }
}
