//! The table of served resources and the dynamic adapter over them.
//!
//! The API server works on JSON values and never names a concrete type: it
//! finds a [`ResourceType`] here (by group/version/plural, kind or short
//! name) and calls its [`DynResource`] operations, which decode into the
//! typed struct, run defaulting and validation, and encode back. Every type
//! goes through the same generic adapter, [`Typed`], so the metadata rules
//! (uid, generation, timestamps, status handling) are written once.

use std::marker::PhantomData;
use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::validation::FieldErrors;
use super::{ApiObject, ObjectMeta, ScaleView, TableColumn, Time};
use super::{apps, autoscaling, batch, coordination, core, wasmk};

/// Discovery facts about a resource.
#[derive(Clone, Debug)]
pub struct ResourceInfo {
    /// API group; empty for core.
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub singular: String,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
    /// Subresources served (`status`, `scale`, `log`, `binding`, `eviction`, `finalize`).
    pub subresources: &'static [&'static str],
    /// Whether the object has a spec (and so a generation).
    pub has_generation: bool,
}

impl ResourceInfo {
    /// `apiVersion` as written in objects.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `pods` or `deployments.apps`: the group-qualified resource name used
    /// in messages and storage keys.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// The storage key of one object.
    pub fn key(&self, namespace: &str, name: &str) -> String {
        if self.namespaced {
            format!("{}/{}/{}", self.qualified(), namespace, name)
        } else {
            format!("{}/{}", self.qualified(), name)
        }
    }

    /// The storage key prefix of a list (one namespace, or all).
    pub fn prefix(&self, namespace: Option<&str>) -> String {
        match namespace {
            Some(ns) if self.namespaced && !ns.is_empty() => {
                format!("{}/{}/", self.qualified(), ns)
            }
            _ => format!("{}/", self.qualified()),
        }
    }

    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    /// Verbs for discovery.
    pub fn verbs(&self) -> Vec<&'static str> {
        vec![
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch",
        ]
    }
}

/// How strictly unknown fields are treated (`fieldValidation`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FieldValidation {
    Ignore,
    #[default]
    Warn,
    Strict,
}

/// Which part of an object an update may change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpdateScope {
    /// The main resource: status is kept from the stored object (for types
    /// with a status subresource).
    Main,
    /// The `status` subresource: everything but status is kept.
    Status,
    /// Spec and status together (internal writers such as the binding
    /// handler); system metadata is still kept.
    All,
}

/// Why an object was refused.
#[derive(Debug, Clone, PartialEq)]
pub enum AdmitError {
    /// It does not decode into the type (400).
    Decode(String),
    /// Unknown fields under `fieldValidation=Strict` (400).
    UnknownFields(Vec<String>),
    /// Invalid fields (422).
    Invalid(FieldErrors),
}

/// An admitted object: the canonical JSON to store, and warnings for the
/// client (unknown fields under `fieldValidation=Warn`).
#[derive(Debug, Clone, PartialEq)]
pub struct Admitted {
    pub object: Value,
    pub warnings: Vec<String>,
}

/// The operations the API server needs from a resource type.
pub trait DynResource: Send + Sync {
    fn info(&self) -> &ResourceInfo;

    /// Admits a new object: decode, clear status, default, validate. The
    /// caller has already set name, namespace, uid and timestamps.
    fn admit_create(&self, obj: &Value, fv: FieldValidation) -> Result<Admitted, AdmitError>;

    /// Admits an update of `old` (both as stored JSON): keeps what the scope
    /// does not cover, keeps immutable metadata, defaults, validates, bumps
    /// the generation when the spec changed.
    fn admit_update(
        &self,
        new: &Value,
        old: &Value,
        scope: UpdateScope,
        fv: FieldValidation,
    ) -> Result<Admitted, AdmitError>;

    fn table_columns(&self) -> Vec<TableColumn>;
    /// Table cells of one stored object.
    fn table_row(&self, obj: &Value, now: DateTime<Utc>) -> Result<Vec<Value>, String>;

    /// Whether a field selector may name `field`.
    fn supports_field(&self, field: &str) -> bool;
    /// Value of a field selector field for one object.
    fn field_value(&self, obj: &Value, field: &str) -> Option<String>;

    /// The scale subresource view, when the type has one.
    fn scale(&self, obj: &Value) -> Option<ScaleView>;
    /// `obj` with spec.replicas set, when the type has a scale subresource.
    fn set_scale(&self, obj: &Value, replicas: i32) -> Option<Value>;

    /// JSON schema of the type, for the OpenAPI documents.
    fn schema(&self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema;
}

/// The generic adapter from a typed [`ApiObject`] to [`DynResource`].
pub struct Typed<T> {
    info: ResourceInfo,
    _t: PhantomData<fn() -> T>,
}

impl<T: ApiObject + schemars::JsonSchema> Typed<T> {
    fn new(
        short_names: &'static [&'static str],
        categories: &'static [&'static str],
        subresources: &'static [&'static str],
    ) -> Self {
        let has_generation = serde_json::to_value(T::default())
            .ok()
            .and_then(|v| v.get("spec").map(|_| ()))
            .is_some();
        Typed {
            info: ResourceInfo {
                group: T::GROUP,
                version: T::VERSION,
                kind: T::KIND,
                plural: T::PLURAL,
                singular: T::KIND.to_lowercase(),
                namespaced: T::NAMESPACED,
                short_names,
                categories,
                subresources,
                has_generation,
            },
            _t: PhantomData,
        }
    }

    /// Decodes with paths in error messages, collecting unknown fields.
    fn decode(&self, v: &Value) -> Result<(T, Vec<String>), AdmitError> {
        let mut unknown = Vec::new();
        let mut record = |path: serde_ignored::Path<'_>| unknown.push(render_path(&path));
        let de = serde_ignored::Deserializer::new(v, &mut record);
        let typed: T = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            AdmitError::Decode(format!(
                "{} in version \"{}\" cannot be handled as a {}: {}{}",
                T::KIND,
                T::VERSION,
                T::KIND,
                if path == "." {
                    String::new()
                } else {
                    format!("{path}: ")
                },
                e.inner()
            ))
        })?;
        Ok((typed, unknown))
    }

    fn decode_stored(&self, v: &Value) -> Result<T, String> {
        serde_json::from_value(v.clone())
            .map_err(|e| format!("stored {} does not decode: {e}", T::KIND))
    }

    fn finish(
        &self,
        mut obj: T,
        unknown: Vec<String>,
        fv: FieldValidation,
    ) -> Result<Admitted, AdmitError> {
        let warnings = match fv {
            FieldValidation::Strict if !unknown.is_empty() => {
                return Err(AdmitError::UnknownFields(unknown));
            }
            FieldValidation::Warn => unknown
                .iter()
                .map(|f| format!("unknown field \"{f}\""))
                .collect(),
            _ => Vec::new(),
        };
        let m = obj.meta_mut();
        m.managed_fields.clear();
        let mut v = serde_json::to_value(&obj).map_err(|e| AdmitError::Decode(e.to_string()))?;
        set_type_meta(&mut v, &T::api_version(), T::KIND);
        Ok(Admitted {
            object: v,
            warnings,
        })
    }
}

/// `spec.containers[0].foo` from serde_ignored's path.
fn render_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    fn go(p: &Path<'_>, out: &mut String) {
        match p {
            Path::Root => {}
            Path::Seq { parent, index } => {
                go(parent, out);
                out.push_str(&format!("[{index}]"));
            }
            Path::Map { parent, key } => {
                go(parent, out);
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Path::Some { parent }
            | Path::NewtypeStruct { parent }
            | Path::NewtypeVariant { parent } => go(parent, out),
        }
    }
    let mut s = String::new();
    go(path, &mut s);
    s
}

/// Puts `apiVersion` and `kind` first, as Kubernetes prints objects.
pub fn set_type_meta(v: &mut Value, api_version: &str, kind: &str) {
    if let Value::Object(m) = v {
        let mut out = Map::with_capacity(m.len() + 2);
        out.insert("apiVersion".into(), Value::String(api_version.into()));
        out.insert("kind".into(), Value::String(kind.into()));
        for (k, val) in std::mem::take(m) {
            if k != "apiVersion" && k != "kind" {
                out.insert(k, val);
            }
        }
        *m = out;
    }
}

impl<T: ApiObject + schemars::JsonSchema> DynResource for Typed<T> {
    fn info(&self) -> &ResourceInfo {
        &self.info
    }

    fn admit_create(&self, obj: &Value, fv: FieldValidation) -> Result<Admitted, AdmitError> {
        let (mut t, unknown) = self.decode(obj)?;
        if T::HAS_STATUS {
            t.keep_status(None);
        }
        t.set_defaults();
        let errs = t.validate();
        if !errs.is_empty() {
            return Err(AdmitError::Invalid(errs));
        }
        if self.info.has_generation {
            t.meta_mut().generation = 1;
        }
        self.finish(t, unknown, fv)
    }

    fn admit_update(
        &self,
        new: &Value,
        old: &Value,
        scope: UpdateScope,
        fv: FieldValidation,
    ) -> Result<Admitted, AdmitError> {
        let (mut t, unknown) = self.decode(new)?;
        let old_t = self.decode_stored(old).map_err(AdmitError::Decode)?;
        match scope {
            UpdateScope::Main => {
                if T::HAS_STATUS {
                    t.keep_status(Some(&old_t));
                }
                keep_system_meta(t.meta_mut(), old_t.meta());
            }
            UpdateScope::All => keep_system_meta(t.meta_mut(), old_t.meta()),
            UpdateScope::Status => {
                let annotations = t.meta().annotations.clone();
                t.keep_all_but_status(&old_t);
                // Status writers cannot change metadata (ResetObjectMetaForStatus).
                *t.meta_mut() = old_t.meta().clone();
                if T::STATUS_CARRIES_ANNOTATIONS {
                    t.meta_mut().annotations = annotations;
                }
            }
        }
        t.set_defaults();
        let mut errs = t.validate();
        errs.extend(t.validate_update(&old_t));
        if !errs.is_empty() {
            return Err(AdmitError::Invalid(errs));
        }
        if self.info.has_generation {
            let g = old_t.meta().generation.max(1);
            // Status writes never move the generation.
            let bump = scope != UpdateScope::Status && t.spec_changed(&old_t);
            t.meta_mut().generation = if bump { g + 1 } else { g };
        }
        self.finish(t, unknown, fv)
    }

    fn table_columns(&self) -> Vec<TableColumn> {
        T::table_columns()
    }

    fn table_row(&self, obj: &Value, now: DateTime<Utc>) -> Result<Vec<Value>, String> {
        Ok(self.decode_stored(obj)?.table_row(now))
    }

    fn supports_field(&self, field: &str) -> bool {
        matches!(field, "metadata.name" | "metadata.namespace")
            || T::default().field_value(field).is_some()
    }

    fn field_value(&self, obj: &Value, field: &str) -> Option<String> {
        match field {
            "metadata.name" => Some(obj.pointer("/metadata/name")?.as_str()?.to_string()),
            "metadata.namespace" => Some(
                obj.pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            ),
            _ => {
                // Cheap path: a plain JSON path with the type's default when absent.
                let ptr = format!("/{}", field.replace('.', "/"));
                match obj.pointer(&ptr) {
                    Some(Value::String(s)) => Some(s.clone()),
                    Some(Value::Bool(b)) => Some(b.to_string()),
                    Some(Value::Number(n)) => Some(n.to_string()),
                    Some(_) => self.decode_stored(obj).ok()?.field_value(field),
                    None => T::default().field_value(field),
                }
            }
        }
    }

    fn scale(&self, obj: &Value) -> Option<ScaleView> {
        self.decode_stored(obj).ok()?.scale()
    }

    fn set_scale(&self, obj: &Value, replicas: i32) -> Option<Value> {
        let mut t = self.decode_stored(obj).ok()?;
        if !t.set_scale(replicas) {
            return None;
        }
        let mut v = serde_json::to_value(&t).ok()?;
        set_type_meta(&mut v, &T::api_version(), T::KIND);
        Some(v)
    }

    fn schema(&self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        generator.subschema_for::<T>()
    }
}

/// Metadata the system owns: an update cannot change it.
fn keep_system_meta(new: &mut ObjectMeta, old: &ObjectMeta) {
    new.uid = old.uid.clone();
    new.namespace = old.namespace.clone();
    new.creation_timestamp = old.creation_timestamp;
    new.deletion_timestamp = old.deletion_timestamp;
    new.deletion_grace_period_seconds = old.deletion_grace_period_seconds;
    new.generation = old.generation;
    new.generate_name = old.generate_name.clone();
}

/// Sets the metadata of a new object: uid, creation time, no deletion state.
pub fn prepare_create_meta(meta: &mut ObjectMeta, uid: String, now: Time) {
    meta.uid = uid;
    meta.creation_timestamp = Some(now);
    meta.deletion_timestamp = None;
    meta.deletion_grace_period_seconds = None;
    meta.resource_version.clear();
    meta.managed_fields.clear();
}

/// All served resources.
pub struct Registry {
    types: Vec<Box<dyn DynResource>>,
}

impl Registry {
    /// The process-wide registry.
    pub fn get() -> &'static Registry {
        static REG: OnceLock<Registry> = OnceLock::new();
        REG.get_or_init(Registry::build)
    }

    fn build() -> Registry {
        const NONE: &[&str] = &[];
        const ALL: &[&str] = &["all"];
        let types: Vec<Box<dyn DynResource>> = vec![
            Box::new(Typed::<core::Pod>::new(
                &["po"],
                ALL,
                &["status", "log", "binding", "eviction"],
            )),
            Box::new(Typed::<core::Service>::new(&["svc"], ALL, &["status"])),
            Box::new(Typed::<core::Endpoints>::new(&["ep"], NONE, NONE)),
            Box::new(Typed::<core::Namespace>::new(
                &["ns"],
                NONE,
                &["status", "finalize"],
            )),
            Box::new(Typed::<core::Node>::new(&["no"], NONE, &["status"])),
            Box::new(Typed::<core::ConfigMap>::new(&["cm"], NONE, NONE)),
            Box::new(Typed::<core::Secret>::new(NONE, NONE, NONE)),
            Box::new(Typed::<core::ResourceQuota>::new(
                &["quota"],
                NONE,
                &["status"],
            )),
            Box::new(Typed::<core::LimitRange>::new(&["limits"], NONE, NONE)),
            Box::new(Typed::<core::Event>::new(&["ev"], NONE, NONE)),
            Box::new(Typed::<core::ReplicationController>::new(
                &["rc"],
                ALL,
                &["status", "scale"],
            )),
            Box::new(Typed::<apps::Deployment>::new(
                &["deploy"],
                ALL,
                &["status", "scale"],
            )),
            Box::new(Typed::<apps::ReplicaSet>::new(
                &["rs"],
                ALL,
                &["status", "scale"],
            )),
            Box::new(Typed::<apps::DaemonSet>::new(&["ds"], ALL, &["status"])),
            Box::new(Typed::<apps::ControllerRevision>::new(NONE, NONE, NONE)),
            Box::new(Typed::<batch::Job>::new(NONE, ALL, &["status"])),
            Box::new(Typed::<batch::CronJob>::new(&["cj"], ALL, &["status"])),
            Box::new(Typed::<autoscaling::HorizontalPodAutoscaler>::new(
                &["hpa"],
                ALL,
                &["status"],
            )),
            Box::new(Typed::<coordination::Lease>::new(NONE, NONE, NONE)),
            Box::new(Typed::<wasmk::Module>::new(
                &["mod", "wasm"],
                NONE,
                &["status"],
            )),
        ];
        Registry { types }
    }

    pub fn all(&self) -> impl Iterator<Item = &dyn DynResource> {
        self.types.iter().map(|t| t.as_ref())
    }

    /// By group, version and plural (the URL form).
    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<&dyn DynResource> {
        self.all().find(|t| {
            let i = t.info();
            i.group == group && i.version == version && i.plural == plural
        })
    }

    /// By group and kind (the object form).
    pub fn by_kind(&self, group: &str, kind: &str) -> Option<&dyn DynResource> {
        self.all()
            .find(|t| t.info().group == group && t.info().kind == kind)
    }

    /// By what a user types: plural, singular, short name, kind, optionally
    /// qualified with a group (`deployments.apps`, `deploy`, `Deployment`).
    pub fn resolve(&self, name: &str) -> Option<&dyn DynResource> {
        let lower = name.to_lowercase();
        let (base, group) = match lower.split_once('.') {
            Some((b, g)) => (b.to_string(), Some(g.to_string())),
            None => (lower.clone(), None),
        };
        self.all().find(|t| {
            let i = t.info();
            let group_ok = group
                .as_deref()
                .is_none_or(|g| g == i.group || (g == "core" && i.group.is_empty()));
            group_ok
                && (i.plural == base
                    || i.singular == base
                    || i.kind.eq_ignore_ascii_case(&base)
                    || i.short_names.contains(&base.as_str()))
        })
    }

    /// Served group versions other than core `v1`, in discovery order.
    pub fn group_versions(&self) -> Vec<(&'static str, &'static str)> {
        let mut out: Vec<(&'static str, &'static str)> = Vec::new();
        for t in self.all() {
            let i = t.info();
            if !i.group.is_empty() && !out.contains(&(i.group, i.version)) {
                out.push((i.group, i.version));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn reg() -> &'static Registry {
        Registry::get()
    }

    #[test]
    fn lookup_by_every_name_users_type() {
        let r = reg();
        for n in ["pods", "pod", "po", "Pod", "pods.core"] {
            assert_eq!(r.resolve(n).unwrap().info().kind, "Pod", "{n}");
        }
        for n in ["deployments", "deploy", "deployments.apps", "Deployment"] {
            assert_eq!(r.resolve(n).unwrap().info().kind, "Deployment", "{n}");
        }
        assert!(r.resolve("deployments.batch").is_none());
        assert!(r.resolve("widgets").is_none());
        assert_eq!(
            r.find("apps", "v1", "replicasets").unwrap().info().kind,
            "ReplicaSet"
        );
        assert_eq!(
            r.by_kind("", "ConfigMap").unwrap().info().plural,
            "configmaps"
        );
    }

    #[test]
    fn keys_and_prefixes() {
        let pods = reg().resolve("pods").unwrap().info();
        assert_eq!(pods.key("default", "web"), "pods/default/web");
        assert_eq!(pods.prefix(Some("default")), "pods/default/");
        assert_eq!(pods.prefix(None), "pods/");
        let deploy = reg().resolve("deploy").unwrap().info();
        assert_eq!(deploy.key("a", "b"), "deployments.apps/a/b");
        let nodes = reg().resolve("nodes").unwrap().info();
        assert_eq!(nodes.key("", "n1"), "nodes/n1");
        assert_eq!(nodes.prefix(Some("ignored")), "nodes/");
        assert!(!reg().resolve("configmaps").unwrap().info().has_generation);
        assert!(deploy.has_generation);
    }

    #[test]
    fn create_defaults_validates_and_reports_unknown_fields() {
        let cm = reg().resolve("configmaps").unwrap();
        let obj = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "d"},
                          "data": {"k": "v"}, "bogus": 1, "metadata2": {}});
        let a = cm.admit_create(&obj, FieldValidation::Warn).unwrap();
        assert_eq!(a.warnings.len(), 2);
        assert!(a.object.get("bogus").is_none());
        assert_eq!(a.object["data"]["k"], "v");
        match cm.admit_create(&obj, FieldValidation::Strict) {
            Err(AdmitError::UnknownFields(f)) => assert_eq!(f, vec!["bogus", "metadata2"]),
            other => panic!("{other:?}"),
        }
        let bad = json!({"metadata": {"name": "Not_Valid"}, "data": {}});
        assert!(matches!(
            cm.admit_create(&bad, FieldValidation::Warn),
            Err(AdmitError::Invalid(_))
        ));
    }

    #[test]
    fn nested_unknown_fields_have_paths() {
        let pods = reg().resolve("pods").unwrap();
        let obj = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i", "colour": "red"}]}});
        match pods.admit_create(&obj, FieldValidation::Strict) {
            Err(AdmitError::UnknownFields(f)) => assert_eq!(f, vec!["spec.containers[0].colour"]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn type_errors_name_the_field() {
        let d = reg().resolve("deployments").unwrap();
        let obj = json!({"metadata": {"name": "w"}, "spec": {"replicas": "three"}});
        match d.admit_create(&obj, FieldValidation::Warn) {
            Err(AdmitError::Decode(m)) => {
                assert!(m.contains("spec.replicas"), "{m}");
                assert!(
                    m.starts_with("Deployment in version \"v1\" cannot be handled as a Deployment"),
                    "{m}"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn updates_keep_status_and_bump_generation_on_spec_change() {
        let d = reg().resolve("deployments").unwrap();
        let base = json!({"metadata": {"name": "w", "namespace": "d", "uid": "u1"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"a": "b"}},
                     "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "m:1"}]}}}});
        let created = d
            .admit_create(&base, FieldValidation::Strict)
            .unwrap()
            .object;
        assert_eq!(created["metadata"]["generation"], 1);
        let mut stored = created.clone();
        stored["status"] = json!({"replicas": 1});
        let mut changed = created.clone();
        changed["spec"]["replicas"] = json!(3);
        changed["metadata"]["uid"] = json!("forged");
        changed["status"] = json!({"replicas": 99});
        let up = d
            .admit_update(
                &changed,
                &stored,
                UpdateScope::Main,
                FieldValidation::Strict,
            )
            .unwrap()
            .object;
        assert_eq!(up["metadata"]["generation"], 2);
        assert_eq!(up["metadata"]["uid"], "u1");
        assert_eq!(up["status"]["replicas"], 1);
        // A status update changes only status.
        let st = d
            .admit_update(
                &changed,
                &stored,
                UpdateScope::Status,
                FieldValidation::Strict,
            )
            .unwrap()
            .object;
        assert_eq!(st["status"]["replicas"], 99);
        assert_eq!(st["spec"]["replicas"], 1);
        assert_eq!(st["metadata"]["generation"], 1);
    }

    #[test]
    fn field_values_from_json_and_defaults() {
        let pods = reg().resolve("pods").unwrap();
        let p = json!({"metadata": {"name": "p", "namespace": "ns"}, "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}});
        assert_eq!(pods.field_value(&p, "spec.nodeName").as_deref(), Some("n1"));
        assert_eq!(
            pods.field_value(&p, "status.phase").as_deref(),
            Some("Running")
        );
        assert_eq!(
            pods.field_value(&p, "metadata.namespace").as_deref(),
            Some("ns")
        );
        assert!(pods.supports_field("spec.nodeName"));
        assert!(!pods.supports_field("spec.bogus"));
        let unbound = json!({"metadata": {"name": "p"}});
        assert_eq!(
            pods.field_value(&unbound, "spec.nodeName").as_deref(),
            Some("")
        );
    }

    #[test]
    fn tables_render_for_every_type() {
        let now = Utc::now();
        for t in reg().all() {
            let i = t.info();
            let obj = json!({"apiVersion": i.api_version(), "kind": i.kind, "metadata": {"name": "x", "namespace": "d"}});
            let cols = t.table_columns();
            assert!(!cols.is_empty(), "{}", i.kind);
            let row = t.table_row(&obj, now).unwrap();
            assert_eq!(row.len(), cols.len(), "{}", i.kind);
        }
    }
}

#[cfg(test)]
mod fuzz {
    //! Random bodies through every type's decoder and admission: an error
    //! or an admitted object, never a panic.
    use super::*;
    use proptest::prelude::*;

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(|f| serde_json::Number::from_f64(f)
                .map(Value::Number)
                .unwrap_or(Value::Null)),
            "[a-zA-Z0-9:/._ -]{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(5, 64, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(
                    prop_oneof![
                        Just("metadata".to_string()),
                        Just("spec".to_string()),
                        Just("status".to_string()),
                        Just("name".to_string()),
                        Just("containers".to_string()),
                        Just("replicas".to_string()),
                        Just("template".to_string()),
                        Just("selector".to_string()),
                        Just("labels".to_string()),
                        Just("data".to_string()),
                        "[a-zA-Z]{1,8}",
                    ],
                    inner,
                    0..5
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn admission_never_panics(v in json_value(), old in json_value()) {
            for t in Registry::get().all() {
                let _ = t.admit_create(&v, FieldValidation::Strict);
                let _ = t.admit_create(&v, FieldValidation::Warn);
                let _ = t.admit_update(&v, &old, UpdateScope::Main, FieldValidation::Warn);
                let _ = t.admit_update(&v, &old, UpdateScope::Status, FieldValidation::Ignore);
                let _ = t.table_row(&v, Utc::now());
                let _ = t.field_value(&v, "spec.nodeName");
                let _ = t.scale(&v);
                let _ = t.set_scale(&v, 3);
            }
        }

        #[test]
        fn admission_of_mutated_valid_objects_never_panics(
            replicas in any::<i64>(), name in "[a-zA-Z0-9.-]{0,70}", image in ".{0,20}",
            cpu in "[0-9a-zA-Z.]{0,8}", port in any::<i64>()
        ) {
            let d = serde_json::json!({"metadata": {"name": name}, "spec": {"replicas": replicas,
                "selector": {"matchLabels": {"a": "b"}},
                "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": image,
                    "ports": [{"containerPort": port}], "resources": {"limits": {"cpu": cpu, "memory": cpu}}}]}}}});
            for kind in ["deployments", "replicasets", "daemonsets", "jobs", "pods"] {
                let t = Registry::get().resolve(kind).unwrap();
                let _ = t.admit_create(&d, FieldValidation::Strict);
            }
        }
    }
}
