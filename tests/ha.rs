//! The highly available control plane with real processes (issue 5): three
//! `wasmk server` masters on loopback, `kill -9` of the leader under a
//! write load, a partitioned minority (through TCP proxies the test
//! controls between every pair of masters), full restarts, kubectl through
//! every master, members joining and leaving, and a snapshot restored into
//! a new cluster.
//!
//! Timings (failover, reconnection) are printed, never asserted; every wait
//! is bounded. The tests run one at a time: several clusters electing
//! leaders at once on a two-core machine would measure the machine.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{kubectl_bin, wasmk_bin};
use futures::StreamExt;
use serde_json::{Value, json};
use wasmk::client::{ApiClient, ClientError, ListParams};

/// Held by each test: one cluster at a time. A tokio mutex, so that the
/// guard may live across awaits, and a failed test does not poison it.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

const CMS: &str = "/api/v1/namespaces/default/configmaps";
const STATUS: &str = "/apis/wasmk.io/v1/cluster/status";

fn cm(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
           "data": {"v": "x".repeat(256)}})
}

/// One `wasmk server` process.
struct Master {
    name: String,
    api: u16,
    peer: u16,
    dir: PathBuf,
    /// Arguments after the common ones (--initial-cluster or --join ...).
    args: Vec<String>,
    child: Option<Child>,
    /// Lines the process printed on stdout.
    lines: Arc<Mutex<Vec<String>>>,
}

impl Master {
    fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.api)
    }

    fn peer_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.peer)
    }

    fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    fn start(&mut self) {
        assert!(self.child.is_none(), "{} is running", self.name);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.with_extension("log"))
            .expect("log file");
        let mut child = Command::new(wasmk_bin())
            .arg("server")
            .args(["--name", &self.name])
            .arg("--data-dir")
            .arg(&self.dir)
            .args(["--listen", &format!("127.0.0.1:{}", self.api)])
            .args(["--peer-listen", &format!("127.0.0.1:{}", self.peer)])
            .args(["--advertise-client-url", &self.url()])
            .args(&self.args)
            .env(
                "WASMK_LOG",
                std::env::var("WASMK_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn wasmk server");
        let stdout = child.stdout.take().expect("stdout");
        let lines = self.lines.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains(": API at ") {
                    let _ = tx.send(());
                }
                lines.lock().unwrap().push(line);
            }
        });
        rx.recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("{} did not start serving within 60s", self.name));
        self.child = Some(child);
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, and the exit status.
    fn stop(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        unsafe {
            libc::kill(c.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(st) = c.try_wait().expect("wait") {
                return st;
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                panic!("{} did not exit within 30s of SIGTERM", self.name);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn printed(&self, text: &str) -> bool {
        self.lines.lock().unwrap().iter().any(|l| l.contains(text))
    }
}

impl Drop for Master {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A TCP proxy between two masters' peer ports that the test can cut.
struct Link {
    from: usize,
    to: usize,
    port: u16,
    /// Taken when forwarding starts.
    listener: Mutex<Option<std::net::TcpListener>>,
    blocked: Arc<AtomicBool>,
    cut: tokio::sync::watch::Sender<u64>,
}

/// Proxies between every ordered pair of masters, on their own runtime.
struct Proxies {
    /// Taken on drop: a runtime may not be dropped inside the test's.
    rt: Option<tokio::runtime::Runtime>,
    links: Vec<Link>,
}

impl Drop for Proxies {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

impl Proxies {
    fn new(n: usize) -> Proxies {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("proxy runtime");
        let mut links = Vec::new();
        for from in 0..n {
            for to in 0..n {
                if from == to {
                    continue;
                }
                let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("proxy listener");
                listener
                    .set_nonblocking(true)
                    .expect("non-blocking proxy listener");
                let port = listener.local_addr().expect("proxy address").port();
                links.push(Link {
                    from,
                    to,
                    port,
                    listener: Mutex::new(Some(listener)),
                    blocked: Arc::new(AtomicBool::new(false)),
                    cut: tokio::sync::watch::channel(0).0,
                });
            }
        }
        Proxies {
            rt: Some(rt),
            links,
        }
    }

    fn port(&self, from: usize, to: usize) -> u16 {
        self.links
            .iter()
            .find(|l| l.from == from && l.to == to)
            .map(|l| l.port)
            .expect("link")
    }

    /// Starts forwarding every link to the peer ports of the masters.
    fn start(&self, peer_ports: &[u16]) {
        for l in &self.links {
            let target: SocketAddr = ([127, 0, 0, 1], peer_ports[l.to]).into();
            let blocked = l.blocked.clone();
            let cut = l.cut.subscribe();
            let Some(listener) = l.listener.lock().unwrap().take() else {
                continue;
            };
            let Some(rt) = &self.rt else {
                return;
            };
            rt.spawn(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                    return;
                };
                loop {
                    let Ok((mut inbound, _)) = listener.accept().await else {
                        continue;
                    };
                    if blocked.load(Ordering::SeqCst) {
                        continue;
                    }
                    // Only cuts after this connection was made end it.
                    let mut cut = cut.clone();
                    cut.borrow_and_update();
                    tokio::spawn(async move {
                        let Ok(mut out) = tokio::net::TcpStream::connect(target).await else {
                            return;
                        };
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut inbound, &mut out) => {}
                            _ = cut.changed() => {}
                        }
                    });
                }
            });
        }
    }

    /// Cuts master `i` off from the others, both ways.
    fn isolate(&self, i: usize) {
        for l in self.links.iter().filter(|l| l.from == i || l.to == i) {
            l.blocked.store(true, Ordering::SeqCst);
            l.cut.send_modify(|g| *g += 1);
        }
    }

    fn heal(&self) {
        for l in &self.links {
            l.blocked.store(false, Ordering::SeqCst);
        }
    }
}

/// Masters sharing one bundle, in a temp directory.
struct Cluster {
    root: tempfile::TempDir,
    masters: Vec<Master>,
    proxies: Option<Proxies>,
    ca_pem: Vec<u8>,
    token: String,
}

impl Cluster {
    fn bundle(&self) -> PathBuf {
        self.root.path().join("bundle")
    }

    fn new_root() -> (tempfile::TempDir, Vec<u8>, String) {
        let mut root = tempfile::tempdir().expect("temp dir");
        // WASMK_TEST_KEEP=1 keeps the data directories and logs to debug.
        if std::env::var_os("WASMK_TEST_KEEP").is_some() {
            root.disable_cleanup(true);
            eprintln!("cluster files kept in {}", root.path().display());
        }
        let out = Command::new(wasmk_bin())
            .args(["cluster", "init-pki"])
            .arg(root.path().join("bundle"))
            .output()
            .expect("run init-pki");
        assert!(
            out.status.success(),
            "init-pki: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let ca_pem = std::fs::read(root.path().join("bundle/ca.crt")).expect("ca.crt");
        let tokens =
            wasmk::auth::TokenFile::load(&root.path().join("bundle/tokens.csv")).expect("tokens");
        let token = tokens.admin_token().expect("admin token").to_string();
        (root, ca_pem, token)
    }

    fn master(root: &Path, name: &str, args: Vec<String>) -> Master {
        Master {
            name: name.to_string(),
            api: free_port(),
            peer: free_port(),
            dir: root.join(name),
            args,
            child: None,
            lines: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// `n` masters forming a new cluster; with `proxied`, each reaches the
    /// others through a proxy of its own.
    fn start(n: usize, proxied: bool) -> Cluster {
        let (root, ca_pem, token) = Cluster::new_root();
        let bundle = root.path().join("bundle");
        let mut masters: Vec<Master> = (0..n)
            .map(|i| Cluster::master(root.path(), &format!("m{}", i + 1), Vec::new()))
            .collect();
        let proxies = proxied.then(|| Proxies::new(n));
        for i in 0..n {
            let ic: Vec<String> = (0..n)
                .map(|j| {
                    let port = match &proxies {
                        Some(p) if i != j => p.port(i, j),
                        _ => masters[j].peer,
                    };
                    format!("{}=https://127.0.0.1:{port}", masters[j].name)
                })
                .collect();
            masters[i].args = vec![
                "--initial-cluster".into(),
                ic.join(","),
                "--pki-bundle".into(),
                bundle.display().to_string(),
            ];
        }
        if let Some(p) = &proxies {
            p.start(&masters.iter().map(|m| m.peer).collect::<Vec<_>>());
        }
        for m in &mut masters {
            m.start();
        }
        Cluster {
            root,
            masters,
            proxies,
            ca_pem,
            token,
        }
    }

    fn client_of(&self, urls: Vec<String>) -> ApiClient {
        ApiClient::new(urls, &self.ca_pem, Some(self.token.clone())).expect("client")
    }

    /// A client for every master, trying `first` first.
    fn client(&self, first: usize) -> ApiClient {
        let n = self.masters.len();
        self.client_of(
            (0..n)
                .map(|k| self.masters[(first + k) % n].url())
                .collect(),
        )
    }

    fn client_for(&self, i: usize) -> ApiClient {
        self.client_of(vec![self.masters[i].url()])
    }

    fn running(&self) -> Vec<usize> {
        (0..self.masters.len())
            .filter(|i| self.masters[*i].child.is_some())
            .collect()
    }

    async fn status(&self, i: usize) -> Option<Value> {
        let r = tokio::time::timeout(Duration::from_secs(3), self.client_for(i).get(STATUS))
            .await
            .ok()?;
        r.ok()
    }

    /// The running master that leads, among `among`.
    async fn leader_among(&self, among: &[usize]) -> usize {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            for &i in among {
                if let Some(s) = self.status(i).await
                    && s["raft"]["role"] == "Leader"
                {
                    return i;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no leader among {among:?} within 30s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn leader(&self) -> usize {
        self.leader_among(&self.running()).await
    }

    /// Waits for a leader and for the system namespaces, which the first
    /// leader creates just after the election; returns the leader.
    async fn ready(&self) -> usize {
        let leader = self.leader().await;
        let client = self.client(leader);
        let deadline = Instant::now() + Duration::from_secs(30);
        while client.get("/api/v1/namespaces/default").await.is_err() {
            assert!(Instant::now() < deadline, "no default namespace within 30s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        leader
    }

    /// Waits until master `i` has applied what the leader had committed.
    async fn caught_up(&self, i: usize) {
        let leader = self.leader().await;
        let target = self
            .status(leader)
            .await
            .map_or(0, |s| s["raft"]["commit"].as_u64().unwrap_or(0));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(s) = self.status(i).await
                && s["raft"]["applied"].as_u64().unwrap_or(0) >= target
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not catch up within 30s",
                self.masters[i].name
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Names of the ConfigMaps master `i` lists (a linearizable read).
    async fn names(&self, i: usize) -> BTreeSet<String> {
        let list = self
            .client_for(i)
            .list(CMS, &ListParams::default())
            .await
            .unwrap_or_else(|e| panic!("list through {}: {e}", self.masters[i].name));
        list["items"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|o| o["metadata"]["name"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn wasmk(&self, kubeconfig: &Path, args: &[&str]) -> std::process::Output {
        Command::new(wasmk_bin())
            .args(args)
            .env("KUBECONFIG", kubeconfig)
            .env("HOME", self.root.path())
            .env("WASMK_LOG", "warn")
            .output()
            .expect("run wasmk")
    }

    fn kubectl(&self, i: usize, args: &[&str]) -> String {
        let out = Command::new(kubectl_bin())
            .args(args)
            .env("KUBECONFIG", self.masters[i].kubeconfig())
            .env("HOME", self.root.path())
            .output()
            .expect("run kubectl");
        assert!(
            out.status.success(),
            "kubectl {} through {} failed: {}",
            args.join(" "),
            self.masters[i].name,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

fn ok(out: &std::process::Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Creates ConfigMaps through any master until the first success of a
/// request sent after `since`; returns how long after `since` it came.
async fn first_write_after(client: &ApiClient, prefix: &str, since: Instant) -> Duration {
    let deadline = since + Duration::from_secs(30);
    for i in 0.. {
        let r = tokio::time::timeout(
            Duration::from_secs(15),
            client.create(CMS, &cm(&format!("{prefix}-{i}"))),
        )
        .await;
        if let Ok(Ok(_)) = r {
            return since.elapsed();
        }
        assert!(Instant::now() < deadline, "no write accepted within 30s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    unreachable!()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_kills_under_write_load_lose_no_acknowledged_write() {
    let _serial = SERIAL.lock().await;
    let mut c = Cluster::start(3, false);
    c.ready().await;
    let acked: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = tokio::task::JoinSet::new();
    for w in 0..8 {
        let client = c.client(w % 3);
        let acked = acked.clone();
        let stop = stop.clone();
        writers.spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                let name = format!("w{w}-{i}");
                i += 1;
                match client.create(CMS, &cm(&name)).await {
                    Ok(_) => acked.lock().unwrap().push(name),
                    // Refused or undetermined: not acknowledged, move on.
                    Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            }
        });
    }
    let mut failovers = Vec::new();
    for round in 0..3 {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let before = acked.lock().unwrap().len();
        let leader = c.leader().await;
        let survivors: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
        let probe = c.client_of(survivors.iter().map(|i| c.masters[*i].url()).collect());
        let killed = Instant::now();
        c.masters[leader].kill9();
        let failover = first_write_after(&probe, &format!("probe{round}"), killed).await;
        let new_leader = c.leader_among(&survivors).await;
        eprintln!(
            "round {round}: killed leader {} with {before} writes acknowledged; {} leads; a write sent after the kill was accepted {} ms after it",
            c.masters[leader].name,
            c.masters[new_leader].name,
            failover.as_millis()
        );
        failovers.push(failover);
        c.masters[leader].start();
        c.caught_up(leader).await;
    }
    stop.store(true, Ordering::SeqCst);
    while writers.join_next().await.is_some() {}
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 30,
        "the load made little progress: {} writes",
        acked.len()
    );
    for i in 0..3 {
        c.caught_up(i).await;
        let present = c.names(i).await;
        let missing: Vec<&String> = acked.iter().filter(|n| !present.contains(*n)).collect();
        assert!(
            missing.is_empty(),
            "{} lacks {} of {} acknowledged writes, e.g. {:?}",
            c.masters[i].name,
            missing.len(),
            acked.len(),
            &missing[..missing.len().min(5)]
        );
    }
    eprintln!(
        "{} acknowledged writes present on all three masters; failover times (kill -> write accepted): {:?} ms",
        acked.len(),
        failovers.iter().map(|d| d.as_millis()).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_partitioned_minority_refuses_writes_while_the_majority_goes_on() {
    let _serial = SERIAL.lock().await;
    let c = Cluster::start(3, true);
    let leader = c.ready().await;
    for i in 0..5 {
        c.client(i % 3)
            .create(CMS, &cm(&format!("before-{i}")))
            .await
            .expect("write before");
    }
    let proxies = c.proxies.as_ref().expect("proxies");
    // Cut off the leader: the interesting minority.
    let cut = Instant::now();
    proxies.isolate(leader);
    let majority: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    let maj = c.client_of(majority.iter().map(|i| c.masters[*i].url()).collect());
    let resumed = first_write_after(&maj, "majority", cut).await;
    for i in 0..10 {
        maj.create(CMS, &cm(&format!("maj-{i}")))
            .await
            .expect("majority write");
    }
    eprintln!(
        "the majority accepted writes {} ms after the partition",
        resumed.as_millis()
    );
    // Until it notices it lost the quorum (check-quorum, about an election
    // timeout), the old leader still takes proposals that cannot commit:
    // their callers get 504 (undetermined) or 503.
    let minority = c.client_for(leader);
    let started = Instant::now();
    match minority.create(CMS, &cm("minority-early")).await {
        Err(e) => assert!(
            matches!(e.code(), Some(503 | 504)),
            "unexpected refusal: {e}"
        ),
        Ok(_) => panic!("the isolated master accepted a write"),
    }
    eprintln!(
        "a write sent to the isolated master failed after {} ms",
        started.elapsed().as_millis()
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while c
        .status(leader)
        .await
        .is_none_or(|s| s["raft"]["role"] == "Leader")
    {
        assert!(
            Instant::now() < deadline,
            "the isolated leader did not step down within 30s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "the isolated master no longer leads (seen {} ms after the partition)",
        cut.elapsed().as_millis()
    );
    // Without a leader, the minority refuses at once with 503.
    let started = Instant::now();
    let refused = minority.create(CMS, &cm("minority-write")).await;
    match &refused {
        Err(e) => assert_eq!(e.code(), Some(503), "unexpected refusal: {e}"),
        Ok(_) => panic!("the isolated master accepted a write"),
    }
    eprintln!(
        "the minority refused a write after {} ms: {}",
        started.elapsed().as_millis(),
        refused.err().map(|e| e.to_string()).unwrap_or_default()
    );
    let read = minority.get(&format!("{CMS}/maj-0")).await;
    assert!(
        matches!(
            read.as_ref().map_err(ClientError::code),
            Err(Some(503 | 504))
        ),
        "the isolated master served a linearizable read: {read:?}"
    );
    // Possibly stale reads stay available on the minority.
    minority
        .get(&format!("{CMS}/before-0?resourceVersion=0"))
        .await
        .expect("a stale read on the minority");
    proxies.heal();
    c.caught_up(leader).await;
    let names = c.names(leader).await;
    assert!(
        (0..10).all(|i| names.contains(&format!("maj-{i}"))),
        "the healed master lacks majority writes"
    );
    for refused in ["minority-early", "minority-write"] {
        assert!(!names.contains(refused), "{refused}, refused, was applied");
        for &i in &majority {
            assert!(
                !c.names(i).await.contains(refused),
                "{refused}, refused, was applied"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_restart_keeps_all_state_and_modules() {
    let _serial = SERIAL.lock().await;
    let mut c = Cluster::start(3, false);
    c.ready().await;
    for i in 0..30 {
        c.client(i % 3)
            .create(CMS, &cm(&format!("keep-{i}")))
            .await
            .expect("write");
    }
    let module = wat::parse_str(
        r#"(module (memory 1) (func (export "_start")) (data (i32.const 0) "hello"))"#,
    )
    .expect("wat");
    c.client(1)
        .upload(
            "/apis/wasmk.io/v1/modules/hello/push?tag=v1",
            bytes::Bytes::from(module.clone()),
        )
        .await
        .expect("push a module");
    let digest = wasmk::modules::digest_of(&module);
    for m in &mut c.masters {
        let st = m.stop();
        assert!(st.success(), "{} exited with {st} on SIGTERM", m.name);
    }
    for m in &mut c.masters {
        m.start();
    }
    c.leader().await;
    for i in 0..3 {
        c.caught_up(i).await;
        let names = c.names(i).await;
        let kept = (0..30)
            .filter(|k| names.contains(&format!("keep-{k}")))
            .count();
        assert_eq!(
            kept, 30,
            "{} lost objects over a restart",
            c.masters[i].name
        );
        let (status, _, body) = c
            .client_for(i)
            .raw(
                http::Method::GET,
                &format!("/apis/wasmk.io/v1/blobs/{digest}"),
                None,
                None,
            )
            .await
            .expect("get the module");
        assert_eq!(
            status, 200,
            "{} does not serve the module",
            c.masters[i].name
        );
        assert_eq!(body.as_ref(), module.as_slice());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kubectl_works_through_every_master_and_clients_outlive_their_master() {
    let _serial = SERIAL.lock().await;
    let mut c = Cluster::start(3, false);
    let leader = c.ready().await;
    for i in 0..3 {
        c.kubectl(
            i,
            &[
                "create",
                "configmap",
                &format!("via-m{}", i + 1),
                "--from-literal=k=v",
            ],
        );
    }
    for i in 0..3 {
        let out = c.kubectl(i, &["get", "configmaps", "-o", "name"]);
        for k in 1..=3 {
            assert!(out.contains(&format!("configmap/via-m{k}")), "{out}");
        }
    }
    // The leader's controllers run: a Deployment created through a
    // follower gets its ReplicaSet.
    let follower = (leader + 1) % 3;
    c.kubectl(
        follower,
        &["create", "deployment", "web", "--image=hello:v1"],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = c.kubectl((leader + 2) % 3, &["get", "replicasets", "-o", "name"]);
        if out.contains("replicaset.apps/web-") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no ReplicaSet for the Deployment within 30s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A watch on a follower stays ordered across the leader's death.
    let watcher = (leader + 1) % 3;
    let rv = c
        .client_for(watcher)
        .list(CMS, &ListParams::default())
        .await
        .expect("list")["metadata"]["resourceVersion"]
        .as_str()
        .map(str::to_string);
    let mut watch = c
        .client_for(watcher)
        .watch(
            CMS,
            &ListParams {
                resource_version: rv,
                timeout_seconds: Some(120),
                ..Default::default()
            },
        )
        .await
        .expect("watch");
    // A node-like client renews its heartbeat through the leader first.
    let hb = c.client(leader);
    hb.create(CMS, &cm("heartbeat"))
        .await
        .expect("heartbeat object");
    let renewals = Arc::new(Mutex::new(Vec::<Instant>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let beat = {
        let renewals = renewals.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                let patch = json!({"data": {"beat": n.to_string()}});
                if hb
                    .patch(
                        &format!("{CMS}/heartbeat"),
                        wasmk::client::PatchType::Merge,
                        &patch,
                    )
                    .await
                    .is_ok()
                {
                    renewals.lock().unwrap().push(Instant::now());
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    let writer = c.client(leader);
    for i in 0..5 {
        writer
            .create(CMS, &cm(&format!("w-{i}")))
            .await
            .expect("write");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let killed = Instant::now();
    c.masters[leader].kill9();
    for i in 5..10 {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match writer.create(CMS, &cm(&format!("w-{i}"))).await {
                Ok(_) => break,
                Err(e) if e.is_already_exists() => break,
                Err(_) => {
                    assert!(
                        Instant::now() < deadline,
                        "no write accepted after the kill"
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    let resumed = loop {
        if let Some(t) = renewals.lock().unwrap().iter().find(|t| **t > killed) {
            break *t - killed;
        }
        assert!(
            Instant::now() < deadline,
            "the heartbeat client did not recover within 15s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    stop.store(true, Ordering::SeqCst);
    let _ = beat.await;
    eprintln!(
        "the heartbeat client renewed again {} ms after its master was killed",
        resumed.as_millis()
    );
    let mut seen = Vec::new();
    let mut last = 0u64;
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.len() < 10 {
        let left = deadline.saturating_duration_since(Instant::now());
        let e = tokio::time::timeout(left, watch.next())
            .await
            .expect("watch events within 30s")
            .expect("the watch stayed open")
            .expect("watch event");
        let rv: u64 = e.object["metadata"]["resourceVersion"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        assert!(rv > last, "watch events out of order: {rv} after {last}");
        last = rv;
        let name = e.object["metadata"]["name"]
            .as_str()
            .unwrap_or("")
            .to_string();
        if name.starts_with("w-") {
            seen.push(name);
        }
    }
    assert_eq!(seen, (0..10).map(|i| format!("w-{i}")).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn masters_join_leave_and_a_snapshot_restores_into_a_new_cluster() {
    let _serial = SERIAL.lock().await;
    // A one-master cluster to start from.
    let mut c = Cluster::start(1, false);
    c.ready().await;
    for i in 0..5 {
        c.client(0)
            .create(CMS, &cm(&format!("early-{i}")))
            .await
            .expect("write");
    }
    let module = wat::parse_str(
        r#"(module (memory 1) (func (export "_start")) (data (i32.const 0) "joined"))"#,
    )
    .expect("wat");
    let digest = wasmk::modules::digest_of(&module);
    c.client(0)
        .upload(
            "/apis/wasmk.io/v1/modules/app/push?tag=v1",
            bytes::Bytes::from(module.clone()),
        )
        .await
        .expect("push");
    let tokens = c.bundle().join("tokens.csv").display().to_string();
    // m2 joins through m1; m3 through m2, a follower, which forwards, after
    // an operator announced it with `cluster add-master` (joining is
    // idempotent).
    for (name, via) in [("m2", 0usize), ("m3", 1usize)] {
        let url = c.masters[via].url();
        let mut m = Cluster::master(
            c.root.path(),
            name,
            vec!["--join".into(), url, "--token-file".into(), tokens.clone()],
        );
        if name == "m3" {
            let added = ok(
                &c.wasmk(
                    &c.masters[0].kubeconfig(),
                    &[
                        "cluster",
                        "add-master",
                        name,
                        "--peer-url",
                        &m.peer_url(),
                        "--client-url",
                        &m.url(),
                    ],
                ),
                "cluster add-master",
            );
            assert!(added.contains("learner"), "{added}");
        }
        m.start();
        c.masters.push(m);
        let deadline = Instant::now() + Duration::from_secs(60);
        while !c
            .masters
            .last()
            .map(|m| m.printed("joined the cluster as a voter"))
            .unwrap_or(false)
        {
            assert!(
                Instant::now() < deadline,
                "{name} did not become a voter within 60s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let kc1 = c.masters[0].kubeconfig();
    let status = ok(&c.wasmk(&kc1, &["cluster", "status"]), "cluster status");
    eprintln!("{status}");
    assert_eq!(
        status.lines().filter(|l| l.contains(" voter ")).count(),
        3,
        "{status}"
    );
    assert!(
        status.lines().next().unwrap_or("").starts_with("leader: "),
        "{status}"
    );
    // The last to join got the state and the module by snapshot.
    c.caught_up(2).await;
    let names = c.names(2).await;
    assert!((0..5).all(|i| names.contains(&format!("early-{i}"))));
    let (st, _, body) = c
        .client_for(2)
        .raw(
            http::Method::GET,
            &format!("/apis/wasmk.io/v1/blobs/{digest}"),
            None,
            None,
        )
        .await
        .expect("blob from the new master");
    assert_eq!(st, 200);
    assert_eq!(body.as_ref(), module.as_slice());
    // Remove the leader: it hands leadership over first.
    let leader = c.leader().await;
    let other = (leader + 1) % 3;
    let name = c.masters[leader].name.clone();
    ok(
        &c.wasmk(
            &c.masters[other].kubeconfig(),
            &["cluster", "remove-master", &name],
        ),
        "remove-master",
    );
    c.masters[leader].kill9();
    let rest: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    let new_leader = c.leader_among(&rest).await;
    let status = ok(
        &c.wasmk(&c.masters[new_leader].kubeconfig(), &["cluster", "status"]),
        "cluster status",
    );
    assert_eq!(
        status.lines().filter(|l| l.contains(" voter ")).count(),
        2,
        "{status}"
    );
    assert!(!status.contains(&format!("\n{name} ")), "{status}");
    c.client_of(rest.iter().map(|i| c.masters[*i].url()).collect())
        .create(CMS, &cm("after-removal"))
        .await
        .expect("the two remaining masters accept writes");
    // Back up, and restore into a new single-master cluster.
    let file = c.root.path().join("backup.snap");
    let saved = ok(
        &c.wasmk(
            &c.masters[new_leader].kubeconfig(),
            &["snapshot", "save", &file.display().to_string()],
        ),
        "snapshot save",
    );
    assert!(saved.contains("1 module chunks"), "{saved}");
    let mut r = Cluster::master(c.root.path(), "r1", Vec::new());
    let ic = format!("r1={}", r.peer_url());
    ok(
        &c.wasmk(
            &kc1,
            &[
                "snapshot",
                "restore",
                &file.display().to_string(),
                "--data-dir",
                &r.dir.display().to_string(),
                "--name",
                "r1",
                "--initial-cluster",
                &ic,
                "--pki-bundle",
                &c.bundle().display().to_string(),
            ],
        ),
        "snapshot restore",
    );
    r.args = vec!["--initial-cluster".into(), ic];
    r.start();
    let restored = c.client_of(vec![r.url()]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let list = loop {
        match restored.list(CMS, &ListParams::default()).await {
            Ok(l) => break l,
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "the restored master does not serve: {e}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let names: BTreeSet<String> = list["items"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|o| o["metadata"]["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    assert!(
        names.contains("after-removal") && names.contains("early-0"),
        "{names:?}"
    );
    let (st, _, body) = restored
        .raw(
            http::Method::GET,
            &format!("/apis/wasmk.io/v1/blobs/{digest}"),
            None,
            None,
        )
        .await
        .expect("blob from the restored master");
    assert_eq!(st, 200);
    assert_eq!(body.as_ref(), module.as_slice());
    let status = restored
        .get(STATUS)
        .await
        .expect("status of the restored cluster");
    let members: Vec<&str> = status["members"]
        .as_array()
        .map(|a| a.iter().filter_map(|m| m["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(
        members,
        ["r1"],
        "the old members must not survive a restore"
    );
}

/// A `wasmk agent` process and its cgroup root, both removed on drop.
struct AgentProcess {
    child: Child,
    cgroup_root: String,
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The agent leaves pods running when it stops: empty its cgroup
        // root, which ends them.
        common::remove_cgroup_root(&self.cgroup_root);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_agent_keeps_its_node_and_pods_when_its_master_dies() {
    let _serial = SERIAL.lock().await;
    let mut c = Cluster::start(3, false);
    let leader = c.ready().await;
    let kc = c.masters[leader].kubeconfig();
    // The agent joins with a bootstrap token and knows every master, its
    // own (the leader) first.
    let token = ok(
        &c.wasmk(&kc, &["token", "create", "--ttl", "1h"]),
        "token create",
    );
    let token_file = c.root.path().join("agent-token");
    std::fs::write(&token_file, token.trim()).expect("write the agent token");
    let urls: Vec<String> = (0..3).map(|k| c.masters[(leader + k) % 3].url()).collect();
    let cgroup_root = common::cgroup_root("ha-test");
    let node = "ha-node";
    let agent = Command::new(wasmk_bin())
        .args(["agent", "--server", &urls.join(","), "--name", node])
        .arg("--token-file")
        .arg(&token_file)
        .arg("--ca-file")
        .arg(c.bundle().join("ca.crt"))
        .arg("--data-dir")
        .arg(c.root.path().join("agent"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--cgroup-root",
            &cgroup_root,
            "--lease-interval",
            "1s",
        ])
        .env("HOME", c.root.path())
        .env("WASMK_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn wasmk agent");
    let _agent = AgentProcess {
        child: agent,
        cgroup_root,
    };
    let worker = wasmk::sandbox::testing::sample("worker", wasmk::sandbox::ModuleKind::Module);
    ok(
        &c.wasmk(
            &kc,
            &["push", &worker.display().to_string(), "--name", "worker:v1"],
        ),
        "push worker",
    );
    c.kubectl(
        leader,
        &[
            "create",
            "deployment",
            "web",
            "--image=worker:v1",
            "--replicas=1",
        ],
    );
    let follower = (leader + 1) % 3;
    let running = |c: &Cluster, i: usize, n: usize| -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let out = c.kubectl(
                i,
                &[
                    "get",
                    "pods",
                    "-l",
                    "app=web",
                    "-o",
                    "jsonpath={range .items[*]}{.metadata.name} {.status.phase} {.spec.nodeName}{\"\\n\"}{end}",
                ],
            );
            let pods: Vec<String> = out
                .lines()
                .filter(|l| l.ends_with(&format!(" Running {node}")))
                .filter_map(|l| l.split(' ').next().map(str::to_string))
                .collect();
            if pods.len() == n && out.lines().count() == n {
                return pods;
            }
            if Instant::now() > deadline {
                let nodes = c.kubectl(i, &["get", "nodes", "-o", "yaml"]);
                let events = c.kubectl(i, &["get", "events", "-A"]);
                panic!(
                    "never {n} Running pods on {node}; last:\n{out}\nnodes:\n{nodes}\nevents:\n{events}"
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    running(&c, follower, 1);
    let lease_path =
        format!("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{node}");
    let survivors = c.client_of((1..3).map(|k| c.masters[(leader + k) % 3].url()).collect());
    let before =
        survivors.get(&lease_path).await.expect("the node's Lease")["spec"]["renewTime"].clone();
    let killed = Instant::now();
    c.masters[leader].kill9();
    // The agent renews its Lease through another master.
    let deadline = Instant::now() + Duration::from_secs(30);
    let renewed = loop {
        if let Ok(l) = survivors.get(&lease_path).await
            && l["spec"]["renewTime"] != before
        {
            break killed.elapsed();
        }
        assert!(
            Instant::now() < deadline,
            "the agent did not renew its Lease within 30s of the kill"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!(
        "the agent renewed its Lease {} ms after its master was killed",
        renewed.as_millis()
    );
    // New pods reach it, and its logs are served through any master.
    c.kubectl(follower, &["scale", "deployment", "web", "--replicas=3"]);
    let pods = running(&c, follower, 3);
    let ready = c.kubectl(
        follower,
        &[
            "get",
            "node",
            node,
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
        ],
    );
    assert_eq!(
        ready, "True",
        "the node is not Ready after the master's death"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = Command::new(kubectl_bin())
            .args(["logs", &pods[0]])
            .env("KUBECONFIG", c.masters[(leader + 2) % 3].kubeconfig())
            .env("HOME", c.root.path())
            .output()
            .expect("run kubectl logs");
        if out.status.success() && String::from_utf8_lossy(&out.stdout).contains("heartbeat") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "kubectl logs through a surviving master failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
