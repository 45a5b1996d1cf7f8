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
}

pub async fn run(args: UpArgs) -> Result<()> {
    let home = super::wasmk_home();
    let data_dir = args.data_dir.unwrap_or_else(|| home.join("data"));
    let master = Master::start(MasterConfig {
        data_dir: data_dir.clone(),
        listen: args.listen,
        extra_sans: args.tls_san,
        extra_kubeconfig: Some(home.join("kubeconfig")),
        control: Default::default(),
    })
    .await
    .context("wasmk up")?;
    println!("wasmk is up: API at {}", master.url);
    println!(
        "kubeconfig: {} (also ~/.wasmk/kubeconfig)",
        master.kubeconfig.display()
    );
    println!(
        "try: kubectl --kubeconfig {} get namespaces",
        master.kubeconfig.display()
    );
    wait_for_signal().await?;
    tracing::info!("shutting down");
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
