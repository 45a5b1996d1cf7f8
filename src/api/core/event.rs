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
        let micro = |t: Option<&crate::api::MicroTime>| match t {
            Some(t) => human_duration(now - t.0),
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
