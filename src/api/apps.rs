//! `apps/v1`: Deployment, ReplicaSet, DaemonSet and ControllerRevision,
//! plus the pod-template helpers the workload types share (also used by
//! `batch`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::core::{PodSpec, PodTemplateSpec};
use super::meta::{LabelSelector, ObjectMeta, Time, is_false, is_zero_i32, is_zero_i64};
use super::quantity::IntOrString;
use super::selector::{LabelSelectorExpr, validate_label_selector};
use super::validation::{FieldErrors, dns1123_subdomain, validate_object_meta};
use super::{ApiObject, ScaleView, TableColumn, age};

/// `spec.strategy.type` of a Deployment that replaces pods gradually.
pub const ROLLING_UPDATE: &str = "RollingUpdate";
/// `spec.strategy.type` of a Deployment that kills all pods first.
pub const RECREATE: &str = "Recreate";
/// `spec.updateStrategy.type` of a DaemonSet updated only when pods are deleted.
pub const ON_DELETE: &str = "OnDelete";
const DEFAULT_REVISION_HISTORY_LIMIT: i32 = 10;
const DEFAULT_PROGRESS_DEADLINE_SECONDS: i32 = 600;

// ---------------------------------------------------------------------------
// Shared workload helpers
// ---------------------------------------------------------------------------

/// Fills a workload's pod template as the API server's pod defaulting does.
pub(crate) fn default_pod_template(t: &mut PodTemplateSpec) {
    t.set_defaults();
}

/// Validates a workload's pod template under `path` (`spec.template`): the
/// pod template checks of `core`, then the restart policies the workload
/// allows.
pub(crate) fn validate_pod_template(
    t: &PodTemplateSpec,
    path: &str,
    restart_policies: &[&str],
    errs: &mut FieldErrors,
) {
    super::core::validate_pod_template(t, path, errs);
    let policy = t.spec.restart_policy.as_str();
    // A value no pod accepts is already reported by the pod spec checks.
    let pod_policy = ["Always", "OnFailure", "Never"].contains(&policy);
    if pod_policy && !restart_policies.contains(&policy) {
        errs.not_supported(
            format!("{path}.spec.restartPolicy"),
            policy,
            restart_policies,
        );
    }
}

/// The pod template checks of ReplicaSets, Deployments and DaemonSets.
fn validate_replica_template(t: &PodTemplateSpec, path: &str, errs: &mut FieldErrors) {
    validate_pod_template(t, path, &["Always"], errs);
    if t.spec.active_deadline_seconds.is_some() {
        errs.forbidden(
            format!("{path}.spec.activeDeadlineSeconds"),
            "activeDeadlineSeconds in ReplicaSet is not Supported",
        );
    }
}

/// Checks a workload selector: present, valid, not empty, and matching the
/// template's labels. `kind` names the workload in the message.
pub(crate) fn validate_workload_selector(
    selector: Option<&LabelSelector>,
    template: &PodTemplateSpec,
    kind: &str,
    errs: &mut FieldErrors,
) {
    let Some(sel) = selector else {
        errs.required("spec.selector", "");
        return;
    };
    validate_label_selector(sel, "spec.selector", errs);
    if sel.match_labels.is_empty() && sel.match_expressions.is_empty() {
        errs.invalid(
            "spec.selector",
            sel,
            format!("empty selector is invalid for {kind}"),
        );
        return;
    }
    if let Ok(expr) = LabelSelectorExpr::from_label_selector(sel)
        && !expr.matches(&template.metadata.labels)
    {
        errs.invalid(
            "spec.template.metadata.labels",
            &template.metadata.labels,
            "`selector` does not match template `labels`",
        );
    }
}

/// Checks a non-negative int or a percentage (`"25%"`).
pub(crate) fn validate_int_or_percent(v: &IntOrString, path: &str, errs: &mut FieldErrors) {
    match v {
        IntOrString::Int(i) if *i < 0 => {
            errs.invalid(path, i, "must be greater than or equal to 0");
        }
        IntOrString::Int(_) => {}
        IntOrString::String(s) => {
            if percent(s).is_none() {
                errs.invalid(
                    path,
                    s,
                    "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')",
                );
            }
        }
    }
}

/// The number of a `"N%"` string.
fn percent(s: &str) -> Option<i64> {
    let digits = s.strip_suffix('%')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The raw number of an int or a percentage, for zero and 100% checks.
fn int_or_percent_number(v: &IntOrString) -> Option<i64> {
    match v {
        IntOrString::Int(i) => Some(i64::from(*i)),
        IntOrString::String(s) => percent(s),
    }
}

/// Validates `maxUnavailable`/`maxSurge` of a rolling update under `path`.
fn validate_rolling(
    max_unavailable: Option<&IntOrString>,
    max_surge: Option<&IntOrString>,
    path: &str,
    errs: &mut FieldErrors,
) {
    for (name, v) in [("maxUnavailable", max_unavailable), ("maxSurge", max_surge)] {
        if let Some(v) = v {
            let p = format!("{path}.{name}");
            validate_int_or_percent(v, &p, errs);
            if let IntOrString::String(s) = v
                && percent(s).is_some_and(|n| n > 100)
            {
                errs.invalid(p, s, "must not be greater than 100%");
            }
        }
    }
    let zero = |v: Option<&IntOrString>| v.and_then(int_or_percent_number) == Some(0);
    if zero(max_unavailable) && zero(max_surge) {
        let shown = max_unavailable.map(|v| v.to_string()).unwrap_or_default();
        errs.invalid(
            format!("{path}.maxUnavailable"),
            shown,
            "may not be 0 when `maxSurge` is 0",
        );
    }
}

fn nonnegative(v: i64, path: &str, errs: &mut FieldErrors) {
    if v < 0 {
        errs.invalid(path, v, "must be greater than or equal to 0");
    }
}

/// `kubectl get -o wide` Containers and Images cells of a pod spec.
pub(crate) fn containers_cells(spec: &PodSpec) -> (Value, Value) {
    let (names, images) = super::core::container_cells(&spec.containers);
    (names.into(), images.into())
}

/// The Selector cell: the canonical string, `<none>` when empty or absent.
pub(crate) fn selector_cell(sel: Option<&LabelSelector>) -> Value {
    let text = match sel.map(LabelSelectorExpr::from_label_selector) {
        None => String::new(),
        Some(Ok(expr)) => expr.to_string(),
        Some(Err(_)) => "<error>".into(),
    };
    if text.is_empty() {
        "<none>".into()
    } else {
        text.into()
    }
}

/// The selector string a Scale reports; empty when there is none.
fn scale_selector(sel: Option<&LabelSelector>) -> String {
    sel.and_then(|s| LabelSelectorExpr::from_label_selector(s).ok())
        .map(|e| e.to_string())
        .unwrap_or_default()
}

fn name_column() -> TableColumn {
    TableColumn {
        format: "name",
        ..TableColumn::new("Name", "string", 0)
    }
}

fn wide_columns() -> [TableColumn; 3] {
    [
        TableColumn::new("Containers", "string", 1),
        TableColumn::new("Images", "string", 1),
        TableColumn::new("Selector", "string", 1),
    ]
}

fn immutable<T: PartialEq + std::fmt::Debug>(new: &T, old: &T, path: &str, errs: &mut FieldErrors) {
    if new != old {
        errs.invalid(path, new, "field is immutable");
    }
}

// ---------------------------------------------------------------------------
// Deployment
// ---------------------------------------------------------------------------

/// `apps/v1` Deployment.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Deployment {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: DeploymentSpec,
    #[serde(default)]
    pub status: DeploymentStatus,
}

/// `DeploymentSpec`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentSpec {
    /// Defaults to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    #[serde(default)]
    pub template: PodTemplateSpec,
    #[serde(default)]
    pub strategy: DeploymentStrategy,
    #[serde(default, skip_serializing_if = "is_zero_i32")]
    pub min_ready_seconds: i32,
    /// Defaults to 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision_history_limit: Option<i32>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub paused: bool,
    /// Defaults to 600.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_deadline_seconds: Option<i32>,
}

/// `DeploymentStrategy`: RollingUpdate (default) or Recreate.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentStrategy {
    #[serde(rename = "type", default, skip_serializing_if = "String::is_empty")]
    pub type_: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolling_update: Option<RollingUpdateDeployment>,
}

/// `RollingUpdateDeployment`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RollingUpdateDeployment {
    /// Defaults to 25%.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrString>,
    /// Defaults to 25%.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_surge: Option<IntOrString>,
}

/// `DeploymentStatus`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentStatus {
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub observed_generation: i64,
    #[serde(default, skip_serializing_if = "is_zero_i32")]
    pub replicas: i32,
    #[serde(default, skip_serializing_if = "is_zero_i32")]
    pub updated_replicas: i32,
    #[serde(default, skip_serializing_if = "is_zero_i32")]
    pub ready_replicas: i32,
    #[serde(default, skip_serializing_if = "is_zero_i32")]
    pub available_replicas: i32,
    #[serde(default, skip_serializing_if = "is_zero_i32")]
    pub unavailable_replicas: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminating_replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<DeploymentCondition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collision_count: Option<i32>,
}

/// `DeploymentCondition` (Available, Progressing, ReplicaFailure).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentCondition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

crate::impl_resource!(Deployment, "apps", "v1", "Deployment", "deployments", true);

impl Deployment {
    /// `spec.replicas`, 1 when unset.
    pub fn replicas(&self) -> i32 {
        self.spec.replicas.unwrap_or(1)
    }

    /// Resolves `maxSurge` (rounded up) and `maxUnavailable` (rounded down)
    /// against `spec.replicas`, as the Deployment controller does; when both
    /// come out zero, one pod may be unavailable so a rollout can progress.
    /// Recreate deployments give `(0, 0)`.
    pub fn surge_and_unavailable(&self) -> Result<(i32, i32), String> {
        let Some(ru) = self
            .spec
            .strategy
            .rolling_update
            .as_ref()
            .filter(|_| self.spec.strategy.type_ != RECREATE)
        else {
            return Ok((0, 0));
        };
        let quarter = IntOrString::String("25%".into());
        let replicas = self.replicas();
        let surge = ru
            .max_surge
            .as_ref()
            .unwrap_or(&quarter)
            .scaled_value(replicas, true)?;
        let unavailable = ru
            .max_unavailable
            .as_ref()
            .unwrap_or(&quarter)
            .scaled_value(replicas, false)?;
        if surge == 0 && unavailable == 0 {
            return Ok((0, 1));
        }
        Ok((surge, unavailable))
    }
}

impl ApiObject for Deployment {
    const HAS_STATUS: bool = true;
    const STATUS_CARRIES_ANNOTATIONS: bool = true;

    fn set_defaults(&mut self) {
        let s = &mut self.spec;
        s.replicas.get_or_insert(1);
        if s.strategy.type_.is_empty() {
            s.strategy.type_ = ROLLING_UPDATE.into();
        }
        if s.strategy.type_ == ROLLING_UPDATE {
            let ru = s
                .strategy
                .rolling_update
                .get_or_insert_with(Default::default);
            ru.max_unavailable
                .get_or_insert_with(|| IntOrString::String("25%".into()));
            ru.max_surge
                .get_or_insert_with(|| IntOrString::String("25%".into()));
        }
        s.revision_history_limit
            .get_or_insert(DEFAULT_REVISION_HISTORY_LIMIT);
        s.progress_deadline_seconds
            .get_or_insert(DEFAULT_PROGRESS_DEADLINE_SECONDS);
        default_pod_template(&mut s.template);
    }

    fn validate(&self) -> FieldErrors {
        let mut errs = FieldErrors::default();
        validate_object_meta(&self.metadata, dns1123_subdomain, &mut errs);
        let s = &self.spec;
        if let Some(r) = s.replicas {
            nonnegative(r.into(), "spec.replicas", &mut errs);
        }
        validate_workload_selector(s.selector.as_ref(), &s.template, "deployment", &mut errs);
        validate_replica_template(&s.template, "spec.template", &mut errs);
        match s.strategy.type_.as_str() {
            RECREATE => {
                if s.strategy.rolling_update.is_some() {
                    errs.forbidden(
                        "spec.strategy.rollingUpdate",
                        "may not be specified when strategy `type` is 'Recreate'",
                    );
                }
            }
            ROLLING_UPDATE => match &s.strategy.rolling_update {
                None => errs.required(
                    "spec.strategy.rollingUpdate",
                    "this should be defaulted and never be nil",
                ),
                Some(ru) => validate_rolling(
                    ru.max_unavailable.as_ref(),
                    ru.max_surge.as_ref(),
                    "spec.strategy.rollingUpdate",
                    &mut errs,
                ),
            },
            other => errs.not_supported("spec.strategy.type", other, &[RECREATE, ROLLING_UPDATE]),
        }
        nonnegative(
            s.min_ready_seconds.into(),
            "spec.minReadySeconds",
            &mut errs,
        );
        if let Some(l) = s.revision_history_limit {
            nonnegative(l.into(), "spec.revisionHistoryLimit", &mut errs);
        }
        if let Some(p) = s.progress_deadline_seconds {
            nonnegative(p.into(), "spec.progressDeadlineSeconds", &mut errs);
            if p <= s.min_ready_seconds {
                errs.invalid(
                    "spec.progressDeadlineSeconds",
                    p,
                    "must be greater than minReadySeconds",
                );
            }
        }
        errs
    }

    fn validate_update(&self, old: &Self) -> FieldErrors {
        let mut errs = FieldErrors::default();
        immutable(
            &self.spec.selector,
            &old.spec.selector,
            "spec.selector",
            &mut errs,
        );
        errs
    }

    fn keep_status(&mut self, old: Option<&Self>) {
        self.status = old.map(|o| o.status.clone()).unwrap_or_default();
    }

    /// Annotations count too: Kubernetes bumps a Deployment's generation on
    /// annotation changes (the rollback annotations live there).
    fn spec_changed(&self, old: &Self) -> bool {
        self.spec != old.spec || self.metadata.annotations != old.metadata.annotations
    }

    fn table_columns() -> Vec<TableColumn> {
        let mut cols = vec![
            name_column(),
            TableColumn::new("Ready", "string", 0),
            TableColumn::new("Up-to-date", "integer", 0),
            TableColumn::new("Available", "integer", 0),
            TableColumn::new("Age", "string", 0),
        ];
        cols.extend(wide_columns());
        cols
    }

    fn table_row(&self, now: chrono::DateTime<chrono::Utc>) -> Vec<Value> {
        let st = &self.status;
        let (containers, images) = containers_cells(&self.spec.template.spec);
        vec![
            self.metadata.name.clone().into(),
            format!("{}/{}", st.ready_replicas, self.replicas()).into(),
            st.updated_replicas.into(),
            st.available_replicas.into(),
            age(self.metadata.creation_timestamp.as_ref(), now),
            containers,
            images,
            selector_cell(self.spec.selector.as_ref()),
        ]
    }

    fn scale(&self) -> Option<ScaleView> {
        Some(ScaleView {
            spec_replicas: self.replicas(),
            status_replicas: self.status.replicas,
            selector: scale_selector(self.spec.selector.as_ref()),
        })
    }

    fn set_scale(&mut self, replicas: i32) -> bool {
        self.spec.replicas = Some(replicas);
        true
    }
}

// ---------------------------------------------------------------------------
// ReplicaSet
// ---------------------------------------------------------------------------

/// `apps/v1` ReplicaSet.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaSet {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: ReplicaSetSpec,
    #[serde(default)]
    pub status: ReplicaSetStatus,
}

/// `ReplicaSetSpec`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaSetSpec {
    /// Defaults to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "is_zero_i32")]
    pub min_ready_seconds: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    #[serde(default)]
    pub template: PodTemplateSpec,
}

/// `ReplicaSetStatus`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaSetStatus {
    #[serde(default)]
    pub replicas: i32,
    #[serde(default, skip_serializing_if = "is_zero_i32")]
    pub fully_labeled_replicas: i32,
    #[serde(default, skip_serializing_if = "is_zero_i32")]
    pub ready_replicas: i32,
    #[serde(default, skip_serializing_if = "is_zero_i32")]
    pub available_replicas: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminating_replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub observed_generation: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<WorkloadCondition>,
}

/// The condition shape of ReplicaSets and DaemonSets (`ReplicaSetCondition`,
/// `DaemonSetCondition`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadCondition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

crate::impl_resource!(ReplicaSet, "apps", "v1", "ReplicaSet", "replicasets", true);

impl ReplicaSet {
    /// `spec.replicas`, 1 when unset.
    pub fn replicas(&self) -> i32 {
        self.spec.replicas.unwrap_or(1)
    }
}

impl ApiObject for ReplicaSet {
    const HAS_STATUS: bool = true;

    fn set_defaults(&mut self) {
        self.spec.replicas.get_or_insert(1);
        default_pod_template(&mut self.spec.template);
    }

    fn validate(&self) -> FieldErrors {
        let mut errs = FieldErrors::default();
        validate_object_meta(&self.metadata, dns1123_subdomain, &mut errs);
        let s = &self.spec;
        if let Some(r) = s.replicas {
            nonnegative(r.into(), "spec.replicas", &mut errs);
        }
        nonnegative(
            s.min_ready_seconds.into(),
            "spec.minReadySeconds",
            &mut errs,
        );
        // Kubernetes' message says "deployment" for ReplicaSets too.
        validate_workload_selector(s.selector.as_ref(), &s.template, "deployment", &mut errs);
        validate_replica_template(&s.template, "spec.template", &mut errs);
        errs
    }

    fn validate_update(&self, old: &Self) -> FieldErrors {
        let mut errs = FieldErrors::default();
        immutable(
            &self.spec.selector,
            &old.spec.selector,
            "spec.selector",
            &mut errs,
        );
        errs
    }

    fn keep_status(&mut self, old: Option<&Self>) {
        self.status = old.map(|o| o.status.clone()).unwrap_or_default();
    }

    fn spec_changed(&self, old: &Self) -> bool {
        self.spec != old.spec
    }

    fn table_columns() -> Vec<TableColumn> {
        let mut cols = vec![
            name_column(),
            TableColumn::new("Desired", "integer", 0),
            TableColumn::new("Current", "integer", 0),
            TableColumn::new("Ready", "integer", 0),
            TableColumn::new("Age", "string", 0),
        ];
        cols.extend(wide_columns());
        cols
    }

    fn table_row(&self, now: chrono::DateTime<chrono::Utc>) -> Vec<Value> {
        let (containers, images) = containers_cells(&self.spec.template.spec);
        vec![
            self.metadata.name.clone().into(),
            self.replicas().into(),
            self.status.replicas.into(),
            self.status.ready_replicas.into(),
            age(self.metadata.creation_timestamp.as_ref(), now),
            containers,
            images,
            selector_cell(self.spec.selector.as_ref()),
        ]
    }

    fn field_value(&self, field: &str) -> Option<String> {
        match field {
            "status.replicas" => Some(self.status.replicas.to_string()),
            _ => None,
        }
    }

    fn scale(&self) -> Option<ScaleView> {
        Some(ScaleView {
            spec_replicas: self.replicas(),
            status_replicas: self.status.replicas,
            selector: scale_selector(self.spec.selector.as_ref()),
        })
    }

    fn set_scale(&mut self, replicas: i32) -> bool {
        self.spec.replicas = Some(replicas);
        true
    }
}

// ---------------------------------------------------------------------------
// DaemonSet
// ---------------------------------------------------------------------------

/// `apps/v1` DaemonSet.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DaemonSet {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: DaemonSetSpec,
    #[serde(default)]
    pub status: DaemonSetStatus,
}

/// `DaemonSetSpec`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DaemonSetSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    #[serde(default)]
    pub template: PodTemplateSpec,
    #[serde(default)]
    pub update_strategy: DaemonSetUpdateStrategy,
    #[serde(default, skip_serializing_if = "is_zero_i32")]
    pub min_ready_seconds: i32,
    /// Defaults to 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision_history_limit: Option<i32>,
}

/// `DaemonSetUpdateStrategy`: RollingUpdate (default) or OnDelete.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DaemonSetUpdateStrategy {
    #[serde(rename = "type", default, skip_serializing_if = "String::is_empty")]
    pub type_: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolling_update: Option<RollingUpdateDaemonSet>,
}

/// `RollingUpdateDaemonSet`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RollingUpdateDaemonSet {
    /// Defaults to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrString>,
    /// Defaults to 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_surge: Option<IntOrString>,
}

/// `DaemonSetStatus`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DaemonSetStatus {
    #[serde(default)]
    pub current_number_scheduled: i32,
    #[serde(default)]
    pub number_misscheduled: i32,
    #[serde(default)]
    pub desired_number_scheduled: i32,
    #[serde(default)]
    pub number_ready: i32,
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub observed_generation: i64,
    #[serde(default, skip_serializing_if = "is_zero_i32")]
    pub updated_number_scheduled: i32,
    #[serde(default, skip_serializing_if = "is_zero_i32")]
    pub number_available: i32,
    #[serde(default, skip_serializing_if = "is_zero_i32")]
    pub number_unavailable: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collision_count: Option<i32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<WorkloadCondition>,
}

crate::impl_resource!(DaemonSet, "apps", "v1", "DaemonSet", "daemonsets", true);

impl ApiObject for DaemonSet {
    const HAS_STATUS: bool = true;

    fn set_defaults(&mut self) {
        let s = &mut self.spec;
        if s.update_strategy.type_.is_empty() {
            s.update_strategy.type_ = ROLLING_UPDATE.into();
        }
        if s.update_strategy.type_ == ROLLING_UPDATE {
            let ru = s
                .update_strategy
                .rolling_update
                .get_or_insert_with(Default::default);
            ru.max_unavailable.get_or_insert(IntOrString::Int(1));
            ru.max_surge.get_or_insert(IntOrString::Int(0));
        }
        s.revision_history_limit
            .get_or_insert(DEFAULT_REVISION_HISTORY_LIMIT);
        default_pod_template(&mut s.template);
    }

    fn validate(&self) -> FieldErrors {
        let mut errs = FieldErrors::default();
        validate_object_meta(&self.metadata, dns1123_subdomain, &mut errs);
        let s = &self.spec;
        validate_workload_selector(s.selector.as_ref(), &s.template, "daemonset", &mut errs);
        validate_replica_template(&s.template, "spec.template", &mut errs);
        nonnegative(
            s.min_ready_seconds.into(),
            "spec.minReadySeconds",
            &mut errs,
        );
        if let Some(l) = s.revision_history_limit {
            nonnegative(l.into(), "spec.revisionHistoryLimit", &mut errs);
        }
        let us = &s.update_strategy;
        match us.type_.as_str() {
            ON_DELETE => {}
            ROLLING_UPDATE => match &us.rolling_update {
                None => errs.required("spec.updateStrategy.rollingUpdate", ""),
                Some(ru) => validate_rolling(
                    ru.max_unavailable.as_ref(),
                    ru.max_surge.as_ref(),
                    "spec.updateStrategy.rollingUpdate",
                    &mut errs,
                ),
            },
            other => errs.not_supported(
                "spec.updateStrategy.type",
                other,
                &[ON_DELETE, ROLLING_UPDATE],
            ),
        }
        errs
    }

    fn validate_update(&self, old: &Self) -> FieldErrors {
        let mut errs = FieldErrors::default();
        immutable(
            &self.spec.selector,
            &old.spec.selector,
            "spec.selector",
            &mut errs,
        );
        errs
    }

    fn keep_status(&mut self, old: Option<&Self>) {
        self.status = old.map(|o| o.status.clone()).unwrap_or_default();
    }

    fn spec_changed(&self, old: &Self) -> bool {
        self.spec != old.spec
    }

    fn table_columns() -> Vec<TableColumn> {
        let mut cols = vec![
            name_column(),
            TableColumn::new("Desired", "integer", 0),
            TableColumn::new("Current", "integer", 0),
            TableColumn::new("Ready", "integer", 0),
            TableColumn::new("Up-to-date", "integer", 0),
            TableColumn::new("Available", "integer", 0),
            TableColumn::new("Node Selector", "string", 0),
            TableColumn::new("Age", "string", 0),
        ];
        cols.extend(wide_columns());
        cols
    }

    fn table_row(&self, now: chrono::DateTime<chrono::Utc>) -> Vec<Value> {
        let st = &self.status;
        let spec = &self.spec.template.spec;
        let node_selector = super::core::format_labels(&spec.node_selector);
        let (containers, images) = containers_cells(spec);
        vec![
            self.metadata.name.clone().into(),
            st.desired_number_scheduled.into(),
            st.current_number_scheduled.into(),
            st.number_ready.into(),
            st.updated_number_scheduled.into(),
            st.number_available.into(),
            node_selector.into(),
            age(self.metadata.creation_timestamp.as_ref(), now),
            containers,
            images,
            selector_cell(self.spec.selector.as_ref()),
        ]
    }
}

// ---------------------------------------------------------------------------
// ControllerRevision
// ---------------------------------------------------------------------------

/// `apps/v1` ControllerRevision: an immutable snapshot of a controller's
/// template (DaemonSet history, `kubectl rollout undo`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ControllerRevision {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The snapshot, as arbitrary JSON.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub data: Value,
    #[serde(default)]
    pub revision: i64,
}

crate::impl_resource!(
    ControllerRevision,
    "apps",
    "v1",
    "ControllerRevision",
    "controllerrevisions",
    true
);

impl ApiObject for ControllerRevision {
    fn validate(&self) -> FieldErrors {
        let mut errs = FieldErrors::default();
        validate_object_meta(&self.metadata, dns1123_subdomain, &mut errs);
        if self.data.is_null() {
            errs.required("data", "data is mandatory");
        }
        nonnegative(self.revision, "revision", &mut errs);
        errs
    }

    fn validate_update(&self, old: &Self) -> FieldErrors {
        let mut errs = FieldErrors::default();
        if self.data != old.data {
            errs.invalid("data", "<data>", "field is immutable");
        }
        errs
    }

    fn table_columns() -> Vec<TableColumn> {
        vec![
            name_column(),
            TableColumn::new("Controller", "string", 0),
            TableColumn::new("Revision", "integer", 0),
            TableColumn::new("Age", "string", 0),
        ]
    }

    fn table_row(&self, now: chrono::DateTime<chrono::Utc>) -> Vec<Value> {
        // kubectl shows `kind.group/name` of the controlling owner.
        let controller = match self.metadata.controller_ref() {
            None => "<none>".to_string(),
            Some(r) => {
                let group = r.api_version.rsplit_once('/').map_or("", |(g, _)| g);
                let kind = r.kind.to_lowercase();
                if group.is_empty() {
                    format!("{kind}/{}", r.name)
                } else {
                    format!("{kind}.{group}/{}", r.name)
                }
            }
        };
        vec![
            self.metadata.name.clone().into(),
            controller.into(),
            self.revision.into(),
            age(self.metadata.creation_timestamp.as_ref(), now),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::OwnerReference;
    use serde_json::json;

    /// `kubectl create deployment web --image=hello:v1 --replicas=3 -o yaml --dry-run=client`.
    const CREATE_DEPLOYMENT_YAML: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  creationTimestamp: null
  labels:
    app: web
  name: web
spec:
  replicas: 3
  selector:
    matchLabels:
      app: web
  strategy: {}
  template:
    metadata:
      creationTimestamp: null
      labels:
        app: web
    spec:
      containers:
      - image: hello:v1
        name: hello
        resources: {}
status: {}
"#;

    fn web() -> Deployment {
        let mut d: Deployment = serde_yaml_ng::from_str(CREATE_DEPLOYMENT_YAML).unwrap();
        d.metadata.namespace = "default".into();
        d
    }

    fn now() -> chrono::DateTime<chrono::Utc> {
        Time::from_unix(1_700_000_000).unwrap().0
    }

    fn ago(secs: i64) -> Option<Time> {
        Time::from_unix(1_700_000_000 - secs)
    }

    fn fields(errs: &FieldErrors) -> Vec<&str> {
        errs.0.iter().map(|e| e.field.as_str()).collect()
    }

    #[test]
    fn kubectl_create_deployment_round_trips() {
        let d = web();
        assert_eq!(d.spec.replicas, Some(3));
        assert_eq!(d.spec.template.spec.containers[0].image, "hello:v1");
        let v = serde_json::to_value(&d).unwrap();
        assert_eq!(v["spec"]["strategy"], json!({}));
        assert_eq!(
            v["spec"]["selector"],
            json!({"matchLabels": {"app": "web"}})
        );
        assert_eq!(
            v["spec"]["template"]["metadata"],
            json!({"labels": {"app": "web"}})
        );
        assert_eq!(v["status"], json!({}));
        let back: Deployment = serde_json::from_value(v).unwrap();
        assert_eq!(back, d);
    }

    #[test]
    fn deployment_defaults() {
        let mut d = web();
        d.spec.replicas = None;
        d.set_defaults();
        let v = serde_json::to_value(&d.spec).unwrap();
        assert_eq!(v["replicas"], 1);
        assert_eq!(
            v["strategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
        );
        assert_eq!(v["revisionHistoryLimit"], 10);
        assert_eq!(v["progressDeadlineSeconds"], 600);
        assert_eq!(v["template"]["spec"]["restartPolicy"], "Always");
        assert!(d.validate().is_empty(), "{}", d.validate().summary());
        // Recreate gets no rollingUpdate; explicit values are kept.
        let mut r = web();
        r.spec.strategy.type_ = RECREATE.into();
        r.spec.revision_history_limit = Some(2);
        r.set_defaults();
        assert_eq!(r.spec.strategy.rolling_update, None);
        assert_eq!(r.spec.revision_history_limit, Some(2));
        assert!(r.validate().is_empty(), "{}", r.validate().summary());
    }

    #[test]
    fn deployment_validation_paths() {
        type Edit = fn(&mut Deployment);
        let cases: Vec<(Edit, Vec<&str>, &str)> = vec![
            (
                |d| d.spec.replicas = Some(-1),
                vec!["spec.replicas"],
                "greater than or equal to 0",
            ),
            (
                |d| d.spec.selector = None,
                vec!["spec.selector"],
                "Required value",
            ),
            (
                |d| d.spec.selector = Some(LabelSelector::default()),
                vec!["spec.selector"],
                "empty selector is invalid for deployment",
            ),
            (
                |d| {
                    d.spec
                        .template
                        .metadata
                        .labels
                        .insert("app".into(), "db".into());
                },
                vec!["spec.template.metadata.labels"],
                "`selector` does not match template `labels`",
            ),
            (
                |d| d.spec.template.spec.restart_policy = "Never".into(),
                vec!["spec.template.spec.restartPolicy"],
                "supported values: \"Always\"",
            ),
            (
                |d| d.spec.template.spec.active_deadline_seconds = Some(5),
                vec!["spec.template.spec.activeDeadlineSeconds"],
                "not Supported",
            ),
            (
                |d| d.spec.strategy.type_ = RECREATE.into(),
                vec!["spec.strategy.rollingUpdate"],
                "may not be specified when strategy `type` is 'Recreate'",
            ),
            (
                |d| d.spec.strategy.type_ = "BlueGreen".into(),
                vec!["spec.strategy.type"],
                "Unsupported value",
            ),
            (
                |d| {
                    d.spec.strategy.rolling_update = Some(RollingUpdateDeployment {
                        max_unavailable: Some(IntOrString::Int(0)),
                        max_surge: Some(IntOrString::String("0%".into())),
                    })
                },
                vec!["spec.strategy.rollingUpdate.maxUnavailable"],
                "may not be 0 when `maxSurge` is 0",
            ),
            (
                |d| {
                    d.spec.strategy.rolling_update = Some(RollingUpdateDeployment {
                        max_unavailable: Some(IntOrString::String("150%".into())),
                        max_surge: Some(IntOrString::String("ten".into())),
                    })
                },
                vec![
                    "spec.strategy.rollingUpdate.maxUnavailable",
                    "spec.strategy.rollingUpdate.maxSurge",
                ],
                "must not be greater than 100%",
            ),
            (
                |d| {
                    d.spec.strategy.rolling_update = Some(RollingUpdateDeployment {
                        max_unavailable: Some(IntOrString::Int(-1)),
                        max_surge: None,
                    })
                },
                vec!["spec.strategy.rollingUpdate.maxUnavailable"],
                "greater than or equal to 0",
            ),
            (
                |d| d.spec.min_ready_seconds = -1,
                vec!["spec.minReadySeconds"],
                "greater than or equal to 0",
            ),
            (
                |d| d.spec.min_ready_seconds = 600,
                vec!["spec.progressDeadlineSeconds"],
                "must be greater than minReadySeconds",
            ),
            (
                |d| d.spec.revision_history_limit = Some(-1),
                vec!["spec.revisionHistoryLimit"],
                "greater than or equal to 0",
            ),
            (
                |d| d.spec.template.spec.containers.clear(),
                vec!["spec.template.spec.containers"],
                "Required",
            ),
            (
                |d| d.metadata.name = "Web".into(),
                vec!["metadata.name"],
                "RFC 1123",
            ),
        ];
        for (edit, want, detail) in cases {
            let mut d = web();
            d.set_defaults();
            edit(&mut d);
            let errs = d.validate();
            assert_eq!(fields(&errs), want, "{}", errs.summary());
            assert!(errs.summary().contains(detail), "{}", errs.summary());
        }
    }

    #[test]
    fn deployment_update_rules() {
        let mut old = web();
        old.set_defaults();
        let mut new = old.clone();
        new.spec.replicas = Some(5);
        new.spec.template.spec.containers[0].image = "hello:v2".into();
        assert!(new.validate_update(&old).is_empty());
        assert!(new.spec_changed(&old));
        new.spec.selector = Some(LabelSelector {
            match_labels: [("app".to_string(), "web2".to_string())].into(),
            ..Default::default()
        });
        let errs = new.validate_update(&old);
        assert_eq!(fields(&errs), ["spec.selector"]);
        assert!(errs.summary().contains("field is immutable"));
        // Status comes from the stored object; annotations bump the generation.
        let mut upd = old.clone();
        upd.status.replicas = 7;
        upd.keep_status(Some(&old));
        assert_eq!(upd.status, old.status);
        assert!(!upd.spec_changed(&old));
        upd.metadata.annotations.insert("a".into(), "b".into());
        assert!(upd.spec_changed(&old));
    }

    #[test]
    fn deployment_table_and_scale() {
        let mut d = web();
        d.set_defaults();
        d.metadata.creation_timestamp = ago(125);
        d.status = DeploymentStatus {
            replicas: 3,
            ready_replicas: 2,
            updated_replicas: 3,
            available_replicas: 2,
            ..Default::default()
        };
        let cols: Vec<_> = Deployment::table_columns()
            .iter()
            .map(|c| (c.name, c.priority))
            .collect();
        assert_eq!(
            cols,
            [
                ("Name", 0),
                ("Ready", 0),
                ("Up-to-date", 0),
                ("Available", 0),
                ("Age", 0),
                ("Containers", 1),
                ("Images", 1),
                ("Selector", 1)
            ]
        );
        assert_eq!(
            d.table_row(now()),
            [
                json!("web"),
                json!("2/3"),
                json!(3),
                json!(2),
                json!("2m5s"),
                json!("hello"),
                json!("hello:v1"),
                json!("app=web")
            ]
        );
        assert_eq!(
            d.scale(),
            Some(ScaleView {
                spec_replicas: 3,
                status_replicas: 3,
                selector: "app=web".into()
            })
        );
        assert!(d.set_scale(0));
        assert_eq!(d.spec.replicas, Some(0));
        assert_eq!(d.table_row(now())[1], "2/0");
    }

    #[test]
    fn surge_and_unavailable() {
        let cases = [
            (10, "25%", "25%", (3, 2)),
            (1, "25%", "25%", (1, 0)),
            (4, "0%", "0%", (0, 1)),
            (4, "50%", "1", (2, 1)),
        ];
        for (replicas, surge, unavail, want) in cases {
            let ios = |s: &str| match s.parse::<i32>() {
                Ok(i) => IntOrString::Int(i),
                Err(_) => IntOrString::String(s.into()),
            };
            let mut d = web();
            d.spec.replicas = Some(replicas);
            d.spec.strategy.rolling_update = Some(RollingUpdateDeployment {
                max_surge: Some(ios(surge)),
                max_unavailable: Some(ios(unavail)),
            });
            assert_eq!(
                d.surge_and_unavailable(),
                Ok(want),
                "{replicas} {surge} {unavail}"
            );
        }
        let mut r = web();
        r.spec.strategy.type_ = RECREATE.into();
        assert_eq!(r.surge_and_unavailable(), Ok((0, 0)));
    }

    fn replica_set() -> ReplicaSet {
        serde_json::from_value(json!({
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {"name": "web-5d4b7", "namespace": "default", "labels": {"app": "web", "pod-template-hash": "5d4b7"}},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web", "pod-template-hash": "5d4b7"}},
                "template": {
                    "metadata": {"labels": {"app": "web", "pod-template-hash": "5d4b7"}},
                    "spec": {"containers": [{"name": "hello", "image": "hello:v1"}, {"name": "side", "image": "log@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}]}
                }
            },
            "status": {"replicas": 2, "readyReplicas": 1, "availableReplicas": 1}
        }))
        .unwrap()
    }

    #[test]
    fn replica_set_behaviour() {
        let mut rs = replica_set();
        rs.set_defaults();
        assert!(rs.validate().is_empty(), "{}", rs.validate().summary());
        rs.metadata.creation_timestamp = ago(3 * 3600);
        let row = rs.table_row(now());
        assert_eq!(
            row,
            [
                json!("web-5d4b7"),
                json!(2),
                json!(2),
                json!(1),
                json!("3h"),
                json!("hello,side"),
                json!(
                    "hello:v1,log@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
                ),
                json!("app=web,pod-template-hash=5d4b7")
            ]
        );
        assert_eq!(rs.field_value("status.replicas").as_deref(), Some("2"));
        assert_eq!(rs.field_value("spec.replicas"), None);
        assert_eq!(
            rs.scale().map(|s| s.selector),
            Some("app=web,pod-template-hash=5d4b7".to_string())
        );
        let mut bad = replica_set();
        bad.spec.replicas = Some(-3);
        bad.spec.min_ready_seconds = -1;
        bad.spec.template.metadata.labels.clear();
        bad.set_defaults();
        assert_eq!(
            fields(&bad.validate()),
            [
                "spec.replicas",
                "spec.minReadySeconds",
                "spec.template.metadata.labels"
            ]
        );
        let mut moved = replica_set();
        if let Some(sel) = moved.spec.selector.as_mut() {
            sel.match_labels.insert("x".into(), "y".into());
        }
        assert_eq!(
            fields(&moved.validate_update(&replica_set())),
            ["spec.selector"]
        );
        let mut empty = ReplicaSet::default();
        empty.set_defaults();
        assert_eq!(
            empty.scale().map(|s| (s.spec_replicas, s.selector)),
            Some((1, String::new()))
        );
    }

    fn daemon_set() -> DaemonSet {
        serde_json::from_value(json!({
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {"name": "agent", "namespace": "kube-system"},
            "spec": {
                "selector": {"matchLabels": {"name": "agent"}},
                "template": {
                    "metadata": {"labels": {"name": "agent"}},
                    "spec": {"nodeSelector": {"kubernetes.io/os": "linux"}, "containers": [{"name": "agent", "image": "agent:1"}]}
                }
            }
        }))
        .unwrap()
    }

    #[test]
    fn daemon_set_behaviour() {
        let mut ds = daemon_set();
        ds.set_defaults();
        assert_eq!(
            serde_json::to_value(&ds.spec.update_strategy).unwrap(),
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})
        );
        assert_eq!(ds.spec.revision_history_limit, Some(10));
        assert!(ds.validate().is_empty(), "{}", ds.validate().summary());
        ds.metadata.creation_timestamp = ago(50);
        ds.status = DaemonSetStatus {
            desired_number_scheduled: 3,
            current_number_scheduled: 3,
            number_ready: 2,
            updated_number_scheduled: 3,
            number_available: 2,
            ..Default::default()
        };
        assert_eq!(
            DaemonSet::table_columns()
                .iter()
                .map(|c| c.name)
                .collect::<Vec<_>>(),
            [
                "Name",
                "Desired",
                "Current",
                "Ready",
                "Up-to-date",
                "Available",
                "Node Selector",
                "Age",
                "Containers",
                "Images",
                "Selector"
            ]
        );
        assert_eq!(
            ds.table_row(now()),
            [
                json!("agent"),
                json!(3),
                json!(3),
                json!(2),
                json!(3),
                json!(2),
                json!("kubernetes.io/os=linux"),
                json!("50s"),
                json!("agent"),
                json!("agent:1"),
                json!("name=agent")
            ]
        );
        // Status fields Kubernetes always prints are present even when zero.
        let fresh = serde_json::to_value(daemon_set()).unwrap();
        assert_eq!(
            fresh["status"],
            json!({"currentNumberScheduled": 0, "numberMisscheduled": 0, "desiredNumberScheduled": 0, "numberReady": 0})
        );

        let mut on_delete = daemon_set();
        on_delete.spec.update_strategy.type_ = ON_DELETE.into();
        on_delete.set_defaults();
        assert_eq!(on_delete.spec.update_strategy.rolling_update, None);
        assert!(on_delete.validate().is_empty());

        let mut bad = daemon_set();
        bad.set_defaults();
        bad.spec.update_strategy.rolling_update = Some(RollingUpdateDaemonSet {
            max_unavailable: Some(IntOrString::Int(0)),
            max_surge: Some(IntOrString::Int(0)),
        });
        bad.spec.selector = Some(LabelSelector::default());
        bad.spec.template.spec.restart_policy = "OnFailure".into();
        let errs = bad.validate();
        assert_eq!(
            fields(&errs),
            [
                "spec.selector",
                "spec.template.spec.restartPolicy",
                "spec.updateStrategy.rollingUpdate.maxUnavailable"
            ]
        );
        assert!(
            errs.summary()
                .contains("empty selector is invalid for daemonset")
        );
        let mut odd = daemon_set();
        odd.spec.update_strategy.type_ = "Surge".into();
        odd.set_defaults();
        assert_eq!(fields(&odd.validate()), ["spec.updateStrategy.type"]);
    }

    #[test]
    fn controller_revision_behaviour() {
        let cr: ControllerRevision = serde_json::from_value(json!({
            "apiVersion": "apps/v1",
            "kind": "ControllerRevision",
            "metadata": {"name": "agent-6c7d9", "namespace": "kube-system",
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "agent", "uid": "u", "controller": true}]},
            "data": {"spec": {"template": {"$patch": "replace"}}},
            "revision": 2
        }))
        .unwrap();
        assert!(cr.validate().is_empty());
        let mut cr = cr;
        cr.metadata.creation_timestamp = ago(86400 * 3);
        assert_eq!(
            cr.table_row(now()),
            [
                json!("agent-6c7d9"),
                json!("daemonset.apps/agent"),
                json!(2),
                json!("3d")
            ]
        );
        let mut core_owner = cr.clone();
        core_owner.metadata.owner_references = vec![OwnerReference {
            api_version: "v1".into(),
            kind: "ReplicationController".into(),
            name: "rc".into(),
            uid: "u".into(),
            controller: Some(true),
            block_owner_deletion: None,
        }];
        assert_eq!(core_owner.table_row(now())[1], "replicationcontroller/rc");
        core_owner.metadata.owner_references.clear();
        assert_eq!(core_owner.table_row(now())[1], "<none>");

        let mut changed = cr.clone();
        changed.data = json!({"other": 1});
        assert_eq!(fields(&changed.validate_update(&cr)), ["data"]);
        changed.data = Value::Null;
        changed.revision = -1;
        assert_eq!(fields(&changed.validate()), ["data", "revision"]);
    }
}
