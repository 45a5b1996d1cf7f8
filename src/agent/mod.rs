//! The node agent (wasmk's kubelet): registers its Node and keeps it and
//! its Lease current, runs the pods bound to it as sandbox processes in
//! their own cgroups, reports their status, serves their logs and usage.
//!
//! The agent talks to the API only through [`ApiClient`] over HTTPS, also
//! when it is embedded in `wasmk up`, so there is one code path.
//!
//! Layout (pure parts first):
//! - [`lifecycle`]: a container's state machine, its declared transitions
//!   and the kubelet's crash-loop backoff
//! - [`plan`]: what a pod needs next (start, stop, kill, fail, clean up)
//! - [`status`]: pod status as the kubelet writes it; merge patches
//! - [`env`]: environment and argv (`valueFrom`, `envFrom`, `$(VAR)`)
//! - [`volumes`]: emptyDir, configMap and secret volumes as preopens
//! - [`images`]: image -> digest -> verified blob -> compiled artifact
//! - [`containers`]: the node's file layout, cgroups and sandbox spawning
//! - [`process`]: pidfds, process identity, checkpoints for re-adoption
//! - [`journal`]: the checkpoints, appended to one file per node
//! - [`worker`]: one task per pod driving the plan
//! - [`pods`]: the pod watch, workers, re-adoption and orphan cleanup
//! - [`status_writer`]: coalesced status writes
//! - [`node`]: Node registration, conditions, Lease heartbeats
//! - [`server`], [`review`], [`stats`]: the agent's HTTPS endpoint (logs,
//!   usage), its TokenReview authentication, and usage sampling
//! - [`ext`]: what the API server serves on the agents' behalf
//!   (TokenReviews, `pods/log`, `metrics.k8s.io`)
//! - [`sysinfo`], [`informer`], [`index`]: host facts, list+watch, the
//!   shared view of pods

pub mod containers;
pub mod env;
pub mod ext;
pub mod images;
pub mod index;
pub mod informer;
pub mod journal;
pub mod lifecycle;
pub mod node;
pub mod plan;
pub mod pods;
pub mod process;
pub mod review;
pub mod server;
pub mod stats;
pub mod status;
pub mod status_writer;
pub mod sysinfo;
pub mod volumes;
pub mod worker;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, watch};

use crate::cgroup::{CgroupManager, CgroupPath};
use crate::client::{ApiClient, ApiClientConfig};
use crate::sandbox::{EngineRole, LogRotation, ModuleCache, new_engine};
use containers::{Cgroups, Layout};
use env::Allocatable;
use images::ModuleStore;
use index::PodIndex;
use status_writer::StatusWriter;

/// Errors starting the agent.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("invalid node name {name:?}: {reason}")]
    NodeName { name: String, reason: String },
    #[error("cannot create {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Client(#[from] crate::client::ClientError),
    #[error(transparent)]
    Engine(#[from] crate::sandbox::engine::EngineError),
    #[error(transparent)]
    Cache(#[from] crate::sandbox::CacheError),
    #[error(transparent)]
    Cgroup(#[from] crate::cgroup::CgroupError),
    #[error(transparent)]
    Server(#[from] server::ServerError),
    #[error(transparent)]
    Tls(#[from] crate::auth::AuthError),
    #[error(transparent)]
    Journal(#[from] process::CheckpointError),
}

/// Resolves once `shutdown` turns true (or its sender is gone). The
/// borrow `wait_for` returns is dropped inside, so callers stay `Send`.
pub(crate) async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|s| *s).await;
}

/// How an agent runs.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// The Node's name.
    pub node_name: String,
    /// Where modules, compiled artifacts, pod state and logs live.
    pub data_dir: PathBuf,
    /// Address of the agent's HTTPS endpoint.
    pub listen: SocketAddr,
    /// The node's address (the pods' too); empty: the listen address if it
    /// is specific, else the first non-loopback interface.
    pub node_ip: String,
    pub max_pods: u32,
    /// Memory kept back from pods in `allocatable`.
    pub memory_reserve: u64,
    /// The cgroup every pod lives under.
    pub cgroup_root: String,
    /// `pids.max` per container.
    pub pids_limit: u64,
    pub lease_interval: Duration,
    pub status_interval: Duration,
    pub stats_interval: Duration,
    /// How long a "being created" status may wait for the start to finish:
    /// a pod that starts within it is written once, as Running. In a burst
    /// of starts this saves status writes (and their Raft entries and watch
    /// events); a pod whose start takes longer shows ContainerCreating
    /// after it.
    pub status_coalesce: Duration,
    pub log_rotation: LogRotation,
    /// The binary whose `sandbox` subcommand runs containers.
    pub sandbox_exe: PathBuf,
    pub labels: BTreeMap<String, String>,
    /// Sandboxes spawned at once.
    pub spawn_parallelism: usize,
    /// Fork sandboxes from pre-initialised launcher processes (else each
    /// is a fresh exec of `sandbox_exe`).
    pub sandbox_launcher: bool,
    /// How many launcher processes fork sandboxes side by side.
    pub sandbox_launchers: usize,
}

impl AgentConfig {
    /// Defaults for node `node_name` with data in `data_dir`.
    pub fn new(node_name: &str, data_dir: PathBuf) -> AgentConfig {
        AgentConfig {
            node_name: node_name.to_string(),
            data_dir,
            listen: SocketAddr::from(([0, 0, 0, 0], 10250)),
            node_ip: String::new(),
            max_pods: 1100,
            memory_reserve: 100 << 20,
            cgroup_root: "wasmk".into(),
            pids_limit: 64,
            lease_interval: Duration::from_secs(2),
            status_interval: Duration::from_secs(10),
            stats_interval: Duration::from_secs(15),
            status_coalesce: Duration::from_secs(1),
            log_rotation: LogRotation::default(),
            sandbox_exe: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("wasmk")),
            labels: BTreeMap::new(),
            spawn_parallelism: 2 * sysinfo::cpu_count().max(1) as usize,
            sandbox_launcher: true,
            // One per CPU (up to 4): a start's fork and its wait for the
            // sandbox to join its cgroups overlap with others'.
            sandbox_launchers: (sysinfo::cpu_count() as usize).clamp(1, 4),
        }
    }
}

/// What the agent's parts share.
pub struct Ctx {
    pub cfg: AgentConfig,
    pub client: ApiClient,
    pub modules: Arc<ModuleStore>,
    pub cgroups: Cgroups,
    pub layout: Layout,
    pub journal: journal::Journal,
    pub status: StatusWriter,
    pub index: PodIndex,
    pub boot_id: String,
    pub allocatable: Allocatable,
    pub spawn_slots: Semaphore,
    pub sandboxes: containers::Sandboxes,
}

/// The node's address when none is configured.
fn detect_ip(listen: SocketAddr) -> String {
    if !listen.ip().is_unspecified() {
        return listen.ip().to_string();
    }
    let ips = crate::auth::pki::interface_ips();
    ips.iter()
        .find(|ip| matches!(ip, IpAddr::V4(v) if !v.is_loopback()))
        .or_else(|| ips.iter().find(|ip| !ip.is_loopback()))
        .map(|ip| ip.to_string())
        .unwrap_or_else(|| "127.0.0.1".into())
}

/// A running agent.
pub struct Agent {
    pub ctx: Arc<Ctx>,
    /// Port of the HTTPS endpoint.
    pub port: u16,
    shutdown: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Agent {
    /// Starts every part of the agent; it serves until [`Agent::stop`].
    pub async fn start(mut cfg: AgentConfig, api: ApiClientConfig) -> Result<Agent, AgentError> {
        if let Err(reason) = crate::api::validation::dns1123_subdomain(&cfg.node_name) {
            return Err(AgentError::NodeName {
                name: cfg.node_name.clone(),
                reason,
            });
        }
        process::raise_nofile_limit();
        for dir in [
            cfg.data_dir.clone(),
            cfg.data_dir.join("modules"),
            cfg.data_dir.join("pods"),
        ] {
            std::fs::create_dir_all(&dir)
                .map_err(|source| AgentError::DataDir { path: dir, source })?;
        }
        let listener = tokio::net::TcpListener::bind(cfg.listen)
            .await
            .map_err(|source| AgentError::Listen {
                addr: cfg.listen,
                source,
            })?;
        let port = listener
            .local_addr()
            .map(|a| a.port())
            .unwrap_or(cfg.listen.port());
        if cfg.node_ip.is_empty() {
            cfg.node_ip = detect_ip(cfg.listen);
        }
        let client = ApiClient::from_config(api)?;
        let engine = new_engine(EngineRole::Compiler, None)?;
        let cache = ModuleCache::new(cfg.data_dir.join("cache"))?;
        let modules = Arc::new(ModuleStore::new(
            client.clone(),
            cfg.data_dir.join("modules"),
            cache,
            engine,
        ));
        let cgroups = Cgroups {
            manager: CgroupManager::detect().map_err(|e| e.to_string()),
            root: CgroupPath::new(&cfg.cgroup_root)?,
            pids_limit: cfg.pids_limit,
        };
        match &cgroups.manager {
            Err(e) => tracing::warn!(error = %e, "no cgroups: pods on this node cannot start"),
            // The root first, so the pods' cgroups inherit its settings
            // (v1 swappiness) instead of each writing them.
            Ok(mgr) => {
                if let Err(e) = mgr.create_root(&cgroups.root) {
                    tracing::warn!(error = %e, "cannot create the pods' root cgroup");
                }
            }
        }
        let identity = sysinfo::host_identity();
        let facts = sysinfo::host_facts(&cfg.data_dir);
        let allocatable = Allocatable {
            cpu_milli: i64::from(facts.cpus) * 1000,
            memory_bytes: i64::try_from(facts.memory_total.saturating_sub(cfg.memory_reserve))
                .unwrap_or(i64::MAX),
            ephemeral_storage_bytes: i64::try_from(facts.disk_capacity).unwrap_or(i64::MAX),
        };
        let names = vec![
            cfg.node_ip.clone(),
            cfg.node_name.clone(),
            identity.hostname.clone(),
        ];
        let tls_identity = server::self_signed(&names)?;
        let tls = Arc::new(crate::auth::tls::server_config(
            &tls_identity,
            b"",
            crate::auth::ClientAuth::None,
        )?);
        let launcher = if cfg.sandbox_launcher {
            match crate::sandbox::Launchers::new(&cfg.sandbox_exe, cfg.sandbox_launchers) {
                Ok(l) => Some(l),
                Err(e) => {
                    tracing::warn!(error = %e, "no sandbox launcher: every sandbox is exec'd");
                    None
                }
            }
        } else {
            None
        };
        let sandboxes = containers::Sandboxes {
            exe: cfg.sandbox_exe.clone(),
            launcher,
        };
        let layout = Layout::new(&cfg.data_dir);
        let (journal, local) = journal::Journal::open(&layout.journal_path())?;
        let ctx = Arc::new(Ctx {
            sandboxes,
            layout,
            journal,
            spawn_slots: Semaphore::new(cfg.spawn_parallelism.max(1)),
            cfg,
            client: client.clone(),
            modules: modules.clone(),
            cgroups,
            status: StatusWriter::new(),
            index: PodIndex::default(),
            boot_id: process::boot_id(),
            allocatable,
        });
        let (shutdown, rx) = watch::channel(false);
        let mut tasks = Vec::new();
        tasks.push(tokio::spawn(modules.run(rx.clone())));
        tasks.push(tokio::spawn(
            ctx.status.clone().run(client.clone(), rx.clone()),
        ));
        let heartbeat = node::Heartbeat::new(
            client.clone(),
            node::NodeConfig {
                name: ctx.cfg.node_name.clone(),
                ip: ctx.cfg.node_ip.clone(),
                port,
                max_pods: ctx.cfg.max_pods,
                memory_reserve: ctx.cfg.memory_reserve,
                labels: ctx.cfg.labels.clone(),
                data_dir: ctx.cfg.data_dir.clone(),
            },
            identity,
        );
        tasks.push(tokio::spawn(heartbeat.run(
            ctx.cfg.status_interval,
            ctx.cfg.lease_interval,
            rx.clone(),
        )));
        tasks.push(tokio::spawn(
            pods::PodManager::new(ctx.clone(), local).run(rx.clone()),
        ));
        let stats = Arc::new(stats::Collector::new(ctx.clone()));
        tasks.push(tokio::spawn(
            stats.clone().run(ctx.cfg.stats_interval, rx.clone()),
        ));
        let endpoint = Arc::new(server::AgentServer {
            ctx: ctx.clone(),
            reviewer: review::TokenReviewer::new(client),
            stats,
        });
        tasks.push(tokio::spawn(server::serve(endpoint, listener, tls, rx)));
        tracing::info!(node = %ctx.cfg.node_name, ip = %ctx.cfg.node_ip, port, "node agent started");
        Ok(Agent {
            ctx,
            port,
            shutdown,
            tasks,
        })
    }

    /// Stops the agent and waits for its tasks. Pods keep running: a new
    /// agent on the same data directory re-adopts them.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}
