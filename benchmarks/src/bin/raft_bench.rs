//! Replicated write throughput of three `wasmk server` masters against a
//! three-member etcd cluster, in the same run with the same load (issue 5),
//! and the failover time of both after `kill -9` of the leader.
//!
//! `benchmarks/raft_bench.sh` installs Debian's `etcd-server` if missing,
//! builds, and runs this; by hand:
//! `cargo run --profile bench-client -p wasmk-benchmarks --bin raft_bench -- --wasmk target/release/wasmk`
//!
//! Method:
//! - Both clusters run on loopback, with their data directories on the same
//!   file system (under `--dir`), fsync on (wasmk always syncs before it
//!   acknowledges; etcd 3.4 syncs by default), heartbeat 100 ms and
//!   election timeout 1 s in both. Only one cluster runs at a time.
//! - Each client is a task with its own HTTP client (its own connections),
//!   sending writes back to back for `--seconds`; client `i` talks to
//!   member `i mod 3` first, so followers forward writes in both systems.
//!   Latency is measured per request at the client.
//! - A wasmk write is `POST /api/v1/namespaces/default/configmaps` of a
//!   ConfigMap whose data is 256 bytes, over HTTPS with a bearer token; an
//!   etcd write is `POST /v3/kv/put` of a 256-byte value on its v3 JSON
//!   gateway, over plain HTTP (no TLS, no authentication: in etcd's
//!   favour). Both go through the same hyper-based client.
//! - Failover: a prober writes every 10 ms (each attempt bounded to 500 ms)
//!   through the surviving members; the time from the `kill -9` of the
//!   leader to the first acknowledged write is recorded; the killed member
//!   is restarted and catches up before the next round.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use bytes::Bytes;
use clap::Parser;
use http::Method;
use serde_json::{Value, json};
use wasmk::client::ApiClient;
use wasmk_benchmarks::percentile;

#[derive(Parser)]
struct Args {
    /// The wasmk binary to run.
    #[arg(long, default_value = "target/release/wasmk")]
    wasmk: PathBuf,
    /// The etcd binary to run.
    #[arg(long, default_value = "etcd")]
    etcd: PathBuf,
    /// Where the data directories go (a fresh directory is made inside);
    /// keep it on a real disk, not tmpfs, or fsync costs nothing.
    #[arg(long, default_value = "target")]
    dir: PathBuf,
    /// Seconds of load per concurrency level.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Concurrency levels.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    clients: Vec<usize>,
    /// Leader kills per system.
    #[arg(long, default_value_t = 5)]
    failovers: usize,
    /// Run wasmk only.
    #[arg(long)]
    skip_etcd: bool,
    /// Keep the data directories and logs (WASMK_LOG sets the masters' log
    /// level; warn by default).
    #[arg(long)]
    keep: bool,
}

const MEMBERS: usize = 3;
const VALUE_BYTES: usize = 256;
const CMS: &str = "/api/v1/namespaces/default/configmaps";
const STATUS: &str = "/apis/wasmk.io/v1/cluster/status";

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// One member process: how to start it again, and the running child.
struct Member {
    name: String,
    /// Client URL (`https://` for wasmk, `http://` for etcd).
    url: String,
    cmd: Vec<String>,
    log: PathBuf,
    /// Printed on stdout once the member serves (wasmk); `None`: poll.
    ready_line: Option<&'static str>,
    child: Option<Child>,
}

impl Member {
    fn start(&mut self) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("open {}", self.log.display()))?;
        let (program, args) = self.cmd.split_first().context("empty command")?;
        let mut child = Command::new(program)
            .args(args)
            .env(
                "WASMK_LOG",
                std::env::var("WASMK_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("run {program}"))?;
        let out = child.stdout.take().context("stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        let ready = self.ready_line;
        // Keep draining stdout so the member never writes into a closed pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if ready.is_some_and(|r| line.contains(r)) {
                    let _ = tx.send(());
                }
            }
        });
        if self.ready_line.is_some() && rx.recv_timeout(Duration::from_secs(60)).is_err() {
            let _ = child.kill();
            bail!("{} did not start (see {})", self.name, self.log.display());
        }
        self.child = Some(child);
        Ok(())
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// What differs between the two systems.
#[derive(Clone)]
enum System {
    Wasmk { ca: Vec<u8>, token: String },
    Etcd,
}

struct Cluster {
    system: System,
    members: Vec<Member>,
}

impl Cluster {
    fn label(&self) -> &'static str {
        match self.system {
            System::Wasmk { .. } => "wasmk",
            System::Etcd => "etcd",
        }
    }

    /// A client of the members in `order`.
    fn client(&self, order: &[usize]) -> Result<ApiClient> {
        let urls = order.iter().map(|i| self.members[*i].url.clone()).collect();
        Ok(match &self.system {
            System::Wasmk { ca, token } => ApiClient::new(urls, ca, Some(token.clone()))?,
            System::Etcd => ApiClient::new(urls, b"", None)?,
        })
    }

    /// A client that talks to member `first` first.
    fn client_from(&self, first: usize) -> Result<ApiClient> {
        let n = self.members.len();
        let order: Vec<usize> = (0..n).map(|k| (first + k) % n).collect();
        self.client(&order)
    }

    async fn write(&self, client: &ApiClient, key: &str, value: &str) -> Result<()> {
        write(&self.system, client, key, value).await
    }

    /// The member that leads, if one answers that it does.
    async fn leader(&self) -> Option<usize> {
        for (i, m) in self.members.iter().enumerate() {
            if m.child.is_none() {
                continue;
            }
            let Ok(c) = self.client(&[i]) else { continue };
            let answer = match &self.system {
                System::Wasmk { .. } => c.get(STATUS).await.ok(),
                System::Etcd => c
                    .raw(
                        Method::POST,
                        "/v3/maintenance/status",
                        Some(Bytes::from_static(b"{}")),
                        Some("application/json"),
                    )
                    .await
                    .ok()
                    .and_then(|(_, _, b)| serde_json::from_slice::<Value>(&b).ok()),
            };
            let leads = answer.is_some_and(|s| match &self.system {
                System::Wasmk { .. } => s["raft"]["role"] == "Leader",
                System::Etcd => !s["leader"].is_null() && s["leader"] == s["header"]["member_id"],
            });
            if leads {
                return Some(i);
            }
        }
        None
    }

    /// Waits until a write through every member succeeds.
    async fn ready(&self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        for i in 0..self.members.len() {
            let c = self.client(&[i])?;
            let mut n = 0;
            loop {
                n += 1;
                let attempt = tokio::time::timeout(
                    Duration::from_secs(2),
                    self.write(&c, &format!("ready-{i}-{n}"), "x"),
                )
                .await;
                if matches!(attempt, Ok(Ok(()))) {
                    break;
                }
                if Instant::now() > deadline {
                    bail!("{} member {i} does not take writes", self.label());
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }
}

/// One acknowledged write of a 256-byte value under `key`.
async fn write(system: &System, client: &ApiClient, key: &str, value: &str) -> Result<()> {
    match system {
        System::Wasmk { .. } => {
            let body = json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": key}, "data": {"v": value}});
            client.create(CMS, &body).await?;
        }
        System::Etcd => {
            let b64 = base64::engine::general_purpose::STANDARD;
            let body = json!({"key": b64.encode(key), "value": b64.encode(value)});
            let (status, _, resp) = client
                .raw(
                    Method::POST,
                    "/v3/kv/put",
                    Some(Bytes::from(body.to_string())),
                    Some("application/json"),
                )
                .await?;
            if !status.is_success() {
                bail!("etcd put: {status}: {}", String::from_utf8_lossy(&resp));
            }
        }
    }
    Ok(())
}

fn wasmk_cluster(bin: &Path, dir: &Path) -> Result<Cluster> {
    let bundle = dir.join("bundle");
    let out = Command::new(bin)
        .args(["cluster", "init-pki"])
        .arg(&bundle)
        .output()
        .with_context(|| format!("run {}", bin.display()))?;
    if !out.status.success() {
        bail!("init-pki: {}", String::from_utf8_lossy(&out.stderr));
    }
    let ca = std::fs::read(bundle.join("ca.crt")).context("ca.crt")?;
    let tokens = wasmk::auth::TokenFile::load(&bundle.join("tokens.csv"))?;
    let token = tokens.admin_token().context("admin token")?.to_string();
    let ports: Vec<(u16, u16)> = (0..MEMBERS)
        .map(|_| Ok((free_port()?, free_port()?)))
        .collect::<Result<_>>()?;
    let initial: Vec<String> = (0..MEMBERS)
        .map(|i| format!("m{i}=https://127.0.0.1:{}", ports[i].1))
        .collect();
    let mut members = Vec::new();
    for (i, (api, peer)) in ports.iter().enumerate() {
        let url = format!("https://127.0.0.1:{api}");
        let cmd = vec![
            bin.display().to_string(),
            "server".into(),
            "--name".into(),
            format!("m{i}"),
            "--data-dir".into(),
            dir.join(format!("m{i}")).display().to_string(),
            "--listen".into(),
            format!("127.0.0.1:{api}"),
            "--peer-listen".into(),
            format!("127.0.0.1:{peer}"),
            "--advertise-client-url".into(),
            url.clone(),
            "--initial-cluster".into(),
            initial.join(","),
            "--pki-bundle".into(),
            bundle.display().to_string(),
        ];
        members.push(Member {
            name: format!("wasmk m{i}"),
            url,
            cmd,
            log: dir.join(format!("m{i}.log")),
            ready_line: Some(": API at "),
            child: None,
        });
    }
    for m in &mut members {
        m.start()?;
    }
    Ok(Cluster {
        system: System::Wasmk { ca, token },
        members,
    })
}

fn etcd_cluster(bin: &Path, dir: &Path) -> Result<Cluster> {
    let ports: Vec<(u16, u16)> = (0..MEMBERS)
        .map(|_| Ok((free_port()?, free_port()?)))
        .collect::<Result<_>>()?;
    let initial: Vec<String> = (0..MEMBERS)
        .map(|i| format!("e{i}=http://127.0.0.1:{}", ports[i].1))
        .collect();
    let mut members = Vec::new();
    for (i, (client, peer)) in ports.iter().enumerate() {
        let url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let cmd = vec![
            bin.display().to_string(),
            "--name".into(),
            format!("e{i}"),
            "--data-dir".into(),
            dir.join(format!("e{i}")).display().to_string(),
            "--listen-client-urls".into(),
            url.clone(),
            "--advertise-client-urls".into(),
            url.clone(),
            "--listen-peer-urls".into(),
            peer_url.clone(),
            "--initial-advertise-peer-urls".into(),
            peer_url,
            "--initial-cluster".into(),
            initial.join(","),
            "--initial-cluster-state".into(),
            "new".into(),
            "--initial-cluster-token".into(),
            "raft-bench".into(),
            "--heartbeat-interval".into(),
            "100".into(),
            "--election-timeout".into(),
            "1000".into(),
            "--log-level".into(),
            "warn".into(),
        ];
        members.push(Member {
            name: format!("etcd e{i}"),
            url,
            cmd,
            log: dir.join(format!("e{i}.log")),
            ready_line: None,
            child: None,
        });
    }
    for m in &mut members {
        m.start()?;
    }
    Ok(Cluster {
        system: System::Etcd,
        members,
    })
}

/// Throughput (writes/s), p50 and p99 latency (ms), and failed requests.
struct Figures {
    rate: f64,
    p50: f64,
    p99: f64,
    errors: usize,
}

async fn load(cluster: &Cluster, clients: usize, seconds: u64, round: usize) -> Result<Figures> {
    let value = "x".repeat(VALUE_BYTES);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for c in 0..clients {
        // One client (its own connections) per task, as separate
        // processes would have.
        let client = cluster.client_from(c % MEMBERS)?;
        let system = cluster.system.clone();
        let value = value.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0;
            let mut i = 0u64;
            while Instant::now() < deadline {
                let t = Instant::now();
                match write(&system, &client, &format!("b{round}-{c}-{i}"), &value).await {
                    Ok(()) => lat.push(t.elapsed().as_secs_f64() * 1000.0),
                    Err(_) => errors += 1,
                }
                i += 1;
            }
            (lat, errors)
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await?);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let mut all = Vec::new();
    let mut errors = 0;
    for (lat, e) in results {
        all.extend(lat);
        errors += e;
    }
    all.sort_by(|a, b| a.total_cmp(b));
    Ok(Figures {
        rate: all.len() as f64 / elapsed,
        p50: percentile(&all, 50.0).unwrap_or(0.0),
        p99: percentile(&all, 99.0).unwrap_or(0.0),
        errors,
    })
}

/// Kills the leader `rounds` times; returns kill -> first acknowledged
/// write, in ms, per round.
async fn failovers(cluster: &mut Cluster, rounds: usize, verbose: bool) -> Result<Vec<f64>> {
    let mut times = Vec::new();
    for round in 0..rounds {
        let deadline = Instant::now() + Duration::from_secs(30);
        let leader = loop {
            if let Some(l) = cluster.leader().await {
                break l;
            }
            if Instant::now() > deadline {
                bail!("{}: no leader within 30 s", cluster.label());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let survivors: Vec<usize> = (0..MEMBERS).filter(|i| *i != leader).collect();
        let probe = cluster.client(&survivors)?;
        // Connections to the survivors are open before the kill.
        cluster
            .write(&probe, &format!("f{round}-warm"), "x")
            .await?;
        let killed = Instant::now();
        cluster.members[leader].kill9();
        let mut n = 0;
        let took = loop {
            n += 1;
            let attempt = tokio::time::timeout(
                Duration::from_millis(500),
                cluster.write(&probe, &format!("f{round}-{n}"), "x"),
            )
            .await;
            if matches!(attempt, Ok(Ok(()))) {
                break killed.elapsed();
            }
            if killed.elapsed() > Duration::from_secs(60) {
                bail!(
                    "{}: no write accepted within 60 s of the kill",
                    cluster.label()
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        times.push(took.as_secs_f64() * 1000.0);
        if verbose {
            println!(
                "  round {round}: killed {} at {:?}; a write was accepted {} ms later",
                cluster.members[leader].name,
                std::time::SystemTime::now() - took,
                took.as_millis()
            );
        }
        cluster.members[leader].start()?;
        cluster.ready().await?;
        // Let the restarted member settle before the next kill.
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    Ok(times)
}

fn summary(times: &[f64]) -> String {
    let mut sorted = times.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    format!(
        "median {:.0} ms, max {:.0} ms (each: {})",
        percentile(&sorted, 50.0).unwrap_or(0.0),
        sorted.last().copied().unwrap_or(0.0),
        times
            .iter()
            .map(|t| format!("{t:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

struct Report {
    writes: Vec<(usize, Figures)>,
    failover: Vec<f64>,
}

async fn run(mut cluster: Cluster, args: &Args) -> Result<Report> {
    cluster.ready().await?;
    println!(
        "\n{} (3 members): writes of 256 B, fsync on, {} s per level",
        cluster.label(),
        args.seconds
    );
    println!(
        "{:>8} {:>12} {:>10} {:>10} {:>8}",
        "clients", "writes/s", "p50 ms", "p99 ms", "errors"
    );
    let mut writes = Vec::new();
    for (round, &c) in args.clients.iter().enumerate() {
        let f = load(&cluster, c, args.seconds, round).await?;
        println!(
            "{c:>8} {:>12.0} {:>10.2} {:>10.2} {:>8}",
            f.rate, f.p50, f.p99, f.errors
        );
        writes.push((c, f));
    }
    let failover = failovers(&mut cluster, args.failovers, args.keep).await?;
    println!(
        "failover (kill -9 of the leader -> first acknowledged write): {}",
        summary(&failover)
    );
    Ok(Report { writes, failover })
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    if !args.wasmk.exists() {
        bail!(
            "{} is missing: build it with cargo build --release",
            args.wasmk.display()
        );
    }
    std::fs::create_dir_all(&args.dir)?;
    let mut root = tempfile::Builder::new()
        .prefix("raft-bench-")
        .tempdir_in(&args.dir)
        .with_context(|| format!("a directory in {}", args.dir.display()))?;
    root.disable_cleanup(args.keep);
    println!(
        "data directories under {} (logs there too; {})",
        root.path().display(),
        if args.keep {
            "kept"
        } else {
            "removed at the end"
        }
    );
    let wasmk_dir = root.path().join("wasmk");
    std::fs::create_dir_all(&wasmk_dir)?;
    let wasmk = run(wasmk_cluster(&args.wasmk, &wasmk_dir)?, &args).await?;
    if args.skip_etcd {
        return Ok(());
    }
    let version = Command::new(&args.etcd)
        .arg("--version")
        .output()
        .with_context(|| format!("run {} (install etcd-server)", args.etcd.display()))?;
    println!(
        "\n{}",
        String::from_utf8_lossy(&version.stdout)
            .lines()
            .next()
            .unwrap_or("etcd")
    );
    let etcd_dir = root.path().join("etcd");
    std::fs::create_dir_all(&etcd_dir)?;
    let etcd = run(etcd_cluster(&args.etcd, &etcd_dir)?, &args).await?;
    println!("\nwasmk / etcd, same run, same load:");
    println!(
        "{:>8} {:>14} {:>12} {:>12}",
        "clients", "throughput", "p50", "p99"
    );
    for ((c, w), (_, e)) in wasmk.writes.iter().zip(&etcd.writes) {
        println!(
            "{c:>8} {:>13.2}x {:>11.2}x {:>11.2}x",
            w.rate / e.rate.max(f64::MIN_POSITIVE),
            w.p50 / e.p50.max(f64::MIN_POSITIVE),
            w.p99 / e.p99.max(f64::MIN_POSITIVE)
        );
    }
    println!(
        "failover: wasmk {}; etcd {}",
        summary(&wasmk.failover),
        summary(&etcd.failover)
    );
    Ok(())
}
