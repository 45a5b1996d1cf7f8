//! Event (core/v1) behaviour.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::Event;
use super::common::{int, s, since, validate_enum, validate_meta, validate_non_negative};
use crate::api::validation::{FieldErrors, dns1123_subdomain};
use crate::api::{ApiObject, TableColumn, human_duration};

impl ApiObject for Event {
    fn validate(&self) -> FieldErrors {
        let mut errs = FieldErrors::default();
        validate_meta(&self.metadata, dns1123_subdomain, &mut errs);
        let involved = &self.involved_object.namespace;
        if !involved.is_empty() && *involved != self.metadata.namespace {
            errs.invalid(
                "involvedObject.namespace",
                involved,
                "does not match event.namespace",
            );
        }
        validate_enum(&self.type_, &["Normal", "Warning"], "type", &mut errs);
        validate_non_negative(i64::from(self.count), "count", &mut errs);
        if let Some(series) = &self.series {
            validate_non_negative(i64::from(series.count), "series.count", &mut errs);
        }
        errs
    }

    fn table_columns() -> Vec<TableColumn> {
        vec![
            TableColumn::new("Last Seen", "string", 0),
            TableColumn::new("Type", "string", 0),
            TableColumn::new("Reason", "string", 0),
            TableColumn::new("Object", "string", 0),
            TableColumn::new("Subobject", "string", 1),
            TableColumn::new("Source", "string", 1),
            TableColumn::new("Message", "string", 0),
            TableColumn::new("First Seen", "string", 1),
            TableColumn::new("Count", "string", 1),
            TableColumn {
                format: "name",
                ..TableColumn::new("Name", "string", 1)
            },
        ]
    }

    /// kubectl's event row: times fall back from the legacy timestamps to
    /// `eventTime` and `series`; a count of 0 means a singleton.
    fn table_row(&self, now: DateTime<Utc>) -> Vec<Value> {
        // kubectl rounds to the nearest second; only MicroTime has a fraction.
        let micro = |t: Option<&crate::api::MicroTime>| match t {
            Some(t) => {
                let millis = (now - t.0).num_milliseconds();
                human_duration(chrono::Duration::seconds((millis + 500).div_euclid(1000)))
            }
            None => "<unknown>".to_string(),
        };
        let first = match &self.first_timestamp {
            Some(t) => since(Some(t), now),
            None => micro(self.event_time.as_ref()),
        };
        let mut last = match &self.last_timestamp {
            Some(t) => since(Some(t), now),
            None => first.clone(),
        };
        let mut count = self.count;
        if let Some(series) = &self.series {
            last = micro(series.last_observed_time.as_ref());
            count = series.count;
        } else if count == 0 {
            count = 1;
        }
        let obj = &self.involved_object;
        let target = if obj.name.is_empty() {
            obj.kind.to_lowercase()
        } else {
            format!("{}/{}", obj.kind.to_lowercase(), obj.name)
        };
        let component = if self.source.component.is_empty() {
            &self.reporting_component
        } else {
            &self.source.component
        };
        let host = if self.source.host.is_empty() {
            &self.reporting_instance
        } else {
            &self.source.host
        };
        let source = if host.is_empty() {
            component.clone()
        } else {
            format!("{component}, {host}")
        };
        vec![
            s(last),
            s(&self.type_),
            s(&self.reason),
            s(target),
            s(&obj.field_path),
            s(source),
            s(self.message.trim()),
            s(first),
            int(i64::from(count)),
            s(&self.metadata.name),
        ]
    }

    fn field_value(&self, field: &str) -> Option<String> {
        let obj = &self.involved_object;
        Some(match field {
            "involvedObject.kind" => obj.kind.clone(),
            "involvedObject.namespace" => obj.namespace.clone(),
            "involvedObject.name" => obj.name.clone(),
            "involvedObject.uid" => obj.uid.clone(),
            "involvedObject.apiVersion" => obj.api_version.clone(),
            "involvedObject.resourceVersion" => obj.resource_version.clone(),
            "involvedObject.fieldPath" => obj.field_path.clone(),
            "reason" => self.reason.clone(),
            "reportingComponent" => self.reporting_component.clone(),
            "source" => self.source.component.clone(),
            "type" => self.type_.clone(),
            _ => return None,
        })
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

    fn event(v: Value) -> Event {
        serde_json::from_value(v).unwrap()
    }

    fn kubelet_event() -> Event {
        event(json!({
            "metadata": {"name": "web.17c5a2f1b3a8e7d2", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "namespace": "default", "name": "web", "uid": "u-1",
                "apiVersion": "v1", "resourceVersion": "42", "fieldPath": "spec.containers{web}"},
            "reason": "Started", "message": "Started container web\n",
            "source": {"component": "kubelet", "host": "node-1"},
            "firstTimestamp": "2024-05-01T11:00:00Z", "lastTimestamp": "2024-05-01T11:58:00Z",
            "count": 4, "type": "Normal",
            "reportingComponent": "", "reportingInstance": ""
        }))
    }

    #[test]
    fn legacy_event_row() {
        assert_eq!(
            kubelet_event().table_row(now()),
            [
                json!("2m"),
                json!("Normal"),
                json!("Started"),
                json!("pod/web"),
                json!("spec.containers{web}"),
                json!("kubelet, node-1"),
                json!("Started container web"),
                json!("60m"),
                json!(4),
                json!("web.17c5a2f1b3a8e7d2"),
            ]
        );
    }

    #[test]
    fn new_style_event_rows() {
        let singleton = event(json!({
            "metadata": {"name": "e1", "namespace": "default"},
            "involvedObject": {"kind": "Node", "name": ""},
            "eventTime": "2024-05-01T11:59:50.123456Z",
            "reportingComponent": "wasmk-scheduler", "reportingInstance": "master-1",
            "type": "Warning", "reason": "FailedScheduling"
        }));
        let row = singleton.table_row(now());
        assert_eq!(row[0], "10s");
        assert_eq!(row[3], "node");
        assert_eq!(row[5], "wasmk-scheduler, master-1");
        assert_eq!(row[7], "10s");
        assert_eq!(row[8], 1);

        let mut series = singleton.clone();
        series.series = Some(super::super::EventSeries {
            count: 7,
            last_observed_time: Some(crate::api::MicroTime(now() - chrono::Duration::seconds(3))),
        });
        let row = series.table_row(now());
        assert_eq!((row[0].clone(), row[8].clone()), (json!("3s"), json!(7)));

        let timeless = event(
            json!({"metadata": {"name": "e2"}, "involvedObject": {"kind": "Pod", "name": "x"}}),
        );
        let row = timeless.table_row(now());
        assert_eq!(
            (row[0].clone(), row[7].clone()),
            (json!("<unknown>"), json!("<unknown>"))
        );
        assert_eq!(Event::table_columns().len(), row.len());
    }

    #[test]
    fn validation() {
        assert!(kubelet_event().validate().is_empty());
        let mut e = kubelet_event();
        e.involved_object.namespace = "other".into();
        e.type_ = "Info".into();
        e.count = -1;
        let fields: Vec<String> = e.validate().0.into_iter().map(|e| e.field).collect();
        assert_eq!(fields, ["involvedObject.namespace", "type", "count"]);
    }

    #[test]
    fn field_values() {
        let e = kubelet_event();
        let cases = [
            ("involvedObject.kind", Some("Pod")),
            ("involvedObject.namespace", Some("default")),
            ("involvedObject.name", Some("web")),
            ("involvedObject.uid", Some("u-1")),
            ("involvedObject.apiVersion", Some("v1")),
            ("involvedObject.resourceVersion", Some("42")),
            ("involvedObject.fieldPath", Some("spec.containers{web}")),
            ("reason", Some("Started")),
            ("type", Some("Normal")),
            ("source", Some("kubelet")),
            ("reportingComponent", Some("")),
            ("message", None),
        ];
        for (field, want) in cases {
            assert_eq!(e.field_value(field).as_deref(), want, "{field}");
        }
    }
}
