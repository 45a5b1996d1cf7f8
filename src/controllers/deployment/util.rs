//! Deployment helpers with the semantics of Kubernetes'
//! `deployment/util`: the pod-template hash, the revision and replica
//! annotations, condition bookkeeping, ReplicaSet orderings and the
//! proportional-scaling arithmetic.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::api::apps::{
    Deployment, DeploymentCondition, DeploymentStatus, RECREATE, ReplicaSet,
    RollingUpdateDeployment,
};
use crate::api::core::PodTemplateSpec;
use crate::api::quantity::IntOrString;

use crate::controllers::pods::{NAME_ALPHABET, time};

/// The label (and selector entry) telling a Deployment's ReplicaSets apart.
pub const POD_TEMPLATE_HASH_LABEL: &str = "pod-template-hash";
/// The revision of a ReplicaSet, and of the Deployment's current one.
pub const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";
/// Earlier revisions a ReplicaSet had (it was rolled back to).
pub const REVISION_HISTORY_ANNOTATION: &str = "deployment.kubernetes.io/revision-history";
/// The Deployment's `spec.replicas` when the ReplicaSet was last scaled.
pub const DESIRED_REPLICAS_ANNOTATION: &str = "deployment.kubernetes.io/desired-replicas";
/// `spec.replicas + maxSurge` when the ReplicaSet was last scaled.
pub const MAX_REPLICAS_ANNOTATION: &str = "deployment.kubernetes.io/max-replicas";
/// The annotation `kubectl apply` keeps; never copied to ReplicaSets.
pub const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// The extensions/v1beta1 rollback request; never copied either.
const ROLLBACK_TO_ANNOTATION: &str = "deprecated.deployment.rollback.to";
/// Longest revision-history annotation kept.
pub const MAX_REV_HISTORY_LENGTH_IN_CHARS: usize = 2000;

/// Condition types and reasons (`deploymentutil`).
pub const AVAILABLE: &str = "Available";
pub const PROGRESSING: &str = "Progressing";
pub const REPLICA_FAILURE: &str = "ReplicaFailure";
pub const MINIMUM_REPLICAS_AVAILABLE: &str = "MinimumReplicasAvailable";
pub const MINIMUM_REPLICAS_UNAVAILABLE: &str = "MinimumReplicasUnavailable";
pub const REPLICA_SET_UPDATED: &str = "ReplicaSetUpdated";
pub const NEW_REPLICA_SET_CREATED: &str = "NewReplicaSetCreated";
pub const FOUND_NEW_REPLICA_SET: &str = "FoundNewReplicaSet";
pub const NEW_REPLICA_SET_AVAILABLE: &str = "NewReplicaSetAvailable";
pub const PROGRESS_DEADLINE_EXCEEDED: &str = "ProgressDeadlineExceeded";
pub const DEPLOYMENT_PAUSED: &str = "DeploymentPaused";
pub const DEPLOYMENT_RESUMED: &str = "DeploymentResumed";

/// FNV-1a, 32 bits (Go's `hash/fnv` New32a).
fn fnv32a(data: &[u8], mut h: u32) -> u32 {
    for b in data {
        h ^= u32::from(*b);
        h = h.wrapping_mul(16_777_619);
    }
    h
}

const FNV32_OFFSET: u32 = 2_166_136_261;

/// `rand.SafeEncodeString`: each byte mapped into [`NAME_ALPHABET`], so the
/// result is a valid label value without vowels.
pub fn safe_encode(s: &str) -> String {
    s.bytes()
        .map(|b| char::from(NAME_ALPHABET[usize::from(b) % NAME_ALPHABET.len()]))
        .collect()
}

/// `controller.ComputeHash`: FNV-1a over the template (its canonical JSON;
/// Kubernetes hashes Go's printout of the struct, which no other program
/// can reproduce, so the value differs but the properties are the same),
/// salted with the collision count, printed in decimal and
/// [`safe_encode`]d.
pub fn compute_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let json = serde_json::to_vec(template).unwrap_or_default();
    let mut h = fnv32a(&json, FNV32_OFFSET);
    if let Some(c) = collision_count {
        let mut bytes = [0u8; 8];
        bytes[..4].copy_from_slice(&u32::from_ne_bytes(c.to_ne_bytes()).to_le_bytes());
        h = fnv32a(&bytes, h);
    }
    safe_encode(&h.to_string())
}

/// `EqualIgnoreHash`: the templates are equal once the pod-template-hash
/// label is dropped from both.
pub fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    let strip = |t: &PodTemplateSpec| {
        let mut labels = t.metadata.labels.clone();
        labels.remove(POD_TEMPLATE_HASH_LABEL);
        labels
    };
    if strip(a) != strip(b) {
        return false;
    }
    let mut a2 = a.clone();
    let mut b2 = b.clone();
    a2.metadata.labels.clear();
    b2.metadata.labels.clear();
    a2 == b2
}

/// The revision a ReplicaSet carries; 0 when absent or not a number.
pub fn revision(rs: &ReplicaSet) -> i64 {
    rs.metadata
        .annotations
        .get(REVISION_ANNOTATION)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Whether this is a rolling-update Deployment (the default strategy).
pub fn is_rolling(d: &Deployment) -> bool {
    d.spec.strategy.type_ != RECREATE
}

/// `ResolveFenceposts` of the Deployment: `(maxSurge, maxUnavailable)`.
fn fenceposts(d: &Deployment) -> (i64, i64) {
    if !is_rolling(d) {
        return (0, 0);
    }
    let resolved = match &d.spec.strategy.rolling_update {
        Some(_) => d.surge_and_unavailable(),
        // Not defaulted yet: Kubernetes' defaults are 25% and 25%.
        None => {
            let mut copy = d.clone();
            copy.spec.strategy.rolling_update = Some(RollingUpdateDeployment {
                max_surge: Some(IntOrString::String("25%".into())),
                max_unavailable: Some(IntOrString::String("25%".into())),
            });
            copy.surge_and_unavailable()
        }
    };
    let (s, u) = resolved.unwrap_or((0, 0));
    (i64::from(s.max(0)), i64::from(u.max(0)))
}

/// `MaxSurge`: extra pods allowed above `spec.replicas` (0 for Recreate).
pub fn max_surge(d: &Deployment) -> i64 {
    fenceposts(d).0
}

/// `MaxUnavailable`: pods that may be missing below `spec.replicas`,
/// never more than `spec.replicas` (0 for Recreate or zero replicas).
pub fn max_unavailable(d: &Deployment) -> i64 {
    let replicas = i64::from(d.replicas().max(0));
    if !is_rolling(d) || replicas == 0 {
        return 0;
    }
    fenceposts(d).1.min(replicas)
}

/// The ReplicaSet's `spec.replicas` (1 when unset, as defaulting does).
pub fn spec_replicas(rs: &ReplicaSet) -> i64 {
    i64::from(rs.replicas().max(0))
}

/// Reads an int32 annotation.
fn int_annotation(rs: &ReplicaSet, key: &str) -> Option<i64> {
    rs.metadata
        .annotations
        .get(key)
        .and_then(|v| v.parse::<i32>().ok())
        .map(i64::from)
}

/// The desired-replicas annotation.
pub fn desired_replicas_annotation(rs: &ReplicaSet) -> Option<i64> {
    int_annotation(rs, DESIRED_REPLICAS_ANNOTATION)
}

/// `ReplicasAnnotationsNeedUpdate`.
pub fn replicas_annotations_need_update(rs: &ReplicaSet, desired: i64, max: i64) -> bool {
    let ann = &rs.metadata.annotations;
    ann.get(DESIRED_REPLICAS_ANNOTATION) != Some(&desired.to_string())
        || ann.get(MAX_REPLICAS_ANNOTATION) != Some(&max.to_string())
}

/// `SetReplicasAnnotations`; whether anything changed.
pub fn set_replicas_annotations(rs: &mut ReplicaSet, desired: i64, max: i64) -> bool {
    let mut changed = false;
    for (k, v) in [
        (DESIRED_REPLICAS_ANNOTATION, desired),
        (MAX_REPLICAS_ANNOTATION, max),
    ] {
        let v = v.to_string();
        if rs.metadata.annotations.get(k) != Some(&v) {
            rs.metadata.annotations.insert(k.to_string(), v);
            changed = true;
        }
    }
    changed
}

/// Annotations of the Deployment that are not copied onto ReplicaSets.
fn skip_copy(key: &str) -> bool {
    matches!(
        key,
        LAST_APPLIED_ANNOTATION
            | REVISION_ANNOTATION
            | REVISION_HISTORY_ANNOTATION
            | DESIRED_REPLICAS_ANNOTATION
            | MAX_REPLICAS_ANNOTATION
            | ROLLBACK_TO_ANNOTATION
    )
}

/// `copyDeploymentAnnotationsToReplicaSet`; whether anything changed.
fn copy_annotations(d: &Deployment, rs: &mut ReplicaSet) -> bool {
    let mut changed = false;
    for (k, v) in &d.metadata.annotations {
        if skip_copy(k) || rs.metadata.annotations.get(k) == Some(v) {
            continue;
        }
        rs.metadata.annotations.insert(k.clone(), v.clone());
        changed = true;
    }
    changed
}

/// `SetNewReplicaSetAnnotations`: copies the Deployment's annotations,
/// raises the revision to `new_revision` (keeping the old one in the
/// revision history when the ReplicaSet is being reused, i.e. a rollback),
/// and for a ReplicaSet about to be created (`!exists`) sets the replica
/// annotations. Returns whether anything changed.
pub fn set_new_replica_set_annotations(
    d: &Deployment,
    rs: &mut ReplicaSet,
    new_revision: i64,
    exists: bool,
) -> bool {
    let mut changed = copy_annotations(d, rs);
    let old = rs.metadata.annotations.get(REVISION_ANNOTATION).cloned();
    let old_revision = match old.as_deref() {
        None | Some("") => 0,
        Some(v) => match v.parse::<i64>() {
            Ok(n) => n,
            // Kubernetes refuses to touch a revision it cannot read.
            Err(_) => return false,
        },
    };
    if old_revision < new_revision {
        rs.metadata
            .annotations
            .insert(REVISION_ANNOTATION.into(), new_revision.to_string());
        changed = true;
        if let Some(old) = old.filter(|o| !o.is_empty()) {
            let history = rs
                .metadata
                .annotations
                .get(REVISION_HISTORY_ANNOTATION)
                .cloned()
                .unwrap_or_default();
            if history.is_empty() {
                rs.metadata
                    .annotations
                    .insert(REVISION_HISTORY_ANNOTATION.into(), old);
            } else {
                let mut parts: Vec<&str> = history.split(',').collect();
                let mut total = history.len() + old.len() + 1;
                let mut start = 0;
                while total > MAX_REV_HISTORY_LENGTH_IN_CHARS && start < parts.len() {
                    total -= parts[start].len() + 1;
                    start += 1;
                }
                if total <= MAX_REV_HISTORY_LENGTH_IN_CHARS {
                    parts = parts.split_off(start);
                    parts.push(&old);
                    rs.metadata
                        .annotations
                        .insert(REVISION_HISTORY_ANNOTATION.into(), parts.join(","));
                }
            }
        }
    }
    if !exists {
        let replicas = i64::from(d.replicas());
        changed |= set_replicas_annotations(rs, replicas, replicas + max_surge(d));
    }
    changed
}

/// `ReplicaSetsByCreationTimestamp`: older first, then by name.
pub fn by_creation(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    let ta = a.metadata.creation_timestamp;
    let tb = b.metadata.creation_timestamp;
    ta.cmp(&tb)
        .then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

/// `ReplicaSetsByRevision`: lower revision first, then by creation.
pub fn by_revision(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    revision(a)
        .cmp(&revision(b))
        .then_with(|| by_creation(a, b))
}

/// `ReplicaSetsBySizeNewer` (scaling up): larger first, ties newer first.
pub fn by_size_newer(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    spec_replicas(b)
        .cmp(&spec_replicas(a))
        .then_with(|| by_creation(b, a))
}

/// `ReplicaSetsBySizeOlder` (scaling down): larger first, ties older first.
pub fn by_size_older(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    spec_replicas(b)
        .cmp(&spec_replicas(a))
        .then_with(|| by_creation(a, b))
}

/// `getReplicaSetFraction`: this ReplicaSet's share of a resize, scaled by
/// how big the Deployment was (max-replicas annotation) when it was last
/// sized.
fn replica_set_fraction(rs: &ReplicaSet, d: &Deployment) -> i64 {
    let replicas = i64::from(d.replicas().max(0));
    if replicas == 0 {
        return -spec_replicas(rs);
    }
    let max_now = replicas + max_surge(d);
    let before = int_annotation(rs, MAX_REPLICAS_ANNOTATION)
        .filter(|v| *v > 0)
        .unwrap_or(i64::from(d.status.replicas));
    if before <= 0 {
        // Nothing to scale proportionally from; the leftover goes to the
        // largest ReplicaSet.
        return 0;
    }
    // Go's math.Round: half away from zero.
    let size = (spec_replicas(rs) * max_now) as f64 / before as f64;
    size.round() as i64 - spec_replicas(rs)
}

/// `GetProportion`: how many replicas `rs` gains (or loses) out of
/// `to_add`, given that `added` were already handed out.
pub fn proportion(rs: &ReplicaSet, d: &Deployment, to_add: i64, added: i64) -> i64 {
    if spec_replicas(rs) == 0 || to_add == 0 || to_add == added {
        return 0;
    }
    let fraction = replica_set_fraction(rs, d);
    let allowed = to_add - added;
    if to_add > 0 {
        fraction.min(allowed)
    } else {
        fraction.max(allowed)
    }
}

/// `NewDeploymentCondition` at `now`.
pub fn condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    now: DateTime<Utc>,
) -> DeploymentCondition {
    DeploymentCondition {
        type_: type_.into(),
        status: status.into(),
        last_update_time: Some(time(now)),
        last_transition_time: Some(time(now)),
        reason: reason.into(),
        message,
    }
}

/// `GetDeploymentCondition`.
pub fn get_condition<'a>(
    status: &'a DeploymentStatus,
    type_: &str,
) -> Option<&'a DeploymentCondition> {
    status.conditions.iter().find(|c| c.type_ == type_)
}

/// `SetDeploymentCondition`: no change when status and reason are the
/// same; keeps the transition time when only the reason changes.
pub fn set_condition(status: &mut DeploymentStatus, mut c: DeploymentCondition) {
    if let Some(cur) = get_condition(status, &c.type_) {
        if cur.status == c.status && cur.reason == c.reason {
            return;
        }
        if cur.status == c.status {
            c.last_transition_time = cur.last_transition_time;
        }
    }
    status.conditions.retain(|x| x.type_ != c.type_);
    status.conditions.push(c);
}

/// `RemoveDeploymentCondition`.
pub fn remove_condition(status: &mut DeploymentStatus, type_: &str) {
    status.conditions.retain(|c| c.type_ != type_);
}

/// `HasProgressDeadline`.
pub fn has_progress_deadline(d: &Deployment) -> bool {
    d.spec
        .progress_deadline_seconds
        .is_some_and(|s| s != i32::MAX)
}

/// `DeploymentComplete`.
pub fn deployment_complete(d: &Deployment, status: &DeploymentStatus) -> bool {
    let r = d.replicas();
    status.updated_replicas == r
        && status.replicas == r
        && status.available_replicas == r
        && status.observed_generation >= d.metadata.generation
}

/// `DeploymentProgressing`: more updated, ready or available pods, or
/// fewer old ones, than in `d.status`.
pub fn deployment_progressing(d: &Deployment, status: &DeploymentStatus) -> bool {
    let old = &d.status;
    let old_old = old.replicas - old.updated_replicas;
    let new_old = status.replicas - status.updated_replicas;
    status.updated_replicas > old.updated_replicas
        || new_old < old_old
        || status.ready_replicas > old.ready_replicas
        || status.available_replicas > old.available_replicas
}

/// `DeploymentTimedOut`.
pub fn deployment_timed_out(d: &Deployment, status: &DeploymentStatus, now: DateTime<Utc>) -> bool {
    if !has_progress_deadline(d) {
        return false;
    }
    let Some(c) = get_condition(status, PROGRESSING) else {
        return false;
    };
    if c.reason == NEW_REPLICA_SET_AVAILABLE {
        return false;
    }
    if c.reason == PROGRESS_DEADLINE_EXCEEDED {
        return true;
    }
    let Some(from) = c.last_update_time else {
        return false;
    };
    let deadline =
        chrono::Duration::seconds(i64::from(d.spec.progress_deadline_seconds.unwrap_or(0)));
    from.0
        .checked_add_signed(deadline)
        .is_some_and(|end| end < now)
}

/// The template of a Deployment's new ReplicaSet: the Deployment's, with
/// the hash label.
pub fn new_rs_template(d: &Deployment, hash: &str) -> PodTemplateSpec {
    let mut t = d.spec.template.clone();
    t.metadata
        .labels
        .insert(POD_TEMPLATE_HASH_LABEL.into(), hash.into());
    t
}

/// Labels with the hash added.
pub fn with_hash(labels: &BTreeMap<String, String>, hash: &str) -> BTreeMap<String, String> {
    let mut l = labels.clone();
    l.insert(POD_TEMPLATE_HASH_LABEL.into(), hash.into());
    l
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Time;

    #[test]
    fn fnv_and_safe_encoding_match_go() {
        // hash/fnv test vectors for FNV-1a 32.
        assert_eq!(fnv32a(b"", FNV32_OFFSET), 0x811c9dc5);
        assert_eq!(fnv32a(b"a", FNV32_OFFSET), 0xe40c292c);
        assert_eq!(fnv32a(b"foobar", FNV32_OFFSET), 0xbf9cf968);
        // Digits map to 4..9,b,c,d,f.
        assert_eq!(safe_encode("0123456789"), "456789bcdf");
    }

    #[test]
    fn hash_is_stable_and_salted() {
        let mut t = PodTemplateSpec::default();
        t.metadata.labels.insert("app".into(), "web".into());
        let h = compute_hash(&t, None);
        assert_eq!(h, compute_hash(&t.clone(), None));
        assert!(h.len() <= 10 && !h.is_empty());
        assert!(h.bytes().all(|b| b"456789bcdf".contains(&b)), "{h}");
        assert_ne!(h, compute_hash(&t, Some(1)));
        assert_ne!(compute_hash(&t, Some(1)), compute_hash(&t, Some(2)));
        let mut t2 = t.clone();
        t2.spec.restart_policy = "Always".into();
        assert_ne!(h, compute_hash(&t2, None));
        let with = new_rs_template_of(&t, &h);
        assert!(equal_ignore_hash(&with, &t));
        assert!(!equal_ignore_hash(&with, &t2));
    }

    fn new_rs_template_of(t: &PodTemplateSpec, hash: &str) -> PodTemplateSpec {
        let mut d = Deployment::default();
        d.spec.template = t.clone();
        new_rs_template(&d, hash)
    }

    fn rs_with(annotations: &[(&str, &str)]) -> ReplicaSet {
        let mut rs = ReplicaSet::default();
        for (k, v) in annotations {
            rs.metadata.annotations.insert(k.to_string(), v.to_string());
        }
        rs
    }

    #[test]
    fn revision_annotations() {
        let mut d = Deployment::default();
        d.spec.replicas = Some(4);
        d.metadata.annotations.insert("team".into(), "a".into());
        d.metadata
            .annotations
            .insert(LAST_APPLIED_ANNOTATION.into(), "{}".into());
        d.metadata
            .annotations
            .insert(REVISION_ANNOTATION.into(), "9".into());
        // A new ReplicaSet: revision, copied annotations, replica annotations.
        let mut rs = rs_with(&[]);
        assert!(set_new_replica_set_annotations(&d, &mut rs, 3, false));
        let a = &rs.metadata.annotations;
        assert_eq!(a.get(REVISION_ANNOTATION).map(String::as_str), Some("3"));
        assert_eq!(a.get("team").map(String::as_str), Some("a"));
        assert!(!a.contains_key(LAST_APPLIED_ANNOTATION));
        assert_eq!(
            a.get(DESIRED_REPLICAS_ANNOTATION).map(String::as_str),
            Some("4")
        );
        assert_eq!(
            a.get(MAX_REPLICAS_ANNOTATION).map(String::as_str),
            Some("5")
        );
        assert!(!a.contains_key(REVISION_HISTORY_ANNOTATION));
        // Reused (rolled back to): the old revision goes to the history.
        let mut old = rs_with(&[
            (REVISION_ANNOTATION, "1"),
            (REVISION_HISTORY_ANNOTATION, ""),
        ]);
        assert!(set_new_replica_set_annotations(&d, &mut old, 4, true));
        assert_eq!(
            old.metadata
                .annotations
                .get(REVISION_HISTORY_ANNOTATION)
                .map(String::as_str),
            Some("1")
        );
        let mut again = rs_with(&[
            (REVISION_ANNOTATION, "4"),
            (REVISION_HISTORY_ANNOTATION, "1"),
        ]);
        set_new_replica_set_annotations(&d, &mut again, 6, true);
        assert_eq!(
            again
                .metadata
                .annotations
                .get(REVISION_HISTORY_ANNOTATION)
                .map(String::as_str),
            Some("1,4")
        );
        // Never lowered; unreadable revisions are left alone.
        let mut newer = rs_with(&[(REVISION_ANNOTATION, "8"), ("team", "a")]);
        assert!(!set_new_replica_set_annotations(&d, &mut newer, 5, true));
        let mut garbage = rs_with(&[(REVISION_ANNOTATION, "x")]);
        assert!(!set_new_replica_set_annotations(&d, &mut garbage, 5, true));
    }

    #[test]
    fn proportions() {
        let mut d = Deployment::default();
        d.spec.replicas = Some(15);
        d.spec.strategy.rolling_update = Some(RollingUpdateDeployment {
            max_surge: Some(IntOrString::Int(3)),
            max_unavailable: Some(IntOrString::Int(2)),
        });
        // Was 10 + 3 = 13 wide; now 15 + 3 = 18 wide.
        let rs = rs_with(&[(MAX_REPLICAS_ANNOTATION, "13")]);
        let mut rs = rs;
        rs.spec.replicas = Some(8);
        // 8 * 18 / 13 = 11.08 -> 11: three more, capped by what is left.
        assert_eq!(proportion(&rs, &d, 5, 0), 3);
        assert_eq!(proportion(&rs, &d, 5, 4), 1);
        assert_eq!(proportion(&rs, &d, 5, 5), 0);
        d.spec.replicas = Some(0);
        assert_eq!(proportion(&rs, &d, -8, 0), -8);
        rs.spec.replicas = Some(0);
        assert_eq!(proportion(&rs, &d, 5, 0), 0);
    }

    #[test]
    fn orderings() {
        let mk = |name: &str, t: i64, replicas: i32, rev: &str| {
            let mut rs = rs_with(&[(REVISION_ANNOTATION, rev)]);
            rs.metadata.name = name.into();
            rs.metadata.creation_timestamp = Time::from_unix(t);
            rs.spec.replicas = Some(replicas);
            rs
        };
        let mut v = vec![mk("c", 3, 2, "1"), mk("a", 1, 2, "3"), mk("b", 2, 5, "2")];
        v.sort_by(by_creation);
        assert_eq!(names(&v), ["a", "b", "c"]);
        v.sort_by(by_revision);
        assert_eq!(names(&v), ["c", "b", "a"]);
        v.sort_by(by_size_newer);
        assert_eq!(names(&v), ["b", "c", "a"]);
        v.sort_by(by_size_older);
        assert_eq!(names(&v), ["b", "a", "c"]);
    }

    fn names(v: &[ReplicaSet]) -> Vec<&str> {
        v.iter().map(|r| r.metadata.name.as_str()).collect()
    }

    #[test]
    fn conditions_keep_transition_times() {
        let t0 = DateTime::from_timestamp(1000, 0).unwrap();
        let t1 = DateTime::from_timestamp(2000, 0).unwrap();
        let mut st = DeploymentStatus::default();
        set_condition(
            &mut st,
            condition(PROGRESSING, "True", NEW_REPLICA_SET_CREATED, "a".into(), t0),
        );
        // Same status and reason: unchanged.
        set_condition(
            &mut st,
            condition(PROGRESSING, "True", NEW_REPLICA_SET_CREATED, "b".into(), t1),
        );
        assert_eq!(st.conditions[0].message, "a");
        // New reason, same status: transition time kept.
        set_condition(
            &mut st,
            condition(PROGRESSING, "True", REPLICA_SET_UPDATED, "c".into(), t1),
        );
        assert_eq!(st.conditions[0].last_transition_time, Some(time(t0)));
        assert_eq!(st.conditions[0].last_update_time, Some(time(t1)));
        set_condition(
            &mut st,
            condition(
                PROGRESSING,
                "False",
                PROGRESS_DEADLINE_EXCEEDED,
                "d".into(),
                t1,
            ),
        );
        assert_eq!(st.conditions[0].last_transition_time, Some(time(t1)));
        remove_condition(&mut st, PROGRESSING);
        assert!(st.conditions.is_empty());
    }
}
