//! Service and Endpoints behaviour.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::common::{
    format_labels, ip_family, s, validate_enum, validate_ip, validate_meta,
    validate_port_num_or_name, validate_port_number, validate_protocol,
};
use super::{Endpoints, Service, ServiceSpec};
use crate::api::quantity::IntOrString;
use crate::api::validation::{
    FieldErrors, dns1035_label, dns1123_label, dns1123_subdomain, validate_labels,
};
use crate::api::{ApiObject, TableColumn, age};

const SERVICE_TYPES: [&str; 4] = ["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"];

fn uses_node_ports(type_: &str) -> bool {
    matches!(type_, "NodePort" | "LoadBalancer")
}

impl ServiceSpec {
    /// Kubernetes' service defaults: type ClusterIP, sessionAffinity None,
    /// port protocol TCP, targetPort = port, traffic policies Cluster, and
    /// `clusterIPs`/`clusterIP` and the IP family fields kept consistent.
    pub fn set_defaults(&mut self) {
        if self.type_.is_empty() {
            self.type_ = "ClusterIP".into();
        }
        if self.session_affinity.is_empty() {
            self.session_affinity = "None".into();
        }
        for p in &mut self.ports {
            if p.protocol.is_empty() {
                p.protocol = "TCP".into();
            }
            if p.target_port.is_none() {
                p.target_port = Some(IntOrString::Int(p.port));
            }
        }
        if uses_node_ports(&self.type_) && self.external_traffic_policy.is_empty() {
            self.external_traffic_policy = "Cluster".into();
        }
        if self.type_ == "ExternalName" {
            return;
        }
        if self.internal_traffic_policy.is_none() {
            self.internal_traffic_policy = Some("Cluster".into());
        }
        if self.cluster_ips.is_empty() && !self.cluster_ip.is_empty() {
            self.cluster_ips = vec![self.cluster_ip.clone()];
        }
        if self.cluster_ip.is_empty()
            && let Some(first) = self.cluster_ips.first()
        {
            self.cluster_ip = first.clone();
        }
        if !self.cluster_ip.is_empty() {
            if self.ip_families.is_empty() {
                self.ip_families = self
                    .cluster_ips
                    .iter()
                    .map(|ip| ip_family(ip).unwrap_or("IPv4").to_string())
                    .collect();
            }
            if self.ip_family_policy.is_none() {
                self.ip_family_policy = Some("SingleStack".into());
            }
        }
    }
}

fn validate_service_spec(spec: &ServiceSpec, errs: &mut FieldErrors) {
    let t = spec.type_.as_str();
    validate_enum(t, &SERVICE_TYPES, "spec.type", errs);
    let external_name = t == "ExternalName";
    if spec.ports.is_empty() && !external_name {
        errs.required("spec.ports", "");
    }
    let mut names = BTreeSet::new();
    let mut port_protocols = BTreeSet::new();
    for (i, p) in spec.ports.iter().enumerate() {
        let pp = format!("spec.ports[{i}]");
        if p.name.is_empty() {
            if spec.ports.len() > 1 {
                errs.required(format!("{pp}.name"), "");
            }
        } else if let Err(e) = dns1123_label(&p.name) {
            errs.invalid(format!("{pp}.name"), &p.name, e);
        } else if !names.insert(p.name.as_str()) {
            errs.duplicate(format!("{pp}.name"), &p.name);
        }
        validate_port_number(p.port, &format!("{pp}.port"), errs);
        validate_protocol(&p.protocol, &format!("{pp}.protocol"), errs);
        if let Some(tp) = &p.target_port {
            validate_port_num_or_name(tp, &format!("{pp}.targetPort"), errs);
        }
        if p.node_port != 0 {
            if !uses_node_ports(t) {
                errs.forbidden(
                    format!("{pp}.nodePort"),
                    format!("may not be used when `type` is '{t}'"),
                );
            } else {
                validate_port_number(p.node_port, &format!("{pp}.nodePort"), errs);
            }
        }
        let protocol = if p.protocol.is_empty() {
            "TCP"
        } else {
            &p.protocol
        };
        if !port_protocols.insert((p.port, protocol)) {
            errs.duplicate(pp, format!("{}/{protocol}", p.port));
        }
    }
    validate_labels(&spec.selector, "spec.selector", errs);
    if external_name {
        if !spec.cluster_ip.is_empty() {
            errs.forbidden("spec.clusterIP", "may not be set for ExternalName services");
        }
        if spec.external_name.is_empty() {
            errs.required("spec.externalName", "");
        } else if let Err(e) = dns1123_subdomain(&spec.external_name) {
            errs.invalid("spec.externalName", &spec.external_name, e);
        }
    } else if !spec.cluster_ip.is_empty() && spec.cluster_ip != "None" {
        validate_ip(&spec.cluster_ip, "spec.clusterIP", errs);
    } else if spec.cluster_ip == "None" && t != "ClusterIP" && !t.is_empty() {
        errs.invalid(
            "spec.clusterIP",
            &spec.cluster_ip,
            format!("may not be set to 'None' for {t} services"),
        );
    }
    for (i, ip) in spec.cluster_ips.iter().enumerate() {
        let p = format!("spec.clusterIPs[{i}]");
        if i == 0 && !spec.cluster_ip.is_empty() && *ip != spec.cluster_ip {
            errs.invalid(p, ip, "must match `clusterIP` if specified");
        } else if ip != "None" || i > 0 {
            validate_ip(ip, &p, errs);
        }
    }
    for (i, ip) in spec.external_ips.iter().enumerate() {
        validate_ip(ip, &format!("spec.externalIPs[{i}]"), errs);
    }
    validate_enum(
        &spec.session_affinity,
        &["None", "ClientIP"],
        "spec.sessionAffinity",
        errs,
    );
    if !spec.external_traffic_policy.is_empty() {
        if !uses_node_ports(t) {
            errs.invalid(
                "spec.externalTrafficPolicy",
                &spec.external_traffic_policy,
                "may only be set when `type` is 'NodePort' or 'LoadBalancer'",
            );
        } else {
            validate_enum(
                &spec.external_traffic_policy,
                &["Cluster", "Local"],
                "spec.externalTrafficPolicy",
                errs,
            );
        }
    }
    if let Some(p) = &spec.internal_traffic_policy {
        validate_enum(p, &["Cluster", "Local"], "spec.internalTrafficPolicy", errs);
    }
    let mut families = BTreeSet::new();
    if spec.ip_families.len() > 2 {
        errs.invalid(
            "spec.ipFamilies",
            &spec.ip_families,
            "may specify no more than one IP for each IP family",
        );
    }
    for (i, f) in spec.ip_families.iter().enumerate() {
        let p = format!("spec.ipFamilies[{i}]");
        validate_enum(f, &["IPv4", "IPv6"], &p, errs);
        if !families.insert(f.as_str()) {
            errs.duplicate(p, f);
        }
    }
    if let Some(p) = &spec.ip_family_policy {
        validate_enum(
            p,
            &["SingleStack", "PreferDualStack", "RequireDualStack"],
            "spec.ipFamilyPolicy",
            errs,
        );
    }
}

/// kubectl's External-IP cell.
fn external_ip(svc: &Service) -> String {
    let spec = &svc.spec;
    match spec.type_.as_str() {
        "ClusterIP" | "NodePort" => {
            if spec.external_ips.is_empty() {
                "<none>".into()
            } else {
                spec.external_ips.join(",")
            }
        }
        "LoadBalancer" => {
            let lb: BTreeSet<&str> = svc
                .status
                .load_balancer
                .ingress
                .iter()
                .filter_map(|i| {
                    if !i.ip.is_empty() {
                        Some(i.ip.as_str())
                    } else if !i.hostname.is_empty() {
                        Some(i.hostname.as_str())
                    } else {
                        None
                    }
                })
                .collect();
            let mut all: Vec<&str> = lb.into_iter().collect();
            all.extend(spec.external_ips.iter().map(String::as_str));
            if all.is_empty() {
                "<pending>".into()
            } else {
                all.join(",")
            }
        }
        "ExternalName" => spec.external_name.clone(),
        _ => "<unknown>".into(),
    }
}

fn port_string(spec: &ServiceSpec) -> String {
    let ports: Vec<String> = spec
        .ports
        .iter()
        .map(|p| {
            if p.node_port > 0 {
                format!("{}:{}/{}", p.port, p.node_port, p.protocol)
            } else {
                format!("{}/{}", p.port, p.protocol)
            }
        })
        .collect();
    if ports.is_empty() {
        "<none>".into()
    } else {
        ports.join(",")
    }
}

impl ApiObject for Service {
    const HAS_STATUS: bool = true;

    fn set_defaults(&mut self) {
        self.spec.set_defaults();
    }

    fn validate(&self) -> FieldErrors {
        let mut errs = FieldErrors::default();
        validate_meta(&self.metadata, dns1035_label, &mut errs);
        validate_service_spec(&self.spec, &mut errs);
        errs
    }

    /// `clusterIP` cannot change once allocated (except to or from ExternalName).
    fn validate_update(&self, old: &Self) -> FieldErrors {
        let mut errs = FieldErrors::default();
        let (n, o) = (&self.spec, &old.spec);
        let external = n.type_ == "ExternalName" || o.type_ == "ExternalName";
        if !external && !o.cluster_ip.is_empty() && n.cluster_ip != o.cluster_ip {
            errs.invalid("spec.clusterIP", &n.cluster_ip, "field is immutable");
        }
        errs
    }

    /// Keeps the stored status and, as Kubernetes does on update, the
    /// server-allocated values a client left out (clusterIP(s), IP
    /// families, node ports) so a manifest without them can be re-applied.
    fn keep_status(&mut self, old: Option<&Self>) {
        let Some(old) = old else {
            self.status = Default::default();
            return;
        };
        self.status = old.status.clone();
        let (n, o) = (&mut self.spec, &old.spec);
        if n.type_ == "ExternalName" || o.type_ == "ExternalName" {
            return;
        }
        if n.cluster_ip.is_empty() && n.cluster_ips.is_empty() {
            n.cluster_ip.clone_from(&o.cluster_ip);
            n.cluster_ips.clone_from(&o.cluster_ips);
        }
        if n.ip_families.is_empty() {
            n.ip_families.clone_from(&o.ip_families);
        }
        if n.ip_family_policy.is_none() {
            n.ip_family_policy.clone_from(&o.ip_family_policy);
        }
        if uses_node_ports(&n.type_) {
            for p in n.ports.iter_mut().filter(|p| p.node_port == 0) {
                let same = o
                    .ports
                    .iter()
                    .find(|q| q.port == p.port && q.protocol == p.protocol && q.name == p.name);
                if let Some(q) = same {
                    p.node_port = q.node_port;
                }
            }
        }
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
            TableColumn::new("Type", "string", 0),
            TableColumn::new("Cluster-IP", "string", 0),
            TableColumn::new("External-IP", "string", 0),
            TableColumn::new("Port(s)", "string", 0),
            TableColumn::new("Age", "string", 0),
            TableColumn::new("Selector", "string", 1),
        ]
    }

    fn table_row(&self, now: DateTime<Utc>) -> Vec<Value> {
        let cluster_ip = self
            .spec
            .cluster_ips
            .first()
            .or(Some(&self.spec.cluster_ip).filter(|ip| !ip.is_empty()))
            .cloned()
            .unwrap_or_else(|| "<none>".into());
        vec![
            s(&self.metadata.name),
            s(&self.spec.type_),
            s(cluster_ip),
            s(external_ip(self)),
            s(port_string(&self.spec)),
            age(self.metadata.creation_timestamp.as_ref(), now),
            s(format_labels(&self.spec.selector)),
        ]
    }
}

/// kubectl's Endpoints cell: up to three `ip:port` pairs, then `+ N more...`.
fn endpoints_cell(ep: &Endpoints) -> String {
    if ep.subsets.is_empty() {
        return "<none>".into();
    }
    const MAX: usize = 3;
    let mut list: Vec<String> = Vec::new();
    let mut more = false;
    let mut count = 0usize;
    for ss in &ep.subsets {
        if ss.ports.is_empty() {
            // Headless services may have no ports.
            count += ss.addresses.len();
            for a in &ss.addresses {
                if list.len() == MAX {
                    more = true;
                    break;
                }
                list.push(a.ip.clone());
            }
            continue;
        }
        for port in &ss.ports {
            count += ss.addresses.len();
            for a in &ss.addresses {
                if list.len() == MAX {
                    more = true;
                    break;
                }
                list.push(host_port(&a.ip, port.port));
            }
        }
    }
    let joined = list.join(",");
    if more {
        format!("{joined} + {} more...", count - MAX)
    } else {
        joined
    }
}

/// `net.JoinHostPort`: IPv6 addresses are bracketed.
fn host_port(ip: &str, port: i32) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

impl ApiObject for Endpoints {
    fn set_defaults(&mut self) {
        for ss in &mut self.subsets {
            for p in &mut ss.ports {
                if p.protocol.is_empty() {
                    p.protocol = "TCP".into();
                }
            }
        }
    }

    fn validate(&self) -> FieldErrors {
        let mut errs = FieldErrors::default();
        validate_meta(&self.metadata, dns1123_subdomain, &mut errs);
        for (i, ss) in self.subsets.iter().enumerate() {
            let sp = format!("subsets[{i}]");
            for (list, field) in [
                (&ss.addresses, "addresses"),
                (&ss.not_ready_addresses, "notReadyAddresses"),
            ] {
                for (j, a) in list.iter().enumerate() {
                    let ap = format!("{sp}.{field}[{j}]");
                    if a.ip.is_empty() {
                        errs.required(format!("{ap}.ip"), "");
                    } else {
                        validate_ip(&a.ip, &format!("{ap}.ip"), &mut errs);
                    }
                    if !a.hostname.is_empty()
                        && let Err(e) = dns1123_label(&a.hostname)
                    {
                        errs.invalid(format!("{ap}.hostname"), &a.hostname, e);
                    }
                }
            }
            let mut names = BTreeSet::new();
            for (j, p) in ss.ports.iter().enumerate() {
                let pp = format!("{sp}.ports[{j}]");
                if p.name.is_empty() {
                    if ss.ports.len() > 1 {
                        errs.required(format!("{pp}.name"), "");
                    }
                } else if let Err(e) = dns1123_label(&p.name) {
                    errs.invalid(format!("{pp}.name"), &p.name, e);
                } else if !names.insert(p.name.as_str()) {
                    errs.duplicate(format!("{pp}.name"), &p.name);
                }
                validate_port_number(p.port, &format!("{pp}.port"), &mut errs);
                validate_protocol(&p.protocol, &format!("{pp}.protocol"), &mut errs);
            }
        }
        errs
    }

    fn table_columns() -> Vec<TableColumn> {
        vec![
            TableColumn {
                format: "name",
                ..TableColumn::new("Name", "string", 0)
            },
            TableColumn::new("Endpoints", "string", 0),
            TableColumn::new("Age", "string", 0),
        ]
    }

    fn table_row(&self, now: DateTime<Utc>) -> Vec<Value> {
        vec![
            s(&self.metadata.name),
            s(endpoints_cell(self)),
            age(self.metadata.creation_timestamp.as_ref(), now),
        ]
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

    fn svc(v: Value) -> Service {
        serde_json::from_value(v).unwrap()
    }

    fn base() -> Service {
        svc(json!({
            "metadata": {"name": "web", "namespace": "default", "creationTimestamp": "2024-05-01T11:59:30Z"},
            "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}
        }))
    }

    #[test]
    fn defaults() {
        let mut s = svc(json!({"metadata": {"name": "web"}, "spec": {
            "clusterIP": "10.96.0.10",
            "ports": [{"port": 80}, {"port": 53, "protocol": "UDP", "targetPort": 5353}]}}));
        s.set_defaults();
        let spec = &s.spec;
        assert_eq!(spec.type_, "ClusterIP");
        assert_eq!(spec.session_affinity, "None");
        assert_eq!(spec.ports[0].protocol, "TCP");
        assert_eq!(spec.ports[0].target_port, Some(IntOrString::Int(80)));
        assert_eq!(spec.ports[1].protocol, "UDP");
        assert_eq!(spec.ports[1].target_port, Some(IntOrString::Int(5353)));
        assert_eq!(spec.internal_traffic_policy.as_deref(), Some("Cluster"));
        assert_eq!(spec.external_traffic_policy, "");
        assert_eq!(spec.cluster_ips, ["10.96.0.10"]);
        assert_eq!(spec.ip_families, ["IPv4"]);
        assert_eq!(spec.ip_family_policy.as_deref(), Some("SingleStack"));

        let mut np = svc(
            json!({"spec": {"type": "NodePort", "clusterIPs": ["fd00::10"], "ports": [{"port": 80}]}}),
        );
        np.set_defaults();
        assert_eq!(np.spec.external_traffic_policy, "Cluster");
        assert_eq!(np.spec.cluster_ip, "fd00::10");
        assert_eq!(np.spec.ip_families, ["IPv6"]);

        let mut ext =
            svc(json!({"spec": {"type": "ExternalName", "externalName": "db.example.com"}}));
        ext.set_defaults();
        assert_eq!(ext.spec.internal_traffic_policy, None);
        assert_eq!(ext.spec.ip_family_policy, None);

        let mut pending = base();
        pending.set_defaults();
        assert!(
            pending.spec.ip_families.is_empty(),
            "families come with the allocated IP"
        );
    }

    #[test]
    fn validation_rules() {
        type Case = (&'static str, fn(&mut Service), &'static [&'static str]);
        let cases: &[Case] = &[
            ("valid", |_| {}, &[]),
            (
                "dns-1035 name",
                |s| s.metadata.name = "1web".into(),
                &["metadata.name"],
            ),
            ("type", |s| s.spec.type_ = "Ingress".into(), &["spec.type"]),
            ("ports required", |s| s.spec.ports.clear(), &["spec.ports"]),
            (
                "port 0",
                |s| s.spec.ports[0].port = 0,
                &["spec.ports[0].port"],
            ),
            (
                "port too big",
                |s| s.spec.ports[0].port = 70000,
                &["spec.ports[0].port"],
            ),
            (
                "protocol",
                |s| s.spec.ports[0].protocol = "ICMP".into(),
                &["spec.ports[0].protocol"],
            ),
            (
                "names required with several ports",
                |s| {
                    let mut p = s.spec.ports[0].clone();
                    p.name.clear();
                    p.port = 443;
                    s.spec.ports.push(p);
                },
                &["spec.ports[1].name"],
            ),
            (
                "unique names",
                |s| {
                    let mut p = s.spec.ports[0].clone();
                    p.port = 443;
                    s.spec.ports.push(p);
                },
                &["spec.ports[1].name"],
            ),
            (
                "duplicate port",
                |s| {
                    let mut p = s.spec.ports[0].clone();
                    p.name = "other".into();
                    s.spec.ports.push(p);
                },
                &["spec.ports[1]"],
            ),
            (
                "target port",
                |s| s.spec.ports[0].target_port = Some(IntOrString::Int(0)),
                &["spec.ports[0].targetPort"],
            ),
            (
                "node port on ClusterIP",
                |s| s.spec.ports[0].node_port = 30080,
                &["spec.ports[0].nodePort"],
            ),
            (
                "node port range",
                |s| {
                    s.spec.type_ = "NodePort".into();
                    s.spec.ports[0].node_port = -5;
                },
                &["spec.ports[0].nodePort"],
            ),
            (
                "cluster IP",
                |s| s.spec.cluster_ip = "10.0.0.300".into(),
                &["spec.clusterIP"],
            ),
            (
                "headless NodePort",
                |s| {
                    s.spec.type_ = "NodePort".into();
                    s.spec.cluster_ip = "None".into();
                },
                &["spec.clusterIP"],
            ),
            (
                "clusterIPs must match",
                |s| {
                    s.spec.cluster_ip = "10.0.0.1".into();
                    s.spec.cluster_ips = vec!["10.0.0.2".into()];
                },
                &["spec.clusterIPs[0]"],
            ),
            (
                "external name required",
                |s| s.spec.type_ = "ExternalName".into(),
                &["spec.externalName"],
            ),
            (
                "external name without ports is fine",
                |s| {
                    s.spec.type_ = "ExternalName".into();
                    s.spec.external_name = "db.example.com".into();
                    s.spec.ports.clear();
                },
                &[],
            ),
            (
                "session affinity",
                |s| s.spec.session_affinity = "Sticky".into(),
                &["spec.sessionAffinity"],
            ),
            (
                "external IPs",
                |s| s.spec.external_ips = vec!["x".into()],
                &["spec.externalIPs[0]"],
            ),
            (
                "external traffic policy on ClusterIP",
                |s| s.spec.external_traffic_policy = "Local".into(),
                &["spec.externalTrafficPolicy"],
            ),
            (
                "internal traffic policy",
                |s| s.spec.internal_traffic_policy = Some("Nearby".into()),
                &["spec.internalTrafficPolicy"],
            ),
            (
                "ip families",
                |s| s.spec.ip_families = vec!["IPv5".into()],
                &["spec.ipFamilies[0]"],
            ),
            (
                "selector",
                |s| {
                    s.spec.selector.insert("app".into(), "-bad".into());
                },
                &["spec.selector[app]"],
            ),
        ];
        for (name, mutate, want) in cases {
            let mut s = base();
            mutate(&mut s);
            let got: Vec<String> = s.validate().0.into_iter().map(|e| e.field).collect();
            assert_eq!(got, *want, "{name}");
        }
    }

    #[test]
    fn cluster_ip_is_immutable_and_allocations_are_kept() {
        let mut old = base();
        old.spec.type_ = "NodePort".into();
        old.spec.cluster_ip = "10.96.0.5".into();
        old.spec.cluster_ips = vec!["10.96.0.5".into()];
        old.spec.ip_families = vec!["IPv4".into()];
        old.spec.ports[0].node_port = 30080;
        old.status.load_balancer.ingress = vec![Default::default()];

        let mut changed = old.clone();
        changed.spec.cluster_ip = "10.96.0.6".into();
        let fields: Vec<String> = changed
            .validate_update(&old)
            .0
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(fields, ["spec.clusterIP"]);

        // A re-applied manifest without the allocated values keeps them.
        let mut reapplied = base();
        reapplied.spec.type_ = "NodePort".into();
        reapplied.keep_status(Some(&old));
        assert_eq!(reapplied.spec.cluster_ip, "10.96.0.5");
        assert_eq!(reapplied.spec.cluster_ips, ["10.96.0.5"]);
        assert_eq!(reapplied.spec.ports[0].node_port, 30080);
        assert_eq!(reapplied.status, old.status);
        assert!(reapplied.validate_update(&old).is_empty());

        // Switching to ExternalName drops the cluster IP legitimately.
        let mut ext = old.clone();
        ext.spec.type_ = "ExternalName".into();
        ext.spec.cluster_ip.clear();
        assert!(ext.validate_update(&old).is_empty());

        let mut created = old.clone();
        created.keep_status(None);
        assert_eq!(created.status, Default::default());
        assert!(!old.clone().spec_changed(&old));
        assert!(ext.spec_changed(&old));
    }

    #[test]
    fn table_rows() {
        let row = |v: Value| {
            let mut s = svc(v);
            s.metadata.name = "web".into();
            s.metadata.creation_timestamp = crate::api::Time::from_unix(now().timestamp() - 30);
            s.set_defaults();
            s.table_row(now())
        };
        let cases: Vec<(Value, [&str; 5])> = vec![
            (
                json!({"spec": {"clusterIP": "10.96.0.1", "ports": [{"port": 80}], "selector": {"app": "web"}}}),
                ["ClusterIP", "10.96.0.1", "<none>", "80/TCP", "app=web"],
            ),
            (
                json!({"spec": {"type": "NodePort", "clusterIP": "10.96.0.2",
                    "ports": [{"name": "a", "port": 80, "nodePort": 30080}, {"name": "b", "port": 53, "protocol": "UDP"}]}}),
                [
                    "NodePort",
                    "10.96.0.2",
                    "<none>",
                    "80:30080/TCP,53/UDP",
                    "<none>",
                ],
            ),
            (
                json!({"spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.3", "ports": [{"port": 443}]}}),
                [
                    "LoadBalancer",
                    "10.96.0.3",
                    "<pending>",
                    "443/TCP",
                    "<none>",
                ],
            ),
            (
                json!({"spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.3", "ports": [{"port": 443}],
                    "externalIPs": ["1.2.3.4"]},
                    "status": {"loadBalancer": {"ingress": [{"ip": "5.6.7.8"}, {"hostname": "lb.example.com"}]}}}),
                [
                    "LoadBalancer",
                    "10.96.0.3",
                    "5.6.7.8,lb.example.com,1.2.3.4",
                    "443/TCP",
                    "<none>",
                ],
            ),
            (
                json!({"spec": {"type": "ExternalName", "externalName": "db.example.com"}}),
                [
                    "ExternalName",
                    "<none>",
                    "db.example.com",
                    "<none>",
                    "<none>",
                ],
            ),
            (
                json!({"spec": {"clusterIP": "None", "ports": [{"port": 80}], "externalIPs": ["1.1.1.1", "2.2.2.2"]}}),
                ["ClusterIP", "None", "1.1.1.1,2.2.2.2", "80/TCP", "<none>"],
            ),
        ];
        for (v, [t, ip, ext, ports, sel]) in cases {
            let c = row(v.clone());
            assert_eq!(
                c,
                [
                    json!("web"),
                    json!(t),
                    json!(ip),
                    json!(ext),
                    json!(ports),
                    json!("30s"),
                    json!(sel)
                ],
                "{v}"
            );
        }
        assert_eq!(Service::table_columns().len(), 7);
        assert_eq!(Service::table_columns()[6].priority, 1);
    }

    #[test]
    fn endpoints_cells() {
        let ep = |subsets: Value| -> Endpoints {
            serde_json::from_value(json!({"metadata": {"name": "web"}, "subsets": subsets}))
                .unwrap()
        };
        let addrs = |ips: &[&str]| ips.iter().map(|ip| json!({"ip": ip})).collect::<Vec<_>>();
        let cases = vec![
            (json!([]), "<none>"),
            (
                json!([{"addresses": addrs(&["10.0.0.1", "10.0.0.2"]), "ports": [{"port": 8080}]}]),
                "10.0.0.1:8080,10.0.0.2:8080",
            ),
            (
                json!([{"addresses": addrs(&["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"]),
                    "ports": [{"port": 80}]}]),
                "10.0.0.1:80,10.0.0.2:80,10.0.0.3:80 + 2 more...",
            ),
            (
                json!([{"addresses": addrs(&["10.0.0.1", "10.0.0.2"]),
                    "ports": [{"name": "a", "port": 80}, {"name": "b", "port": 443}]}]),
                "10.0.0.1:80,10.0.0.2:80,10.0.0.1:443 + 1 more...",
            ),
            (json!([{"addresses": addrs(&["10.0.0.7"])}]), "10.0.0.7"),
            (
                json!([{"addresses": addrs(&["fd00::1"]), "ports": [{"port": 80}]}]),
                "[fd00::1]:80",
            ),
            (
                json!([{"notReadyAddresses": addrs(&["10.0.0.1"]), "ports": [{"port": 80}]}]),
                "",
            ),
        ];
        for (subsets, want) in cases {
            assert_eq!(endpoints_cell(&ep(subsets.clone())), want, "{subsets}");
        }
        let e = ep(json!([{"addresses": addrs(&["10.0.0.1"]), "ports": [{"port": 80}]}]));
        assert_eq!(e.table_row(now())[2], "<unknown>");
    }

    #[test]
    fn endpoints_defaults_and_validation() {
        let mut e: Endpoints =
            serde_json::from_value(json!({"metadata": {"name": "web"}, "subsets": [{
            "addresses": [{"ip": "10.0.0.1"}, {"ip": "nope"}],
            "notReadyAddresses": [{"ip": ""}],
            "ports": [{"name": "a", "port": 80}, {"port": 0, "protocol": "ICMP"}]}]}))
            .unwrap();
        e.set_defaults();
        assert_eq!(e.subsets[0].ports[0].protocol, "TCP");
        let fields: Vec<String> = e.validate().0.into_iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            [
                "subsets[0].addresses[1].ip",
                "subsets[0].notReadyAddresses[0].ip",
                "subsets[0].ports[1].name",
                "subsets[0].ports[1].port",
                "subsets[0].ports[1].protocol",
            ]
        );
    }
}
