//! Admission of new objects against a namespace's LimitRanges and
//! ResourceQuotas, as Kubernetes' LimitRanger and ResourceQuota plugins do.
//!
//! The checks are pure functions over typed objects. Quota enforcement is
//! atomic: the quota's new `status.used` is written in the same Raft
//! transaction as the object it admits, guarded by the quota's
//! resourceVersion, so two concurrent creates can never both take the last
//! unit. The quota controller (`control::quota`) recomputes usage from the
//! objects themselves, which returns what deletions free.

use std::collections::BTreeMap;

use crate::api::core::{Container, LimitRange, Pod, PodSpec, ResourceQuota, pod_requests};
use crate::api::quantity::{Quantity, ResourceList};

/// The default, min and max checks of LimitRanges on one pod. Fills
/// defaults into containers that lack them; returns the Forbidden message
/// of the first violated bound.
pub fn apply_limit_ranges(pod: &mut Pod, ranges: &[LimitRange]) -> Result<(), String> {
    // API defaulting: a resource with a limit and no request requests the limit.
    for c in pod
        .spec
        .init_containers
        .iter_mut()
        .chain(pod.spec.containers.iter_mut())
    {
        let limits = c.resources.limits.clone();
        for (k, v) in limits {
            c.resources.requests.entry(k).or_insert(v);
        }
    }
    for lr in ranges {
        for item in &lr.spec.limits {
            match item.type_.as_str() {
                "Container" => {
                    let all = pod
                        .spec
                        .init_containers
                        .iter_mut()
                        .chain(pod.spec.containers.iter_mut());
                    for c in all {
                        default_container(c, &item.default, &item.default_request);
                        check_container(c, item, &pod.metadata.name)?;
                    }
                }
                "Pod" => check_pod(&pod.spec, item)
                    .map_err(|m| format!("pods \"{}\" is forbidden: {m}", pod.metadata.name))?,
                _ => {}
            }
        }
    }
    Ok(())
}

fn default_container(c: &mut Container, default: &ResourceList, default_request: &ResourceList) {
    for (k, v) in default {
        c.resources
            .limits
            .entry(k.clone())
            .or_insert_with(|| v.clone());
    }
    for (k, v) in default_request {
        c.resources
            .requests
            .entry(k.clone())
            .or_insert_with(|| v.clone());
    }
    // A LimitRange's defaultRequest defaults to its default limit.
    let limits = c.resources.limits.clone();
    for (k, v) in limits {
        c.resources.requests.entry(k).or_insert(v);
    }
}

/// `q` in the unit quotas and ranges count `resource` in: milli-units for
/// CPU (`cpu`, `requests.cpu`, `limits.cpu`), whole units otherwise.
fn amount(resource: &str, q: &Quantity) -> i64 {
    if is_cpu(resource) {
        q.milli_value()
    } else {
        q.value()
    }
}

fn check_container(
    c: &Container,
    item: &crate::api::core::LimitRangeItem,
    pod: &str,
) -> Result<(), String> {
    for (res, max) in &item.max {
        match c.resources.limits.get(res) {
            Some(l) if amount(res, l) > amount(res, max) => {
                return Err(format!(
                    "pods \"{pod}\" is forbidden: maximum {res} usage per Container is {}, but limit is {}",
                    max.as_str(),
                    l.as_str()
                ));
            }
            None => {
                return Err(format!(
                    "pods \"{pod}\" is forbidden: maximum {res} usage per Container is {}. No limit is specified",
                    max.as_str()
                ));
            }
            _ => {}
        }
    }
    for (res, min) in &item.min {
        match c.resources.requests.get(res) {
            Some(r) if amount(res, r) < amount(res, min) => {
                return Err(format!(
                    "pods \"{pod}\" is forbidden: minimum {res} usage per Container is {}, but request is {}",
                    min.as_str(),
                    r.as_str()
                ));
            }
            None => {
                return Err(format!(
                    "pods \"{pod}\" is forbidden: minimum {res} usage per Container is {}. No request is specified",
                    min.as_str()
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

fn check_pod(spec: &PodSpec, item: &crate::api::core::LimitRangeItem) -> Result<(), String> {
    let (cpu, mem) = pod_requests(spec);
    for (res, max) in &item.max {
        let total = pod_limit(spec, res);
        if total > amount(res, max) {
            return Err(format!(
                "maximum {res} usage per Pod is {}, but limit is {total}",
                max.as_str()
            ));
        }
    }
    for (res, min) in &item.min {
        let total = if res == "cpu" { cpu } else { mem };
        if total < amount(res, min) {
            return Err(format!(
                "minimum {res} usage per Pod is {}, but request is {total}",
                min.as_str()
            ));
        }
    }
    Ok(())
}

/// Sum of the containers' limits of `resource` (cpu in milli, else bytes).
fn pod_limit(spec: &PodSpec, resource: &str) -> i64 {
    spec.containers
        .iter()
        .filter_map(|c| c.resources.limits.get(resource))
        .map(|q| amount(resource, q))
        .fold(0i64, i64::saturating_add)
}

/// The quota resource names a pod's usage is counted under.
pub const POD_RESOURCES: [&str; 8] = [
    "pods",
    "count/pods",
    "requests.cpu",
    "cpu",
    "requests.memory",
    "memory",
    "limits.cpu",
    "limits.memory",
];

/// What creating one object adds to a quota, by quota resource name.
pub fn usage_of_pod(pod: &Pod) -> BTreeMap<String, i64> {
    let (cpu, mem) = pod_requests(&pod.spec);
    let values = [
        1,
        1,
        cpu,
        cpu,
        mem,
        mem,
        pod_limit(&pod.spec, "cpu"),
        pod_limit(&pod.spec, "memory"),
    ];
    POD_RESOURCES
        .iter()
        .zip(values)
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}

/// The quota resource names that count objects of `plural` (`services`,
/// `count/deployments.apps`, ...).
pub fn count_names(qualified: &str) -> Vec<String> {
    let mut v = vec![format!("count/{qualified}")];
    if matches!(
        qualified,
        "pods"
            | "services"
            | "configmaps"
            | "secrets"
            | "replicationcontrollers"
            | "resourcequotas"
            | "persistentvolumeclaims"
    ) {
        v.push(qualified.to_string());
    }
    v
}

fn is_cpu(name: &str) -> bool {
    name == "cpu" || name.ends_with(".cpu")
}

fn render(name: &str, v: i64) -> String {
    used_quantity(name, v).as_str().to_string()
}

/// The quantity recorded in `status.used` for `v` of quota resource `name`.
pub fn used_quantity(name: &str, v: i64) -> Quantity {
    if is_cpu(name) {
        Quantity::from_milli(v)
    } else if name.contains("memory") || name.contains("storage") {
        Quantity::from_bytes(v)
    } else {
        Quantity::parse(&v.to_string())
            .unwrap_or_else(|_| Quantity::from_milli(v.saturating_mul(1000)))
    }
}

/// Whether `quota` constrains `pod`: its scopes (Terminating,
/// NotTerminating, BestEffort, NotBestEffort) all match.
pub fn quota_covers_pod(quota: &ResourceQuota, pod: &Pod) -> bool {
    let best_effort = pod
        .spec
        .init_containers
        .iter()
        .chain(pod.spec.containers.iter())
        .all(|c| c.resources.requests.is_empty() && c.resources.limits.is_empty());
    let terminating = pod.spec.active_deadline_seconds.is_some();
    let mut scopes: Vec<(&str, &str, Vec<&str>)> = quota
        .spec
        .scopes
        .iter()
        .map(|s| (s.as_str(), "Exists", Vec::new()))
        .collect();
    if let Some(sel) = &quota.spec.scope_selector {
        for e in &sel.match_expressions {
            scopes.push((
                e.scope_name.as_str(),
                e.operator.as_str(),
                e.values.iter().map(String::as_str).collect(),
            ));
        }
    }
    scopes.iter().all(|(scope, op, values)| {
        let matches = match *scope {
            "Terminating" => terminating,
            "NotTerminating" => !terminating,
            "BestEffort" => best_effort,
            "NotBestEffort" => !best_effort,
            "PriorityClass" => {
                let pc = pod.spec.priority_class_name.as_str();
                match *op {
                    "In" => values.contains(&pc),
                    "NotIn" => !values.contains(&pc),
                    "DoesNotExist" => pc.is_empty(),
                    _ => !pc.is_empty(),
                }
            }
            _ => false,
        };
        if *scope == "PriorityClass" {
            matches
        } else if *op == "DoesNotExist" {
            !matches
        } else {
            matches
        }
    })
}

/// Whether a quota tracking compute resources finds containers of `pod`
/// that do not state them: Kubernetes' `failed quota: ...: must specify`.
pub fn missing_compute(quota: &ResourceQuota, pod: &Pod) -> Option<String> {
    let mut parts = Vec::new();
    for name in quota.spec.hard.keys() {
        let (limits, res) = match name.as_str() {
            "cpu" | "requests.cpu" => (false, "cpu"),
            "memory" | "requests.memory" => (false, "memory"),
            "limits.cpu" => (true, "cpu"),
            "limits.memory" => (true, "memory"),
            _ => continue,
        };
        let lacking: Vec<&str> = pod
            .spec
            .init_containers
            .iter()
            .chain(pod.spec.containers.iter())
            .filter(|c| {
                let list = if limits {
                    &c.resources.limits
                } else {
                    &c.resources.requests
                };
                !list.contains_key(res)
            })
            .map(|c| c.name.as_str())
            .collect();
        if !lacking.is_empty() {
            parts.push(format!("{name} for: {}", lacking.join(",")));
        }
    }
    (!parts.is_empty()).then(|| {
        format!(
            "failed quota: {}: must specify {}",
            quota.metadata.name,
            parts.join("; ")
        )
    })
}

/// Checks `delta` against `quota`; on success returns the quota's new
/// `status.used`, on failure Kubernetes' Forbidden message.
pub fn charge(
    quota: &ResourceQuota,
    delta: &BTreeMap<String, i64>,
    object: &str,
) -> Result<Option<ResourceList>, String> {
    let mut used = quota.status.used.clone();
    let mut touched = false;
    let mut requested = Vec::new();
    let mut used_s = Vec::new();
    let mut limited = Vec::new();
    for (name, hard) in &quota.spec.hard {
        let Some(d) = delta.get(name) else { continue };
        touched = true;
        let current = used.get(name).map(|q| amount(name, q)).unwrap_or(0);
        let next = current.saturating_add(*d);
        let hard_v = amount(name, hard);
        if next > hard_v {
            requested.push(format!("{name}={}", render(name, *d)));
            used_s.push(format!("{name}={}", render(name, current)));
            limited.push(format!("{name}={}", hard.as_str()));
        }
        used.insert(name.clone(), used_quantity(name, next));
    }
    if !requested.is_empty() {
        return Err(format!(
            "{object} is forbidden: exceeded quota: {}, requested: {}, used: {}, limited: {}",
            quota.metadata.name,
            requested.join(","),
            used_s.join(","),
            limited.join(",")
        ));
    }
    Ok(touched.then_some(used))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::core::LimitRangeItem;

    fn q(s: &str) -> Quantity {
        Quantity::parse(s).unwrap()
    }

    fn pod(cpu_limit: Option<&str>) -> Pod {
        let mut p = Pod::default();
        p.metadata.name = "p".into();
        let mut c = Container {
            name: "c".into(),
            image: "m:1".into(),
            ..Default::default()
        };
        if let Some(l) = cpu_limit {
            c.resources.limits.insert("cpu".into(), q(l));
        }
        p.spec.containers.push(c);
        p
    }

    fn range(item: LimitRangeItem) -> LimitRange {
        let mut lr = LimitRange::default();
        lr.spec.limits.push(item);
        lr
    }

    #[test]
    fn limit_ranges_default_and_bound_containers() {
        let lr = range(LimitRangeItem {
            type_: "Container".into(),
            default: [("cpu".to_string(), q("500m"))].into(),
            default_request: [("cpu".to_string(), q("100m"))].into(),
            max: [("cpu".to_string(), q("1"))].into(),
            ..Default::default()
        });
        let mut p = pod(None);
        apply_limit_ranges(&mut p, std::slice::from_ref(&lr)).unwrap();
        let r = &p.spec.containers[0].resources;
        assert_eq!(r.limits["cpu"].as_str(), "500m");
        assert_eq!(r.requests["cpu"].as_str(), "100m");
        let mut big = pod(Some("2"));
        let err = apply_limit_ranges(&mut big, &[lr]).unwrap_err();
        assert_eq!(
            err,
            "pods \"p\" is forbidden: maximum cpu usage per Container is 1, but limit is 2"
        );
    }

    #[test]
    fn quota_charges_and_refuses() {
        let mut quota = ResourceQuota::default();
        quota.metadata.name = "q".into();
        quota.spec.hard.insert("pods".into(), q("2"));
        quota.spec.hard.insert("requests.cpu".into(), q("1"));
        quota.status.used.insert("pods".into(), q("1"));
        quota.status.used.insert("requests.cpu".into(), q("500m"));
        let mut p = pod(Some("400m"));
        apply_limit_ranges(&mut p, &[]).unwrap();
        let used = charge(&quota, &usage_of_pod(&p), "pods \"p\"")
            .unwrap()
            .unwrap();
        assert_eq!(used["pods"].as_str(), "2");
        assert_eq!(used["requests.cpu"].as_str(), "900m");
        quota.status.used = used;
        let err = charge(&quota, &usage_of_pod(&p), "pods \"p\"").unwrap_err();
        assert_eq!(
            err,
            "pods \"p\" is forbidden: exceeded quota: q, requested: pods=1,requests.cpu=400m, used: pods=2,requests.cpu=900m, limited: pods=2,requests.cpu=1"
        );
        // A quota that does not constrain the object is not touched.
        let mut other = ResourceQuota::default();
        other.spec.hard.insert("services".into(), q("1"));
        assert_eq!(charge(&other, &usage_of_pod(&p), "x").unwrap(), None);
    }

    #[test]
    fn scopes_and_required_compute() {
        let mut quota = ResourceQuota::default();
        quota.metadata.name = "compute".into();
        quota.spec.hard.insert("limits.cpu".into(), q("2"));
        let best_effort = pod(None);
        let burstable = pod(Some("100m"));
        assert_eq!(
            missing_compute(&quota, &best_effort).as_deref(),
            Some("failed quota: compute: must specify limits.cpu for: c")
        );
        assert_eq!(missing_compute(&quota, &burstable), None);
        for (scope, be, bu) in [
            ("BestEffort", true, false),
            ("NotBestEffort", false, true),
            ("NotTerminating", true, true),
            ("Terminating", false, false),
        ] {
            quota.spec.scopes = vec![scope.into()];
            assert_eq!(quota_covers_pod(&quota, &best_effort), be, "{scope}");
            assert_eq!(quota_covers_pod(&quota, &burstable), bu, "{scope}");
        }
        assert_eq!(used_quantity("pods", 1024).as_str(), "1024");
        assert_eq!(used_quantity("requests.memory", 1024).as_str(), "1Ki");
    }
}
