//! The CronJob controller (Kubernetes' `cronjob_controllerv2.go`).
//!
//! One planning ([`plan`]):
//! 1. deletes the oldest finished Jobs beyond `successfulJobsHistoryLimit`
//!    and `failedJobsHistoryLimit` (by start time);
//! 2. reconciles `status.active` with the Jobs it controls: finished ones
//!    leave it (`SawCompletedJob`), missing ones too (`MissingJob`), and
//!    running ones it created join it. Kubernetes adds a Job to the list
//!    right after creating it, with the uid the create returned; here the
//!    create is planned without a uid, so the Job joins the list in the
//!    next plan, when the snapshot shows it. The schedule is marked as
//!    handled (`lastScheduleTime`) in the plan that creates the Job, and the
//!    deterministic Job name (`<cronjob>-<scheduled minutes since epoch>`)
//!    keeps a retried plan from creating it twice;
//!    `lastSuccessfulTime` follows the latest completion;
//! 3. unless suspended or being deleted, finds the latest scheduled time
//!    not yet handled (`CronJob::missed_runs` since the last schedule,
//!    and no older than `startingDeadlineSeconds`, so a run whose deadline
//!    passed is never started); more than 100 missed runs give a
//!    `TooManyMissedTimes` warning and only the most recent one runs;
//! 4. applies `concurrencyPolicy`: Allow runs Jobs side by side, Forbid
//!    skips the run while one is active (`JobAlreadyActive`), Replace
//!    deletes the active Jobs first;
//! 5. asks to be planned again 100 ms after the next scheduled time.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::api::ObjectMeta;
use crate::api::batch::{CronJob, CronJobStatus, Job};
use crate::api::core::ObjectReference;

use super::events::EventSpec;
use super::plan::{Action, ObjectRef, Plan, Propagation};
use super::pods::time;

/// The annotation on a CronJob's Jobs with their scheduled time (RFC 3339,
/// in the CronJob's time zone).
pub const SCHEDULED_TIMESTAMP_ANNOTATION: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";
/// How many missed runs are still counted.
pub const TOO_MANY_MISSED: u32 = crate::api::batch::MISSED_RUNS_LIMIT;
/// Delay after a scheduled time before planning again, so the schedule
/// has surely passed.
const NEXT_SCHEDULE_DELTA: Duration = Duration::from_millis(100);

/// What the controller sees besides the CronJob.
#[derive(Clone, Copy, Debug)]
pub struct Observed<'a> {
    /// Every Job of the CronJob's namespace.
    pub jobs: &'a [Job],
    pub now: DateTime<Utc>,
}

/// `getJobName`: `<cronjob>-<scheduled time in minutes since the epoch>`.
pub fn job_name(cj: &CronJob, scheduled: DateTime<Utc>) -> String {
    format!(
        "{}-{}",
        cj.metadata.name,
        scheduled.timestamp().div_euclid(60)
    )
}

/// `Complete` or `Failed`, if the Job finished.
fn finished(j: &Job) -> Option<&'static str> {
    j.finished()
}

fn job_ref(j: &Job) -> ObjectReference {
    ObjectReference {
        kind: "Job".into(),
        namespace: j.metadata.namespace.clone(),
        name: j.metadata.name.clone(),
        uid: j.metadata.uid.clone(),
        api_version: "batch/v1".into(),
        resource_version: j.metadata.resource_version.clone(),
        field_path: String::new(),
    }
}

/// The scheduled time written in a Job's annotation.
fn scheduled_annotation(cj: &CronJob, scheduled: DateTime<Utc>) -> String {
    let zone = cj
        .spec
        .time_zone
        .as_deref()
        .and_then(|tz| crate::api::cron::parse_time_zone(tz).ok());
    match zone {
        Some(tz) => scheduled
            .with_timezone(&tz)
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        None => scheduled.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    }
}

/// `getJobFromTemplate2`: the Job for the run at `scheduled`.
pub fn job_for(cj: &CronJob, scheduled: DateTime<Utc>) -> Job {
    let t = &cj.spec.job_template;
    let mut annotations = t.metadata.annotations.clone();
    annotations.insert(
        SCHEDULED_TIMESTAMP_ANNOTATION.into(),
        scheduled_annotation(cj, scheduled),
    );
    Job {
        metadata: ObjectMeta {
            name: job_name(cj, scheduled),
            namespace: cj.metadata.namespace.clone(),
            labels: t.metadata.labels.clone(),
            annotations,
            owner_references: vec![ObjectRef::of(cj).controller_ref()],
            ..Default::default()
        },
        spec: t.spec.clone(),
        ..Default::default()
    }
}

/// Plans one sync of `cj`.
pub fn plan(cj: &CronJob, observed: &Observed) -> Plan {
    let subject = ObjectRef::of(cj);
    let now = observed.now;
    let mut plan = Plan::new(subject.clone());
    let mut status = cj.status.clone();
    let jobs: Vec<&Job> = observed
        .jobs
        .iter()
        .filter(|j| j.metadata.namespace == cj.metadata.namespace)
        .filter(|j| {
            j.metadata
                .controller_ref()
                .is_some_and(|r| r.uid == subject.uid)
        })
        .collect();

    // 1. History limits.
    let mut deleted: BTreeSet<&str> = BTreeSet::new();
    for (kind, limit) in [
        ("Complete", cj.spec.successful_jobs_history_limit),
        ("Failed", cj.spec.failed_jobs_history_limit),
    ] {
        let Some(limit) = limit else {
            continue;
        };
        let mut done: Vec<&Job> = jobs
            .iter()
            .copied()
            .filter(|j| finished(j) == Some(kind))
            .collect();
        let extra = done
            .len()
            .saturating_sub(usize::try_from(limit.max(0)).unwrap_or(0));
        // Oldest start first; Jobs that never started last.
        done.sort_by(|a, b| {
            let key = |j: &Job| (j.status.start_time.is_none(), j.status.start_time);
            key(a)
                .cmp(&key(b))
                .then_with(|| a.metadata.name.cmp(&b.metadata.name))
        });
        for j in done.into_iter().take(extra) {
            plan.actions.push(delete_job(&subject, j));
            status.active.retain(|r| r.uid != j.metadata.uid);
            deleted.insert(j.metadata.uid.as_str());
        }
    }

    // 2. The active list.
    for j in &jobs {
        let listed = status.active.iter().any(|r| r.uid == j.metadata.uid);
        match (listed, finished(j)) {
            (false, None) => {
                if !j
                    .metadata
                    .annotations
                    .contains_key(SCHEDULED_TIMESTAMP_ANNOTATION)
                {
                    plan.events.push(EventSpec::warning(
                        &subject,
                        "UnexpectedJob",
                        format!(
                            "Saw a job that the controller did not create or forgot: {}",
                            j.metadata.name
                        ),
                    ));
                }
                status.active.push(job_ref(j));
            }
            (true, Some(condition)) => {
                status.active.retain(|r| r.uid != j.metadata.uid);
                plan.events.push(EventSpec::normal(
                    &subject,
                    "SawCompletedJob",
                    format!(
                        "Saw completed job: {}, condition: {condition}",
                        j.metadata.name
                    ),
                ));
            }
            _ => {}
        }
        if finished(j) == Some("Complete")
            && let Some(done) = j.status.completion_time
            && status.last_successful_time.is_none_or(|t| done > t)
        {
            status.last_successful_time = Some(done);
        }
    }
    let uids: BTreeSet<&str> = jobs.iter().map(|j| j.metadata.uid.as_str()).collect();
    status.active.retain(|r| {
        let present = uids.contains(r.uid.as_str()) && !deleted.contains(r.uid.as_str());
        if !present && !deleted.contains(r.uid.as_str()) {
            plan.events.push(EventSpec::normal(
                &subject,
                "MissingJob",
                format!("Active job went missing: {}", r.name),
            ));
        }
        present
    });

    schedule(cj, &jobs, &mut status, now, &mut plan);
    if status != cj.status {
        let mut copy = cj.clone();
        copy.status = status;
        plan.actions.push(Action::UpdateStatus {
            object: copy.into(),
        });
    }
    plan
}

fn delete_job(subject: &ObjectRef, j: &Job) -> Action {
    let mut a = Action::delete(ObjectRef::of(j), "history limit").with_event(EventSpec::normal(
        subject,
        "SuccessfulDelete",
        format!("Deleted job {}", j.metadata.name),
    ));
    if let Action::Delete { propagation, .. } = &mut a {
        *propagation = Some(Propagation::Background);
    }
    a
}

/// Steps 3 to 5: whether to start a Job now, and when to look again.
fn schedule(
    cj: &CronJob,
    jobs: &[&Job],
    status: &mut CronJobStatus,
    now: DateTime<Utc>,
    plan: &mut Plan,
) {
    let subject = plan.subject.clone();
    if cj.metadata.deletion_timestamp.is_some() {
        return;
    }
    if let Some(tz) = &cj.spec.time_zone
        && let Err(e) = crate::api::cron::parse_time_zone(tz)
    {
        plan.events.push(EventSpec::warning(
            &subject,
            "UnknownTimeZone",
            format!("invalid timeZone: {tz:?}: {e}"),
        ));
        return;
    }
    if cj.spec.suspend == Some(true) {
        return;
    }
    if let Err(e) = cj.schedule() {
        plan.events.push(EventSpec::warning(
            &subject,
            "UnparseableSchedule",
            format!("unparseable schedule: {:?} : {e}", cj.spec.schedule),
        ));
        return;
    }
    let created = cj.metadata.creation_timestamp.map_or(now, |t| t.0);
    let last = status.last_schedule_time.map_or(created, |t| t.0);
    let mut earliest = last;
    if let Some(since) = cj
        .spec
        .starting_deadline_seconds
        .and_then(chrono::Duration::try_seconds)
        .and_then(|d| now.checked_sub_signed(d))
    {
        earliest = earliest.max(since);
    }
    let requeue = |plan: &mut Plan, from: DateTime<Utc>| {
        if let Ok(Some(next)) = cj.next_run_after(from.max(now)) {
            let wait = (next - now).to_std().unwrap_or_default();
            plan.requeue(wait + NEXT_SCHEDULE_DELTA);
        }
    };
    let missed = match cj.missed_runs(earliest, now) {
        Ok(m) => m,
        Err(e) => {
            plan.events.push(EventSpec::warning(
                &subject,
                "InvalidSchedule",
                format!("invalid schedule: {} : {e}", cj.spec.schedule),
            ));
            return;
        }
    };
    let Some(scheduled) = missed.most_recent else {
        requeue(plan, last);
        return;
    };
    if missed.too_many(TOO_MANY_MISSED) {
        plan.events.push(EventSpec::warning(
            &subject,
            "TooManyMissedTimes",
            "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check clock skew",
        ));
    }
    let name = job_name(cj, scheduled);
    let handled = status.last_schedule_time == Some(time(scheduled))
        || status.active.iter().any(|r| r.name == name)
        || jobs.iter().any(|j| j.metadata.name == name);
    if handled {
        requeue(plan, scheduled);
        return;
    }
    match cj.spec.concurrency_policy.as_str() {
        "Forbid" if !status.active.is_empty() => {
            plan.events.push(EventSpec::normal(
                &subject,
                "JobAlreadyActive",
                "Not starting job because prior execution is running and concurrency policy is Forbid",
            ));
            requeue(plan, scheduled);
            return;
        }
        "Replace" => {
            for r in std::mem::take(&mut status.active) {
                if let Some(j) = jobs.iter().find(|j| j.metadata.uid == r.uid) {
                    plan.actions.push(delete_job(&subject, j));
                }
            }
        }
        _ => {}
    }
    let job = job_for(cj, scheduled);
    let event = EventSpec::normal(
        &subject,
        "SuccessfulCreate",
        format!("Created job {}", job.metadata.name),
    );
    plan.actions.push(Action::Create {
        object: job.into(),
        event: Some(event),
    });
    status.last_schedule_time = Some(time(scheduled));
    requeue(plan, scheduled);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::batch::JobCondition;
    use crate::controllers::plan::Object;
    use crate::controllers::sim::{World, epoch};
    use serde_json::json;

    fn hello(extra: serde_json::Value) -> CronJob {
        let mut spec = json!({
            "schedule": "*/5 * * * *",
            "jobTemplate": {
                "metadata": {"labels": {"team": "a"}},
                "spec": {"template": {"spec": {"restartPolicy": "OnFailure", "containers": [{"name": "c", "image": "hello:1"}]}}}
            }
        });
        if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                s.insert(k.clone(), v.clone());
            }
        }
        serde_json::from_value(
            json!({"metadata": {"name": "hello", "namespace": "default"}, "spec": spec}),
        )
        .unwrap()
    }

    fn world(extra: serde_json::Value) -> World {
        let mut w = World::new();
        w.create(hello(extra)).unwrap();
        w
    }

    fn sync(w: &mut World) -> Plan {
        let cj = w.cron_job("hello").unwrap();
        let jobs = w.jobs();
        let plan = plan(
            &cj,
            &Observed {
                jobs: &jobs,
                now: w.now,
            },
        );
        let _ = w.apply(&plan);
        plan
    }

    /// Seconds since the epoch until `hh:mm` of the epoch's day.
    fn until(hh: i64, mm: i64) -> i64 {
        let day = epoch().timestamp() - epoch().timestamp().rem_euclid(86_400);
        day + hh * 3600 + mm * 60 - epoch().timestamp()
    }

    fn finish(w: &mut World, name: &str, kind: &str) {
        let now = time(w.now);
        w.edit("Job", "default", name, |j: &mut Job| {
            j.status.start_time.get_or_insert(now);
            j.status.conditions.push(JobCondition {
                type_: kind.into(),
                status: "True".into(),
                ..Default::default()
            });
            if kind == "Complete" {
                j.status.completion_time = Some(now);
            }
        })
        .unwrap();
    }

    fn created(plan: &Plan) -> Vec<String> {
        plan.actions
            .iter()
            .filter_map(|a| match a {
                Action::Create {
                    object: Object::Job(j),
                    ..
                } => Some(j.metadata.name.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn runs_on_schedule() {
        // Created at 22:13:20; the first run is 22:15.
        let mut w = world(json!({}));
        let plan = sync(&mut w);
        assert!(created(&plan).is_empty());
        assert_eq!(plan.requeue_after, Some(Duration::from_millis(100_100)));
        w.advance(until(22, 15) + 30);
        let plan = sync(&mut w);
        let run = epoch() + chrono::Duration::seconds(until(22, 15));
        let name = format!("hello-{}", run.timestamp() / 60);
        assert_eq!(created(&plan), std::slice::from_ref(&name));
        let Action::Create {
            object: Object::Job(j),
            event,
        } = &plan.actions[0]
        else {
            panic!()
        };
        assert_eq!(
            j.metadata
                .annotations
                .get(SCHEDULED_TIMESTAMP_ANNOTATION)
                .map(String::as_str),
            Some("2023-11-14T22:15:00Z")
        );
        assert_eq!(j.metadata.labels.get("team").map(String::as_str), Some("a"));
        assert_eq!(j.metadata.owner_references[0].kind, "CronJob");
        assert_eq!(
            event.as_ref().unwrap().message,
            format!("Created job {name}")
        );
        // 22:20:00.1 is next.
        assert_eq!(plan.requeue_after, Some(Duration::from_millis(270_100)));
        let cj = w.cron_job("hello").unwrap();
        assert_eq!(cj.status.last_schedule_time, Some(time(run)));
        // The next plan lists the Job as active and does not run again.
        let plan = sync(&mut w);
        assert!(created(&plan).is_empty());
        let cj = w.cron_job("hello").unwrap();
        assert_eq!(
            cj.status
                .active
                .iter()
                .map(|r| r.name.as_str())
                .collect::<Vec<_>>(),
            [name.as_str()]
        );
        // It completes.
        finish(&mut w, &name, "Complete");
        let plan = sync(&mut w);
        assert!(plan.events.iter().any(|e| e.reason == "SawCompletedJob"
            && e.message == format!("Saw completed job: {name}, condition: Complete")));
        let cj = w.cron_job("hello").unwrap();
        assert!(cj.status.active.is_empty());
        assert!(cj.status.last_successful_time.is_some());
    }

    #[test]
    fn concurrency_policies() {
        // (policy, Jobs left, Jobs deleted, run skipped)
        let cases = [
            ("Allow", 2, 0, false),
            ("Forbid", 1, 0, true),
            ("Replace", 1, 1, false),
        ];
        for (policy, jobs_after, deletes, skipped) in cases {
            let mut w = world(json!({"concurrencyPolicy": policy}));
            w.advance(until(22, 15));
            sync(&mut w);
            sync(&mut w);
            // The first Job still runs at the next schedule.
            w.advance(300);
            let plan = sync(&mut w);
            assert_eq!(w.jobs().len(), jobs_after, "{policy}");
            assert_eq!(plan.deleted().count(), deletes, "{policy}");
            assert_eq!(
                plan.events.iter().any(|e| e.reason == "JobAlreadyActive"),
                skipped,
                "{policy}"
            );
        }
    }

    #[test]
    fn starting_deadline_and_missed_runs() {
        // The controller was away for 30 s after 22:15 with a 10 s deadline:
        // that run is dropped, the next one is awaited.
        let mut w = world(json!({"startingDeadlineSeconds": 10}));
        w.advance(until(22, 15) + 30);
        let plan = sync(&mut w);
        assert!(created(&plan).is_empty());
        assert_eq!(plan.requeue_after, Some(Duration::from_millis(270_100)));
        // Within the deadline it runs.
        let mut w = world(json!({"startingDeadlineSeconds": 60}));
        w.advance(until(22, 15) + 30);
        assert_eq!(created(&sync(&mut w)).len(), 1);
        // Away for a day without a deadline: one Job, for the latest run.
        let mut w = world(json!({}));
        w.advance(86_400);
        let plan = sync(&mut w);
        assert!(plan.events.iter().any(|e| e.reason == "TooManyMissedTimes"));
        let latest = (w.now.timestamp() / 300) * 300;
        assert_eq!(created(&plan), [format!("hello-{}", latest / 60)]);
        // Absurd deadlines are harmless.
        let mut w = world(json!({"startingDeadlineSeconds": i64::MAX}));
        w.advance(until(22, 15));
        assert_eq!(created(&sync(&mut w)).len(), 1);
        // A deadline bounds the missed runs considered: no warning.
        let mut w = world(json!({"startingDeadlineSeconds": 200}));
        w.advance(86_400);
        let plan = sync(&mut w);
        assert!(!plan.events.iter().any(|e| e.reason == "TooManyMissedTimes"));
    }

    #[test]
    fn suspended_and_invalid() {
        let mut w = world(json!({"suspend": true}));
        w.advance(until(22, 15) + 1);
        let p = sync(&mut w);
        assert!(p.actions.is_empty() && p.requeue_after.is_none());
        let mut bad = hello(json!({"timeZone": "Mars/Olympus"}));
        bad.metadata.creation_timestamp = Some(time(epoch()));
        let p = plan(
            &bad,
            &Observed {
                jobs: &[],
                now: epoch(),
            },
        );
        assert_eq!(p.events[0].reason, "UnknownTimeZone");
        let mut bad = hello(json!({"schedule": "nope"}));
        bad.metadata.creation_timestamp = Some(time(epoch()));
        let p = plan(
            &bad,
            &Observed {
                jobs: &[],
                now: epoch(),
            },
        );
        assert_eq!(p.events[0].reason, "UnparseableSchedule");
    }

    #[test]
    fn time_zones_shape_the_annotation() {
        let mut w = world(json!({"timeZone": "Europe/Berlin", "schedule": "15 23 * * *"}));
        // 23:15 in Berlin (UTC+1 in November) is 22:15 UTC.
        w.advance(until(22, 15) + 1);
        let plan = sync(&mut w);
        let Some(Action::Create {
            object: Object::Job(j),
            ..
        }) = plan.actions.first()
        else {
            panic!("{:?}", plan.actions);
        };
        assert_eq!(
            j.metadata
                .annotations
                .get(SCHEDULED_TIMESTAMP_ANNOTATION)
                .map(String::as_str),
            Some("2023-11-14T23:15:00+01:00")
        );
    }

    #[test]
    fn history_limits_delete_the_oldest() {
        let mut w = world(json!({"successfulJobsHistoryLimit": 2, "failedJobsHistoryLimit": 1}));
        let mut names = Vec::new();
        let mut deleted = Vec::new();
        let record = |plan: &Plan, deleted: &mut Vec<String>| {
            deleted.extend(plan.deleted().map(|r| r.name.clone()));
        };
        for i in 0..5 {
            w.advance(if i == 0 { until(22, 15) } else { 300 });
            record(&sync(&mut w), &mut deleted);
            record(&sync(&mut w), &mut deleted);
            let name = w.cron_job("hello").unwrap().status.active[0].name.clone();
            finish(&mut w, &name, if i < 3 { "Complete" } else { "Failed" });
            names.push(name);
        }
        let last = sync(&mut w);
        record(&last, &mut deleted);
        // Three complete, two kept: the first goes; two failed, one kept.
        assert_eq!(deleted, [names[0].clone(), names[3].clone()]);
        let mut left: Vec<String> = w.jobs().iter().map(|j| j.metadata.name.clone()).collect();
        left.sort();
        assert_eq!(left, [names[1].clone(), names[2].clone(), names[4].clone()]);
        let Some(Action::Delete {
            propagation, event, ..
        }) = last.actions.first()
        else {
            panic!()
        };
        assert_eq!(*propagation, Some(Propagation::Background));
        assert_eq!(
            event.as_ref().unwrap().message,
            format!("Deleted job {}", names[3])
        );
    }

    #[test]
    fn active_list_follows_the_jobs() {
        let mut w = world(json!({}));
        w.advance(until(22, 15));
        sync(&mut w);
        sync(&mut w);
        let name = w.cron_job("hello").unwrap().status.active[0].name.clone();
        // Someone deletes the Job.
        w.apply(&Plan {
            actions: vec![Action::delete(
                ObjectRef::of(&w.job(&name).unwrap()),
                "user",
            )],
            ..Default::default()
        })
        .unwrap();
        let plan = sync(&mut w);
        assert!(
            plan.events.iter().any(|e| e.reason == "MissingJob"
                && e.message == format!("Active job went missing: {name}"))
        );
        assert!(w.cron_job("hello").unwrap().status.active.is_empty());
        // A hand-made Job owned by the CronJob is adopted into the list.
        let cj = w.cron_job("hello").unwrap();
        let mut manual = job_for(&cj, w.now);
        manual.metadata.name = "manual".into();
        manual.metadata.annotations.clear();
        w.create(manual).unwrap();
        let plan = sync(&mut w);
        assert!(plan.events.iter().any(|e| e.reason == "UnexpectedJob"));
        assert_eq!(w.cron_job("hello").unwrap().status.active[0].name, "manual");
    }
}
