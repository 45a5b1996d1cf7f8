//! `coordination.k8s.io/v1`: Leases, used for node heartbeats and leader
//! election.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::meta::{MicroTime, ObjectMeta};
use super::validation::{FieldErrors, dns1123_subdomain, validate_object_meta};
use super::{ApiObject, TableColumn, age};

/// The only coordinated leader election strategy Kubernetes defines.
pub const STRATEGY_OLDEST_EMULATION_VERSION: &str = "OldestEmulationVersion";

/// `coordination.k8s.io/v1` Lease.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Lease {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: LeaseSpec,
}

/// `LeaseSpec`: who holds the lease and until when.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LeaseSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder_identity: Option<String>,
    /// How long a holder's claim lasts after `renewTime`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_duration_seconds: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acquire_time: Option<MicroTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renew_time: Option<MicroTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_transitions: Option<i32>,
    /// Coordinated leader election strategy (`OldestEmulationVersion`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_holder: Option<String>,
}

crate::impl_resource!(Lease, "coordination.k8s.io", "v1", "Lease", "leases", true);

impl Lease {
    /// Whether the lease is held at `now`: a holder is named and
    /// `renewTime + leaseDurationSeconds` lies in the future.
    pub fn is_held(&self, now: chrono::DateTime<chrono::Utc>) -> bool {
        let s = &self.spec;
        match (&s.holder_identity, s.renew_time, s.lease_duration_seconds) {
            (Some(h), Some(renew), Some(d)) if !h.is_empty() => {
                renew.0 + chrono::Duration::seconds(i64::from(d)) > now
            }
            _ => false,
        }
    }
}

impl ApiObject for Lease {
    fn validate(&self) -> FieldErrors {
        let mut errs = FieldErrors::default();
        validate_object_meta(&self.metadata, dns1123_subdomain, &mut errs);
        let s = &self.spec;
        if let Some(d) = s.lease_duration_seconds
            && d <= 0
        {
            errs.invalid("spec.leaseDurationSeconds", d, "must be greater than 0");
        }
        if let Some(t) = s.lease_transitions
            && t < 0
        {
            errs.invalid(
                "spec.leaseTransitions",
                t,
                "must be greater than or equal to 0",
            );
        }
        if let Some(st) = &s.strategy
            && st != STRATEGY_OLDEST_EMULATION_VERSION
        {
            errs.not_supported("spec.strategy", st, &[STRATEGY_OLDEST_EMULATION_VERSION]);
        }
        if s.preferred_holder.as_deref().is_some_and(|p| !p.is_empty())
            && s.strategy.as_deref().unwrap_or("").is_empty()
        {
            errs.forbidden(
                "spec.preferredHolder",
                "may only be specified if `strategy` is defined",
            );
        }
        errs
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
            TableColumn::new("Holder", "string", 0),
            TableColumn::new("Age", "string", 0),
        ]
    }

    fn table_row(&self, now: chrono::DateTime<chrono::Utc>) -> Vec<serde_json::Value> {
        vec![
            self.metadata.name.clone().into(),
            self.spec.holder_identity.clone().unwrap_or_default().into(),
            age(self.metadata.creation_timestamp.as_ref(), now),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Time;

    fn at(s: &str) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .with_timezone(&chrono::Utc)
    }

    #[test]
    fn round_trips_a_node_lease() {
        let json = serde_json::json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": "node-1", "namespace": "kube-node-lease"},
            "spec": {
                "holderIdentity": "node-1",
                "leaseDurationSeconds": 40,
                "renewTime": "2024-05-01T10:00:00.123456Z"
            }
        });
        let lease: Lease = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(lease.spec.lease_duration_seconds, Some(40));
        assert_eq!(serde_json::to_value(&lease).unwrap(), json);
        assert!(lease.is_held(at("2024-05-01T10:00:39Z")));
        assert!(!lease.is_held(at("2024-05-01T10:00:41Z")));
        assert!(lease.validate().is_empty(), "{:?}", lease.validate());
    }

    #[test]
    fn validation_paths() {
        let cases: Vec<(LeaseSpec, &str, &str)> = vec![
            (
                LeaseSpec {
                    lease_duration_seconds: Some(0),
                    ..Default::default()
                },
                "spec.leaseDurationSeconds",
                "greater than 0",
            ),
            (
                LeaseSpec {
                    lease_transitions: Some(-1),
                    ..Default::default()
                },
                "spec.leaseTransitions",
                "greater than or equal to 0",
            ),
            (
                LeaseSpec {
                    strategy: Some("Newest".into()),
                    ..Default::default()
                },
                "spec.strategy",
                "OldestEmulationVersion",
            ),
            (
                LeaseSpec {
                    preferred_holder: Some("a".into()),
                    ..Default::default()
                },
                "spec.preferredHolder",
                "strategy",
            ),
        ];
        for (spec, field, detail) in cases {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: "l".into(),
                    ..Default::default()
                },
                spec,
                ..Default::default()
            };
            let errs = lease.validate();
            assert_eq!(errs.0.len(), 1, "{errs:?}");
            assert_eq!(errs.0[0].field, field);
            assert!(errs.0[0].to_string().contains(detail), "{}", errs.0[0]);
        }
        let ok = Lease {
            metadata: ObjectMeta {
                name: "l".into(),
                ..Default::default()
            },
            spec: LeaseSpec {
                strategy: Some(STRATEGY_OLDEST_EMULATION_VERSION.into()),
                preferred_holder: Some("a".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        assert!(ok.validate().is_empty());
        let bad_name = Lease {
            metadata: ObjectMeta {
                name: "Bad_Name".into(),
                ..Default::default()
            },
            ..Default::default()
        };
        assert_eq!(bad_name.validate().0[0].field, "metadata.name");
    }

    #[test]
    fn table_cells() {
        let now = at("2024-05-01T10:05:00Z");
        let mut lease = Lease {
            metadata: ObjectMeta {
                name: "controller".into(),
                creation_timestamp: Time::from_unix(now.timestamp() - 300),
                ..Default::default()
            },
            ..Default::default()
        };
        assert_eq!(
            Lease::table_columns()
                .iter()
                .map(|c| c.name)
                .collect::<Vec<_>>(),
            ["Name", "Holder", "Age"]
        );
        assert_eq!(lease.table_row(now), ["controller", "", "5m"]);
        lease.spec.holder_identity = Some("master-1".into());
        assert_eq!(lease.table_row(now), ["controller", "master-1", "5m"]);
    }
}
