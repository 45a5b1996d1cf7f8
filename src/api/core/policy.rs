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
