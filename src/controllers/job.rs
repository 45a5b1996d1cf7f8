//! The Job controller (Kubernetes' `pkg/controller/job`) and the
//! TTL-after-finished controller.
//!
//! One planning ([`plan`]) mirrors `syncJob`:
//! 1. claims the namespace's pods by selector (adopted pods get the
//!    `batch.kubernetes.io/job-tracking` finalizer);
//! 2. counts finished pods: a finished pod that still has the tracking
//!    finalizer is new and is counted in `status.uncountedTerminatedPods`
//!    first, its finalizer is removed after that status is written, and
//!    once the finalizer is gone its uid moves into `succeeded`/`failed`
//!    (Indexed Jobs count succeeded indexes in `completedIndexes`). Each
//!    step is one plan, so a crash between them never loses or doubles a
//!    count;
//! 3. decides whether the Job failed: a pod failure policy `FailJob` rule,
//!    more failures than `backoffLimit` (or, with `restartPolicy:
//!    OnFailure`, as many container restarts), or `activeDeadlineSeconds`
//!    passed; or succeeded: `completions` reached (any success without
//!    completions). The decision is first recorded as the interim
//!    `FailureTarget` / `SuccessCriteriaMet` condition while remaining pods
//!    are stopped, then as `Failed` / `Complete` once no pod is uncounted
//!    or terminating, with Kubernetes' reasons (`BackoffLimitExceeded`,
//!    `DeadlineExceeded`, `PodFailurePolicy`, `CompletionsReached`);
//! 4. otherwise keeps `min(parallelism, completions - succeeded)` pods
//!    running: deletes extra ones (for Indexed Jobs duplicates and
//!    out-of-range indexes first), or creates missing ones after the
//!    exponential failure backoff (10 s doubling to 6 min since the last
//!    failure); Indexed Jobs' pods carry their index in the
//!    `batch.kubernetes.io/job-completion-index` annotation and label, the
//!    `JOB_COMPLETION_INDEX` variable and the hostname `<job>-<index>`;
//! 5. `suspend: true` deletes the active pods and sets `Suspended`;
//!    resuming resets `startTime` (the deadline counts active time);
//! 6. a finished Job with `ttlSecondsAfterFinished` is deleted (foreground)
//!    when its time is up.
//!
//! The failure backoff is computed from the finished pods themselves (the
//! failures after the last success and the time of the latest one), where
//! Kubernetes keeps the same record in memory, so it survives a restart of
//! the controller. `backoffLimitPerIndex`, `successPolicy` and the
//! `FailIndex` action are not planned: such Jobs run with the global
//! backoff limit.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use rand::Rng;

use crate::api::batch::{Job, JobCondition, JobStatus, PodFailurePolicy, UncountedTerminatedPods};
use crate::api::core::{EnvVar, EnvVarSource, ObjectFieldSelector, Pod, pod_ready};
use crate::api::selector::LabelSelectorExpr;

use super::events::{EventSpec, pod_deleted};
use super::expectations::Expectations;
use super::plan::{Action, ObjectRef, Plan, PodBatch, Preconditions, Propagation};
use super::pods::{
    Claim, MAX_GENERATED_PREFIX_LEN, active_pods_order, adopt_patch, claim, generate_name,
    is_active, is_terminating, name_prefix, pod_from_template, release_patch,
    remove_finalizer_patch, time,
};

/// The finalizer that keeps a Job's finished pods until they are counted.
pub const TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";
/// The annotation and label holding an Indexed Job pod's index.
pub const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";
/// The environment variable giving a pod its completion index.
pub const COMPLETION_INDEX_ENV: &str = "JOB_COMPLETION_INDEX";
/// Most pods created or deleted in one sync.
pub const MAX_POD_CREATE_DELETE_PER_SYNC: usize = 500;
/// Most uids kept in `uncountedTerminatedPods` at once.
pub const MAX_UNCOUNTED_PODS: usize = 500;
const BACKOFF_DEFAULT: Duration = Duration::seconds(10);
const BACKOFF_MAX: Duration = Duration::minutes(6);

/// Condition types and reasons.
pub const COMPLETE: &str = "Complete";
pub const FAILED: &str = "Failed";
pub const FAILURE_TARGET: &str = "FailureTarget";
pub const SUCCESS_CRITERIA_MET: &str = "SuccessCriteriaMet";
pub const SUSPENDED: &str = "Suspended";
pub const REASON_BACKOFF_LIMIT_EXCEEDED: &str = "BackoffLimitExceeded";
pub const REASON_DEADLINE_EXCEEDED: &str = "DeadlineExceeded";
pub const REASON_POD_FAILURE_POLICY: &str = "PodFailurePolicy";
pub const REASON_COMPLETIONS_REACHED: &str = "CompletionsReached";

/// What the controller sees besides the Job.
#[derive(Clone, Copy, Debug)]
pub struct Observed<'a> {
    /// Every pod of the Job's namespace.
    pub pods: &'a [&'a Pod],
    pub expectations: Option<&'a Expectations>,
    pub now: DateTime<Utc>,
}

fn has_finalizer(p: &Pod) -> bool {
    p.metadata
        .finalizers
        .iter()
        .any(|f| f == TRACKING_FINALIZER)
}

fn suspended(job: &Job) -> bool {
    job.spec.suspend == Some(true)
}

fn indexed(job: &Job) -> bool {
    job.spec.completion_mode.as_deref() == Some("Indexed")
}

/// The pod's completion index, if it has a valid one.
pub fn completion_index(p: &Pod) -> Option<i64> {
    p.metadata
        .annotations
        .get(COMPLETION_INDEX)
        .and_then(|v| v.parse::<i64>().ok())
        .filter(|i| *i >= 0)
}

/// `onlyReplaceFailedPods`: replacements wait for pods to fail, not merely
/// to terminate.
fn only_replace_failed(job: &Job) -> bool {
    job.spec.pod_replacement_policy.as_deref() == Some("Failed")
        || job.spec.pod_failure_policy.is_some()
}

/// `isPodFailed`: Failed, or (unless only failed pods are replaced) being
/// deleted before it succeeded.
fn is_failed(p: &Pod, job: &Job) -> bool {
    if p.status.phase == "Failed" {
        return true;
    }
    if only_replace_failed(job) {
        return false;
    }
    p.metadata.deletion_timestamp.is_some() && p.status.phase != "Succeeded"
}

/// The outcome of matching a failed pod against the pod failure policy.
struct PolicyMatch {
    /// `FailJob`: the Job fails with this message.
    fail_job: Option<String>,
    /// Whether the failure counts against `backoffLimit` (`Ignore` does not).
    counts: bool,
}

/// `matchPodFailurePolicy`.
fn match_policy(policy: Option<&PodFailurePolicy>, pod: &Pod) -> PolicyMatch {
    let none = PolicyMatch {
        fail_job: None,
        counts: true,
    };
    let Some(policy) = policy else {
        return none;
    };
    let pod_key = format!("{}/{}", pod.metadata.namespace, pod.metadata.name);
    for (index, rule) in policy.rules.iter().enumerate() {
        let message = if let Some(req) = &rule.on_exit_codes {
            let statuses = pod
                .status
                .container_statuses
                .iter()
                .chain(&pod.status.init_container_statuses);
            let hit = statuses.into_iter().find_map(|cs| {
                if req.container_name.as_ref().is_some_and(|n| n != &cs.name) {
                    return None;
                }
                let code = cs.state.terminated.as_ref()?.exit_code;
                let listed = req.values.contains(&code);
                let matched = code != 0 && if req.operator == "In" { listed } else { !listed };
                matched.then(|| {
                    format!(
                        "Container {} for pod {pod_key} failed with exit code {code} matching {} rule at index {index}",
                        cs.name, rule.action
                    )
                })
            });
            match hit {
                Some(m) => m,
                None => continue,
            }
        } else {
            let hit = pod.status.conditions.iter().find(|c| {
                rule.on_pod_conditions
                    .iter()
                    .any(|p| p.type_ == c.type_ && p.status == c.status)
            });
            match hit {
                Some(c) => format!(
                    "Pod {pod_key} has condition {} matching {} rule at index {index}",
                    c.type_, rule.action
                ),
                None => continue,
            }
        };
        return match rule.action.as_str() {
            "Ignore" => PolicyMatch {
                fail_job: None,
                counts: false,
            },
            "FailJob" => PolicyMatch {
                fail_job: Some(message),
                counts: true,
            },
            _ => none,
        };
    }
    none
}

/// When a pod finished: its containers' latest finish, else its deletion
/// time, else `now` (`getFinishedTime`).
fn finished_at(p: &Pod, now: DateTime<Utc>) -> DateTime<Utc> {
    p.status
        .container_statuses
        .iter()
        .chain(&p.status.init_container_statuses)
        .filter_map(|c| c.state.terminated.as_ref()?.finished_at)
        .max()
        .or(p.metadata.deletion_timestamp)
        .map_or(now, |t| t.0)
}

/// How long pod creation must still wait after failures: 10 s after one
/// failure, doubling per failure since the last success, at most 6 min,
/// counted from the latest failure.
fn backoff_remaining(job: &Job, pods: &[&Pod], now: DateTime<Utc>) -> Duration {
    let last_success = pods
        .iter()
        .filter(|p| p.status.phase == "Succeeded")
        .map(|p| finished_at(p, now))
        .max();
    let failures: Vec<DateTime<Utc>> = pods
        .iter()
        // Failures the controller caused (pods it deleted after removing
        // their finalizer) do not count.
        .filter(|p| {
            is_failed(p, job) && (has_finalizer(p) || p.metadata.deletion_timestamp.is_none())
        })
        .map(|p| finished_at(p, now))
        .filter(|t| last_success.is_none_or(|s| *t > s))
        .collect();
    let Some(last) = failures.iter().max() else {
        return Duration::zero();
    };
    let mut delay = BACKOFF_DEFAULT;
    for _ in 1..failures.len() {
        delay = delay * 2;
        if delay >= BACKOFF_MAX {
            delay = BACKOFF_MAX;
            break;
        }
    }
    (delay - (now - *last)).max(Duration::zero())
}

/// Completion indexes as sorted, disjoint, non-adjacent intervals
/// (`orderedIntervals`), so a huge `completions` costs no memory.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Indexes(Vec<(i64, i64)>);

impl Indexes {
    /// Parses `completedIndexes` (`1,3-5,7`), keeping indexes below
    /// `completions`; malformed parts are skipped.
    pub fn parse(s: &str, completions: i64) -> Self {
        let mut out = Indexes::default();
        for part in s.split(',').filter(|p| !p.is_empty()) {
            let (a, b) = match part.split_once('-') {
                Some((a, b)) => (a.parse::<i64>(), b.parse::<i64>()),
                None => (part.parse::<i64>(), part.parse::<i64>()),
            };
            if let (Ok(a), Ok(b)) = (a, b) {
                let b = b.min(completions - 1);
                if a >= 0 && a <= b {
                    out.insert_range(a, b);
                }
            }
        }
        out
    }

    fn insert_range(&mut self, a: i64, b: i64) {
        self.0.push((a, b));
        self.0.sort_unstable();
        let mut merged: Vec<(i64, i64)> = Vec::with_capacity(self.0.len());
        for (a, b) in self.0.drain(..) {
            match merged.last_mut() {
                Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        self.0 = merged;
    }

    /// Adds one index.
    pub fn insert(&mut self, i: i64) {
        if !self.contains(i) {
            self.insert_range(i, i);
        }
    }

    /// Whether `i` is in the set.
    pub fn contains(&self, i: i64) -> bool {
        let at = self.0.partition_point(|(_, b)| *b < i);
        self.0.get(at).is_some_and(|(a, _)| *a <= i)
    }

    /// How many indexes the set holds.
    pub fn total(&self) -> i64 {
        self.0.iter().map(|(a, b)| b - a + 1).sum()
    }
}

impl std::fmt::Display for Indexes {
    /// Kubernetes' form: `1,3-5,7`, with pairs as `3,4`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (n, (a, b)) in self.0.iter().enumerate() {
            if n > 0 {
                f.write_str(",")?;
            }
            write!(f, "{a}")?;
            if b > a {
                let sep = if *b == a + 1 { ',' } else { '-' };
                write!(f, "{sep}{b}")?;
            }
        }
        Ok(())
    }
}

fn new_condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: DateTime<Utc>,
) -> JobCondition {
    JobCondition {
        type_: type_.into(),
        status: status.into(),
        last_probe_time: Some(time(now)),
        last_transition_time: Some(time(now)),
        reason: reason.into(),
        message: message.into(),
    }
}

/// `ensureJobConditionStatus`: whether the list changed.
fn ensure_condition(
    list: &mut Vec<JobCondition>,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: DateTime<Utc>,
) -> bool {
    if let Some(c) = list.iter_mut().find(|c| c.type_ == type_) {
        if c.status != status || c.reason != reason || c.message != message {
            *c = new_condition(type_, status, reason, message, now);
            return true;
        }
        return false;
    }
    if status != "False" {
        list.push(new_condition(type_, status, reason, message, now));
        return true;
    }
    false
}

/// Plans one sync of `job`. `rng` picks pod name suffixes.
pub fn plan(job: &Job, observed: &Observed, rng: &mut impl Rng) -> Plan {
    let subject = ObjectRef::of(job);
    let now = observed.now;
    let mut plan = Plan::new(subject.clone());
    let ns = &job.metadata.namespace;
    let in_namespace: Vec<&Pod> = observed
        .pods
        .iter()
        .copied()
        .filter(|p| &p.metadata.namespace == ns)
        .collect();

    if job.finished().is_some() {
        // Pods of a finished Job must not stay blocked by the finalizer.
        for p in in_namespace.iter().filter(|p| {
            p.metadata
                .controller_ref()
                .is_some_and(|r| r.uid == subject.uid)
        }) {
            if let Some(patch) = remove_finalizer_patch(&p.metadata, TRACKING_FINALIZER) {
                plan.actions.push(Action::Patch {
                    target: ObjectRef::of(*p),
                    patch,
                    event: None,
                });
            }
        }
        plan_ttl(job, now, &mut plan);
        return plan;
    }
    if let Some(mode) = &job.spec.completion_mode
        && mode != "NonIndexed"
        && mode != "Indexed"
    {
        plan.events.push(EventSpec::warning(
            &subject,
            "UnknownCompletionMode",
            "Skipped Job sync because completion mode is unknown",
        ));
        return plan;
    }
    let Some(selector) = job
        .spec
        .selector
        .as_ref()
        .and_then(|s| LabelSelectorExpr::from_label_selector(s).ok())
        .filter(|s| !s.is_empty())
    else {
        return plan;
    };
    let deleting = job.metadata.deletion_timestamp.is_some();

    // 1. Claim pods; adopted ones are tracked from now on.
    let mut adopted: BTreeMap<String, Pod> = BTreeMap::new();
    let mut owned_names: Vec<&Pod> = Vec::new();
    for p in &in_namespace {
        match claim(
            &subject,
            deleting,
            selector.matches(&p.metadata.labels),
            &p.metadata,
        ) {
            Claim::Owned => owned_names.push(p),
            Claim::Adopt => {
                let patch = adopt_patch(&subject, &p.metadata, Some(TRACKING_FINALIZER));
                let mut copy = (*p).clone();
                patch.apply_to(&mut copy.metadata);
                plan.actions.push(Action::Patch {
                    target: ObjectRef::of(*p),
                    patch,
                    event: None,
                });
                adopted.insert(copy.metadata.uid.clone(), copy);
            }
            Claim::Release => plan.actions.push(Action::Patch {
                target: ObjectRef::of(*p),
                patch: release_patch(&subject.uid, &p.metadata),
                event: None,
            }),
            Claim::Ignore => {}
        }
    }
    let pods: Vec<&Pod> = owned_names.into_iter().chain(adopted.values()).collect();

    let mut s = JobSync {
        job,
        subject,
        now,
        status: job.status.clone(),
        plan,
    };
    s.status
        .uncounted_terminated_pods
        .get_or_insert_with(UncountedTerminatedPods::default);
    s.sync(&pods, &in_namespace, observed.expectations, rng);
    s.plan
}

/// Deletes a finished Job whose `ttlSecondsAfterFinished` passed, or asks
/// to look again when it will.
fn plan_ttl(job: &Job, now: DateTime<Utc>, plan: &mut Plan) {
    let Some(ttl) = job.spec.ttl_seconds_after_finished else {
        return;
    };
    if job.metadata.deletion_timestamp.is_some() {
        return;
    }
    let finished_at = job
        .status
        .completion_time
        .filter(|_| job.has_condition(COMPLETE))
        .or_else(|| {
            job.status
                .conditions
                .iter()
                .find(|c| (c.type_ == COMPLETE || c.type_ == FAILED) && c.status == "True")
                .and_then(|c| c.last_transition_time)
        });
    let Some(finished_at) = finished_at else {
        return;
    };
    let Some(expire) = finished_at
        .0
        .checked_add_signed(Duration::seconds(i64::from(ttl.max(0))))
    else {
        return;
    };
    if now < expire {
        plan.requeue((expire - now).to_std().unwrap_or_default());
        return;
    }
    plan.actions.push(Action::Delete {
        target: ObjectRef::of(job),
        preconditions: Preconditions {
            uid: job.metadata.uid.clone(),
            resource_version: job.metadata.resource_version.clone(),
        },
        propagation: Some(Propagation::Foreground),
        reason: "ttl after finished",
        event: None,
    });
}

/// What managing the pods did.
struct Managed {
    /// Active pods after the planned calls.
    active: usize,
    /// Pods deleted (they are terminating now).
    removed: usize,
    removed_ready: usize,
    expectations: Option<Expectations>,
}

/// The working state of one planning.
struct JobSync<'a> {
    job: &'a Job,
    subject: ObjectRef,
    now: DateTime<Utc>,
    /// The status as this plan leaves it.
    status: JobStatus,
    plan: Plan,
}

impl JobSync<'_> {
    fn completions(&self) -> i64 {
        i64::from(self.job.spec.completions.unwrap_or(0).max(0))
    }

    fn sync(
        &mut self,
        pods: &[&Pod],
        in_namespace: &[&Pod],
        expectations: Option<&Expectations>,
        rng: &mut impl Rng,
    ) {
        let job = self.job;
        let now = self.now;
        let uncounted = self
            .status
            .uncounted_terminated_pods
            .clone()
            .unwrap_or_default();
        let (unc_succ, unc_fail): (BTreeSet<&str>, BTreeSet<&str>) = (
            uncounted.succeeded.iter().map(String::as_str).collect(),
            uncounted.failed.iter().map(String::as_str).collect(),
        );
        let active: Vec<&Pod> = pods.iter().copied().filter(|p| is_active(p)).collect();
        let mut n_active = active.len();
        let mut ready = active.iter().filter(|p| pod_ready(p)).count();
        let mut terminating = pods.iter().filter(|p| is_terminating(p)).count();
        let valid_index =
            |p: &Pod| !indexed(job) || completion_index(p).is_some_and(|i| i < self.completions());
        let new_finished = |f: &dyn Fn(&Pod) -> bool, counted: &BTreeSet<&str>| -> Vec<&Pod> {
            pods.iter()
                .copied()
                .filter(|p| {
                    has_finalizer(p)
                        && !counted.contains(p.metadata.uid.as_str())
                        && valid_index(p)
                        && f(p)
                })
                .collect()
        };
        let new_succeeded = new_finished(&|p| p.status.phase == "Succeeded", &unc_succ);
        let new_failed = new_finished(&|p| is_failed(p, job), &unc_fail);
        let policy = job.spec.pod_failure_policy.as_ref();
        let counted_failures = new_failed
            .iter()
            .filter(|p| match_policy(policy, p).counts)
            .count();
        let mut succeeded =
            i64::from(self.status.succeeded) + len64(new_succeeded.len()) + len64(unc_succ.len());
        let failed =
            i64::from(self.status.failed) + len64(counted_failures) + len64(unc_fail.len());

        if self.status.start_time.is_none() && !suspended(job) {
            self.status.start_time = Some(time(now));
        }

        // 3. Has the Job failed (or succeeded before)?
        let mut finished = self.prior_outcome();
        if finished.is_none()
            && let Some(msg) = pods
                .iter()
                .filter(|p| p.status.phase == "Failed")
                .find_map(|p| match_policy(policy, p).fail_job)
        {
            finished = Some(new_condition(
                FAILURE_TARGET,
                "True",
                REASON_POD_FAILURE_POLICY,
                &msg,
                now,
            ));
        }
        if finished.is_none() {
            let limit = i64::from(job.spec.backoff_limit.unwrap_or(6));
            if failed > limit || past_backoff_limit_on_failure(job, pods) {
                finished = Some(new_condition(
                    FAILURE_TARGET,
                    "True",
                    REASON_BACKOFF_LIMIT_EXCEEDED,
                    "Job has reached the specified backoff limit",
                    now,
                ));
            } else if let Some(left) = self.deadline_left() {
                if left <= Duration::zero() {
                    finished = Some(new_condition(
                        FAILURE_TARGET,
                        "True",
                        REASON_DEADLINE_EXCEEDED,
                        "Job was active longer than specified deadline",
                        now,
                    ));
                } else {
                    self.plan.requeue(left.to_std().unwrap_or_default());
                }
            }
        }
        let mut succeeded_indexes = Indexes::default();
        let mut prev_indexes = Indexes::default();
        if indexed(job) {
            prev_indexes = Indexes::parse(&self.status.completed_indexes, self.completions());
            succeeded_indexes = prev_indexes.clone();
            for p in pods
                .iter()
                .filter(|p| p.status.phase == "Succeeded" && has_finalizer(p))
            {
                if let Some(i) = completion_index(p).filter(|i| *i < self.completions()) {
                    succeeded_indexes.insert(i);
                }
            }
            succeeded = succeeded_indexes.total();
        }

        let mut expectations = expectations.cloned().unwrap_or_default();
        expectations.observe(in_namespace.iter().copied());
        if finished.is_some() {
            // Stop what still runs; the pods are counted as failed below.
            for p in &active {
                self.plan.actions.push(self.delete(p, "job finished"));
            }
            ready = 0;
            terminating += n_active;
            n_active = 0;
        } else {
            let mut managed = false;
            if expectations.satisfied(now) && self.job.metadata.deletion_timestamp.is_none() {
                let m = self.manage(
                    &active,
                    pods,
                    succeeded,
                    &succeeded_indexes,
                    terminating,
                    in_namespace,
                    rng,
                );
                if let Some(e) = m.expectations {
                    expectations = e;
                }
                terminating += m.removed;
                ready = ready.saturating_sub(m.removed_ready);
                n_active = m.active;
                managed = true;
            } else if let Some(left) = expectations.expires_in(now) {
                self.plan.requeue(left.to_std().unwrap_or_default());
            }
            let complete = match job.spec.completions {
                None => succeeded > 0 && n_active == 0,
                Some(c) => succeeded >= i64::from(c) && n_active == 0,
            };
            if complete {
                finished = Some(new_condition(
                    SUCCESS_CRITERIA_MET,
                    "True",
                    REASON_COMPLETIONS_REACHED,
                    "Reached expected number of succeeded pods",
                    now,
                ));
            } else if managed {
                self.suspend_conditions();
            }
        }
        self.plan.expectations = Some(expectations);
        self.status.active = i32_of(n_active);
        self.status.ready = Some(i32_of(ready));
        self.status.terminating = Some(i32_of(terminating));
        self.track(
            pods,
            finished,
            &prev_indexes,
            succeeded_indexes,
            terminating,
        );
    }

    /// A condition recorded by an earlier sync that decides the outcome:
    /// SuccessCriteriaMet leads to Complete, FailureTarget to Failed.
    fn prior_outcome(&self) -> Option<JobCondition> {
        let find = |t: &str| {
            self.status
                .conditions
                .iter()
                .find(|c| c.type_ == t && c.status == "True")
        };
        if let Some(c) = find(SUCCESS_CRITERIA_MET) {
            return Some(new_condition(
                COMPLETE, "True", &c.reason, &c.message, self.now,
            ));
        }
        find(FAILURE_TARGET).map(|c| new_condition(FAILED, "True", &c.reason, &c.message, self.now))
    }

    /// Time left before `activeDeadlineSeconds` (negative once past).
    fn deadline_left(&self) -> Option<Duration> {
        let secs = self.job.spec.active_deadline_seconds?;
        if suspended(self.job) {
            return None;
        }
        let start = self.status.start_time?;
        // A deadline beyond what time can represent never passes.
        let end = start.0.checked_add_signed(Duration::try_seconds(secs)?)?;
        Some(end - self.now)
    }

    fn delete(&self, p: &Pod, reason: &'static str) -> Action {
        Action::delete(ObjectRef::of(p), reason)
            .with_event(pod_deleted(&self.subject, &p.metadata.name))
    }

    /// `manageJob`.
    #[allow(clippy::too_many_arguments)]
    fn manage(
        &mut self,
        active: &[&Pod],
        pods: &[&Pod],
        succeeded: i64,
        succeeded_indexes: &Indexes,
        terminating: usize,
        in_namespace: &[&Pod],
        rng: &mut impl Rng,
    ) -> Managed {
        let job = self.job;
        let n_active = active.len();
        let unchanged = Managed {
            active: n_active,
            removed: 0,
            removed_ready: 0,
            expectations: None,
        };
        let parallelism = i64::from(job.spec.parallelism.unwrap_or(1).max(0));
        if suspended(job) {
            return self.remove_pods(active);
        }
        let want = match job.spec.completions {
            None if succeeded > 0 => len64(n_active),
            None => parallelism,
            Some(c) => (i64::from(c) - succeeded).clamp(0, parallelism),
        };
        let excess = usize::try_from((len64(n_active) - want).max(0)).unwrap_or(0);
        let mut victims = pods_for_removal(job, active, excess, self.completions());
        victims.truncate(MAX_POD_CREATE_DELETE_PER_SYNC);
        if !victims.is_empty() {
            let mut m = self.remove_pods(&victims);
            m.active = n_active - victims.len();
            return m;
        }
        let waiting = if only_replace_failed(job) {
            len64(terminating)
        } else {
            0
        };
        let diff = want - waiting - len64(n_active);
        if diff <= 0 {
            return unchanged;
        }
        let wait = backoff_remaining(job, pods, self.now);
        if wait > Duration::zero() {
            self.plan.requeue(wait.to_std().unwrap_or_default());
            return unchanged;
        }
        let mut count = usize::try_from(diff)
            .unwrap_or(0)
            .min(MAX_POD_CREATE_DELETE_PER_SYNC);
        let mut indexes: Vec<Option<i64>> = vec![None; count];
        if indexed(job) {
            let held: BTreeSet<i64> = active.iter().filter_map(|p| completion_index(p)).collect();
            indexes = (0..self.completions())
                .filter(|i| !succeeded_indexes.contains(*i) && !held.contains(i))
                .take(count)
                .map(Some)
                .collect();
            count = indexes.len();
        }
        let mut template = job.spec.template.clone();
        if indexed(job) {
            add_index_env(&mut template);
        }
        if !template
            .metadata
            .finalizers
            .iter()
            .any(|f| f == TRACKING_FINALIZER)
        {
            template.metadata.finalizers.push(TRACKING_FINALIZER.into());
        }
        let mut names: Vec<String> = Vec::new();
        let mut created = Vec::with_capacity(count);
        for index in indexes {
            let mut t = template.clone();
            let prefix = match index {
                Some(i) => {
                    t.metadata
                        .annotations
                        .insert(COMPLETION_INDEX.into(), i.to_string());
                    t.metadata
                        .labels
                        .insert(COMPLETION_INDEX.into(), i.to_string());
                    t.spec.hostname = format!("{}-{i}", job.metadata.name);
                    index_prefix(&job.metadata.name, i)
                }
                None => name_prefix(&job.metadata.name),
            };
            let name = generate_name(&prefix, rng, |n| {
                in_namespace.iter().any(|p| p.metadata.name == n) || names.iter().any(|x| x == n)
            });
            names.push(name.clone());
            created.push(pod_from_template(&t, &self.subject, name, prefix));
        }
        if created.is_empty() {
            return unchanged;
        }
        let expectations = Some(Expectations::new(names, [], self.now));
        let active = n_active + created.len();
        self.plan
            .actions
            .push(Action::CreatePods(PodBatch { pods: created }));
        Managed {
            active,
            expectations,
            ..unchanged
        }
    }

    /// `deleteJobPods`: the tracking finalizer comes off first, so pods the
    /// controller removes are not counted as failures.
    fn remove_pods(&mut self, pods: &[&Pod]) -> Managed {
        for p in pods {
            if let Some(patch) = remove_finalizer_patch(&p.metadata, TRACKING_FINALIZER) {
                self.plan.actions.push(Action::Patch {
                    target: ObjectRef::of(*p),
                    patch,
                    event: None,
                });
            }
            let delete = self.delete(p, "too many pods");
            self.plan.actions.push(delete);
        }
        let uids = pods.iter().map(|p| p.metadata.uid.clone());
        Managed {
            active: 0,
            removed: pods.len(),
            removed_ready: pods.iter().filter(|p| pod_ready(p)).count(),
            expectations: Some(Expectations::new([], uids, self.now)),
        }
    }

    /// The Suspended condition and the events for suspending or resuming.
    fn suspend_conditions(&mut self) {
        let now = self.now;
        if suspended(self.job) {
            if ensure_condition(
                &mut self.status.conditions,
                SUSPENDED,
                "True",
                "JobSuspended",
                "Job suspended",
                now,
            ) {
                self.plan.events.push(EventSpec::normal(
                    &self.subject,
                    "Suspended",
                    "Job suspended",
                ));
            }
        } else if ensure_condition(
            &mut self.status.conditions,
            SUSPENDED,
            "False",
            "JobResumed",
            "Job resumed",
            now,
        ) {
            self.plan
                .events
                .push(EventSpec::normal(&self.subject, "Resumed", "Job resumed"));
            // The deadline counts from the resumption.
            self.status.start_time = Some(time(now));
        }
    }

    /// `trackJobStatusAndRemoveFinalizers`, one step per plan: counts
    /// uncounted pods whose finalizer is gone, records newly finished pods
    /// as uncounted and removes their finalizers after the status write,
    /// adds the interim and final conditions.
    fn track(
        &mut self,
        pods: &[&Pod],
        mut finished: Option<JobCondition>,
        prev_indexes: &Indexes,
        mut succeeded_indexes: Indexes,
        terminating: usize,
    ) {
        let job = self.job;
        let now = self.now;
        let with_finalizer: BTreeSet<&str> = pods
            .iter()
            .filter(|p| has_finalizer(p))
            .map(|p| p.metadata.uid.as_str())
            .collect();
        let mut uncounted = self
            .status
            .uncounted_terminated_pods
            .clone()
            .unwrap_or_default();
        // Uids whose pod lost its finalizer (or is gone) are counted now.
        let before = (uncounted.succeeded.len(), uncounted.failed.len());
        uncounted
            .succeeded
            .retain(|u| with_finalizer.contains(u.as_str()));
        uncounted
            .failed
            .retain(|u| with_finalizer.contains(u.as_str()));
        self.status.succeeded = self
            .status
            .succeeded
            .saturating_add(i32_of(before.0 - uncounted.succeeded.len()));
        self.status.failed = self
            .status
            .failed
            .saturating_add(i32_of(before.1 - uncounted.failed.len()));
        let (unc_succ, unc_fail): (BTreeSet<String>, BTreeSet<String>) = (
            uncounted.succeeded.iter().cloned().collect(),
            uncounted.failed.iter().cloned().collect(),
        );
        let failure_decided = finished
            .as_ref()
            .is_some_and(|c| c.type_ != SUCCESS_CRITERIA_MET && c.type_ != COMPLETE);
        let mut remove = Vec::new();
        let mut sorted = pods.to_vec();
        if indexed(job) {
            sorted.sort_by_key(|p| completion_index(p).unwrap_or(-1));
        }
        let mut reached_max = false;
        for p in sorted.into_iter().filter(|p| has_finalizer(p)) {
            let failed = is_failed(p, job);
            let removable = job.metadata.deletion_timestamp.is_some()
                || finished.is_some()
                || p.status.phase == "Succeeded"
                || failed;
            if !removable {
                continue;
            }
            remove.push(p);
            let uid = &p.metadata.uid;
            let in_range = |i: i64| i < self.completions();
            if p.status.phase == "Succeeded" && !unc_fail.contains(uid) {
                if indexed(job) {
                    if let Some(i) =
                        completion_index(p).filter(|i| in_range(*i) && !prev_indexes.contains(*i))
                    {
                        succeeded_indexes.insert(i);
                    }
                } else if !unc_succ.contains(uid) {
                    uncounted.succeeded.push(uid.clone());
                }
            } else if (failed || failure_decided)
                && !unc_fail.contains(uid)
                && (!indexed(job) || completion_index(p).is_some_and(in_range))
                && match_policy(job.spec.pod_failure_policy.as_ref(), p).counts
            {
                uncounted.failed.push(uid.clone());
            }
            if uncounted.succeeded.len() + uncounted.failed.len() >= MAX_UNCOUNTED_PODS {
                reached_max = true;
                break;
            }
        }
        if indexed(job) {
            self.status.completed_indexes = succeeded_indexes.to_string();
            self.status.succeeded = i32::try_from(succeeded_indexes.total()).unwrap_or(i32::MAX);
        }
        self.status.uncounted_terminated_pods = Some(uncounted.clone());
        // Interim conditions first: they are written before pods go.
        if let Some(c) = &finished
            && c.type_ == FAILURE_TARGET
        {
            self.status.conditions.push(c.clone());
            finished = Some(new_condition(FAILED, "True", &c.reason, &c.message, now));
        }
        if let Some(c) = &finished
            && c.type_ == SUCCESS_CRITERIA_MET
        {
            if !self
                .status
                .conditions
                .iter()
                .any(|x| x.type_ == SUCCESS_CRITERIA_MET && x.status == "True")
            {
                self.status.conditions.push(c.clone());
            }
            finished = Some(new_condition(COMPLETE, "True", &c.reason, &c.message, now));
        }
        // The final condition once nothing is uncounted or terminating.
        if let Some(c) = finished
            && !reached_max
            && uncounted.succeeded.is_empty()
            && uncounted.failed.is_empty()
            && terminating == 0
        {
            ensure_condition(
                &mut self.status.conditions,
                &c.type_,
                &c.status,
                &c.reason,
                &c.message,
                now,
            );
            if c.type_ == COMPLETE {
                self.status.completion_time = Some(time(now));
                if job
                    .spec
                    .completions
                    .is_some_and(|n| self.status.succeeded > n)
                {
                    self.plan.events.push(EventSpec::warning(
                        &self.subject,
                        "TooManySucceededPods",
                        "Too many succeeded pods running after completion count reached",
                    ));
                }
                self.plan.events.push(EventSpec::normal(
                    &self.subject,
                    "Completed",
                    "Job completed",
                ));
            } else {
                self.plan.events.push(EventSpec::warning(
                    &self.subject,
                    &c.reason,
                    c.message.clone(),
                ));
            }
        }
        if self.status != job.status {
            let mut copy = job.clone();
            copy.status = self.status.clone();
            // The status (with the uncounted pods) goes first: only then
            // may finalizers be removed.
            let at = self
                .plan
                .actions
                .iter()
                .position(|a| matches!(a, Action::Patch { target, patch, .. }
                    if target.kind == "Pod" && patch.finalizers.is_some() && patch.owner_references.is_none()))
                .unwrap_or(self.plan.actions.len());
            self.plan.actions.insert(
                at,
                Action::UpdateStatus {
                    object: copy.into(),
                },
            );
        }
        for p in remove {
            if let Some(patch) = remove_finalizer_patch(&p.metadata, TRACKING_FINALIZER)
                && !self.plan.actions.iter().any(|a| matches!(a, Action::Patch { target, .. } if target.uid == p.metadata.uid && target.kind == "Pod"))
            {
                self.plan.actions.push(Action::Patch {
                    target: ObjectRef::of(p),
                    patch,
                    event: None,
                });
            }
        }
        if let Some(ttl) = job.spec.ttl_seconds_after_finished
            && self
                .status
                .conditions
                .iter()
                .any(|c| (c.type_ == COMPLETE || c.type_ == FAILED) && c.status == "True")
        {
            self.plan.requeue(super::plan::secs(i64::from(ttl)));
        }
    }
}

/// `pastBackoffLimitOnFailure`: with `restartPolicy: OnFailure`, container
/// restarts of running pods count as failures.
fn past_backoff_limit_on_failure(job: &Job, pods: &[&Pod]) -> bool {
    if job.spec.template.spec.restart_policy != "OnFailure" {
        return false;
    }
    let restarts: i64 = pods
        .iter()
        .filter(|p| matches!(p.status.phase.as_str(), "Running" | "Pending"))
        .flat_map(|p| {
            p.status
                .init_container_statuses
                .iter()
                .chain(&p.status.container_statuses)
        })
        .map(|c| i64::from(c.restart_count))
        .sum();
    let limit = i64::from(job.spec.backoff_limit.unwrap_or(6));
    if limit == 0 {
        restarts > 0
    } else {
        restarts >= limit
    }
}

/// `activePodsForRemoval`: for Indexed Jobs pods without a valid index and
/// all but one pod per index first, then the least valuable pods.
fn pods_for_removal<'a>(
    job: &Job,
    active: &[&'a Pod],
    at_least: usize,
    completions: i64,
) -> Vec<&'a Pod> {
    let mut rm: Vec<&'a Pod> = Vec::new();
    let mut left: Vec<&'a Pod> = Vec::new();
    if indexed(job) {
        let mut by_index: BTreeMap<Option<i64>, Vec<&'a Pod>> = BTreeMap::new();
        for p in active {
            by_index.entry(completion_index(p)).or_default().push(p);
        }
        for (index, pods) in by_index {
            match index {
                Some(i) if i < completions => {
                    let mut ordered = active_pods_order(&pods);
                    // Keep the most advanced pod of the index.
                    if let Some(keep) = ordered.pop() {
                        left.push(keep);
                    }
                    rm.extend(ordered);
                }
                _ => rm.extend(pods),
            }
        }
    } else {
        left = active.to_vec();
    }
    if rm.len() < at_least {
        let ordered = active_pods_order(&left);
        rm.extend(ordered.into_iter().take(at_least - rm.len()));
    }
    rm
}

/// Adds `JOB_COMPLETION_INDEX` (from the index annotation) to every
/// container that does not set it.
fn add_index_env(t: &mut crate::api::core::PodTemplateSpec) {
    let var = EnvVar {
        name: COMPLETION_INDEX_ENV.into(),
        value: String::new(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                api_version: "v1".into(),
                field_path: format!("metadata.annotations['{COMPLETION_INDEX}']"),
            }),
            ..Default::default()
        }),
    };
    for c in t
        .spec
        .init_containers
        .iter_mut()
        .chain(&mut t.spec.containers)
    {
        if !c.env.iter().any(|e| e.name == COMPLETION_INDEX_ENV) {
            c.env.push(var.clone());
        }
    }
}

/// `podGenerateNameWithIndex`: `<job>-<index>-`, the Job name cut so the
/// result leaves room for the random suffix.
fn index_prefix(job: &str, index: i64) -> String {
    let suffix = format!("-{index}-");
    let mut name = job.to_string();
    let room = MAX_GENERATED_PREFIX_LEN.saturating_sub(suffix.len());
    if name.len() > room {
        let mut cut = room;
        while !name.is_char_boundary(cut) {
            cut -= 1;
        }
        name.truncate(cut);
    }
    format!("{name}{suffix}")
}

fn len64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn i32_of(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests;
