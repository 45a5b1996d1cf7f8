//! `batch/v1`: Job and CronJob.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::apps::{containers_cells, default_pod_template, selector_cell, validate_pod_template};
use super::core::{ObjectReference, PodTemplateSpec};
use super::cron::{CronError, MissedRuns, Schedule, parse_time_zone};
use super::meta::{LabelSelector, ObjectMeta, Time};
use super::selector::{LabelSelectorExpr, validate_label_selector};
use super::validation::{FieldErrors, dns1123_subdomain, validate_object_meta};
use super::{ApiObject, TableColumn, age, human_duration};

/// Label on a Job's pods (and in its selector) holding the Job's uid.
pub const CONTROLLER_UID_LABEL: &str = "batch.kubernetes.io/controller-uid";
/// The older spelling of [`CONTROLLER_UID_LABEL`], still set on pods.
pub const LEGACY_CONTROLLER_UID_LABEL: &str = "controller-uid";
/// Label on a Job's pods holding the Job's name.
pub const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";
/// The older spelling of [`JOB_NAME_LABEL`], still set on pods.
pub const LEGACY_JOB_NAME_LABEL: &str = "job-name";
/// How many missed CronJob runs Kubernetes counts before giving up.
pub const MISSED_RUNS_LIMIT: u32 = 100;

const DEFAULT_BACKOFF_LIMIT: i32 = 6;
const COMPLETION_MODES: &[&str] = &["NonIndexed", "Indexed"];
const POD_FAILURE_ACTIONS: &[&str] = &["Count", "FailIndex", "FailJob", "Ignore"];
const REPLACEMENT_POLICIES: &[&str] = &["Failed", "TerminatingOrFailed"];
const CONCURRENCY_POLICIES: &[&str] = &["Allow", "Forbid", "Replace"];
/// Job names get an 11-character suffix from CronJobs and must stay a
/// 63-character label value.
const CRONJOB_NAME_MAX: usize = 52;

// ---------------------------------------------------------------------------
// Job
// ---------------------------------------------------------------------------

/// `batch/v1` Job.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: JobSpec,
    #[serde(default)]
    pub status: JobStatus,
}

/// `JobSpec`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobSpec {
    /// Defaults to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<i32>,
    /// Defaults to 1 only when `parallelism` is unset too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completions: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_deadline_seconds: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_failure_policy: Option<PodFailurePolicy>,
    /// Defaults to 6 (to the int32 maximum with `backoffLimitPerIndex`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_limit: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_limit_per_index: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_failed_indexes: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    /// When not true, the selector and pod labels are generated from the uid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manual_selector: Option<bool>,
    #[serde(default)]
    pub template: PodTemplateSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds_after_finished: Option<i32>,
    /// NonIndexed (default) or Indexed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_mode: Option<String>,
    /// Defaults to false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,
    /// TerminatingOrFailed (default) or Failed (default with a pod failure policy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_replacement_policy: Option<String>,
}

/// `PodFailurePolicy`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodFailurePolicy {
    #[serde(default)]
    pub rules: Vec<PodFailurePolicyRule>,
}

/// `PodFailurePolicyRule`: an action for failed pods matching exactly one
/// of `onExitCodes` and `onPodConditions`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodFailurePolicyRule {
    /// FailJob, FailIndex, Ignore or Count.
    #[serde(default)]
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_exit_codes: Option<PodFailurePolicyOnExitCodesRequirement>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on_pod_conditions: Vec<PodFailurePolicyOnPodConditionsPattern>,
}

/// `PodFailurePolicyOnExitCodesRequirement`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodFailurePolicyOnExitCodesRequirement {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_name: Option<String>,
    /// In or NotIn.
    #[serde(default)]
    pub operator: String,
    #[serde(default)]
    pub values: Vec<i32>,
}

/// `PodFailurePolicyOnPodConditionsPattern`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodFailurePolicyOnPodConditionsPattern {
    #[serde(rename = "type", default)]
    pub type_: String,
    /// Defaults to True.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub status: String,
}

/// `JobStatus`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<JobCondition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    #[serde(default, skip_serializing_if = "super::meta::is_zero_i32")]
    pub active: i32,
    #[serde(default, skip_serializing_if = "super::meta::is_zero_i32")]
    pub succeeded: i32,
    #[serde(default, skip_serializing_if = "super::meta::is_zero_i32")]
    pub failed: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminating: Option<i32>,
    /// Completed indexes of an Indexed job, as ranges (`1,3-5,7`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub completed_indexes: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_indexes: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uncounted_terminated_pods: Option<UncountedTerminatedPods>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<i32>,
}

/// `JobCondition`: Complete, Failed, Suspended, FailureTarget,
/// SuccessCriteriaMet.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobCondition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_probe_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// `UncountedTerminatedPods`: uids of finished pods not yet in the counters.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UncountedTerminatedPods {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub succeeded: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<String>,
}

crate::impl_resource!(Job, "batch", "v1", "Job", "jobs", true);

impl Job {
    /// Whether the condition `type_` is present with status True.
    pub fn has_condition(&self, type_: &str) -> bool {
        self.status
            .conditions
            .iter()
            .any(|c| c.type_ == type_ && c.status == "True")
    }

    /// `Complete` or `Failed` when the Job has finished.
    pub fn finished(&self) -> Option<&'static str> {
        ["Complete", "Failed"]
            .into_iter()
            .find(|t| self.has_condition(t))
    }

    /// The kubectl Status column.
    fn status_cell(&self) -> &'static str {
        if self.has_condition("Complete") {
            "Complete"
        } else if self.has_condition("Failed") {
            "Failed"
        } else if self.metadata.deletion_timestamp.is_some() {
            "Terminating"
        } else if self.has_condition("Suspended") {
            "Suspended"
        } else if self.has_condition("FailureTarget") {
            "FailureTarget"
        } else if self.has_condition("SuccessCriteriaMet") {
            "SuccessCriteriaMet"
        } else {
            "Running"
        }
    }
}

fn set_job_spec_defaults(s: &mut JobSpec) {
    if s.completions.is_none() && s.parallelism.is_none() {
        s.completions = Some(1);
    }
    s.parallelism.get_or_insert(1);
    if s.backoff_limit.is_none() {
        s.backoff_limit = Some(if s.backoff_limit_per_index.is_some() {
            i32::MAX
        } else {
            DEFAULT_BACKOFF_LIMIT
        });
    }
    s.completion_mode.get_or_insert_with(|| "NonIndexed".into());
    s.suspend.get_or_insert(false);
    if let Some(p) = &mut s.pod_failure_policy {
        for rule in &mut p.rules {
            for pattern in &mut rule.on_pod_conditions {
                if pattern.status.is_empty() {
                    pattern.status = "True".into();
                }
            }
        }
    }
    if s.pod_replacement_policy.is_none() {
        s.pod_replacement_policy = Some(if s.pod_failure_policy.is_some() {
            "Failed".into()
        } else {
            "TerminatingOrFailed".into()
        });
    }
    default_pod_template(&mut s.template);
}

/// The selector and pod labels Kubernetes generates for a Job without a
/// manual selector.
fn generate_selector(meta: &ObjectMeta, s: &mut JobSpec) {
    let labels = &mut s.template.metadata.labels;
    // Labels the user set are kept; a conflict fails validation.
    for key in [LEGACY_JOB_NAME_LABEL, JOB_NAME_LABEL] {
        labels
            .entry(key.to_string())
            .or_insert_with(|| meta.name.clone());
    }
    for key in [LEGACY_CONTROLLER_UID_LABEL, CONTROLLER_UID_LABEL] {
        labels
            .entry(key.to_string())
            .or_insert_with(|| meta.uid.clone());
    }
    s.selector
        .get_or_insert_with(Default::default)
        .match_labels
        .entry(CONTROLLER_UID_LABEL.to_string())
        .or_insert_with(|| meta.uid.clone());
}

fn nonnegative(v: Option<i64>, path: &str, errs: &mut FieldErrors) {
    if let Some(v) = v
        && v < 0
    {
        errs.invalid(path, v, "must be greater than or equal to 0");
    }
}

/// Checks what Jobs and CronJob job templates share, under `path`
/// (`spec` or `spec.jobTemplate.spec`).
fn validate_job_spec(s: &JobSpec, path: &str, errs: &mut FieldErrors) {
    nonnegative(
        s.parallelism.map(i64::from),
        &format!("{path}.parallelism"),
        errs,
    );
    nonnegative(
        s.completions.map(i64::from),
        &format!("{path}.completions"),
        errs,
    );
    nonnegative(
        s.active_deadline_seconds,
        &format!("{path}.activeDeadlineSeconds"),
        errs,
    );
    nonnegative(
        s.backoff_limit.map(i64::from),
        &format!("{path}.backoffLimit"),
        errs,
    );
    nonnegative(
        s.backoff_limit_per_index.map(i64::from),
        &format!("{path}.backoffLimitPerIndex"),
        errs,
    );
    nonnegative(
        s.max_failed_indexes.map(i64::from),
        &format!("{path}.maxFailedIndexes"),
        errs,
    );
    nonnegative(
        s.ttl_seconds_after_finished.map(i64::from),
        &format!("{path}.ttlSecondsAfterFinished"),
        errs,
    );
    let indexed = s.completion_mode.as_deref() == Some("Indexed");
    if let Some(mode) = &s.completion_mode
        && !COMPLETION_MODES.contains(&mode.as_str())
    {
        errs.not_supported(format!("{path}.completionMode"), mode, COMPLETION_MODES);
    }
    if indexed && s.completions.is_none() {
        errs.required(
            format!("{path}.completions"),
            "when completion mode is Indexed",
        );
    }
    if s.backoff_limit_per_index.is_some() && !indexed {
        errs.forbidden(
            format!("{path}.backoffLimitPerIndex"),
            "requires indexed completion mode",
        );
    }
    if let Some(max) = s.max_failed_indexes {
        if s.backoff_limit_per_index.is_none() {
            errs.required(
                format!("{path}.backoffLimitPerIndex"),
                "when maxFailedIndexes is specified",
            );
        }
        if let Some(c) = s.completions
            && max > c
        {
            errs.invalid(
                format!("{path}.maxFailedIndexes"),
                max,
                "must be less than or equal to completions",
            );
        }
    }
    let tp = format!("{path}.template");
    validate_pod_template(&s.template, &tp, &["OnFailure", "Never"], errs);
    if let Some(policy) = &s.pod_failure_policy {
        if s.template.spec.restart_policy != "Never" {
            errs.invalid(
                format!("{tp}.spec.restartPolicy"),
                &s.template.spec.restart_policy,
                "only \"Never\" is supported when podFailurePolicy is specified",
            );
        }
        validate_pod_failure_policy(s, policy, &format!("{path}.podFailurePolicy"), errs);
    }
    if let Some(p) = &s.pod_replacement_policy {
        if !REPLACEMENT_POLICIES.contains(&p.as_str()) {
            errs.not_supported(
                format!("{path}.podReplacementPolicy"),
                p,
                REPLACEMENT_POLICIES,
            );
        } else if s.pod_failure_policy.is_some() && p != "Failed" {
            errs.not_supported(format!("{path}.podReplacementPolicy"), p, &["Failed"]);
        }
    }
}

fn validate_pod_failure_policy(
    s: &JobSpec,
    policy: &PodFailurePolicy,
    path: &str,
    errs: &mut FieldErrors,
) {
    let containers: Vec<&str> = s
        .template
        .spec
        .containers
        .iter()
        .chain(&s.template.spec.init_containers)
        .map(|c| c.name.as_str())
        .collect();
    for (i, rule) in policy.rules.iter().enumerate() {
        let rp = format!("{path}.rules[{i}]");
        if !POD_FAILURE_ACTIONS.contains(&rule.action.as_str()) {
            errs.not_supported(format!("{rp}.action"), &rule.action, POD_FAILURE_ACTIONS);
        } else if rule.action == "FailIndex" && s.backoff_limit_per_index.is_none() {
            errs.invalid(
                format!("{rp}.action"),
                &rule.action,
                "requires the backoffLimitPerIndex to be set",
            );
        }
        match (&rule.on_exit_codes, rule.on_pod_conditions.is_empty()) {
            (Some(codes), true) => {
                let cp = format!("{rp}.onExitCodes");
                if let Some(name) = &codes.container_name
                    && !containers.contains(&name.as_str())
                {
                    errs.invalid(
                        format!("{cp}.containerName"),
                        name,
                        "must be one of the container or initContainer names in the pod template",
                    );
                }
                if codes.operator != "In" && codes.operator != "NotIn" {
                    errs.not_supported(format!("{cp}.operator"), &codes.operator, &["In", "NotIn"]);
                }
                if codes.values.is_empty() {
                    errs.required(format!("{cp}.values"), "at least one value is required");
                }
                for (j, v) in codes.values.iter().enumerate() {
                    let vp = format!("{cp}.values[{j}]");
                    if codes.operator == "In" && *v == 0 {
                        errs.invalid(&vp, v, "must not be 0 for the In operator");
                    }
                    if j > 0 {
                        let prev = codes.values[j - 1];
                        if prev == *v {
                            errs.duplicate(&vp, v);
                        } else if prev > *v {
                            errs.invalid(&vp, v, "must be ordered");
                        }
                    }
                }
            }
            (None, false) => {
                for (j, pattern) in rule.on_pod_conditions.iter().enumerate() {
                    let pp = format!("{rp}.onPodConditions[{j}]");
                    if pattern.type_.is_empty() {
                        errs.required(format!("{pp}.type"), "");
                    }
                    if !["True", "False", "Unknown"].contains(&pattern.status.as_str()) {
                        errs.not_supported(
                            format!("{pp}.status"),
                            &pattern.status,
                            &["True", "False", "Unknown"],
                        );
                    }
                }
            }
            _ => errs.invalid(
                rp,
                &rule.action,
                "specifying one of OnExitCodes and OnPodConditions is required",
            ),
        }
    }
}

/// Checks the labels Kubernetes generates for a Job without a manual
/// selector; skipped while the uid is unknown.
fn validate_generated_selector(job: &Job, errs: &mut FieldErrors) {
    let meta = &job.metadata;
    if job.spec.manual_selector == Some(true) || meta.uid.is_empty() {
        return;
    }
    let labels = &job.spec.template.metadata.labels;
    for (key, want) in [
        (LEGACY_CONTROLLER_UID_LABEL, &meta.uid),
        (LEGACY_JOB_NAME_LABEL, &meta.name),
        (CONTROLLER_UID_LABEL, &meta.uid),
        (JOB_NAME_LABEL, &meta.name),
    ] {
        let path = format!("spec.template.metadata.labels[{key}]");
        match labels.get(key) {
            None => errs.required(path, ""),
            Some(v) if v != want => errs.invalid(path, v, format!("must be '{want}'")),
            Some(_) => {}
        }
    }
    if let Some(sel) = &job.spec.selector {
        let expected = BTreeMap::from([(CONTROLLER_UID_LABEL.to_string(), meta.uid.clone())]);
        let matches = LabelSelectorExpr::from_label_selector(sel)
            .map(|e| e.matches(&expected))
            .unwrap_or(false);
        if !matches {
            errs.invalid("spec.selector", sel, "`selector` not auto-generated");
        }
    }
}

fn immutable<T: PartialEq>(new: &T, old: &T, path: &str, shown: &str, errs: &mut FieldErrors) {
    if new != old {
        errs.invalid(path, shown, "field is immutable");
    }
}

impl ApiObject for Job {
    const HAS_STATUS: bool = true;

    /// Also generates the selector and pod labels from `metadata.uid` (which
    /// the server assigns before defaulting) unless `manualSelector` is true.
    fn set_defaults(&mut self) {
        set_job_spec_defaults(&mut self.spec);
        if self.spec.manual_selector != Some(true) && !self.metadata.uid.is_empty() {
            generate_selector(&self.metadata, &mut self.spec);
        }
    }

    fn validate(&self) -> FieldErrors {
        let mut errs = FieldErrors::default();
        validate_object_meta(&self.metadata, dns1123_subdomain, &mut errs);
        let s = &self.spec;
        match &s.selector {
            None => errs.required("spec.selector", ""),
            Some(sel) => {
                validate_label_selector(sel, "spec.selector", &mut errs);
                if let Ok(expr) = LabelSelectorExpr::from_label_selector(sel)
                    && !expr.matches(&s.template.metadata.labels)
                {
                    errs.invalid(
                        "spec.template.metadata.labels",
                        &s.template.metadata.labels,
                        "`selector` does not match template `labels`",
                    );
                }
            }
        }
        validate_generated_selector(self, &mut errs);
        validate_job_spec(s, "spec", &mut errs);
        errs
    }

    fn validate_update(&self, old: &Self) -> FieldErrors {
        let mut errs = FieldErrors::default();
        let (n, o) = (&self.spec, &old.spec);
        immutable(
            &n.selector,
            &o.selector,
            "spec.selector",
            "<selector>",
            &mut errs,
        );
        immutable(
            &n.template,
            &o.template,
            "spec.template",
            "<template>",
            &mut errs,
        );
        if n.completions != o.completions {
            let shown = n.completions.map_or("nil".into(), |c| c.to_string());
            errs.invalid("spec.completions", shown, "field is immutable");
        }
        immutable(
            &n.completion_mode,
            &o.completion_mode,
            "spec.completionMode",
            n.completion_mode.as_deref().unwrap_or("nil"),
            &mut errs,
        );
        immutable(
            &n.pod_failure_policy,
            &o.pod_failure_policy,
            "spec.podFailurePolicy",
            "<podFailurePolicy>",
            &mut errs,
        );
        immutable(
            &n.backoff_limit_per_index,
            &o.backoff_limit_per_index,
            "spec.backoffLimitPerIndex",
            &n.backoff_limit_per_index
                .map_or("nil".into(), |v| v.to_string()),
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
        vec![
            TableColumn {
                format: "name",
                ..TableColumn::new("Name", "string", 0)
            },
            TableColumn::new("Status", "string", 0),
            TableColumn::new("Completions", "string", 0),
            TableColumn::new("Duration", "string", 0),
            TableColumn::new("Age", "string", 0),
            TableColumn::new("Containers", "string", 1),
            TableColumn::new("Images", "string", 1),
            TableColumn::new("Selector", "string", 1),
        ]
    }

    fn table_row(&self, now: chrono::DateTime<chrono::Utc>) -> Vec<Value> {
        let (s, st) = (&self.spec, &self.status);
        let completions = match s.completions {
            Some(c) => format!("{}/{c}", st.succeeded),
            None => match s.parallelism.unwrap_or(0) {
                p if p > 1 => format!("{}/1 of {p}", st.succeeded),
                _ => format!("{}/1", st.succeeded),
            },
        };
        let duration = match (st.start_time, st.completion_time) {
            (None, _) => String::new(),
            (Some(start), None) => human_duration(now - start.0),
            (Some(start), Some(end)) => human_duration(end.0 - start.0),
        };
        let (containers, images) = containers_cells(&s.template.spec);
        vec![
            self.metadata.name.clone().into(),
            self.status_cell().into(),
            completions.into(),
            duration.into(),
            age(self.metadata.creation_timestamp.as_ref(), now),
            containers,
            images,
            selector_cell(s.selector.as_ref()),
        ]
    }

    fn field_value(&self, field: &str) -> Option<String> {
        match field {
            "status.successful" => Some(self.status.succeeded.to_string()),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------------------
// CronJob
// ---------------------------------------------------------------------------

/// `batch/v1` CronJob.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CronJob {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: CronJobSpec,
    #[serde(default)]
    pub status: CronJobStatus,
}

/// `CronJobSpec`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CronJobSpec {
    /// Cron syntax (see [`crate::api::cron`]).
    #[serde(default)]
    pub schedule: String,
    /// IANA time zone name; the controller's (UTC) when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starting_deadline_seconds: Option<i64>,
    /// Allow (default), Forbid or Replace.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub concurrency_policy: String,
    /// Defaults to false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,
    #[serde(default)]
    pub job_template: JobTemplateSpec,
    /// Defaults to 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub successful_jobs_history_limit: Option<i32>,
    /// Defaults to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_jobs_history_limit: Option<i32>,
}

/// `JobTemplateSpec`: metadata and spec of the Jobs a CronJob creates.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobTemplateSpec {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: JobSpec,
}

/// `CronJobStatus`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CronJobStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub active: Vec<ObjectReference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_schedule_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_successful_time: Option<Time>,
}

crate::impl_resource!(CronJob, "batch", "v1", "CronJob", "cronjobs", true);

impl CronJob {
    /// The parsed `spec.schedule`.
    pub fn schedule(&self) -> Result<Schedule, CronError> {
        Schedule::parse(&self.spec.schedule)
    }

    /// The first scheduled time strictly after `t`, in `spec.timeZone`
    /// (UTC when unset); `Ok(None)` when the schedule never fires.
    pub fn next_run_after(
        &self,
        t: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<chrono::DateTime<chrono::Utc>>, CronError> {
        let schedule = self.schedule()?;
        Ok(match &self.spec.time_zone {
            None => schedule.next_after(t),
            Some(tz) => schedule.next_after_in(t, &parse_time_zone(tz)?),
        })
    }

    /// Scheduled times in `(start, end]` in `spec.timeZone`, counted up to
    /// [`MISSED_RUNS_LIMIT`] + 1.
    pub fn missed_runs(
        &self,
        start: chrono::DateTime<chrono::Utc>,
        end: chrono::DateTime<chrono::Utc>,
    ) -> Result<MissedRuns, CronError> {
        let schedule = self.schedule()?;
        Ok(match &self.spec.time_zone {
            None => schedule.missed_between(start, end, MISSED_RUNS_LIMIT),
            Some(tz) => {
                schedule.missed_between_in(start, end, MISSED_RUNS_LIMIT, &parse_time_zone(tz)?)
            }
        })
    }
}

impl ApiObject for CronJob {
    const HAS_STATUS: bool = true;

    fn set_defaults(&mut self) {
        let s = &mut self.spec;
        if s.concurrency_policy.is_empty() {
            s.concurrency_policy = "Allow".into();
        }
        s.suspend.get_or_insert(false);
        s.successful_jobs_history_limit.get_or_insert(3);
        s.failed_jobs_history_limit.get_or_insert(1);
        // Only the pod template is defaulted inside a job template, as in
        // Kubernetes: Job defaults apply when the Job is created.
        default_pod_template(&mut s.job_template.spec.template);
    }

    fn validate(&self) -> FieldErrors {
        let mut errs = FieldErrors::default();
        validate_object_meta(&self.metadata, dns1123_subdomain, &mut errs);
        if self.metadata.name.len() > CRONJOB_NAME_MAX {
            errs.invalid(
                "metadata.name",
                &self.metadata.name,
                format!("must be no more than {CRONJOB_NAME_MAX} characters"),
            );
        }
        let s = &self.spec;
        if s.schedule.is_empty() {
            errs.required("spec.schedule", "");
        } else if let Err(e) = Schedule::parse(&s.schedule) {
            errs.invalid("spec.schedule", &s.schedule, e.to_string());
        }
        if let Some(tz) = &s.time_zone {
            if tz.is_empty() {
                errs.invalid(
                    "spec.timeZone",
                    tz,
                    "timeZone must be nil or non-empty string",
                );
            } else if tz.eq_ignore_ascii_case("local") {
                errs.invalid(
                    "spec.timeZone",
                    tz,
                    "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones",
                );
            } else if let Err(e) = parse_time_zone(tz) {
                errs.invalid("spec.timeZone", tz, e.to_string());
            }
        }
        nonnegative(
            s.starting_deadline_seconds,
            "spec.startingDeadlineSeconds",
            &mut errs,
        );
        if s.concurrency_policy.is_empty() {
            errs.required("spec.concurrencyPolicy", "");
        } else if !CONCURRENCY_POLICIES.contains(&s.concurrency_policy.as_str()) {
            errs.not_supported(
                "spec.concurrencyPolicy",
                &s.concurrency_policy,
                CONCURRENCY_POLICIES,
            );
        }
        nonnegative(
            s.successful_jobs_history_limit.map(i64::from),
            "spec.successfulJobsHistoryLimit",
            &mut errs,
        );
        nonnegative(
            s.failed_jobs_history_limit.map(i64::from),
            "spec.failedJobsHistoryLimit",
            &mut errs,
        );
        let jt = &s.job_template;
        super::validation::validate_labels(
            &jt.metadata.labels,
            "spec.jobTemplate.metadata.labels",
            &mut errs,
        );
        super::validation::validate_annotations(
            &jt.metadata.annotations,
            "spec.jobTemplate.metadata.annotations",
            &mut errs,
        );
        validate_job_spec(&jt.spec, "spec.jobTemplate.spec", &mut errs);
        if let Some(sel) = &jt.spec.selector {
            errs.invalid(
                "spec.jobTemplate.spec.selector",
                sel,
                "`selector` will be auto-generated",
            );
        }
        if jt.spec.manual_selector == Some(true) {
            errs.not_supported(
                "spec.jobTemplate.spec.manualSelector",
                true,
                &["nil", "false"],
            );
        }
        errs
    }

    fn keep_status(&mut self, old: Option<&Self>) {
        self.status = old.map(|o| o.status.clone()).unwrap_or_default();
    }

    fn spec_changed(&self, old: &Self) -> bool {
        self.spec != old.spec
    }

    fn table_columns() -> Vec<TableColumn> {
        vec![
            TableColumn {
                format: "name",
                ..TableColumn::new("Name", "string", 0)
            },
            TableColumn::new("Schedule", "string", 0),
            TableColumn::new("Timezone", "string", 0),
            TableColumn::new("Suspend", "boolean", 0),
            TableColumn::new("Active", "integer", 0),
            TableColumn::new("Last Schedule", "string", 0),
            TableColumn::new("Age", "string", 0),
            TableColumn::new("Containers", "string", 1),
            TableColumn::new("Images", "string", 1),
            TableColumn::new("Selector", "string", 1),
        ]
    }

    fn table_row(&self, now: chrono::DateTime<chrono::Utc>) -> Vec<Value> {
        let s = &self.spec;
        let suspend = match s.suspend {
            Some(true) => "True",
            Some(false) => "False",
            None => "<unset>",
        };
        let last = match &self.status.last_schedule_time {
            Some(t) => age(Some(t), now),
            None => "<none>".into(),
        };
        let (containers, images) = containers_cells(&s.job_template.spec.template.spec);
        vec![
            self.metadata.name.clone().into(),
            s.schedule.clone().into(),
            s.time_zone
                .clone()
                .unwrap_or_else(|| "<none>".into())
                .into(),
            suspend.into(),
            self.status.active.len().into(),
            last,
            age(self.metadata.creation_timestamp.as_ref(), now),
            containers,
            images,
            selector_cell(s.job_template.spec.selector.as_ref()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The `pi` Job from the Kubernetes documentation.
    const PI_JOB_YAML: &str = r#"
apiVersion: batch/v1
kind: Job
metadata:
  name: pi
spec:
  template:
    spec:
      containers:
      - name: pi
        image: perl:5.34.0
        command: ["perl",  "-Mbignum=bpi", "-wle", "print bpi(2000)"]
      restartPolicy: Never
  backoffLimit: 4
"#;

    /// The `hello` CronJob from the Kubernetes documentation.
    const HELLO_CRONJOB_YAML: &str = r#"
apiVersion: batch/v1
kind: CronJob
metadata:
  name: hello
spec:
  schedule: "* * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          containers:
          - name: hello
            image: busybox:1.28
            imagePullPolicy: IfNotPresent
            command:
            - /bin/sh
            - -c
            - date; echo Hello from the Kubernetes cluster
          restartPolicy: OnFailure
"#;

    const UID: &str = "1a2b3c4d-0000-4000-8000-000000000001";

    fn pi() -> Job {
        let mut j: Job = serde_yaml_ng::from_str(PI_JOB_YAML).unwrap();
        j.metadata.namespace = "default".into();
        j.metadata.uid = UID.into();
        j
    }

    fn hello() -> CronJob {
        serde_yaml_ng::from_str(HELLO_CRONJOB_YAML).unwrap()
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
    fn documented_manifests_round_trip() {
        let j = pi();
        assert_eq!(j.spec.backoff_limit, Some(4));
        assert_eq!(j.spec.template.spec.restart_policy, "Never");
        let back: Job = serde_json::from_value(serde_json::to_value(&j).unwrap()).unwrap();
        assert_eq!(back, j);
        let c = hello();
        assert_eq!(c.spec.schedule, "* * * * *");
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(
            v["spec"]["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"],
            "OnFailure"
        );
        assert!(v["spec"].get("timeZone").is_none());
        let back: CronJob = serde_json::from_value(v).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn job_defaults_generate_selector_from_uid() {
        let mut j = pi();
        j.set_defaults();
        let s = &j.spec;
        assert_eq!((s.parallelism, s.completions), (Some(1), Some(1)));
        assert_eq!(s.backoff_limit, Some(4));
        assert_eq!(s.completion_mode.as_deref(), Some("NonIndexed"));
        assert_eq!(s.suspend, Some(false));
        assert_eq!(
            s.pod_replacement_policy.as_deref(),
            Some("TerminatingOrFailed")
        );
        assert_eq!(
            serde_json::to_value(&s.selector).unwrap(),
            json!({"matchLabels": {"batch.kubernetes.io/controller-uid": UID}})
        );
        assert_eq!(
            serde_json::to_value(&s.template.metadata.labels).unwrap(),
            json!({
                "batch.kubernetes.io/controller-uid": UID,
                "batch.kubernetes.io/job-name": "pi",
                "controller-uid": UID,
                "job-name": "pi"
            })
        );
        assert!(j.validate().is_empty(), "{}", j.validate().summary());
        // Defaulting twice changes nothing (updates are defaulted too).
        let again = {
            let mut k = j.clone();
            k.set_defaults();
            k
        };
        assert_eq!(again, j);
    }

    #[test]
    fn job_defaults_table() {
        type Edit = fn(&mut JobSpec);
        type Want = (Option<i32>, Option<i32>, Option<i32>, &'static str);
        let cases: Vec<(Edit, Want)> = vec![
            // (edit, (parallelism, completions, backoffLimit, podReplacementPolicy))
            (|_| {}, (Some(1), Some(1), Some(6), "TerminatingOrFailed")),
            (
                |s| s.parallelism = Some(3),
                (Some(3), None, Some(6), "TerminatingOrFailed"),
            ),
            (
                |s| s.completions = Some(5),
                (Some(1), Some(5), Some(6), "TerminatingOrFailed"),
            ),
            (
                |s| s.backoff_limit_per_index = Some(1),
                (Some(1), Some(1), Some(i32::MAX), "TerminatingOrFailed"),
            ),
            (
                |s| s.pod_failure_policy = Some(PodFailurePolicy::default()),
                (Some(1), Some(1), Some(6), "Failed"),
            ),
        ];
        for (edit, (parallelism, completions, backoff, replacement)) in cases {
            let mut j = Job::default();
            edit(&mut j.spec);
            j.set_defaults();
            let s = &j.spec;
            assert_eq!(
                (
                    s.parallelism,
                    s.completions,
                    s.backoff_limit,
                    s.pod_replacement_policy.as_deref()
                ),
                (parallelism, completions, backoff, Some(replacement))
            );
        }
        // Without a uid nothing is generated; a manual selector is left alone.
        let mut no_uid = Job::default();
        no_uid.set_defaults();
        assert_eq!(no_uid.spec.selector, None);
        let mut manual = pi();
        manual.spec.manual_selector = Some(true);
        manual.set_defaults();
        assert_eq!(manual.spec.selector, None);
        assert!(manual.spec.template.metadata.labels.is_empty());
        assert_eq!(fields(&manual.validate()), ["spec.selector"]);
        // Pod condition patterns default to status True.
        let mut p = pi();
        p.spec.pod_failure_policy = Some(PodFailurePolicy {
            rules: vec![PodFailurePolicyRule {
                action: "Ignore".into(),
                on_pod_conditions: vec![PodFailurePolicyOnPodConditionsPattern {
                    type_: "DisruptionTarget".into(),
                    status: String::new(),
                }],
                ..Default::default()
            }],
        });
        p.set_defaults();
        let rules = &p.spec.pod_failure_policy.as_ref().unwrap().rules;
        assert_eq!(rules[0].on_pod_conditions[0].status, "True");
        assert!(p.validate().is_empty(), "{}", p.validate().summary());
    }

    #[test]
    fn job_validation_paths() {
        type Edit = fn(&mut Job);
        let cases: Vec<(Edit, Vec<&str>, &str)> = vec![
            (
                |j| j.spec.template.spec.restart_policy = "Always".into(),
                vec!["spec.template.spec.restartPolicy"],
                "supported values: \"OnFailure\", \"Never\"",
            ),
            (
                |j| j.spec.parallelism = Some(-1),
                vec!["spec.parallelism"],
                "greater than or equal to 0",
            ),
            (
                |j| j.spec.completions = Some(-1),
                vec!["spec.completions"],
                "greater than or equal to 0",
            ),
            (
                |j| j.spec.backoff_limit = Some(-1),
                vec!["spec.backoffLimit"],
                "greater than or equal to 0",
            ),
            (
                |j| j.spec.ttl_seconds_after_finished = Some(-5),
                vec!["spec.ttlSecondsAfterFinished"],
                "greater than or equal to 0",
            ),
            (
                |j| {
                    j.spec.completion_mode = Some("Indexed".into());
                    j.spec.completions = None;
                },
                vec!["spec.completions"],
                "when completion mode is Indexed",
            ),
            (
                |j| j.spec.completion_mode = Some("Sparse".into()),
                vec!["spec.completionMode"],
                "Unsupported",
            ),
            (
                |j| j.spec.backoff_limit_per_index = Some(1),
                vec!["spec.backoffLimitPerIndex"],
                "requires indexed completion mode",
            ),
            (
                |j| {
                    j.spec.completion_mode = Some("Indexed".into());
                    j.spec.max_failed_indexes = Some(3);
                },
                vec!["spec.backoffLimitPerIndex", "spec.maxFailedIndexes"],
                "must be less than or equal to completions",
            ),
            (
                |j| {
                    j.spec
                        .template
                        .metadata
                        .labels
                        .insert("job-name".into(), "other".into());
                },
                vec!["spec.template.metadata.labels[job-name]"],
                "must be 'pi'",
            ),
            (
                |j| {
                    j.spec.selector = Some(LabelSelector {
                        match_labels: [("app".to_string(), "pi".to_string())].into(),
                        ..Default::default()
                    })
                },
                vec!["spec.template.metadata.labels", "spec.selector"],
                "`selector` not auto-generated",
            ),
            (
                |j| j.spec.selector = None,
                vec!["spec.selector"],
                "Required value",
            ),
            (
                |j| j.spec.template.spec.containers.clear(),
                vec!["spec.template.spec.containers"],
                "Required value",
            ),
            (
                |j| j.spec.pod_replacement_policy = Some("Sometimes".into()),
                vec!["spec.podReplacementPolicy"],
                "Unsupported",
            ),
        ];
        for (edit, want, detail) in cases {
            let mut j = pi();
            j.set_defaults();
            edit(&mut j);
            let errs = j.validate();
            assert_eq!(fields(&errs), want, "{}", errs.summary());
            assert!(errs.summary().contains(detail), "{}", errs.summary());
        }
    }

    #[test]
    fn pod_failure_policy_validation() {
        let rule = |v: Value| -> PodFailurePolicyRule { serde_json::from_value(v).unwrap() };
        let cases: Vec<(Vec<PodFailurePolicyRule>, &str, Vec<&str>)> = vec![
            (
                vec![rule(
                    json!({"action": "FailJob", "onExitCodes": {"containerName": "pi", "operator": "In", "values": [1, 42]}}),
                )],
                "Never",
                vec![],
            ),
            (
                vec![rule(
                    json!({"action": "FailJob", "onExitCodes": {"operator": "In", "values": [1]}}),
                )],
                "OnFailure",
                vec!["spec.template.spec.restartPolicy"],
            ),
            (
                vec![rule(
                    json!({"action": "Explode", "onExitCodes": {"operator": "Between", "values": []}}),
                )],
                "Never",
                vec![
                    "spec.podFailurePolicy.rules[0].action",
                    "spec.podFailurePolicy.rules[0].onExitCodes.operator",
                    "spec.podFailurePolicy.rules[0].onExitCodes.values",
                ],
            ),
            (
                vec![rule(
                    json!({"action": "Count", "onExitCodes": {"containerName": "nope", "operator": "In", "values": [0, 3, 2, 2]}}),
                )],
                "Never",
                vec![
                    "spec.podFailurePolicy.rules[0].onExitCodes.containerName",
                    "spec.podFailurePolicy.rules[0].onExitCodes.values[0]",
                    "spec.podFailurePolicy.rules[0].onExitCodes.values[2]",
                    "spec.podFailurePolicy.rules[0].onExitCodes.values[3]",
                ],
            ),
            (
                vec![rule(json!({"action": "Ignore"}))],
                "Never",
                vec!["spec.podFailurePolicy.rules[0]"],
            ),
            (
                vec![rule(
                    json!({"action": "FailIndex", "onPodConditions": [{"type": "", "status": "Maybe"}]}),
                )],
                "Never",
                vec![
                    "spec.podFailurePolicy.rules[0].action",
                    "spec.podFailurePolicy.rules[0].onPodConditions[0].type",
                    "spec.podFailurePolicy.rules[0].onPodConditions[0].status",
                ],
            ),
        ];
        for (rules, restart, want) in cases {
            let mut j = pi();
            j.spec.pod_failure_policy = Some(PodFailurePolicy { rules });
            j.spec.template.spec.restart_policy = restart.into();
            j.set_defaults();
            let errs = j.validate();
            assert_eq!(fields(&errs), want, "{}", errs.summary());
        }
        let mut wrong_replacement = pi();
        wrong_replacement.spec.pod_failure_policy = Some(PodFailurePolicy::default());
        wrong_replacement.spec.pod_replacement_policy = Some("TerminatingOrFailed".into());
        wrong_replacement.set_defaults();
        assert_eq!(
            fields(&wrong_replacement.validate()),
            ["spec.podReplacementPolicy"]
        );
    }

    #[test]
    fn job_update_rules() {
        let mut old = pi();
        old.set_defaults();
        let mut ok = old.clone();
        ok.spec.parallelism = Some(4);
        ok.spec.suspend = Some(true);
        ok.spec.active_deadline_seconds = Some(60);
        assert!(ok.validate_update(&old).is_empty());
        assert!(ok.spec_changed(&old));
        let mut bad = old.clone();
        bad.spec.completions = Some(3);
        bad.spec.template.spec.containers[0].image = "perl:5.36".into();
        bad.spec.completion_mode = Some("Indexed".into());
        let errs = bad.validate_update(&old);
        assert_eq!(
            fields(&errs),
            ["spec.template", "spec.completions", "spec.completionMode"]
        );
        assert!(errs.0.iter().all(|e| e.detail == "field is immutable"));
        let mut status_only = old.clone();
        status_only.status.succeeded = 1;
        status_only.keep_status(Some(&old));
        assert_eq!(status_only.status, old.status);
        assert_eq!(old.field_value("status.successful").as_deref(), Some("0"));
        assert_eq!(old.field_value("status.failed"), None);
    }

    fn cond(type_: &str, status: &str) -> JobCondition {
        JobCondition {
            type_: type_.into(),
            status: status.into(),
            ..Default::default()
        }
    }

    #[test]
    fn job_table_cells() {
        let mut j = pi();
        j.set_defaults();
        j.metadata.creation_timestamp = ago(600);
        assert_eq!(
            Job::table_columns()
                .iter()
                .map(|c| (c.name, c.priority))
                .collect::<Vec<_>>(),
            [
                ("Name", 0),
                ("Status", 0),
                ("Completions", 0),
                ("Duration", 0),
                ("Age", 0),
                ("Containers", 1),
                ("Images", 1),
                ("Selector", 1)
            ]
        );
        assert_eq!(
            j.table_row(now()),
            [
                json!("pi"),
                json!("Running"),
                json!("0/1"),
                json!(""),
                json!("10m"),
                json!("pi"),
                json!("perl:5.34.0"),
                json!(format!("batch.kubernetes.io/controller-uid={UID}"))
            ]
        );
        j.status.start_time = ago(300);
        assert_eq!(j.table_row(now())[3], "5m");
        j.status.completion_time = ago(250);
        j.status.succeeded = 1;
        j.status.conditions = vec![cond("SuccessCriteriaMet", "True"), cond("Complete", "True")];
        assert_eq!(
            j.table_row(now())[1..4],
            [json!("Complete"), json!("1/1"), json!("50s")]
        );
        assert_eq!(j.finished(), Some("Complete"));

        let status_cases = [
            (vec![cond("Failed", "True")], false, "Failed"),
            (vec![cond("Complete", "False")], false, "Running"),
            (vec![cond("Suspended", "True")], false, "Suspended"),
            (vec![cond("Suspended", "True")], true, "Terminating"),
            (vec![cond("FailureTarget", "True")], false, "FailureTarget"),
            (
                vec![cond("SuccessCriteriaMet", "True")],
                false,
                "SuccessCriteriaMet",
            ),
        ];
        for (conditions, deleting, want) in status_cases {
            let mut k = j.clone();
            k.status.conditions = conditions;
            k.metadata.deletion_timestamp = if deleting { ago(1) } else { None };
            assert_eq!(k.table_row(now())[1], want);
        }
        let mut parallel = Job::default();
        parallel.spec.parallelism = Some(3);
        parallel.status.succeeded = 2;
        assert_eq!(parallel.table_row(now())[2], "2/1 of 3");
    }

    #[test]
    fn cronjob_defaults_and_validation() {
        let mut c = hello();
        c.set_defaults();
        let s = &c.spec;
        assert_eq!(s.concurrency_policy, "Allow");
        assert_eq!(s.suspend, Some(false));
        assert_eq!(
            (s.successful_jobs_history_limit, s.failed_jobs_history_limit),
            (Some(3), Some(1))
        );
        // Job defaults are not applied inside the template.
        assert_eq!(s.job_template.spec.backoff_limit, None);
        assert!(c.validate().is_empty(), "{}", c.validate().summary());

        type Edit = fn(&mut CronJob);
        let cases: Vec<(Edit, Vec<&str>, &str)> = vec![
            (
                |c| c.spec.schedule.clear(),
                vec!["spec.schedule"],
                "Required value",
            ),
            (
                |c| c.spec.schedule = "61 * * * *".into(),
                vec!["spec.schedule"],
                "minute field",
            ),
            (
                |c| c.spec.schedule = "TZ=UTC * * * * *".into(),
                vec!["spec.schedule"],
                "use timeZone field instead",
            ),
            (
                |c| c.spec.schedule = "@every 1m".into(),
                vec!["spec.schedule"],
                "@every",
            ),
            (
                |c| c.spec.time_zone = Some("Mars/Base".into()),
                vec!["spec.timeZone"],
                "unknown time zone",
            ),
            (
                |c| c.spec.time_zone = Some(String::new()),
                vec!["spec.timeZone"],
                "non-empty",
            ),
            (
                |c| c.spec.time_zone = Some("Local".into()),
                vec!["spec.timeZone"],
                "explicit time zone",
            ),
            (
                |c| c.spec.concurrency_policy = "Sometimes".into(),
                vec!["spec.concurrencyPolicy"],
                "\"Allow\", \"Forbid\", \"Replace\"",
            ),
            (
                |c| c.spec.starting_deadline_seconds = Some(-1),
                vec!["spec.startingDeadlineSeconds"],
                "greater than or equal to 0",
            ),
            (
                |c| c.spec.successful_jobs_history_limit = Some(-1),
                vec!["spec.successfulJobsHistoryLimit"],
                "greater than or equal to 0",
            ),
            (
                |c| c.spec.job_template.spec.template.spec.restart_policy = "Always".into(),
                vec!["spec.jobTemplate.spec.template.spec.restartPolicy"],
                "Unsupported",
            ),
            (
                |c| c.spec.job_template.spec.selector = Some(LabelSelector::default()),
                vec!["spec.jobTemplate.spec.selector"],
                "will be auto-generated",
            ),
            (
                |c| c.spec.job_template.spec.manual_selector = Some(true),
                vec!["spec.jobTemplate.spec.manualSelector"],
                "\"nil\", \"false\"",
            ),
            (
                |c| c.metadata.name = "x".repeat(53),
                vec!["metadata.name"],
                "no more than 52 characters",
            ),
        ];
        for (edit, want, detail) in cases {
            let mut c = hello();
            c.set_defaults();
            edit(&mut c);
            let errs = c.validate();
            assert_eq!(fields(&errs), want, "{}", errs.summary());
            assert!(errs.summary().contains(detail), "{}", errs.summary());
        }
        let mut berlin = hello();
        berlin.spec.time_zone = Some("Europe/Berlin".into());
        berlin.set_defaults();
        assert!(berlin.validate().is_empty());
    }

    #[test]
    fn cronjob_schedule_helpers() {
        let at = |s: &str| {
            chrono::DateTime::parse_from_rfc3339(s)
                .unwrap()
                .with_timezone(&chrono::Utc)
        };
        let mut c = hello();
        c.spec.schedule = "0 9 * * *".into();
        assert_eq!(
            c.next_run_after(at("2024-07-01T00:00:00Z")),
            Ok(Some(at("2024-07-01T09:00:00Z")))
        );
        c.spec.time_zone = Some("Europe/Berlin".into());
        assert_eq!(
            c.next_run_after(at("2024-07-01T00:00:00Z")),
            Ok(Some(at("2024-07-01T07:00:00Z")))
        );
        let m = c
            .missed_runs(at("2024-07-01T00:00:00Z"), at("2024-07-03T08:00:00Z"))
            .unwrap();
        assert_eq!(
            (m.count, m.most_recent),
            (3, Some(at("2024-07-03T07:00:00Z")))
        );
        c.spec.time_zone = Some("Nowhere".into());
        assert!(c.next_run_after(at("2024-07-01T00:00:00Z")).is_err());
        c.spec.schedule = "bad".into();
        assert!(
            c.missed_runs(at("2024-07-01T00:00:00Z"), at("2024-07-02T00:00:00Z"))
                .is_err()
        );
    }

    #[test]
    fn cronjob_table_cells() {
        let mut c = hello();
        c.metadata.creation_timestamp = ago(7200);
        assert_eq!(
            CronJob::table_columns()
                .iter()
                .map(|c| c.name)
                .collect::<Vec<_>>(),
            [
                "Name",
                "Schedule",
                "Timezone",
                "Suspend",
                "Active",
                "Last Schedule",
                "Age",
                "Containers",
                "Images",
                "Selector"
            ]
        );
        assert_eq!(
            c.table_row(now()),
            [
                json!("hello"),
                json!("* * * * *"),
                json!("<none>"),
                json!("<unset>"),
                json!(0),
                json!("<none>"),
                json!("120m"),
                json!("hello"),
                json!("busybox:1.28"),
                json!("<none>")
            ]
        );
        c.set_defaults();
        c.spec.time_zone = Some("Etc/UTC".into());
        c.status.last_schedule_time = ago(30);
        c.status.active = vec![ObjectReference {
            kind: "Job".into(),
            name: "hello-28333333".into(),
            ..Default::default()
        }];
        assert_eq!(
            c.table_row(now())[2..6],
            [json!("Etc/UTC"), json!("False"), json!(1), json!("30s")]
        );
        c.spec.suspend = Some(true);
        assert_eq!(c.table_row(now())[3], "True");
    }
}
