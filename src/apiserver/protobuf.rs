//! Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`),
//! decoded into the JSON object a JSON body would have carried.
//!
//! kubectl's generated clients send built-in types as protobuf: the 4-byte
//! magic `k8s\0`, then a `runtime.Unknown` envelope whose `raw` field holds
//! the object's own message. wasmk is JSON inside, so this module turns that
//! message into a `serde_json::Value` and everything after (admission,
//! validation, storage) stays unchanged. Responses stay JSON: those clients
//! also accept `application/json`.
//!
//! Layout:
//! - [`Reader`]: the wire format (varint, fixed32/64, length-delimited)
//! - [`Message`], [`Field`], [`Ty`]: a schema table, field number -> JSON
//!   name and type, for the message types kubectl sends (field numbers are
//!   those of the `generated.proto` files of k8s.io/api and
//!   k8s.io/apimachinery v0.35)
//! - [`decode`]: envelope + table-driven decoding
//!
//! JSON shape. Go's generated marshallers write every non-pointer field,
//! zero or not, and pointer fields only when set; the Kubernetes server then
//! works on Go structs and writes JSON with `omitempty`. To give the same JSON
//! the Go server would see, each scalar field is either `omit` (a Go value
//! field with `omitempty`: a zero value means unset and is left out) or `keep`
//! (a Go pointer, or a field without `omitempty`: present means present, even
//! when zero, e.g. `replicas: 0`). Nested messages are always written, as Go
//! writes non-pointer structs (`"resources": {}`). A zero `Time` is left out
//! (Go writes `null`). Fields absent from the wire are absent from the JSON,
//! and so are empty repeated and map fields. Fields the table does not know
//! (newer Kubernetes, or types wasmk does not serve, such as ephemeral
//! containers and cloud volume sources) are skipped as protobuf allows.
//! `status` messages are decoded as `{}`: create and update of the main
//! resource ignore status, and kubectl never writes `/status` in protobuf.

use base64::Engine;
use chrono::{DateTime, Datelike, SecondsFormat, Utc};
use serde_json::{Map, Value};

use super::error::ApiError;

/// The prefix of every Kubernetes protobuf body.
pub const MAGIC: &[u8; 4] = b"k8s\0";

/// Deepest message nesting accepted. The deepest real path (a CronJob's
/// pod anti-affinity label selector requirement) is 12 levels.
pub const MAX_DEPTH: usize = 32;

/// Why a protobuf body cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtobufError {
    #[error("the protobuf body does not start with the Kubernetes magic \"k8s\\0\"")]
    MissingMagic,
    #[error("invalid protobuf at {path} (message {message}): {defect}")]
    Malformed {
        /// The innermost message being decoded (`ContainerPort`).
        message: &'static str,
        /// JSON path of the field from the object root
        /// (`spec.template.spec.containers[0].ports[0].containerPort`);
        /// `#N` names a field number the table does not know, `?` a broken tag.
        path: String,
        defect: Defect,
    },
    #[error("protobuf message {message} at {path} nests deeper than {limit} levels")]
    TooDeep {
        message: &'static str,
        path: String,
        limit: usize,
    },
    #[error("the protobuf envelope has no typeMeta (apiVersion and kind)")]
    MissingTypeMeta,
    #[error(
        "protobuf contentEncoding {0:?} is not supported; send the body unencoded or as application/json"
    )]
    UnsupportedEncoding(String),
    #[error(
        "wasmk cannot decode {kind} ({api_version}) from protobuf; send it as application/json"
    )]
    UnsupportedKind { api_version: String, kind: String },
}

/// What is wrong with the bytes of one field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Defect {
    #[error("the input ends inside a {0}")]
    Truncated(&'static str),
    #[error("a varint is longer than 10 bytes")]
    VarintTooLong,
    #[error("wire type {0} is not supported (groups are not used by Kubernetes)")]
    BadWireType(u8),
    #[error("field number {0} is out of range")]
    BadFieldNumber(u64),
    #[error("wire type {found} where {expected} was expected")]
    WrongWireType {
        found: &'static str,
        expected: &'static str,
    },
    #[error("the string is not valid UTF-8")]
    InvalidUtf8,
    #[error("time {seconds}s + {nanos}ns is outside 0001-01-01..9999-12-31 or has bad nanoseconds")]
    InvalidTime { seconds: i64, nanos: i64 },
    #[error("IntOrString type {0} is neither 0 (int) nor 1 (string)")]
    InvalidIntOrStringType(i64),
}

impl ProtobufError {
    /// Prefixes the JSON path of a nested error with the field holding it.
    fn within(self, prefix: &str) -> ProtobufError {
        let join = |path: String| {
            if path.is_empty() {
                prefix.to_string()
            } else {
                format!("{prefix}.{path}")
            }
        };
        match self {
            ProtobufError::Malformed {
                message,
                path,
                defect,
            } => ProtobufError::Malformed {
                message,
                path: join(path),
                defect,
            },
            ProtobufError::TooDeep {
                message,
                path,
                limit,
            } => ProtobufError::TooDeep {
                message,
                path: join(path),
                limit,
            },
            other => other,
        }
    }
}

impl From<ProtobufError> for ApiError {
    fn from(e: ProtobufError) -> ApiError {
        match e {
            ProtobufError::UnsupportedKind { .. } | ProtobufError::UnsupportedEncoding(_) => {
                ApiError::unsupported_media_type(e.to_string())
            }
            _ => ApiError::bad_request(format!(
                "the request body is not valid Kubernetes protobuf: {e}"
            )),
        }
    }
}

// ---------------------------------------------------------------------------
// Wire format

/// One field value as it sits on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wire<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32(u32),
}

impl<'a> Wire<'a> {
    fn name(&self) -> &'static str {
        match self {
            Wire::Varint(_) => "varint",
            Wire::Fixed64(_) => "fixed64",
            Wire::Bytes(_) => "length-delimited",
            Wire::Fixed32(_) => "fixed32",
        }
    }

    fn varint(self) -> Result<u64, Defect> {
        match self {
            Wire::Varint(v) => Ok(v),
            other => Err(Defect::WrongWireType {
                found: other.name(),
                expected: "varint",
            }),
        }
    }

    fn bytes(self) -> Result<&'a [u8], Defect> {
        match self {
            Wire::Bytes(b) => Ok(b),
            other => Err(Defect::WrongWireType {
                found: other.name(),
                expected: "length-delimited",
            }),
        }
    }

    fn string(self) -> Result<&'a str, Defect> {
        std::str::from_utf8(self.bytes()?).map_err(|_| Defect::InvalidUtf8)
    }
}

/// A field number and value, `None` at the end, or the defect with the
/// field number when the tag was readable.
pub type NextField<'a> = Result<Option<(u32, Wire<'a>)>, (Option<u32>, Defect)>;

/// Reads protobuf fields from a byte slice without copying.
#[derive(Clone, Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Whether every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// A base-128 varint of at most 10 bytes.
    pub fn varint(&mut self) -> Result<u64, Defect> {
        let mut value = 0u64;
        for i in 0..10 {
            let b = *self.buf.get(self.pos).ok_or(Defect::Truncated("varint"))?;
            self.pos += 1;
            // The 10th byte holds only the 64th bit.
            if i == 9 && b > 1 {
                return Err(Defect::VarintTooLong);
            }
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(Defect::VarintTooLong)
    }

    fn take(&mut self, n: u64, what: &'static str) -> Result<&'a [u8], Defect> {
        let left = self.buf.len() - self.pos;
        if n > left as u64 {
            return Err(Defect::Truncated(what));
        }
        let start = self.pos;
        self.pos += n as usize;
        Ok(&self.buf[start..self.pos])
    }

    /// The next field, or `None` at the end of the input. On error, the
    /// field number is given when the tag was readable.
    pub fn field(&mut self) -> NextField<'a> {
        if self.is_empty() {
            return Ok(None);
        }
        let key = self.varint().map_err(|d| (None, d))?;
        let num = key >> 3;
        if num == 0 || num > (1 << 29) - 1 {
            return Err((None, Defect::BadFieldNumber(num)));
        }
        let num = num as u32;
        let fail = |d| (Some(num), d);
        let wire = match key & 7 {
            0 => Wire::Varint(self.varint().map_err(fail)?),
            1 => {
                let b = self.take(8, "fixed64").map_err(fail)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                Wire::Fixed64(u64::from_le_bytes(a))
            }
            2 => {
                let n = self.varint().map_err(fail)?;
                Wire::Bytes(self.take(n, "length-delimited value").map_err(fail)?)
            }
            5 => {
                let b = self.take(4, "fixed32").map_err(fail)?;
                let mut a = [0u8; 4];
                a.copy_from_slice(b);
                Wire::Fixed32(u32::from_le_bytes(a))
            }
            t => return Err(fail(Defect::BadWireType(t as u8))),
        };
        Ok(Some((num, wire)))
    }
}

// ---------------------------------------------------------------------------
// Schema

/// A protobuf message type: its name (for errors) and known fields.
#[derive(Debug)]
pub struct Message {
    pub name: &'static str,
    pub fields: &'static [Field],
}

impl Message {
    fn field(&self, num: u32) -> Option<&'static Field> {
        self.fields.iter().find(|f| f.num == num)
    }
}

/// One field of a message: number, JSON name, type and cardinality.
#[derive(Debug)]
pub struct Field {
    pub num: u32,
    pub json: &'static str,
    pub ty: Ty,
    pub card: Card,
}

/// How a field appears in JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Card {
    /// A Go value field with `omitempty`: a zero value is left out.
    Omit,
    /// A Go pointer, or a field without `omitempty`: written even when zero.
    Keep,
    /// A repeated field: a JSON array, left out when empty.
    List,
}

/// The type of a field's value.
#[derive(Clone, Copy, Debug)]
pub enum Ty {
    Str,
    /// `bytes`: base64 in JSON.
    Bytes,
    Bool,
    I32,
    I64,
    /// A nested message: a JSON object.
    Msg(&'static Message),
    /// An embedded Go struct (`json:",inline"`): its fields join the parent's.
    Inline(&'static Message),
    /// `metav1.Time`: RFC 3339, seconds.
    Time,
    /// `metav1.MicroTime`: RFC 3339, microseconds.
    MicroTime,
    /// `metav1.Duration`: Go duration text (`1h2m3.5s`).
    Duration,
    /// `resource.Quantity`: its string form.
    Quantity,
    /// `intstr.IntOrString`: a number or a string.
    IntOrString,
    /// `map<string, V>`: a JSON object.
    Map(MapValue),
}

/// The value type of a map field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapValue {
    Str,
    Bytes,
    Quantity,
}

const fn omit(num: u32, json: &'static str, ty: Ty) -> Field {
    Field {
        num,
        json,
        ty,
        card: Card::Omit,
    }
}

const fn keep(num: u32, json: &'static str, ty: Ty) -> Field {
    Field {
        num,
        json,
        ty,
        card: Card::Keep,
    }
}

const fn list(num: u32, json: &'static str, ty: Ty) -> Field {
    Field {
        num,
        json,
        ty,
        card: Card::List,
    }
}

/// A nested message field; cardinality is irrelevant for singular messages.
const fn msg(num: u32, json: &'static str, m: &'static Message) -> Field {
    keep(num, json, Ty::Msg(m))
}

/// An embedded struct; `proto_name` only names it in errors.
const fn inline(num: u32, proto_name: &'static str, m: &'static Message) -> Field {
    keep(num, proto_name, Ty::Inline(m))
}

const fn map(num: u32, json: &'static str, v: MapValue) -> Field {
    list(num, json, Ty::Map(v))
}

use MapValue as MV;
use Ty::{Bool, I32, I64, IntOrString, Quantity, Str, Time};

macro_rules! message {
    ($id:ident, $name:literal, [$($f:expr),* $(,)?]) => {
        static $id: Message = Message { name: $name, fields: &[$($f),*] };
    };
}

// meta/v1 --------------------------------------------------------------------

message! { OBJECT_META, "ObjectMeta", [
    omit(1, "name", Str),
    omit(2, "generateName", Str),
    omit(3, "namespace", Str),
    omit(4, "selfLink", Str),
    omit(5, "uid", Str),
    omit(6, "resourceVersion", Str),
    omit(7, "generation", I64),
    omit(8, "creationTimestamp", Time),
    keep(9, "deletionTimestamp", Time),
    keep(10, "deletionGracePeriodSeconds", I64),
    map(11, "labels", MV::Str),
    map(12, "annotations", MV::Str),
    list(13, "ownerReferences", Ty::Msg(&OWNER_REFERENCE)),
    list(14, "finalizers", Str),
    // 17 managedFields: server-side apply bookkeeping, not kept by wasmk.
]}

message! { OWNER_REFERENCE, "OwnerReference", [
    keep(1, "kind", Str),
    keep(3, "name", Str),
    keep(4, "uid", Str),
    keep(5, "apiVersion", Str),
    keep(6, "controller", Bool),
    keep(7, "blockOwnerDeletion", Bool),
]}

message! { LABEL_SELECTOR, "LabelSelector", [
    map(1, "matchLabels", MV::Str),
    list(2, "matchExpressions", Ty::Msg(&LABEL_SELECTOR_REQUIREMENT)),
]}

message! { LABEL_SELECTOR_REQUIREMENT, "LabelSelectorRequirement", [
    keep(1, "key", Str),
    keep(2, "operator", Str),
    list(3, "values", Str),
]}

message! { DELETE_OPTIONS, "DeleteOptions", [
    keep(1, "gracePeriodSeconds", I64),
    msg(2, "preconditions", &PRECONDITIONS),
    keep(3, "orphanDependents", Bool),
    keep(4, "propagationPolicy", Str),
    list(5, "dryRun", Str),
    keep(6, "ignoreStoreReadErrorWithClusterBreakingPotential", Bool),
]}

message! { PRECONDITIONS, "Preconditions", [keep(1, "uid", Str), keep(2, "resourceVersion", Str)] }

/// Status messages are not decoded (see the module documentation).
static STATUS_NOT_DECODED: Message = Message {
    name: "status",
    fields: &[],
};

// core/v1 --------------------------------------------------------------------

message! { NAMESPACE, "Namespace", [
    msg(1, "metadata", &OBJECT_META),
    msg(2, "spec", &NAMESPACE_SPEC),
    msg(3, "status", &NAMESPACE_STATUS),
]}

message! { NAMESPACE_SPEC, "NamespaceSpec", [list(1, "finalizers", Str)] }

message! { NAMESPACE_STATUS, "NamespaceStatus", [omit(1, "phase", Str)] }

message! { CONFIG_MAP, "ConfigMap", [
    msg(1, "metadata", &OBJECT_META),
    map(2, "data", MV::Str),
    map(3, "binaryData", MV::Bytes),
    keep(4, "immutable", Bool),
]}

message! { SECRET, "Secret", [
    msg(1, "metadata", &OBJECT_META),
    map(2, "data", MV::Bytes),
    omit(3, "type", Str),
    map(4, "stringData", MV::Str),
    keep(5, "immutable", Bool),
]}

message! { SERVICE, "Service", [
    msg(1, "metadata", &OBJECT_META),
    msg(2, "spec", &SERVICE_SPEC),
    msg(3, "status", &STATUS_NOT_DECODED),
]}

message! { SERVICE_SPEC, "ServiceSpec", [
    list(1, "ports", Ty::Msg(&SERVICE_PORT)),
    map(2, "selector", MV::Str),
    omit(3, "clusterIP", Str),
    omit(4, "type", Str),
    list(5, "externalIPs", Str),
    omit(7, "sessionAffinity", Str),
    omit(8, "loadBalancerIP", Str),
    list(9, "loadBalancerSourceRanges", Str),
    omit(10, "externalName", Str),
    omit(11, "externalTrafficPolicy", Str),
    omit(12, "healthCheckNodePort", I32),
    omit(13, "publishNotReadyAddresses", Bool),
    msg(14, "sessionAffinityConfig", &SESSION_AFFINITY_CONFIG),
    keep(17, "ipFamilyPolicy", Str),
    list(18, "clusterIPs", Str),
    list(19, "ipFamilies", Str),
    keep(20, "allocateLoadBalancerNodePorts", Bool),
    keep(21, "loadBalancerClass", Str),
    keep(22, "internalTrafficPolicy", Str),
    keep(23, "trafficDistribution", Str),
]}

message! { SERVICE_PORT, "ServicePort", [
    omit(1, "name", Str),
    omit(2, "protocol", Str),
    keep(3, "port", I32),
    omit(4, "targetPort", IntOrString),
    omit(5, "nodePort", I32),
    keep(6, "appProtocol", Str),
]}

message! { SESSION_AFFINITY_CONFIG, "SessionAffinityConfig", [
    msg(1, "clientIP", &CLIENT_IP_CONFIG),
]}

message! { CLIENT_IP_CONFIG, "ClientIPConfig", [keep(1, "timeoutSeconds", I32)] }

message! { POD, "Pod", [
    msg(1, "metadata", &OBJECT_META),
    msg(2, "spec", &POD_SPEC),
    msg(3, "status", &STATUS_NOT_DECODED),
]}

message! { POD_TEMPLATE_SPEC, "PodTemplateSpec", [
    msg(1, "metadata", &OBJECT_META),
    msg(2, "spec", &POD_SPEC),
]}

message! { POD_SPEC, "PodSpec", [
    list(1, "volumes", Ty::Msg(&VOLUME)),
    list(2, "containers", Ty::Msg(&CONTAINER)),
    omit(3, "restartPolicy", Str),
    keep(4, "terminationGracePeriodSeconds", I64),
    keep(5, "activeDeadlineSeconds", I64),
    omit(6, "dnsPolicy", Str),
    map(7, "nodeSelector", MV::Str),
    omit(8, "serviceAccountName", Str),
    omit(9, "serviceAccount", Str),
    omit(10, "nodeName", Str),
    omit(11, "hostNetwork", Bool),
    omit(12, "hostPID", Bool),
    omit(13, "hostIPC", Bool),
    msg(14, "securityContext", &POD_SECURITY_CONTEXT),
    list(15, "imagePullSecrets", Ty::Msg(&LOCAL_OBJECT_REFERENCE)),
    omit(16, "hostname", Str),
    omit(17, "subdomain", Str),
    msg(18, "affinity", &AFFINITY),
    omit(19, "schedulerName", Str),
    list(20, "initContainers", Ty::Msg(&CONTAINER)),
    keep(21, "automountServiceAccountToken", Bool),
    list(22, "tolerations", Ty::Msg(&TOLERATION)),
    list(23, "hostAliases", Ty::Msg(&HOST_ALIAS)),
    omit(24, "priorityClassName", Str),
    keep(25, "priority", I32),
    msg(26, "dnsConfig", &POD_DNS_CONFIG),
    keep(27, "shareProcessNamespace", Bool),
    list(28, "readinessGates", Ty::Msg(&POD_READINESS_GATE)),
    keep(29, "runtimeClassName", Str),
    keep(30, "enableServiceLinks", Bool),
    keep(31, "preemptionPolicy", Str),
    map(32, "overhead", MV::Quantity),
    list(33, "topologySpreadConstraints", Ty::Msg(&TOPOLOGY_SPREAD_CONSTRAINT)),
    // 34 ephemeralContainers: added through their own subresource only.
    keep(35, "setHostnameAsFQDN", Bool),
    msg(36, "os", &POD_OS),
    keep(37, "hostUsers", Bool),
    list(38, "schedulingGates", Ty::Msg(&POD_SCHEDULING_GATE)),
    list(39, "resourceClaims", Ty::Msg(&POD_RESOURCE_CLAIM)),
    msg(40, "resources", &RESOURCE_REQUIREMENTS),
    keep(41, "hostnameOverride", Str),
]}

message! { CONTAINER, "Container", [
    keep(1, "name", Str),
    omit(2, "image", Str),
    list(3, "command", Str),
    list(4, "args", Str),
    omit(5, "workingDir", Str),
    list(6, "ports", Ty::Msg(&CONTAINER_PORT)),
    list(7, "env", Ty::Msg(&ENV_VAR)),
    msg(8, "resources", &RESOURCE_REQUIREMENTS),
    list(9, "volumeMounts", Ty::Msg(&VOLUME_MOUNT)),
    msg(10, "livenessProbe", &PROBE),
    msg(11, "readinessProbe", &PROBE),
    msg(12, "lifecycle", &LIFECYCLE),
    omit(13, "terminationMessagePath", Str),
    omit(14, "imagePullPolicy", Str),
    msg(15, "securityContext", &SECURITY_CONTEXT),
    omit(16, "stdin", Bool),
    omit(17, "stdinOnce", Bool),
    omit(18, "tty", Bool),
    list(19, "envFrom", Ty::Msg(&ENV_FROM_SOURCE)),
    omit(20, "terminationMessagePolicy", Str),
    list(21, "volumeDevices", Ty::Msg(&VOLUME_DEVICE)),
    msg(22, "startupProbe", &PROBE),
    list(23, "resizePolicy", Ty::Msg(&CONTAINER_RESIZE_POLICY)),
    keep(24, "restartPolicy", Str),
    list(25, "restartPolicyRules", Ty::Msg(&CONTAINER_RESTART_RULE)),
]}

message! { CONTAINER_PORT, "ContainerPort", [
    omit(1, "name", Str),
    omit(2, "hostPort", I32),
    keep(3, "containerPort", I32),
    omit(4, "protocol", Str),
    omit(5, "hostIP", Str),
]}

message! { ENV_VAR, "EnvVar", [
    keep(1, "name", Str),
    omit(2, "value", Str),
    msg(3, "valueFrom", &ENV_VAR_SOURCE),
]}

message! { ENV_VAR_SOURCE, "EnvVarSource", [
    msg(1, "fieldRef", &OBJECT_FIELD_SELECTOR),
    msg(2, "resourceFieldRef", &RESOURCE_FIELD_SELECTOR),
    msg(3, "configMapKeyRef", &CONFIG_MAP_KEY_SELECTOR),
    msg(4, "secretKeyRef", &SECRET_KEY_SELECTOR),
    msg(5, "fileKeyRef", &FILE_KEY_SELECTOR),
]}

message! { LOCAL_OBJECT_REFERENCE, "LocalObjectReference", [omit(1, "name", Str)] }

message! { CONFIG_MAP_KEY_SELECTOR, "ConfigMapKeySelector", [
    inline(1, "localObjectReference", &LOCAL_OBJECT_REFERENCE),
    keep(2, "key", Str),
    keep(3, "optional", Bool),
]}

message! { SECRET_KEY_SELECTOR, "SecretKeySelector", [
    inline(1, "localObjectReference", &LOCAL_OBJECT_REFERENCE),
    keep(2, "key", Str),
    keep(3, "optional", Bool),
]}

message! { OBJECT_FIELD_SELECTOR, "ObjectFieldSelector", [
    omit(1, "apiVersion", Str),
    keep(2, "fieldPath", Str),
]}

message! { RESOURCE_FIELD_SELECTOR, "ResourceFieldSelector", [
    omit(1, "containerName", Str),
    keep(2, "resource", Str),
    omit(3, "divisor", Quantity),
]}

message! { FILE_KEY_SELECTOR, "FileKeySelector", [
    keep(1, "volumeName", Str),
    keep(2, "path", Str),
    keep(3, "key", Str),
    keep(4, "optional", Bool),
]}

message! { ENV_FROM_SOURCE, "EnvFromSource", [
    omit(1, "prefix", Str),
    msg(2, "configMapRef", &CONFIG_MAP_ENV_SOURCE),
    msg(3, "secretRef", &SECRET_ENV_SOURCE),
]}

message! { CONFIG_MAP_ENV_SOURCE, "ConfigMapEnvSource", [
    inline(1, "localObjectReference", &LOCAL_OBJECT_REFERENCE),
    keep(2, "optional", Bool),
]}

message! { SECRET_ENV_SOURCE, "SecretEnvSource", [
    inline(1, "localObjectReference", &LOCAL_OBJECT_REFERENCE),
    keep(2, "optional", Bool),
]}

message! { RESOURCE_REQUIREMENTS, "ResourceRequirements", [
    map(1, "limits", MV::Quantity),
    map(2, "requests", MV::Quantity),
    list(3, "claims", Ty::Msg(&RESOURCE_CLAIM)),
]}

message! { RESOURCE_CLAIM, "ResourceClaim", [keep(1, "name", Str), omit(2, "request", Str)] }

message! { VOLUME_MOUNT, "VolumeMount", [
    keep(1, "name", Str),
    omit(2, "readOnly", Bool),
    keep(3, "mountPath", Str),
    omit(4, "subPath", Str),
    keep(5, "mountPropagation", Str),
    omit(6, "subPathExpr", Str),
    keep(7, "recursiveReadOnly", Str),
]}

message! { VOLUME_DEVICE, "VolumeDevice", [keep(1, "name", Str), keep(2, "devicePath", Str)] }

message! { VOLUME, "Volume", [keep(1, "name", Str), inline(2, "volumeSource", &VOLUME_SOURCE)] }

// Cloud and network volume sources are left out: wasmk has no use for them.
message! { VOLUME_SOURCE, "VolumeSource", [
    msg(1, "hostPath", &HOST_PATH_VOLUME_SOURCE),
    msg(2, "emptyDir", &EMPTY_DIR_VOLUME_SOURCE),
    msg(6, "secret", &SECRET_VOLUME_SOURCE),
    msg(10, "persistentVolumeClaim", &PVC_VOLUME_SOURCE),
    msg(16, "downwardAPI", &DOWNWARD_API_VOLUME_SOURCE),
    msg(19, "configMap", &CONFIG_MAP_VOLUME_SOURCE),
    msg(26, "projected", &PROJECTED_VOLUME_SOURCE),
    msg(28, "csi", &CSI_VOLUME_SOURCE),
    msg(30, "image", &IMAGE_VOLUME_SOURCE),
]}

message! { HOST_PATH_VOLUME_SOURCE, "HostPathVolumeSource", [
    keep(1, "path", Str),
    keep(2, "type", Str),
]}

message! { EMPTY_DIR_VOLUME_SOURCE, "EmptyDirVolumeSource", [
    omit(1, "medium", Str),
    keep(2, "sizeLimit", Quantity),
]}

message! { SECRET_VOLUME_SOURCE, "SecretVolumeSource", [
    omit(1, "secretName", Str),
    list(2, "items", Ty::Msg(&KEY_TO_PATH)),
    keep(3, "defaultMode", I32),
    keep(4, "optional", Bool),
]}

message! { CONFIG_MAP_VOLUME_SOURCE, "ConfigMapVolumeSource", [
    inline(1, "localObjectReference", &LOCAL_OBJECT_REFERENCE),
    list(2, "items", Ty::Msg(&KEY_TO_PATH)),
    keep(3, "defaultMode", I32),
    keep(4, "optional", Bool),
]}

message! { KEY_TO_PATH, "KeyToPath", [
    keep(1, "key", Str),
    keep(2, "path", Str),
    keep(3, "mode", I32),
]}

message! { PVC_VOLUME_SOURCE, "PersistentVolumeClaimVolumeSource", [
    keep(1, "claimName", Str),
    omit(2, "readOnly", Bool),
]}

message! { DOWNWARD_API_VOLUME_SOURCE, "DownwardAPIVolumeSource", [
    list(1, "items", Ty::Msg(&DOWNWARD_API_VOLUME_FILE)),
    keep(2, "defaultMode", I32),
]}

message! { DOWNWARD_API_VOLUME_FILE, "DownwardAPIVolumeFile", [
    keep(1, "path", Str),
    msg(2, "fieldRef", &OBJECT_FIELD_SELECTOR),
    msg(3, "resourceFieldRef", &RESOURCE_FIELD_SELECTOR),
    keep(4, "mode", I32),
]}

message! { PROJECTED_VOLUME_SOURCE, "ProjectedVolumeSource", [
    list(1, "sources", Ty::Msg(&VOLUME_PROJECTION)),
    keep(2, "defaultMode", I32),
]}

message! { VOLUME_PROJECTION, "VolumeProjection", [
    msg(1, "secret", &SECRET_PROJECTION),
    msg(2, "downwardAPI", &DOWNWARD_API_PROJECTION),
    msg(3, "configMap", &CONFIG_MAP_PROJECTION),
    msg(4, "serviceAccountToken", &SERVICE_ACCOUNT_TOKEN_PROJECTION),
]}

message! { SECRET_PROJECTION, "SecretProjection", [
    inline(1, "localObjectReference", &LOCAL_OBJECT_REFERENCE),
    list(2, "items", Ty::Msg(&KEY_TO_PATH)),
    keep(4, "optional", Bool),
]}

message! { CONFIG_MAP_PROJECTION, "ConfigMapProjection", [
    inline(1, "localObjectReference", &LOCAL_OBJECT_REFERENCE),
    list(2, "items", Ty::Msg(&KEY_TO_PATH)),
    keep(4, "optional", Bool),
]}

message! { DOWNWARD_API_PROJECTION, "DownwardAPIProjection", [
    list(1, "items", Ty::Msg(&DOWNWARD_API_VOLUME_FILE)),
]}

message! { SERVICE_ACCOUNT_TOKEN_PROJECTION, "ServiceAccountTokenProjection", [
    omit(1, "audience", Str),
    keep(2, "expirationSeconds", I64),
    keep(3, "path", Str),
]}

message! { CSI_VOLUME_SOURCE, "CSIVolumeSource", [
    keep(1, "driver", Str),
    keep(2, "readOnly", Bool),
    keep(3, "fsType", Str),
    map(4, "volumeAttributes", MV::Str),
    msg(5, "nodePublishSecretRef", &LOCAL_OBJECT_REFERENCE),
]}

message! { IMAGE_VOLUME_SOURCE, "ImageVolumeSource", [
    omit(1, "reference", Str),
    omit(2, "pullPolicy", Str),
]}

message! { PROBE, "Probe", [
    inline(1, "handler", &PROBE_HANDLER),
    omit(2, "initialDelaySeconds", I32),
    omit(3, "timeoutSeconds", I32),
    omit(4, "periodSeconds", I32),
    omit(5, "successThreshold", I32),
    omit(6, "failureThreshold", I32),
    keep(7, "terminationGracePeriodSeconds", I64),
]}

message! { PROBE_HANDLER, "ProbeHandler", [
    msg(1, "exec", &EXEC_ACTION),
    msg(2, "httpGet", &HTTP_GET_ACTION),
    msg(3, "tcpSocket", &TCP_SOCKET_ACTION),
    msg(4, "grpc", &GRPC_ACTION),
]}

message! { EXEC_ACTION, "ExecAction", [list(1, "command", Str)] }

message! { HTTP_GET_ACTION, "HTTPGetAction", [
    omit(1, "path", Str),
    keep(2, "port", IntOrString),
    omit(3, "host", Str),
    omit(4, "scheme", Str),
    list(5, "httpHeaders", Ty::Msg(&HTTP_HEADER)),
]}

message! { HTTP_HEADER, "HTTPHeader", [keep(1, "name", Str), keep(2, "value", Str)] }

message! { TCP_SOCKET_ACTION, "TCPSocketAction", [
    keep(1, "port", IntOrString),
    omit(2, "host", Str),
]}

message! { GRPC_ACTION, "GRPCAction", [keep(1, "port", I32), keep(2, "service", Str)] }

message! { LIFECYCLE, "Lifecycle", [
    msg(1, "postStart", &LIFECYCLE_HANDLER),
    msg(2, "preStop", &LIFECYCLE_HANDLER),
    keep(3, "stopSignal", Str),
]}

message! { LIFECYCLE_HANDLER, "LifecycleHandler", [
    msg(1, "exec", &EXEC_ACTION),
    msg(2, "httpGet", &HTTP_GET_ACTION),
    msg(3, "tcpSocket", &TCP_SOCKET_ACTION),
    msg(4, "sleep", &SLEEP_ACTION),
]}

message! { SLEEP_ACTION, "SleepAction", [keep(1, "seconds", I64)] }

message! { TOLERATION, "Toleration", [
    omit(1, "key", Str),
    omit(2, "operator", Str),
    omit(3, "value", Str),
    omit(4, "effect", Str),
    keep(5, "tolerationSeconds", I64),
]}

message! { AFFINITY, "Affinity", [
    msg(1, "nodeAffinity", &NODE_AFFINITY),
    msg(2, "podAffinity", &POD_AFFINITY),
    msg(3, "podAntiAffinity", &POD_ANTI_AFFINITY),
]}

message! { NODE_AFFINITY, "NodeAffinity", [
    msg(1, "requiredDuringSchedulingIgnoredDuringExecution", &NODE_SELECTOR),
    list(2, "preferredDuringSchedulingIgnoredDuringExecution", Ty::Msg(&PREFERRED_SCHEDULING_TERM)),
]}

message! { NODE_SELECTOR, "NodeSelector", [
    list(1, "nodeSelectorTerms", Ty::Msg(&NODE_SELECTOR_TERM)),
]}

message! { NODE_SELECTOR_TERM, "NodeSelectorTerm", [
    list(1, "matchExpressions", Ty::Msg(&NODE_SELECTOR_REQUIREMENT)),
    list(2, "matchFields", Ty::Msg(&NODE_SELECTOR_REQUIREMENT)),
]}

message! { NODE_SELECTOR_REQUIREMENT, "NodeSelectorRequirement", [
    keep(1, "key", Str),
    keep(2, "operator", Str),
    list(3, "values", Str),
]}

message! { PREFERRED_SCHEDULING_TERM, "PreferredSchedulingTerm", [
    keep(1, "weight", I32),
    msg(2, "preference", &NODE_SELECTOR_TERM),
]}

message! { POD_AFFINITY, "PodAffinity", [
    list(1, "requiredDuringSchedulingIgnoredDuringExecution", Ty::Msg(&POD_AFFINITY_TERM)),
    list(2, "preferredDuringSchedulingIgnoredDuringExecution", Ty::Msg(&WEIGHTED_POD_AFFINITY_TERM)),
]}

message! { POD_ANTI_AFFINITY, "PodAntiAffinity", [
    list(1, "requiredDuringSchedulingIgnoredDuringExecution", Ty::Msg(&POD_AFFINITY_TERM)),
    list(2, "preferredDuringSchedulingIgnoredDuringExecution", Ty::Msg(&WEIGHTED_POD_AFFINITY_TERM)),
]}

message! { POD_AFFINITY_TERM, "PodAffinityTerm", [
    msg(1, "labelSelector", &LABEL_SELECTOR),
    list(2, "namespaces", Str),
    keep(3, "topologyKey", Str),
    msg(4, "namespaceSelector", &LABEL_SELECTOR),
    list(5, "matchLabelKeys", Str),
    list(6, "mismatchLabelKeys", Str),
]}

message! { WEIGHTED_POD_AFFINITY_TERM, "WeightedPodAffinityTerm", [
    keep(1, "weight", I32),
    msg(2, "podAffinityTerm", &POD_AFFINITY_TERM),
]}

message! { POD_SECURITY_CONTEXT, "PodSecurityContext", [
    msg(1, "seLinuxOptions", &SE_LINUX_OPTIONS),
    keep(2, "runAsUser", I64),
    keep(3, "runAsNonRoot", Bool),
    list(4, "supplementalGroups", I64),
    keep(5, "fsGroup", I64),
    keep(6, "runAsGroup", I64),
    list(7, "sysctls", Ty::Msg(&SYSCTL)),
    msg(8, "windowsOptions", &WINDOWS_SECURITY_CONTEXT_OPTIONS),
    keep(9, "fsGroupChangePolicy", Str),
    msg(10, "seccompProfile", &SECCOMP_PROFILE),
    msg(11, "appArmorProfile", &APP_ARMOR_PROFILE),
    keep(12, "supplementalGroupsPolicy", Str),
    keep(13, "seLinuxChangePolicy", Str),
]}

message! { SECURITY_CONTEXT, "SecurityContext", [
    msg(1, "capabilities", &CAPABILITIES),
    keep(2, "privileged", Bool),
    msg(3, "seLinuxOptions", &SE_LINUX_OPTIONS),
    keep(4, "runAsUser", I64),
    keep(5, "runAsNonRoot", Bool),
    keep(6, "readOnlyRootFilesystem", Bool),
    keep(7, "allowPrivilegeEscalation", Bool),
    keep(8, "runAsGroup", I64),
    keep(9, "procMount", Str),
    msg(10, "windowsOptions", &WINDOWS_SECURITY_CONTEXT_OPTIONS),
    msg(11, "seccompProfile", &SECCOMP_PROFILE),
    msg(12, "appArmorProfile", &APP_ARMOR_PROFILE),
]}

message! { CAPABILITIES, "Capabilities", [list(1, "add", Str), list(2, "drop", Str)] }

message! { SE_LINUX_OPTIONS, "SELinuxOptions", [
    omit(1, "user", Str),
    omit(2, "role", Str),
    omit(3, "type", Str),
    omit(4, "level", Str),
]}

message! { WINDOWS_SECURITY_CONTEXT_OPTIONS, "WindowsSecurityContextOptions", [
    keep(1, "gmsaCredentialSpecName", Str),
    keep(2, "gmsaCredentialSpec", Str),
    keep(3, "runAsUserName", Str),
    keep(4, "hostProcess", Bool),
]}

message! { SECCOMP_PROFILE, "SeccompProfile", [
    keep(1, "type", Str),
    keep(2, "localhostProfile", Str),
]}

message! { APP_ARMOR_PROFILE, "AppArmorProfile", [
    keep(1, "type", Str),
    keep(2, "localhostProfile", Str),
]}

message! { SYSCTL, "Sysctl", [keep(1, "name", Str), keep(2, "value", Str)] }

message! { HOST_ALIAS, "HostAlias", [keep(1, "ip", Str), list(2, "hostnames", Str)] }

message! { POD_DNS_CONFIG, "PodDNSConfig", [
    list(1, "nameservers", Str),
    list(2, "searches", Str),
    list(3, "options", Ty::Msg(&POD_DNS_CONFIG_OPTION)),
]}

message! { POD_DNS_CONFIG_OPTION, "PodDNSConfigOption", [
    omit(1, "name", Str),
    keep(2, "value", Str),
]}

message! { POD_READINESS_GATE, "PodReadinessGate", [keep(1, "conditionType", Str)] }

message! { TOPOLOGY_SPREAD_CONSTRAINT, "TopologySpreadConstraint", [
    keep(1, "maxSkew", I32),
    keep(2, "topologyKey", Str),
    keep(3, "whenUnsatisfiable", Str),
    msg(4, "labelSelector", &LABEL_SELECTOR),
    keep(5, "minDomains", I32),
    keep(6, "nodeAffinityPolicy", Str),
    keep(7, "nodeTaintsPolicy", Str),
    list(8, "matchLabelKeys", Str),
]}

message! { POD_OS, "PodOS", [keep(1, "name", Str)] }

message! { POD_SCHEDULING_GATE, "PodSchedulingGate", [keep(1, "name", Str)] }

message! { POD_RESOURCE_CLAIM, "PodResourceClaim", [
    keep(1, "name", Str),
    keep(3, "resourceClaimName", Str),
    keep(4, "resourceClaimTemplateName", Str),
]}

message! { CONTAINER_RESIZE_POLICY, "ContainerResizePolicy", [
    keep(1, "resourceName", Str),
    keep(2, "restartPolicy", Str),
]}

message! { CONTAINER_RESTART_RULE, "ContainerRestartRule", [
    omit(1, "action", Str),
    msg(2, "exitCodes", &CONTAINER_RESTART_RULE_ON_EXIT_CODES),
]}

message! { CONTAINER_RESTART_RULE_ON_EXIT_CODES, "ContainerRestartRuleOnExitCodes", [
    omit(1, "operator", Str),
    list(2, "values", I32),
]}

message! { RESOURCE_QUOTA, "ResourceQuota", [
    msg(1, "metadata", &OBJECT_META),
    msg(2, "spec", &RESOURCE_QUOTA_SPEC),
    msg(3, "status", &RESOURCE_QUOTA_STATUS),
]}

message! { RESOURCE_QUOTA_SPEC, "ResourceQuotaSpec", [
    map(1, "hard", MV::Quantity),
    list(2, "scopes", Str),
    msg(3, "scopeSelector", &SCOPE_SELECTOR),
]}

message! { RESOURCE_QUOTA_STATUS, "ResourceQuotaStatus", [
    map(1, "hard", MV::Quantity),
    map(2, "used", MV::Quantity),
]}

message! { SCOPE_SELECTOR, "ScopeSelector", [
    list(1, "matchExpressions", Ty::Msg(&SCOPED_RESOURCE_SELECTOR_REQUIREMENT)),
]}

message! { SCOPED_RESOURCE_SELECTOR_REQUIREMENT, "ScopedResourceSelectorRequirement", [
    keep(1, "scopeName", Str),
    keep(2, "operator", Str),
    list(3, "values", Str),
]}

message! { LIMIT_RANGE, "LimitRange", [
    msg(1, "metadata", &OBJECT_META),
    msg(2, "spec", &LIMIT_RANGE_SPEC),
]}

message! { LIMIT_RANGE_SPEC, "LimitRangeSpec", [list(1, "limits", Ty::Msg(&LIMIT_RANGE_ITEM))] }

message! { LIMIT_RANGE_ITEM, "LimitRangeItem", [
    keep(1, "type", Str),
    map(2, "max", MV::Quantity),
    map(3, "min", MV::Quantity),
    map(4, "default", MV::Quantity),
    map(5, "defaultRequest", MV::Quantity),
    map(6, "maxLimitRequestRatio", MV::Quantity),
]}

message! { REPLICATION_CONTROLLER, "ReplicationController", [
    msg(1, "metadata", &OBJECT_META),
    msg(2, "spec", &REPLICATION_CONTROLLER_SPEC),
    msg(3, "status", &STATUS_NOT_DECODED),
]}

message! { REPLICATION_CONTROLLER_SPEC, "ReplicationControllerSpec", [
    keep(1, "replicas", I32),
    map(2, "selector", MV::Str),
    msg(3, "template", &POD_TEMPLATE_SPEC),
    omit(4, "minReadySeconds", I32),
]}

message! { ENDPOINTS, "Endpoints", [
    msg(1, "metadata", &OBJECT_META),
    list(2, "subsets", Ty::Msg(&ENDPOINT_SUBSET)),
]}

message! { ENDPOINT_SUBSET, "EndpointSubset", [
    list(1, "addresses", Ty::Msg(&ENDPOINT_ADDRESS)),
    list(2, "notReadyAddresses", Ty::Msg(&ENDPOINT_ADDRESS)),
    list(3, "ports", Ty::Msg(&ENDPOINT_PORT)),
]}

message! { ENDPOINT_ADDRESS, "EndpointAddress", [
    keep(1, "ip", Str),
    msg(2, "targetRef", &OBJECT_REFERENCE),
    omit(3, "hostname", Str),
    keep(4, "nodeName", Str),
]}

message! { ENDPOINT_PORT, "EndpointPort", [
    omit(1, "name", Str),
    keep(2, "port", I32),
    omit(3, "protocol", Str),
    keep(4, "appProtocol", Str),
]}

message! { OBJECT_REFERENCE, "ObjectReference", [
    omit(1, "kind", Str),
    omit(2, "namespace", Str),
    omit(3, "name", Str),
    omit(4, "uid", Str),
    omit(5, "apiVersion", Str),
    omit(6, "resourceVersion", Str),
    omit(7, "fieldPath", Str),
]}

message! { EVENT, "Event", [
    msg(1, "metadata", &OBJECT_META),
    msg(2, "involvedObject", &OBJECT_REFERENCE),
    omit(3, "reason", Str),
    omit(4, "message", Str),
    msg(5, "source", &EVENT_SOURCE),
    omit(6, "firstTimestamp", Time),
    omit(7, "lastTimestamp", Time),
    omit(8, "count", I32),
    omit(9, "type", Str),
    omit(10, "eventTime", Ty::MicroTime),
    msg(11, "series", &EVENT_SERIES),
    omit(12, "action", Str),
    msg(13, "related", &OBJECT_REFERENCE),
    keep(14, "reportingComponent", Str),
    keep(15, "reportingInstance", Str),
]}

message! { EVENT_SOURCE, "EventSource", [omit(1, "component", Str), omit(2, "host", Str)] }

message! { EVENT_SERIES, "EventSeries", [
    omit(1, "count", I32),
    omit(2, "lastObservedTime", Ty::MicroTime),
]}

// coordination.k8s.io/v1 -----------------------------------------------------

message! { LEASE, "Lease", [msg(1, "metadata", &OBJECT_META), msg(2, "spec", &LEASE_SPEC)] }

message! { LEASE_SPEC, "LeaseSpec", [
    keep(1, "holderIdentity", Str),
    keep(2, "leaseDurationSeconds", I32),
    keep(3, "acquireTime", Ty::MicroTime),
    keep(4, "renewTime", Ty::MicroTime),
    keep(5, "leaseTransitions", I32),
    keep(6, "strategy", Str),
    keep(7, "preferredHolder", Str),
]}

// apps/v1 --------------------------------------------------------------------

message! { DEPLOYMENT, "Deployment", [
    msg(1, "metadata", &OBJECT_META),
    msg(2, "spec", &DEPLOYMENT_SPEC),
    msg(3, "status", &STATUS_NOT_DECODED),
]}

message! { DEPLOYMENT_SPEC, "DeploymentSpec", [
    keep(1, "replicas", I32),
    msg(2, "selector", &LABEL_SELECTOR),
    msg(3, "template", &POD_TEMPLATE_SPEC),
    msg(4, "strategy", &DEPLOYMENT_STRATEGY),
    omit(5, "minReadySeconds", I32),
    keep(6, "revisionHistoryLimit", I32),
    omit(7, "paused", Bool),
    keep(9, "progressDeadlineSeconds", I32),
]}

message! { DEPLOYMENT_STRATEGY, "DeploymentStrategy", [
    omit(1, "type", Str),
    msg(2, "rollingUpdate", &ROLLING_UPDATE_DEPLOYMENT),
]}

message! { ROLLING_UPDATE_DEPLOYMENT, "RollingUpdateDeployment", [
    keep(1, "maxUnavailable", IntOrString),
    keep(2, "maxSurge", IntOrString),
]}

message! { REPLICA_SET, "ReplicaSet", [
    msg(1, "metadata", &OBJECT_META),
    msg(2, "spec", &REPLICA_SET_SPEC),
    msg(3, "status", &STATUS_NOT_DECODED),
]}

message! { REPLICA_SET_SPEC, "ReplicaSetSpec", [
    keep(1, "replicas", I32),
    msg(2, "selector", &LABEL_SELECTOR),
    msg(3, "template", &POD_TEMPLATE_SPEC),
    omit(4, "minReadySeconds", I32),
]}

message! { DAEMON_SET, "DaemonSet", [
    msg(1, "metadata", &OBJECT_META),
    msg(2, "spec", &DAEMON_SET_SPEC),
    msg(3, "status", &STATUS_NOT_DECODED),
]}

message! { DAEMON_SET_SPEC, "DaemonSetSpec", [
    msg(1, "selector", &LABEL_SELECTOR),
    msg(2, "template", &POD_TEMPLATE_SPEC),
    msg(3, "updateStrategy", &DAEMON_SET_UPDATE_STRATEGY),
    omit(4, "minReadySeconds", I32),
    keep(6, "revisionHistoryLimit", I32),
]}

message! { DAEMON_SET_UPDATE_STRATEGY, "DaemonSetUpdateStrategy", [
    omit(1, "type", Str),
    msg(2, "rollingUpdate", &ROLLING_UPDATE_DAEMON_SET),
]}

message! { ROLLING_UPDATE_DAEMON_SET, "RollingUpdateDaemonSet", [
    keep(1, "maxUnavailable", IntOrString),
    keep(2, "maxSurge", IntOrString),
]}

// batch/v1 -------------------------------------------------------------------

message! { JOB, "Job", [
    msg(1, "metadata", &OBJECT_META),
    msg(2, "spec", &JOB_SPEC),
    msg(3, "status", &STATUS_NOT_DECODED),
]}

message! { JOB_SPEC, "JobSpec", [
    keep(1, "parallelism", I32),
    keep(2, "completions", I32),
    keep(3, "activeDeadlineSeconds", I64),
    msg(4, "selector", &LABEL_SELECTOR),
    keep(5, "manualSelector", Bool),
    msg(6, "template", &POD_TEMPLATE_SPEC),
    keep(7, "backoffLimit", I32),
    keep(8, "ttlSecondsAfterFinished", I32),
    keep(9, "completionMode", Str),
    keep(10, "suspend", Bool),
    msg(11, "podFailurePolicy", &POD_FAILURE_POLICY),
    keep(12, "backoffLimitPerIndex", I32),
    keep(13, "maxFailedIndexes", I32),
    keep(14, "podReplacementPolicy", Str),
    keep(15, "managedBy", Str),
    msg(16, "successPolicy", &SUCCESS_POLICY),
]}

message! { POD_FAILURE_POLICY, "PodFailurePolicy", [
    list(1, "rules", Ty::Msg(&POD_FAILURE_POLICY_RULE)),
]}

message! { POD_FAILURE_POLICY_RULE, "PodFailurePolicyRule", [
    keep(1, "action", Str),
    msg(2, "onExitCodes", &POD_FAILURE_POLICY_ON_EXIT_CODES),
    list(3, "onPodConditions", Ty::Msg(&POD_FAILURE_POLICY_ON_POD_CONDITIONS)),
]}

message! { POD_FAILURE_POLICY_ON_EXIT_CODES, "PodFailurePolicyOnExitCodesRequirement", [
    keep(1, "containerName", Str),
    keep(2, "operator", Str),
    list(3, "values", I32),
]}

message! { POD_FAILURE_POLICY_ON_POD_CONDITIONS, "PodFailurePolicyOnPodConditionsPattern", [
    keep(1, "type", Str),
    keep(2, "status", Str),
]}

message! { SUCCESS_POLICY, "SuccessPolicy", [list(1, "rules", Ty::Msg(&SUCCESS_POLICY_RULE))] }

message! { SUCCESS_POLICY_RULE, "SuccessPolicyRule", [
    keep(1, "succeededIndexes", Str),
    keep(2, "succeededCount", I32),
]}

message! { CRON_JOB, "CronJob", [
    msg(1, "metadata", &OBJECT_META),
    msg(2, "spec", &CRON_JOB_SPEC),
    msg(3, "status", &STATUS_NOT_DECODED),
]}

message! { CRON_JOB_SPEC, "CronJobSpec", [
    keep(1, "schedule", Str),
    keep(2, "startingDeadlineSeconds", I64),
    omit(3, "concurrencyPolicy", Str),
    keep(4, "suspend", Bool),
    msg(5, "jobTemplate", &JOB_TEMPLATE_SPEC),
    keep(6, "successfulJobsHistoryLimit", I32),
    keep(7, "failedJobsHistoryLimit", I32),
    keep(8, "timeZone", Str),
]}

message! { JOB_TEMPLATE_SPEC, "JobTemplateSpec", [
    msg(1, "metadata", &OBJECT_META),
    msg(2, "spec", &JOB_SPEC),
]}

// autoscaling/v1 and v2 ------------------------------------------------------

message! { HPA_V1, "HorizontalPodAutoscaler", [
    msg(1, "metadata", &OBJECT_META),
    msg(2, "spec", &HPA_V1_SPEC),
    msg(3, "status", &STATUS_NOT_DECODED),
]}

message! { HPA_V1_SPEC, "HorizontalPodAutoscalerSpec", [
    msg(1, "scaleTargetRef", &CROSS_VERSION_OBJECT_REFERENCE),
    keep(2, "minReplicas", I32),
    keep(3, "maxReplicas", I32),
    keep(4, "targetCPUUtilizationPercentage", I32),
]}

// Same layout in autoscaling/v1 and v2.
message! { CROSS_VERSION_OBJECT_REFERENCE, "CrossVersionObjectReference", [
    keep(1, "kind", Str),
    keep(2, "name", Str),
    omit(3, "apiVersion", Str),
]}

message! { SCALE, "Scale", [
    msg(1, "metadata", &OBJECT_META),
    msg(2, "spec", &SCALE_SPEC),
    msg(3, "status", &SCALE_STATUS),
]}

// Go omits `replicas: 0` here, but the scale handler needs to see it.
message! { SCALE_SPEC, "ScaleSpec", [keep(1, "replicas", I32)] }

message! { SCALE_STATUS, "ScaleStatus", [keep(1, "replicas", I32), omit(2, "selector", Str)] }

message! { HPA_V2, "HorizontalPodAutoscaler", [
    msg(1, "metadata", &OBJECT_META),
    msg(2, "spec", &HPA_V2_SPEC),
    msg(3, "status", &STATUS_NOT_DECODED),
]}

message! { HPA_V2_SPEC, "HorizontalPodAutoscalerSpec", [
    msg(1, "scaleTargetRef", &CROSS_VERSION_OBJECT_REFERENCE),
    keep(2, "minReplicas", I32),
    keep(3, "maxReplicas", I32),
    list(4, "metrics", Ty::Msg(&METRIC_SPEC)),
    msg(5, "behavior", &HPA_BEHAVIOR),
]}

message! { METRIC_SPEC, "MetricSpec", [
    keep(1, "type", Str),
    msg(2, "object", &OBJECT_METRIC_SOURCE),
    msg(3, "pods", &PODS_METRIC_SOURCE),
    msg(4, "resource", &RESOURCE_METRIC_SOURCE),
    msg(5, "external", &EXTERNAL_METRIC_SOURCE),
    msg(7, "containerResource", &CONTAINER_RESOURCE_METRIC_SOURCE),
]}

message! { RESOURCE_METRIC_SOURCE, "ResourceMetricSource", [
    keep(1, "name", Str),
    msg(2, "target", &METRIC_TARGET),
]}

message! { CONTAINER_RESOURCE_METRIC_SOURCE, "ContainerResourceMetricSource", [
    keep(1, "name", Str),
    msg(2, "target", &METRIC_TARGET),
    keep(3, "container", Str),
]}

message! { PODS_METRIC_SOURCE, "PodsMetricSource", [
    msg(1, "metric", &METRIC_IDENTIFIER),
    msg(2, "target", &METRIC_TARGET),
]}

message! { OBJECT_METRIC_SOURCE, "ObjectMetricSource", [
    msg(1, "describedObject", &CROSS_VERSION_OBJECT_REFERENCE),
    msg(2, "target", &METRIC_TARGET),
    msg(3, "metric", &METRIC_IDENTIFIER),
]}

message! { EXTERNAL_METRIC_SOURCE, "ExternalMetricSource", [
    msg(1, "metric", &METRIC_IDENTIFIER),
    msg(2, "target", &METRIC_TARGET),
]}

message! { METRIC_IDENTIFIER, "MetricIdentifier", [
    keep(1, "name", Str),
    msg(2, "selector", &LABEL_SELECTOR),
]}

message! { METRIC_TARGET, "MetricTarget", [
    keep(1, "type", Str),
    keep(2, "value", Quantity),
    keep(3, "averageValue", Quantity),
    keep(4, "averageUtilization", I32),
]}

message! { HPA_BEHAVIOR, "HorizontalPodAutoscalerBehavior", [
    msg(1, "scaleUp", &HPA_SCALING_RULES),
    msg(2, "scaleDown", &HPA_SCALING_RULES),
]}

message! { HPA_SCALING_RULES, "HPAScalingRules", [
    keep(1, "selectPolicy", Str),
    list(2, "policies", Ty::Msg(&HPA_SCALING_POLICY)),
    keep(3, "stabilizationWindowSeconds", I32),
    keep(4, "tolerance", Quantity),
]}

message! { HPA_SCALING_POLICY, "HPAScalingPolicy", [
    keep(1, "type", Str),
    keep(2, "value", I32),
    keep(3, "periodSeconds", I32),
]}

// policy/v1 ------------------------------------------------------------------

message! { EVICTION, "Eviction", [
    msg(1, "metadata", &OBJECT_META),
    msg(2, "deleteOptions", &DELETE_OPTIONS),
]}

/// The message type of each (apiVersion, kind) decodable from protobuf.
static KINDS: &[(&str, &str, &Message)] = &[
    ("v1", "Namespace", &NAMESPACE),
    ("v1", "ConfigMap", &CONFIG_MAP),
    ("v1", "Secret", &SECRET),
    ("v1", "Service", &SERVICE),
    ("v1", "Pod", &POD),
    ("v1", "ResourceQuota", &RESOURCE_QUOTA),
    ("v1", "LimitRange", &LIMIT_RANGE),
    ("v1", "ReplicationController", &REPLICATION_CONTROLLER),
    ("v1", "Endpoints", &ENDPOINTS),
    ("v1", "Event", &EVENT),
    ("coordination.k8s.io/v1", "Lease", &LEASE),
    // Clients label DeleteOptions with their own group's version or meta/v1.
    ("v1", "DeleteOptions", &DELETE_OPTIONS),
    ("meta.k8s.io/v1", "DeleteOptions", &DELETE_OPTIONS),
    ("apps/v1", "DeleteOptions", &DELETE_OPTIONS),
    ("batch/v1", "DeleteOptions", &DELETE_OPTIONS),
    ("autoscaling/v2", "DeleteOptions", &DELETE_OPTIONS),
    ("coordination.k8s.io/v1", "DeleteOptions", &DELETE_OPTIONS),
    ("apps/v1", "Deployment", &DEPLOYMENT),
    ("apps/v1", "ReplicaSet", &REPLICA_SET),
    ("apps/v1", "DaemonSet", &DAEMON_SET),
    ("batch/v1", "Job", &JOB),
    ("batch/v1", "CronJob", &CRON_JOB),
    ("autoscaling/v1", "HorizontalPodAutoscaler", &HPA_V1),
    ("autoscaling/v1", "Scale", &SCALE),
    ("autoscaling/v2", "HorizontalPodAutoscaler", &HPA_V2),
    ("policy/v1", "Eviction", &EVICTION),
];

/// The schema for an (apiVersion, kind), if protobuf bodies of it are decodable.
pub fn message_for(api_version: &str, kind: &str) -> Option<&'static Message> {
    KINDS
        .iter()
        .find(|(v, k, _)| *v == api_version && *k == kind)
        .map(|(_, _, m)| *m)
}

// ---------------------------------------------------------------------------
// Decoding

/// Decodes a Kubernetes protobuf body (`k8s\0` + `runtime.Unknown`) into the
/// JSON object a JSON body would carry, with `apiVersion` and `kind` from
/// the envelope.
pub fn decode(body: &[u8]) -> Result<Value, ProtobufError> {
    let rest = body
        .strip_prefix(MAGIC.as_slice())
        .ok_or(ProtobufError::MissingMagic)?;
    let env = Envelope::parse(rest)?;
    if !env.content_encoding.is_empty() {
        return Err(ProtobufError::UnsupportedEncoding(
            env.content_encoding.to_string(),
        ));
    }
    let (api_version, kind) = env.type_meta.ok_or(ProtobufError::MissingTypeMeta)?;
    let msg = message_for(api_version, kind).ok_or_else(|| ProtobufError::UnsupportedKind {
        api_version: api_version.to_string(),
        kind: kind.to_string(),
    })?;
    let mut out = Map::new();
    out.insert("apiVersion".into(), Value::from(api_version));
    out.insert("kind".into(), Value::from(kind));
    decode_fields(msg, env.raw, 1, &mut out)?;
    Ok(Value::Object(out))
}

/// `runtime.Unknown`, borrowing from the body.
struct Envelope<'a> {
    type_meta: Option<(&'a str, &'a str)>,
    raw: &'a [u8],
    content_encoding: &'a str,
}

impl<'a> Envelope<'a> {
    fn parse(buf: &'a [u8]) -> Result<Self, ProtobufError> {
        let bad = |message: &'static str, field: &str, defect| ProtobufError::Malformed {
            message,
            path: field.to_string(),
            defect,
        };
        let mut env = Envelope {
            type_meta: None,
            raw: &[],
            content_encoding: "",
        };
        let mut r = Reader::new(buf);
        loop {
            let (num, wire) = match r.field() {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err((_, d)) => return Err(bad("runtime.Unknown", "?", d)),
            };
            match num {
                1 => {
                    let b = wire
                        .bytes()
                        .map_err(|d| bad("runtime.Unknown", "typeMeta", d))?;
                    env.type_meta =
                        Some(parse_type_meta(b).map_err(|(f, d)| {
                            bad("runtime.TypeMeta", &format!("typeMeta.{f}"), d)
                        })?);
                }
                2 => env.raw = wire.bytes().map_err(|d| bad("runtime.Unknown", "raw", d))?,
                3 => {
                    env.content_encoding = wire
                        .string()
                        .map_err(|d| bad("runtime.Unknown", "contentEncoding", d))?
                }
                // 4 contentType: the body's own Content-Type already said protobuf.
                _ => {}
            }
        }
        Ok(env)
    }
}

fn parse_type_meta(buf: &[u8]) -> Result<(&str, &str), (&'static str, Defect)> {
    let (mut api_version, mut kind) = ("", "");
    let mut r = Reader::new(buf);
    while let Some((num, wire)) = r.field().map_err(|(_, d)| ("?", d))? {
        match num {
            1 => api_version = wire.string().map_err(|d| ("apiVersion", d))?,
            2 => kind = wire.string().map_err(|d| ("kind", d))?,
            _ => {}
        }
    }
    Ok((api_version, kind))
}

/// Decodes the fields of `msg` found in `buf` into `out`.
fn decode_fields(
    msg: &'static Message,
    buf: &[u8],
    depth: usize,
    out: &mut Map<String, Value>,
) -> Result<(), ProtobufError> {
    if depth > MAX_DEPTH {
        return Err(ProtobufError::TooDeep {
            message: msg.name,
            path: String::new(),
            limit: MAX_DEPTH,
        });
    }
    let mut r = Reader::new(buf);
    loop {
        let (num, wire) = match r.field() {
            Ok(Some(f)) => f,
            Ok(None) => return Ok(()),
            Err((num, defect)) => {
                let path = match num {
                    Some(n) => msg.field(n).map_or(format!("#{n}"), |f| f.json.to_string()),
                    None => "?".to_string(),
                };
                return Err(ProtobufError::Malformed {
                    message: msg.name,
                    path,
                    defect,
                });
            }
        };
        // Unknown fields are skipped, as protobuf readers do.
        if let Some(field) = msg.field(num) {
            decode_field(msg, field, wire, depth, out)?;
        }
    }
}

fn decode_field(
    msg: &'static Message,
    f: &'static Field,
    wire: Wire<'_>,
    depth: usize,
    out: &mut Map<String, Value>,
) -> Result<(), ProtobufError> {
    let bad = |defect| ProtobufError::Malformed {
        message: msg.name,
        path: f.json.to_string(),
        defect,
    };
    match f.ty {
        Ty::Inline(inner) => decode_fields(inner, wire.bytes().map_err(bad)?, depth + 1, out),
        Ty::Msg(inner) => {
            let b = wire.bytes().map_err(bad)?;
            if f.card == Card::List {
                let i = array_len(out, f.json);
                let mut obj = Map::new();
                decode_fields(inner, b, depth + 1, &mut obj)
                    .map_err(|e| e.within(&format!("{}[{i}]", f.json)))?;
                push(out, f.json, Value::Object(obj));
            } else {
                // A repeated singular message merges into the first, as in protobuf.
                if let Some(obj) = object_slot(out, f.json) {
                    decode_fields(inner, b, depth + 1, obj).map_err(|e| e.within(f.json))?;
                }
            }
            Ok(())
        }
        Ty::Map(mv) => {
            let (k, v) = map_entry(mv, wire.bytes().map_err(bad)?).map_err(|(part, defect)| {
                ProtobufError::Malformed {
                    message: msg.name,
                    path: format!("{}.{part}", f.json),
                    defect,
                }
            })?;
            if let Some(obj) = object_slot(out, f.json) {
                obj.insert(k, v);
            }
            Ok(())
        }
        ty => {
            if f.card == Card::List {
                if let (Ty::Bool | Ty::I32 | Ty::I64, Wire::Bytes(packed)) = (ty, wire) {
                    let mut r = Reader::new(packed);
                    while !r.is_empty() {
                        let v = r.varint().map_err(bad)?;
                        push(out, f.json, varint_value(ty, v));
                    }
                    return Ok(());
                }
                let (v, _) = scalar(ty, wire).map_err(bad)?;
                if !v.is_null() {
                    push(out, f.json, v);
                }
                return Ok(());
            }
            let (v, zero) = scalar(ty, wire).map_err(bad)?;
            if v.is_null() || (zero && f.card == Card::Omit) {
                out.remove(f.json);
            } else {
                out.insert(f.json.to_string(), v);
            }
            Ok(())
        }
    }
}

/// The object under `key`, created (or replacing a non-object) if needed;
/// always `Some`.
fn object_slot<'m>(
    out: &'m mut Map<String, Value>,
    key: &str,
) -> Option<&'m mut Map<String, Value>> {
    let slot = out.entry(key).or_insert_with(|| Value::Object(Map::new()));
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    slot.as_object_mut()
}

fn array_len(out: &Map<String, Value>, key: &str) -> usize {
    out.get(key).and_then(Value::as_array).map_or(0, Vec::len)
}

fn push(out: &mut Map<String, Value>, key: &str, v: Value) {
    let slot = out.entry(key).or_insert_with(|| Value::Array(Vec::new()));
    if let Value::Array(items) = slot {
        items.push(v);
    } else {
        *slot = Value::Array(vec![v]);
    }
}

fn varint_value(ty: Ty, v: u64) -> Value {
    match ty {
        Ty::Bool => Value::Bool(v != 0),
        // int32 travels sign-extended to 64 bits; protobuf truncates it back.
        Ty::I32 => Value::from(v as u32 as i32),
        _ => Value::from(v as i64),
    }
}

/// A scalar (or well-known message) value and whether it is the zero value.
/// `Value::Null` means "absent" (a zero `Time`).
type Scalar = Result<(Value, bool), Defect>;

fn scalar(ty: Ty, wire: Wire<'_>) -> Scalar {
    Ok(match ty {
        Ty::Str => {
            let s = wire.string()?;
            (Value::from(s), s.is_empty())
        }
        Ty::Bytes => {
            let b = wire.bytes()?;
            (Value::from(base64_encode(b)), b.is_empty())
        }
        Ty::Bool | Ty::I32 | Ty::I64 => {
            let v = wire.varint()?;
            let value = varint_value(ty, v);
            let zero = value == Value::Bool(false) || value.as_i64() == Some(0);
            (value, zero)
        }
        Ty::Time => time(wire.bytes()?, SecondsFormat::Secs)?,
        Ty::MicroTime => time(wire.bytes()?, SecondsFormat::Micros)?,
        Ty::Duration => {
            let mut nanos = 0i64;
            let mut r = Reader::new(wire.bytes()?);
            while let Some((num, w)) = r.field().map_err(|(_, d)| d)? {
                if num == 1 {
                    nanos = w.varint()? as i64;
                }
            }
            (Value::from(go_duration(nanos)), nanos == 0)
        }
        Ty::Quantity => {
            let q = quantity(wire.bytes()?)?;
            let zero = q == "0";
            (Value::from(q), zero)
        }
        Ty::IntOrString => int_or_string(wire.bytes()?)?,
        Ty::Msg(_) | Ty::Inline(_) | Ty::Map(_) => {
            return Err(Defect::WrongWireType {
                found: wire.name(),
                expected: "a scalar",
            });
        }
    })
}

fn base64_encode(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// `resource.Quantity` `{string = 1}`; Go writes `"0"` for a zero quantity.
fn quantity(buf: &[u8]) -> Result<String, Defect> {
    let mut s = "0";
    let mut r = Reader::new(buf);
    while let Some((num, w)) = r.field().map_err(|(_, d)| d)? {
        if num == 1 {
            s = w.string()?;
        }
    }
    Ok(if s.is_empty() { "0" } else { s }.to_string())
}

/// `intstr.IntOrString` `{type = 1, intVal = 2, strVal = 3}`.
fn int_or_string(buf: &[u8]) -> Result<(Value, bool), Defect> {
    let (mut kind, mut int, mut string) = (0i64, 0i32, "");
    let mut r = Reader::new(buf);
    while let Some((num, w)) = r.field().map_err(|(_, d)| d)? {
        match num {
            1 => kind = w.varint()? as i64,
            2 => int = w.varint()? as u32 as i32,
            3 => string = w.string()?,
            _ => {}
        }
    }
    match kind {
        0 => Ok((Value::from(int), int == 0)),
        1 => Ok((Value::from(string), false)),
        other => Err(Defect::InvalidIntOrStringType(other)),
    }
}

/// `metav1.Time` / `MicroTime` `{seconds = 1, nanos = 2}`; zero is `Null`.
fn time(buf: &[u8], format: SecondsFormat) -> Result<(Value, bool), Defect> {
    let (mut seconds, mut nanos) = (0i64, 0i64);
    let mut r = Reader::new(buf);
    while let Some((num, w)) = r.field().map_err(|(_, d)| d)? {
        match num {
            1 => seconds = w.varint()? as i64,
            2 => nanos = i64::from(w.varint()? as u32 as i32),
            _ => {}
        }
    }
    if seconds == 0 && nanos == 0 {
        return Ok((Value::Null, true));
    }
    let invalid = Defect::InvalidTime { seconds, nanos };
    let ns = u32::try_from(nanos)
        .ok()
        .filter(|n| *n < 1_000_000_000)
        .ok_or(invalid.clone())?;
    let t: DateTime<Utc> = DateTime::from_timestamp(seconds, ns).ok_or(invalid.clone())?;
    if !(1..=9999).contains(&t.year()) {
        return Err(invalid);
    }
    Ok((Value::from(t.to_rfc3339_opts(format, true)), false))
}

/// Formats nanoseconds as Go's `time.Duration.String` does (`1h2m3.5s`,
/// `1.5ms`, `0s`), which is how `metav1.Duration` appears in JSON.
pub fn go_duration(nanos: i64) -> String {
    let sign = if nanos < 0 { "-" } else { "" };
    let u = nanos.unsigned_abs();
    // Integer and fraction of u / unit, the fraction without trailing zeros.
    let frac = |u: u64, unit: u64, digits: usize| {
        let (whole, part) = (u / unit, u % unit);
        if part == 0 {
            whole.to_string()
        } else {
            let f = format!("{part:0digits$}");
            format!("{whole}.{}", f.trim_end_matches('0'))
        }
    };
    let body = if u == 0 {
        return "0s".to_string();
    } else if u < 1_000 {
        format!("{u}ns")
    } else if u < 1_000_000 {
        format!("{}µs", frac(u, 1_000, 3))
    } else if u < 1_000_000_000 {
        format!("{}ms", frac(u, 1_000_000, 6))
    } else {
        let secs = u / 1_000_000_000;
        let (h, m) = (secs / 3600, secs / 60 % 60);
        let s = frac(
            secs % 60 * 1_000_000_000 + u % 1_000_000_000,
            1_000_000_000,
            9,
        );
        match (h, m) {
            (0, 0) => format!("{s}s"),
            (0, m) => format!("{m}m{s}s"),
            (h, m) => format!("{h}h{m}m{s}s"),
        }
    };
    format!("{sign}{body}")
}

/// A map entry `{key = 1, value = 2}`; on error, names the part that failed.
fn map_entry(mv: MapValue, buf: &[u8]) -> Result<(String, Value), (&'static str, Defect)> {
    let mut key = String::new();
    let mut value = match mv {
        MapValue::Str | MapValue::Bytes => Value::from(""),
        MapValue::Quantity => Value::from("0"),
    };
    let mut r = Reader::new(buf);
    while let Some((num, w)) = r.field().map_err(|(_, d)| ("?", d))? {
        match num {
            1 => key = w.string().map_err(|d| ("key", d))?.to_string(),
            2 => {
                value = match mv {
                    MapValue::Str => Value::from(w.string().map_err(|d| ("value", d))?),
                    MapValue::Bytes => {
                        Value::from(base64_encode(w.bytes().map_err(|d| ("value", d))?))
                    }
                    MapValue::Quantity => {
                        Value::from(w.bytes().and_then(quantity).map_err(|d| ("value", d))?)
                    }
                }
            }
            _ => {}
        }
    }
    Ok((key, value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    // A tiny test-only encoder; the fixtures from real kubectl check it.
    fn varint(mut v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return out;
            }
            out.push(b | 0x80);
        }
    }
    fn vf(num: u32, v: u64) -> Vec<u8> {
        [varint(u64::from(num) << 3), varint(v)].concat()
    }
    fn lf(num: u32, b: &[u8]) -> Vec<u8> {
        [
            varint(u64::from(num) << 3 | 2),
            varint(b.len() as u64),
            b.to_vec(),
        ]
        .concat()
    }
    fn sf(num: u32, s: &str) -> Vec<u8> {
        lf(num, s.as_bytes())
    }
    fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
        let tm = [sf(1, api_version), sf(2, kind)].concat();
        [MAGIC.to_vec(), lf(1, &tm), lf(2, raw), sf(3, ""), sf(4, "")].concat()
    }
    fn decode_as(api_version: &str, kind: &str, raw: &[u8]) -> Result<Value, ProtobufError> {
        decode(&envelope(api_version, kind, raw))
    }

    #[test]
    fn varints() {
        let cases: &[(&[u8], Result<u64, Defect>)] = &[
            (&[0x00], Ok(0)),
            (&[0x01], Ok(1)),
            (&[0xac, 0x02], Ok(300)),
            (&[0xff, 0xff, 0xff, 0xff, 0x0f], Ok(u64::from(u32::MAX))),
            (
                &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
                Ok(u64::MAX),
            ),
            (
                &[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x02],
                Err(Defect::VarintTooLong),
            ),
            (&[0x80; 11], Err(Defect::VarintTooLong)),
            (&[0x80], Err(Defect::Truncated("varint"))),
            (&[], Err(Defect::Truncated("varint"))),
        ];
        for (bytes, want) in cases {
            assert_eq!(&Reader::new(bytes).varint(), want, "{bytes:02x?}");
        }
        // Our encoder and the reader agree on every width.
        for v in [0, 127, 128, 16383, 16384, u64::from(u32::MAX) + 1, u64::MAX] {
            assert_eq!(Reader::new(&varint(v)).varint(), Ok(v));
        }
    }

    #[test]
    fn every_wire_type() {
        let buf = [
            vf(1, 150),
            vec![0x11, 1, 2, 3, 4, 5, 6, 7, 8],
            sf(3, "hi"),
            vec![0x25, 0x78, 0x56, 0x34, 0x12],
            varint(536_870_911 << 3),
            vec![0x00],
        ]
        .concat();
        let mut r = Reader::new(&buf);
        assert_eq!(r.field(), Ok(Some((1, Wire::Varint(150)))));
        assert_eq!(
            r.field(),
            Ok(Some((2, Wire::Fixed64(0x0807_0605_0403_0201))))
        );
        assert_eq!(r.field(), Ok(Some((3, Wire::Bytes(b"hi")))));
        assert_eq!(r.field(), Ok(Some((4, Wire::Fixed32(0x1234_5678)))));
        assert_eq!(r.field(), Ok(Some((536_870_911, Wire::Varint(0)))));
        assert_eq!(r.field(), Ok(None));
    }

    #[test]
    fn broken_fields() {
        let cases: Vec<(Vec<u8>, NextField<'static>)> = vec![
            (
                vec![0x0a, 0x05, b'a'],
                Err((Some(1), Defect::Truncated("length-delimited value"))),
            ),
            (vec![0x0a], Err((Some(1), Defect::Truncated("varint")))),
            (
                vec![
                    0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
                ],
                Err((Some(1), Defect::Truncated("length-delimited value"))),
            ),
            (
                vec![0x09, 1, 2, 3],
                Err((Some(1), Defect::Truncated("fixed64"))),
            ),
            (vec![0x0d, 1], Err((Some(1), Defect::Truncated("fixed32")))),
            (vec![0x08], Err((Some(1), Defect::Truncated("varint")))),
            (vec![0x0b], Err((Some(1), Defect::BadWireType(3)))),
            (vec![0x0c], Err((Some(1), Defect::BadWireType(4)))),
            (vec![0x0e], Err((Some(1), Defect::BadWireType(6)))),
            (vec![0x0f], Err((Some(1), Defect::BadWireType(7)))),
            (vec![0x00, 0x01], Err((None, Defect::BadFieldNumber(0)))),
            (
                varint(1 << 32 | 2),
                Err((None, Defect::BadFieldNumber(1 << 29))),
            ),
            (vec![0x80], Err((None, Defect::Truncated("varint")))),
        ];
        for (bytes, want) in cases {
            assert_eq!(Reader::new(&bytes).field(), want, "{bytes:02x?}");
        }
    }

    #[test]
    fn go_durations() {
        let cases: &[(i64, &str)] = &[
            (0, "0s"),
            (1, "1ns"),
            (999, "999ns"),
            (1_500, "1.5µs"),
            (1_000_000, "1ms"),
            (100_000_000, "100ms"),
            (1_500_000_000, "1.5s"),
            (60_000_000_000, "1m0s"),
            (90_000_000_000, "1m30s"),
            (3_600_000_000_000, "1h0m0s"),
            (3_723_000_000_001, "1h2m3.000000001s"),
            (-1_500_000_000, "-1.5s"),
            (i64::MIN, "-2562047h47m16.854775808s"),
        ];
        for (nanos, want) in cases {
            assert_eq!(go_duration(*nanos), *want, "{nanos}");
        }
    }

    #[test]
    fn well_known_types() {
        let t = |secs: u64, nanos: u64| [vf(1, secs), vf(2, nanos)].concat();
        let cases: Vec<(Ty, Vec<u8>, Scalar)> = vec![
            (
                Ty::Time,
                t(1_714_558_830, 0),
                Ok((json!("2024-05-01T10:20:30Z"), false)),
            ),
            (
                Ty::Time,
                t(1_714_558_830, 999_999_999),
                Ok((json!("2024-05-01T10:20:30Z"), false)),
            ),
            (
                Ty::MicroTime,
                t(1_714_558_830, 123_456_789),
                Ok((json!("2024-05-01T10:20:30.123456Z"), false)),
            ),
            (Ty::Time, vec![], Ok((Value::Null, true))),
            (Ty::Time, t(0, 0), Ok((Value::Null, true))),
            (
                Ty::Time,
                t(1, 1_000_000_000),
                Err(Defect::InvalidTime {
                    seconds: 1,
                    nanos: 1_000_000_000,
                }),
            ),
            (
                Ty::Time,
                t(253_402_300_800, 0),
                Err(Defect::InvalidTime {
                    seconds: 253_402_300_800,
                    nanos: 0,
                }),
            ),
            (
                Ty::Time,
                t(1, u64::MAX),
                Err(Defect::InvalidTime {
                    seconds: 1,
                    nanos: -1,
                }),
            ),
            (
                Ty::Duration,
                vf(1, 90_000_000_000),
                Ok((json!("1m30s"), false)),
            ),
            (Ty::Duration, vec![], Ok((json!("0s"), true))),
            (Ty::Quantity, sf(1, "500m"), Ok((json!("500m"), false))),
            (Ty::Quantity, vec![], Ok((json!("0"), true))),
            (
                Ty::IntOrString,
                [vf(1, 0), vf(2, 8080), sf(3, "")].concat(),
                Ok((json!(8080), false)),
            ),
            (
                Ty::IntOrString,
                [vf(1, 1), vf(2, 0), sf(3, "25%")].concat(),
                Ok((json!("25%"), false)),
            ),
            (
                Ty::IntOrString,
                [vf(1, 0), vf(2, 0)].concat(),
                Ok((json!(0), true)),
            ),
            (Ty::IntOrString, vf(2, u64::MAX), Ok((json!(-1), false))),
            (
                Ty::IntOrString,
                vf(1, 2),
                Err(Defect::InvalidIntOrStringType(2)),
            ),
            (
                Ty::Quantity,
                vec![0x0a, 0x01, 0xff],
                Err(Defect::InvalidUtf8),
            ),
        ];
        for (ty, bytes, want) in cases {
            assert_eq!(scalar(ty, Wire::Bytes(&bytes)), want, "{ty:?} {bytes:02x?}");
        }
        assert_eq!(
            scalar(Ty::Time, Wire::Varint(3)),
            Err(Defect::WrongWireType {
                found: "varint",
                expected: "length-delimited"
            })
        );
    }

    fn deployment_spec(spec: &[u8]) -> Value {
        let raw = [lf(1, &sf(1, "web")), lf(2, spec), lf(3, &[])].concat();
        let v = decode_as("apps/v1", "Deployment", &raw).unwrap();
        v["spec"].clone()
    }

    #[test]
    fn zero_values_follow_go_json() {
        // Go writes every non-pointer field; pointers only when set.
        let spec = [
            vf(1, 0), // *replicas = 0: kept
            vf(5, 0), // minReadySeconds 0: omitempty
            vf(7, 0), // paused false: omitempty
            lf(
                4,
                &[
                    sf(1, ""),
                    lf(2, &lf(1, &[vf(1, 0), vf(2, 0), sf(3, "")].concat())),
                ]
                .concat(),
            ),
        ]
        .concat();
        assert_eq!(
            deployment_spec(&spec),
            json!({"replicas": 0, "strategy": {"rollingUpdate": {"maxUnavailable": 0}}})
        );
        // Absent fields stay absent; present empty messages are `{}`.
        let raw = [
            lf(1, &[sf(1, "x"), sf(2, ""), vf(7, 0), lf(8, &[])].concat()),
            lf(2, &[]),
        ]
        .concat();
        assert_eq!(
            decode_as("v1", "Namespace", &raw).unwrap(),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}, "spec": {}})
        );
        // A zero targetPort means unset (the server defaults it to port)…
        let svc = |tp: Vec<u8>| {
            let port = [vf(3, 80), lf(4, &tp)].concat();
            let raw = lf(2, &lf(1, &port));
            decode_as("v1", "Service", &raw).unwrap()["spec"]["ports"][0].clone()
        };
        assert_eq!(
            svc([vf(1, 0), vf(2, 0), sf(3, "")].concat()),
            json!({"port": 80})
        );
        assert_eq!(
            svc([vf(1, 1), sf(3, "http")].concat()),
            json!({"port": 80, "targetPort": "http"})
        );
        // …but a probe port has no omitempty and is written as Go would.
        let c = [
            sf(1, "c"),
            lf(10, &lf(1, &lf(2, &lf(2, &[vf(1, 0), vf(2, 0)].concat())))),
        ]
        .concat();
        let raw = lf(2, &lf(2, &c));
        assert_eq!(
            decode_as("v1", "Pod", &raw).unwrap()["spec"]["containers"][0]["livenessProbe"],
            json!({"httpGet": {"port": 0}})
        );
    }

    #[test]
    fn pod_spec_shapes() {
        let env_from_cm = lf(3, &[lf(1, &sf(1, "cfg")), sf(2, "k"), vf(3, 1)].concat());
        let container = [
            sf(1, "app"),
            sf(2, "hello:v1"),
            sf(3, "/bin/app"),
            sf(4, "--a"),
            sf(4, ""),
            lf(6, &[vf(3, 8080), sf(4, "TCP")].concat()),
            lf(7, &[sf(1, "A"), sf(2, "B")].concat()),
            lf(7, &[sf(1, "C"), lf(3, &env_from_cm)].concat()),
            lf(
                8,
                &[
                    lf(1, &[sf(1, "cpu"), lf(2, &sf(1, "500m"))].concat()),
                    lf(2, &[sf(1, "memory"), lf(2, &sf(1, "64Mi"))].concat()),
                ]
                .concat(),
            ),
            lf(9, &[sf(1, "data"), vf(2, 1), sf(3, "/data")].concat()),
            lf(
                11,
                &[lf(1, &lf(1, &[sf(1, "true")].concat())), vf(4, 5)].concat(),
            ),
            lf(15, &[vf(4, 1000), vf(6, 0), lf(1, &sf(2, "ALL"))].concat()),
        ]
        .concat();
        let cm = [
            lf(1, &sf(1, "cfg")),
            lf(2, &[sf(1, "k"), sf(2, "k.txt")].concat()),
            vf(3, 420),
        ]
        .concat();
        let volume = [sf(1, "data"), lf(2, &lf(19, &cm))].concat();
        let affinity = lf(
            1,
            &lf(
                1,
                &lf(
                    1,
                    &lf(
                        1,
                        &[sf(1, "zone"), sf(2, "In"), sf(3, "a"), sf(3, "b")].concat(),
                    ),
                ),
            ),
        );
        let spec = [
            lf(1, &volume),
            lf(2, &container),
            sf(3, "Never"),
            vf(4, 30),
            lf(
                14,
                &[
                    vf(3, 1),
                    vf(4, 1),
                    vf(4, 2),
                    lf(4, &[varint(3), varint(4)].concat()),
                ]
                .concat(),
            ),
            lf(18, &affinity),
            lf(
                22,
                &[sf(1, "k"), sf(2, "Exists"), sf(4, "NoSchedule"), vf(5, 60)].concat(),
            ),
            lf(7, &[sf(1, "disk"), sf(2, "ssd")].concat()),
            vf(99, 7),                    // unknown: skipped
            vec![0xa5, 0x06, 1, 2, 3, 4], // unknown fixed32 (field 100)
        ]
        .concat();
        let meta = [
            sf(1, "p"),
            lf(11, &[sf(1, "a"), sf(2, "b")].concat()),
            lf(
                13,
                &[
                    sf(1, "ReplicaSet"),
                    sf(3, "rs"),
                    sf(4, "u1"),
                    sf(5, "apps/v1"),
                    vf(6, 1),
                ]
                .concat(),
            ),
        ]
        .concat();
        let raw = [lf(1, &meta), lf(2, &spec), lf(3, &sf(1, "Running"))].concat();
        let got = decode_as("v1", "Pod", &raw).unwrap();
        let want = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "labels": {"a": "b"}, "ownerReferences": [
                {"kind": "ReplicaSet", "name": "rs", "uid": "u1", "apiVersion": "apps/v1", "controller": true}]},
            "spec": {
                "volumes": [{"name": "data", "configMap": {"name": "cfg", "items": [{"key": "k", "path": "k.txt"}], "defaultMode": 420}}],
                "containers": [{
                    "name": "app", "image": "hello:v1", "command": ["/bin/app"], "args": ["--a", ""],
                    "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                    "env": [{"name": "A", "value": "B"},
                            {"name": "C", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k", "optional": true}}}],
                    "resources": {"limits": {"cpu": "500m"}, "requests": {"memory": "64Mi"}},
                    "volumeMounts": [{"name": "data", "readOnly": true, "mountPath": "/data"}],
                    "readinessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 5},
                    "securityContext": {"runAsUser": 1000, "readOnlyRootFilesystem": false, "capabilities": {"drop": ["ALL"]}},
                }],
                "restartPolicy": "Never",
                "terminationGracePeriodSeconds": 30,
                "securityContext": {"runAsNonRoot": true, "supplementalGroups": [1, 2, 3, 4]},
                "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]}]}]}}},
                "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoSchedule", "tolerationSeconds": 60}],
                "nodeSelector": {"disk": "ssd"},
            },
            "status": {},
        });
        assert_eq!(got, want);
    }

    #[test]
    fn maps_and_bytes() {
        let entry = |k: &str, v: &[u8]| lf(2, &[sf(1, k), lf(2, v)].concat());
        let raw = [
            lf(1, &sf(1, "s")),
            entry("bin", &[0, 0xff]),
            entry("empty", b""),
            lf(2, &sf(1, "novalue")),
            entry("bin", b"hi"), // a repeated key: the last wins, as in Go
            sf(3, "Opaque"),
            lf(4, &[sf(1, "plain"), sf(2, "text")].concat()),
            vf(5, 0),
        ]
        .concat();
        assert_eq!(
            decode_as("v1", "Secret", &raw).unwrap(),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                   "data": {"bin": "aGk=", "empty": "", "novalue": ""},
                   "type": "Opaque", "stringData": {"plain": "text"}, "immutable": false})
        );
    }

    #[test]
    fn lease_micro_times() {
        let t = [vf(1, 1_714_558_830), vf(2, 123_456_789)].concat();
        let spec = [sf(1, "node-a"), vf(2, 40), lf(3, &t), lf(4, &[]), vf(5, 0)].concat();
        let raw = [lf(1, &sf(1, "node-a")), lf(2, &spec)].concat();
        assert_eq!(
            decode_as("coordination.k8s.io/v1", "Lease", &raw).unwrap(),
            json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "node-a"},
                   "spec": {"holderIdentity": "node-a", "leaseDurationSeconds": 40,
                            "acquireTime": "2024-05-01T10:20:30.123456Z", "leaseTransitions": 0}})
        );
    }

    #[test]
    fn repeated_singular_message_merges() {
        let raw = [
            lf(1, &sf(1, "a")),
            lf(1, &lf(11, &[sf(1, "k"), sf(2, "v")].concat())),
        ]
        .concat();
        assert_eq!(
            decode_as("v1", "ConfigMap", &raw).unwrap()["metadata"],
            json!({"name": "a", "labels": {"k": "v"}})
        );
    }

    #[test]
    fn negative_int32_is_sign_extended() {
        let v = deployment_spec(&vf(1, (-1i64) as u64));
        assert_eq!(v["replicas"], json!(-1));
    }

    #[test]
    fn errors_name_message_and_path() {
        let port = vf(3, 0); // containerPort as varint is fine…
        let bad_port = sf(3, "80"); // …as a string it is not
        let c0 = [sf(1, "a"), lf(6, &port)].concat();
        let c1 = [sf(1, "b"), lf(6, &port), lf(6, &bad_port)].concat();
        let spec = lf(3, &lf(2, &[lf(2, &c0), lf(2, &c1)].concat()));
        let err = decode_as("apps/v1", "Deployment", &lf(2, &spec)).unwrap_err();
        assert_eq!(
            err,
            ProtobufError::Malformed {
                message: "ContainerPort",
                path: "spec.template.spec.containers[1].ports[1].containerPort".into(),
                defect: Defect::WrongWireType {
                    found: "length-delimited",
                    expected: "varint"
                },
            }
        );
        assert!(
            err.to_string()
                .contains("spec.template.spec.containers[1].ports[1].containerPort")
        );

        let cases: Vec<(Vec<u8>, ProtobufError)> = vec![
            // Truncated nested message: the length runs past the end.
            (
                vec![0x0a, 0x05, 0x0a],
                ProtobufError::Malformed {
                    message: "Namespace",
                    path: "metadata".into(),
                    defect: Defect::Truncated("length-delimited value"),
                },
            ),
            // Invalid UTF-8 in a string.
            (
                lf(1, &[0x0a, 0x01, 0xc3]),
                ProtobufError::Malformed {
                    message: "ObjectMeta",
                    path: "metadata.name".into(),
                    defect: Defect::InvalidUtf8,
                },
            ),
            // A broken map entry.
            (
                lf(1, &lf(11, &[0x0a, 0x01, 0xff])),
                ProtobufError::Malformed {
                    message: "ObjectMeta",
                    path: "metadata.labels.key".into(),
                    defect: Defect::InvalidUtf8,
                },
            ),
            // An unknown field with a broken value is still an error.
            (
                vec![0xf8, 0x06, 0x80],
                ProtobufError::Malformed {
                    message: "Namespace",
                    path: "#111".into(),
                    defect: Defect::Truncated("varint"),
                },
            ),
            // A broken tag.
            (
                vec![0x80],
                ProtobufError::Malformed {
                    message: "Namespace",
                    path: "?".into(),
                    defect: Defect::Truncated("varint"),
                },
            ),
            // Before year 1.
            (
                lf(
                    1,
                    &[lf(8, &vf(1, 1)), lf(9, &vf(1, -62_135_596_801i64 as u64))].concat(),
                ),
                ProtobufError::Malformed {
                    message: "ObjectMeta",
                    path: "metadata.deletionTimestamp".into(),
                    defect: Defect::InvalidTime {
                        seconds: -62_135_596_801,
                        nanos: 0,
                    },
                },
            ),
        ];
        for (raw, want) in cases {
            assert_eq!(decode_as("v1", "Namespace", &raw), Err(want), "{raw:02x?}");
        }
    }

    static NESTED: Message = Message {
        name: "Nested",
        fields: &[msg(1, "child", &NESTED)],
    };

    #[test]
    fn nesting_is_bounded() {
        let nest = |levels: usize| (0..levels).fold(Vec::new(), |inner, _| lf(1, &inner));
        let mut out = Map::new();
        assert_eq!(
            decode_fields(&NESTED, &nest(MAX_DEPTH - 1), 1, &mut out),
            Ok(())
        );
        let mut out = Map::new();
        match decode_fields(&NESTED, &nest(MAX_DEPTH + 5), 1, &mut out) {
            Err(ProtobufError::TooDeep {
                message,
                path,
                limit,
            }) => {
                assert_eq!((message, limit), ("Nested", MAX_DEPTH));
                assert_eq!(path.split('.').count(), MAX_DEPTH);
            }
            other => panic!("expected TooDeep, got {other:?}"),
        }
    }

    #[test]
    fn envelope_errors() {
        assert_eq!(
            decode(b"{\"kind\":\"Pod\"}"),
            Err(ProtobufError::MissingMagic)
        );
        assert_eq!(decode(b"k8s"), Err(ProtobufError::MissingMagic));
        assert_eq!(decode(b"k8s\0"), Err(ProtobufError::MissingTypeMeta));
        let gz = [
            MAGIC.to_vec(),
            lf(1, &[sf(1, "v1"), sf(2, "Pod")].concat()),
            sf(3, "gzip"),
        ]
        .concat();
        assert_eq!(
            decode(&gz),
            Err(ProtobufError::UnsupportedEncoding("gzip".into()))
        );
        let unknown = decode_as("rbac.authorization.k8s.io/v1", "Role", &[]).unwrap_err();
        assert_eq!(
            unknown,
            ProtobufError::UnsupportedKind {
                api_version: "rbac.authorization.k8s.io/v1".into(),
                kind: "Role".into()
            }
        );
        let api: ApiError = unknown.into();
        assert_eq!(api.code, 415);
        assert!(
            api.message.contains("Role (rbac.authorization.k8s.io/v1)")
                && api.message.contains("application/json"),
            "{}",
            api.message
        );
        assert_eq!(
            ApiError::from(ProtobufError::UnsupportedEncoding("gzip".into())).code,
            415
        );
        assert_eq!(ApiError::from(ProtobufError::MissingMagic).code, 400);
        let broken = [MAGIC.to_vec(), lf(1, &[0x0a, 0x01, 0xff])].concat();
        assert_eq!(
            decode(&broken),
            Err(ProtobufError::Malformed {
                message: "runtime.TypeMeta",
                path: "typeMeta.apiVersion".into(),
                defect: Defect::InvalidUtf8
            })
        );
        // No raw: an object with only its type.
        let bare = [
            MAGIC.to_vec(),
            lf(1, &[sf(1, "v1"), sf(2, "Namespace")].concat()),
        ]
        .concat();
        assert_eq!(
            decode(&bare),
            Ok(json!({"apiVersion": "v1", "kind": "Namespace"}))
        );
    }

    const FIXTURES: &[&str] = &[
        "namespace",
        "configmap",
        "configmap-from-file",
        "secret",
        "secret-docker-registry",
        "deployment",
        "deployment-multi",
        "job",
        "job-command",
        "job-from-cronjob",
        "cronjob",
        "cronjob-command",
        "service-clusterip",
        "service-nodeport",
        "service-externalname",
        "quota",
        "quota-scopes",
        "hpa-v2",
        "hpa-v2-cpu",
        "hpa-v1",
        "eviction",
        "deleteoptions-drain",
    ];

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/tests/fixtures/protobuf/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// Status is not decoded (see the module doc) and `null` is how Go's
    /// JSON says "unset"; neither is part of what a create sends.
    fn normalize(v: &mut Value, top: bool) {
        if let Value::Object(m) = v {
            if top {
                m.remove("status");
            }
            m.retain(|_, x| !x.is_null());
            m.values_mut().for_each(|x| normalize(x, false));
        } else if let Value::Array(a) = v {
            a.iter_mut().for_each(|x| normalize(x, false));
        }
    }

    #[test]
    fn kubectl_bodies_decode_to_kubectl_json() {
        for name in FIXTURES {
            let mut got =
                decode(&fixture(&format!("{name}.pb"))).unwrap_or_else(|e| panic!("{name}: {e}"));
            let mut want: Value =
                serde_json::from_slice(&fixture(&format!("{name}.json"))).unwrap();
            normalize(&mut got, true);
            normalize(&mut want, true);
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn decoded_delete_options_feed_the_server() {
        use crate::apiserver::rest::DeleteOptions;
        let ev = decode(&fixture("eviction.pb")).unwrap();
        let opts: DeleteOptions = serde_json::from_value(ev["deleteOptions"].clone()).unwrap();
        assert_eq!(opts.grace_period_seconds, Some(30));
        assert_eq!(opts.propagation_policy.as_deref(), Some("Background"));
        assert_eq!(opts.dry_run, vec!["All".to_string()]);
        let drain: DeleteOptions =
            serde_json::from_value(decode(&fixture("deleteoptions-drain.pb")).unwrap()).unwrap();
        assert_eq!(drain, DeleteOptions::default());
    }

    #[test]
    fn every_kind_has_a_unique_entry() {
        for (i, (v, k, _)) in KINDS.iter().enumerate() {
            assert!(
                KINDS[i + 1..].iter().all(|(v2, k2, _)| (v2, k2) != (v, k)),
                "{v} {k}"
            );
        }
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(&bytes);
            let _ = decode(&[MAGIC.as_slice(), &bytes].concat());
            for (v, k, _) in KINDS {
                let _ = decode_as(v, k, &bytes);
            }
        }

        #[test]
        fn mutated_fixtures_never_panic(
            which in 0..FIXTURES.len(),
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
            cut in any::<usize>(),
        ) {
            let mut bytes = fixture(&format!("{}.pb", FIXTURES[which]));
            for (at, b) in flips {
                let i = at % bytes.len();
                bytes[i] = b;
            }
            let _ = decode(&bytes);
            bytes.truncate(cut % (bytes.len() + 1));
            let _ = decode(&bytes);
        }
    }
}
