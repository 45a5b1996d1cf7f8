//! `wasmk agent`: a node agent joining a cluster, and the agent options
//! `wasmk up` shares.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;

use crate::agent::{Agent, AgentConfig};
use crate::api::quantity::Quantity;
use crate::client::{ApiClientConfig, Kubeconfig};

/// Options of the node that `wasmk agent` and `wasmk up` share.
#[derive(Args, Debug, Clone)]
pub struct NodeOptions {
    /// The most pods this node runs (`allocatable.pods`).
    #[arg(long, default_value_t = 1100)]
    pub max_pods: u32,
    /// The cgroup all pods live under.
    #[arg(long, default_value = "wasmk")]
    pub cgroup_root: String,
    /// Memory kept back from pods (a quantity such as 100Mi).
    #[arg(long, default_value = "100Mi")]
    pub memory_reserve: String,
    /// How often the node's Lease is renewed (e.g. 2s, 500ms); keep it
    /// well under the control plane's node grace period (8s by default).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub lease_interval: Duration,
    /// How often pod and node usage is sampled for `kubectl top`.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub stats_interval: Duration,
    /// `pids.max` of every container.
    #[arg(long, default_value_t = 64)]
    pub pids_limit: u64,
    /// Extra labels for the Node (KEY=VALUE, repeatable).
    #[arg(long = "node-label")]
    pub node_labels: Vec<String>,
    /// A container log file is rotated before it grows past this.
    #[arg(long, default_value = "10Mi")]
    pub container_log_max_size: String,
    /// Log files kept per container, the current one included.
    #[arg(long, default_value_t = 5)]
    pub container_log_max_files: u32,
}

/// Parses `10s`, `500ms`, `2m`, `1h` or a number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?}: expected e.g. 10s, 500ms, 2m"))?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("invalid duration unit {unit:?} in {s:?}")),
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("invalid duration {s:?}"));
    }
    Ok(Duration::from_secs_f64(secs))
}

impl NodeOptions {
    /// Applies the options to an agent configuration.
    pub fn apply(&self, cfg: &mut AgentConfig) -> Result<()> {
        cfg.max_pods = self.max_pods;
        cfg.cgroup_root = self.cgroup_root.clone();
        let q = Quantity::parse(&self.memory_reserve)
            .map_err(|e| anyhow!("invalid --memory-reserve {:?}: {e}", self.memory_reserve))?;
        cfg.memory_reserve = u64::try_from(q.value()).unwrap_or(0);
        cfg.lease_interval = self.lease_interval;
        cfg.stats_interval = self.stats_interval;
        cfg.pids_limit = self.pids_limit;
        let size = Quantity::parse(&self.container_log_max_size).map_err(|e| {
            anyhow!(
                "invalid --container-log-max-size {:?}: {e}",
                self.container_log_max_size
            )
        })?;
        cfg.log_rotation = crate::sandbox::LogRotation {
            max_bytes: u64::try_from(size.value()).unwrap_or(0).max(1024),
            max_files: self.container_log_max_files.max(1),
        };
        let mut labels = BTreeMap::new();
        for l in &self.node_labels {
            let (k, v) = l
                .split_once('=')
                .ok_or_else(|| anyhow!("invalid --node-label {l:?}: expected KEY=VALUE"))?;
            labels.insert(k.to_string(), v.to_string());
        }
        cfg.labels = labels;
        Ok(())
    }
}

/// The default node name: this host's name, as a valid object name.
pub fn default_node_name() -> String {
    crate::auth::pki::host_name()
        .unwrap_or_else(|| "localhost".into())
        .to_lowercase()
}

#[derive(Args, Debug)]
pub struct AgentArgs {
    /// API server URLs (`https://HOST:PORT`, or `unix:/PATH/api.sock` for a master on this machine), comma separated (default: the kubeconfig's).
    #[arg(long, value_delimiter = ',')]
    pub server: Vec<String>,
    /// File holding the node's bearer token.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// The cluster CA certificate (PEM).
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    /// Node name (default: the host name).
    #[arg(long)]
    pub name: Option<String>,
    /// Where modules, pod state and logs live (default ~/.wasmk/agent).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Address of the agent's HTTPS endpoint (logs and usage).
    #[arg(long, default_value = "0.0.0.0:10250")]
    pub listen: SocketAddr,
    /// The node's address (default: detected).
    #[arg(long)]
    pub node_ip: Option<String>,
    #[command(flatten)]
    pub node: NodeOptions,
}

/// How to reach the API: explicit flags, else the kubeconfig.
fn api_config(args: &AgentArgs, kubeconfig: Option<&std::path::Path>) -> Result<ApiClientConfig> {
    if args.server.is_empty() {
        let path = crate::client::resolve(kubeconfig)?;
        let access = Kubeconfig::load(&path)?
            .current()
            .with_context(|| format!("kubeconfig {}", path.display()))?;
        return Ok(ApiClientConfig::from_access(&access));
    }
    let ca_file = args
        .ca_file
        .as_ref()
        .ok_or_else(|| anyhow!("--ca-file is required with --server"))?;
    let ca =
        std::fs::read(ca_file).with_context(|| format!("cannot read {}", ca_file.display()))?;
    let token_file = args
        .token_file
        .as_ref()
        .ok_or_else(|| anyhow!("--token-file is required with --server"))?;
    let token = std::fs::read_to_string(token_file)
        .with_context(|| format!("cannot read {}", token_file.display()))?
        .trim()
        .to_string();
    if token.is_empty() {
        bail!("{} is empty", token_file.display());
    }
    Ok(ApiClientConfig::new(args.server.clone(), ca, Some(token)))
}

pub async fn run(kubeconfig: Option<&std::path::Path>, args: AgentArgs) -> Result<()> {
    let api = api_config(&args, kubeconfig)?;
    let name = args.name.clone().unwrap_or_else(default_node_name);
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| super::wasmk_home().join("agent"));
    let mut cfg = AgentConfig::new(&name, data_dir);
    cfg.listen = args.listen;
    cfg.node_ip = args.node_ip.clone().unwrap_or_default();
    args.node.apply(&mut cfg)?;
    let agent = Agent::start(cfg, api).await.context("wasmk agent")?;
    println!(
        "wasmk agent is up: node {} at {}:{}",
        agent.ctx.cfg.node_name, agent.ctx.cfg.node_ip, agent.port
    );
    super::up::wait_for_signal().await?;
    eprintln!("shutting down (pods keep running)");
    agent.stop().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        for (s, want) in [
            ("10s", Some(10_000)),
            ("500ms", Some(500)),
            ("2m", Some(120_000)),
            ("1h", Some(3_600_000)),
            ("3", Some(3000)),
            ("1.5s", Some(1500)),
            ("10x", None),
            ("", None),
            ("-1s", None),
        ] {
            assert_eq!(
                parse_duration(s).ok().map(|d| d.as_millis() as u64),
                want,
                "{s}"
            );
        }
    }
}
