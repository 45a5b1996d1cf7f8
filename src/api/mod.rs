//! The object model: every resource wasmk serves, with Kubernetes JSON field
//! names, defaulting and validation.
//!
//! Each resource is a plain serde struct implementing [`Resource`] (its
//! identity: group, version, kind, plural, scope) and [`ApiObject`] (its
//! behaviour: defaults, validation, table columns, field selectors, status and
//! scale). The API server never matches on concrete types: it goes through the
//! [`registry`], which wraps each type behind a dynamic interface over JSON.
//!
//! Layout:
//! - `meta`: ObjectMeta, OwnerReference, ListMeta, Status, LabelSelector, Time
//! - `quantity`: resource quantities (`100m`, `64Mi`) and IntOrString
//! - `validation`: field errors and the name/label checks every type uses
//! - `selector`: label and field selectors (parsing and matching)
//! - `cron`: cron schedule parsing for CronJobs
//! - `core`, `apps`, `batch`, `autoscaling`, `coordination`, `wasmk`: the resources
//! - `registry`: the table of served resources and the dynamic adapter

pub mod apps;
pub mod autoscaling;
pub mod batch;
pub mod coordination;
pub mod core;
pub mod cron;
pub mod meta;
pub mod quantity;
pub mod registry;
pub mod selector;
pub mod validation;
pub mod wasmk;

pub use meta::*;

use serde::Serialize;
use serde::de::DeserializeOwned;

use validation::FieldErrors;

/// The identity of a resource type, as discovery and the storage layer see it.
pub trait Resource: Serialize + DeserializeOwned + Clone + Default + Send + Sync + 'static {
    /// API group; empty for the core group.
    const GROUP: &'static str;
    const VERSION: &'static str;
    const KIND: &'static str;
    /// Lower-case plural used in URL paths (`pods`, `deployments`).
    const PLURAL: &'static str;
    const NAMESPACED: bool;

    /// `apiVersion` as written in objects: `v1` or `apps/v1`.
    fn api_version() -> String {
        if Self::GROUP.is_empty() {
            Self::VERSION.to_string()
        } else {
            format!("{}/{}", Self::GROUP, Self::VERSION)
        }
    }
    fn meta(&self) -> &ObjectMeta;
    fn meta_mut(&mut self) -> &mut ObjectMeta;
}

/// One column of a `kubectl get` table (`meta.k8s.io/v1` TableColumnDefinition).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableColumn {
    pub name: &'static str,
    /// OpenAPI type: `string`, `integer`, `number`, `boolean`, `date`.
    pub type_: &'static str,
    /// `name` for the NAME column, else usually empty.
    pub format: &'static str,
    pub description: &'static str,
    /// 0 = always shown; 1 = only with `-o wide`.
    pub priority: i32,
}

impl TableColumn {
    pub const fn new(name: &'static str, type_: &'static str, priority: i32) -> Self {
        TableColumn {
            name,
            type_,
            format: "",
            description: "",
            priority,
        }
    }
}

/// How the `scale` subresource reads and writes a resource.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScaleView {
    pub spec_replicas: i32,
    pub status_replicas: i32,
    /// Serialized label selector (`app=web,tier in (a,b)`), as Scale.status.selector.
    pub selector: String,
}

/// The behaviour of a resource type. Every method has the Kubernetes meaning;
/// defaults suit resources without spec/status (ConfigMap, Secret, ...).
pub trait ApiObject: Resource {
    /// Whether `status` is a subresource: updates of the main resource keep
    /// the stored status, updates of `/status` keep everything but status.
    const HAS_STATUS: bool = false;

    /// Fill defaulted fields as the Kubernetes API server does on create and
    /// update (e.g. `restartPolicy: Always`, `replicas: 1`).
    fn set_defaults(&mut self) {}

    /// Validate a new or updated object, returning every bad field.
    fn validate(&self) -> FieldErrors;

    /// Validate an update against the stored object (immutable fields).
    /// Called in addition to [`ApiObject::validate`].
    fn validate_update(&self, _old: &Self) -> FieldErrors {
        FieldErrors::default()
    }

    /// Replace this object's status with `old`'s (main-resource update of a
    /// type with a status subresource), or clear it when `old` is `None`
    /// (create).
    fn keep_status(&mut self, _old: Option<&Self>) {}

    /// Replace everything but status with `old`'s (update through `/status`).
    fn keep_all_but_status(&mut self, old: &Self) {
        let status_only = self.clone();
        *self = old.clone();
        self.keep_status(Some(&status_only));
    }

    /// Whether an update through `/status` may change annotations too
    /// (Kubernetes' Deployment status strategy keeps them, because the
    /// controller records the revision there).
    const STATUS_CARRIES_ANNOTATIONS: bool = false;

    /// Whether the spec differs, which bumps `metadata.generation`.
    fn spec_changed(&self, _old: &Self) -> bool {
        false
    }

    /// Columns for `kubectl get`, exactly as the Kubernetes API server's
    /// table printer gives them, including Name (usually first, with
    /// `format: "name"`) and Age where kubectl shows them. Priority 1 columns
    /// appear only with `-o wide`.
    fn table_columns() -> Vec<TableColumn>;

    /// Cells matching [`ApiObject::table_columns`], one per column. Ages are
    /// rendered relative to `now` as kubectl does (`5s`, `3m2s`, `4h`, `2d`).
    fn table_row(&self, now: chrono::DateTime<chrono::Utc>) -> Vec<serde_json::Value>;

    /// Value of a field selector key other than `metadata.name` and
    /// `metadata.namespace` (e.g. `spec.nodeName`, `status.phase`); `None`
    /// means the field is not supported for this type.
    fn field_value(&self, _field: &str) -> Option<String> {
        None
    }

    /// Read the scale subresource, for types that have one.
    fn scale(&self) -> Option<ScaleView> {
        None
    }

    /// Set `spec.replicas` through the scale subresource. Returns false for
    /// types without one.
    fn set_scale(&mut self, _replicas: i32) -> bool {
        false
    }
}

/// Implements [`Resource`] for a struct with `metadata: ObjectMeta`.
#[macro_export]
macro_rules! impl_resource {
    ($t:ty, $group:expr, $version:expr, $kind:expr, $plural:expr, $namespaced:expr) => {
        impl $crate::api::Resource for $t {
            const GROUP: &'static str = $group;
            const VERSION: &'static str = $version;
            const KIND: &'static str = $kind;
            const PLURAL: &'static str = $plural;
            const NAMESPACED: bool = $namespaced;
            fn meta(&self) -> &$crate::api::ObjectMeta {
                &self.metadata
            }
            fn meta_mut(&mut self) -> &mut $crate::api::ObjectMeta {
                &mut self.metadata
            }
        }
    };
}

/// Formats an age the way kubectl does (`duration.HumanDuration`).
pub fn human_duration(d: chrono::Duration) -> String {
    let secs = d.num_seconds();
    if secs < 0 {
        return "<invalid>".to_string();
    }
    let mins = secs / 60;
    let hours = mins / 60;
    let days = hours / 24;
    let years = days / 365;
    if secs < 120 {
        format!("{secs}s")
    } else if mins < 10 {
        let s = secs % 60;
        if s == 0 {
            format!("{mins}m")
        } else {
            format!("{mins}m{s}s")
        }
    } else if mins < 180 {
        format!("{mins}m")
    } else if hours < 8 {
        let m = mins % 60;
        if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        }
    } else if hours < 48 {
        format!("{hours}h")
    } else if hours < 24 * 8 {
        let h = hours % 24;
        if h == 0 {
            format!("{days}d")
        } else {
            format!("{days}d{h}h")
        }
    } else if days < 365 * 2 {
        format!("{days}d")
    } else if days < 365 * 8 {
        let dd = days % 365;
        if dd == 0 {
            format!("{years}y")
        } else {
            format!("{years}y{dd}d")
        }
    } else {
        format!("{years}y")
    }
}

/// Age cell for a creation timestamp (`<unknown>` when unset).
pub fn age(created: Option<&Time>, now: chrono::DateTime<chrono::Utc>) -> serde_json::Value {
    match created {
        Some(t) => serde_json::Value::String(human_duration(now - t.0)),
        None => serde_json::Value::String("<unknown>".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations_match_kubectl() {
        let s = chrono::Duration::seconds;
        assert_eq!(human_duration(s(5)), "5s");
        assert_eq!(human_duration(s(119)), "119s");
        assert_eq!(human_duration(s(185)), "3m5s");
        assert_eq!(human_duration(s(3600)), "60m");
        assert_eq!(human_duration(s(4 * 3600 + 120)), "4h2m");
        assert_eq!(human_duration(s(20 * 3600)), "20h");
        assert_eq!(human_duration(s(3 * 86400 + 3600)), "3d1h");
        assert_eq!(human_duration(s(30 * 86400)), "30d");
        assert_eq!(human_duration(s(-1)), "<invalid>");
    }
}
