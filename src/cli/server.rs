//! `wasmk server`: one master of a multi-master cluster.
//!
//! - New cluster: every initial master runs `wasmk server --name NAME
//!   --initial-cluster NAME=https://PEER,... --pki-bundle DIR` (the bundle
//!   from `wasmk cluster init-pki`, copied to each machine).
//! - Existing cluster: `wasmk server --name NAME --join https://API
//!   --token-file tokens.csv` fetches the bundle and the member list, starts,
//!   and asks the cluster to add it (it joins as a learner and becomes a
//!   voter once it has caught up).
//! - Restart: the same command; a data directory that already holds Raft
//!   state is simply reopened (`--join` and `--pki-bundle` are then only
//!   checked, not acted on).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::cluster::bundle::{self, Bundle};
use crate::cluster::{Member, parse_initial_cluster, raft_dir_is_fresh, raft_id, validate_name};
use crate::server::{HaConfig, Master, MasterConfig};

#[derive(Args, Debug)]
pub struct ServerArgs {
    /// This master's name, a DNS label; its Raft id derives from it
    /// (default: the host name).
    #[arg(long)]
    pub name: Option<String>,
    /// Where this master keeps its state.
    #[arg(long, default_value = "/var/lib/wasmk")]
    pub data_dir: PathBuf,
    /// Address the API listens on.
    #[arg(long, default_value = "0.0.0.0:6443")]
    pub listen: SocketAddr,
    /// Address the peer port (Raft between masters) listens on.
    #[arg(long, default_value = "0.0.0.0:2380")]
    pub peer_listen: SocketAddr,
    /// URL clients and other masters reach this API at (default: from
    /// --listen, or the host name when it listens on all interfaces).
    #[arg(long)]
    pub advertise_client_url: Option<String>,
    /// URL other masters reach the peer port at (default: this master's
    /// --initial-cluster entry, else from --peer-listen).
    #[arg(long)]
    pub advertise_peer_url: Option<String>,
    /// The masters of a new cluster: NAME=https://HOST:PEERPORT,...
    #[arg(long, conflicts_with = "join")]
    pub initial_cluster: Option<String>,
    /// API URL of any master of a running cluster to join.
    #[arg(long, requires = "token_file")]
    pub join: Option<String>,
    /// The cluster's token file (for --join: its admin token authenticates
    /// the join).
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// The cluster CA certificate to verify --join against (default:
    /// ca.crt next to --token-file).
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    /// The cluster bundle directory (`wasmk cluster init-pki`), installed
    /// into the data directory on first start.
    #[arg(long)]
    pub pki_bundle: Option<PathBuf>,
    /// Extra DNS names or IPs for the API's serving certificate.
    #[arg(long = "tls-san")]
    pub tls_san: Vec<String>,
    /// Raft heartbeat interval in milliseconds.
    #[arg(long, default_value_t = 100)]
    pub heartbeat_interval: u64,
    /// Raft election timeout in milliseconds (randomized up to twice).
    #[arg(long, default_value_t = 1000)]
    pub election_timeout: u64,
    /// Applied entries between snapshots.
    #[arg(long, default_value_t = 10_000)]
    pub snapshot_count: u64,
}

/// `https://HOST:PORT` for an address; all-interfaces addresses use the
/// host name.
fn url_of(addr: SocketAddr) -> Result<String> {
    let host = match addr.ip() {
        ip if ip.is_unspecified() => crate::auth::pki::host_name().context(
            "cannot tell which address to advertise: this host has no name; pass --advertise-client-url / --advertise-peer-url",
        )?,
        IpAddr::V6(v6) => format!("[{v6}]"),
        IpAddr::V4(v4) => v4.to_string(),
    };
    Ok(format!("https://{host}:{}", addr.port()))
}

/// The host part of a URL (for the serving certificate's names).
fn url_host(url: &str) -> Option<String> {
    let authority = url.strip_prefix("https://")?.split('/').next()?;
    let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
    Some(
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
    )
}

pub async fn run(args: ServerArgs) -> Result<()> {
    let name = match &args.name {
        Some(n) => n.clone(),
        None => crate::auth::pki::host_name()
            .context("pass --name (this host has no name to default to)")?,
    };
    validate_name(&name)?;
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create {}", args.data_dir.display()))?;
    let fresh = raft_dir_is_fresh(&args.data_dir.join("raft"));
    let initial = match &args.initial_cluster {
        Some(text) => Some(parse_initial_cluster(text)?),
        None => None,
    };
    let client_url = match &args.advertise_client_url {
        Some(u) => u.clone(),
        None => url_of(args.listen)?,
    };
    let peer_url = match (&args.advertise_peer_url, &initial) {
        (Some(u), _) => u.clone(),
        (None, Some(list)) => match list.iter().find(|(n, _)| *n == name) {
            Some((_, u)) => u.clone(),
            None => bail!("--initial-cluster does not list this master ({name})"),
        },
        (None, None) => url_of(args.peer_listen)?,
    };
    crate::store::peer::dial_address(&peer_url)?;
    if let Some(dir) = &args.pki_bundle {
        Bundle::load_dir(dir)
            .with_context(|| format!("cannot read the cluster bundle in {}", dir.display()))?
            .install(&args.data_dir)?;
    }
    let (ca_path, _, _) = bundle::data_dir_paths(&args.data_dir);
    let mut seeds = initial.clone().unwrap_or_default();
    let mut join = None;
    if fresh {
        match (&initial, &args.join) {
            (Some(list), _) => {
                if list.len() > 1 && !ca_path.exists() {
                    bail!(
                        "the masters of one cluster must share a CA: create a bundle with `wasmk cluster init-pki DIR`, copy it to every master and pass --pki-bundle DIR"
                    );
                }
            }
            (None, Some(url)) => {
                let token_file = args
                    .token_file
                    .as_deref()
                    .context("--join needs --token-file")?;
                let (token, ca_pem) =
                    bundle::join_credentials(token_file, args.ca_file.as_deref())?;
                let client = crate::client::ApiClient::new(
                    vec![url.clone()],
                    ca_pem.as_bytes(),
                    Some(token.clone()),
                )?;
                let b = bundle::fetch(&client).await?;
                b.install(&args.data_dir)?;
                let members = bundle::members(&client).await?;
                if let Some(m) = members
                    .iter()
                    .find(|m| m.id == raft_id(&name) && m.name != name)
                {
                    bail!(
                        "{name} would share Raft id {} with member {}; choose another name",
                        m.id,
                        m.name
                    );
                }
                seeds = members
                    .iter()
                    .filter(|m| m.name != name && !m.peer_url.is_empty())
                    .map(|m| (m.name.clone(), m.peer_url.clone()))
                    .collect();
                let mut servers = vec![url.clone()];
                servers.extend(
                    members
                        .iter()
                        .filter(|m| !m.client_url.is_empty() && m.client_url != *url)
                        .map(|m| m.client_url.clone()),
                );
                join = Some((servers, ca_pem, token));
            }
            (None, None) => bail!(
                "{} holds no cluster yet: pass --initial-cluster to start a new cluster or --join to join a running one",
                args.data_dir.display()
            ),
        }
    }
    let mut sans = args.tls_san.clone();
    sans.extend(url_host(&client_url));
    let cfg = MasterConfig {
        data_dir: args.data_dir.clone(),
        listen: args.listen,
        extra_sans: sans,
        extra_kubeconfig: None,
        control: crate::control::ControlConfig {
            host: name.clone(),
            ..Default::default()
        },
    };
    let ha = HaConfig {
        name: name.clone(),
        peer_listen: args.peer_listen,
        advertise_peer_url: peer_url.clone(),
        advertise_client_url: client_url.clone(),
        seeds,
        initial: initial.is_some(),
        heartbeat: Duration::from_millis(args.heartbeat_interval.max(1)),
        election_timeout: Duration::from_millis(args.election_timeout.max(2)),
        snapshot_every: args.snapshot_count,
    };
    let mut master = Master::start_ha(cfg, ha).await.context("wasmk server")?;
    println!(
        "wasmk server {name}: API at {} (raft id {}, peers at {peer_url})",
        master.url,
        raft_id(&name)
    );
    println!("kubeconfig: {}", master.kubeconfig.display());
    if let Some((servers, ca_pem, token)) = join {
        let me = Member::new(&name, &peer_url, &client_url);
        let store = master.store.clone();
        let mut stop = master.shutdown_signal();
        master.track(tokio::spawn(async move {
            tokio::select! {
                r = join_cluster(servers, ca_pem, token, me, store) => {
                    if let Err(e) = r {
                        tracing::error!(error = %e, "joining the cluster failed");
                    }
                }
                _ = stop.changed() => {}
            }
        }));
    }
    super::up::wait_for_signal().await?;
    eprintln!("shutting down");
    master.stop().await;
    Ok(())
}

/// Asks the cluster to add this master (retrying while leadership settles),
/// then waits until it is a voter.
async fn join_cluster(
    servers: Vec<String>,
    ca_pem: String,
    token: String,
    me: Member,
    store: crate::store::Store,
) -> Result<()> {
    let client = crate::client::ApiClient::new(servers, ca_pem.as_bytes(), Some(token))?;
    let mut attempt = 0u32;
    loop {
        match bundle::add_member(&client, &me).await {
            Ok(s) => {
                tracing::info!(role = %s.role, "the cluster added this master");
                break;
            }
            Err(e) if attempt < 60 => {
                tracing::info!(error = %e, "join request failed; retrying");
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
    let mut roles = store.role_watch();
    loop {
        if store.raft_status().voters.contains(&me.id) {
            println!("{} joined the cluster as a voter", me.name);
            return Ok(());
        }
        tokio::select! {
            _ = roles.changed() => {}
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advertised_urls() {
        assert_eq!(
            url_of("10.0.0.1:6443".parse().unwrap()).unwrap(),
            "https://10.0.0.1:6443"
        );
        assert_eq!(
            url_of("[::1]:2380".parse().unwrap()).unwrap(),
            "https://[::1]:2380"
        );
        assert_eq!(url_host("https://[::1]:2380").as_deref(), Some("::1"));
        assert_eq!(
            url_host("https://m1.example.com:6443").as_deref(),
            Some("m1.example.com")
        );
        assert_eq!(url_host("http://x:1"), None);
    }
}
