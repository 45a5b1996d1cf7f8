//! `autoscaling/v2` HorizontalPodAutoscaler and the `autoscaling/v1` Scale
//! body of the `/scale` subresource.

use std::cmp::Ordering;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::meta::{LabelSelector, ObjectMeta, Time};
use super::quantity::Quantity;
use super::selector::validate_label_selector;
use super::validation::{FieldErrors, dns1123_subdomain, validate_object_meta};
use super::{ApiObject, ScaleView, TableColumn, age};

/// Default `averageUtilization` of the CPU metric an HPA gets when it names
/// no metrics (Kubernetes' `DefaultCPUUtilization`).
pub const DEFAULT_CPU_UTILIZATION: i32 = 80;

/// Kinds an HPA can scale here (those with a `/scale` subresource), with the
/// `apiVersion` each lives in.
const SCALABLE_KINDS: &[(&str, &str)] = &[
    ("Deployment", "apps/v1"),
    ("ReplicaSet", "apps/v1"),
    ("ReplicationController", "v1"),
];

const METRIC_TYPES: &[&str] = &[
    "Object",
    "Pods",
    "Resource",
    "ContainerResource",
    "External",
];
const TARGET_TYPES: &[&str] = &["Utilization", "Value", "AverageValue"];
const SELECT_POLICIES: &[&str] = &["Max", "Min", "Disabled"];
const POLICY_TYPES: &[&str] = &["Pods", "Percent"];
const MAX_STABILIZATION_WINDOW_SECONDS: i32 = 3600;
const MAX_PERIOD_SECONDS: i32 = 1800;

/// `autoscaling/v2` HorizontalPodAutoscaler.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HorizontalPodAutoscaler {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: HorizontalPodAutoscalerSpec,
    #[serde(default)]
    pub status: HorizontalPodAutoscalerStatus,
}

/// `HorizontalPodAutoscalerSpec`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HorizontalPodAutoscalerSpec {
    pub scale_target_ref: CrossVersionObjectReference,
    /// Defaults to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_replicas: Option<i32>,
    #[serde(default)]
    pub max_replicas: i32,
    /// Defaults to CPU at 80% utilization when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<MetricSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub behavior: Option<HorizontalPodAutoscalerBehavior>,
}

/// `CrossVersionObjectReference`: the scaled object.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CrossVersionObjectReference {
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
}

/// `MetricSpec`: `type` names which one of the sources is set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricSpec {
    /// Object, Pods, Resource, ContainerResource or External.
    #[serde(rename = "type", default)]
    pub type_: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<ObjectMetricSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods: Option<PodsMetricSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<ResourceMetricSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_resource: Option<ContainerResourceMetricSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalMetricSource>,
}

/// A metric describing one Kubernetes object.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMetricSource {
    pub described_object: CrossVersionObjectReference,
    pub target: MetricTarget,
    pub metric: MetricIdentifier,
}

/// A metric averaged over the target's pods.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodsMetricSource {
    pub metric: MetricIdentifier,
    pub target: MetricTarget,
}

/// A resource (`cpu`, `memory`) of the target's pods.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceMetricSource {
    pub name: String,
    pub target: MetricTarget,
}

/// A resource of one container in each of the target's pods.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContainerResourceMetricSource {
    pub name: String,
    pub target: MetricTarget,
    pub container: String,
}

/// A metric from outside the cluster.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalMetricSource {
    pub metric: MetricIdentifier,
    pub target: MetricTarget,
}

/// `MetricIdentifier`: a metric name and an optional selector.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricIdentifier {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
}

/// `MetricTarget`: `type` is Utilization, Value or AverageValue.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricTarget {
    #[serde(rename = "type", default)]
    pub type_: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Quantity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub average_value: Option<Quantity>,
    /// Percent of the pods' requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub average_utilization: Option<i32>,
}

/// `HorizontalPodAutoscalerBehavior`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HorizontalPodAutoscalerBehavior {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_up: Option<HPAScalingRules>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down: Option<HPAScalingRules>,
}

/// `HPAScalingRules`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HPAScalingRules {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stabilization_window_seconds: Option<i32>,
    /// Max, Min or Disabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub select_policy: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<HPAScalingPolicy>,
}

/// `HPAScalingPolicy`: at most `value` pods (or percent) per `periodSeconds`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HPAScalingPolicy {
    /// Pods or Percent.
    #[serde(rename = "type")]
    pub type_: String,
    pub value: i32,
    pub period_seconds: i32,
}

/// `HorizontalPodAutoscalerStatus`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HorizontalPodAutoscalerStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scale_time: Option<Time>,
    #[serde(default, skip_serializing_if = "super::meta::is_zero_i32")]
    pub current_replicas: i32,
    #[serde(default)]
    pub desired_replicas: i32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub current_metrics: Vec<MetricStatus>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<HorizontalPodAutoscalerCondition>,
}

/// `MetricStatus`: the observed value of one metric, same shape as
/// [`MetricSpec`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricStatus {
    #[serde(rename = "type", default)]
    pub type_: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<ObjectMetricStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods: Option<PodsMetricStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<ResourceMetricStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_resource: Option<ContainerResourceMetricStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalMetricStatus>,
}

/// Observed value of an Object metric.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMetricStatus {
    pub metric: MetricIdentifier,
    pub current: MetricValueStatus,
    pub described_object: CrossVersionObjectReference,
}

/// Observed value of a Pods metric.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodsMetricStatus {
    pub metric: MetricIdentifier,
    pub current: MetricValueStatus,
}

/// Observed value of a Resource metric.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceMetricStatus {
    pub name: String,
    pub current: MetricValueStatus,
}

/// Observed value of a ContainerResource metric.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContainerResourceMetricStatus {
    pub name: String,
    pub current: MetricValueStatus,
    pub container: String,
}

/// Observed value of an External metric.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalMetricStatus {
    pub metric: MetricIdentifier,
    pub current: MetricValueStatus,
}

/// `MetricValueStatus`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricValueStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Quantity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub average_value: Option<Quantity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub average_utilization: Option<i32>,
}

/// `HorizontalPodAutoscalerCondition` (AbleToScale, ScalingActive,
/// ScalingLimited).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HorizontalPodAutoscalerCondition {
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

crate::impl_resource!(
    HorizontalPodAutoscaler,
    "autoscaling",
    "v2",
    "HorizontalPodAutoscaler",
    "horizontalpodautoscalers",
    true
);

fn policy(type_: &str, value: i32, period_seconds: i32) -> HPAScalingPolicy {
    HPAScalingPolicy {
        type_: type_.into(),
        value,
        period_seconds,
    }
}

/// Fills unset parts of scaling rules with Kubernetes' defaults: scale up
/// by 4 pods or 100% per 15s without a window, scale down by 100% per 15s
/// after a 300s window; `selectPolicy: Max` for both.
fn default_rules(rules: Option<HPAScalingRules>, scale_up: bool) -> HPAScalingRules {
    let mut r = rules.unwrap_or_default();
    if r.policies.is_empty() {
        r.policies = if scale_up {
            vec![policy("Pods", 4, 15), policy("Percent", 100, 15)]
        } else {
            vec![policy("Percent", 100, 15)]
        };
    }
    r.select_policy.get_or_insert_with(|| "Max".into());
    r.stabilization_window_seconds
        .get_or_insert(if scale_up { 0 } else { 300 });
    r
}

fn is_positive(q: &Quantity) -> bool {
    q.cmp_amount(&Quantity("0".into())) == Some(Ordering::Greater)
}

fn validate_target(t: &MetricTarget, path: &str, errs: &mut FieldErrors) {
    if t.type_.is_empty() {
        errs.required(format!("{path}.type"), "must specify a metric target type");
    } else if !TARGET_TYPES.contains(&t.type_.as_str()) {
        errs.not_supported(format!("{path}.type"), &t.type_, TARGET_TYPES);
    }
    if let Some(v) = &t.value
        && !is_positive(v)
    {
        errs.invalid(format!("{path}.value"), &v.0, "must be positive");
    }
    if let Some(v) = &t.average_value
        && !is_positive(v)
    {
        errs.invalid(format!("{path}.averageValue"), &v.0, "must be positive");
    }
    if let Some(u) = t.average_utilization
        && u < 1
    {
        errs.invalid(
            format!("{path}.averageUtilization"),
            u,
            "must be greater than 0",
        );
    }
}

fn validate_identifier(m: &MetricIdentifier, path: &str, errs: &mut FieldErrors) {
    if m.name.is_empty() {
        errs.required(format!("{path}.name"), "must specify a metric name");
    }
    if let Some(sel) = &m.selector {
        validate_label_selector(sel, &format!("{path}.selector"), errs);
    }
}

/// An Object or External target needs a value or an average value.
fn require_value_or_average(t: &MetricTarget, path: &str, errs: &mut FieldErrors) {
    if t.value.is_none() && t.average_value.is_none() {
        errs.required(
            format!("{path}.averageValue"),
            "must set either a target value or averageValue",
        );
    }
}

/// A Resource or ContainerResource target needs exactly one of a raw average
/// value and a utilization.
fn validate_resource_target(name: &str, t: &MetricTarget, path: &str, errs: &mut FieldErrors) {
    if name.is_empty() {
        errs.required(format!("{path}.name"), "must specify a resource name");
    }
    let tp = format!("{path}.target");
    validate_target(t, &tp, errs);
    match (t.average_utilization, &t.average_value) {
        (None, None) => errs.required(
            format!("{tp}.averageUtilization"),
            "must set either a target raw value or a target utilization",
        ),
        (Some(_), Some(_)) => errs.forbidden(
            format!("{tp}.averageValue"),
            "may not set both a target raw value and a target utilization",
        ),
        _ => {}
    }
}

fn validate_metric(m: &MetricSpec, path: &str, errs: &mut FieldErrors) {
    let set: Vec<&str> = [
        ("Object", m.object.is_some()),
        ("Pods", m.pods.is_some()),
        ("Resource", m.resource.is_some()),
        ("ContainerResource", m.container_resource.is_some()),
        ("External", m.external.is_some()),
    ]
    .into_iter()
    .filter(|(_, on)| *on)
    .map(|(t, _)| t)
    .collect();
    if m.type_.is_empty() {
        errs.required(format!("{path}.type"), "must specify a metric source type");
        return;
    }
    if !METRIC_TYPES.contains(&m.type_.as_str()) {
        errs.not_supported(format!("{path}.type"), &m.type_, METRIC_TYPES);
        return;
    }
    let field = lower_first(&m.type_);
    if !set.contains(&m.type_.as_str()) {
        errs.required(
            format!("{path}.{field}"),
            "must populate information for the given metric source",
        );
    }
    if set.iter().any(|t| *t != m.type_) {
        errs.forbidden(
            path.to_string(),
            "must populate the given metric source only",
        );
    }
    if let (Some(o), "Object") = (&m.object, m.type_.as_str()) {
        let p = format!("{path}.object");
        validate_cross_ref(&o.described_object, &format!("{p}.describedObject"), errs);
        validate_identifier(&o.metric, &format!("{p}.metric"), errs);
        validate_target(&o.target, &format!("{p}.target"), errs);
        require_value_or_average(&o.target, &format!("{p}.target"), errs);
    }
    if let (Some(pm), "Pods") = (&m.pods, m.type_.as_str()) {
        let p = format!("{path}.pods");
        validate_identifier(&pm.metric, &format!("{p}.metric"), errs);
        validate_target(&pm.target, &format!("{p}.target"), errs);
        if pm.target.average_value.is_none() {
            errs.required(
                format!("{p}.target.averageValue"),
                "must specify a positive target averageValue",
            );
        }
    }
    if let (Some(r), "Resource") = (&m.resource, m.type_.as_str()) {
        validate_resource_target(&r.name, &r.target, &format!("{path}.resource"), errs);
    }
    if let (Some(r), "ContainerResource") = (&m.container_resource, m.type_.as_str()) {
        let p = format!("{path}.containerResource");
        validate_resource_target(&r.name, &r.target, &p, errs);
        if r.container.is_empty() {
            errs.required(format!("{p}.container"), "must specify a container");
        }
    }
    if let (Some(e), "External") = (&m.external, m.type_.as_str()) {
        let p = format!("{path}.external");
        validate_identifier(&e.metric, &format!("{p}.metric"), errs);
        validate_target(&e.target, &format!("{p}.target"), errs);
        require_value_or_average(&e.target, &format!("{p}.target"), errs);
    }
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

fn validate_cross_ref(r: &CrossVersionObjectReference, path: &str, errs: &mut FieldErrors) {
    if r.kind.is_empty() {
        errs.required(format!("{path}.kind"), "");
    } else if r.kind.contains(['/', '%']) {
        errs.invalid(
            format!("{path}.kind"),
            &r.kind,
            "may not contain '/' or '%'",
        );
    }
    if r.name.is_empty() {
        errs.required(format!("{path}.name"), "");
    } else if r.name.contains(['/', '%']) {
        errs.invalid(
            format!("{path}.name"),
            &r.name,
            "may not contain '/' or '%'",
        );
    }
}

fn validate_rules(r: &HPAScalingRules, path: &str, errs: &mut FieldErrors) {
    if let Some(w) = r.stabilization_window_seconds
        && !(0..=MAX_STABILIZATION_WINDOW_SECONDS).contains(&w)
    {
        errs.invalid(
            format!("{path}.stabilizationWindowSeconds"),
            w,
            format!("must be between 0 and {MAX_STABILIZATION_WINDOW_SECONDS} seconds"),
        );
    }
    if let Some(sp) = &r.select_policy
        && !SELECT_POLICIES.contains(&sp.as_str())
    {
        errs.not_supported(format!("{path}.selectPolicy"), sp, SELECT_POLICIES);
    }
    if r.policies.is_empty() && r.select_policy.as_deref() != Some("Disabled") {
        errs.required(
            format!("{path}.policies"),
            "must specify at least one Policy",
        );
    }
    for (i, p) in r.policies.iter().enumerate() {
        let pp = format!("{path}.policies[{i}]");
        if !POLICY_TYPES.contains(&p.type_.as_str()) {
            errs.not_supported(format!("{pp}.type"), &p.type_, POLICY_TYPES);
        }
        if p.value <= 0 {
            errs.invalid(format!("{pp}.value"), p.value, "must be greater than zero");
        }
        if !(1..=MAX_PERIOD_SECONDS).contains(&p.period_seconds) {
            errs.invalid(
                format!("{pp}.periodSeconds"),
                p.period_seconds,
                format!("must be greater than zero and less than or equal to {MAX_PERIOD_SECONDS}"),
            );
        }
    }
}

/// One metric's `current/target` cell, as kubectl prints it.
fn format_metric(spec: &MetricSpec, status: Option<&MetricStatus>) -> String {
    const UNKNOWN: &str = "<unknown>";
    let q = |v: Option<&Quantity>| v.map_or(UNKNOWN.to_string(), |q| q.0.clone());
    let pct = |v: Option<i32>, none: &str| v.map_or(none.to_string(), |u| format!("{u}%"));
    match spec.type_.as_str() {
        "Resource" | "ContainerResource" => {
            let (name, target, current) = match (&spec.resource, &spec.container_resource) {
                (Some(r), _) if spec.type_ == "Resource" => (
                    &r.name,
                    &r.target,
                    status.and_then(|s| s.resource.as_ref()).map(|s| &s.current),
                ),
                (_, Some(r)) => (
                    &r.name,
                    &r.target,
                    status
                        .and_then(|s| s.container_resource.as_ref())
                        .map(|s| &s.current),
                ),
                _ => return "<unknown type>".into(),
            };
            if let Some(avg) = &target.average_value {
                let cur = q(current.and_then(|c| c.average_value.as_ref()));
                format!("{name}: {cur}/{}", avg.0)
            } else {
                let cur = pct(current.and_then(|c| c.average_utilization), UNKNOWN);
                format!(
                    "{name}: {cur}/{}",
                    pct(target.average_utilization, "<auto>")
                )
            }
        }
        "Pods" => match &spec.pods {
            Some(p) => {
                let cur = status
                    .and_then(|s| s.pods.as_ref())
                    .and_then(|s| s.current.average_value.as_ref());
                format!("{}/{}", q(cur), q(p.target.average_value.as_ref()))
            }
            None => "<unknown type>".into(),
        },
        "Object" | "External" => {
            let (target, current) = match (&spec.object, &spec.external) {
                (Some(o), _) if spec.type_ == "Object" => (
                    &o.target,
                    status.and_then(|s| s.object.as_ref()).map(|s| &s.current),
                ),
                (_, Some(e)) => (
                    &e.target,
                    status.and_then(|s| s.external.as_ref()).map(|s| &s.current),
                ),
                _ => return "<unknown type>".into(),
            };
            if let Some(avg) = &target.average_value {
                let cur = q(current.and_then(|c| c.average_value.as_ref()));
                format!("{cur}/{} (avg)", avg.0)
            } else {
                let cur = q(current.and_then(|c| c.value.as_ref()));
                format!("{cur}/{}", q(target.value.as_ref()))
            }
        }
        _ => "<unknown type>".into(),
    }
}

/// The Targets cell: the first two metrics, then `+ N more...`.
fn format_metrics(specs: &[MetricSpec], statuses: &[MetricStatus]) -> String {
    const SHOWN: usize = 2;
    if specs.is_empty() {
        return "<none>".into();
    }
    let list: Vec<String> = specs
        .iter()
        .take(SHOWN)
        .enumerate()
        .map(|(i, s)| format_metric(s, statuses.get(i)))
        .collect();
    let text = list.join(", ");
    if specs.len() > SHOWN {
        format!("{text} + {} more...", specs.len() - SHOWN)
    } else {
        text
    }
}

impl ApiObject for HorizontalPodAutoscaler {
    const HAS_STATUS: bool = true;

    fn set_defaults(&mut self) {
        let s = &mut self.spec;
        s.min_replicas.get_or_insert(1);
        if s.metrics.is_empty() {
            s.metrics.push(MetricSpec {
                type_: "Resource".into(),
                resource: Some(ResourceMetricSource {
                    name: "cpu".into(),
                    target: MetricTarget {
                        type_: "Utilization".into(),
                        average_utilization: Some(DEFAULT_CPU_UTILIZATION),
                        ..Default::default()
                    },
                }),
                ..Default::default()
            });
        }
        if let Some(b) = &mut s.behavior {
            b.scale_up = Some(default_rules(b.scale_up.take(), true));
            b.scale_down = Some(default_rules(b.scale_down.take(), false));
        }
    }

    fn validate(&self) -> FieldErrors {
        let mut errs = FieldErrors::default();
        validate_object_meta(&self.metadata, dns1123_subdomain, &mut errs);
        let s = &self.spec;
        let target = &s.scale_target_ref;
        validate_cross_ref(target, "spec.scaleTargetRef", &mut errs);
        if !target.kind.is_empty() {
            match SCALABLE_KINDS.iter().find(|(k, _)| *k == target.kind) {
                None => errs.not_supported(
                    "spec.scaleTargetRef.kind",
                    &target.kind,
                    &SCALABLE_KINDS.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
                ),
                Some((_, av)) if !target.api_version.is_empty() && target.api_version != *av => {
                    errs.invalid(
                        "spec.scaleTargetRef.apiVersion",
                        &target.api_version,
                        format!("{} is served as {av}", target.kind),
                    )
                }
                Some(_) => {}
            }
        }
        if let Some(min) = s.min_replicas
            && min < 1
        {
            errs.invalid(
                "spec.minReplicas",
                min,
                "must be greater than or equal to 1",
            );
        }
        if s.max_replicas < 1 {
            errs.invalid("spec.maxReplicas", s.max_replicas, "must be greater than 0");
        }
        if let Some(min) = s.min_replicas
            && s.max_replicas < min
        {
            errs.invalid(
                "spec.maxReplicas",
                s.max_replicas,
                "must be greater than or equal to `minReplicas`",
            );
        }
        for (i, m) in s.metrics.iter().enumerate() {
            validate_metric(m, &format!("spec.metrics[{i}]"), &mut errs);
        }
        if let Some(b) = &s.behavior {
            if let Some(r) = &b.scale_up {
                validate_rules(r, "spec.behavior.scaleUp", &mut errs);
            }
            if let Some(r) = &b.scale_down {
                validate_rules(r, "spec.behavior.scaleDown", &mut errs);
            }
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
            TableColumn::new("Reference", "string", 0),
            TableColumn::new("Targets", "string", 0),
            TableColumn::new("MinPods", "string", 0),
            TableColumn::new("MaxPods", "integer", 0),
            TableColumn::new("Replicas", "integer", 0),
            TableColumn::new("Age", "string", 0),
        ]
    }

    fn table_row(&self, now: chrono::DateTime<chrono::Utc>) -> Vec<serde_json::Value> {
        let s = &self.spec;
        let reference = format!("{}/{}", s.scale_target_ref.kind, s.scale_target_ref.name);
        let min = s
            .min_replicas
            .map_or("<unset>".to_string(), |m| m.to_string());
        vec![
            self.metadata.name.clone().into(),
            reference.into(),
            format_metrics(&s.metrics, &self.status.current_metrics).into(),
            min.into(),
            s.max_replicas.into(),
            self.status.current_replicas.into(),
            age(self.metadata.creation_timestamp.as_ref(), now),
        ]
    }
}

/// `autoscaling/v1` Scale: the body of a `/scale` subresource. Never
/// stored; the server builds it from the scaled object's [`ScaleView`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Scale {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: ScaleSpec,
    #[serde(default)]
    pub status: ScaleStatus,
}

/// `ScaleSpec`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScaleSpec {
    #[serde(default, skip_serializing_if = "super::meta::is_zero_i32")]
    pub replicas: i32,
}

/// `ScaleStatus`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScaleStatus {
    #[serde(default)]
    pub replicas: i32,
    /// Label selector of the scaled pods, in string form.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub selector: String,
}

crate::impl_resource!(Scale, "autoscaling", "v1", "Scale", "scale", true);

impl Scale {
    /// The Scale of an object: its metadata (name, namespace, uid,
    /// resourceVersion, creationTimestamp, as Kubernetes copies them) and
    /// its scale view.
    pub fn from_view(meta: &ObjectMeta, view: &ScaleView) -> Scale {
        Scale {
            api_version: <Scale as super::Resource>::api_version(),
            kind: "Scale".into(),
            metadata: ObjectMeta {
                name: meta.name.clone(),
                namespace: meta.namespace.clone(),
                uid: meta.uid.clone(),
                resource_version: meta.resource_version.clone(),
                creation_timestamp: meta.creation_timestamp,
                ..Default::default()
            },
            spec: ScaleSpec {
                replicas: view.spec_replicas,
            },
            status: ScaleStatus {
                replicas: view.status_replicas,
                selector: view.selector.clone(),
            },
        }
    }
}

impl ApiObject for Scale {
    fn validate(&self) -> FieldErrors {
        let mut errs = FieldErrors::default();
        if self.spec.replicas < 0 {
            errs.invalid(
                "spec.replicas",
                self.spec.replicas,
                "must be greater than or equal to 0",
            );
        }
        errs
    }

    fn table_columns() -> Vec<TableColumn> {
        vec![
            TableColumn {
                format: "name",
                ..TableColumn::new("Name", "string", 0)
            },
            TableColumn::new("Desired", "integer", 0),
            TableColumn::new("Current", "integer", 0),
            TableColumn::new("Age", "string", 0),
        ]
    }

    fn table_row(&self, now: chrono::DateTime<chrono::Utc>) -> Vec<serde_json::Value> {
        vec![
            self.metadata.name.clone().into(),
            self.spec.replicas.into(),
            self.status.replicas.into(),
            age(self.metadata.creation_timestamp.as_ref(), now),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn hpa(value: serde_json::Value) -> HorizontalPodAutoscaler {
        serde_json::from_value(value).unwrap()
    }

    /// What `kubectl autoscale deployment web --min=2 --max=5 --cpu-percent=50` sends.
    fn autoscale_manifest() -> serde_json::Value {
        json!({
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "minReplicas": 2,
                "maxReplicas": 5,
                "metrics": [{
                    "type": "Resource",
                    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}
                }]
            },
            "status": {"desiredReplicas": 0}
        })
    }

    #[test]
    fn round_trip() {
        let m = autoscale_manifest();
        let h = hpa(m.clone());
        assert_eq!(serde_json::to_value(&h).unwrap(), m);
        assert!(h.validate().is_empty(), "{:?}", h.validate());
    }

    #[test]
    fn defaults() {
        let mut h = hpa(json!({
            "metadata": {"name": "web"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 3}
        }));
        h.set_defaults();
        assert_eq!(h.spec.min_replicas, Some(1));
        assert_eq!(
            serde_json::to_value(&h.spec.metrics).unwrap(),
            json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}])
        );
        assert_eq!(h.spec.behavior, None);
        // A behavior given in part is completed.
        h.spec.behavior = Some(HorizontalPodAutoscalerBehavior {
            scale_down: Some(HPAScalingRules {
                stabilization_window_seconds: Some(60),
                ..Default::default()
            }),
            ..Default::default()
        });
        h.set_defaults();
        assert_eq!(
            serde_json::to_value(&h.spec.behavior).unwrap(),
            json!({
                "scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max", "policies": [
                    {"type": "Pods", "value": 4, "periodSeconds": 15},
                    {"type": "Percent", "value": 100, "periodSeconds": 15}]},
                "scaleDown": {"stabilizationWindowSeconds": 60, "selectPolicy": "Max", "policies": [
                    {"type": "Percent", "value": 100, "periodSeconds": 15}]}
            })
        );
        assert!(h.validate().is_empty(), "{:?}", h.validate());
    }

    #[test]
    fn validation_paths() {
        let cases: Vec<(serde_json::Value, Vec<&str>)> = vec![
            (json!({"minReplicas": 0}), vec!["spec.minReplicas"]),
            (
                json!({"maxReplicas": 0, "minReplicas": 1}),
                vec!["spec.maxReplicas", "spec.maxReplicas"],
            ),
            (
                json!({"maxReplicas": 1, "minReplicas": 2}),
                vec!["spec.maxReplicas"],
            ),
            (
                json!({"scaleTargetRef": {"kind": "StatefulSet", "name": "db"}}),
                vec!["spec.scaleTargetRef.kind"],
            ),
            (
                json!({"scaleTargetRef": {"kind": "Deployment", "name": "web", "apiVersion": "v1"}}),
                vec!["spec.scaleTargetRef.apiVersion"],
            ),
            (
                json!({"scaleTargetRef": {"kind": "", "name": ""}}),
                vec!["spec.scaleTargetRef.kind", "spec.scaleTargetRef.name"],
            ),
            (
                json!({"metrics": [{"type": "Memory"}]}),
                vec!["spec.metrics[0].type"],
            ),
            (
                json!({"metrics": [{"type": "Pods"}]}),
                vec!["spec.metrics[0].pods"],
            ),
            (
                json!({"metrics": [{"type": "Resource",
                    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}},
                    "pods": {"metric": {"name": "x"}, "target": {"type": "AverageValue", "averageValue": "1"}}}]}),
                vec!["spec.metrics[0]"],
            ),
            (
                json!({"metrics": [{"type": "Resource", "resource": {"name": "", "target": {"type": "Utilization"}}}]}),
                vec![
                    "spec.metrics[0].resource.name",
                    "spec.metrics[0].resource.target.averageUtilization",
                ],
            ),
            (
                json!({"metrics": [{"type": "Resource", "resource": {"name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 0, "averageValue": "-1"}}}]}),
                vec![
                    "spec.metrics[0].resource.target.averageValue",
                    "spec.metrics[0].resource.target.averageUtilization",
                    "spec.metrics[0].resource.target.averageValue",
                ],
            ),
            (
                json!({"metrics": [{"type": "Pods", "pods": {"metric": {"name": ""}, "target": {"type": "Ratio"}}}]}),
                vec![
                    "spec.metrics[0].pods.metric.name",
                    "spec.metrics[0].pods.target.type",
                    "spec.metrics[0].pods.target.averageValue",
                ],
            ),
            (
                json!({"metrics": [{"type": "External", "external": {"metric": {"name": "queue"}, "target": {"type": "Value"}}}]}),
                vec!["spec.metrics[0].external.target.averageValue"],
            ),
            (
                json!({"metrics": [{"type": "Object", "object": {"describedObject": {"kind": "Service", "name": ""},
                    "metric": {"name": "rps"}, "target": {"type": "Value", "value": "0"}}}]}),
                vec![
                    "spec.metrics[0].object.describedObject.name",
                    "spec.metrics[0].object.target.value",
                ],
            ),
            (
                json!({"metrics": [{"type": "ContainerResource", "containerResource": {"name": "memory", "container": "",
                    "target": {"type": "AverageValue", "averageValue": "64Mi"}}}]}),
                vec!["spec.metrics[0].containerResource.container"],
            ),
            (
                json!({"behavior": {"scaleUp": {"stabilizationWindowSeconds": 4000, "selectPolicy": "Most",
                    "policies": [{"type": "Nodes", "value": 0, "periodSeconds": 1801}]},
                    "scaleDown": {"selectPolicy": "Min"}}}),
                vec![
                    "spec.behavior.scaleUp.stabilizationWindowSeconds",
                    "spec.behavior.scaleUp.selectPolicy",
                    "spec.behavior.scaleUp.policies[0].type",
                    "spec.behavior.scaleUp.policies[0].value",
                    "spec.behavior.scaleUp.policies[0].periodSeconds",
                    "spec.behavior.scaleDown.policies",
                ],
            ),
        ];
        for (patch, want) in cases {
            let mut m = autoscale_manifest();
            for (k, v) in patch.as_object().unwrap() {
                m["spec"][k] = v.clone();
            }
            let errs = hpa(m).validate();
            let got: Vec<&str> = errs.0.iter().map(|e| e.field.as_str()).collect();
            assert_eq!(got, want, "{patch}: {}", errs.summary());
        }
    }

    #[test]
    fn table_cells() {
        let now = Time::from_unix(1_700_000_600).unwrap().0;
        let mut h = hpa(autoscale_manifest());
        h.metadata.creation_timestamp = Time::from_unix(1_700_000_000);
        assert_eq!(
            HorizontalPodAutoscaler::table_columns()
                .iter()
                .map(|c| c.name)
                .collect::<Vec<_>>(),
            [
                "Name",
                "Reference",
                "Targets",
                "MinPods",
                "MaxPods",
                "Replicas",
                "Age"
            ]
        );
        assert_eq!(
            h.table_row(now),
            [
                json!("web"),
                json!("Deployment/web"),
                json!("cpu: <unknown>/50%"),
                json!("2"),
                json!(5),
                json!(0),
                json!("10m")
            ]
        );
        h.status = serde_json::from_value(json!({
            "currentReplicas": 3, "desiredReplicas": 3,
            "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 20, "averageValue": "100m"}}}]
        }))
        .unwrap();
        h.spec.min_replicas = None;
        assert_eq!(
            h.table_row(now)[2..6],
            [json!("cpu: 20%/50%"), json!("<unset>"), json!(5), json!(3)]
        );

        let specs: Vec<MetricSpec> = serde_json::from_value(json!([
            {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "64Mi"}}},
            {"type": "Pods", "pods": {"metric": {"name": "rps"}, "target": {"type": "AverageValue", "averageValue": "10"}}},
            {"type": "External", "external": {"metric": {"name": "q"}, "target": {"type": "Value", "value": "30"}}},
            {"type": "Object", "object": {"describedObject": {"kind": "Service", "name": "s"}, "metric": {"name": "hits"},
                "target": {"type": "AverageValue", "averageValue": "5"}}}
        ]))
        .unwrap();
        let statuses: Vec<MetricStatus> = serde_json::from_value(json!([
            {"type": "Resource", "resource": {"name": "memory", "current": {"averageValue": "32Mi"}}},
            {"type": "Pods", "pods": {"metric": {"name": "rps"}, "current": {"averageValue": "7"}}},
            {"type": "External", "external": {"metric": {"name": "q"}, "current": {"value": "12"}}}
        ]))
        .unwrap();
        let cases: Vec<(usize, &str)> = vec![
            (0, "memory: 32Mi/64Mi"),
            (1, "7/10"),
            (2, "12/30"),
            (3, "<unknown>/5 (avg)"),
        ];
        for (i, want) in cases {
            assert_eq!(
                format_metric(&specs[i], statuses.get(i)),
                want,
                "metric {i}"
            );
        }
        assert_eq!(
            format_metrics(&specs, &statuses),
            "memory: 32Mi/64Mi, 7/10 + 2 more..."
        );
        assert_eq!(format_metrics(&[], &[]), "<none>");
    }

    #[test]
    fn scale_from_view() {
        let meta = ObjectMeta {
            name: "web".into(),
            namespace: "default".into(),
            uid: "u1".into(),
            resource_version: "42".into(),
            labels: [("app".to_string(), "web".to_string())].into(),
            ..Default::default()
        };
        let view = ScaleView {
            spec_replicas: 3,
            status_replicas: 2,
            selector: "app=web".into(),
        };
        let s = Scale::from_view(&meta, &view);
        assert_eq!(
            serde_json::to_value(&s).unwrap(),
            json!({
                "apiVersion": "autoscaling/v1",
                "kind": "Scale",
                "metadata": {"name": "web", "namespace": "default", "uid": "u1", "resourceVersion": "42"},
                "spec": {"replicas": 3},
                "status": {"replicas": 2, "selector": "app=web"}
            })
        );
        assert!(s.validate().is_empty());
        let zero: Scale =
            serde_json::from_value(json!({"spec": {}, "status": {"replicas": 0}})).unwrap();
        assert_eq!(zero.spec.replicas, 0);
        let bad: Scale = serde_json::from_value(json!({"spec": {"replicas": -1}})).unwrap();
        assert_eq!(bad.validate().0[0].field, "spec.replicas");
    }
}
