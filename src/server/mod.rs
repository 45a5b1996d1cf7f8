//! Running a master: the data directory, PKI and tokens, the replicated
//! store, the API server, bootstrap objects, and (on the leader) the
//! control loops. `wasmk up` runs one of these plus a node agent in one
//! process; `wasmk server` runs it alone, usually as one of several
//! ([`Master::start_ha`]: the peer transport, membership and the cluster
//! endpoints of [`crate::cluster`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use serde_json::json;
use tokio::sync::watch;

use crate::apiserver::rest::{SYSTEM_NAMESPACES, WriteOptions};
use crate::apiserver::{Api, ApiServer};
use crate::auth::{Authenticator, ClientAuth, Pki, ServingNames, TokenFile};
use crate::cluster::{ClusterRoutes, Member, Membership};
use crate::store::durable::DiskDurable;
use crate::store::peer::{PeerConfig, PeerTransport};
use crate::store::{NoPeers, RaftOptions, Store, StoreOptions, Transport};

/// What a master needs to start.
#[derive(Clone, Debug)]
pub struct MasterConfig {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    /// Extra names and IPs for the serving certificate.
    pub extra_sans: Vec<String>,
    /// Where to write the admin kubeconfig besides `DATA_DIR/kubeconfig`.
    pub extra_kubeconfig: Option<PathBuf>,
    /// Tunables of the leader's control loops.
    pub control: crate::control::ControlConfig,
}

/// What makes a master one of several (`wasmk server`).
#[derive(Clone, Debug)]
pub struct HaConfig {
    /// This master's member name (its Raft id derives from it).
    pub name: String,
    /// Where the peer port listens.
    pub peer_listen: SocketAddr,
    /// `https://HOST:PORT` other masters reach the peer port at.
    pub advertise_peer_url: String,
    /// `https://HOST:PORT` clients and other masters reach the API at.
    pub advertise_client_url: String,
    /// Peers known at start (names and peer URLs).
    pub seeds: Vec<(String, String)>,
    /// Whether `seeds` is the `--initial-cluster` of a new cluster: a fresh
    /// data directory is bootstrapped with them as voters, and they take
    /// precedence over member records. Otherwise (joining, or restarting a
    /// joined master) they only fill in for members without records.
    pub initial: bool,
    /// Raft heartbeat interval (one Raft tick).
    pub heartbeat: std::time::Duration,
    /// Base election timeout (randomized up to twice as long).
    pub election_timeout: std::time::Duration,
    /// Applied entries between snapshots.
    pub snapshot_every: u64,
}

impl HaConfig {
    fn raft_options(&self) -> RaftOptions {
        // Ten ticks per heartbeat: Raft randomizes election timeouts in
        // whole ticks, and with one tick per heartbeat two followers often
        // drew the same timeout after a leader died, split the vote, and
        // took another election timeout to recover.
        let hb = self.heartbeat.max(std::time::Duration::from_millis(10));
        let tick = hb / TICKS_PER_HEARTBEAT;
        let ratio = (self.election_timeout.as_nanos() / tick.as_nanos())
            .max(2 * u128::from(TICKS_PER_HEARTBEAT));
        RaftOptions {
            id: crate::cluster::raft_id(&self.name),
            // A new cluster's voters are in its bootstrap snapshot; a
            // joining master learns them from the leader's snapshot.
            voters: Vec::new(),
            tick,
            election_tick: usize::try_from(ratio).unwrap_or(100),
            heartbeat_tick: TICKS_PER_HEARTBEAT as usize,
            snapshot_every: self.snapshot_every.max(1),
            ..RaftOptions::default()
        }
    }
}

/// Raft ticks per heartbeat interval (see [`HaConfig::raft_options`]).
const TICKS_PER_HEARTBEAT: u32 = 10;

/// A running master.
pub struct Master {
    pub api: Api,
    pub store: Store,
    /// `https://HOST:PORT` clients use.
    pub url: String,
    pub kubeconfig: PathBuf,
    pub admin_token: String,
    pub ca_pem: String,
    pub data_dir: PathBuf,
    /// The API's Unix socket (`<data-dir>/api.sock`), for clients on this
    /// machine; `None` when it could not be bound.
    pub socket: Option<PathBuf>,
    /// This master's membership duties, when it is one of several.
    pub membership: Option<Arc<Membership>>,
    transport: Option<Arc<PeerTransport>>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// A URL host for an address (unspecified addresses become loopback).
fn url_for(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => "127.0.0.1".parse().unwrap_or(ip),
        ip if ip.is_unspecified() => "::1".parse().unwrap_or(ip),
        ip => ip,
    };
    match ip {
        std::net::IpAddr::V6(v6) => format!("https://[{v6}]:{}", addr.port()),
        std::net::IpAddr::V4(v4) => format!("https://{v4}:{}", addr.port()),
    }
}

impl Master {
    /// Opens the data directory and starts serving as a single master. The
    /// listener is bound before returning, so `url` is usable at once (port
    /// 0 picks a free one).
    pub async fn start(cfg: MasterConfig) -> Result<Master> {
        Master::start_with(cfg, None).await
    }

    /// Starts one master of a multi-master cluster. The data directory must
    /// already hold the cluster's CA and token file (see
    /// [`crate::cluster::bundle`]). Returns once both ports listen; the
    /// cluster may still be electing a leader.
    pub async fn start_ha(cfg: MasterConfig, ha: HaConfig) -> Result<Master> {
        Master::start_with(cfg, Some(ha)).await
    }

    async fn start_with(cfg: MasterConfig, ha: Option<HaConfig>) -> Result<Master> {
        std::fs::create_dir_all(&cfg.data_dir).with_context(|| {
            format!(
                "cannot create the data directory {}",
                cfg.data_dir.display()
            )
        })?;
        let listener = tokio::net::TcpListener::bind(cfg.listen)
            .await
            .with_context(|| format!("cannot listen on {}", cfg.listen))?;
        let addr = listener.local_addr().context("listener address")?;
        let names = ServingNames::detect(Some(addr))
            .with(&cfg.extra_sans)
            .context("invalid --tls-san")?;
        let pki = Pki::load_or_create(&cfg.data_dir.join("pki"), &names)
            .context("cluster certificates")?;
        let token_path = crate::auth::token::token_file_path(&cfg.data_dir);
        let mut tokens = TokenFile::load_or_create(&token_path).context("token file")?;
        // The identity the API server uses towards node agents.
        let apiserver_token = tokens
            .ensure_token(
                &token_path,
                crate::agent::ext::APISERVER_USER,
                &[crate::auth::token::MASTERS_GROUP],
            )
            .context("token file")?;
        let admin_token = tokens
            .admin_token()
            .context("the token file has no admin token")?
            .to_string();
        let raft_dir = cfg.data_dir.join("raft");
        let blob_dir = cfg.data_dir.join("blobs");
        let (shutdown, rx) = watch::channel(false);
        let mut tasks = Vec::new();
        let mut raft_opts = RaftOptions::default();
        let mut peers = None;
        if let Some(ha) = &ha {
            crate::cluster::validate_name(&ha.name)?;
            raft_opts = ha.raft_options();
            if ha.initial && crate::cluster::raft_dir_is_fresh(&raft_dir) {
                if !ha.seeds.iter().any(|(n, _)| *n == ha.name) {
                    anyhow::bail!("--initial-cluster does not list this master ({})", ha.name);
                }
                let voters: Vec<u64> = ha
                    .seeds
                    .iter()
                    .map(|(n, _)| crate::cluster::raft_id(n))
                    .collect();
                crate::cluster::bootstrap_raft_dir(
                    &raft_dir,
                    &voters,
                    1,
                    &crate::cluster::empty_state(),
                )
                .context("cannot bootstrap the new cluster's log")?;
            }
            let peer_listener = tokio::net::TcpListener::bind(ha.peer_listen)
                .await
                .with_context(|| format!("cannot listen on {} (peer port)", ha.peer_listen))?;
            let identity = pki
                .issue_peer_cert(&ha.name, &[])
                .context("peer certificate")?;
            let transport = PeerTransport::new(PeerConfig {
                id: raft_opts.id,
                identity,
                ca_pem: pki.ca_cert_pem().to_string(),
                blob_dir: Some(blob_dir.clone()),
            })
            .context("peer transport")?;
            peers = Some((transport, peer_listener));
        }
        let durable = DiskDurable::open(&raft_dir)
            .with_context(|| format!("cannot open the store in {}", raft_dir.display()))?;
        let transport: Arc<dyn Transport> = match &peers {
            Some((t, _)) => t.clone(),
            None => Arc::new(NoPeers),
        };
        let store = Store::open(
            StoreOptions {
                raft: raft_opts,
                blob_dir: Some(blob_dir.clone()),
                ..Default::default()
            },
            Box::new(durable),
            transport,
        )
        .context("cannot start the store")?;
        let api = Api::new(store.clone());
        let url = match &ha {
            Some(ha) => ha.advertise_client_url.clone(),
            None => url_for(addr),
        };
        let server_address = url.trim_start_matches("https://").to_string();
        let secrets = store.clone();
        let auth = Arc::new(Authenticator::new(&tokens).with_bootstrap(Arc::new(
            move |id: &str| {
                let key = format!(
                    "secrets/{}/{}",
                    crate::auth::bootstrap::NAMESPACE,
                    crate::auth::bootstrap::secret_name(id)
                );
                secrets.read(|sm| {
                    sm.get(&key)
                        .and_then(|s| serde_json::from_slice(&s.value).ok())
                })
            },
        )));
        let mut server = ApiServer::new(api.clone(), Some(auth.clone()), server_address);
        server
            .extensions
            .push(Arc::new(crate::modules::ModuleRoutes { api: api.clone() }));
        // TokenReviews, pods/log and metrics.k8s.io, served with the agents.
        crate::agent::ext::register(&mut server, api.clone(), auth, apiserver_token);
        let mut membership = None;
        let mut peer_transport = None;
        if let (Some(ha), Some((transport, peer_listener))) = (&ha, peers) {
            tasks.extend(transport.start(peer_listener, store.clone()));
            let me = Member::new(&ha.name, &ha.advertise_peer_url, &ha.advertise_client_url);
            let m = Membership::new(store.clone(), transport.clone(), me, &ha.seeds, ha.initial);
            tasks.extend(m.start(rx.clone()));
            server.extensions.push(Arc::new(ClusterRoutes {
                membership: m.clone(),
                data_dir: cfg.data_dir.clone(),
                ca_pem: pki.ca_cert_pem().to_string(),
                blob_dir: Some(blob_dir.clone()),
            }));
            membership = Some(m);
            peer_transport = Some(transport);
        }
        let server = Arc::new(server);
        let tls = Arc::new(
            pki.server_config(ClientAuth::None)
                .context("TLS configuration")?,
        );
        {
            let mut rx = rx.clone();
            let server = server.clone();
            tasks.push(tokio::spawn(async move {
                let stop = async move {
                    let _ = rx.wait_for(|s| *s).await;
                };
                if let Err(e) = crate::apiserver::serve(server, listener, Some(tls), stop).await {
                    tracing::error!(error = %e, "API server stopped");
                }
            }));
        }
        let socket = match bind_socket(&cfg.data_dir.join(SOCKET_FILE)) {
            Ok((path, listener)) => {
                let mut rx = rx.clone();
                tasks.push(tokio::spawn(async move {
                    let stop = async move {
                        let _ = rx.wait_for(|s| *s).await;
                    };
                    if let Err(e) = crate::apiserver::serve(server, listener, None, stop).await {
                        tracing::error!(error = %e, "API server (Unix socket) stopped");
                    }
                }));
                Some(path)
            }
            Err(e) => {
                tracing::warn!(error = %e, "no Unix socket for local clients; they use TCP");
                None
            }
        };
        if ha.is_some() {
            // There may be no leader yet: keep trying in the background.
            let api = api.clone();
            let mut rx = rx.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    match bootstrap(&api).await {
                        Ok(()) => return,
                        Err(e) => tracing::debug!(error = %e, "bootstrap objects: will retry"),
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(std::time::Duration::from_millis(500)) => {}
                        _ = rx.changed() => return,
                    }
                }
            }));
        } else {
            bootstrap(&api).await.context("bootstrap objects")?;
        }
        {
            let api = api.clone();
            let rx = rx.clone();
            tasks.push(tokio::spawn(crate::control::run_when_leader(
                api,
                cfg.control.clone(),
                rx,
            )));
        }
        let ca_pem = pki.ca_cert_pem().to_string();
        let kubeconfig = cfg.data_dir.join("kubeconfig");
        crate::client::write_admin_kubeconfig(&kubeconfig, &url, ca_pem.as_bytes(), &admin_token)
            .with_context(|| format!("cannot write {}", kubeconfig.display()))?;
        if let Some(extra) = &cfg.extra_kubeconfig
            && let Err(e) =
                crate::client::write_admin_kubeconfig(extra, &url, ca_pem.as_bytes(), &admin_token)
        {
            tracing::warn!(path = %extra.display(), error = %e, "could not write the kubeconfig");
        }
        Ok(Master {
            api,
            store,
            url,
            kubeconfig,
            admin_token,
            ca_pem,
            data_dir: cfg.data_dir,
            socket,
            membership,
            transport: peer_transport,
            shutdown,
            tasks,
        })
    }

    /// A receiver that turns true when the master shuts down.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Adds a task to be awaited on shutdown.
    pub fn track(&mut self, task: tokio::task::JoinHandle<()>) {
        self.tasks.push(task);
    }

    /// Stops serving, waits for every task, and stops the store.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        if let Some(t) = &self.transport {
            t.shutdown();
        }
        for t in self.tasks {
            let _ = t.await;
        }
        let store = self.store.clone();
        let _ = tokio::task::spawn_blocking(move || store.shutdown()).await;
        if let Some(path) = &self.socket {
            let _ = std::fs::remove_file(path);
        }
    }

    /// The URL of [`Master::socket`] (`unix:/…/api.sock`), for an
    /// [`crate::client::ApiClient`] on this machine.
    pub fn socket_url(&self) -> Option<String> {
        let path = self.socket.as_ref()?.to_str()?;
        Some(format!("{}{path}", crate::client::connector::UNIX_SCHEME))
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }
}

/// The API's Unix socket in the data directory.
pub const SOCKET_FILE: &str = "api.sock";

/// Binds the Unix socket at `path` (replacing a socket left by a master
/// that stopped without removing it), readable and writable by its owner
/// only.
fn bind_socket(path: &Path) -> Result<(PathBuf, tokio::net::UnixListener)> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            anyhow::bail!("{} exists and is not a socket", path.display());
        }
        std::fs::remove_file(path)
            .with_context(|| format!("cannot remove the stale socket {}", path.display()))?;
    }
    let listener = tokio::net::UnixListener::bind(path)
        .with_context(|| format!("cannot listen on {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot restrict {}", path.display()))?;
    Ok((path.to_path_buf(), listener))
}

/// Creates the system namespaces if they are missing.
async fn bootstrap(api: &Api) -> Result<()> {
    let ns = api
        .registry
        .resolve("namespaces")
        .context("namespaces are not registered")?;
    for name in SYSTEM_NAMESPACES {
        if api.get(ns.info(), "", name, Some("0")).await.is_ok() {
            continue;
        }
        let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
        match api.create(ns, "", obj, &WriteOptions::default()).await {
            Ok(_) => {}
            Err(e) if e.code == 409 => {}
            Err(e) => anyhow::bail!("cannot create namespace {name}: {}", e.message),
        }
    }
    Ok(())
}
