//! The `wasmk` command line. Each subcommand parses its arguments here and
//! calls into the library; output mimics kubectl where the command is the
//! same.

mod agent;
mod cluster;
mod logs;
mod print;
mod push;
mod resources;
mod server;
mod token;
mod up;
mod workloads;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// wasmk: run WebAssembly modules the way Kubernetes runs containers.
#[derive(Parser, Debug)]
#[command(name = "wasmk", version, about, propagate_version = true)]
pub struct Cli {
    /// Kubeconfig to use (default: $KUBECONFIG, then ~/.wasmk/kubeconfig).
    #[arg(long, global = true, env = "WASMK_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Log level filter (e.g. info, debug, wasmk=debug).
    #[arg(long, global = true, default_value = "info", env = "WASMK_LOG")]
    pub log: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Start an all-in-one cluster on this machine.
    Up(up::UpArgs),
    /// Run one master of a multi-master cluster.
    Server(server::ServerArgs),
    /// Inspect and change the masters of a cluster.
    #[command(subcommand)]
    Cluster(cluster::ClusterCmd),
    /// Save and restore snapshots of the cluster's state.
    #[command(subcommand)]
    Snapshot(cluster::SnapshotCmd),
    /// Print the client and server versions.
    Version,
    /// Display one or many resources.
    Get(resources::GetArgs),
    /// Create or update resources from files (multi-document YAML or JSON).
    Apply(resources::FileArgs),
    /// Create resources from files.
    Create(resources::FileArgs),
    /// Delete resources by name or from files.
    Delete(resources::DeleteArgs),
    /// Show details of a resource.
    Describe(resources::DescribeArgs),
    /// Upload a Wasm module or component to the module store.
    Push(push::PushArgs),
    /// Push a module and create or update its Deployment; wait for the rollout.
    Deploy(workloads::DeployArgs),
    /// Set the number of replicas of a Deployment, ReplicaSet or ReplicationController.
    Scale(workloads::ScaleArgs),
    /// Manage the rollout of a Deployment.
    #[command(subcommand)]
    Rollout(workloads::RolloutCmd),
    /// Mark a node unschedulable.
    Cordon(workloads::NodeArgs),
    /// Mark a node schedulable again.
    Uncordon(workloads::NodeArgs),
    /// Cordon a node and evict its pods.
    Drain(workloads::DrainArgs),
    /// Run a node agent that joins a cluster.
    Agent(agent::AgentArgs),
    /// Print the logs of a pod's container.
    Logs(logs::LogsArgs),
    /// Manage bootstrap tokens with which new nodes join.
    #[command(subcommand)]
    Token(token::TokenCmd),
}

/// Entry point called by `main.rs`.
pub fn run() -> Result<()> {
    let cli = Cli::parse();
    if !matches!(
        cli.command,
        Command::Up(_) | Command::Agent(_) | Command::Server(_)
    ) {
        // A client command piped into `head` ends quietly, as kubectl does;
        // daemons keep SIGPIPE ignored so a closed socket is just an error.
        // SAFETY: no other thread exists yet; SIG_DFL is a valid disposition.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    init_logging(&cli.log);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(dispatch(cli))
}

fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|e| {
        eprintln!("wasmk: invalid log filter {filter:?} ({e}); logging at info");
        tracing_subscriber::EnvFilter::new("info")
    });
    // Colours only on a terminal: logs sent to a file or a pipe stay plain.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .try_init();
}

async fn dispatch(cli: Cli) -> Result<()> {
    let kc = cli.kubeconfig.clone();
    match cli.command {
        Command::Up(a) => up::run(a).await,
        Command::Server(a) => server::run(a).await,
        Command::Cluster(c) => cluster::cluster(kc.as_deref(), c).await,
        Command::Snapshot(c) => cluster::snapshot(kc.as_deref(), c).await,
        Command::Version => resources::version(kc.as_deref()).await,
        Command::Get(a) => resources::get(kc.as_deref(), a).await,
        Command::Apply(a) => resources::apply(kc.as_deref(), a, true).await,
        Command::Create(a) => resources::apply(kc.as_deref(), a, false).await,
        Command::Delete(a) => resources::delete(kc.as_deref(), a).await,
        Command::Describe(a) => resources::describe(kc.as_deref(), a).await,
        Command::Push(a) => push::run(kc.as_deref(), a).await,
        Command::Deploy(a) => workloads::deploy(kc.as_deref(), a).await,
        Command::Scale(a) => workloads::scale(kc.as_deref(), a).await,
        Command::Rollout(c) => workloads::rollout(kc.as_deref(), c).await,
        Command::Cordon(a) => workloads::cordon(kc.as_deref(), a, true).await,
        Command::Uncordon(a) => workloads::cordon(kc.as_deref(), a, false).await,
        Command::Drain(a) => workloads::drain(kc.as_deref(), a).await,
        Command::Agent(a) => agent::run(kc.as_deref(), a).await,
        Command::Logs(a) => logs::run(kc.as_deref(), a).await,
        Command::Token(c) => token::run(kc.as_deref(), c).await,
    }
}

/// `~/.wasmk`.
pub fn wasmk_home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"))
        .join(".wasmk")
}
