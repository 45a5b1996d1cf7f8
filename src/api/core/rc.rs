//! ReplicationController behaviour.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::ReplicationController;
use super::common::{
    container_cells, format_labels, int, s, selector_string, validate_meta, validate_non_negative,
};
use super::pod::validate_pod_template;
use crate::api::validation::{FieldErrors, dns1123_subdomain, validate_labels};
use crate::api::{ApiObject, ScaleView, TableColumn, age};

impl ApiObject for ReplicationController {
    const HAS_STATUS: bool = true;

    /// Kubernetes' defaults: the selector and the controller's labels come
    /// from the template's labels when empty, replicas 1, and the pod
    /// template's spec defaults.
    fn set_defaults(&mut self) {
        let spec = &mut self.spec;
        if let Some(t) = &mut spec.template {
            if spec.selector.is_empty() {
                spec.selector = t.metadata.labels.clone();
            }
            if self.metadata.labels.is_empty() {
                self.metadata.labels = t.metadata.labels.clone();
            }
            t.set_defaults();
        }
        if spec.replicas.is_none() {
            spec.replicas = Some(1);
        }
    }

    fn validate(&self) -> FieldErrors {
        let mut errs = FieldErrors::default();
        validate_meta(&self.metadata, dns1123_subdomain, &mut errs);
        let spec = &self.spec;
        if let Some(r) = spec.replicas {
            validate_non_negative(i64::from(r), "spec.replicas", &mut errs);
        }
        validate_non_negative(
            i64::from(spec.min_ready_seconds),
            "spec.minReadySeconds",
            &mut errs,
        );
        if spec.selector.is_empty() {
            errs.required("spec.selector", "");
        }
        validate_labels(&spec.selector, "spec.selector", &mut errs);
        let Some(t) = &spec.template else {
            errs.required("spec.template", "");
            return errs;
        };
        let labels = &t.metadata.labels;
        if !spec.selector.is_empty() && !spec.selector.iter().all(|(k, v)| labels.get(k) == Some(v))
        {
            errs.invalid(
                "spec.template.metadata.labels",
                format_labels(labels),
                "`selector` does not match template `labels`",
            );
        }
        validate_pod_template(t, "spec.template", &mut errs);
        let policy = &t.spec.restart_policy;
        if !policy.is_empty() && policy != "Always" {
            errs.not_supported("spec.template.spec.restartPolicy", policy, &["Always"]);
        }
        if t.spec.active_deadline_seconds.is_some() {
            errs.forbidden(
                "spec.template.spec.activeDeadlineSeconds",
                "activeDeadlineSeconds in ReplicationController is not Supported",
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
            TableColumn::new("Desired", "integer", 0),
            TableColumn::new("Current", "integer", 0),
            TableColumn::new("Ready", "integer", 0),
            TableColumn::new("Age", "string", 0),
            TableColumn::new("Containers", "string", 1),
            TableColumn::new("Images", "string", 1),
            TableColumn::new("Selector", "string", 1),
        ]
    }

    fn table_row(&self, now: DateTime<Utc>) -> Vec<Value> {
        let containers = self
            .spec
            .template
            .as_ref()
            .map(|t| t.spec.containers.as_slice())
            .unwrap_or_default();
        let (names, images) = container_cells(containers);
        vec![
            s(&self.metadata.name),
            int(i64::from(self.spec.replicas.unwrap_or(1))),
            int(i64::from(self.status.replicas)),
            int(i64::from(self.status.ready_replicas)),
            age(self.metadata.creation_timestamp.as_ref(), now),
            s(names),
            s(images),
            s(format_labels(&self.spec.selector)),
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
            spec_replicas: self.spec.replicas.unwrap_or(1),
            status_replicas: self.status.replicas,
            selector: selector_string(&self.spec.selector),
        })
    }

    fn set_scale(&mut self, replicas: i32) -> bool {
        self.spec.replicas = Some(replicas);
        true
    }
}
