//! Running a master: the data directory, PKI and tokens, the replicated
//! store, the API server, bootstrap objects, and (on the leader) the
//! control loops. `wasmk up` runs one of these plus a node agent in one
//! process; `wasmk server` runs it alone.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use serde_json::json;
use tokio::sync::watch;

use crate::apiserver::rest::{SYSTEM_NAMESPACES, WriteOptions};
use crate::apiserver::{Api, ApiServer};
use crate::auth::{Authenticator, ClientAuth, Pki, ServingNames, TokenFile};
use crate::store::durable::DiskDurable;
use crate::store::{NoPeers, RaftOptions, Store, StoreOptions};

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
    /// Opens the data directory and starts serving. The listener is bound
    /// before returning, so `url` is usable at once (port 0 picks a free one).
    pub async fn start(cfg: MasterConfig) -> Result<Master> {
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
        let durable = DiskDurable::open(&raft_dir)
            .with_context(|| format!("cannot open the store in {}", raft_dir.display()))?;
        let store = Store::open(
            StoreOptions {
                raft: RaftOptions::default(),
                blob_dir: Some(cfg.data_dir.join("blobs")),
                ..Default::default()
            },
            Box::new(durable),
            Arc::new(NoPeers),
        )
        .context("cannot start the store")?;
        let api = Api::new(store.clone());
        let url = url_for(addr);
        let server_address = url.trim_start_matches("https://").to_string();
        let auth = Arc::new(Authenticator::new(&tokens));
        let mut server = ApiServer::new(api.clone(), Some(auth.clone()), server_address);
        server
            .extensions
            .push(Arc::new(crate::modules::ModuleRoutes { api: api.clone() }));
        // TokenReviews, pods/log and metrics.k8s.io, served with the agents.
        crate::agent::ext::register(&mut server, api.clone(), auth, apiserver_token);
        let server = Arc::new(server);
        let tls = Arc::new(
            pki.server_config(ClientAuth::None)
                .context("TLS configuration")?,
        );
        let (shutdown, rx) = watch::channel(false);
        let mut tasks = Vec::new();
        {
            let mut rx = rx.clone();
            tasks.push(tokio::spawn(async move {
                let stop = async move {
                    let _ = rx.wait_for(|s| *s).await;
                };
                if let Err(e) = crate::apiserver::serve(server, listener, Some(tls), stop).await {
                    tracing::error!(error = %e, "API server stopped");
                }
            }));
        }
        bootstrap(&api).await.context("bootstrap objects")?;
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
        for t in self.tasks {
            let _ = t.await;
        }
        let store = self.store.clone();
        let _ = tokio::task::spawn_blocking(move || store.shutdown()).await;
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }
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
