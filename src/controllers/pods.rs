//! What the pod-owning controllers share: pod states, Kubernetes' order for
//! deleting pods, slow-start batches, generated names, pods stamped from a
//! template, and adoption or release of owned objects.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use rand::Rng;

use crate::api::core::{Pod, PodTemplateSpec, pod_ready};
use crate::api::{ObjectMeta, Time};

use super::plan::{MetadataPatch, ObjectRef};

/// Most objects a controller creates or deletes in one sync (Kubernetes'
/// `burstReplicas` of the ReplicaSet controller).
pub const BURST_REPLICAS: usize = 500;

/// The annotation whose integer value makes a pod cheaper (lower) or dearer
/// (higher) to delete on scale-down.
pub const POD_DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";

/// The alphabet of generated name suffixes (`utilrand.String`): no vowels,
/// so no words, and no look-alike characters.
pub const NAME_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// Length of a generated name suffix.
pub const NAME_SUFFIX_LEN: usize = 5;

/// Longest prefix kept before a generated suffix, so that the name stays a
/// 63-character label (`maxGeneratedNameLength`).
pub const MAX_GENERATED_PREFIX_LEN: usize = 63 - NAME_SUFFIX_LEN;

/// `Time` of `now` with the second precision the API stores.
pub fn time(now: DateTime<Utc>) -> Time {
    Time(DateTime::from_timestamp(now.timestamp(), 0).unwrap_or(now))
}

/// Not finished and not being deleted (`controller.IsPodActive`).
pub fn is_active(p: &Pod) -> bool {
    !p.is_terminal() && p.metadata.deletion_timestamp.is_none()
}

/// Being deleted but not finished: still running its shutdown.
pub fn is_terminating(p: &Pod) -> bool {
    !p.is_terminal() && p.metadata.deletion_timestamp.is_some()
}

/// Since when the pod has been ready, if it is.
pub fn ready_since(p: &Pod) -> Option<DateTime<Utc>> {
    if !pod_ready(p) {
        return None;
    }
    p.condition("Ready")
        .and_then(|c| c.last_transition_time)
        .map(|t| t.0)
}

/// Ready for at least `min_ready_seconds` (`podutil.IsPodAvailable`).
pub fn is_available(p: &Pod, min_ready_seconds: i32, now: DateTime<Utc>) -> bool {
    if !pod_ready(p) {
        return false;
    }
    if min_ready_seconds <= 0 {
        return true;
    }
    ready_since(p).is_some_and(|t| {
        t.checked_add_signed(Duration::seconds(i64::from(min_ready_seconds)))
            .is_some_and(|at| at < now)
    })
}

/// How long until a ready but not yet available pod becomes available;
/// `None` when that will not happen by waiting alone.
pub fn available_in(p: &Pod, min_ready_seconds: i32, now: DateTime<Utc>) -> Option<Duration> {
    if min_ready_seconds <= 0 || is_available(p, min_ready_seconds, now) {
        return None;
    }
    let since = ready_since(p)?;
    // Availability needs strictly more than minReadySeconds.
    Some(since.checked_add_signed(Duration::seconds(i64::from(min_ready_seconds) + 1))? - now)
}

/// The largest restart count of the pod's containers.
fn max_restarts(p: &Pod) -> i32 {
    p.status
        .container_statuses
        .iter()
        .map(|c| c.restart_count)
        .max()
        .unwrap_or(0)
}

fn phase_ordinal(p: &Pod) -> u8 {
    // Go reads a missing map key as 0, so unknown phases sort as Pending.
    match p.status.phase.as_str() {
        "Unknown" => 1,
        "Running" => 2,
        _ => 0,
    }
}

fn deletion_cost(p: &Pod) -> i32 {
    p.metadata
        .annotations
        .get(POD_DELETION_COST)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// `floor(log2(now - t))` in nanoseconds, or -1 when `t` is not in the past.
fn log_rank(t: DateTime<Utc>, now: DateTime<Utc>) -> i64 {
    match (now - t).num_nanoseconds() {
        Some(d) if d > 0 => 63 - i64::from(d.leading_zeros()),
        Some(_) => -1,
        None => 63,
    }
}

/// `afterOrZero`: a missing time sorts first, then the later one.
fn after_or_zero(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> bool {
    match (a, b) {
        (None, _) | (_, None) => a.is_none(),
        (Some(a), Some(b)) => a > b,
    }
}

/// Compares two times on Kubernetes' logarithmic scale (LogarithmicScaleDown):
/// times within the same power-of-two distance from `now` tie, and ties go
/// by uid to spread deletions pseudo-randomly.
fn newer_first(
    a: (Option<DateTime<Utc>>, &Pod),
    b: (Option<DateTime<Utc>>, &Pod),
    now: DateTime<Utc>,
) -> bool {
    match (a.0, b.0) {
        (Some(ta), Some(tb)) => {
            let diff = log_rank(ta, now) - log_rank(tb, now);
            if diff == 0 {
                a.1.metadata.uid < b.1.metadata.uid
            } else {
                diff < 0
            }
        }
        _ => after_or_zero(a.0, b.0),
    }
}

/// One pod with what `ActivePodsWithRanks` compares.
struct Ranked<'a> {
    pod: &'a Pod,
    /// Active related pods on the same node.
    colocated: usize,
}

/// `ActivePodsWithRanks.Less`: whether `a` should be deleted before `b`.
fn delete_before(a: &Ranked, b: &Ranked, now: DateTime<Utc>) -> bool {
    let (pa, pb) = (a.pod, b.pod);
    // 1. Unassigned before assigned.
    let (na, nb) = (&pa.spec.node_name, &pb.spec.node_name);
    if na != nb && (na.is_empty() || nb.is_empty()) {
        return na.is_empty();
    }
    // 2. Pending before Unknown before Running.
    if phase_ordinal(pa) != phase_ordinal(pb) {
        return phase_ordinal(pa) < phase_ordinal(pb);
    }
    // 3. Not ready before ready.
    if pod_ready(pa) != pod_ready(pb) {
        return !pod_ready(pa);
    }
    // 4. Lower deletion cost first.
    if deletion_cost(pa) != deletion_cost(pb) {
        return deletion_cost(pa) < deletion_cost(pb);
    }
    // 5. Pods doubled up on a node first.
    if a.colocated != b.colocated {
        return a.colocated > b.colocated;
    }
    // 6. Ready for less time first.
    if pod_ready(pa) && pod_ready(pb) {
        let (ra, rb) = (ready_since(pa), ready_since(pb));
        if ra != rb {
            return newer_first((ra, pa), (rb, pb), now);
        }
    }
    // 7. More restarts first.
    if max_restarts(pa) != max_restarts(pb) {
        return max_restarts(pa) > max_restarts(pb);
    }
    // 8. Newer first.
    let (ca, cb) = (
        pa.metadata.creation_timestamp.map(|t| t.0),
        pb.metadata.creation_timestamp.map(|t| t.0),
    );
    if ca != cb {
        return newer_first((ca, pa), (cb, pb), now);
    }
    false
}

/// Sorts `pods` in the order Kubernetes deletes them on scale-down
/// (`getPodsToDelete` with `ActivePodsWithRanks`): unscheduled before
/// scheduled, Pending before Unknown before Running, not ready before ready,
/// lower `pod-deletion-cost` first, pods sharing a node with more `related`
/// active pods first, ready for a shorter time first, more restarts first,
/// newer before older.
pub fn deletion_order<'a>(pods: &[&'a Pod], related: &[&Pod], now: DateTime<Utc>) -> Vec<&'a Pod> {
    let mut per_node: BTreeMap<&str, usize> = BTreeMap::new();
    for p in related.iter().filter(|p| is_active(p)) {
        *per_node.entry(p.spec.node_name.as_str()).or_default() += 1;
    }
    let mut ranked: Vec<Ranked> = pods
        .iter()
        .map(|p| Ranked {
            pod: p,
            colocated: per_node
                .get(p.spec.node_name.as_str())
                .copied()
                .unwrap_or(0),
        })
        .collect();
    ranked.sort_by(|a, b| {
        if delete_before(a, b, now) {
            Ordering::Less
        } else if delete_before(b, a, now) {
            Ordering::Greater
        } else {
            Ordering::Equal
        }
    });
    ranked.into_iter().map(|r| r.pod).collect()
}

/// `controller.ActivePods` ordering, used by Jobs (no ranks, no
/// logarithmic scale): unscheduled, Pending, not ready, ready for less
/// time, more restarts, newer first.
pub fn active_pods_order<'a>(pods: &[&'a Pod]) -> Vec<&'a Pod> {
    let mut v = pods.to_vec();
    v.sort_by(|a, b| {
        let before = |x: &Pod, y: &Pod| -> bool {
            let (nx, ny) = (&x.spec.node_name, &y.spec.node_name);
            if nx != ny && (nx.is_empty() || ny.is_empty()) {
                return nx.is_empty();
            }
            if phase_ordinal(x) != phase_ordinal(y) {
                return phase_ordinal(x) < phase_ordinal(y);
            }
            if pod_ready(x) != pod_ready(y) {
                return !pod_ready(x);
            }
            if pod_ready(x) && pod_ready(y) && ready_since(x) != ready_since(y) {
                return after_or_zero(ready_since(x), ready_since(y));
            }
            if max_restarts(x) != max_restarts(y) {
                return max_restarts(x) > max_restarts(y);
            }
            let (cx, cy) = (
                x.metadata.creation_timestamp.map(|t| t.0),
                y.metadata.creation_timestamp.map(|t| t.0),
            );
            cx != cy && after_or_zero(cx, cy)
        };
        if before(a, b) {
            Ordering::Less
        } else if before(b, a) {
            Ordering::Greater
        } else {
            Ordering::Equal
        }
    });
    v
}

/// Batch sizes for creating `n` objects: 1, 2, 4, ... (the last one what is
/// left), as `slowStartBatch` with an initial batch of 1.
pub fn slow_start_batches(n: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let mut remaining = n;
    let mut size = 1usize;
    while remaining > 0 {
        let b = size.min(remaining);
        out.push(b);
        remaining -= b;
        size = size.saturating_mul(2);
    }
    out
}

/// The `generateName` prefix of objects named after `owner` (`web-`),
/// truncated so that prefix and suffix fit a 63-character name.
pub fn name_prefix(owner: &str) -> String {
    let mut prefix = format!("{owner}-");
    if prefix.len() > MAX_GENERATED_PREFIX_LEN {
        let mut cut = MAX_GENERATED_PREFIX_LEN;
        while !prefix.is_char_boundary(cut) {
            cut -= 1;
        }
        prefix.truncate(cut);
    }
    prefix
}

/// A random suffix from [`NAME_ALPHABET`].
pub fn random_suffix(rng: &mut impl Rng, len: usize) -> String {
    (0..len)
        .map(|_| char::from(NAME_ALPHABET[rng.random_range(0..NAME_ALPHABET.len())]))
        .collect()
}

/// `prefix` plus a random suffix, avoiding names for which `taken` is true.
pub fn generate_name(prefix: &str, rng: &mut impl Rng, taken: impl Fn(&str) -> bool) -> String {
    loop {
        let name = format!("{prefix}{}", random_suffix(rng, NAME_SUFFIX_LEN));
        if !taken(&name) {
            return name;
        }
    }
}

/// A pod stamped from `template` for `owner` (`GetPodFromTemplate`): the
/// template's labels, annotations, finalizers and spec, the owner's
/// controller reference, the given name and `generateName` prefix.
pub fn pod_from_template(
    template: &PodTemplateSpec,
    owner: &ObjectRef,
    name: String,
    generate_name: String,
) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name,
            generate_name,
            namespace: owner.namespace.clone(),
            labels: template.metadata.labels.clone(),
            annotations: template.metadata.annotations.clone(),
            finalizers: template.metadata.finalizers.clone(),
            owner_references: vec![owner.controller_ref()],
            ..Default::default()
        },
        spec: template.spec.clone(),
        ..Default::default()
    }
}

/// What a controller does with one object of its namespace
/// (`ControllerRefManager.ClaimObject`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// Controlled by this owner and matching its selector.
    Owned,
    /// An orphan that matches: add this owner as controller.
    Adopt,
    /// Controlled by this owner but no longer matching: remove the reference.
    Release,
    /// Someone else's, or not matching, or not to be touched now.
    Ignore,
}

/// Decides how `owner` treats an object with metadata `meta` whose labels
/// do (`matches`) or do not match the owner's selector.
pub fn claim(owner: &ObjectRef, owner_deleting: bool, matches: bool, meta: &ObjectMeta) -> Claim {
    match meta.controller_ref() {
        Some(r) if r.uid != owner.uid => Claim::Ignore,
        Some(_) if matches => Claim::Owned,
        // An owner being deleted keeps what it has, so the GC can see it.
        Some(_) if owner_deleting => Claim::Ignore,
        Some(_) => Claim::Release,
        None if owner_deleting || !matches => Claim::Ignore,
        None if meta.deletion_timestamp.is_some() => Claim::Ignore,
        None if meta.namespace != owner.namespace => Claim::Ignore,
        None => Claim::Adopt,
    }
}

/// The patch adopting `meta`'s object: `owner` becomes its controller,
/// other references stay; `finalizer` is added when given (Jobs track their
/// pods with one).
pub fn adopt_patch(owner: &ObjectRef, meta: &ObjectMeta, finalizer: Option<&str>) -> MetadataPatch {
    let mut patch = MetadataPatch::guarded(meta);
    let mut refs: Vec<_> = meta
        .owner_references
        .iter()
        .filter(|r| r.uid != owner.uid)
        .cloned()
        .collect();
    refs.push(owner.controller_ref());
    patch.owner_references = Some(refs);
    if let Some(f) = finalizer
        && !meta.finalizers.iter().any(|x| x == f)
    {
        let mut list = meta.finalizers.clone();
        list.push(f.to_string());
        patch.finalizers = Some(list);
    }
    patch
}

/// The patch releasing `meta`'s object from the owner with `owner_uid`.
pub fn release_patch(owner_uid: &str, meta: &ObjectMeta) -> MetadataPatch {
    let mut patch = MetadataPatch::guarded(meta);
    patch.owner_references = Some(
        meta.owner_references
            .iter()
            .filter(|r| r.uid != owner_uid)
            .cloned()
            .collect(),
    );
    patch
}

/// The patch removing `finalizer` from `meta`'s object, if it has it.
pub fn remove_finalizer_patch(meta: &ObjectMeta, finalizer: &str) -> Option<MetadataPatch> {
    if !meta.finalizers.iter().any(|f| f == finalizer) {
        return None;
    }
    let mut patch = MetadataPatch::guarded(meta);
    patch.finalizers = Some(
        meta.finalizers
            .iter()
            .filter(|f| *f != finalizer)
            .cloned()
            .collect(),
    );
    Some(patch)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::api::OwnerReference;
    use crate::api::core::{ContainerStatus, PodCondition};
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    pub(crate) fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap()
    }

    /// A pod named `name` created at `created` (seconds from the epoch of
    /// the tests), on `node` (empty: unscheduled), in `phase`, ready since
    /// `ready` if given.
    pub(crate) fn pod(
        name: &str,
        node: &str,
        phase: &str,
        ready: Option<i64>,
        created: i64,
    ) -> Pod {
        let mut p = Pod::default();
        p.metadata.name = name.into();
        p.metadata.uid = format!("uid-{name}");
        p.metadata.creation_timestamp = Some(Time(at(created)));
        p.spec.node_name = node.into();
        p.status.phase = phase.into();
        if let Some(r) = ready {
            p.status.conditions.push(PodCondition {
                type_: "Ready".into(),
                status: "True".into(),
                last_transition_time: Some(Time(at(r))),
                ..Default::default()
            });
        }
        p
    }

    #[test]
    fn availability_needs_min_ready_seconds() {
        let p = pod("a", "n", "Running", Some(0), 0);
        let cases = [
            (0, 0, true),
            (10, 10, false),
            (10, 11, true),
            (10, 5, false),
        ];
        for (mrs, now, want) in cases {
            assert_eq!(is_available(&p, mrs, at(now)), want, "{mrs} {now}");
        }
        assert_eq!(available_in(&p, 10, at(5)), Some(Duration::seconds(6)));
        assert_eq!(available_in(&p, 10, at(11)), None);
        let unready = pod("b", "n", "Running", None, 0);
        assert!(!is_available(&unready, 0, at(0)));
        assert_eq!(available_in(&unready, 10, at(0)), None);
    }

    #[test]
    fn deletion_ranking_follows_kubernetes() {
        let now = at(100_000);
        let restarted = {
            let mut p = pod("restarts", "n1", "Running", Some(10), 10);
            p.status.container_statuses.push(ContainerStatus {
                restart_count: 3,
                ..Default::default()
            });
            p
        };
        let cheap = {
            let mut p = pod("cheap", "n9", "Running", Some(1), 1);
            p.metadata
                .annotations
                .insert(POD_DELETION_COST.into(), "-5".into());
            p
        };
        let pods = [
            pod("old-ready", "n1", "Running", Some(10), 10),
            pod("unscheduled", "", "Pending", None, 10),
            pod("pending", "n2", "Pending", None, 10),
            pod("unknown", "n3", "Unknown", None, 10),
            pod("running-unready", "n4", "Running", None, 10),
            // Ready far more recently: a smaller logarithmic rank.
            pod("new-ready", "n5", "Running", Some(99_990), 10),
            restarted,
            cheap,
        ];
        let refs: Vec<&Pod> = pods.iter().collect();
        let order: Vec<&str> = deletion_order(&refs, &refs, now)
            .iter()
            .map(|p| p.metadata.name.as_str())
            .collect();
        assert_eq!(
            order,
            [
                "unscheduled",
                "pending",
                "unknown",
                "running-unready",
                "cheap",
                // n1 has two active pods: doubled up goes first.
                "restarts",
                "old-ready",
                "new-ready",
            ]
        );
    }

    #[test]
    fn deletion_ranking_prefers_newer_pods_on_a_log_scale() {
        let now = at(1_000_000);
        // Created 1 s and 900 000 s ago: very different ranks.
        let a = pod("young", "n1", "Running", None, 999_999);
        let b = pod("old", "n2", "Running", None, 100_000);
        let order = deletion_order(&[&b, &a], &[], now);
        assert_eq!(order[0].metadata.name, "young");
        // 1000 s and 1001 s ago share a power-of-two bucket: uid decides.
        let c = pod("c", "n1", "Running", None, 999_000);
        let d = pod("d", "n2", "Running", None, 998_999);
        let order = deletion_order(&[&d, &c], &[], now);
        assert_eq!(order[0].metadata.name, "c");
        // The plain order (Jobs) compares exact times.
        let order = active_pods_order(&[&d, &c]);
        assert_eq!(order[0].metadata.name, "c");
    }

    #[test]
    fn slow_start_doubles() {
        assert_eq!(slow_start_batches(0), Vec::<usize>::new());
        assert_eq!(slow_start_batches(1), [1]);
        assert_eq!(slow_start_batches(7), [1, 2, 4]);
        assert_eq!(slow_start_batches(500), [1, 2, 4, 8, 16, 32, 64, 128, 245]);
    }

    #[test]
    fn generated_names_use_the_kubernetes_alphabet() {
        let mut rng = StdRng::seed_from_u64(7);
        let name = generate_name("web-", &mut rng, |_| false);
        assert_eq!(name.len(), 9);
        assert!(name.starts_with("web-"));
        assert!(name[4..].bytes().all(|b| NAME_ALPHABET.contains(&b)));
        // A taken name is never returned.
        let first = generate_name("web-", &mut StdRng::seed_from_u64(1), |_| false);
        let other = generate_name("web-", &mut StdRng::seed_from_u64(1), |n| n == first);
        assert_ne!(first, other);
        let long = "x".repeat(70);
        assert_eq!(name_prefix(&long).len(), 58);
        assert_eq!(name_prefix("web"), "web-");
    }

    #[test]
    fn claims() {
        let owner = ObjectRef {
            api_version: "apps/v1".into(),
            kind: "ReplicaSet".into(),
            namespace: "default".into(),
            name: "web".into(),
            uid: "rs-1".into(),
        };
        let mut mine = ObjectMeta {
            namespace: "default".into(),
            owner_references: vec![owner.controller_ref()],
            ..Default::default()
        };
        let other = ObjectMeta {
            namespace: "default".into(),
            owner_references: vec![OwnerReference {
                uid: "x".into(),
                controller: Some(true),
                ..Default::default()
            }],
            ..Default::default()
        };
        let orphan = ObjectMeta {
            namespace: "default".into(),
            ..Default::default()
        };
        let mut dying = orphan.clone();
        dying.deletion_timestamp = Time::from_unix(5);
        let cases = [
            (&mine, false, true, Claim::Owned),
            (&mine, false, false, Claim::Release),
            (&mine, true, false, Claim::Ignore),
            (&other, false, true, Claim::Ignore),
            (&orphan, false, true, Claim::Adopt),
            (&orphan, false, false, Claim::Ignore),
            (&orphan, true, true, Claim::Ignore),
            (&dying, false, true, Claim::Ignore),
        ];
        for (i, (meta, deleting, matches, want)) in cases.into_iter().enumerate() {
            assert_eq!(claim(&owner, deleting, matches, meta), want, "case {i}");
        }
        let adopt = adopt_patch(&owner, &orphan, Some("f"));
        assert_eq!(adopt.owner_references, Some(vec![owner.controller_ref()]));
        assert_eq!(adopt.finalizers, Some(vec!["f".to_string()]));
        mine.owner_references.push(OwnerReference {
            uid: "keep".into(),
            ..Default::default()
        });
        let release = release_patch("rs-1", &mine);
        assert_eq!(release.owner_references.map(|r| r.len()), Some(1));
        assert!(remove_finalizer_patch(&orphan, "f").is_none());
    }
}
