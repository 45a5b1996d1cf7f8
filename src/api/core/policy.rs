//! ResourceQuota and LimitRange behaviour.

use std::cmp::Ordering;
use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::common::{created_at, s, validate_enum, validate_meta, validate_resource_list};
use super::{LimitRange, LimitRangeItem, ResourceQuota};
use crate::api::quantity::{Quantity, ResourceList};
use crate::api::validation::{FieldErrors, dns1123_subdomain};
use crate::api::{ApiObject, TableColumn, age};

const QUOTA_SCOPES: [&str; 7] = [
    "Terminating",
    "NotTerminating",
    "BestEffort",
    "NotBestEffort",
    "PriorityClass",
    "CrossNamespacePodAffinity",
    "VolumeAttributesClass",
];

impl ApiObject for ResourceQuota {
    const HAS_STATUS: bool = true;

    fn validate(&self) -> FieldErrors {
        let mut errs = FieldErrors::default();
        validate_meta(&self.metadata, dns1123_subdomain, &mut errs);
        validate_resource_list(&self.spec.hard, "spec.hard", &mut errs);
        let mut scopes = BTreeSet::new();
        for (i, scope) in self.spec.scopes.iter().enumerate() {
            let p = format!("spec.scopes[{i}]");
            if !QUOTA_SCOPES.contains(&scope.as_str()) {
                errs.not_supported(&p, scope, &QUOTA_SCOPES);
            } else if !scopes.insert(scope.as_str()) {
                errs.duplicate(p, scope);
            }
        }
        if let Some(sel) = &self.spec.scope_selector {
            for (i, req) in sel.match_expressions.iter().enumerate() {
                let p = format!("spec.scopeSelector.matchExpressions[{i}]");
                if !QUOTA_SCOPES.contains(&req.scope_name.as_str()) {
                    errs.not_supported(format!("{p}.scopeName"), &req.scope_name, &QUOTA_SCOPES);
                }
                match req.operator.as_str() {
                    "In" | "NotIn" => {
                        if req.values.is_empty() {
                            errs.required(
                                format!("{p}.values"),
                                "must be at least one value when `operator` is 'In' or 'NotIn' for scope selector",
                            );
                        }
                    }
                    "Exists" | "DoesNotExist" => {
                        if !req.values.is_empty() {
                            errs.invalid(
                                format!("{p}.values"),
                                &req.values,
                                "must be no value when `operator` is 'Exist' or 'DoesNotExist' for scope selector",
                            );
                        }
                    }
                    other => errs.not_supported(
                        format!("{p}.operator"),
                        other,
                        &["In", "NotIn", "Exists", "DoesNotExist"],
                    ),
                }
            }
        }
        validate_resource_list(&self.status.hard, "status.hard", &mut errs);
        validate_resource_list(&self.status.used, "status.used", &mut errs);
        errs
    }

    fn keep_status(&mut self, old: Option<&Self>) {
        self.status = old.map(|o| o.status.clone()).unwrap_or_default();
    }

    fn spec_changed(&self, old: &Self) -> bool {
        self.spec != old.spec
    }

    /// Kubernetes 1.33 and later put Age last.
    fn table_columns() -> Vec<TableColumn> {
        vec![
            TableColumn {
                format: "name",
                ..TableColumn::new("Name", "string", 0)
            },
            TableColumn::new("Request", "string", 0),
            TableColumn::new("Limit", "string", 0),
            TableColumn::new("Age", "string", 0),
        ]
    }

    fn table_row(&self, now: DateTime<Utc>) -> Vec<Value> {
        let mut requests = Vec::new();
        let mut limits = Vec::new();
        let zero = Quantity("0".into());
        for (name, hard) in &self.status.hard {
            let used = self.status.used.get(name).unwrap_or(&zero);
            let cell = format!("{name}: {used}/{hard}");
            if name.split('.').count() > 1 && name.starts_with("limits.") {
                limits.push(cell);
            } else {
                requests.push(cell);
            }
        }
        vec![
            s(&self.metadata.name),
            s(requests.join(", ")),
            s(limits.join(", ")),
            age(self.metadata.creation_timestamp.as_ref(), now),
        ]
    }
}

impl LimitRangeItem {
    /// Kubernetes' defaults for a Container item: `default` from `max`,
    /// `defaultRequest` from `default`, then from `min`.
    pub fn set_defaults(&mut self) {
        if self.type_ != "Container" {
            return;
        }
        for (k, v) in &self.max {
            self.default.entry(k.clone()).or_insert_with(|| v.clone());
        }
        for (k, v) in self.default.iter().chain(&self.min) {
            self.default_request
                .entry(k.clone())
                .or_insert_with(|| v.clone());
        }
    }
}

fn check_order(
    low: &ResourceList,
    low_name: &str,
    high: &ResourceList,
    high_name: &str,
    path: &str,
    errs: &mut FieldErrors,
) {
    for (k, lo) in low {
        if let Some(hi) = high.get(k)
            && lo.cmp_amount(hi) == Some(Ordering::Greater)
        {
            errs.invalid(
                format!("{path}.{low_name}[{k}]"),
                lo.as_str(),
                format!("{low_name} value {lo} is greater than {high_name} value {hi}"),
            );
        }
    }
}

fn validate_limit_item(item: &LimitRangeItem, p: &str, errs: &mut FieldErrors) {
    if item.type_.is_empty() {
        errs.required(format!("{p}.type"), "");
    } else {
        validate_enum(
            &item.type_,
            &["Container", "Pod"],
            &format!("{p}.type"),
            errs,
        );
    }
    let lists = [
        (&item.max, "max"),
        (&item.min, "min"),
        (&item.default, "default"),
        (&item.default_request, "defaultRequest"),
        (&item.max_limit_request_ratio, "maxLimitRequestRatio"),
    ];
    for (list, field) in lists {
        validate_resource_list(list, &format!("{p}.{field}"), errs);
    }
    if item.type_ == "Pod" {
        if !item.default.is_empty() {
            errs.forbidden(
                format!("{p}.default"),
                "may not be specified when `type` is 'Pod'",
            );
        }
        if !item.default_request.is_empty() {
            errs.forbidden(
                format!("{p}.defaultRequest"),
                "may not be specified when `type` is 'Pod'",
            );
        }
    }
    check_order(&item.min, "min", &item.max, "max", p, errs);
    check_order(&item.default, "default", &item.max, "max", p, errs);
    check_order(&item.min, "min", &item.default, "default", p, errs);
    check_order(
        &item.default_request,
        "defaultRequest",
        &item.max,
        "max",
        p,
        errs,
    );
    check_order(
        &item.min,
        "min",
        &item.default_request,
        "defaultRequest",
        p,
        errs,
    );
    check_order(
        &item.default_request,
        "defaultRequest",
        &item.default,
        "default",
        p,
        errs,
    );
    let one = Quantity("1".into());
    for (k, ratio) in &item.max_limit_request_ratio {
        if ratio.cmp_amount(&one) == Some(Ordering::Less) {
            errs.invalid(
                format!("{p}.maxLimitRequestRatio[{k}]"),
                ratio.as_str(),
                "ratio must be greater than or equal to 1",
            );
        }
    }
}

impl ApiObject for LimitRange {
    fn set_defaults(&mut self) {
        for item in &mut self.spec.limits {
            item.set_defaults();
        }
    }

    fn validate(&self) -> FieldErrors {
        let mut errs = FieldErrors::default();
        validate_meta(&self.metadata, dns1123_subdomain, &mut errs);
        for (i, item) in self.spec.limits.iter().enumerate() {
            validate_limit_item(item, &format!("spec.limits[{i}]"), &mut errs);
        }
        errs
    }

    fn spec_changed(&self, old: &Self) -> bool {
        self.spec != old.spec
    }

    /// LimitRanges have no printer in Kubernetes: the generic table.
    fn table_columns() -> Vec<TableColumn> {
        vec![
            TableColumn {
                format: "name",
                ..TableColumn::new("Name", "string", 0)
            },
            TableColumn::new("Created At", "date", 0),
        ]
    }

    fn table_row(&self, _now: DateTime<Utc>) -> Vec<Value> {
        vec![s(&self.metadata.name), created_at(&self.metadata)]
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

    fn quota(v: Value) -> ResourceQuota {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn quota_validation() {
        let cases: Vec<(Value, Vec<&str>)> = vec![
            (
                json!({"hard": {"pods": "10", "requests.cpu": "4", "limits.memory": "8Gi"}}),
                vec![],
            ),
            (json!({"hard": {"pods": "ten"}}), vec!["spec.hard[pods]"]),
            (json!({"hard": {"cpu": "-1"}}), vec!["spec.hard[cpu]"]),
            (json!({"hard": {"bad name": "1"}}), vec!["spec.hard"]),
            (
                json!({"scopes": ["BestEffort", "Cheap"]}),
                vec!["spec.scopes[1]"],
            ),
            (
                json!({"scopes": ["BestEffort", "BestEffort"]}),
                vec!["spec.scopes[1]"],
            ),
            (
                json!({"scopeSelector": {"matchExpressions": [
                    {"scopeName": "PriorityClass", "operator": "In", "values": ["high"]},
                    {"scopeName": "PriorityClass", "operator": "In"},
                    {"scopeName": "Nice", "operator": "Exists"},
                    {"scopeName": "BestEffort", "operator": "Exists", "values": ["x"]},
                    {"scopeName": "BestEffort", "operator": "Near"}]}}),
                vec![
                    "spec.scopeSelector.matchExpressions[1].values",
                    "spec.scopeSelector.matchExpressions[2].scopeName",
                    "spec.scopeSelector.matchExpressions[3].values",
                    "spec.scopeSelector.matchExpressions[4].operator",
                ],
            ),
        ];
        for (spec, want) in cases {
            let q = quota(json!({"metadata": {"name": "q"}, "spec": spec}));
            assert_eq!(fields(q.validate()), want, "{spec}");
        }
        let bad_status =
            quota(json!({"metadata": {"name": "q"}, "status": {"used": {"pods": "x"}}}));
        assert_eq!(fields(bad_status.validate()), ["status.used[pods]"]);
    }

    #[test]
    fn quota_status_and_table() {
        let q = quota(json!({
            "metadata": {"name": "compute", "creationTimestamp": "2024-05-01T11:00:00Z"},
            "spec": {"hard": {"pods": "10"}},
            "status": {
                "hard": {"limits.cpu": "2", "limits.memory": "2Gi", "pods": "10", "requests.cpu": "1", "requests.memory": "1Gi"},
                "used": {"limits.cpu": "500m", "pods": "3", "requests.cpu": "250m", "requests.memory": "64Mi"}
            }
        }));
        assert_eq!(
            q.table_row(now()),
            [
                json!("compute"),
                json!("pods: 3/10, requests.cpu: 250m/1, requests.memory: 64Mi/1Gi"),
                json!("limits.cpu: 500m/2, limits.memory: 0/2Gi"),
                json!("60m"),
            ]
        );
        assert_eq!(
            ResourceQuota::table_columns()
                .iter()
                .map(|c| c.name)
                .collect::<Vec<_>>(),
            ["Name", "Request", "Limit", "Age"]
        );
        let mut created = q.clone();
        created.keep_status(None);
        assert_eq!(created.status, Default::default());
        let mut upd =
            quota(json!({"metadata": {"name": "compute"}, "spec": {"hard": {"pods": "20"}}}));
        upd.keep_status(Some(&q));
        assert_eq!(upd.status, q.status);
        assert!(upd.spec_changed(&q));
    }

    fn limit_range(limits: Value) -> LimitRange {
        serde_json::from_value(json!({"metadata": {"name": "lr"}, "spec": {"limits": limits}}))
            .unwrap()
    }

    #[test]
    fn limit_range_defaults() {
        let mut lr = limit_range(json!([
            {"type": "Container", "max": {"cpu": "2", "memory": "1Gi"}, "min": {"cpu": "50m", "memory": "16Mi"},
             "default": {"cpu": "500m"}},
            {"type": "Pod", "max": {"cpu": "4"}}
        ]));
        lr.set_defaults();
        let c = &lr.spec.limits[0];
        let q = |list: &ResourceList, k: &str| list.get(k).map(|q| q.as_str().to_string());
        assert_eq!(q(&c.default, "cpu").as_deref(), Some("500m"));
        assert_eq!(q(&c.default, "memory").as_deref(), Some("1Gi"));
        assert_eq!(q(&c.default_request, "cpu").as_deref(), Some("500m"));
        assert_eq!(q(&c.default_request, "memory").as_deref(), Some("1Gi"));
        assert!(lr.spec.limits[1].default.is_empty());
        assert!(lr.validate().is_empty());

        let mut min_only = limit_range(json!([{"type": "Container", "min": {"cpu": "100m"}}]));
        min_only.set_defaults();
        assert_eq!(
            q(&min_only.spec.limits[0].default_request, "cpu").as_deref(),
            Some("100m")
        );
    }

    #[test]
    fn limit_range_validation() {
        let cases: Vec<(Value, Vec<&str>)> = vec![
            (
                json!([{"type": "Container", "max": {"cpu": "1"}, "min": {"cpu": "100m"}}]),
                vec![],
            ),
            (
                json!([{"type": "PersistentVolumeClaim"}]),
                vec!["spec.limits[0].type"],
            ),
            (json!([{"max": {"cpu": "1"}}]), vec!["spec.limits[0].type"]),
            (
                json!([{"type": "Container", "max": {"cpu": "x"}}]),
                vec!["spec.limits[0].max[cpu]"],
            ),
            (
                json!([{"type": "Container", "max": {"cpu": "1"}, "min": {"cpu": "2"}}]),
                vec!["spec.limits[0].min[cpu]"],
            ),
            (
                json!([{"type": "Container", "max": {"memory": "1Gi"}, "default": {"memory": "2Gi"}}]),
                vec!["spec.limits[0].default[memory]"],
            ),
            (
                json!([{"type": "Container", "default": {"cpu": "1"}, "defaultRequest": {"cpu": "2"}}]),
                vec!["spec.limits[0].defaultRequest[cpu]"],
            ),
            (
                json!([{"type": "Pod", "default": {"cpu": "1"}}]),
                vec!["spec.limits[0].default"],
            ),
            (
                json!([{"type": "Container", "maxLimitRequestRatio": {"cpu": "500m"}}]),
                vec!["spec.limits[0].maxLimitRequestRatio[cpu]"],
            ),
        ];
        for (limits, want) in cases {
            assert_eq!(
                fields(limit_range(limits.clone()).validate()),
                want,
                "{limits}"
            );
        }
    }

    #[test]
    fn limit_range_table_is_the_generic_one() {
        let mut lr = limit_range(json!([]));
        assert_eq!(
            lr.table_row(now()),
            [json!("lr"), json!("0001-01-01T00:00:00Z")]
        );
        lr.metadata.creation_timestamp = crate::api::Time::from_unix(now().timestamp());
        assert_eq!(
            lr.table_row(now()),
            [json!("lr"), json!("2024-05-01T12:00:00Z")]
        );
        let cols = LimitRange::table_columns();
        assert_eq!((cols[1].name, cols[1].type_), ("Created At", "date"));
    }
}
