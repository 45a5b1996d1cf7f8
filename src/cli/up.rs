//! `wasmk up`: the all-in-one cluster.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use crate::server::{Master, MasterConfig};

#[derive(Args, Debug)]
pub struct UpArgs {
    /// Where the cluster keeps its state (default ~/.wasmk/data).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Address the API listens on.
    #[arg(long, default_value = "127.0.0.1:6443")]
    pub listen: SocketAddr,
    /// Extra DNS names or IPs for the API's serving certificate.
    #[arg(long = "tls-san")]
    pub tls_san: Vec<String>,
    /// Name of the embedded node (default: the host name).
    #[arg(long)]
    pub node_name: Option<String>,
    #[command(flatten)]
    pub agent: EmbeddedAgentArgs,
}

/// Options of the node agent `wasmk up` embeds.
#[derive(Args, Debug)]
pub struct EmbeddedAgentArgs {
    /// Run the control plane only, without a node.
    #[arg(long)]
    pub no_agent: bool,
    /// Address of the agent's HTTPS endpoint (default: the API's address,
    /// any free port).
    #[arg(long)]
    pub agent_listen: Option<SocketAddr>,
    /// The node's address (default: the agent's listen address, or
    /// detected).
    #[arg(long)]
    pub node_ip: Option<String>,
    #[command(flatten)]
    pub node: super::agent::NodeOptions,
}

pub async fn run(args: UpArgs) -> Result<()> {
    let home = super::wasmk_home();
    let data_dir = args.data_dir.unwrap_or_else(|| home.join("data"));
    let node_name = args
        .node_name
        .clone()
        .unwrap_or_else(super::agent::default_node_name);
    // The embedded node's token must be in the file before the master
    // loads it.
    let node_token = if args.agent.no_agent {
        None
    } else {
        std::fs::create_dir_all(&data_dir)
            .with_context(|| format!("cannot create {}", data_dir.display()))?;
        let path = crate::auth::token::token_file_path(&data_dir);
        let mut tokens = crate::auth::TokenFile::load_or_create(&path).context("token file")?;
        Some(
            tokens
                .ensure_node_token(&path, &node_name)
                .context("token file")?,
        )
    };
    let master = Master::start(MasterConfig {
        data_dir: data_dir.clone(),
        listen: args.listen,
        extra_sans: args.tls_san,
        extra_kubeconfig: Some(home.join("kubeconfig")),
        control: Default::default(),
    })
    .await
    .context("wasmk up")?;
    let agent = match node_token {
        Some(token) => {
            let mut cfg = crate::agent::AgentConfig::new(&node_name, data_dir.join("agent"));
            cfg.listen = args
                .agent
                .agent_listen
                .unwrap_or_else(|| SocketAddr::new(args.listen.ip(), 0));
            cfg.node_ip = args.agent.node_ip.clone().unwrap_or_default();
            args.agent.node.apply(&mut cfg)?;
            // The master's socket first: no TLS or TCP for the agent's
            // requests and watches; TCP if the socket goes away.
            let servers = master
                .socket_url()
                .into_iter()
                .chain([master.url.clone()])
                .collect();
            let api = crate::client::ApiClientConfig::new(
                servers,
                master.ca_pem.clone().into_bytes(),
                Some(token),
            );
            match crate::agent::Agent::start(cfg, api).await {
                Ok(a) => Some(a),
                Err(e) => {
                    master.stop().await;
                    return Err(anyhow::Error::new(e).context("wasmk up: node agent"));
                }
            }
        }
        None => None,
    };
    println!("wasmk is up: API at {}", master.url);
    println!(
        "kubeconfig: {} (also ~/.wasmk/kubeconfig)",
        master.kubeconfig.display()
    );
    println!(
        "try: kubectl --kubeconfig {} get namespaces",
        master.kubeconfig.display()
    );
    if let Some(a) = &agent {
        println!(
            "node {} is up: agent at {}:{}",
            a.ctx.cfg.node_name, a.ctx.cfg.node_ip, a.port
        );
    }
    wait_for_signal().await?;
    tracing::info!("shutting down");
    // Pods keep running; the next `wasmk up` re-adopts them.
    if let Some(a) = agent {
        a.stop().await;
    }
    master.stop().await;
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn wait_for_signal() -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}
