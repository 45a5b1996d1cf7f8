//! Pod behaviour: defaulting, validation, update rules, the `kubectl get`
//! table, and the pure helpers the scheduler, controllers and agent share
//! (readiness, QoS class, effective requests).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::common::{
    changed_fields, config_map_key, created_at, s, validate_enum, validate_ip,
    validate_label_selector, validate_meta, validate_non_negative, validate_port_num_or_name,
    validate_port_number, validate_protocol, validate_relative_path, validate_resource_list,
};
use super::{
    Affinity, Binding, Container, ContainerPort, EnvVar, HttpGetAction, KeyToPath,
    LifecycleHandler, NodeSelectorTerm, Pod, PodAffinityTerm, PodSecurityContext, PodSpec,
    PodTemplateSpec, Probe, Toleration, TopologySpreadConstraint, Volume,
};
use crate::api::quantity::{ResourceList, validate_quantity};
use crate::api::validation::{
    FieldErrors, dns1123_label, dns1123_subdomain, label_value, qualified_name,
    validate_annotations, validate_labels,
};
use crate::api::{ApiObject, TableColumn, age};

const RESTART_POLICIES: [&str; 3] = ["Always", "OnFailure", "Never"];
const DNS_POLICIES: [&str; 4] = ["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"];
const PULL_POLICIES: [&str; 3] = ["Always", "IfNotPresent", "Never"];
const MESSAGE_POLICIES: [&str; 2] = ["File", "FallbackToLogsOnError"];
const TAINT_EFFECTS: [&str; 3] = ["NoSchedule", "PreferNoSchedule", "NoExecute"];
const FIELD_REF_PATHS: [&str; 11] = [
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "metadata.labels",
    "metadata.annotations",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];
const RESOURCE_FIELD_REFS: [&str; 6] = [
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
];
/// `0644`, the default file mode of projected ConfigMap and Secret keys.
const DEFAULT_MODE: i32 = 0o644;

// ---------------------------------------------------------------------------
// Defaults
// ---------------------------------------------------------------------------

impl PodSpec {
    /// Kubernetes' PodSpec defaults, which apply to pods and to the pod
    /// templates of workloads alike: restartPolicy Always, grace period 30 s,
    /// dnsPolicy ClusterFirst, default-scheduler, `securityContext: {}`,
    /// container, probe and volume defaults.
    pub fn set_defaults(&mut self) {
        if self.restart_policy.is_empty() {
            self.restart_policy = "Always".into();
        }
        if self.termination_grace_period_seconds.is_none() {
            self.termination_grace_period_seconds = Some(30);
        }
        if self.dns_policy.is_empty() {
            self.dns_policy = "ClusterFirst".into();
        }
        if self.scheduler_name.is_empty() {
            self.scheduler_name = "default-scheduler".into();
        }
        if self.security_context.is_none() {
            self.security_context = Some(PodSecurityContext::default());
        }
        // The v1 API keeps the deprecated alias in step with the real field.
        if self.service_account_name.is_empty() && !self.service_account.is_empty() {
            self.service_account_name = self.service_account.clone();
        }
        if self.service_account.is_empty() && !self.service_account_name.is_empty() {
            self.service_account = self.service_account_name.clone();
        }
        for v in &mut self.volumes {
            if let Some(cm) = &mut v.config_map
                && cm.default_mode.is_none()
            {
                cm.default_mode = Some(DEFAULT_MODE);
            }
            if let Some(sec) = &mut v.secret
                && sec.default_mode.is_none()
            {
                sec.default_mode = Some(DEFAULT_MODE);
            }
        }
        let host_network = self.host_network;
        for c in self.init_containers.iter_mut().chain(&mut self.containers) {
            default_container(c, host_network);
        }
    }
}

impl PodTemplateSpec {
    /// Defaults of the template's spec (see [`PodSpec::set_defaults`]).
    pub fn set_defaults(&mut self) {
        self.spec.set_defaults();
    }
}

/// Kubernetes pulls `:latest` and untagged images every time.
fn default_pull_policy(image: &str) -> &'static str {
    if image.contains('@') {
        return "IfNotPresent";
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.rsplit_once(':') {
        Some((_, "latest")) | None => "Always",
        Some(_) => "IfNotPresent",
    }
}

fn default_container(c: &mut Container, host_network: bool) {
    if c.image_pull_policy.is_empty() {
        c.image_pull_policy = default_pull_policy(&c.image).into();
    }
    if c.termination_message_path.is_empty() {
        c.termination_message_path = "/dev/termination-log".into();
    }
    if c.termination_message_policy.is_empty() {
        c.termination_message_policy = "File".into();
    }
    for p in &mut c.ports {
        default_port(p, host_network);
    }
    for e in &mut c.env {
        if let Some(f) = e.value_from.as_mut().and_then(|v| v.field_ref.as_mut())
            && f.api_version.is_empty()
        {
            f.api_version = "v1".into();
        }
    }
    for probe in [
        &mut c.liveness_probe,
        &mut c.readiness_probe,
        &mut c.startup_probe,
    ]
    .into_iter()
    .flatten()
    {
        default_probe(probe);
    }
    if let Some(l) = &mut c.lifecycle {
        for h in [&mut l.post_start, &mut l.pre_stop].into_iter().flatten() {
            if let Some(g) = &mut h.http_get {
                default_http_get(g);
            }
        }
    }
}

fn default_port(p: &mut ContainerPort, host_network: bool) {
    if p.protocol.is_empty() {
        p.protocol = "TCP".into();
    }
    // With the host's network the container port is the host port.
    if host_network && p.host_port == 0 {
        p.host_port = p.container_port;
    }
}

fn default_probe(p: &mut Probe) {
    if p.timeout_seconds == 0 {
        p.timeout_seconds = 1;
    }
    if p.period_seconds == 0 {
        p.period_seconds = 10;
    }
    if p.success_threshold == 0 {
        p.success_threshold = 1;
    }
    if p.failure_threshold == 0 {
        p.failure_threshold = 3;
    }
    if let Some(g) = &mut p.http_get {
        default_http_get(g);
    }
}

fn default_http_get(g: &mut HttpGetAction) {
    if g.path.is_empty() {
        g.path = "/".into();
    }
    if g.scheme.is_empty() {
        g.scheme = "HTTP".into();
    }
}

// ---------------------------------------------------------------------------
// Pure helpers
// ---------------------------------------------------------------------------

impl Pod {
    /// Whether the pod has finished for good (phase Succeeded or Failed).
    pub fn is_terminal(&self) -> bool {
        matches!(self.status.phase.as_str(), "Succeeded" | "Failed")
    }

    /// The status condition of `type_` (`Ready`, `PodScheduled`, ...).
    pub fn condition(&self, type_: &str) -> Option<&super::PodCondition> {
        self.status.conditions.iter().find(|c| c.type_ == type_)
    }
}

/// Whether the pod's `Ready` condition is `True` (it may receive traffic).
pub fn pod_ready(pod: &Pod) -> bool {
    pod.condition("Ready").is_some_and(|c| c.status == "True")
}

fn is_restartable_init(c: &Container) -> bool {
    c.restart_policy.as_deref() == Some("Always")
}

/// The requests the scheduler charges for a container: its requests, or its
/// limits where a request is missing (what defaulting would have set).
fn container_request(c: &Container, resource: &str) -> (i64, i64) {
    let q = c
        .resources
        .requests
        .get(resource)
        .or_else(|| c.resources.limits.get(resource));
    match q {
        Some(q) => (q.milli_value(), q.value()),
        None => (0, 0),
    }
}

/// The pod's effective requests `(cpu_milli, memory_bytes)` as the
/// Kubernetes scheduler computes them: the sum over containers (plus
/// sidecars) or the largest init-container step, whichever is higher.
pub fn pod_requests(spec: &PodSpec) -> (i64, i64) {
    let cpu = |c: &Container| container_request(c, "cpu").0;
    let mem = |c: &Container| container_request(c, "memory").1;
    let effective = |get: &dyn Fn(&Container) -> i64| -> i64 {
        let mut sidecars: i64 = 0;
        let mut init_peak: i64 = 0;
        for c in &spec.init_containers {
            let step = if is_restartable_init(c) {
                sidecars = sidecars.saturating_add(get(c));
                sidecars
            } else {
                sidecars.saturating_add(get(c))
            };
            init_peak = init_peak.max(step);
        }
        let main = spec
            .containers
            .iter()
            .fold(sidecars, |acc, c| acc.saturating_add(get(c)));
        main.max(init_peak)
    };
    (effective(&cpu), effective(&mem))
}

/// The pod's QoS class from cpu and memory requests and limits:
/// `Guaranteed` (every container has limits equal to requests for both),
/// `BestEffort` (no requests or limits at all) or `Burstable`.
pub fn qos_class(spec: &PodSpec) -> &'static str {
    const QOS: [&str; 2] = ["cpu", "memory"];
    let mut requests: BTreeMap<&str, i64> = BTreeMap::new();
    let mut limits: BTreeMap<&str, i64> = BTreeMap::new();
    let mut guaranteed = true;
    for c in spec.init_containers.iter().chain(&spec.containers) {
        for (name, q) in &c.resources.requests {
            if QOS.contains(&name.as_str()) && !q.is_zero() {
                let e = requests.entry(name.as_str()).or_default();
                *e = e.saturating_add(q.milli_value());
            }
        }
        let mut found = BTreeSet::new();
        for (name, q) in &c.resources.limits {
            if QOS.contains(&name.as_str()) && !q.is_zero() {
                found.insert(name.as_str());
                let e = limits.entry(name.as_str()).or_default();
                *e = e.saturating_add(q.milli_value());
            }
        }
        if found.len() != QOS.len() {
            guaranteed = false;
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return "BestEffort";
    }
    if guaranteed
        && requests.len() == limits.len()
        && requests.iter().all(|(k, v)| limits.get(k) == Some(v))
    {
        return "Guaranteed";
    }
    "Burstable"
}

// ---------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------

/// Validates a pod template: its labels and annotations and its spec.
/// `path` names the template (`spec.template`).
pub fn validate_pod_template(t: &PodTemplateSpec, path: &str, errs: &mut FieldErrors) {
    validate_labels(&t.metadata.labels, &format!("{path}.metadata.labels"), errs);
    validate_annotations(
        &t.metadata.annotations,
        &format!("{path}.metadata.annotations"),
        errs,
    );
    validate_pod_spec(&t.spec, &format!("{path}.spec"), errs);
}

/// Validates a pod spec, reporting every bad field under `path` (`spec`,
/// `spec.template.spec`).
pub fn validate_pod_spec(spec: &PodSpec, path: &str, errs: &mut FieldErrors) {
    let volumes = validate_volumes(&spec.volumes, path, errs);
    let mut names = BTreeSet::new();
    for (i, c) in spec.init_containers.iter().enumerate() {
        let p = format!("{path}.initContainers[{i}]");
        validate_container(c, &p, true, &volumes, &mut names, errs);
    }
    if spec.containers.is_empty() {
        errs.required(format!("{path}.containers"), "");
    }
    for (i, c) in spec.containers.iter().enumerate() {
        let p = format!("{path}.containers[{i}]");
        validate_container(c, &p, false, &volumes, &mut names, errs);
    }
    validate_enum(
        &spec.restart_policy,
        &RESTART_POLICIES,
        &format!("{path}.restartPolicy"),
        errs,
    );
    validate_enum(
        &spec.dns_policy,
        &DNS_POLICIES,
        &format!("{path}.dnsPolicy"),
        errs,
    );
    if let Some(g) = spec.termination_grace_period_seconds {
        validate_non_negative(g, &format!("{path}.terminationGracePeriodSeconds"), errs);
    }
    if let Some(d) = spec.active_deadline_seconds
        && !(1..=i64::from(i32::MAX)).contains(&d)
    {
        errs.invalid(
            format!("{path}.activeDeadlineSeconds"),
            d,
            "must be between 1 and 2147483647, inclusive",
        );
    }
    validate_labels(&spec.node_selector, &format!("{path}.nodeSelector"), errs);
    let subdomains = [
        (&spec.node_name, "nodeName"),
        (&spec.service_account_name, "serviceAccountName"),
        (&spec.priority_class_name, "priorityClassName"),
        (&spec.scheduler_name, "schedulerName"),
    ];
    for (value, field) in subdomains {
        if !value.is_empty()
            && let Err(e) = dns1123_subdomain(value)
        {
            errs.invalid(format!("{path}.{field}"), value, e);
        }
    }
    if let Some(rc) = &spec.runtime_class_name
        && let Err(e) = dns1123_subdomain(rc)
    {
        errs.invalid(format!("{path}.runtimeClassName"), rc, e);
    }
    for (value, field) in [(&spec.hostname, "hostname"), (&spec.subdomain, "subdomain")] {
        if !value.is_empty()
            && let Err(e) = dns1123_label(value)
        {
            errs.invalid(format!("{path}.{field}"), value, e);
        }
    }
    if let Some(sc) = &spec.security_context {
        let p = format!("{path}.securityContext");
        for (v, f) in [
            (sc.run_as_user, "runAsUser"),
            (sc.run_as_group, "runAsGroup"),
            (sc.fs_group, "fsGroup"),
        ] {
            if let Some(v) = v {
                validate_id(v, &format!("{p}.{f}"), errs);
            }
        }
        for (i, g) in sc.supplemental_groups.iter().enumerate() {
            validate_id(*g, &format!("{p}.supplementalGroups[{i}]"), errs);
        }
    }
    for (i, r) in spec.image_pull_secrets.iter().enumerate() {
        if r.name.is_empty() {
            errs.required(format!("{path}.imagePullSecrets[{i}].name"), "");
        }
    }
    for (i, t) in spec.tolerations.iter().enumerate() {
        validate_toleration(t, &format!("{path}.tolerations[{i}]"), errs);
    }
    if let Some(a) = &spec.affinity {
        validate_affinity(a, &format!("{path}.affinity"), errs);
    }
    validate_topology_spread(&spec.topology_spread_constraints, path, errs);
    for (i, g) in spec.readiness_gates.iter().enumerate() {
        if let Err(e) = qualified_name(&g.condition_type) {
            errs.invalid(
                format!("{path}.readinessGates[{i}].conditionType"),
                &g.condition_type,
                e,
            );
        }
    }
}

fn validate_id(v: i64, path: &str, errs: &mut FieldErrors) {
    if !(0..=i64::from(i32::MAX)).contains(&v) {
        errs.invalid(path, v, "must be between 0 and 2147483647, inclusive");
    }
}

/// Checks volumes and returns their names for the mount checks.
fn validate_volumes<'a>(
    volumes: &'a [Volume],
    path: &str,
    errs: &mut FieldErrors,
) -> BTreeSet<&'a str> {
    let mut names = BTreeSet::new();
    for (i, v) in volumes.iter().enumerate() {
        let p = format!("{path}.volumes[{i}]");
        if v.name.is_empty() {
            errs.required(format!("{p}.name"), "");
        } else if let Err(e) = dns1123_label(&v.name) {
            errs.invalid(format!("{p}.name"), &v.name, e);
        } else if !names.insert(v.name.as_str()) {
            errs.duplicate(format!("{p}.name"), &v.name);
        }
        let mut sources = 0;
        if v.host_path.is_some() {
            sources += 1;
            errs.forbidden(
                format!("{p}.hostPath"),
                "hostPath volumes are not supported by wasmk: a pod may only see emptyDir, configMap and secret volumes",
            );
        }
        if v.persistent_volume_claim.is_some() {
            sources += 1;
            errs.forbidden(
                format!("{p}.persistentVolumeClaim"),
                "persistentVolumeClaim volumes are not supported by wasmk: use emptyDir, configMap or secret volumes",
            );
        }
        if let Some(e) = &v.empty_dir {
            sources += 1;
            validate_enum(
                &e.medium,
                &["", "Memory"],
                &format!("{p}.emptyDir.medium"),
                errs,
            );
            if let Some(limit) = &e.size_limit {
                validate_quantity(limit, &format!("{p}.emptyDir.sizeLimit"), errs);
            }
        }
        if let Some(cm) = &v.config_map {
            sources += 1;
            if cm.name.is_empty() {
                errs.required(format!("{p}.configMap.name"), "");
            }
            validate_projection(&cm.items, cm.default_mode, &format!("{p}.configMap"), errs);
        }
        if let Some(sec) = &v.secret {
            sources += 1;
            if sec.secret_name.is_empty() {
                errs.required(format!("{p}.secret.secretName"), "");
            }
            validate_projection(&sec.items, sec.default_mode, &format!("{p}.secret"), errs);
        }
        match sources {
            0 => errs.required(p, "must specify a volume type"),
            1 => {}
            _ => errs.forbidden(p, "may not specify more than 1 volume type"),
        }
    }
    names
}

fn validate_mode(mode: i32, path: &str, errs: &mut FieldErrors) {
    if !(0..=0o777).contains(&mode) {
        errs.invalid(
            path,
            mode,
            "must be a number between 0 and 0777 (octal), both inclusive",
        );
    }
}

fn validate_projection(
    items: &[KeyToPath],
    default_mode: Option<i32>,
    path: &str,
    errs: &mut FieldErrors,
) {
    if let Some(m) = default_mode {
        validate_mode(m, &format!("{path}.defaultMode"), errs);
    }
    for (i, item) in items.iter().enumerate() {
        let p = format!("{path}.items[{i}]");
        if let Err(e) = config_map_key(&item.key) {
            errs.invalid(format!("{p}.key"), &item.key, e);
        }
        if item.path.is_empty() {
            errs.required(format!("{p}.path"), "");
        } else {
            validate_relative_path(&item.path, &format!("{p}.path"), errs);
        }
        if let Some(m) = item.mode {
            validate_mode(m, &format!("{p}.mode"), errs);
        }
    }
}

fn validate_container(
    c: &Container,
    p: &str,
    init: bool,
    volumes: &BTreeSet<&str>,
    names: &mut BTreeSet<String>,
    errs: &mut FieldErrors,
) {
    if c.name.is_empty() {
        errs.required(format!("{p}.name"), "");
    } else if let Err(e) = dns1123_label(&c.name) {
        errs.invalid(format!("{p}.name"), &c.name, e);
    } else if !names.insert(c.name.clone()) {
        errs.duplicate(format!("{p}.name"), &c.name);
    }
    if c.image.is_empty() {
        errs.required(format!("{p}.image"), "");
    }
    let mut port_names = BTreeSet::new();
    for (j, port) in c.ports.iter().enumerate() {
        let pp = format!("{p}.ports[{j}]");
        validate_port_number(port.container_port, &format!("{pp}.containerPort"), errs);
        if port.host_port != 0 {
            validate_port_number(port.host_port, &format!("{pp}.hostPort"), errs);
        }
        validate_protocol(&port.protocol, &format!("{pp}.protocol"), errs);
        if !port.host_ip.is_empty() {
            validate_ip(&port.host_ip, &format!("{pp}.hostIP"), errs);
        }
        if !port.name.is_empty() {
            if let Err(e) = super::common::iana_svc_name(&port.name) {
                errs.invalid(format!("{pp}.name"), &port.name, e);
            } else if !port_names.insert(port.name.as_str()) {
                errs.duplicate(format!("{pp}.name"), &port.name);
            }
        }
    }
    for (j, e) in c.env.iter().enumerate() {
        validate_env_var(e, &format!("{p}.env[{j}]"), errs);
    }
    for (j, from) in c.env_from.iter().enumerate() {
        let fp = format!("{p}.envFrom[{j}]");
        if !from.prefix.is_empty() && !is_env_name(&from.prefix) {
            errs.invalid(format!("{fp}.prefix"), &from.prefix, ENV_NAME_MSG);
        }
        match (&from.config_map_ref, &from.secret_ref) {
            (Some(r), None) if r.name.is_empty() => {
                errs.required(format!("{fp}.configMapRef.name"), "")
            }
            (None, Some(r)) if r.name.is_empty() => {
                errs.required(format!("{fp}.secretRef.name"), "")
            }
            (Some(_), None) | (None, Some(_)) => {}
            (None, None) => {
                errs.invalid(fp, "", "must specify one of: `configMapRef` or `secretRef`")
            }
            (Some(_), Some(_)) => errs.invalid(
                fp,
                "",
                "may not have more than one field specified at a time",
            ),
        }
    }
    validate_resources(c, p, errs);
    let mut mount_paths = BTreeSet::new();
    for (j, m) in c.volume_mounts.iter().enumerate() {
        let mp = format!("{p}.volumeMounts[{j}]");
        if m.name.is_empty() {
            errs.required(format!("{mp}.name"), "");
        } else if !volumes.contains(m.name.as_str()) {
            errs.invalid(
                format!("{mp}.name"),
                &m.name,
                "must match the name of a volume in spec.volumes",
            );
        }
        if m.mount_path.is_empty() {
            errs.required(format!("{mp}.mountPath"), "");
        } else if !m.mount_path.starts_with('/') {
            errs.invalid(
                format!("{mp}.mountPath"),
                &m.mount_path,
                "must be an absolute path",
            );
        } else if !mount_paths.insert(m.mount_path.as_str()) {
            errs.invalid(format!("{mp}.mountPath"), &m.mount_path, "must be unique");
        }
        if !m.sub_path.is_empty() {
            validate_relative_path(&m.sub_path, &format!("{mp}.subPath"), errs);
        }
    }
    let sidecar = is_restartable_init(c);
    if init && !sidecar {
        let forbidden_on_init = [
            (c.lifecycle.is_some(), "lifecycle"),
            (c.liveness_probe.is_some(), "livenessProbe"),
            (c.readiness_probe.is_some(), "readinessProbe"),
            (c.startup_probe.is_some(), "startupProbe"),
        ];
        for (set, field) in forbidden_on_init {
            if set {
                errs.forbidden(
                    format!("{p}.{field}"),
                    "may not be set for init containers without restartPolicy=Always",
                );
            }
        }
    } else {
        if let Some(pr) = &c.liveness_probe {
            validate_probe(pr, &format!("{p}.livenessProbe"), true, errs);
        }
        if let Some(pr) = &c.readiness_probe {
            let rp = format!("{p}.readinessProbe");
            validate_probe(pr, &rp, false, errs);
            if pr.termination_grace_period_seconds.is_some() {
                errs.invalid(
                    format!("{rp}.terminationGracePeriodSeconds"),
                    pr.termination_grace_period_seconds,
                    "must not be set for readinessProbes",
                );
            }
        }
        if let Some(pr) = &c.startup_probe {
            validate_probe(pr, &format!("{p}.startupProbe"), true, errs);
        }
        if let Some(l) = &c.lifecycle {
            if let Some(h) = &l.post_start {
                validate_handler(h, &format!("{p}.lifecycle.postStart"), errs);
            }
            if let Some(h) = &l.pre_stop {
                validate_handler(h, &format!("{p}.lifecycle.preStop"), errs);
            }
        }
    }
    if let Some(rp) = &c.restart_policy {
        if !init {
            errs.forbidden(
                format!("{p}.restartPolicy"),
                "may not be set for non-init containers",
            );
        } else if rp != "Always" {
            errs.not_supported(format!("{p}.restartPolicy"), rp, &["Always"]);
        }
    }
    validate_enum(
        &c.termination_message_policy,
        &MESSAGE_POLICIES,
        &format!("{p}.terminationMessagePolicy"),
        errs,
    );
    validate_enum(
        &c.image_pull_policy,
        &PULL_POLICIES,
        &format!("{p}.imagePullPolicy"),
        errs,
    );
    if let Some(sc) = &c.security_context {
        for (v, f) in [
            (sc.run_as_user, "runAsUser"),
            (sc.run_as_group, "runAsGroup"),
        ] {
            if let Some(v) = v {
                validate_id(v, &format!("{p}.securityContext.{f}"), errs);
            }
        }
    }
}

const ENV_NAME_MSG: &str = "a valid environment variable name must consist only of printable ASCII characters other than '='";

fn is_env_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| (b' '..=b'~').contains(&b) && b != b'=')
}

fn validate_env_var(e: &EnvVar, p: &str, errs: &mut FieldErrors) {
    if e.name.is_empty() {
        errs.required(format!("{p}.name"), "");
    } else if !is_env_name(&e.name) {
        errs.invalid(format!("{p}.name"), &e.name, ENV_NAME_MSG);
    }
    let Some(from) = &e.value_from else {
        return;
    };
    let vp = format!("{p}.valueFrom");
    if !e.value.is_empty() {
        errs.invalid(&vp, "", "may not be specified when `value` is not empty");
    }
    let sources = usize::from(from.field_ref.is_some())
        + usize::from(from.resource_field_ref.is_some())
        + usize::from(from.config_map_key_ref.is_some())
        + usize::from(from.secret_key_ref.is_some());
    match sources {
        0 => errs.invalid(
            &vp,
            "",
            "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
        ),
        1 => {}
        _ => errs.invalid(&vp, "", "may not have more than one field specified at a time"),
    }
    if let Some(f) = &from.field_ref {
        let path = f.field_path.as_str();
        // `metadata.labels['key']` and `metadata.annotations['key']` select one entry.
        let base = path.split_once('[').map_or(path, |(b, _)| b);
        let subscript_ok = path == base
            || (matches!(base, "metadata.labels" | "metadata.annotations")
                && path.ends_with("']")
                && path.len() > base.len() + 4);
        if f.field_path.is_empty() {
            errs.required(format!("{vp}.fieldRef.fieldPath"), "");
        } else if !FIELD_REF_PATHS.contains(&base) || !subscript_ok {
            errs.not_supported(
                format!("{vp}.fieldRef.fieldPath"),
                &f.field_path,
                &FIELD_REF_PATHS,
            );
        }
        validate_enum(
            &f.api_version,
            &["v1"],
            &format!("{vp}.fieldRef.apiVersion"),
            errs,
        );
    }
    if let Some(r) = &from.resource_field_ref {
        if r.resource.is_empty() {
            errs.required(format!("{vp}.resourceFieldRef.resource"), "");
        } else if !RESOURCE_FIELD_REFS.contains(&r.resource.as_str()) {
            errs.not_supported(
                format!("{vp}.resourceFieldRef.resource"),
                &r.resource,
                &RESOURCE_FIELD_REFS,
            );
        }
        if let Some(d) = &r.divisor {
            validate_quantity(d, &format!("{vp}.resourceFieldRef.divisor"), errs);
        }
    }
    let key_refs = [
        from.config_map_key_ref
            .as_ref()
            .map(|r| (&r.name, &r.key, "configMapKeyRef")),
        from.secret_key_ref
            .as_ref()
            .map(|r| (&r.name, &r.key, "secretKeyRef")),
    ];
    for (name, key, field) in key_refs.into_iter().flatten() {
        if name.is_empty() {
            errs.required(format!("{vp}.{field}.name"), "");
        }
        if key.is_empty() {
            errs.required(format!("{vp}.{field}.key"), "");
        } else if let Err(msg) = config_map_key(key) {
            errs.invalid(format!("{vp}.{field}.key"), key, msg);
        }
    }
}

fn validate_resources(c: &Container, p: &str, errs: &mut FieldErrors) {
    let limits = &c.resources.limits;
    let requests = &c.resources.requests;
    validate_resource_list(limits, &format!("{p}.resources.limits"), errs);
    validate_resource_list(requests, &format!("{p}.resources.requests"), errs);
    for (name, req) in requests {
        if let Some(limit) = limits.get(name)
            && req.cmp_amount(limit) == Some(std::cmp::Ordering::Greater)
        {
            errs.invalid(
                format!("{p}.resources.requests[{name}]"),
                req.as_str(),
                format!("must be less than or equal to {name} limit of {limit}"),
            );
        }
    }
}

fn validate_probe(pr: &Probe, p: &str, must_succeed_once: bool, errs: &mut FieldErrors) {
    let handlers = usize::from(pr.exec.is_some())
        + usize::from(pr.http_get.is_some())
        + usize::from(pr.tcp_socket.is_some())
        + usize::from(pr.grpc.is_some());
    match handlers {
        0 => errs.required(p, "must specify a handler type"),
        1 => {}
        _ => errs.forbidden(p, "may not specify more than 1 handler type"),
    }
    if let Some(e) = &pr.exec
        && e.command.is_empty()
    {
        errs.required(format!("{p}.exec.command"), "");
    }
    if let Some(g) = &pr.http_get {
        validate_http_get(g, &format!("{p}.httpGet"), errs);
    }
    if let Some(t) = &pr.tcp_socket {
        validate_port_num_or_name(&t.port, &format!("{p}.tcpSocket.port"), errs);
    }
    if let Some(g) = &pr.grpc {
        validate_port_number(g.port, &format!("{p}.grpc.port"), errs);
    }
    for (v, f) in [
        (pr.initial_delay_seconds, "initialDelaySeconds"),
        (pr.timeout_seconds, "timeoutSeconds"),
        (pr.period_seconds, "periodSeconds"),
        (pr.success_threshold, "successThreshold"),
        (pr.failure_threshold, "failureThreshold"),
    ] {
        validate_non_negative(i64::from(v), &format!("{p}.{f}"), errs);
    }
    if must_succeed_once && pr.success_threshold > 1 {
        errs.invalid(
            format!("{p}.successThreshold"),
            pr.success_threshold,
            "must be 1",
        );
    }
    if let Some(g) = pr.termination_grace_period_seconds
        && g <= 0
    {
        errs.invalid(
            format!("{p}.terminationGracePeriodSeconds"),
            g,
            "must be greater than 0",
        );
    }
}

fn validate_http_get(g: &HttpGetAction, p: &str, errs: &mut FieldErrors) {
    validate_port_num_or_name(&g.port, &format!("{p}.port"), errs);
    validate_enum(&g.scheme, &["HTTP", "HTTPS"], &format!("{p}.scheme"), errs);
    for (i, h) in g.http_headers.iter().enumerate() {
        let valid = !h.name.is_empty()
            && h.name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !valid {
            errs.invalid(
                format!("{p}.httpHeaders[{i}].name"),
                &h.name,
                "a valid HTTP header must consist of alphanumeric characters or '-'",
            );
        }
    }
}

fn validate_handler(h: &LifecycleHandler, p: &str, errs: &mut FieldErrors) {
    let handlers = usize::from(h.exec.is_some())
        + usize::from(h.http_get.is_some())
        + usize::from(h.tcp_socket.is_some())
        + usize::from(h.sleep.is_some());
    match handlers {
        0 => errs.required(p, "must specify a handler type"),
        1 => {}
        _ => errs.forbidden(p, "may not specify more than 1 handler type"),
    }
    if let Some(e) = &h.exec
        && e.command.is_empty()
    {
        errs.required(format!("{p}.exec.command"), "");
    }
    if let Some(g) = &h.http_get {
        validate_http_get(g, &format!("{p}.httpGet"), errs);
    }
    if let Some(t) = &h.tcp_socket {
        validate_port_num_or_name(&t.port, &format!("{p}.tcpSocket.port"), errs);
    }
    if let Some(sl) = &h.sleep
        && sl.seconds <= 0
    {
        errs.invalid(
            format!("{p}.sleep.seconds"),
            sl.seconds,
            "must be greater than 0",
        );
    }
}

/// Validates one toleration under `p`.
pub(crate) fn validate_toleration(t: &Toleration, p: &str, errs: &mut FieldErrors) {
    if t.key.is_empty() {
        if t.operator != "Exists" {
            errs.invalid(
                format!("{p}.operator"),
                &t.operator,
                "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
            );
        }
    } else if let Err(e) = qualified_name(&t.key) {
        errs.invalid(format!("{p}.key"), &t.key, e);
    }
    match t.operator.as_str() {
        "" | "Equal" => {
            if let Err(e) = label_value(&t.value) {
                errs.invalid(format!("{p}.value"), &t.value, e);
            }
        }
        "Exists" => {
            if !t.value.is_empty() {
                errs.invalid(
                    format!("{p}.value"),
                    &t.value,
                    "value must be empty when `operator` is 'Exists'",
                );
            }
        }
        other => errs.not_supported(format!("{p}.operator"), other, &["Equal", "Exists"]),
    }
    validate_enum(&t.effect, &TAINT_EFFECTS, &format!("{p}.effect"), errs);
    if t.toleration_seconds.is_some() && t.effect != "NoExecute" {
        errs.invalid(
            format!("{p}.effect"),
            &t.effect,
            "effect must be 'NoExecute' when `tolerationSeconds` is set",
        );
    }
}

fn validate_node_selector_term(t: &NodeSelectorTerm, p: &str, errs: &mut FieldErrors) {
    for (i, r) in t.match_expressions.iter().enumerate() {
        let rp = format!("{p}.matchExpressions[{i}]");
        if let Err(e) = qualified_name(&r.key) {
            errs.invalid(format!("{rp}.key"), &r.key, e);
        }
        match r.operator.as_str() {
            "In" | "NotIn" => {
                if r.values.is_empty() {
                    errs.required(
                        format!("{rp}.values"),
                        "must be specified when `operator` is 'In' or 'NotIn'",
                    );
                }
            }
            "Exists" | "DoesNotExist" => {
                if !r.values.is_empty() {
                    errs.forbidden(
                        format!("{rp}.values"),
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    );
                }
            }
            "Gt" | "Lt" => {
                if r.values.len() != 1 || r.values[0].parse::<i64>().is_err() {
                    errs.required(
                        format!("{rp}.values"),
                        "must be specified single value when `operator` is 'Lt' or 'Gt'",
                    );
                }
            }
            other => errs.not_supported(
                format!("{rp}.operator"),
                other,
                &["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"],
            ),
        }
        if matches!(r.operator.as_str(), "In" | "NotIn") {
            for (j, v) in r.values.iter().enumerate() {
                if let Err(e) = label_value(v) {
                    errs.invalid(format!("{rp}.values[{j}]"), v, e);
                }
            }
        }
    }
    for (i, r) in t.match_fields.iter().enumerate() {
        let rp = format!("{p}.matchFields[{i}]");
        if r.key != "metadata.name" {
            errs.not_supported(format!("{rp}.key"), &r.key, &["metadata.name"]);
        }
        if !matches!(r.operator.as_str(), "In" | "NotIn") {
            errs.not_supported(format!("{rp}.operator"), &r.operator, &["In", "NotIn"]);
        }
        if r.values.len() != 1 {
            errs.required(
                format!("{rp}.values"),
                "must be only one value when `operator` is 'In' or 'NotIn' for node field selector",
            );
        }
    }
}

fn validate_weight(w: i32, p: &str, errs: &mut FieldErrors) {
    if !(1..=100).contains(&w) {
        errs.invalid(p, w, "must be in the range 1-100");
    }
}

fn validate_pod_affinity_term(t: &PodAffinityTerm, p: &str, errs: &mut FieldErrors) {
    if t.topology_key.is_empty() {
        errs.required(format!("{p}.topologyKey"), "can not be empty");
    } else if let Err(e) = qualified_name(&t.topology_key) {
        errs.invalid(format!("{p}.topologyKey"), &t.topology_key, e);
    }
    if let Some(sel) = &t.label_selector {
        validate_label_selector(sel, &format!("{p}.labelSelector"), errs);
    }
    if let Some(sel) = &t.namespace_selector {
        validate_label_selector(sel, &format!("{p}.namespaceSelector"), errs);
    }
    for (i, ns) in t.namespaces.iter().enumerate() {
        if let Err(e) = dns1123_label(ns) {
            errs.invalid(format!("{p}.namespaces[{i}]"), ns, e);
        }
    }
}

fn validate_affinity(a: &Affinity, p: &str, errs: &mut FieldErrors) {
    if let Some(na) = &a.node_affinity {
        let np = format!("{p}.nodeAffinity");
        if let Some(req) = &na.required_during_scheduling_ignored_during_execution {
            let rp =
                format!("{np}.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms");
            if req.node_selector_terms.is_empty() {
                errs.required(&rp, "must have at least one node selector term");
            }
            for (i, t) in req.node_selector_terms.iter().enumerate() {
                validate_node_selector_term(t, &format!("{rp}[{i}]"), errs);
            }
        }
        for (i, t) in na
            .preferred_during_scheduling_ignored_during_execution
            .iter()
            .enumerate()
        {
            let tp = format!("{np}.preferredDuringSchedulingIgnoredDuringExecution[{i}]");
            validate_weight(t.weight, &format!("{tp}.weight"), errs);
            validate_node_selector_term(&t.preference, &format!("{tp}.preference"), errs);
        }
    }
    for (pa, field) in [
        (&a.pod_affinity, "podAffinity"),
        (&a.pod_anti_affinity, "podAntiAffinity"),
    ] {
        let Some(pa) = pa else { continue };
        let fp = format!("{p}.{field}");
        for (i, t) in pa
            .required_during_scheduling_ignored_during_execution
            .iter()
            .enumerate()
        {
            let tp = format!("{fp}.requiredDuringSchedulingIgnoredDuringExecution[{i}]");
            validate_pod_affinity_term(t, &tp, errs);
        }
        for (i, t) in pa
            .preferred_during_scheduling_ignored_during_execution
            .iter()
            .enumerate()
        {
            let tp = format!("{fp}.preferredDuringSchedulingIgnoredDuringExecution[{i}]");
            validate_weight(t.weight, &format!("{tp}.weight"), errs);
            validate_pod_affinity_term(
                &t.pod_affinity_term,
                &format!("{tp}.podAffinityTerm"),
                errs,
            );
        }
    }
}

fn validate_topology_spread(cs: &[TopologySpreadConstraint], path: &str, errs: &mut FieldErrors) {
    let mut seen = BTreeSet::new();
    for (i, c) in cs.iter().enumerate() {
        let p = format!("{path}.topologySpreadConstraints[{i}]");
        if c.max_skew <= 0 {
            errs.invalid(
                format!("{p}.maxSkew"),
                c.max_skew,
                "must be greater than zero",
            );
        }
        if c.topology_key.is_empty() {
            errs.required(format!("{p}.topologyKey"), "can not be empty");
        } else if let Err(e) = qualified_name(&c.topology_key) {
            errs.invalid(format!("{p}.topologyKey"), &c.topology_key, e);
        }
        const WHEN: [&str; 2] = ["DoNotSchedule", "ScheduleAnyway"];
        if !WHEN.contains(&c.when_unsatisfiable.as_str()) {
            errs.not_supported(
                format!("{p}.whenUnsatisfiable"),
                &c.when_unsatisfiable,
                &WHEN,
            );
        }
        if let Some(m) = c.min_domains {
            if m <= 0 {
                errs.invalid(format!("{p}.minDomains"), m, "must be greater than 0");
            } else if c.when_unsatisfiable != "DoNotSchedule" {
                errs.invalid(
                    format!("{p}.minDomains"),
                    m,
                    "can only use minDomains if whenUnsatisfiable=DoNotSchedule",
                );
            }
        }
        for (v, f) in [
            (&c.node_affinity_policy, "nodeAffinityPolicy"),
            (&c.node_taints_policy, "nodeTaintsPolicy"),
        ] {
            if let Some(v) = v {
                validate_enum(v, &["Honor", "Ignore"], &format!("{p}.{f}"), errs);
            }
        }
        if let Some(sel) = &c.label_selector {
            validate_label_selector(sel, &format!("{p}.labelSelector"), errs);
        }
        if !seen.insert((c.topology_key.as_str(), c.when_unsatisfiable.as_str())) {
            errs.duplicate(
                format!("{p}.{{topologyKey, whenUnsatisfiable}}"),
                format!("{{{}, {}}}", c.topology_key, c.when_unsatisfiable),
            );
        }
    }
}

/// What `kubectl` and Kubernetes allow to change in a running pod's spec.
const MUTABLE_SPEC: &str = "pod updates may not change fields other than `spec.containers[*].image`, `spec.initContainers[*].image`, `spec.activeDeadlineSeconds`, `spec.tolerations` (only additions to existing tolerations), `spec.terminationGracePeriodSeconds` and `spec.nodeName` (only when unset)";

fn validate_pod_update(new: &PodSpec, old: &PodSpec, errs: &mut FieldErrors) {
    match (old.active_deadline_seconds, new.active_deadline_seconds) {
        (Some(_), None) => errs.invalid(
            "spec.activeDeadlineSeconds",
            Option::<i64>::None,
            "must not update from a positive integer to nil value",
        ),
        (Some(o), Some(n)) if n > o => errs.invalid(
            "spec.activeDeadlineSeconds",
            n,
            "must be less than or equal to previous value",
        ),
        _ => {}
    }
    if !old.tolerations.iter().all(|t| new.tolerations.contains(t)) {
        errs.forbidden(
            "spec.tolerations",
            "existing toleration can not be modified or removed",
        );
    }
    if !old.node_name.is_empty() && new.node_name != old.node_name {
        errs.forbidden("spec.nodeName", "may not be changed once the pod is bound");
    }
    // Mask the fields that may change and compare the rest.
    let mut masked = new.clone();
    for (n, o) in masked.containers.iter_mut().zip(&old.containers) {
        n.image.clone_from(&o.image);
    }
    for (n, o) in masked.init_containers.iter_mut().zip(&old.init_containers) {
        n.image.clone_from(&o.image);
    }
    masked.active_deadline_seconds = old.active_deadline_seconds;
    masked.tolerations.clone_from(&old.tolerations);
    masked.termination_grace_period_seconds = old.termination_grace_period_seconds;
    masked.node_name.clone_from(&old.node_name);
    if masked != *old {
        let changed = changed_fields(&masked, old);
        errs.forbidden(
            "spec",
            format!("{MUTABLE_SPEC}; changed: {}", changed.join(", ")),
        );
    }
}

// ---------------------------------------------------------------------------
// ApiObject
// ---------------------------------------------------------------------------

impl ApiObject for Pod {
    const HAS_STATUS: bool = true;

    /// Spec defaults plus what Kubernetes applies to pods only:
    /// enableServiceLinks, requests copied from limits, phase Pending and the
    /// QoS class.
    fn set_defaults(&mut self) {
        self.spec.set_defaults();
        if self.spec.enable_service_links.is_none() {
            self.spec.enable_service_links = Some(true);
        }
        for c in self
            .spec
            .init_containers
            .iter_mut()
            .chain(&mut self.spec.containers)
        {
            let limits: ResourceList = c.resources.limits.clone();
            for (name, q) in limits {
                c.resources.requests.entry(name).or_insert(q);
            }
        }
        if self.status.phase.is_empty() {
            self.status.phase = "Pending".into();
        }
        if self.status.qos_class.is_empty() {
            self.status.qos_class = qos_class(&self.spec).into();
        }
    }

    fn validate(&self) -> FieldErrors {
        let mut errs = FieldErrors::default();
        validate_meta(&self.metadata, dns1123_subdomain, &mut errs);
        validate_pod_spec(&self.spec, "spec", &mut errs);
        validate_enum(
            &self.status.phase,
            &["Pending", "Running", "Succeeded", "Failed", "Unknown"],
            "status.phase",
            &mut errs,
        );
        errs
    }

    fn validate_update(&self, old: &Self) -> FieldErrors {
        let mut errs = FieldErrors::default();
        validate_pod_update(&self.spec, &old.spec, &mut errs);
        errs
    }

    /// On create the status starts as Kubernetes starts it: phase Pending
    /// with the QoS class.
    fn keep_status(&mut self, old: Option<&Self>) {
        self.status = match old {
            Some(o) => o.status.clone(),
            None => super::PodStatus {
                phase: "Pending".into(),
                qos_class: qos_class(&self.spec).into(),
                ..Default::default()
            },
        };
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
            TableColumn::new("Ready", "string", 0),
            TableColumn::new("Status", "string", 0),
            TableColumn::new("Restarts", "string", 0),
            TableColumn::new("Age", "string", 0),
            TableColumn::new("IP", "string", 1),
            TableColumn::new("Node", "string", 1),
            TableColumn::new("Nominated Node", "string", 1),
            TableColumn::new("Readiness Gates", "string", 1),
        ]
    }

    fn table_row(&self, now: DateTime<Utc>) -> Vec<Value> {
        let row = pod_row(self, now);
        let or_none = |v: &str| {
            if v.is_empty() {
                "<none>".to_string()
            } else {
                v.to_string()
            }
        };
        let ip = self
            .status
            .pod_ips
            .first()
            .map(|p| p.ip.as_str())
            .unwrap_or("");
        let gates = if self.spec.readiness_gates.is_empty() {
            "<none>".to_string()
        } else {
            let ready = self
                .spec
                .readiness_gates
                .iter()
                .filter(|g| {
                    self.condition(&g.condition_type)
                        .is_some_and(|c| c.status == "True")
                })
                .count();
            format!("{ready}/{}", self.spec.readiness_gates.len())
        };
        vec![
            s(&self.metadata.name),
            s(format!("{}/{}", row.ready, row.total)),
            s(row.reason),
            s(row.restarts),
            age(self.metadata.creation_timestamp.as_ref(), now),
            s(or_none(ip)),
            s(or_none(&self.spec.node_name)),
            s(or_none(&self.status.nominated_node_name)),
            s(gates),
        ]
    }

    fn field_value(&self, field: &str) -> Option<String> {
        Some(match field {
            "spec.nodeName" => self.spec.node_name.clone(),
            "spec.restartPolicy" => self.spec.restart_policy.clone(),
            "spec.schedulerName" => self.spec.scheduler_name.clone(),
            "spec.serviceAccountName" => self.spec.service_account_name.clone(),
            "spec.hostNetwork" => self.spec.host_network.to_string(),
            "status.phase" => self.status.phase.clone(),
            "status.podIP" => self.status.pod_ip.clone(),
            "status.nominatedNodeName" => self.status.nominated_node_name.clone(),
            _ => return None,
        })
    }
}

/// The cells kubectl derives from container statuses.
struct PodRow {
    ready: usize,
    total: usize,
    reason: String,
    restarts: String,
}

/// kubectl's pod status logic (`printPod`): the phase, overridden by the
/// pod's reason, an init container's progress or failure, a container's
/// waiting or terminated reason, and `Terminating` while being deleted.
fn pod_row(pod: &Pod, now: DateTime<Utc>) -> PodRow {
    let spec = &pod.spec;
    let st = &pod.status;
    let mut reason = if st.reason.is_empty() {
        st.phase.clone()
    } else {
        st.reason.clone()
    };
    if st
        .conditions
        .iter()
        .any(|c| c.type_ == "PodScheduled" && c.reason == "SchedulingGated")
    {
        reason = "SchedulingGated".into();
    }
    let sidecar = |name: &str| {
        spec.init_containers
            .iter()
            .find(|c| c.name == name)
            .is_some_and(is_restartable_init)
    };
    let total = spec.containers.len()
        + spec
            .init_containers
            .iter()
            .filter(|c| is_restartable_init(c))
            .count();
    let mut ready = 0usize;
    let mut restarts: i64 = 0;
    let mut sidecar_restarts: i64 = 0;
    let mut last_restart: Option<DateTime<Utc>> = None;
    let mut last_sidecar_restart: Option<DateTime<Utc>> = None;
    let finished = |cs: &super::ContainerStatus| {
        cs.last_state
            .terminated
            .as_ref()
            .and_then(|t| t.finished_at)
            .map(|t| t.0)
    };

    let mut initializing = false;
    for (i, cs) in st.init_container_statuses.iter().enumerate() {
        restarts += i64::from(cs.restart_count);
        last_restart = last_restart.max(finished(cs));
        if sidecar(&cs.name) {
            sidecar_restarts += i64::from(cs.restart_count);
            last_sidecar_restart = last_sidecar_restart.max(finished(cs));
        }
        let term = cs.state.terminated.as_ref();
        if term.is_some_and(|t| t.exit_code == 0) {
            continue;
        }
        if sidecar(&cs.name) && cs.started == Some(true) {
            if cs.ready {
                ready += 1;
            }
            continue;
        }
        initializing = true;
        reason = match (term, cs.state.waiting.as_ref()) {
            (Some(t), _) if t.reason.is_empty() && t.signal != 0 => {
                format!("Init:Signal:{}", t.signal)
            }
            (Some(t), _) if t.reason.is_empty() => format!("Init:ExitCode:{}", t.exit_code),
            (Some(t), _) => format!("Init:{}", t.reason),
            (None, Some(w)) if !w.reason.is_empty() && w.reason != "PodInitializing" => {
                format!("Init:{}", w.reason)
            }
            _ => format!("Init:{i}/{}", spec.init_containers.len()),
        };
        break;
    }

    let initialized = st
        .conditions
        .iter()
        .any(|c| c.type_ == "Initialized" && c.status == "True");
    if !initializing || initialized {
        restarts = sidecar_restarts;
        last_restart = last_sidecar_restart;
        let mut has_running = false;
        for cs in st.container_statuses.iter().rev() {
            restarts += i64::from(cs.restart_count);
            last_restart = last_restart.max(finished(cs));
            let waiting = cs.state.waiting.as_ref().filter(|w| !w.reason.is_empty());
            if let Some(w) = waiting {
                reason = w.reason.clone();
            } else if let Some(t) = &cs.state.terminated {
                reason = if !t.reason.is_empty() {
                    t.reason.clone()
                } else if t.signal != 0 {
                    format!("Signal:{}", t.signal)
                } else {
                    format!("ExitCode:{}", t.exit_code)
                };
            } else if cs.ready && cs.state.running.is_some() {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            reason = if pod_ready(pod) {
                "Running".into()
            } else {
                "NotReady".into()
            };
        }
    }

    if pod.metadata.deletion_timestamp.is_some() {
        if st.reason == "NodeLost" {
            reason = "Unknown".into();
        } else if !pod.is_terminal() {
            reason = "Terminating".into();
        }
    }

    let restarts = match last_restart {
        Some(t) if restarts != 0 => {
            format!("{restarts} ({} ago)", crate::api::human_duration(now - t))
        }
        _ => restarts.to_string(),
    };
    PodRow {
        ready,
        total,
        reason,
        restarts,
    }
}

impl ApiObject for Binding {
    fn validate(&self) -> FieldErrors {
        let mut errs = FieldErrors::default();
        validate_meta(&self.metadata, dns1123_subdomain, &mut errs);
        if self.target.name.is_empty() {
            errs.required("target.name", "");
        }
        validate_enum(&self.target.kind, &["Node"], "target.kind", &mut errs);
        errs
    }

    /// The generic table Kubernetes serves for types without a printer.
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
