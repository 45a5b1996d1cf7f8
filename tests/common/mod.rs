//! Shared helpers for the integration tests: a real `wasmk up` process on a
//! free port with its own data directory and HOME, and real kubectl.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The wasmk binary under test.
pub fn wasmk_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_wasmk"))
}

/// Real kubectl v1.35, installed by `tools/get-kubectl` on first use.
pub fn kubectl_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let out = Command::new(root.join("tools/get-kubectl"))
            .output()
            .expect("run tools/get-kubectl");
        assert!(
            out.status.success(),
            "tools/get-kubectl failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
        PathBuf::from(dir).join("kubectl")
    })
    .clone()
}

/// A `wasmk up` process; killed when dropped.
pub struct Cluster {
    pub child: Option<Child>,
    pub home: tempfile::TempDir,
    pub data_dir: PathBuf,
    pub url: String,
    pub kubeconfig: PathBuf,
    pub extra_args: Vec<String>,
}

impl Cluster {
    /// Starts a cluster on a free loopback port.
    pub fn up() -> Cluster {
        Cluster::up_with(&[])
    }

    pub fn up_with(extra: &[&str]) -> Cluster {
        let home = tempfile::tempdir().expect("temp dir");
        let data_dir = home.path().join("data");
        let mut c = Cluster {
            child: None,
            data_dir: data_dir.clone(),
            kubeconfig: data_dir.join("kubeconfig"),
            home,
            url: String::new(),
            extra_args: extra.iter().map(|s| s.to_string()).collect(),
        };
        c.start("127.0.0.1:0");
        c
    }

    /// Starts (or restarts) the process on `listen`, waiting until it serves.
    pub fn start(&mut self, listen: &str) {
        let mut cmd = Command::new(wasmk_bin());
        cmd.arg("up")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--listen")
            .arg(listen)
            .args(&self.extra_args)
            .env("HOME", self.home.path())
            .env("WASMK_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("spawn wasmk up");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("wasmk is up: API at ") {
                    let _ = tx.send(url.trim().to_string());
                }
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("wasmk up did not report its API address within 60s");
        self.url = url;
        self.child = Some(child);
    }

    /// `kill -9`, leaving the data directory as a crash would.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self) -> std::process::ExitStatus {
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
                panic!("wasmk up did not exit within 30s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The port the API listens on.
    pub fn port(&self) -> u16 {
        self.url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port in url")
    }

    /// The admin token from the kubeconfig.
    pub fn token(&self) -> String {
        let text = std::fs::read_to_string(&self.kubeconfig).expect("kubeconfig");
        text.lines()
            .find_map(|l| l.trim().strip_prefix("token: "))
            .map(|t| t.trim_matches('"').to_string())
            .expect("token in kubeconfig")
    }

    /// Runs kubectl against this cluster.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        Command::new(kubectl_bin())
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", self.home.path())
            .output()
            .expect("run kubectl")
    }

    /// Runs kubectl and asserts success, returning stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {} failed:\nstdout: {}\nstderr: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `wasmk` (the CLI) against this cluster.
    pub fn wasmk(&self, args: &[&str]) -> Output {
        Command::new(wasmk_bin())
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", self.home.path())
            .env("WASMK_LOG", "warn")
            .output()
            .expect("run wasmk")
    }

    pub fn write_file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.home.path().join(name);
        std::fs::write(&p, text).expect("write file");
        p
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Polls `f` until it returns Some or `timeout` passes.
pub fn eventually<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A fresh cgroup root name for one test's pods (`wasmk-<prefix>-<id>`).
#[allow(dead_code)]
pub fn cgroup_root(prefix: &str) -> String {
    format!(
        "wasmk-{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// Removes a test's cgroup root, ending the sandboxes still in it (agents
/// leave their pods running when they stop).
#[allow(dead_code)]
pub fn remove_cgroup_root(root: &str) {
    if let (Ok(mgr), Ok(path)) = (
        wasmk::cgroup::CgroupManager::detect(),
        wasmk::cgroup::CgroupPath::new(root),
    ) && let Err(e) = mgr.remove(&path)
    {
        eprintln!("cannot remove cgroup {root}: {e}");
    }
}
