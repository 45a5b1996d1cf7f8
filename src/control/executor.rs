//! Carries out controller [`Plan`]s against the in-process API, following
//! the contract in `controllers::plan`: expectations stored before the
//! calls, calls in order stopping at the first failure, slow-start pod
//! batches, resourceVersion chaining, 404 as success for deletes and
//! patches, events recorded (deduplicated) on the side.

use std::collections::HashMap;

use parking_lot::Mutex;
use serde_json::Value;

use crate::api::registry::{DynResource, UpdateScope};
use crate::apiserver::error::{ApiError, ApiResult};
use crate::apiserver::patch::PatchType;
use crate::apiserver::rest::{Api, DeleteOptions, Preconditions, WriteOptions};
use crate::controllers::events::{EventRecorder, EventSpec, EventWrite, failure_event};
use crate::controllers::expectations::Expectations;
use crate::controllers::plan::{Action, Object, ObjectRef, Plan};

/// What a failed plan left behind.
#[derive(Debug)]
pub struct PlanError {
    pub error: ApiError,
    /// Whether the failure was a pod create or delete (controllers that
    /// report `last_error` need to know).
    pub pod_call: bool,
}

/// Executes plans; shared by every controller of one leader term.
pub struct Executor {
    pub api: Api,
    recorder: Mutex<EventRecorder>,
    expectations: Mutex<HashMap<String, Expectations>>,
}

fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(g, _)| g)
}

impl Executor {
    pub fn new(api: Api, host: &str) -> Executor {
        Executor {
            api,
            recorder: Mutex::new(EventRecorder::new(host)),
            expectations: Mutex::new(HashMap::new()),
        }
    }

    fn rt(&self, api_version: &str, kind: &str) -> ApiResult<&'static dyn DynResource> {
        self.api
            .registry
            .by_kind(group_of(api_version), kind)
            .ok_or_else(|| ApiError::internal(format!("no resource for {api_version} {kind}")))
    }

    /// The expectations stored for a subject (`kind/namespace/name`).
    pub fn expectations(&self, key: &str) -> Option<Expectations> {
        self.expectations.lock().get(key).cloned()
    }

    pub fn forget_expectations(&self, key: &str) {
        self.expectations.lock().remove(key);
    }

    fn subject_key(r: &ObjectRef) -> String {
        format!("{}/{}/{}", r.kind, r.namespace, r.name)
    }

    /// Expectations key of a subject.
    pub fn key_for(kind: &str, ns: &str, name: &str) -> String {
        format!("{kind}/{ns}/{name}")
    }

    /// Records an event (fire and forget: an event never fails a plan).
    pub fn record(&self, spec: &EventSpec) {
        let write = self.recorder.lock().record(spec, chrono::Utc::now());
        let api = self.api.clone();
        tokio::spawn(async move {
            let Ok(events) = api.resource("", "v1", "events") else {
                return;
            };
            let opts = WriteOptions::default();
            match write {
                EventWrite::Create(e) => {
                    let ns = e.metadata.namespace.clone();
                    if let Ok(v) = serde_json::to_value(&*e) {
                        let _ = api.create(events, &ns, v, &opts).await;
                    }
                }
                EventWrite::Patch {
                    namespace,
                    name,
                    patch,
                    fallback,
                } => {
                    let r = api
                        .patch(
                            events,
                            &namespace,
                            &name,
                            PatchType::Merge,
                            &patch,
                            UpdateScope::Main,
                            &opts,
                        )
                        .await;
                    if matches!(&r, Err(e) if e.code == 404)
                        && let Ok(v) = serde_json::to_value(&*fallback)
                    {
                        let _ = api.create(events, &namespace, v, &opts).await;
                    }
                }
            }
        });
    }

    /// Carries out `plan`. Returns the plan's requeue delay on success.
    pub async fn execute(&self, mut plan: Plan) -> Result<Option<std::time::Duration>, PlanError> {
        let skey = Self::subject_key(&plan.subject);
        if let Some(e) = plan.expectations.take() {
            self.expectations.lock().insert(skey.clone(), e);
        }
        for e in &plan.events {
            self.record(e);
        }
        // uid -> resourceVersion returned by an earlier write of this plan.
        let mut chained: HashMap<String, String> = HashMap::new();
        let actions = std::mem::take(&mut plan.actions);
        for action in &actions {
            match self.run(action, &mut chained, &skey).await {
                Ok(()) => {
                    for e in action.success_events(&plan.subject) {
                        self.record(&e);
                    }
                }
                Err(error) => {
                    if let Some(e) = failure_event(&plan.subject, action, &error.message) {
                        self.record(&e);
                    }
                    let pod_call = matches!(action, Action::CreatePods(_))
                        || matches!(action, Action::Delete { target, .. } if target.kind == "Pod");
                    if let Action::Delete { target, .. } = action
                        && target.kind == "Pod"
                        && let Some(x) = self.expectations.lock().get_mut(&skey)
                    {
                        x.deletion_failed(&target.uid);
                    }
                    return Err(PlanError { error, pod_call });
                }
            }
        }
        Ok(plan.requeue_after)
    }

    async fn run(
        &self,
        action: &Action,
        chained: &mut HashMap<String, String>,
        skey: &str,
    ) -> ApiResult<()> {
        let opts = WriteOptions::default();
        match action {
            Action::Create { object, .. } => {
                let rt = self.rt(&object.api_version(), object.kind())?;
                let v = object
                    .to_json()
                    .map_err(|e| ApiError::internal(e.to_string()))?;
                let (created, _) = self
                    .api
                    .create(rt, &object.meta().namespace, v, &opts)
                    .await?;
                remember(chained, &created);
                Ok(())
            }
            Action::CreatePods(batch) => {
                let pods = self.rt("v1", "Pod")?;
                let all = batch.batches();
                let opts = &opts;
                for (i, b) in all.iter().enumerate() {
                    let futs = b.iter().map(|p| async move {
                        let v = serde_json::to_value(p)
                            .map_err(|e| ApiError::internal(e.to_string()))?;
                        self.api
                            .create(pods, &p.metadata.namespace, v, opts)
                            .await
                            .map(|_| ())
                    });
                    let results = futures::future::join_all(futs).await;
                    let mut first_err = None;
                    for (p, r) in b.iter().zip(results) {
                        if let Err(e) = r {
                            if let Some(x) = self.expectations.lock().get_mut(skey) {
                                x.creation_failed(&p.metadata.name);
                            }
                            first_err.get_or_insert(e);
                        }
                    }
                    if let Some(e) = first_err {
                        // Skipped batches will not be created either.
                        if let Some(x) = self.expectations.lock().get_mut(skey) {
                            for rest in &all[i + 1..] {
                                for p in *rest {
                                    x.creation_failed(&p.metadata.name);
                                }
                            }
                        }
                        return Err(e);
                    }
                }
                Ok(())
            }
            Action::Update { object, .. } | Action::UpdateStatus { object } => {
                let rt = self.rt(&object.api_version(), object.kind())?;
                let mut v = object
                    .to_json()
                    .map_err(|e| ApiError::internal(e.to_string()))?;
                chain(chained, &mut v);
                let m = object.meta();
                let scope = if matches!(action, Action::UpdateStatus { .. }) {
                    UpdateScope::Status
                } else {
                    UpdateScope::Main
                };
                let (updated, _) = self
                    .api
                    .update(rt, &m.namespace, &m.name, v, scope, &opts)
                    .await?;
                remember(chained, &updated);
                Ok(())
            }
            Action::Patch { target, patch, .. } => {
                let rt = self.rt(&target.api_version, &target.kind)?;
                let mut body = patch.to_merge_patch();
                chain(chained, &mut body);
                if let Some(rv) = chained.get(&target.uid) {
                    body["metadata"]["resourceVersion"] = Value::String(rv.clone());
                }
                match self
                    .api
                    .patch(
                        rt,
                        &target.namespace,
                        &target.name,
                        PatchType::Merge,
                        &body,
                        UpdateScope::Main,
                        &opts,
                    )
                    .await
                {
                    Ok((v, _)) => {
                        remember(chained, &v);
                        Ok(())
                    }
                    Err(e) if e.code == 404 => Ok(()),
                    Err(e) => Err(e),
                }
            }
            Action::Delete {
                target,
                preconditions,
                propagation,
                ..
            } => {
                let rt = self.rt(&target.api_version, &target.kind)?;
                let rv = chained.get(&target.uid).cloned().or_else(|| {
                    Some(preconditions.resource_version.clone()).filter(|s| !s.is_empty())
                });
                let opts = DeleteOptions {
                    propagation_policy: propagation.map(|p| p.as_str().to_string()),
                    preconditions: Some(Preconditions {
                        uid: Some(preconditions.uid.clone()).filter(|s| !s.is_empty()),
                        resource_version: rv,
                    }),
                    ..Default::default()
                };
                match self
                    .api
                    .delete(rt, &target.namespace, &target.name, &opts)
                    .await
                {
                    Ok(_) => Ok(()),
                    Err(e) if e.code == 404 => Ok(()),
                    Err(e) => Err(e),
                }
            }
            Action::FinalizeNamespace(ns) => {
                let v = Object::Namespace(ns.clone())
                    .to_json()
                    .map_err(|e| ApiError::internal(e.to_string()))?;
                match self.api.finalize_namespace(&ns.metadata.name, &v).await {
                    Ok(_) => Ok(()),
                    Err(e) if e.code == 404 => Ok(()),
                    Err(e) => Err(e),
                }
            }
        }
    }
}

fn remember(chained: &mut HashMap<String, String>, written: &Value) {
    let uid = written.pointer("/metadata/uid").and_then(Value::as_str);
    let rv = written
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str);
    if let (Some(u), Some(r)) = (uid, rv) {
        chained.insert(u.to_string(), r.to_string());
    }
}

fn chain(chained: &HashMap<String, String>, body: &mut Value) {
    let uid = body
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .map(str::to_string);
    if let Some(u) = uid
        && let Some(rv) = chained.get(&u)
    {
        body["metadata"]["resourceVersion"] = Value::String(rv.clone());
    }
}
