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
        // A missing request equals its limit, as defaulting makes it.
        let defaulted = c
            .resources
            .limits
            .iter()
            .filter(|(name, _)| !c.resources.requests.contains_key(*name));
        for (name, q) in c.resources.requests.iter().chain(defaulted) {
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

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::json;

    use super::*;
    use crate::api::Time;
    use crate::api::quantity::IntOrString;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap()
    }

    fn ago(secs: i64) -> Time {
        Time(now() - chrono::Duration::seconds(secs))
    }

    fn pod(v: Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    /// A valid pod using most of what validation looks at.
    fn base_pod() -> Pod {
        pod(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
            "spec": {
                "volumes": [
                    {"name": "cfg", "configMap": {"name": "web-config"}},
                    {"name": "scratch", "emptyDir": {}}
                ],
                "containers": [{
                    "name": "web", "image": "hello:v1",
                    "ports": [{"name": "http", "containerPort": 8080}],
                    "env": [
                        {"name": "MODE", "value": "prod"},
                        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                        {"name": "LABEL", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                        {"name": "KEY", "valueFrom": {"secretKeyRef": {"name": "s", "key": "token"}}}
                    ],
                    "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}, "requests": {"cpu": "100m"}},
                    "volumeMounts": [
                        {"name": "cfg", "mountPath": "/etc/web"},
                        {"name": "scratch", "mountPath": "/tmp"}
                    ],
                    "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}}
                }],
                "tolerations": [{"key": "k", "operator": "Equal", "value": "v", "effect": "NoSchedule"}]
            }
        }))
    }

    #[test]
    fn defaults_match_the_api_server() {
        let mut p = pod(json!({
            "metadata": {"name": "web"},
            "spec": {
                "volumes": [
                    {"name": "c", "configMap": {"name": "cm"}},
                    {"name": "s", "secret": {"secretName": "sec", "defaultMode": 256}}
                ],
                "containers": [{
                    "name": "web", "image": "hello:v1",
                    "ports": [{"containerPort": 80}],
                    "env": [{"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                    "resources": {"limits": {"cpu": "1", "memory": "64Mi"}, "requests": {"cpu": "500m"}},
                    "livenessProbe": {"httpGet": {"port": 80}},
                    "lifecycle": {"preStop": {"httpGet": {"port": 80}}}
                }]
            }
        }));
        p.set_defaults();
        let spec = &p.spec;
        assert_eq!(spec.restart_policy, "Always");
        assert_eq!(spec.termination_grace_period_seconds, Some(30));
        assert_eq!(spec.dns_policy, "ClusterFirst");
        assert_eq!(spec.scheduler_name, "default-scheduler");
        assert_eq!(spec.enable_service_links, Some(true));
        assert_eq!(spec.security_context, Some(PodSecurityContext::default()));
        assert_eq!(
            spec.volumes[0].config_map.as_ref().unwrap().default_mode,
            Some(420)
        );
        assert_eq!(
            spec.volumes[1].secret.as_ref().unwrap().default_mode,
            Some(256)
        );
        let c = &spec.containers[0];
        assert_eq!(c.termination_message_path, "/dev/termination-log");
        assert_eq!(c.termination_message_policy, "File");
        assert_eq!(c.image_pull_policy, "IfNotPresent");
        assert_eq!(c.ports[0].protocol, "TCP");
        assert_eq!(c.ports[0].host_port, 0);
        let f = c.env[0]
            .value_from
            .as_ref()
            .unwrap()
            .field_ref
            .as_ref()
            .unwrap();
        assert_eq!(f.api_version, "v1");
        // Requests come from limits only where missing.
        assert_eq!(c.resources.requests["cpu"].as_str(), "500m");
        assert_eq!(c.resources.requests["memory"].as_str(), "64Mi");
        let probe = c.liveness_probe.as_ref().unwrap();
        assert_eq!(
            (
                probe.timeout_seconds,
                probe.period_seconds,
                probe.success_threshold,
                probe.failure_threshold
            ),
            (1, 10, 1, 3)
        );
        let get = probe.http_get.as_ref().unwrap();
        assert_eq!((get.path.as_str(), get.scheme.as_str()), ("/", "HTTP"));
        let stop = c.lifecycle.as_ref().unwrap().pre_stop.as_ref().unwrap();
        assert_eq!(stop.http_get.as_ref().unwrap().path, "/");
        assert_eq!(p.status.phase, "Pending");
        assert_eq!(p.status.qos_class, "Burstable");
        // Defaulting is idempotent.
        let once = p.clone();
        p.set_defaults();
        assert_eq!(p, once);
    }

    #[test]
    fn template_defaults_leave_pod_only_fields_alone() {
        let mut t: PodTemplateSpec = serde_json::from_value(json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "m:v1",
                "resources": {"limits": {"cpu": "1"}}}]}
        }))
        .unwrap();
        t.set_defaults();
        assert_eq!(t.spec.restart_policy, "Always");
        assert_eq!(t.spec.enable_service_links, None);
        assert!(t.spec.containers[0].resources.requests.is_empty());
    }

    #[test]
    fn host_network_and_service_account_defaults() {
        let mut spec: PodSpec = serde_json::from_value(json!({
            "hostNetwork": true, "serviceAccount": "builder",
            "containers": [{"name": "c", "image": "m:v1", "ports": [{"containerPort": 8080}]}]
        }))
        .unwrap();
        spec.set_defaults();
        assert_eq!(spec.containers[0].ports[0].host_port, 8080);
        assert_eq!(spec.service_account_name, "builder");
        let mut spec: PodSpec = serde_json::from_value(json!({
            "serviceAccountName": "runner", "containers": []
        }))
        .unwrap();
        spec.set_defaults();
        assert_eq!(spec.service_account, "runner");
    }

    #[test]
    fn image_pull_policy_defaults() {
        let cases = [
            ("hello", "Always"),
            ("hello:latest", "Always"),
            ("hello:v1", "IfNotPresent"),
            ("registry:5000/hello", "Always"),
            ("registry:5000/hello:v2", "IfNotPresent"),
            ("hello@sha256:0123abcd", "IfNotPresent"),
            ("sha256:0123abcd", "IfNotPresent"),
        ];
        for (image, want) in cases {
            assert_eq!(default_pull_policy(image), want, "{image}");
        }
    }

    /// Containers as (kind, resources): kind is main, init or sidecar.
    type Containers = Vec<(&'static str, Value)>;

    fn spec_with(resources: &[(&str, Value)]) -> PodSpec {
        let containers: Vec<Value> = resources
            .iter()
            .enumerate()
            .map(|(i, (kind, r))| {
                let mut c = json!({"name": format!("c{i}"), "image": "m:v1", "resources": r});
                if kind.starts_with("sidecar") {
                    c["restartPolicy"] = json!("Always");
                }
                c
            })
            .collect();
        let (init, main): (Vec<_>, Vec<_>) = containers
            .into_iter()
            .zip(resources)
            .partition(|(_, (kind, _))| *kind != "main");
        serde_json::from_value(json!({
            "initContainers": init.into_iter().map(|(c, _)| c).collect::<Vec<_>>(),
            "containers": main.into_iter().map(|(c, _)| c).collect::<Vec<_>>(),
        }))
        .unwrap()
    }

    #[test]
    fn qos_classes() {
        let both = json!({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1", "memory": "1Gi"}});
        let cases: Vec<(&str, Containers, &str)> = vec![
            ("nothing set", vec![("main", json!({}))], "BestEffort"),
            (
                "zero quantities",
                vec![("main", json!({"requests": {"cpu": "0"}}))],
                "BestEffort",
            ),
            (
                "equal requests and limits",
                vec![("main", both.clone())],
                "Guaranteed",
            ),
            (
                "limits only",
                vec![("main", json!({"limits": {"cpu": "1", "memory": "1Gi"}}))],
                "Guaranteed",
            ),
            (
                "cpu limit only",
                vec![("main", json!({"limits": {"cpu": "1"}}))],
                "Burstable",
            ),
            (
                "requests below limits",
                vec![(
                    "main",
                    json!({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m"}}),
                )],
                "Burstable",
            ),
            (
                "one container without limits",
                vec![("main", both.clone()), ("main", json!({}))],
                "Burstable",
            ),
            (
                "init without limits",
                vec![("init", json!({})), ("main", both)],
                "Burstable",
            ),
            (
                "other resources ignored",
                vec![("main", json!({"limits": {"example.com/gpu": "1"}}))],
                "BestEffort",
            ),
        ];
        for (name, resources, want) in cases {
            assert_eq!(qos_class(&spec_with(&resources)), want, "{name}");
        }
    }

    #[test]
    fn requests_like_the_scheduler() {
        let r = |cpu: &str, mem: &str| json!({"requests": {"cpu": cpu, "memory": mem}});
        let cases: Vec<(&str, Containers, (i64, i64))> = vec![
            ("none", vec![("main", json!({}))], (0, 0)),
            (
                "sum of containers",
                vec![("main", r("100m", "64Mi")), ("main", r("250m", "32Mi"))],
                (350, 96 << 20),
            ),
            (
                "limits stand in for missing requests",
                vec![("main", json!({"limits": {"cpu": "1", "memory": "1Gi"}}))],
                (1000, 1 << 30),
            ),
            (
                "init container peak wins",
                vec![("init", r("2", "16Mi")), ("main", r("100m", "64Mi"))],
                (2000, 64 << 20),
            ),
            (
                "sidecars add to everything after them",
                vec![
                    ("sidecar", r("100m", "10Mi")),
                    ("init", r("1", "1Mi")),
                    ("main", r("200m", "20Mi")),
                ],
                (1100, 30 << 20),
            ),
        ];
        for (name, resources, want) in cases {
            assert_eq!(pod_requests(&spec_with(&resources)), want, "{name}");
        }
    }

    fn error_fields(p: &Pod) -> Vec<String> {
        p.validate().0.into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn base_pod_is_valid_before_and_after_defaults() {
        let p = base_pod();
        assert_eq!(error_fields(&p), Vec::<String>::new());
        let mut d = p.clone();
        d.set_defaults();
        assert_eq!(error_fields(&d), Vec::<String>::new());
    }

    #[test]
    fn validation_rules() {
        type Case = (&'static str, fn(&mut Pod), &'static [&'static str]);
        let cases: &[Case] = &[
            (
                "bad name",
                |p| p.metadata.name = "Web_1".into(),
                &["metadata.name"],
            ),
            ("no name", |p| p.metadata.name.clear(), &["metadata.name"]),
            (
                "bad label",
                |p| {
                    p.metadata.labels.insert("a b".into(), "x".into());
                },
                &["metadata.labels"],
            ),
            (
                "no containers",
                |p| p.spec.containers.clear(),
                &["spec.containers"],
            ),
            (
                "container name",
                |p| p.spec.containers[0].name = "Web".into(),
                &["spec.containers[0].name"],
            ),
            (
                "container without name",
                |p| p.spec.containers[0].name.clear(),
                &["spec.containers[0].name"],
            ),
            (
                "duplicate container name across init containers",
                |p| {
                    let mut init = p.spec.containers[0].clone();
                    init.readiness_probe = None;
                    p.spec.init_containers.push(init);
                },
                &["spec.containers[0].name"],
            ),
            (
                "image required",
                |p| p.spec.containers[0].image.clear(),
                &["spec.containers[0].image"],
            ),
            (
                "restart policy",
                |p| p.spec.restart_policy = "Sometimes".into(),
                &["spec.restartPolicy"],
            ),
            (
                "dns policy",
                |p| p.spec.dns_policy = "Google".into(),
                &["spec.dnsPolicy"],
            ),
            (
                "container port 0",
                |p| p.spec.containers[0].ports[0].container_port = 0,
                &["spec.containers[0].ports[0].containerPort"],
            ),
            (
                "container port too big",
                |p| p.spec.containers[0].ports[0].container_port = 65536,
                &["spec.containers[0].ports[0].containerPort"],
            ),
            (
                "host port",
                |p| p.spec.containers[0].ports[0].host_port = -1,
                &["spec.containers[0].ports[0].hostPort"],
            ),
            (
                "protocol",
                |p| p.spec.containers[0].ports[0].protocol = "HTTP".into(),
                &["spec.containers[0].ports[0].protocol"],
            ),
            (
                "port name",
                |p| p.spec.containers[0].ports[0].name = "8080".into(),
                &["spec.containers[0].ports[0].name"],
            ),
            (
                "unparsable quantity",
                |p| {
                    p.spec.containers[0]
                        .resources
                        .limits
                        .insert("cpu".into(), crate::api::quantity::Quantity("lots".into()));
                },
                &["spec.containers[0].resources.limits[cpu]"],
            ),
            (
                "negative quantity",
                |p| {
                    p.spec.containers[0]
                        .resources
                        .requests
                        .insert("memory".into(), crate::api::quantity::Quantity("-1".into()));
                },
                &["spec.containers[0].resources.requests[memory]"],
            ),
            (
                "request above limit",
                |p| {
                    p.spec.containers[0]
                        .resources
                        .requests
                        .insert("cpu".into(), crate::api::quantity::Quantity("1".into()));
                },
                &["spec.containers[0].resources.requests[cpu]"],
            ),
            (
                "volume name",
                |p| p.spec.volumes[0].name = "Cfg".into(),
                &[
                    "spec.volumes[0].name",
                    "spec.containers[0].volumeMounts[0].name",
                ],
            ),
            (
                "duplicate volume",
                |p| p.spec.volumes[1].name = "cfg".into(),
                &[
                    "spec.volumes[1].name",
                    "spec.containers[0].volumeMounts[1].name",
                ],
            ),
            (
                "volume without source",
                |p| p.spec.volumes[1].empty_dir = None,
                &["spec.volumes[1]"],
            ),
            (
                "volume with two sources",
                |p| p.spec.volumes[1].config_map = p.spec.volumes[0].config_map.clone(),
                &["spec.volumes[1]"],
            ),
            (
                "hostPath refused",
                |p| {
                    p.spec.volumes[1].empty_dir = None;
                    p.spec.volumes[1].host_path = Some(super::super::HostPathVolumeSource {
                        path: "/etc".into(),
                        type_: None,
                    });
                },
                &["spec.volumes[1].hostPath"],
            ),
            (
                "persistentVolumeClaim refused",
                |p| {
                    p.spec.volumes[1].empty_dir = None;
                    p.spec.volumes[1].persistent_volume_claim =
                        Some(super::super::PersistentVolumeClaimVolumeSource {
                            claim_name: "data".into(),
                            read_only: false,
                        });
                },
                &["spec.volumes[1].persistentVolumeClaim"],
            ),
            (
                "configMap name",
                |p| p.spec.volumes[0].config_map.as_mut().unwrap().name.clear(),
                &["spec.volumes[0].configMap.name"],
            ),
            (
                "default mode",
                |p| p.spec.volumes[0].config_map.as_mut().unwrap().default_mode = Some(0o1000),
                &["spec.volumes[0].configMap.defaultMode"],
            ),
            (
                "projected path escapes",
                |p| {
                    p.spec.volumes[0].config_map.as_mut().unwrap().items = vec![KeyToPath {
                        key: "a".into(),
                        path: "../a".into(),
                        mode: None,
                    }];
                },
                &["spec.volumes[0].configMap.items[0].path"],
            ),
            (
                "emptyDir medium",
                |p| p.spec.volumes[1].empty_dir.as_mut().unwrap().medium = "HugePages".into(),
                &["spec.volumes[1].emptyDir.medium"],
            ),
            (
                "mount of unknown volume",
                |p| p.spec.containers[0].volume_mounts[0].name = "nope".into(),
                &["spec.containers[0].volumeMounts[0].name"],
            ),
            (
                "relative mount path",
                |p| p.spec.containers[0].volume_mounts[0].mount_path = "etc".into(),
                &["spec.containers[0].volumeMounts[0].mountPath"],
            ),
            (
                "duplicate mount path",
                |p| p.spec.containers[0].volume_mounts[1].mount_path = "/etc/web".into(),
                &["spec.containers[0].volumeMounts[1].mountPath"],
            ),
            (
                "env without name",
                |p| p.spec.containers[0].env[0].name.clear(),
                &["spec.containers[0].env[0].name"],
            ),
            (
                "env name with =",
                |p| p.spec.containers[0].env[0].name = "A=B".into(),
                &["spec.containers[0].env[0].name"],
            ),
            (
                "value and valueFrom",
                |p| p.spec.containers[0].env[1].value = "x".into(),
                &["spec.containers[0].env[1].valueFrom"],
            ),
            (
                "valueFrom with two sources",
                |p| {
                    let from = p.spec.containers[0].env[1].value_from.as_mut().unwrap();
                    from.config_map_key_ref = Some(super::super::ConfigMapKeySelector {
                        name: "c".into(),
                        key: "k".into(),
                        optional: None,
                    });
                },
                &["spec.containers[0].env[1].valueFrom"],
            ),
            (
                "valueFrom without source",
                |p| p.spec.containers[0].env[1].value_from = Some(Default::default()),
                &["spec.containers[0].env[1].valueFrom"],
            ),
            (
                "unsupported fieldRef",
                |p| {
                    let from = p.spec.containers[0].env[1].value_from.as_mut().unwrap();
                    from.field_ref.as_mut().unwrap().field_path = "spec.containers".into();
                },
                &["spec.containers[0].env[1].valueFrom.fieldRef.fieldPath"],
            ),
            (
                "secret key missing",
                |p| {
                    let from = p.spec.containers[0].env[3].value_from.as_mut().unwrap();
                    from.secret_key_ref.as_mut().unwrap().key.clear();
                },
                &["spec.containers[0].env[3].valueFrom.secretKeyRef.key"],
            ),
            (
                "activeDeadlineSeconds 0",
                |p| p.spec.active_deadline_seconds = Some(0),
                &["spec.activeDeadlineSeconds"],
            ),
            (
                "negative grace period",
                |p| p.spec.termination_grace_period_seconds = Some(-1),
                &["spec.terminationGracePeriodSeconds"],
            ),
            (
                "toleration operator",
                |p| p.spec.tolerations[0].operator = "In".into(),
                &["spec.tolerations[0].operator"],
            ),
            (
                "toleration effect",
                |p| p.spec.tolerations[0].effect = "NoRun".into(),
                &["spec.tolerations[0].effect"],
            ),
            (
                "toleration without key needs Exists",
                |p| p.spec.tolerations[0].key.clear(),
                &["spec.tolerations[0].operator"],
            ),
            (
                "Exists toleration with value",
                |p| p.spec.tolerations[0].operator = "Exists".into(),
                &["spec.tolerations[0].value"],
            ),
            (
                "tolerationSeconds without NoExecute",
                |p| p.spec.tolerations[0].toleration_seconds = Some(60),
                &["spec.tolerations[0].effect"],
            ),
            (
                "probe without handler",
                |p| {
                    p.spec.containers[0]
                        .readiness_probe
                        .as_mut()
                        .unwrap()
                        .http_get = None
                },
                &["spec.containers[0].readinessProbe"],
            ),
            (
                "probe with two handlers",
                |p| {
                    p.spec.containers[0]
                        .readiness_probe
                        .as_mut()
                        .unwrap()
                        .tcp_socket = Some(super::super::TcpSocketAction {
                        port: IntOrString::Int(80),
                        host: String::new(),
                    });
                },
                &["spec.containers[0].readinessProbe"],
            ),
            (
                "liveness successThreshold",
                |p| {
                    let mut probe = p.spec.containers[0].readiness_probe.clone().unwrap();
                    probe.success_threshold = 2;
                    p.spec.containers[0].liveness_probe = Some(probe);
                },
                &["spec.containers[0].livenessProbe.successThreshold"],
            ),
            (
                "probe port name",
                |p| {
                    let g = p.spec.containers[0]
                        .readiness_probe
                        .as_mut()
                        .unwrap()
                        .http_get
                        .as_mut()
                        .unwrap();
                    g.port = IntOrString::String("Not A Port".into());
                },
                &["spec.containers[0].readinessProbe.httpGet.port"],
            ),
            (
                "init container with a probe",
                |p| {
                    let mut init = p.spec.containers[0].clone();
                    init.name = "setup".into();
                    p.spec.init_containers.push(init);
                },
                &["spec.initContainers[0].readinessProbe"],
            ),
            (
                "restartPolicy on a regular container",
                |p| p.spec.containers[0].restart_policy = Some("Always".into()),
                &["spec.containers[0].restartPolicy"],
            ),
            (
                "pull policy",
                |p| p.spec.containers[0].image_pull_policy = "Sometimes".into(),
                &["spec.containers[0].imagePullPolicy"],
            ),
            (
                "node selector value",
                |p| {
                    p.spec
                        .node_selector
                        .insert("disk".into(), "fast ssd".into());
                },
                &["spec.nodeSelector[disk]"],
            ),
            (
                "node name",
                |p| p.spec.node_name = "Node_1".into(),
                &["spec.nodeName"],
            ),
            (
                "empty node selector terms",
                |p| {
                    p.spec.affinity = Some(serde_json::from_value(json!({"nodeAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": []}}})).unwrap());
                },
                &[
                    "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms",
                ],
            ),
            (
                "node affinity operator and weight",
                |p| {
                    p.spec.affinity = Some(serde_json::from_value(json!({"nodeAffinity": {
                        "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 0, "preference": {
                            "matchExpressions": [{"key": "zone", "operator": "Near", "values": ["a"]}]}}]}})).unwrap());
                },
                &[
                    "spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight",
                    "spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].preference.matchExpressions[0].operator",
                ],
            ),
            (
                "pod anti-affinity without topology key",
                |p| {
                    p.spec.affinity = Some(serde_json::from_value(json!({"podAntiAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": [{"labelSelector": {"matchLabels": {"app": "web"}}}]}})).unwrap());
                },
                &[
                    "spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].topologyKey",
                ],
            ),
            (
                "topology spread",
                |p| {
                    p.spec.topology_spread_constraints = vec![
                        serde_json::from_value(json!({
                        "maxSkew": 0, "topologyKey": "zone", "whenUnsatisfiable": "Maybe"}))
                        .unwrap(),
                    ];
                },
                &[
                    "spec.topologySpreadConstraints[0].maxSkew",
                    "spec.topologySpreadConstraints[0].whenUnsatisfiable",
                ],
            ),
            (
                "runAsUser",
                |p| {
                    p.spec.security_context = Some(PodSecurityContext {
                        run_as_user: Some(-1),
                        ..Default::default()
                    })
                },
                &["spec.securityContext.runAsUser"],
            ),
            (
                "status phase",
                |p| p.status.phase = "Sleeping".into(),
                &["status.phase"],
            ),
        ];
        for (name, mutate, want) in cases {
            let mut p = base_pod();
            mutate(&mut p);
            assert_eq!(error_fields(&p), *want, "{name}");
        }
    }

    #[test]
    fn unsupported_volumes_are_named_in_the_message() {
        let mut p = base_pod();
        p.spec.volumes[1].empty_dir = None;
        p.spec.volumes[1].host_path = Some(Default::default());
        let msg = p.validate().summary();
        assert!(
            msg.contains(
                "spec.volumes[1].hostPath: Forbidden: hostPath volumes are not supported by wasmk"
            ),
            "{msg}"
        );
    }

    #[test]
    fn update_rules() {
        type Case = (&'static str, fn(&mut Pod), &'static [&'static str]);
        let cases: &[Case] = &[
            ("nothing", |_| {}, &[]),
            (
                "image",
                |p| p.spec.containers[0].image = "hello:v2".into(),
                &[],
            ),
            (
                "deadline set",
                |p| p.spec.active_deadline_seconds = Some(600),
                &[],
            ),
            (
                "grace period",
                |p| p.spec.termination_grace_period_seconds = Some(5),
                &[],
            ),
            (
                "toleration added",
                |p| {
                    p.spec.tolerations.push(Toleration {
                        operator: "Exists".into(),
                        ..Default::default()
                    })
                },
                &[],
            ),
            ("bind", |p| p.spec.node_name = "node-1".into(), &[]),
            (
                "command",
                |p| p.spec.containers[0].command = vec!["run".into()],
                &["spec"],
            ),
            (
                "restart policy",
                |p| p.spec.restart_policy = "Never".into(),
                &["spec"],
            ),
            (
                "toleration removed",
                |p| p.spec.tolerations.clear(),
                &["spec.tolerations"],
            ),
        ];
        for (name, mutate, want) in cases {
            let old = base_pod();
            let mut new = old.clone();
            mutate(&mut new);
            let got: Vec<String> = new
                .validate_update(&old)
                .0
                .into_iter()
                .map(|e| e.field)
                .collect();
            assert_eq!(got, *want, "{name}");
        }
        let mut old = base_pod();
        old.spec.active_deadline_seconds = Some(600);
        old.spec.node_name = "node-1".into();
        let check = |f: fn(&mut Pod)| {
            let mut new = old.clone();
            f(&mut new);
            new.validate_update(&old)
                .0
                .into_iter()
                .map(|e| e.field)
                .collect::<Vec<_>>()
        };
        assert!(check(|p| p.spec.active_deadline_seconds = Some(300)).is_empty());
        assert_eq!(
            check(|p| p.spec.active_deadline_seconds = Some(900)),
            ["spec.activeDeadlineSeconds"]
        );
        assert_eq!(
            check(|p| p.spec.active_deadline_seconds = None),
            ["spec.activeDeadlineSeconds"]
        );
        assert_eq!(
            check(|p| p.spec.node_name = "node-2".into()),
            ["spec.nodeName"]
        );
        let mut new = old.clone();
        new.spec.volumes.pop();
        let detail = &new.validate_update(&old).0[0].detail;
        assert!(detail.ends_with("changed: volumes"), "{detail}");
    }

    #[test]
    fn status_is_kept_and_spec_changes_counted() {
        let mut p = base_pod();
        p.status.phase = "Running".into();
        let mut created = p.clone();
        created.keep_status(None);
        assert_eq!(created.status.phase, "Pending");
        assert_eq!(created.status.qos_class, "Burstable");
        let mut upd = base_pod();
        upd.keep_status(Some(&p));
        assert_eq!(upd.status.phase, "Running");
        assert!(!upd.spec_changed(&p));
        upd.spec.containers[0].image = "hello:v2".into();
        assert!(upd.spec_changed(&p));
    }

    fn status_pod(status: Value) -> Pod {
        pod(json!({
            "metadata": {"name": "web", "creationTimestamp": "2024-05-01T11:00:00Z"},
            "spec": {"containers": [{"name": "web", "image": "hello:v1"}]},
            "status": status
        }))
    }

    fn cells(p: &Pod) -> Vec<Value> {
        p.table_row(now())
    }

    #[test]
    fn table_status_like_kubectl() {
        let terminated =
            |reason: &str, code: i32| json!({"terminated": {"exitCode": code, "reason": reason}});
        let cases: Vec<(&str, Value, [&str; 3])> = vec![
            (
                "new pod",
                json!({"phase": "Pending"}),
                ["0/1", "Pending", "0"],
            ),
            (
                "running and ready",
                json!({"phase": "Running", "containerStatuses": [{"name": "web", "ready": true,
                    "restartCount": 0, "image": "", "imageID": "", "state": {"running": {}}}]}),
                ["1/1", "Running", "0"],
            ),
            (
                "crash looping",
                json!({"phase": "Running", "containerStatuses": [{"name": "web", "ready": false,
                    "restartCount": 3, "image": "", "imageID": "",
                    "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                    "lastState": {"terminated": {"exitCode": 1, "reason": "Error",
                        "finishedAt": "2024-05-01T11:58:00Z"}}}]}),
                ["0/1", "CrashLoopBackOff", "3 (2m ago)"],
            ),
            (
                "completed",
                json!({"phase": "Succeeded", "containerStatuses": [{"name": "web", "ready": false,
                    "restartCount": 0, "image": "", "imageID": "", "state": terminated("Completed", 0)}]}),
                ["0/1", "Completed", "0"],
            ),
            (
                "failed",
                json!({"phase": "Failed", "containerStatuses": [{"name": "web", "ready": false,
                    "restartCount": 0, "image": "", "imageID": "", "state": terminated("Error", 2)}]}),
                ["0/1", "Error", "0"],
            ),
            (
                "terminated without reason",
                json!({"phase": "Failed", "containerStatuses": [{"name": "web", "ready": false,
                    "restartCount": 0, "image": "", "imageID": "", "state": terminated("", 137)}]}),
                ["0/1", "ExitCode:137", "0"],
            ),
            (
                "evicted",
                json!({"phase": "Failed", "reason": "Evicted"}),
                ["0/1", "Evicted", "0"],
            ),
            (
                "scheduling gated",
                json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
                    "reason": "SchedulingGated"}]}),
                ["0/1", "SchedulingGated", "0"],
            ),
        ];
        for (name, status, [ready, reason, restarts]) in cases {
            let c = cells(&status_pod(status));
            assert_eq!(c[1], ready, "{name}");
            assert_eq!(c[2], reason, "{name}");
            assert_eq!(c[3], restarts, "{name}");
            assert_eq!(c[4], "60m", "{name}");
        }
    }

    #[test]
    fn table_status_with_init_containers() {
        let with_init = |init_status: Value| {
            let mut p =
                status_pod(json!({"phase": "Pending", "initContainerStatuses": [init_status]}));
            p.spec.init_containers =
                vec![serde_json::from_value(json!({"name": "setup", "image": "s:v1"})).unwrap()];
            p
        };
        let st = |state: Value, restarts: i32| json!({"name": "setup", "ready": false, "restartCount": restarts, "image": "", "imageID": "", "state": state});
        let cases = [
            (
                st(json!({"waiting": {"reason": "PodInitializing"}}), 0),
                "Init:0/1",
            ),
            (st(json!({"running": {}}), 0), "Init:0/1"),
            (
                st(json!({"waiting": {"reason": "CrashLoopBackOff"}}), 2),
                "Init:CrashLoopBackOff",
            ),
            (
                st(json!({"terminated": {"exitCode": 1, "reason": "Error"}}), 0),
                "Init:Error",
            ),
            (
                st(json!({"terminated": {"exitCode": 137, "signal": 9}}), 0),
                "Init:Signal:9",
            ),
            (
                st(
                    json!({"terminated": {"exitCode": 0, "reason": "Completed"}}),
                    0,
                ),
                "Pending",
            ),
        ];
        for (status, want) in cases {
            let p = with_init(status.clone());
            assert_eq!(cells(&p)[2], want, "{status}");
        }
        assert_eq!(
            cells(&with_init(st(
                json!({"waiting": {"reason": "CrashLoopBackOff"}}),
                2
            )))[3],
            "2"
        );
    }

    #[test]
    fn table_terminating_and_wide_cells() {
        let mut p = status_pod(
            json!({"phase": "Running", "podIP": "10.0.0.5", "podIPs": [{"ip": "10.0.0.5"}],
            "nominatedNodeName": "n2",
            "conditions": [{"type": "Ready", "status": "True"}, {"type": "example.com/lb", "status": "True"}]}),
        );
        p.spec.node_name = "n1".into();
        p.spec.readiness_gates = vec![
            super::super::PodReadinessGate {
                condition_type: "example.com/lb".into(),
            },
            super::super::PodReadinessGate {
                condition_type: "example.com/dns".into(),
            },
        ];
        assert_eq!(
            cells(&p)[5..],
            [json!("10.0.0.5"), json!("n1"), json!("n2"), json!("1/2")]
        );
        p.metadata.deletion_timestamp = Some(ago(5));
        assert_eq!(cells(&p)[2], "Terminating");
        p.status.phase = "Succeeded".into();
        assert_eq!(cells(&p)[2], "Succeeded");
        let bare = status_pod(json!({}));
        assert_eq!(
            cells(&bare)[5..],
            [
                json!("<none>"),
                json!("<none>"),
                json!("<none>"),
                json!("<none>")
            ]
        );
        assert_eq!(cells(&bare)[0], "web");
        assert_eq!(Pod::table_columns().len(), cells(&bare).len());
    }

    #[test]
    fn field_values_and_helpers() {
        let mut p = base_pod();
        p.set_defaults();
        p.status.pod_ip = "10.0.0.9".into();
        let cases = [
            ("spec.nodeName", Some("")),
            ("spec.restartPolicy", Some("Always")),
            ("spec.schedulerName", Some("default-scheduler")),
            ("spec.serviceAccountName", Some("")),
            ("spec.hostNetwork", Some("false")),
            ("status.phase", Some("Pending")),
            ("status.podIP", Some("10.0.0.9")),
            ("status.nominatedNodeName", Some("")),
            ("spec.containers", None),
        ];
        for (field, want) in cases {
            assert_eq!(p.field_value(field).as_deref(), want, "{field}");
        }
        assert!(!p.is_terminal());
        assert!(!pod_ready(&p));
        p.status.conditions.push(super::super::PodCondition {
            type_: "Ready".into(),
            status: "True".into(),
            ..Default::default()
        });
        assert!(pod_ready(&p));
        p.status.phase = "Failed".into();
        assert!(p.is_terminal());
    }

    #[test]
    fn binding_validation() {
        let b: Binding = serde_json::from_value(json!({
            "metadata": {"name": "web"}, "target": {"kind": "Node", "name": "n1"}}))
        .unwrap();
        assert!(b.validate().is_empty());
        let bad: Binding = serde_json::from_value(json!({
            "metadata": {"name": "web"}, "target": {"kind": "Pod"}}))
        .unwrap();
        let fields: Vec<String> = bad.validate().0.into_iter().map(|e| e.field).collect();
        assert_eq!(fields, ["target.name", "target.kind"]);
    }
}
