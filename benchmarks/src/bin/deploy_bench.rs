//! Workload benchmark for `wasmk up` (issue 4): a Deployment of the `worker`
//! module from create to all replicas Running, for 1, 100 and 1,000
//! replicas on the all-in-one node; and node-loss recovery: a second agent
//! is killed with -9 and the time until all of its pods run on the other
//! node is measured.
//!
//! `cargo run --profile bench-client -p wasmk-benchmarks --bin deploy_bench -- [--wasmk target/release/wasmk]`
//!
//! Method: a fresh `wasmk up` (release build) on a temp data dir with its
//! own cgroup root; `worker` pushed once. Each round creates a Deployment
//! through the API and watches its pods (one watch, label selector); the
//! time runs from the create request to the event that makes the last
//! replica `Running`. The Deployment is then deleted and its pods are
//! awaited gone before the next round. For node loss, a second `wasmk
//! agent` joins, a Deployment of `--loss-replicas` spreads over both nodes,
//! the second agent is killed with SIGKILL, and the time runs until every
//! replica not being deleted is Running on the surviving node.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use futures::StreamExt;
use serde_json::{Value, json};
use wasmk::client::{ApiClient, ListParams};
use wasmk_benchmarks::wait_for_line;

#[derive(Parser)]
struct Args {
    /// The wasmk binary to run.
    #[arg(long, default_value = "target/release/wasmk")]
    wasmk: PathBuf,
    /// Replica counts, one round each.
    #[arg(long, value_delimiter = ',', default_value = "1,100,1000")]
    replicas: Vec<usize>,
    /// Replicas of the node-loss round (0 skips it).
    #[arg(long, default_value_t = 20)]
    loss_replicas: usize,
    /// The module to deploy (default: the `worker` sample, built if needed).
    #[arg(long)]
    module: Option<PathBuf>,
}

struct Cleanup {
    children: Vec<Child>,
    roots: Vec<String>,
    _dir: tempfile::TempDir,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Ok(mgr) = wasmk::cgroup::CgroupManager::detect() {
            for r in &self.roots {
                if let Ok(p) = wasmk::cgroup::CgroupPath::new(r) {
                    let _ = mgr.remove(&p);
                }
            }
        }
    }
}

async fn wait_node_ready(client: &ApiClient, node: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(n) = client.get(&format!("/api/v1/nodes/{node}")).await {
            let ready = n["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            let tainted = n["spec"]["taints"]
                .as_array()
                .is_some_and(|t| !t.is_empty());
            if ready && !tainted {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!("node {node} not Ready within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn deployment(name: &str, replicas: usize) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "containers": [{"name": "w", "image": "worker:v1",
                    "resources": {"requests": {"cpu": "1m", "memory": "4Mi"},
                                  "limits": {"memory": "32Mi"}}}]
                },
            },
        },
    })
}

/// Pods of `app=name` by pod name: (phase, node, being deleted).
type PodView = HashMap<String, (String, String, bool)>;

fn apply_event(view: &mut PodView, ev: &wasmk::client::WatchEvent) {
    if !matches!(
        ev.type_,
        wasmk::client::WatchEventType::Added
            | wasmk::client::WatchEventType::Modified
            | wasmk::client::WatchEventType::Deleted
    ) {
        return;
    }
    let o = &ev.object;
    let name = o["metadata"]["name"].as_str().unwrap_or("").to_string();
    if ev.type_ == wasmk::client::WatchEventType::Deleted {
        view.remove(&name);
        return;
    }
    view.insert(
        name,
        (
            o["status"]["phase"].as_str().unwrap_or("").to_string(),
            o["spec"]["nodeName"].as_str().unwrap_or("").to_string(),
            !o["metadata"]["deletionTimestamp"].is_null(),
        ),
    );
}

/// Watches `app=name` pods until `done(view)`; returns when it held.
async fn watch_until(
    client: &ApiClient,
    name: &str,
    timeout: Duration,
    done: impl Fn(&PodView) -> bool,
) -> Result<Instant> {
    let params = ListParams {
        label_selector: Some(format!("app={name}")),
        timeout_seconds: Some(600),
        ..Default::default()
    };
    let mut stream = client
        .watch("/api/v1/namespaces/default/pods", &params)
        .await?;
    let mut view = PodView::new();
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let ev = tokio::time::timeout_at(deadline, stream.next())
            .await
            .with_context(|| format!("pods of {name} did not settle within {timeout:?}"))?;
        let Some(ev) = ev else {
            bail!("watch of {name} ended")
        };
        apply_event(&mut view, &ev?);
        if done(&view) {
            return Ok(Instant::now());
        }
    }
}

async fn delete_and_wait(client: &ApiClient, name: &str) -> Result<()> {
    client
        .delete(
            &format!("/apis/apps/v1/namespaces/default/deployments/{name}"),
            &json!({"propagationPolicy": "Background"}),
        )
        .await?;
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let l = client
            .list(
                "/api/v1/namespaces/default/pods",
                &ListParams {
                    label_selector: Some(format!("app={name}")),
                    ..Default::default()
                },
            )
            .await?;
        if l["items"].as_array().is_none_or(Vec::is_empty) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("pods of {name} not gone within 300 s");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn push(bin: &Path, home: &Path, kubeconfig: &Path, module: &Path) -> Result<()> {
    let out = Command::new(bin)
        .arg("push")
        .arg(module)
        .args(["--name", "worker:v1"])
        .env("HOME", home)
        .env("KUBECONFIG", kubeconfig)
        .output()?;
    if !out.status.success() {
        bail!("push failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let module = match &args.module {
        Some(m) => m.clone(),
        None => wasmk::sandbox::testing::sample("worker", wasmk::sandbox::ModuleKind::Module),
    };
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let tag = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let root = format!("wasmk-bench-{tag}");
    let mut up = Command::new(&args.wasmk)
        .args([
            "up",
            "--listen",
            "127.0.0.1:0",
            "--node-name",
            "bench-a",
            "--cgroup-root",
            &root,
        ])
        .arg("--data-dir")
        .arg(&data)
        .env("HOME", dir.path())
        .env("WASMK_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("run {}", args.wasmk.display()))?;
    let url = wait_for_line(&mut up, "wasmk is up: API at ", Duration::from_secs(60))?;
    let home = dir.path().to_path_buf();
    let mut cleanup = Cleanup {
        children: vec![up],
        roots: vec![root.clone()],
        _dir: dir,
    };
    let kubeconfig = data.join("kubeconfig");
    let (client, _) = ApiClient::from_kubeconfig(Some(&kubeconfig))?;
    wait_node_ready(&client, "bench-a").await?;
    push(&args.wasmk, &home, &kubeconfig, &module)?;

    println!("Deployment of `worker`, create -> all replicas Running (all-in-one node):");
    println!("{:>9} {:>12}", "replicas", "seconds");
    for (i, &n) in args.replicas.iter().enumerate() {
        let name = format!("d{i}");
        let t0 = Instant::now();
        let watch = watch_until(&client, &name, Duration::from_secs(600), move |v| {
            v.values().filter(|p| p.0 == "Running" && !p.2).count() >= n
        });
        let create = async {
            client
                .create(
                    "/apis/apps/v1/namespaces/default/deployments",
                    &deployment(&name, n),
                )
                .await
                .map_err(anyhow::Error::from)
        };
        let (done, created) = tokio::join!(watch, create);
        created?;
        let done = done?;
        println!("{n:>9} {:>12.2}", (done - t0).as_secs_f64());
        delete_and_wait(&client, &name).await?;
    }

    if args.loss_replicas > 0 {
        let b_root = format!("{root}-b");
        cleanup.roots.push(b_root.clone());
        let token = home.join("token");
        let kc = std::fs::read_to_string(&kubeconfig)?;
        let tok = kc
            .lines()
            .find_map(|l| l.trim().strip_prefix("token: "))
            .map(|t| t.trim_matches('"').to_string())
            .context("token in kubeconfig")?;
        std::fs::write(&token, tok)?;
        let agent = Command::new(&args.wasmk)
            .args([
                "agent",
                "--server",
                &url,
                "--name",
                "bench-b",
                "--listen",
                "127.0.0.1:0",
            ])
            .args(["--cgroup-root", &b_root])
            .arg("--token-file")
            .arg(&token)
            .arg("--ca-file")
            .arg(data.join("pki").join("ca.crt"))
            .arg("--data-dir")
            .arg(home.join("agent-b"))
            .env("HOME", &home)
            .env("WASMK_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()?;
        let pid = agent.id();
        cleanup.children.push(agent);
        wait_node_ready(&client, "bench-b").await?;
        let n = args.loss_replicas;
        let watch = watch_until(&client, "moving", Duration::from_secs(120), move |v| {
            v.values().filter(|p| p.0 == "Running").count() >= n
        });
        let body = deployment("moving", n);
        let create = client.create("/apis/apps/v1/namespaces/default/deployments", &body);
        let (done, created) = tokio::join!(watch, create);
        created?;
        done?;
        let l = client
            .list(
                "/api/v1/namespaces/default/pods",
                &ListParams {
                    label_selector: Some("app=moving".into()),
                    ..Default::default()
                },
            )
            .await?;
        let on_b = l["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["spec"]["nodeName"] == "bench-b")
            .count();
        let watch = watch_until(&client, "moving", Duration::from_secs(120), move |v| {
            v.values()
                .filter(|p| !p.2 && p.0 == "Running" && p.1 == "bench-a")
                .count()
                >= n
        });
        // SAFETY: plain kill(2) of our own child.
        let t0 = Instant::now();
        unsafe {
            libc::kill(pid as i32, libc::SIGKILL);
        }
        let done = watch.await?;
        println!(
            "\nnode loss: {on_b} of {n} replicas on the lost node; all {n} Running on the other node {:.2} s after SIGKILL of its agent (node grace 8 s)",
            (done - t0).as_secs_f64()
        );
    }
    drop(cleanup);
    Ok(())
}
