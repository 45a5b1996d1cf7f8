//! The REST semantics of every resource, over the replicated store: create,
//! get, list, update, patch, delete, watch, and the status, scale, binding,
//! eviction and finalize subresources. Shared by the HTTP layer and by
//! in-process clients (controllers, the embedded agent), so admission and
//! concurrency rules are the same whoever writes.
//!
//! Every write is a compare-and-swap on the stored resourceVersion
//! (Kubernetes' GuaranteedUpdate): a request that carries a resourceVersion
//! gets 409 when it is stale; one that does not is retried against the new
//! state.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::error::{ApiError, ApiResult};
use super::patch::{self, PatchType};
use crate::api::registry::{
    AdmitError, DynResource, FieldValidation, Registry, ResourceInfo, UpdateScope, set_type_meta,
};
use crate::api::selector::{FieldSelector, LabelSelectorExpr};
use crate::api::validation::FieldErrors;
use crate::api::{Time, human_duration};
use crate::store::{ApplyError, Op, Store, StoreError, Subscription};

/// How many times a write without a resourceVersion is retried on conflict.
const MAX_RETRIES: usize = 16;

/// Namespaces that exist from the start and cannot be deleted.
pub const SYSTEM_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

/// Options of a write.
#[derive(Clone, Debug, Default)]
pub struct WriteOptions {
    /// `dryRun=All`: run admission, write nothing.
    pub dry_run: bool,
    pub field_validation: FieldValidation,
}

/// Options of a list or watch.
#[derive(Clone, Debug, Default)]
pub struct ListOptions {
    pub label_selector: Option<String>,
    pub field_selector: Option<String>,
    /// 0: no limit.
    pub limit: usize,
    pub continue_token: Option<String>,
    pub resource_version: Option<String>,
    pub resource_version_match: Option<String>,
}

/// A page of a list.
#[derive(Clone, Debug)]
pub struct ListPage {
    /// Stored objects as JSON.
    pub items: Vec<Bytes>,
    pub resource_version: u64,
    pub continue_token: String,
    pub remaining: Option<i64>,
}

/// `DeleteOptions` as clients send them (body or query).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DeleteOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_period_seconds: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub propagation_policy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orphan_dependents: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preconditions: Option<Preconditions>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dry_run: Vec<String>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Preconditions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
}

/// The result of a delete.
#[derive(Clone, Debug)]
pub enum Deleted {
    /// The object is gone; its last state.
    Gone(Value),
    /// Deletion started (graceful termination or finalizers); the object as
    /// it now is.
    Pending(Value),
}

/// A watch event ready to encode.
#[derive(Clone, Debug)]
pub struct WatchItem {
    /// ADDED, MODIFIED, DELETED, BOOKMARK or ERROR.
    pub type_: &'static str,
    pub object: Bytes,
}

/// The API over the store.
#[derive(Clone)]
pub struct Api {
    pub store: Store,
    pub registry: &'static Registry,
    pub services: Arc<ServiceNetwork>,
    /// Raft term every write of this handle must be appended in (0: any).
    /// Leader-only control loops set the term they were elected in, so a
    /// deposed leader's writes are refused.
    pub fence_term: u64,
}

/// Where Service cluster IPs come from.
#[derive(Clone, Debug)]
pub struct ServiceNetwork {
    /// First three octets are fixed: addresses `base.x.y` for x.y in 0..=255.
    pub base: [u8; 2],
}

impl Default for ServiceNetwork {
    fn default() -> Self {
        // Kubernetes' default service range starts at 10.96.0.0.
        ServiceNetwork { base: [10, 96] }
    }
}

/// Reads `metadata.<field>` as a string.
pub fn meta_str<'a>(v: &'a Value, field: &str) -> &'a str {
    v.get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn meta_mut(v: &mut Value) -> ApiResult<&mut serde_json::Map<String, Value>> {
    let obj = v
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("the request body must be a JSON object"))?;
    let m = obj.entry("metadata").or_insert_with(|| json!({}));
    if !m.is_object() {
        return Err(ApiError::bad_request("metadata must be an object"));
    }
    m.as_object_mut()
        .ok_or_else(|| ApiError::bad_request("metadata must be an object"))
}

fn parse_json(b: &[u8]) -> ApiResult<Value> {
    serde_json::from_slice(b)
        .map_err(|e| ApiError::internal(format!("stored object does not decode: {e}")))
}

fn rv_of(v: &Value) -> ApiResult<Option<u64>> {
    match meta_str(v, "resourceVersion") {
        "" => Ok(None),
        s => s.parse::<u64>().map(Some).map_err(|_| {
            ApiError::bad_request(format!("invalid resourceVersion {s:?}: must be a number"))
        }),
    }
}

/// Whether two objects are equal but for `metadata.resourceVersion`
/// (without copying them).
fn same_but_rv(a: &Value, b: &Value) -> bool {
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return a == b;
    };
    same_members_except(a, b, "metadata")
        && match (a.get("metadata"), b.get("metadata")) {
            (Some(Value::Object(ma)), Some(Value::Object(mb))) => {
                same_members_except(ma, mb, "resourceVersion")
            }
            (ma, mb) => ma == mb,
        }
}

/// Whether two JSON objects hold the same members, `except` aside.
fn same_members_except(
    a: &serde_json::Map<String, Value>,
    b: &serde_json::Map<String, Value>,
    except: &str,
) -> bool {
    let others = |m: &serde_json::Map<String, Value>| m.keys().filter(|k| *k != except).count();
    others(a) == others(b)
        && a.iter()
            .filter(|(k, _)| *k != except)
            .all(|(k, v)| b.get(k) == Some(v))
}

/// `object` as the store wrote it at `rv`: the store only sets the
/// resourceVersion, so there is no need to parse its bytes back.
fn stored_at(mut object: Value, rv: u64) -> Value {
    if let Some(m) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        m.insert("resourceVersion".into(), Value::String(rv.to_string()));
    }
    object
}

fn admit_err(info: &ResourceInfo, name: &str, e: AdmitError) -> ApiError {
    match e {
        AdmitError::Decode(m) => ApiError::bad_request(m),
        AdmitError::UnknownFields(f) => ApiError::bad_request(format!(
            "strict decoding error: {}",
            f.iter()
                .map(|x| format!("unknown field \"{x}\""))
                .collect::<Vec<_>>()
                .join(", ")
        )),
        AdmitError::Invalid(errs) => ApiError::invalid(info, name, &errs),
    }
}

/// Kubernetes' name suffix alphabet (no vowels, no confusable digits).
const SUFFIX_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// `prefix` plus five random characters, as `generateName` does.
pub fn generate_name(prefix: &str) -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    let suffix: String = (0..5)
        .map(|_| SUFFIX_ALPHABET[rng.random_range(0..SUFFIX_ALPHABET.len())] as char)
        .collect();
    let keep = prefix.len().min(63 - 5);
    format!("{}{}", &prefix[..keep], suffix)
}

#[derive(Serialize, Deserialize)]
struct ContinueToken {
    #[serde(rename = "v")]
    version: u32,
    #[serde(rename = "rv")]
    resource_version: u64,
    #[serde(rename = "start")]
    start: String,
}

fn encode_continue(rv: u64, last_key: &str) -> String {
    let t = ContinueToken {
        version: 1,
        resource_version: rv,
        start: last_key.to_string(),
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(&t).unwrap_or_default())
}

fn decode_continue(token: &str, prefix: &str) -> ApiResult<String> {
    let bad = || ApiError::bad_request(format!("continue key is not valid: {token:?}"));
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    let t: ContinueToken = serde_json::from_slice(&raw).map_err(|_| bad())?;
    if t.version != 1 || !t.start.starts_with(prefix) {
        return Err(bad());
    }
    Ok(t.start)
}

/// The minimum of an object a list filter needs.
#[derive(Deserialize, Default)]
struct MetaOnly {
    #[serde(default)]
    metadata: LabelsOnly,
}

#[derive(Deserialize, Default)]
struct LabelsOnly {
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

/// Compiled selectors of a list or watch.
pub struct Filter {
    labels: LabelSelectorExpr,
    fields: FieldSelector,
    rt: &'static dyn DynResource,
}

impl Filter {
    pub fn new(rt: &'static dyn DynResource, opts: &ListOptions) -> ApiResult<Filter> {
        let labels = match opts.label_selector.as_deref() {
            None | Some("") => LabelSelectorExpr::everything(),
            Some(s) => LabelSelectorExpr::parse(s)
                .map_err(|e| ApiError::bad_request(format!("unable to parse requirement: {e}")))?,
        };
        let fields = match opts.field_selector.as_deref() {
            None | Some("") => FieldSelector::default(),
            Some(s) => FieldSelector::parse(s)
                .map_err(|e| ApiError::bad_request(format!("invalid field selector: {e}")))?,
        };
        for f in fields.fields() {
            if !rt.supports_field(f) {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {f}"
                )));
            }
        }
        Ok(Filter { labels, fields, rt })
    }

    pub fn is_everything(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty()
    }

    /// Whether a stored object matches.
    pub fn matches(&self, obj: &[u8]) -> bool {
        if self.is_everything() {
            return true;
        }
        if !self.labels.is_empty() {
            let m: MetaOnly = serde_json::from_slice(obj).unwrap_or_default();
            if !self.labels.matches(&m.metadata.labels) {
                return false;
            }
        }
        if !self.fields.is_empty() {
            let Some(v) = selected_fields(obj, self.fields.fields()) else {
                return false;
            };
            // A field the selected parts cannot answer (one that needs the
            // typed object, say) is asked of the whole object.
            let whole = std::cell::OnceCell::new();
            return self.fields.matches(|f| {
                self.rt.field_value(&v, f).or_else(|| {
                    whole
                        .get_or_init(|| serde_json::from_slice::<Value>(obj).ok())
                        .as_ref()
                        .and_then(|w| self.rt.field_value(w, f))
                })
            });
        }
        true
    }
}

/// The parts of a stored object that `fields` (dotted paths) name, in an
/// object of the same shape; everything else is left out. Selectors are
/// checked on every watch event (twice, with the previous version), and
/// parsing only the selected paths spares building the whole object.
/// `None` when `obj` is not a JSON object.
fn selected_fields<'a>(obj: &[u8], fields: impl Iterator<Item = &'a str>) -> Option<Value> {
    use serde_json::value::RawValue;
    type Level<'b> = BTreeMap<String, &'b RawValue>;
    let top: Level<'_> = serde_json::from_slice(obj).ok()?;
    let mut out = Value::Object(Default::default());
    for field in fields {
        let segments: Vec<&str> = field.split('.').collect();
        let Some((last, parents)) = segments.split_last() else {
            continue;
        };
        // Each level's values still point into `obj`.
        let mut level: Option<Level<'_>> = None;
        let mut raw = None;
        for (i, seg) in segments.iter().enumerate() {
            let Some(r) = level.as_ref().unwrap_or(&top).get(*seg).copied() else {
                break;
            };
            if i == parents.len() {
                raw = Some(r);
                break;
            }
            match serde_json::from_str::<Level<'_>>(r.get()) {
                Ok(l) => level = Some(l),
                Err(_) => break,
            }
        }
        let Some(raw) = raw else {
            continue;
        };
        let Ok(value) = serde_json::from_str::<Value>(raw.get()) else {
            continue;
        };
        let mut slot = &mut out;
        for seg in parents {
            let Value::Object(map) = slot else { break };
            slot = map
                .entry(seg.to_string())
                .or_insert_with(|| Value::Object(Default::default()));
        }
        if let Value::Object(map) = slot {
            map.insert(last.to_string(), value);
        }
    }
    Some(out)
}

impl Api {
    pub fn new(store: Store) -> Api {
        Api {
            store,
            registry: Registry::get(),
            services: Arc::new(ServiceNetwork::default()),
            fence_term: 0,
        }
    }

    /// A handle whose writes are fenced to Raft term `term`.
    pub fn fenced(&self, term: u64) -> Api {
        Api {
            fence_term: term,
            ..self.clone()
        }
    }

    /// Resolves a resource by URL parts.
    pub fn resource(
        &self,
        group: &str,
        version: &str,
        plural: &str,
    ) -> ApiResult<&'static dyn DynResource> {
        self.registry
            .find(group, version, plural)
            .ok_or_else(|| ApiError::no_route(&format!("{group}/{version}/{plural}")))
    }

    fn read_stored(&self, key: &str) -> Option<crate::store::Stored> {
        self.store.read(|sm| sm.get(key).cloned())
    }

    /// Applies the read consistency a resourceVersion asks for: unset means
    /// a linearizable read, "0" any recent state, N at least N.
    async fn consistent(&self, rv: Option<&str>, rv_match: Option<&str>) -> ApiResult<u64> {
        match rv {
            None | Some("") => Ok(self.store.barrier().await?),
            Some("0") => Ok(self.store.applied()),
            Some(s) => {
                let n: u64 = s.parse().map_err(|_| {
                    ApiError::bad_request(format!(
                        "invalid resourceVersion {s:?}: must be a number"
                    ))
                })?;
                if rv_match == Some("Exact") && n != self.store.applied() {
                    return Err(ApiError::gone(format!(
                        "too old resource version: {n} ({})",
                        self.store.applied()
                    )));
                }
                if n > self.store.applied() {
                    tokio::time::timeout(Duration::from_secs(3), self.store.wait_applied(n))
                        .await
                        .map_err(|_| {
                            ApiError::timeout(format!(
                                "Too large resource version: {n}, current: {}",
                                self.store.applied()
                            ))
                        })??;
                }
                Ok(self.store.applied())
            }
        }
    }

    async fn check_namespace(&self, info: &ResourceInfo, ns: &str) -> ApiResult<Option<Op>> {
        if !info.namespaced {
            return Ok(None);
        }
        let ns_rt = self
            .registry
            .resolve("namespaces")
            .ok_or_else(|| ApiError::internal("no namespaces"))?;
        let key = ns_rt.info().key("", ns);
        let Some(stored) = self.read_stored(&key) else {
            return Err(ApiError::not_found(ns_rt.info(), ns));
        };
        let v = parse_json(&stored.value)?;
        if !meta_str(&v, "deletionTimestamp").is_empty()
            || v.pointer("/status/phase").and_then(Value::as_str) == Some("Terminating")
        {
            return Err(ApiError::forbidden(format!(
                "unable to create new content in namespace {ns} because it is being terminated"
            )));
        }
        Ok(Some(Op::check_rv(key, stored.rv)))
    }

    fn check_type_meta(info: &ResourceInfo, body: &mut Value) -> ApiResult<()> {
        let obj = body
            .as_object_mut()
            .ok_or_else(|| ApiError::bad_request("the request body must be a JSON object"))?;
        let av = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
        let want = info.api_version();
        if !av.is_empty() && av != want {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({av}) does not match the expected API version ({want})"
            )));
        }
        if !kind.is_empty() && kind != info.kind {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({kind}) does not match the expected kind ({})",
                info.kind
            )));
        }
        set_type_meta(body, &want, info.kind);
        Ok(())
    }

    /// Creates an object. Returns the stored object and warnings.
    pub async fn create(
        &self,
        rt: &'static dyn DynResource,
        ns: &str,
        mut body: Value,
        opts: &WriteOptions,
    ) -> ApiResult<(Value, Vec<String>)> {
        let info = rt.info();
        Self::check_type_meta(info, &mut body)?;
        {
            let m = meta_mut(&mut body)?;
            let body_ns = m
                .get("namespace")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            if info.namespaced {
                if !body_ns.is_empty() && body_ns != ns {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
                m.insert("namespace".into(), Value::String(ns.to_string()));
            } else {
                m.remove("namespace");
            }
            if m.get("resourceVersion")
                .and_then(Value::as_str)
                .is_some_and(|s| !s.is_empty())
            {
                return Err(ApiError::bad_request(
                    "resourceVersion should not be set on objects to be created",
                ));
            }
        }
        let generate = meta_str(&body, "name").is_empty();
        let prefix = meta_str(&body, "generateName").to_string();
        if generate && prefix.is_empty() {
            let mut errs = FieldErrors::default();
            errs.required("metadata.name", "name or generateName is required");
            return Err(ApiError::invalid(info, "", &errs));
        }
        for _ in 0..MAX_RETRIES {
            let mut obj = body.clone();
            if generate {
                meta_mut(&mut obj)?.insert("name".into(), Value::String(generate_name(&prefix)));
            }
            let name = meta_str(&obj, "name").to_string();
            {
                let m = meta_mut(&mut obj)?;
                m.insert(
                    "uid".into(),
                    Value::String(uuid::Uuid::new_v4().to_string()),
                );
                m.insert(
                    "creationTimestamp".into(),
                    serde_json::to_value(Time::now()).unwrap_or(Value::Null),
                );
                for k in [
                    "deletionTimestamp",
                    "deletionGracePeriodSeconds",
                    "resourceVersion",
                    "managedFields",
                ] {
                    m.remove(k);
                }
            }
            let admitted = rt
                .admit_create(&obj, opts.field_validation)
                .map_err(|e| admit_err(info, &name, e))?;
            let mut object = admitted.object;
            let mut ops = Vec::new();
            if let Some(check) = self.check_namespace(info, ns).await? {
                ops.push(check);
            }
            self.admit_create_extra(info, ns, &mut object, &mut ops)?;
            if opts.dry_run {
                return Ok((object, admitted.warnings));
            }
            let key = info.key(ns, &name);
            ops.push(Op::create(
                key,
                serde_json::to_vec(&object).map_err(|e| ApiError::internal(e.to_string()))?,
            ));
            match self.store.txn_fenced(ops, self.fence_term).await {
                Ok(applied) => return Ok((stored_at(object, applied.rv), admitted.warnings)),
                Err(StoreError::Apply(ApplyError::AlreadyExists { key }))
                    if key.starts_with(&info.qualified()) =>
                {
                    if generate {
                        continue;
                    }
                    return Err(ApiError::already_exists(info, &name));
                }
                Err(StoreError::Apply(ApplyError::AlreadyExists { .. }))
                | Err(StoreError::Apply(ApplyError::Conflict { .. }))
                | Err(StoreError::Apply(ApplyError::NotFound { .. })) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ApiError::conflict(
            info,
            meta_str(&body, "name"),
            "too many concurrent changes; try again",
        ))
    }

    /// Objects of a namespaced type in `ns`, typed, from the local state.
    fn local_list<T: serde::de::DeserializeOwned>(
        &self,
        plural_qualified: &str,
        ns: &str,
    ) -> Vec<(u64, Value, T)> {
        let prefix = format!("{plural_qualified}/{ns}/");
        self.store.read(|sm| list_decoded(sm, &prefix))
    }

    /// LimitRange defaults and bounds, and ResourceQuota charges (as ops
    /// in the create's transaction).
    fn admit_quota_and_limits(
        &self,
        info: &ResourceInfo,
        ns: &str,
        obj: &mut Value,
        ops: &mut Vec<Op>,
    ) -> ApiResult<()> {
        use super::admission;
        use crate::api::core::{LimitRange, Pod, ResourceQuota};
        if !info.namespaced {
            return Ok(());
        }
        let name = meta_str(obj, "name").to_string();
        let pod = if info.group.is_empty() && info.kind == "Pod" {
            let mut pod: Pod = serde_json::from_value(obj.clone())
                .map_err(|e| ApiError::internal(format!("pod: {e}")))?;
            let ranges: Vec<LimitRange> = self
                .local_list("limitranges", ns)
                .into_iter()
                .map(|(_, _, t)| t)
                .collect();
            let before = pod.spec.clone();
            admission::apply_limit_ranges(&mut pod, &ranges).map_err(ApiError::forbidden)?;
            if pod.spec != before {
                *obj = serde_json::to_value(&pod).map_err(|e| ApiError::internal(e.to_string()))?;
                set_type_meta(obj, &info.api_version(), info.kind);
            }
            Some(pod)
        } else {
            None
        };
        let delta: std::collections::BTreeMap<String, i64> = match &pod {
            Some(p) => admission::usage_of_pod(p),
            None => admission::count_names(&info.qualified())
                .into_iter()
                .map(|n| (n, 1))
                .collect(),
        };
        for (rv, mut v, quota) in self.local_list::<ResourceQuota>("resourcequotas", ns) {
            if let Some(p) = &pod {
                if !admission::quota_covers_pod(&quota, p) {
                    continue;
                }
                if let Some(msg) = admission::missing_compute(&quota, p) {
                    return Err(ApiError::forbidden(format!(
                        "pods \"{name}\" is forbidden: {msg}"
                    )));
                }
            } else if !quota.spec.scopes.is_empty() || quota.spec.scope_selector.is_some() {
                continue;
            }
            let what = format!("{} \"{}\"", info.qualified(), name);
            match admission::charge(&quota, &delta, &what) {
                Err(msg) => return Err(ApiError::forbidden(msg)),
                Ok(None) => {}
                Ok(Some(used)) => {
                    v["status"]["used"] = serde_json::to_value(&used)
                        .map_err(|e| ApiError::internal(e.to_string()))?;
                    let key = format!("resourcequotas/{ns}/{}", quota.metadata.name);
                    ops.push(Op::update(
                        key,
                        serde_json::to_vec(&v).map_err(|e| ApiError::internal(e.to_string()))?,
                        rv,
                    ));
                }
            }
        }
        Ok(())
    }

    /// Kind-specific admission that needs the store (cluster IPs, namespace finalizers).
    fn admit_create_extra(
        &self,
        info: &ResourceInfo,
        ns: &str,
        obj: &mut Value,
        ops: &mut Vec<Op>,
    ) -> ApiResult<()> {
        self.admit_quota_and_limits(info, ns, obj, ops)?;
        match (info.group, info.kind) {
            ("", "Namespace") => {
                obj["spec"]["finalizers"] = json!(["kubernetes"]);
                obj["status"] = json!({"phase": "Active"});
            }
            ("", "Service") => self.allocate_cluster_ip(obj, ops)?,
            _ => {}
        }
        Ok(())
    }

    fn allocate_cluster_ip(&self, svc: &mut Value, ops: &mut Vec<Op>) -> ApiResult<()> {
        let type_ = svc
            .pointer("/spec/type")
            .and_then(Value::as_str)
            .unwrap_or("ClusterIP");
        if type_ == "ExternalName" {
            return Ok(());
        }
        let requested = svc
            .pointer("/spec/clusterIP")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if requested == "None" {
            svc["spec"]["clusterIPs"] = json!(["None"]);
            return Ok(());
        }
        let [a, b] = self.services.base;
        let ip = if requested.is_empty() {
            let used: std::collections::HashSet<String> = self.store.read(|sm| {
                sm.list(IPALLOC_PREFIX, None, 0)
                    .0
                    .into_iter()
                    .map(|(k, _)| k[IPALLOC_PREFIX.len()..].to_string())
                    .collect()
            });
            use rand::Rng;
            let mut rng = rand::rng();
            let mut found = None;
            for _ in 0..4096 {
                let x: u16 = rng.random_range(10..65534);
                let cand = format!("{a}.{b}.{}.{}", x >> 8, x & 0xff);
                if !used.contains(&cand) {
                    found = Some(cand);
                    break;
                }
            }
            found.ok_or_else(|| ApiError::internal("no free cluster IP in the service range"))?
        } else {
            let ok = requested
                .parse::<std::net::Ipv4Addr>()
                .is_ok_and(|ip| ip.octets()[0] == a && ip.octets()[1] == b);
            if !ok {
                let mut errs = FieldErrors::default();
                errs.invalid(
                    "spec.clusterIP",
                    &requested,
                    format!("provided IP is not in the valid range. The range of valid IPs is {a}.{b}.0.0/16"),
                );
                return Err(ApiError::invalid(
                    self.registry
                        .resolve("services")
                        .map(|r| r.info())
                        .ok_or_else(|| ApiError::internal("no services"))?,
                    meta_str(svc, "name"),
                    &errs,
                ));
            }
            requested
        };
        svc["spec"]["clusterIP"] = json!(ip);
        svc["spec"]["clusterIPs"] = json!([ip]);
        ops.push(Op::create(format!("{IPALLOC_PREFIX}{ip}"), b"{}".to_vec()));
        Ok(())
    }

    /// Gets one object.
    pub async fn get(
        &self,
        info: &ResourceInfo,
        ns: &str,
        name: &str,
        rv: Option<&str>,
    ) -> ApiResult<Bytes> {
        self.consistent(rv, None).await?;
        self.read_stored(&info.key(ns, name))
            .map(|s| s.value)
            .ok_or_else(|| ApiError::not_found(info, name))
    }

    /// Lists objects of one namespace (or all when `ns` is None).
    pub async fn list(
        &self,
        rt: &'static dyn DynResource,
        ns: Option<&str>,
        opts: &ListOptions,
    ) -> ApiResult<ListPage> {
        let info = rt.info();
        let filter = Filter::new(rt, opts)?;
        let rv = self
            .consistent(
                opts.resource_version.as_deref(),
                opts.resource_version_match.as_deref(),
            )
            .await?;
        let prefix = info.prefix(ns);
        let start = match opts.continue_token.as_deref() {
            Some(t) if !t.is_empty() => Some(decode_continue(t, &prefix)?),
            _ => None,
        };
        // One exact name narrows to a single key.
        let fields = opts
            .field_selector
            .as_deref()
            .and_then(|s| FieldSelector::parse(s).ok())
            .unwrap_or_default();
        let candidates: Vec<(String, crate::store::Stored)> =
            match (fields.requires_exact("metadata.name"), ns) {
                (Some(name), Some(ns)) if info.namespaced => {
                    let key = info.key(ns, name);
                    self.read_stored(&key)
                        .map(|s| vec![(key, s)])
                        .unwrap_or_default()
                }
                (Some(name), _) if !info.namespaced => {
                    let key = info.key("", name);
                    self.read_stored(&key)
                        .map(|s| vec![(key, s)])
                        .unwrap_or_default()
                }
                _ => self
                    .store
                    .read(|sm| sm.list(&prefix, start.as_deref(), 0).0),
            };
        let mut items = Vec::new();
        let mut last_key = String::new();
        let mut more = false;
        let mut iter = candidates.into_iter();
        for (k, s) in iter.by_ref() {
            if !filter.matches(&s.value) {
                continue;
            }
            if opts.limit > 0 && items.len() == opts.limit {
                more = true;
                break;
            }
            last_key = k;
            items.push(s.value);
        }
        let (continue_token, remaining) = if more {
            let rest = if filter.is_everything() {
                // The item we stopped at plus what follows it.
                Some(1 + iter.count() as i64)
            } else {
                None
            };
            (encode_continue(rv, &last_key), rest)
        } else {
            (String::new(), None)
        };
        Ok(ListPage {
            items,
            resource_version: rv,
            continue_token,
            remaining,
        })
    }

    /// Replaces an object (or its status).
    pub async fn update(
        &self,
        rt: &'static dyn DynResource,
        ns: &str,
        name: &str,
        mut body: Value,
        scope: UpdateScope,
        opts: &WriteOptions,
    ) -> ApiResult<(Value, Vec<String>)> {
        let info = rt.info();
        Self::check_type_meta(info, &mut body)?;
        let body_name = meta_str(&body, "name");
        if !body_name.is_empty() && body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        let body_ns = meta_str(&body, "namespace");
        if info.namespaced && !body_ns.is_empty() && body_ns != ns {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        let expect = rv_of(&body)?;
        {
            let m = meta_mut(&mut body)?;
            m.insert("name".into(), Value::String(name.to_string()));
            if info.namespaced {
                m.insert("namespace".into(), Value::String(ns.to_string()));
            }
        }
        self.write_loop(
            rt,
            ns,
            name,
            expect,
            opts,
            |_current| Ok(body.clone()),
            scope,
        )
        .await
    }

    /// Applies a patch (merge, strategic merge, JSON patch, or apply).
    #[allow(clippy::too_many_arguments)]
    pub async fn patch(
        &self,
        rt: &'static dyn DynResource,
        ns: &str,
        name: &str,
        ptype: PatchType,
        patch_body: &Value,
        scope: UpdateScope,
        opts: &WriteOptions,
    ) -> ApiResult<(Value, Vec<String>)> {
        let info = rt.info();
        let expect = match patch_body
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
        {
            Some(s) if !s.is_empty() => Some(
                s.parse::<u64>()
                    .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {s:?}")))?,
            ),
            _ => None,
        };
        let kind = info.kind;
        self.write_loop(
            rt,
            ns,
            name,
            expect,
            opts,
            |current| {
                let mut out =
                    patch::apply_patch(ptype, kind, current, patch_body).map_err(|e| {
                        let code = e.http_status();
                        let reason = match code {
                            413 => "RequestEntityTooLarge",
                            422 => "Invalid",
                            500 => "InternalError",
                            _ => "BadRequest",
                        };
                        ApiError::new(code, reason, e.to_string())
                    })?;
                // A patch may not move the object.
                if let Some(m) = out.get_mut("metadata").and_then(Value::as_object_mut) {
                    m.insert("name".into(), Value::String(name.to_string()));
                    if info.namespaced {
                        m.insert("namespace".into(), Value::String(ns.to_string()));
                    }
                }
                Ok(out)
            },
            scope,
        )
        .await
    }

    /// The GuaranteedUpdate loop shared by update and patch.
    #[allow(clippy::too_many_arguments)]
    async fn write_loop(
        &self,
        rt: &'static dyn DynResource,
        ns: &str,
        name: &str,
        expect: Option<u64>,
        opts: &WriteOptions,
        mut make: impl FnMut(&Value) -> ApiResult<Value>,
        scope: UpdateScope,
    ) -> ApiResult<(Value, Vec<String>)> {
        let info = rt.info();
        let key = info.key(ns, name);
        for attempt in 0..MAX_RETRIES {
            let Some(stored) = self.read_stored(&key) else {
                return Err(ApiError::not_found(info, name));
            };
            if let Some(rv) = expect
                && rv != stored.rv
            {
                return Err(ApiError::stale(info, name));
            }
            let current = parse_json(&stored.value)?;
            let new = make(&current)?;
            let new_uid = meta_str(&new, "uid");
            let cur_uid = meta_str(&current, "uid");
            if !new_uid.is_empty() && new_uid != cur_uid {
                return Err(ApiError::conflict(
                    info,
                    name,
                    &format!(
                        "Precondition failed: UID in precondition: {new_uid}, UID in object meta: {cur_uid}"
                    ),
                ));
            }
            let admitted = rt
                .admit_update(&new, &current, scope, opts.field_validation)
                .map_err(|e| admit_err(info, name, e))?;
            let object = admitted.object;
            if same_but_rv(&object, &current) {
                return Ok((current, admitted.warnings));
            }
            if opts.dry_run {
                return Ok((object, admitted.warnings));
            }
            // Removing the last finalizer of an object being deleted deletes it.
            let deleting = finalized(&object);
            let op = if deleting {
                Op::delete(key.clone(), Some(stored.rv))
            } else {
                Op::update(
                    key.clone(),
                    serde_json::to_vec(&object).map_err(|e| ApiError::internal(e.to_string()))?,
                    stored.rv,
                )
            };
            let mut ops = vec![op];
            if deleting {
                ops.extend(self.release_ops(info, &current));
            }
            match self.store.txn_fenced(ops, self.fence_term).await {
                Ok(applied) if !deleting => {
                    return Ok((stored_at(object, applied.rv), admitted.warnings));
                }
                Ok(applied) => {
                    let v = applied
                        .objects
                        .first()
                        .cloned()
                        .flatten()
                        .unwrap_or_default();
                    return Ok((parse_json(&v)?, admitted.warnings));
                }
                Err(StoreError::Apply(ApplyError::Conflict { .. })) if expect.is_none() => {
                    if attempt > 2 {
                        tokio::time::sleep(Duration::from_millis(2 * attempt as u64)).await;
                    }
                    continue;
                }
                Err(StoreError::Apply(ApplyError::Conflict { .. })) => {
                    return Err(ApiError::stale(info, name));
                }
                Err(StoreError::Apply(ApplyError::NotFound { .. })) => {
                    return Err(ApiError::not_found(info, name));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(ApiError::conflict(
            info,
            name,
            "too many concurrent changes; try again",
        ))
    }

    /// Ops that free what an object held (a Service's cluster IP).
    fn release_ops(&self, info: &ResourceInfo, obj: &Value) -> Vec<Op> {
        let mut ops = Vec::new();
        if info.group.is_empty()
            && info.kind == "Service"
            && let Some(ip) = obj.pointer("/spec/clusterIP").and_then(Value::as_str)
            && !ip.is_empty()
            && ip != "None"
        {
            let key = format!("{IPALLOC_PREFIX}{ip}");
            if self.read_stored(&key).is_some() {
                ops.push(Op::delete(key, None));
            }
        }
        ops
    }

    /// Deletes an object, gracefully where Kubernetes does.
    pub async fn delete(
        &self,
        rt: &'static dyn DynResource,
        ns: &str,
        name: &str,
        opts: &DeleteOptions,
    ) -> ApiResult<Deleted> {
        let info = rt.info();
        let key = info.key(ns, name);
        if info.group.is_empty() && info.kind == "Namespace" && SYSTEM_NAMESPACES.contains(&name) {
            return Err(ApiError::forbidden(format!(
                "namespaces \"{name}\" is forbidden: this namespace may not be deleted"
            )));
        }
        let dry_run = opts.dry_run.iter().any(|d| d == "All");
        for attempt in 0..MAX_RETRIES {
            let Some(stored) = self.read_stored(&key) else {
                return Err(ApiError::not_found(info, name));
            };
            let current = parse_json(&stored.value)?;
            if let Some(pre) = &opts.preconditions {
                if let Some(uid) = &pre.uid
                    && uid != meta_str(&current, "uid")
                {
                    return Err(ApiError::conflict(
                        info,
                        name,
                        &format!(
                            "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                            meta_str(&current, "uid")
                        ),
                    ));
                }
                if let Some(rv) = &pre.resource_version
                    && rv != &stored.rv.to_string()
                {
                    return Err(ApiError::conflict(
                        info,
                        name,
                        &format!(
                            "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                            stored.rv
                        ),
                    ));
                }
            }
            let plan = plan_delete(info, &current, opts)?;
            let (ops, pending) = match plan {
                DeletePlan::Now => {
                    let mut ops = vec![Op::delete(key.clone(), Some(stored.rv))];
                    ops.extend(self.release_ops(info, &current));
                    (ops, false)
                }
                DeletePlan::Mark(updated) => {
                    if same_but_rv(&updated, &current) {
                        return Ok(Deleted::Pending(current));
                    }
                    let bytes = serde_json::to_vec(&updated)
                        .map_err(|e| ApiError::internal(e.to_string()))?;
                    (vec![Op::update(key.clone(), bytes, stored.rv)], true)
                }
            };
            if dry_run {
                return Ok(if pending {
                    Deleted::Pending(current)
                } else {
                    Deleted::Gone(current)
                });
            }
            match self.store.txn_fenced(ops, self.fence_term).await {
                Ok(applied) => {
                    let v = parse_json(
                        &applied
                            .objects
                            .first()
                            .cloned()
                            .flatten()
                            .unwrap_or_default(),
                    )?;
                    return Ok(if pending {
                        Deleted::Pending(v)
                    } else {
                        Deleted::Gone(v)
                    });
                }
                Err(StoreError::Apply(ApplyError::Conflict { .. })) => {
                    if attempt > 2 {
                        tokio::time::sleep(Duration::from_millis(2 * attempt as u64)).await;
                    }
                    continue;
                }
                Err(StoreError::Apply(ApplyError::NotFound { .. })) => {
                    return Err(ApiError::not_found(info, name));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(ApiError::conflict(
            info,
            name,
            "too many concurrent changes; try again",
        ))
    }

    /// Deletes every object a list with `opts` returns. Returns the objects
    /// as they were deleted (or marked).
    pub async fn delete_collection(
        &self,
        rt: &'static dyn DynResource,
        ns: Option<&str>,
        list: &ListOptions,
        opts: &DeleteOptions,
    ) -> ApiResult<Vec<Value>> {
        let page = self
            .list(
                rt,
                ns,
                &ListOptions {
                    limit: 0,
                    continue_token: None,
                    ..list.clone()
                },
            )
            .await?;
        let mut out = Vec::new();
        for item in page.items {
            let v = parse_json(&item)?;
            let (ins, name) = (
                meta_str(&v, "namespace").to_string(),
                meta_str(&v, "name").to_string(),
            );
            match self.delete(rt, &ins, &name, opts).await {
                Ok(Deleted::Gone(v)) | Ok(Deleted::Pending(v)) => out.push(v),
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// `POST pods/{name}/binding`: assigns the pod to a node and sets
    /// PodScheduled=True in the same write, as Kubernetes' binding handler does.
    pub async fn bind(
        &self,
        ns: &str,
        name: &str,
        binding: &Value,
        opts: &WriteOptions,
    ) -> ApiResult<Value> {
        let pods = self.resource("", "v1", "pods")?;
        let node = binding
            .pointer("/target/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if node.is_empty() {
            let mut errs = FieldErrors::default();
            errs.required("target.name", "");
            return Err(ApiError::invalid(pods.info(), name, &errs));
        }
        let expect_uid = binding
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .map(str::to_string);
        let info = pods.info();
        let (v, _) = self
            .write_loop(
                pods,
                ns,
                name,
                None,
                opts,
                |current| {
                    if let Some(uid) = &expect_uid
                        && !uid.is_empty()
                        && uid != meta_str(current, "uid")
                    {
                        return Err(ApiError::conflict(info, name, "the pod was replaced"));
                    }
                    let bound = current
                        .pointer("/spec/nodeName")
                        .and_then(Value::as_str)
                        .unwrap_or("");
                    if !bound.is_empty() {
                        return Err(ApiError::conflict(
                            info,
                            name,
                            &format!("pod {name} is already assigned to node \"{bound}\""),
                        ));
                    }
                    if !meta_str(current, "deletionTimestamp").is_empty() {
                        return Err(ApiError::conflict(info, name, "the pod is being deleted"));
                    }
                    let mut v = current.clone();
                    v["spec"]["nodeName"] = json!(node);
                    let cond = json!({"type": "PodScheduled", "status": "True",
                        "lastTransitionTime": Time::now(), "lastProbeTime": null});
                    let conds = v["status"]["conditions"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default();
                    let mut conds: Vec<Value> = conds
                        .into_iter()
                        .filter(|c| c["type"] != "PodScheduled")
                        .collect();
                    conds.insert(0, cond);
                    v["status"]["conditions"] = Value::Array(conds);
                    Ok(v)
                },
                UpdateScope::All,
            )
            .await?;
        Ok(v)
    }

    /// `PUT namespaces/{name}/finalize`: replaces spec.finalizers; a
    /// terminating namespace with none left is deleted.
    pub async fn finalize_namespace(&self, name: &str, body: &Value) -> ApiResult<Value> {
        let rt = self.resource("", "v1", "namespaces")?;
        let finalizers = body
            .pointer("/spec/finalizers")
            .cloned()
            .unwrap_or(json!([]));
        let (v, _) = self
            .write_loop(
                rt,
                "",
                name,
                None,
                &WriteOptions::default(),
                |current| {
                    let mut v = current.clone();
                    v["spec"]["finalizers"] = finalizers.clone();
                    Ok(v)
                },
                UpdateScope::Main,
            )
            .await?;
        Ok(v)
    }

    /// Starts a watch. `ns` None watches all namespaces.
    pub async fn watch(
        &self,
        rt: &'static dyn DynResource,
        ns: Option<&str>,
        opts: &ListOptions,
        send_initial_events: bool,
    ) -> ApiResult<WatchStream> {
        let info = rt.info();
        let filter = Filter::new(rt, opts)?;
        let prefix = info.prefix(ns);
        let rv = opts.resource_version.as_deref().unwrap_or("");
        let mut initial = Vec::new();
        let sub = if rv.is_empty() || rv == "0" || send_initial_events {
            if rv.is_empty() || send_initial_events {
                self.store.barrier().await?;
            }
            let (items, at, sub) = self.store.list_and_watch(&prefix);
            for (_, s) in items {
                if filter.matches(&s.value) {
                    initial.push(WatchItem {
                        type_: "ADDED",
                        object: s.value,
                    });
                }
            }
            if send_initial_events {
                initial.push(WatchItem {
                    type_: "BOOKMARK",
                    object: bookmark(info, at, true),
                });
            }
            sub
        } else {
            let after: u64 = rv.parse().map_err(|_| {
                ApiError::bad_request(format!("invalid resourceVersion {rv:?}: must be a number"))
            })?;
            match self.store.watch(&prefix, after) {
                Ok(s) => s,
                Err(StoreError::TooOld { requested, floor }) => {
                    initial.push(WatchItem {
                        type_: "ERROR",
                        object: expired(requested, floor),
                    });
                    return Ok(WatchStream {
                        initial: initial.into(),
                        sub: None,
                        filter,
                        info: info.clone(),
                    });
                }
                Err(e) => return Err(e.into()),
            }
        };
        Ok(WatchStream {
            initial: initial.into(),
            sub: Some(sub),
            filter,
            info: info.clone(),
        })
    }
}

/// Internal keys for allocated Service IPs (not a resource; never listed by the API).
pub const IPALLOC_PREFIX: &str = "~ipalloc/";

fn finalized(obj: &Value) -> bool {
    let deleting = !meta_str(obj, "deletionTimestamp").is_empty();
    let empty = |v: Option<&Value>| v.and_then(Value::as_array).is_none_or(|a| a.is_empty());
    deleting
        && empty(obj.pointer("/metadata/finalizers"))
        && empty(obj.pointer("/spec/finalizers"))
        && obj.get("kind").and_then(Value::as_str) != Some("Pod")
        || deleting
            && obj.get("kind").and_then(Value::as_str) == Some("Pod")
            && empty(obj.pointer("/metadata/finalizers"))
            && obj
                .pointer("/metadata/deletionGracePeriodSeconds")
                .and_then(Value::as_i64)
                == Some(0)
}

enum DeletePlan {
    Now,
    Mark(Value),
}

/// Decides whether a delete removes the object now or marks it (graceful
/// pod termination, finalizers, foreground/orphan propagation, namespaces).
fn plan_delete(
    info: &ResourceInfo,
    current: &Value,
    opts: &DeleteOptions,
) -> ApiResult<DeletePlan> {
    let policy = match (opts.propagation_policy.as_deref(), opts.orphan_dependents) {
        (Some(p @ ("Foreground" | "Background" | "Orphan")), _) => p,
        (Some(other), _) => {
            return Err(ApiError::bad_request(format!(
                "unsupported propagationPolicy {other:?}: supported values are \"Foreground\", \"Background\", \"Orphan\""
            )));
        }
        (None, Some(true)) => "Orphan",
        (None, _) => "Background",
    };
    if let Some(g) = opts.grace_period_seconds
        && g < 0
    {
        return Err(ApiError::bad_request("gracePeriodSeconds must be >= 0"));
    }
    let mut v = current.clone();
    let is_pod = info.group.is_empty() && info.kind == "Pod";
    let is_ns = info.group.is_empty() && info.kind == "Namespace";
    let mut finalizers: Vec<String> = v
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    match policy {
        "Orphan" if !finalizers.iter().any(|f| f == "orphan") => finalizers.push("orphan".into()),
        "Foreground" if !finalizers.iter().any(|f| f == "foregroundDeletion") => {
            finalizers.push("foregroundDeletion".into())
        }
        _ => {}
    }
    let grace = if is_pod {
        let bound = v
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty());
        let phase = v
            .pointer("/status/phase")
            .and_then(Value::as_str)
            .unwrap_or("");
        let terminal = phase == "Succeeded" || phase == "Failed";
        let requested = opts.grace_period_seconds.unwrap_or_else(|| {
            v.pointer("/spec/terminationGracePeriodSeconds")
                .and_then(Value::as_i64)
                .unwrap_or(30)
        });
        if !bound || terminal { 0 } else { requested }
    } else {
        0
    };
    let already = !meta_str(&v, "deletionTimestamp").is_empty();
    let ns_finalizers = is_ns
        && v.pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty());
    if grace == 0 && finalizers.is_empty() && !ns_finalizers {
        return Ok(DeletePlan::Now);
    }
    let now = Time::now();
    let m = meta_mut(&mut v)?;
    if !already {
        let at = Time::from_unix(now.unix() + grace).unwrap_or(now);
        m.insert(
            "deletionTimestamp".into(),
            serde_json::to_value(at).unwrap_or(Value::Null),
        );
        m.insert("deletionGracePeriodSeconds".into(), json!(grace));
    } else if is_pod {
        // A second delete may shorten the grace period, never extend it.
        let cur = m
            .get("deletionGracePeriodSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(grace);
        if grace < cur {
            let at = Time::from_unix(now.unix() + grace).unwrap_or(now);
            m.insert(
                "deletionTimestamp".into(),
                serde_json::to_value(at).unwrap_or(Value::Null),
            );
            m.insert("deletionGracePeriodSeconds".into(), json!(grace));
        }
    }
    if finalizers.is_empty() {
        m.remove("finalizers");
    } else {
        m.insert("finalizers".into(), json!(finalizers));
    }
    if is_ns {
        v["status"]["phase"] = json!("Terminating");
    }
    if finalized(&v) {
        return Ok(DeletePlan::Now);
    }
    Ok(DeletePlan::Mark(v))
}

/// A BOOKMARK event object.
pub fn bookmark(info: &ResourceInfo, rv: u64, initial_events_end: bool) -> Bytes {
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if initial_events_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    Bytes::from(
        serde_json::to_vec(
            &json!({"kind": info.kind, "apiVersion": info.api_version(), "metadata": meta}),
        )
        .unwrap_or_default(),
    )
}

fn expired(requested: u64, floor: u64) -> Bytes {
    let st = ApiError::gone(format!("too old resource version: {requested} ({floor})")).to_status();
    Bytes::from(serde_json::to_vec(&st).unwrap_or_default())
}

/// A running watch: initial events, then live events filtered by selector.
pub struct WatchStream {
    initial: std::collections::VecDeque<WatchItem>,
    sub: Option<Subscription>,
    filter: Filter,
    info: ResourceInfo,
}

impl WatchStream {
    /// The next event; `None` when the watch ended (the store stopped, or
    /// an ERROR event was delivered).
    pub async fn next(&mut self) -> Option<WatchItem> {
        if let Some(i) = self.initial.pop_front() {
            return Some(i);
        }
        let sub = self.sub.as_mut()?;
        loop {
            match sub.next().await {
                Ok(ev) => {
                    let now_match = self.filter.matches(&ev.object);
                    let was_match = ev.prev.as_ref().is_some_and(|p| self.filter.matches(p));
                    let type_ = match ev.kind {
                        crate::store::EventType::Added if now_match => "ADDED",
                        crate::store::EventType::Modified if now_match && was_match => "MODIFIED",
                        crate::store::EventType::Modified if now_match => "ADDED",
                        crate::store::EventType::Modified if was_match => "DELETED",
                        crate::store::EventType::Deleted if was_match => "DELETED",
                        _ => continue,
                    };
                    return Some(WatchItem {
                        type_,
                        object: ev.object,
                    });
                }
                Err(StoreError::TooOld { requested, floor }) => {
                    self.sub = None;
                    return Some(WatchItem {
                        type_: "ERROR",
                        object: expired(requested, floor),
                    });
                }
                Err(_) => {
                    self.sub = None;
                    return None;
                }
            }
        }
    }

    /// A bookmark at the current position.
    pub fn bookmark(&self) -> Option<WatchItem> {
        let sub = self.sub.as_ref()?;
        Some(WatchItem {
            type_: "BOOKMARK",
            object: bookmark(&self.info, sub.position(), false),
        })
    }
}

/// Age text for messages.
pub fn age_of(t: &Time) -> String {
    human_duration(chrono::Utc::now() - t.0)
}

/// The objects under `prefix` in `sm` with their resourceVersions, as JSON
/// and typed; objects that do not decode as `T` are skipped.
pub fn list_decoded<T: serde::de::DeserializeOwned>(
    sm: &crate::store::StateMachine,
    prefix: &str,
) -> Vec<(u64, Value, T)> {
    sm.list(prefix, None, 0)
        .0
        .into_iter()
        .filter_map(|(_, s)| {
            let v: Value = serde_json::from_slice(&s.value).ok()?;
            let t: T = serde_json::from_value(v.clone()).ok()?;
            Some((s.rv, v, t))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_compare_equal_but_for_their_resource_version() {
        let a = json!({"kind": "Pod", "metadata": {"name": "p", "resourceVersion": "4", "labels": {"x": "1"}}, "spec": {"a": 1}});
        let same = json!({"kind": "Pod", "metadata": {"labels": {"x": "1"}, "name": "p", "resourceVersion": "9"}, "spec": {"a": 1}});
        let no_rv = json!({"kind": "Pod", "metadata": {"name": "p", "labels": {"x": "1"}}, "spec": {"a": 1}});
        assert!(same_but_rv(&a, &same));
        assert!(same_but_rv(&a, &no_rv) && same_but_rv(&no_rv, &a));
        let label = json!({"kind": "Pod", "metadata": {"name": "p", "resourceVersion": "4", "labels": {"x": "2"}}, "spec": {"a": 1}});
        let spec = json!({"kind": "Pod", "metadata": {"name": "p", "resourceVersion": "4", "labels": {"x": "1"}}, "spec": {"a": 2}});
        let extra = json!({"kind": "Pod", "metadata": {"name": "p", "resourceVersion": "4", "labels": {"x": "1"}}, "spec": {"a": 1}, "status": {}});
        let meta_extra = json!({"kind": "Pod", "metadata": {"name": "p", "uid": "u", "labels": {"x": "1"}}, "spec": {"a": 1}});
        let no_meta = json!({"kind": "Pod", "spec": {"a": 1}});
        for other in [&label, &spec, &extra, &meta_extra, &no_meta] {
            assert!(!same_but_rv(&a, other), "{other}");
            assert!(!same_but_rv(other, &a), "{other}");
        }
        assert!(same_but_rv(&json!([1]), &json!([1])));
        assert!(!same_but_rv(&json!("a"), &json!({})));
        // What the store writes is the object with the new version.
        let stored = stored_at(a.clone(), 12);
        assert_eq!(stored["metadata"]["resourceVersion"], "12");
        assert!(same_but_rv(&stored, &a));
    }

    #[test]
    fn selected_fields_keep_only_the_named_paths() {
        let obj = br#"{"metadata":{"name":"p","namespace":"ns","labels":{"a":"b"}},"spec":{"nodeName":"n1","containers":[{"name":"c"}],"x":{"y":{"z":3}}},"status":{"phase":"Running"}}"#;
        let v = selected_fields(
            obj,
            [
                "spec.nodeName",
                "status.phase",
                "metadata.name",
                "spec.x.y",
                "spec.gone",
                "status.phase.deeper",
            ]
            .into_iter(),
        )
        .unwrap();
        assert_eq!(
            v,
            json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n1", "x": {"y": {"z": 3}}}, "status": {"phase": "Running"}})
        );
        assert_eq!(selected_fields(b"[1]", ["a"].into_iter()), None);
        assert_eq!(selected_fields(b"{", ["a"].into_iter()), None);
    }

    #[test]
    fn field_selectors_match_like_on_the_whole_object() {
        let pods: &'static dyn DynResource = crate::api::registry::Registry::get()
            .find("", "v1", "pods")
            .unwrap();
        let obj = br#"{"metadata":{"name":"p","namespace":"ns"},"spec":{"nodeName":"n1","containers":[{"name":"c","image":"i"}]},"status":{"phase":"Running","nominatedNodeName":null}}"#;
        for (selector, want) in [
            ("spec.nodeName=n1", Some(true)),
            ("spec.nodeName=n2", Some(false)),
            ("spec.nodeName!=n2,status.phase=Running", Some(true)),
            ("metadata.namespace=ns,metadata.name=p", Some(true)),
            ("status.podIP=", Some(true)),
            // Absent: the type's default, whatever it is, both ways.
            ("spec.restartPolicy=Always", None),
            ("spec.schedulerName=default-scheduler", None),
            // Null: answered like on the whole object.
            ("status.nominatedNodeName=", None),
        ] {
            let opts = ListOptions {
                field_selector: Some(selector.into()),
                ..Default::default()
            };
            let f = Filter::new(pods, &opts).unwrap();
            let whole: Value = serde_json::from_slice(obj).unwrap();
            let direct = f.fields.matches(|x| pods.field_value(&whole, x));
            assert_eq!(f.matches(obj), direct, "{selector}");
            if let Some(want) = want {
                assert_eq!(direct, want, "{selector}");
            }
        }
    }
}
