//! Pod start benchmark for `wasmk up` (issue 3): create -> Running latency
//! of single pods, a burst of pods created at once, and memory (PSS) per
//! idle `worker` pod, plus where the start time goes.
//!
//! `cargo run --profile bench-client -p wasmk-benchmarks --bin pod_bench -- [--wasmk target/release/wasmk]`
//!
//! Method: a fresh `wasmk up` (embedded agent) on a temp data dir, a free
//! loopback port and its own cgroup root; the `worker` sample module is
//! pushed and one pod is run first so the module is downloaded and compiled
//! (the steady state of a node). Then:
//! - singles: `--singles` pods, one at a time, each with `spec.nodeName`
//!   set; latency is measured at the client from just before the create
//!   request to the receipt of the watch event showing the pod Running
//!   (one watch on the namespace, opened before the first create);
//! - burst: the singles are deleted, then `--burst` pods are created by 32
//!   concurrent clients; the figure is the time from the first create to
//!   the watch event showing the last of them Running; beside it, the busy
//!   CPU time of the whole machine over that interval (from /proc/stat),
//!   which is steadier than the wall time when comparing changes;
//! - memory: with the burst's pods idle, the PSS (`/proc/PID/smaps_rollup`)
//!   of every sandbox process in the cluster's cgroups is summed, plus the
//!   growth of the `wasmk up` process's PSS since before the burst, and
//!   divided by the number of pods;
//! - where the time goes: the agent logs per-start timings at debug level
//!   (`wasmk::agent=debug`); medians are reported.
//!
//! The cluster and every sandbox are removed at the end.
//!
//! `--work-dir DIR` puts the data dir (the Raft log, the pods' log files)
//! on another file system than the temp dir's: `benchmarks/journaled-fs.sh`
//! makes a fresh journalled ext4 for it, since ext4 without a journal (as on
//! the build machines) makes each new file slower after recent deletions,
//! which otherwise dominates the run-to-run variation (docs/benchmarks.md).

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use futures::StreamExt;
use serde_json::{Value, json};
use wasmk::cgroup::{CgroupManager, CgroupPath};
use wasmk::client::{ApiClient, ListParams, WatchEventType};
use wasmk_benchmarks::percentile;

const NODE: &str = "bench-node";
/// Upper bound for any wait of the benchmark.
const WAIT: Duration = Duration::from_secs(300);

#[derive(Parser)]
struct Args {
    /// The wasmk binary to run.
    #[arg(long, default_value = "target/release/wasmk")]
    wasmk: PathBuf,
    /// Pods created one at a time.
    #[arg(long, default_value_t = 200)]
    singles: usize,
    /// Pods created at once.
    #[arg(long, default_value_t = 1000)]
    burst: usize,
    /// Also write the agent's debug lines to this file at the end.
    #[arg(long)]
    agent_log: Option<PathBuf>,
    /// Directory for the cluster's data dir (default: the temp dir).
    #[arg(long)]
    work_dir: Option<PathBuf>,
}

/// Busy CPU time of the whole machine so far, in seconds (all CPUs, from
/// the `cpu` line of /proc/stat: everything but idle and iowait).
fn busy_cpu_secs() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
        return 0.0;
    };
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return 0.0;
    };
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let total: u64 = ticks.iter().sum();
    let idle = ticks.get(3).copied().unwrap_or(0) + ticks.get(4).copied().unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    (total - idle) as f64 / hz
}

fn pss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    s.lines()
        .find(|l| l.starts_with("Pss:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

struct Cluster {
    child: Child,
    _dir: tempfile::TempDir,
    client: ApiClient,
    cgroup_root: String,
    /// Agent debug lines, collected from stderr.
    log: Arc<Mutex<Vec<String>>>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let (Ok(mgr), Ok(root)) = (CgroupManager::detect(), CgroupPath::new(&self.cgroup_root))
            && let Err(e) = mgr.remove(&root)
        {
            eprintln!("cannot remove cgroup {}: {e}", self.cgroup_root);
        }
    }
}

fn start(bin: &Path, work_dir: Option<&Path>) -> Result<Cluster> {
    let dir = match work_dir {
        Some(d) => tempfile::tempdir_in(d)
            .with_context(|| format!("cannot make a directory in {}", d.display()))?,
        None => tempfile::tempdir()?,
    };
    let data = dir.path().join("data");
    let root = format!("wasmk-bench-{}", std::process::id());
    let mut child = Command::new(bin)
        .args([
            "up",
            "--listen",
            "127.0.0.1:0",
            "--node-name",
            NODE,
            "--max-pods",
            "2000",
        ])
        .args(["--cgroup-root", &root, "--data-dir"])
        .arg(&data)
        .env("HOME", dir.path())
        .env("WASMK_LOG", "warn,wasmk::agent=debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("run {}", bin.display()))?;
    let log = Arc::new(Mutex::new(Vec::new()));
    let stderr = child.stderr.take().context("stderr")?;
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("container started")
                || line.contains("sandbox spawned")
                || line.contains("status write")
            {
                if let Ok(mut l) = sink.lock() {
                    l.push(line);
                }
            } else if line.contains("WARN") || line.contains("ERROR") || line.contains("panic") {
                eprintln!("{line}");
            }
        }
    });
    let url = wasmk_benchmarks::wait_for_line(
        &mut child,
        "wasmk is up: API at ",
        Duration::from_secs(60),
    )
    .context("wasmk up did not print its address")?;
    let kubeconfig = std::fs::read_to_string(data.join("kubeconfig"))?;
    let token = kubeconfig
        .lines()
        .find_map(|l| l.trim().strip_prefix("token: "))
        .context("token")?
        .trim_matches('"')
        .to_string();
    let ca = std::fs::read(data.join("pki/ca.crt")).context("ca")?;
    let client = ApiClient::new(vec![url], &ca, Some(token))?;
    Ok(Cluster {
        child,
        _dir: dir,
        client,
        cgroup_root: root,
        log,
    })
}

fn pod(name: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"bench": "pods"}},
        "spec": {
            "nodeName": NODE,
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "app", "image": "worker:v1",
                "resources": {"limits": {"memory": "32Mi", "cpu": "100m"}}}],
        },
    })
}

/// Running-phase watch events by pod name, with their arrival times.
struct Watcher {
    running: Arc<Mutex<HashMap<String, Instant>>>,
    notify: Arc<tokio::sync::Notify>,
}

impl Watcher {
    async fn open(client: &ApiClient) -> Result<Watcher> {
        let list = client
            .list("/api/v1/namespaces/default/pods", &ListParams::default())
            .await?;
        let rv = list
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_string);
        let params = ListParams {
            resource_version: rv,
            timeout_seconds: Some(3600),
            ..Default::default()
        };
        let mut stream = client
            .watch("/api/v1/namespaces/default/pods", &params)
            .await?;
        let running = Arc::new(Mutex::new(HashMap::new()));
        let notify = Arc::new(tokio::sync::Notify::new());
        let (r, n) = (running.clone(), notify.clone());
        tokio::spawn(async move {
            while let Some(Ok(ev)) = stream.next().await {
                let at = Instant::now();
                if ev.type_ == WatchEventType::Deleted {
                    continue;
                }
                let phase = ev.object.pointer("/status/phase").and_then(Value::as_str);
                let name = ev.object.pointer("/metadata/name").and_then(Value::as_str);
                if let (Some("Running"), Some(name)) = (phase, name)
                    && let Ok(mut m) = r.lock()
                {
                    m.entry(name.to_string()).or_insert(at);
                    n.notify_waiters();
                }
            }
        });
        Ok(Watcher { running, notify })
    }

    fn seen(&self, name: &str) -> Option<Instant> {
        self.running.lock().ok()?.get(name).copied()
    }

    async fn wait(&self, name: &str) -> Result<Instant> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let notified = self.notify.notified();
            if let Some(t) = self.seen(name) {
                return Ok(t);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                bail!("pod {name} not Running within {WAIT:?}");
            }
        }
    }
}

async fn delete_all(client: &ApiClient) -> Result<()> {
    client
        .delete(
            "/api/v1/namespaces/default/pods?labelSelector=bench%3Dpods",
            &Value::Null,
        )
        .await?;
    let deadline = Instant::now() + WAIT;
    loop {
        let list = client
            .list("/api/v1/namespaces/default/pods", &ListParams::default())
            .await?;
        let n = list
            .get("items")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        if n == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{n} pods still exist after deleting them");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn report(label: &str, mut v: Vec<f64>) {
    v.sort_by(|a, b| a.total_cmp(b));
    println!(
        "{label:<26} n={:<5} p50={:>8.2}  p90={:>8.2}  p99={:>8.2}  max={:>8.2}",
        v.len(),
        percentile(&v, 50.0).unwrap_or(f64::NAN),
        percentile(&v, 90.0).unwrap_or(f64::NAN),
        percentile(&v, 99.0).unwrap_or(f64::NAN),
        v.last().copied().unwrap_or(f64::NAN),
    );
}

/// Median of a `key=<microseconds>` field over the agent's debug lines.
fn field_us(lines: &[String], event: &str, key: &str) -> Vec<f64> {
    lines
        .iter()
        .filter(|l| l.contains(event))
        .filter_map(|l| {
            let plain: String = l
                .split('\u{1b}')
                .map(|p| p.find('m').map_or(p, |i| &p[i + 1..]))
                .collect();
            let rest = &plain[plain.find(&format!("{key}="))? + key.len() + 1..];
            let n: f64 = rest.split_whitespace().next()?.parse().ok()?;
            Some(n / 1000.0)
        })
        .collect()
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let cluster = start(&args.wasmk, args.work_dir.as_deref())?;
    let c = &cluster.client;
    let worker = wasmk::sandbox::testing::try_sample("worker", wasmk::sandbox::ModuleKind::Module)?;
    let bytes = std::fs::read(&worker)?;
    c.upload("/apis/wasmk.io/v1/modules/worker/push?tag=v1", bytes.into())
        .await
        .context("push worker")?;
    let watcher = Watcher::open(c).await?;
    // Warm-up: download and compile once, as on a node in use.
    c.create("/api/v1/namespaces/default/pods", &pod("warmup"))
        .await?;
    watcher.wait("warmup").await?;
    delete_all(c).await?;
    cluster.log.lock().map(|mut l| l.clear()).ok();

    println!(
        "pod create -> Running, {} single pods one at a time (ms):",
        args.singles
    );
    let mut singles = Vec::new();
    for i in 0..args.singles {
        let name = format!("single-{i}");
        let t0 = Instant::now();
        c.create("/api/v1/namespaces/default/pods", &pod(&name))
            .await?;
        let at = watcher.wait(&name).await?;
        singles.push(ms(at - t0));
    }
    report("create -> Running", singles);
    let lines = cluster.log.lock().map(|l| l.clone()).unwrap_or_default();
    println!("where the time goes (agent, per start, ms):");
    report(
        "  module ready",
        field_us(&lines, "container started", "module_us"),
    );
    report(
        "  env, volumes",
        field_us(&lines, "container started", "prepare_us"),
    );
    report(
        "  cgroup setup",
        field_us(&lines, "sandbox spawned", "cgroup_us"),
    );
    report("  spec", field_us(&lines, "sandbox spawned", "spec_us"));
    report(
        "  process spawn",
        field_us(&lines, "sandbox spawned", "spawn_us"),
    );
    report(
        "  module start",
        field_us(&lines, "container started", "start_us"),
    );
    report(
        "  status write",
        field_us(&lines, "status write", "elapsed_us"),
    );
    delete_all(c).await?;

    let agent_pid = cluster.child.id();
    let pss_before = pss_kib(agent_pid).unwrap_or(0);
    println!("burst of {} pods created at once:", args.burst);
    let names: Vec<String> = (0..args.burst).map(|i| format!("burst-{i}")).collect();
    let queue = Arc::new(Mutex::new(names.clone()));
    let cpu0 = busy_cpu_secs();
    let t0 = Instant::now();
    let mut creators = Vec::new();
    for _ in 0..32 {
        let (c, queue) = (c.clone(), queue.clone());
        creators.push(tokio::spawn(async move {
            loop {
                let next = queue.lock().ok().and_then(|mut q| q.pop());
                let Some(name) = next else {
                    return Ok::<_, anyhow::Error>(());
                };
                c.create("/api/v1/namespaces/default/pods", &pod(&name))
                    .await?;
            }
        }));
    }
    for t in creators {
        t.await??;
    }
    let created = t0.elapsed();
    let mut last = t0;
    for n in &names {
        last = last.max(watcher.wait(n).await?);
    }
    let cpu = busy_cpu_secs() - cpu0;
    println!("  all created after   {:>9.1} ms", ms(created));
    println!("  all Running after   {:>9.1} ms", ms(last - t0));
    println!("  machine CPU busy    {cpu:>9.2} s (all cores, until all Running)");

    // Let the pods settle into idling before measuring memory.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let mgr = CgroupManager::detect()?;
    let root = CgroupPath::new(&cluster.cgroup_root)?;
    let mut sandboxes = HashSet::new();
    for uid in mgr.list_pods(&root)? {
        if let Ok(p) = CgroupPath::new(&format!("{}/pod{uid}/app", cluster.cgroup_root)) {
            sandboxes.extend(mgr.pids(&p).unwrap_or_default());
        }
    }
    let sandbox_pss: u64 = sandboxes.iter().filter_map(|p| pss_kib(*p)).sum();
    let pss_after = pss_kib(agent_pid).unwrap_or(0);
    let growth = pss_after.saturating_sub(pss_before);
    let pods = args.burst.max(1) as f64;
    println!(
        "memory with {} idle worker pods ({} sandbox processes):",
        args.burst,
        sandboxes.len()
    );
    println!(
        "  sandbox PSS total   {:>9.1} MiB",
        sandbox_pss as f64 / 1024.0
    );
    println!(
        "  agent PSS growth    {:>9.1} MiB ({} -> {} KiB)",
        growth as f64 / 1024.0,
        pss_before,
        pss_after
    );
    println!(
        "  per pod             {:>9.2} MiB",
        (sandbox_pss + growth) as f64 / 1024.0 / pods
    );
    if let Some(path) = &args.agent_log {
        let lines = cluster.log.lock().map(|l| l.join("\n")).unwrap_or_default();
        std::fs::write(path, lines).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
