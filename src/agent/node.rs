//! The agent's Node object and its heartbeat: registration with capacity,
//! allocatable, addresses, daemon endpoint and node info; the pressure and
//! Ready conditions; and the Lease in `kube-node-lease` renewed every few
//! seconds. Building the objects is pure; the loop at the end does the IO.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tokio::sync::watch;

use super::status::merge_patch;
use super::sysinfo::{HostFacts, HostIdentity, host_facts};
use crate::api::coordination::{Lease, LeaseSpec};
use crate::api::core::{
    DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeStatus,
    NodeSystemInfo,
};
use crate::api::quantity::Quantity;
use crate::api::{MicroTime, OwnerReference, Time};
use crate::client::{ApiClient, ClientError, PatchType};

/// Namespace of node heartbeat leases.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";
/// `leaseDurationSeconds` of node leases: the control plane's default node
/// grace period (the kubelet says 40; wasmk renews every 2 s and declares
/// a silent node lost after 8 s, see docs/decisions.md).
pub const LEASE_DURATION_SECONDS: i32 = 8;
/// The node status is rewritten at least this often even when unchanged.
const STATUS_REPORT_EVERY: chrono::Duration = chrono::Duration::minutes(1);

/// What the node reports about itself, beyond what it measures.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub name: String,
    /// Address pods and the API reach the agent at.
    pub ip: String,
    /// Port of the agent's HTTPS endpoint (`daemonEndpoints`).
    pub port: u16,
    pub max_pods: u32,
    /// Memory kept back from pods: allocatable = MemTotal - reserve.
    pub memory_reserve: u64,
    /// Extra labels for the Node.
    pub labels: BTreeMap<String, String>,
    /// Where pods keep their data (for disk pressure).
    pub data_dir: PathBuf,
}

/// Thresholds that turn the pressure conditions on: the kubelet's hard
/// eviction default for memory; for disk 5 % (the kubelet says 10 %, but a
/// Wasm pod writes little besides its logs, and large shared disks often
/// run at 90 %); PIDs at 90 % of `pid_max`.
const MEMORY_AVAILABLE_MIN: u64 = 100 << 20;
const DISK_AVAILABLE_MIN_PERCENT: u64 = 5;
const TASKS_MAX_PERCENT: u64 = 90;

fn q(s: String) -> Quantity {
    Quantity(s)
}

fn resources(facts: &HostFacts, cfg: &NodeConfig, allocatable: bool) -> BTreeMap<String, Quantity> {
    let memory = if allocatable {
        facts.memory_total.saturating_sub(cfg.memory_reserve)
    } else {
        facts.memory_total
    };
    [
        ("cpu".to_string(), q(facts.cpus.to_string())),
        ("memory".to_string(), q(format!("{}Ki", memory / 1024))),
        ("pods".to_string(), q(cfg.max_pods.to_string())),
        (
            "ephemeral-storage".to_string(),
            q(format!("{}Ki", facts.disk_capacity / 1024)),
        ),
    ]
    .into()
}

/// The Node as first created: labels only (status is written separately).
pub fn node_object(cfg: &NodeConfig, id: &HostIdentity) -> Node {
    let mut n = Node {
        api_version: "v1".into(),
        kind: "Node".into(),
        ..Default::default()
    };
    n.metadata.name = cfg.name.clone();
    n.metadata.labels = node_labels(cfg, id);
    n
}

/// The well-known labels a kubelet sets, plus configured ones.
pub fn node_labels(cfg: &NodeConfig, id: &HostIdentity) -> BTreeMap<String, String> {
    let mut labels: BTreeMap<String, String> = [
        ("kubernetes.io/hostname", cfg.name.as_str()),
        ("kubernetes.io/os", "linux"),
        ("kubernetes.io/arch", id.architecture.as_str()),
        ("beta.kubernetes.io/os", "linux"),
        ("beta.kubernetes.io/arch", id.architecture.as_str()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    labels.extend(cfg.labels.clone());
    labels
}

/// One pressure or Ready condition, keeping `lastTransitionTime` while
/// the status holds and stamping the heartbeat.
fn condition(
    previous: &[NodeCondition],
    type_: &str,
    on: bool,
    (reason_on, message_on): (&str, &str),
    (reason_off, message_off): (&str, &str),
    now: Time,
) -> NodeCondition {
    let status = if on { "True" } else { "False" };
    let since = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .and_then(|c| c.last_transition_time)
        .unwrap_or(now);
    let (reason, message) = if on {
        (reason_on, message_on)
    } else {
        (reason_off, message_off)
    };
    NodeCondition {
        type_: type_.to_string(),
        status: status.to_string(),
        last_heartbeat_time: Some(now),
        last_transition_time: Some(since),
        reason: reason.to_string(),
        message: message.to_string(),
    }
}

/// The node's conditions, in the kubelet's order.
pub fn conditions(facts: &HostFacts, previous: &[NodeCondition], now: Time) -> Vec<NodeCondition> {
    let memory = facts.memory_available < MEMORY_AVAILABLE_MIN;
    let disk = facts.disk_capacity > 0
        && facts.disk_available * 100 < facts.disk_capacity * DISK_AVAILABLE_MIN_PERCENT;
    let pids = facts.pid_max > 0 && facts.tasks * 100 > facts.pid_max * TASKS_MAX_PERCENT;
    vec![
        condition(
            previous,
            "MemoryPressure",
            memory,
            (
                "KubeletHasInsufficientMemory",
                "kubelet has insufficient memory available",
            ),
            (
                "KubeletHasSufficientMemory",
                "kubelet has sufficient memory available",
            ),
            now,
        ),
        condition(
            previous,
            "DiskPressure",
            disk,
            ("KubeletHasDiskPressure", "kubelet has disk pressure"),
            ("KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            now,
        ),
        condition(
            previous,
            "PIDPressure",
            pids,
            (
                "KubeletHasInsufficientPID",
                "kubelet has insufficient PID available",
            ),
            (
                "KubeletHasSufficientPID",
                "kubelet has sufficient PID available",
            ),
            now,
        ),
        condition(
            previous,
            "Ready",
            true,
            ("KubeletReady", "wasmk agent is posting ready status"),
            ("KubeletNotReady", ""),
            now,
        ),
    ]
}

/// The node's whole status.
pub fn node_status(
    cfg: &NodeConfig,
    facts: &HostFacts,
    id: &HostIdentity,
    previous: &[NodeCondition],
    now: Time,
) -> NodeStatus {
    let mut addresses = Vec::new();
    if !cfg.ip.is_empty() {
        addresses.push(NodeAddress {
            type_: "InternalIP".into(),
            address: cfg.ip.clone(),
        });
    }
    addresses.push(NodeAddress {
        type_: "Hostname".into(),
        address: id.hostname.clone(),
    });
    NodeStatus {
        capacity: resources(facts, cfg, false),
        allocatable: resources(facts, cfg, true),
        phase: String::new(),
        conditions: conditions(facts, previous, now),
        addresses,
        daemon_endpoints: NodeDaemonEndpoints {
            kubelet_endpoint: DaemonEndpoint {
                port: i32::from(cfg.port),
            },
        },
        node_info: NodeSystemInfo {
            machine_id: id.machine_id.clone(),
            system_uuid: id.system_uuid.clone(),
            boot_id: id.boot_id.clone(),
            kernel_version: id.kernel_version.clone(),
            os_image: id.os_image.clone(),
            container_runtime_version: format!("wasmk://{}", env!("CARGO_PKG_VERSION")),
            kubelet_version: crate::apiserver::discovery::version()["gitVersion"]
                .as_str()
                .unwrap_or("")
                .to_string(),
            kube_proxy_version: String::new(),
            operating_system: "linux".into(),
            architecture: id.architecture.clone(),
        },
    }
}

/// Whether two statuses differ in more than heartbeat times.
pub fn differs_beyond_heartbeat(a: &NodeStatus, b: &NodeStatus) -> bool {
    let strip = |s: &NodeStatus| {
        let mut s = s.clone();
        for c in &mut s.conditions {
            c.last_heartbeat_time = None;
        }
        s
    };
    strip(a) != strip(b)
}

/// The node's Lease, renewed at `now`.
pub fn lease(node: &str, node_uid: &str, now: DateTime<Utc>) -> Lease {
    let mut l = Lease {
        api_version: "coordination.k8s.io/v1".into(),
        kind: "Lease".into(),
        metadata: Default::default(),
        spec: LeaseSpec {
            holder_identity: Some(node.to_string()),
            lease_duration_seconds: Some(LEASE_DURATION_SECONDS),
            renew_time: Some(MicroTime(now)),
            ..Default::default()
        },
    };
    l.metadata.name = node.to_string();
    l.metadata.namespace = LEASE_NAMESPACE.into();
    if !node_uid.is_empty() {
        l.metadata.owner_references = vec![OwnerReference {
            api_version: "v1".into(),
            kind: "Node".into(),
            name: node.to_string(),
            uid: node_uid.to_string(),
            controller: None,
            block_owner_deletion: None,
        }];
    }
    l
}

/// Errors of the node heartbeat.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("cannot register node {node}: {source}")]
    Register { node: String, source: ClientError },
    #[error("cannot update node {node}: {source}")]
    Status { node: String, source: ClientError },
    #[error("cannot renew the lease of node {node}: {source}")]
    Lease { node: String, source: ClientError },
    #[error("cannot encode {what}: {source}")]
    Encode {
        what: &'static str,
        source: serde_json::Error,
    },
}

/// Registration and heartbeats of one node.
pub struct Heartbeat {
    client: ApiClient,
    cfg: NodeConfig,
    id: HostIdentity,
    /// The status as the API holds it (our last write).
    written: Option<(NodeStatus, DateTime<Utc>)>,
    node_uid: String,
}

impl Heartbeat {
    pub fn new(client: ApiClient, cfg: NodeConfig, id: HostIdentity) -> Heartbeat {
        Heartbeat {
            client,
            cfg,
            id,
            written: None,
            node_uid: String::new(),
        }
    }

    fn node_path(&self) -> String {
        format!("/api/v1/nodes/{}", self.cfg.name)
    }

    /// Creates the Node if it does not exist and writes its status.
    pub async fn register(&mut self) -> Result<(), NodeError> {
        let node = self.cfg.name.clone();
        let reg = |source| NodeError::Register {
            node: node.clone(),
            source,
        };
        let existing = match self.client.get(&self.node_path()).await {
            Ok(v) => Some(v),
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(reg(e)),
        };
        let current = match existing {
            Some(v) => {
                let labels = node_labels(&self.cfg, &self.id);
                self.client
                    .patch(
                        &self.node_path(),
                        PatchType::Merge,
                        &json!({"metadata": {"labels": labels}}),
                    )
                    .await
                    .map_err(reg)?;
                v
            }
            None => {
                let obj =
                    serde_json::to_value(node_object(&self.cfg, &self.id)).map_err(|source| {
                        NodeError::Encode {
                            what: "node",
                            source,
                        }
                    })?;
                match self.client.create("/api/v1/nodes", &obj).await {
                    Ok(v) => v,
                    Err(e) if e.is_already_exists() => {
                        self.client.get(&self.node_path()).await.map_err(reg)?
                    }
                    Err(e) => return Err(reg(e)),
                }
            }
        };
        self.node_uid = current
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let status: NodeStatus = current
            .get("status")
            .cloned()
            .and_then(|s| serde_json::from_value(s).ok())
            .unwrap_or_default();
        self.write_status(&status, true).await
    }

    /// Writes the status if it changed or the last report is getting old.
    async fn write_status(&mut self, previous: &NodeStatus, force: bool) -> Result<(), NodeError> {
        let now = Utc::now();
        let facts = {
            let dir = self.cfg.data_dir.clone();
            tokio::task::spawn_blocking(move || host_facts(&dir))
                .await
                .unwrap_or_default()
        };
        let status = node_status(
            &self.cfg,
            &facts,
            &self.id,
            &previous.conditions,
            Time::now(),
        );
        let due = match &self.written {
            Some((_, at)) => now - *at >= STATUS_REPORT_EVERY,
            None => true,
        };
        if !force && !due && !differs_beyond_heartbeat(&status, previous) {
            return Ok(());
        }
        let encode = |s: &NodeStatus| {
            serde_json::to_value(s).map_err(|source| NodeError::Encode {
                what: "node status",
                source,
            })
        };
        let old = encode(previous)?;
        let new = encode(&status)?;
        let Some(patch) = merge_patch(&old, &new) else {
            return Ok(());
        };
        self.client
            .patch(
                &format!("{}/status", self.node_path()),
                PatchType::Merge,
                &json!({ "status": patch }),
            )
            .await
            .map_err(|source| NodeError::Status {
                node: self.cfg.name.clone(),
                source,
            })?;
        self.written = Some((status, now));
        Ok(())
    }

    /// Renews (or creates) the node's Lease.
    async fn renew_lease(&self) -> Result<(), NodeError> {
        let err = |source| NodeError::Lease {
            node: self.cfg.name.clone(),
            source,
        };
        let path = format!(
            "/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases/{}",
            self.cfg.name
        );
        let mut desired = serde_json::to_value(lease(&self.cfg.name, &self.node_uid, Utc::now()))
            .map_err(|source| NodeError::Encode {
            what: "lease",
            source,
        })?;
        match self.client.get(&path).await {
            Ok(current) => {
                if let Some(rv) = current.pointer("/metadata/resourceVersion") {
                    desired["metadata"]["resourceVersion"] = rv.clone();
                }
                self.client.update(&path, &desired).await.map_err(err)?;
            }
            Err(e) if e.is_not_found() => {
                let collection =
                    format!("/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases");
                match self.client.create(&collection, &desired).await {
                    Ok(_) => {}
                    Err(e) if e.is_already_exists() => {}
                    Err(e) => return Err(err(e)),
                }
            }
            Err(e) => return Err(err(e)),
        }
        Ok(())
    }

    /// Registers (retrying until it works), then keeps status and lease
    /// current until `shutdown`.
    pub async fn run(
        mut self,
        status_every: Duration,
        lease_every: Duration,
        mut shutdown: watch::Receiver<bool>,
    ) {
        loop {
            match self.register().await {
                Ok(()) => break,
                Err(e) => tracing::warn!(error = %e, "node registration failed; retrying"),
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = super::stopped(&mut shutdown) => return,
            }
        }
        if let Err(e) = self.renew_lease().await {
            tracing::warn!(error = %e, "lease renewal failed");
        }
        let mut status_tick = tokio::time::interval(status_every);
        let mut lease_tick = tokio::time::interval(lease_every);
        status_tick.tick().await;
        lease_tick.tick().await;
        loop {
            tokio::select! {
                _ = status_tick.tick() => {
                    let previous = self.written.as_ref().map(|(s, _)| s.clone()).unwrap_or_default();
                    if let Err(e) = self.write_status(&previous, false).await {
                        tracing::warn!(error = %e, "node status update failed");
                        // Re-read on the next round: the node may be gone.
                        if let Err(e) = self.register().await {
                            tracing::warn!(error = %e, "node registration failed");
                        }
                    }
                }
                _ = lease_tick.tick() => {
                    if let Err(e) = self.renew_lease().await {
                        tracing::warn!(error = %e, "lease renewal failed");
                    }
                }
                _ = super::stopped(&mut shutdown) => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> NodeConfig {
        NodeConfig {
            name: "n1".into(),
            ip: "10.0.0.7".into(),
            port: 10250,
            max_pods: 1100,
            memory_reserve: 100 << 20,
            labels: [("tier".to_string(), "edge".to_string())].into(),
            data_dir: "/".into(),
        }
    }

    fn facts() -> HostFacts {
        HostFacts {
            cpus: 2,
            memory_total: 8 << 30,
            memory_available: 6 << 30,
            disk_capacity: 100 << 30,
            disk_available: 50 << 30,
            tasks: 300,
            pid_max: 32768,
        }
    }

    fn id() -> HostIdentity {
        HostIdentity {
            hostname: "host-1".into(),
            kernel_version: "6.1.0".into(),
            os_image: "Debian".into(),
            machine_id: "m".into(),
            system_uuid: "s".into(),
            boot_id: "b".into(),
            architecture: "amd64".into(),
        }
    }

    fn t(secs: i64) -> Time {
        Time::from_unix(1_700_000_000 + secs).unwrap()
    }

    #[test]
    fn status_reports_capacity_allocatable_and_endpoints() {
        let s = node_status(&cfg(), &facts(), &id(), &[], t(0));
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["capacity"]["cpu"], "2");
        assert_eq!(v["capacity"]["memory"], "8388608Ki");
        assert_eq!(v["allocatable"]["memory"], "8286208Ki");
        assert_eq!(v["allocatable"]["pods"], "1100");
        assert_eq!(v["daemonEndpoints"]["kubeletEndpoint"]["Port"], 10250);
        assert_eq!(
            v["addresses"][0],
            json!({"type": "InternalIP", "address": "10.0.0.7"})
        );
        assert_eq!(
            v["addresses"][1],
            json!({"type": "Hostname", "address": "host-1"})
        );
        assert_eq!(v["nodeInfo"]["operatingSystem"], "linux");
        assert!(
            v["nodeInfo"]["containerRuntimeVersion"]
                .as_str()
                .unwrap()
                .starts_with("wasmk://")
        );
        let types: Vec<&str> = s.conditions.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(
            types,
            ["MemoryPressure", "DiskPressure", "PIDPressure", "Ready"]
        );
        let labels = node_object(&cfg(), &id()).metadata.labels;
        assert_eq!(labels["kubernetes.io/hostname"], "n1");
        assert_eq!(labels["kubernetes.io/arch"], "amd64");
        assert_eq!(labels["tier"], "edge");
    }

    #[test]
    fn pressure_conditions_table() {
        type Edit = fn(&mut HostFacts);
        let cases: Vec<(&str, Edit, [&str; 3])> = vec![
            ("healthy", |_| {}, ["False", "False", "False"]),
            (
                "low memory",
                |f| f.memory_available = 50 << 20,
                ["True", "False", "False"],
            ),
            (
                "full disk",
                |f| f.disk_available = 2 << 30,
                ["False", "True", "False"],
            ),
            (
                "many tasks",
                |f| f.tasks = 30_000,
                ["False", "False", "True"],
            ),
        ];
        for (name, edit, want) in cases {
            let mut f = facts();
            edit(&mut f);
            let c = conditions(&f, &[], t(0));
            let got = [
                c[0].status.as_str(),
                c[1].status.as_str(),
                c[2].status.as_str(),
            ];
            assert_eq!(got, want, "{name}");
            assert_eq!(c[3].status, "True");
        }
        let low = {
            let mut f = facts();
            f.memory_available = 1;
            conditions(&f, &[], t(0))
        };
        assert_eq!(low[0].reason, "KubeletHasInsufficientMemory");
    }

    #[test]
    fn transition_times_hold_and_heartbeats_do_not_count_as_changes() {
        let first = node_status(&cfg(), &facts(), &id(), &[], t(0));
        let later = node_status(&cfg(), &facts(), &id(), &first.conditions, t(30));
        assert_eq!(later.conditions[0].last_transition_time, Some(t(0)));
        assert_eq!(later.conditions[0].last_heartbeat_time, Some(t(30)));
        assert!(!differs_beyond_heartbeat(&first, &later));
        let mut f = facts();
        f.memory_available = 1;
        let pressured = node_status(&cfg(), &f, &id(), &later.conditions, t(40));
        assert!(differs_beyond_heartbeat(&later, &pressured));
        assert_eq!(pressured.conditions[0].last_transition_time, Some(t(40)));
    }

    #[test]
    fn lease_names_the_node_as_holder_and_owner() {
        let now = Utc::now();
        let l = lease("n1", "uid-1", now);
        let v = serde_json::to_value(&l).unwrap();
        assert_eq!(v["metadata"]["namespace"], LEASE_NAMESPACE);
        assert_eq!(v["spec"]["holderIdentity"], "n1");
        assert_eq!(v["spec"]["leaseDurationSeconds"], LEASE_DURATION_SECONDS);
        assert_eq!(v["metadata"]["ownerReferences"][0]["kind"], "Node");
        assert!(l.is_held(now));
    }
}
