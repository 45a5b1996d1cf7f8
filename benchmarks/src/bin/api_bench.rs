//! Control-plane benchmark for `wasmk up` (issue 2): object writes through
//! the HTTPS API with fsync on, at several client concurrencies; LIST of
//! 10,000 pods; idle RSS; binary size.
//!
//! `cargo run --release -p wasmk-benchmarks --bin api_bench -- [--wasmk target/release/wasmk]`
//!
//! Method: a fresh `wasmk up` on a temp data dir and a free loopback port;
//! each client is a task with its own connection pool sending `POST
//! configmaps` (a ConfigMap with 256 bytes of data) back to back for
//! `--seconds`; latency is measured per request at the client. LIST latency
//! is the full JSON list of 10,000 pods in one namespace (no paging), and the
//! Table form kubectl asks for with `--chunk-size=500` (first page).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use serde_json::json;
use wasmk::client::ApiClient;
use wasmk_benchmarks::{percentile, wait_for_line};

#[derive(Parser)]
struct Args {
    /// The wasmk binary to run.
    #[arg(long, default_value = "target/release/wasmk")]
    wasmk: PathBuf,
    /// Seconds of load per concurrency level.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Concurrency levels.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    clients: Vec<usize>,
    /// Skip the write-throughput levels.
    #[arg(long)]
    skip_writes: bool,
    /// Pods to create for the LIST measurement.
    #[arg(long, default_value_t = 10_000)]
    pods: usize,
}

fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

struct Server {
    child: std::process::Child,
    _dir: tempfile::TempDir,
    client: ApiClient,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(bin: &PathBuf) -> Result<Server> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let mut child = Command::new(bin)
        .args(["up", "--no-agent", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .env("HOME", dir.path())
        .env("WASMK_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("run {}", bin.display()))?;
    wait_for_line(&mut child, "wasmk is up: API at ", Duration::from_secs(60))
        .context("wasmk up did not start")?;
    let (client, _) = ApiClient::from_kubeconfig(Some(&data.join("kubeconfig")))?;
    Ok(Server {
        child,
        _dir: dir,
        client,
    })
}

async fn writes(
    server: &Server,
    clients: usize,
    seconds: u64,
    round: usize,
) -> Result<(f64, f64, f64)> {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let payload = "x".repeat(256);
    let mut tasks = Vec::new();
    for c in 0..clients {
        // One client (connection pool) per task, as separate processes would.
        let kc = server.client.clone();
        let payload = payload.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut i = 0u64;
            while Instant::now() < deadline {
                let body = json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": format!("b{round}-{c}-{i}")}, "data": {"v": payload}});
                let t = Instant::now();
                kc.create("/api/v1/namespaces/default/configmaps", &body)
                    .await?;
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
                i += 1;
            }
            anyhow::Ok(lat)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    all.sort_by(|a, b| a.total_cmp(b));
    let rate = all.len() as f64 / seconds as f64;
    Ok((
        rate,
        percentile(&all, 50.0).unwrap_or(0.0),
        percentile(&all, 99.0).unwrap_or(0.0),
    ))
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let size = std::fs::metadata(&args.wasmk)
        .with_context(|| {
            format!(
                "{} (build it with cargo build --release)",
                args.wasmk.display()
            )
        })?
        .len();
    println!(
        "binary size: {:.1} MiB ({})",
        size as f64 / 1048576.0,
        args.wasmk.display()
    );

    let server = start(&args.wasmk)?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let pid = server.child.id();
    println!(
        "idle RSS of wasmk up after 5 s: {:.1} MiB",
        rss_kib(pid).unwrap_or(0) as f64 / 1024.0
    );

    println!(
        "\nwrites (POST ConfigMap, 256 B of data, fsync on), {} s per level:",
        args.seconds
    );
    println!(
        "{:>8} {:>12} {:>10} {:>10}",
        "clients", "writes/s", "p50 ms", "p99 ms"
    );
    for (round, &c) in args
        .clients
        .iter()
        .enumerate()
        .filter(|_| !args.skip_writes)
    {
        let (rate, p50, p99) = writes(&server, c, args.seconds, round).await?;
        println!("{c:>8} {rate:>12.0} {p50:>10.2} {p99:>10.2}");
    }

    // LIST of N pods.
    let client = Arc::new(server.client.clone());
    let ns_body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bench"}});
    client.create("/api/v1/namespaces", &ns_body).await?;
    let t = Instant::now();
    let per = args.pods.div_ceil(32);
    let mut tasks = Vec::new();
    for w in 0..32 {
        let client = client.clone();
        let n = args.pods;
        tasks.push(tokio::spawn(async move {
            for i in (w * per)..((w + 1) * per).min(n) {
                let pod = json!({"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": format!("p-{i}"), "labels": {"app": "bench", "shard": (i % 10).to_string()}},
                    "spec": {"containers": [{"name": "c", "image": "hello:v1",
                        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}});
                client.create("/api/v1/namespaces/bench/pods", &pod).await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    println!(
        "\ncreated {} pods in {:.1} s",
        args.pods,
        t.elapsed().as_secs_f64()
    );
    let mut full = Vec::new();
    let mut bytes = 0;
    for _ in 0..10 {
        let t = Instant::now();
        let (code, _, body) = client
            .raw(
                http::Method::GET,
                "/api/v1/namespaces/bench/pods",
                None,
                None,
            )
            .await?;
        full.push(t.elapsed().as_secs_f64() * 1000.0);
        bytes = body.len();
        if !code.is_success() {
            bail!("list failed: {code}");
        }
    }
    full.sort_by(|a, b| a.total_cmp(b));
    println!(
        "LIST {} pods (JSON, {:.1} MiB): p50 {:.1} ms, p99 {:.1} ms",
        args.pods,
        bytes as f64 / 1048576.0,
        percentile(&full, 50.0).unwrap_or(0.0),
        percentile(&full, 99.0).unwrap_or(0.0)
    );
    let mut table = Vec::new();
    for _ in 0..10 {
        let t = Instant::now();
        client
            .get_table("/api/v1/namespaces/bench/pods?limit=500")
            .await?;
        table.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    table.sort_by(|a, b| a.total_cmp(b));
    println!(
        "kubectl-style Table page of 500: p50 {:.1} ms, p99 {:.1} ms",
        percentile(&table, 50.0).unwrap_or(0.0),
        percentile(&table, 99.0).unwrap_or(0.0)
    );
    println!(
        "RSS with {} pods stored: {:.1} MiB",
        args.pods,
        rss_kib(pid).unwrap_or(0) as f64 / 1024.0
    );
    Ok(())
}
