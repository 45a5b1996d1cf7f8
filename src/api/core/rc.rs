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

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::json;

    use super::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap()
    }

    fn rc(v: Value) -> ReplicationController {
        serde_json::from_value(v).unwrap()
    }

    fn base() -> ReplicationController {
        rc(json!({
            "metadata": {"name": "web", "namespace": "default", "creationTimestamp": "2024-05-01T11:59:00Z"},
            "spec": {"template": {
                "metadata": {"labels": {"app": "web", "tier": "front"}},
                "spec": {"containers": [{"name": "web", "image": "hello:v1"}, {"name": "log", "image": "tail:v2"}]}
            }}
        }))
    }

    #[test]
    fn defaults() {
        let mut r = base();
        r.set_defaults();
        assert_eq!(r.spec.replicas, Some(1));
        assert_eq!(
            r.spec.selector,
            r.spec.template.as_ref().unwrap().metadata.labels
        );
        assert_eq!(r.metadata.labels, r.spec.selector);
        let t = r.spec.template.as_ref().unwrap();
        assert_eq!(t.spec.restart_policy, "Always");
        assert_eq!(t.spec.containers[0].image_pull_policy, "IfNotPresent");
        assert!(r.validate().is_empty(), "{:?}", r.validate());

        let mut explicit = base();
        explicit.spec.replicas = Some(0);
        explicit.spec.selector.insert("app".into(), "web".into());
        explicit.metadata.labels.insert("owner".into(), "me".into());
        explicit.set_defaults();
        assert_eq!(explicit.spec.replicas, Some(0));
        assert_eq!(explicit.spec.selector.len(), 1);
        assert_eq!(explicit.metadata.labels.len(), 1);
    }

    #[test]
    fn validation_rules() {
        type Case = (
            &'static str,
            fn(&mut ReplicationController),
            &'static [&'static str],
        );
        let cases: &[Case] = &[
            ("valid", |_| {}, &[]),
            (
                "negative replicas",
                |r| r.spec.replicas = Some(-1),
                &["spec.replicas"],
            ),
            (
                "negative minReadySeconds",
                |r| r.spec.min_ready_seconds = -1,
                &["spec.minReadySeconds"],
            ),
            (
                "no selector",
                |r| r.spec.selector.clear(),
                &["spec.selector"],
            ),
            (
                "selector does not match",
                |r| {
                    r.spec.selector.insert("app".into(), "api".into());
                },
                &["spec.template.metadata.labels"],
            ),
            (
                "no template",
                |r| r.spec.template = None,
                &["spec.template"],
            ),
            (
                "template restart policy",
                |r| r.spec.template.as_mut().unwrap().spec.restart_policy = "Never".into(),
                &["spec.template.spec.restartPolicy"],
            ),
            (
                "template container",
                |r| {
                    r.spec.template.as_mut().unwrap().spec.containers[1]
                        .image
                        .clear()
                },
                &["spec.template.spec.containers[1].image"],
            ),
            (
                "template labels",
                |r| {
                    r.spec
                        .template
                        .as_mut()
                        .unwrap()
                        .metadata
                        .labels
                        .insert("x".into(), "a b".into());
                },
                &["spec.template.metadata.labels[x]"],
            ),
            (
                "active deadline",
                |r| {
                    r.spec
                        .template
                        .as_mut()
                        .unwrap()
                        .spec
                        .active_deadline_seconds = Some(10)
                },
                &["spec.template.spec.activeDeadlineSeconds"],
            ),
        ];
        for (name, mutate, want) in cases {
            let mut r = base();
            r.set_defaults();
            mutate(&mut r);
            let got: Vec<String> = r.validate().0.into_iter().map(|e| e.field).collect();
            assert_eq!(got, *want, "{name}");
        }
    }

    #[test]
    fn table_scale_and_fields() {
        let mut r = base();
        r.set_defaults();
        r.spec.replicas = Some(3);
        r.status.replicas = 2;
        r.status.ready_replicas = 1;
        assert_eq!(
            r.table_row(now()),
            [
                json!("web"),
                json!(3),
                json!(2),
                json!(1),
                json!("60s"),
                json!("web,log"),
                json!("hello:v1,tail:v2"),
                json!("app=web,tier=front"),
            ]
        );
        assert_eq!(
            r.scale(),
            Some(ScaleView {
                spec_replicas: 3,
                status_replicas: 2,
                selector: "app=web,tier=front".into(),
            })
        );
        assert!(r.set_scale(5));
        assert_eq!(r.spec.replicas, Some(5));
        assert_eq!(r.field_value("status.replicas").as_deref(), Some("2"));
        assert_eq!(r.field_value("spec.replicas"), None);

        let old = r.clone();
        let mut upd = base();
        upd.keep_status(Some(&old));
        assert_eq!(upd.status.replicas, 2);
        upd.keep_status(None);
        assert_eq!(upd.status, Default::default());
        assert!(upd.spec_changed(&old));
        assert!(!old.spec_changed(&r));
    }
}
