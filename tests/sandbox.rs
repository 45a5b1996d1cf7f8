//! Real sandbox processes running the sample modules of `wasm-modules/`:
//! each test compiles through the module cache, writes a spec, spawns
//! `wasmk sandbox --spec FILE` and checks the log and termination record.

use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmk::sandbox::engine::{EngineRole, new_engine};
use wasmk::sandbox::logs::{LogOptions, log_files, read_logs};
use wasmk::sandbox::spec::{EXIT_OOM, EXIT_START_ERROR, EXIT_TERMINATED, EXIT_TRAP};
use wasmk::sandbox::testing::sample;
use wasmk::sandbox::{
    CacheError, EnvVar, Launcher, Launchers, LogRotation, ModuleCache, ModuleKind, Preopen,
    SandboxChild, SandboxSpec, StartStatus, TerminationReason, TerminationRecord, spawn_sandbox,
};

/// Upper bound for any single sandbox run; tests fail (and kill the child)
/// rather than hang past it.
const RUN_BOUND: Duration = Duration::from_secs(60);
/// The grace period a graceful stop must fit in (Kubernetes' default is 30s).
const GRACE: Duration = Duration::from_secs(10);

fn exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_wasmk"))
}

fn digest_of(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap();
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The launcher all tests of this process share (it makes the test process
/// a child subreaper, so launched sandboxes are its children).
fn launcher() -> &'static Launcher {
    static LAUNCHER: OnceLock<Launcher> = OnceLock::new();
    LAUNCHER.get_or_init(|| Launcher::new(&exe()).unwrap())
}

/// A temp dir with a compile cache, and helpers to run samples in it.
struct Node {
    dir: tempfile::TempDir,
    engine: wasmtime::Engine,
    cache: ModuleCache,
    /// Start sandboxes through the launcher instead of exec.
    launched: bool,
}

/// Both kinds of sample, each on both kinds of node.
fn kinds_and_nodes() -> Vec<(ModuleKind, Node)> {
    [ModuleKind::Module, ModuleKind::Component]
        .into_iter()
        .flat_map(|k| nodes().map(|n| (k, n)))
        .collect()
}

/// One node that execs sandboxes and one that launches them by fork.
fn nodes() -> [Node; 2] {
    let mut launched = Node::new();
    launched.launched = true;
    [Node::new(), launched]
}

impl Node {
    fn new() -> Node {
        let dir = tempfile::tempdir().unwrap();
        let cache = ModuleCache::new(dir.path().join("cache")).unwrap();
        Node {
            engine: new_engine(EngineRole::Compiler, None).unwrap(),
            cache,
            dir,
            launched: false,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A spec for sample `name`, compiled; argv is `[container, args...]`.
    fn spec(&self, name: &str, kind: ModuleKind, args: &[&str]) -> SandboxSpec {
        let wasm = sample(name, kind);
        let artifact = self
            .cache
            .ensure_compiled(&self.engine, &digest_of(&wasm), &wasm)
            .unwrap();
        assert_eq!(artifact.kind, kind);
        let mut argv = vec!["app".to_string()];
        argv.extend(args.iter().map(|a| a.to_string()));
        SandboxSpec {
            pod_namespace: "default".into(),
            pod_name: format!("{name}-pod"),
            pod_uid: "uid-1".into(),
            container_name: "app".into(),
            module_path: wasm.clone(),
            module_digest: digest_of(&wasm),
            artifact_path: artifact.path,
            kind,
            args: argv,
            env: vec![],
            preopens: vec![],
            working_dir: None,
            memory_limit_bytes: Some(64 << 20),
            max_wasm_stack_bytes: None,
            log_path: self.path("app.log"),
            log_rotation: LogRotation::default(),
            termination_record_path: self.path("termination.json"),
        }
    }

    fn start(&self, spec: &SandboxSpec) -> Running {
        let spec_path = self.path("spec.json");
        spec.write(&spec_path).unwrap();
        let (pid, start) = if self.launched {
            let l = launcher()
                .launch(spec, &[])
                .unwrap_or_else(|e| panic!("launch {}: {e}", spec_path.display()));
            (l.pid, l.start)
        } else {
            let sandbox = spawn_sandbox(&exe(), &spec_path, None).unwrap();
            (sandbox.child.id(), sandbox.start)
        };
        Running::new(pid, start, spec)
    }

    /// Runs through the launcher to completion.
    fn run_launched(&self, spec: &SandboxSpec) -> Outcome {
        let node = Node {
            dir: tempfile::tempdir().unwrap(),
            engine: self.engine.clone(),
            cache: ModuleCache::new(self.path("cache")).unwrap(),
            launched: true,
        };
        node.run(spec)
    }

    /// Runs to completion and returns the record, the log and the status.
    fn run(&self, spec: &SandboxSpec) -> Outcome {
        let mut running = self.start(spec);
        let started = running.wait_started();
        running.finish(started, RUN_BOUND)
    }
}

struct Running {
    /// Our child, exec'd or launched.
    pid: u32,
    start: Option<wasmk::sandbox::StartSignal>,
    record_path: PathBuf,
    log_path: PathBuf,
}

struct Outcome {
    started: StartStatus,
    record: TerminationRecord,
    log: String,
    status: ExitStatus,
}

impl Running {
    fn new(pid: u32, start: wasmk::sandbox::StartSignal, spec: &SandboxSpec) -> Running {
        Running {
            pid,
            start: Some(start),
            record_path: spec.termination_record_path.clone(),
            log_path: spec.log_path.clone(),
        }
    }

    fn wait_started(&mut self) -> StartStatus {
        // The start pipe closes when the child exits, so this is bounded by
        // the child's lifetime, which `finish` bounds.
        self.start.take().unwrap().wait_blocking().unwrap()
    }

    fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.pid as i32, signal) };
    }

    /// Reaps the child if it has exited.
    fn try_wait(&self) -> Option<ExitStatus> {
        use std::os::unix::process::ExitStatusExt;
        let mut status = 0;
        // SAFETY: waitpid on our own child with a valid status pointer.
        let r = unsafe { libc::waitpid(self.pid as i32, &mut status, libc::WNOHANG) };
        assert!(
            r >= 0,
            "waitpid {}: {}",
            self.pid,
            std::io::Error::last_os_error()
        );
        (r == self.pid as i32).then(|| ExitStatus::from_raw(status))
    }

    /// Waits up to `bound` for exit (killing the child and failing after).
    fn finish(self, started: StartStatus, bound: Duration) -> Outcome {
        let deadline = Instant::now() + bound;
        let status = loop {
            if let Some(status) = self.try_wait() {
                break status;
            }
            if Instant::now() > deadline {
                self.signal(libc::SIGKILL);
                let _ = self.try_wait();
                panic!("sandbox did not exit within {bound:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let record = TerminationRecord::read(&self.record_path)
            .unwrap_or_else(|e| panic!("no termination record (status {status}): {e}"));
        let log =
            String::from_utf8(read_logs(&self.log_path, &LogOptions::default()).unwrap()).unwrap();
        Outcome {
            started,
            record,
            log,
            status,
        }
    }
}

fn assert_outcome(o: &Outcome, code: i32, reason: TerminationReason, started: bool) {
    assert_eq!(
        o.record.reason, reason,
        "record {:?}\nlog:\n{}",
        o.record, o.log
    );
    assert_eq!(o.record.exit_code, code, "record {:?}", o.record);
    assert_eq!(o.status.code(), Some(code));
    assert_eq!(o.record.module_started, started);
    assert_eq!(o.started == StartStatus::Started, started);
    assert_eq!(o.record.started_at.is_some(), started);
}

#[test]
fn hello_core_module_sees_args_and_env() {
    for node in nodes() {
        let mut spec = node.spec("hello", ModuleKind::Module, &["one", "two words"]);
        spec.env = vec![
            EnvVar {
                name: "GREETING".into(),
                value: "hi there".into(),
            },
            EnvVar {
                name: "EMPTY".into(),
                value: String::new(),
            },
        ];
        let o = node.run(&spec);
        assert_outcome(&o, 0, TerminationReason::Completed, true);
        assert!(
            o.log.contains("arg[0]=app\narg[1]=one\narg[2]=two words\n"),
            "{}",
            o.log
        );
        assert!(
            o.log.contains("env GREETING=hi there\nenv EMPTY=\n"),
            "{}",
            o.log
        );
        assert!(
            !o.log.contains("env PATH="),
            "host env must not leak: {}",
            o.log
        );
        // The raw file is CRI formatted.
        let raw = std::fs::read_to_string(&spec.log_path).unwrap();
        let first = raw.lines().next().unwrap();
        let parts: Vec<&str> = first.splitn(4, ' ').collect();
        assert!(parts[0].ends_with('Z') && parts[0].len() == 30, "{first}");
        assert_eq!(&parts[1..], &["stdout", "F", "arg[0]=app"]);
    }
}

#[test]
fn hello_component_sees_args_and_env() {
    for node in nodes() {
        let mut spec = node.spec("hello", ModuleKind::Component, &["p2"]);
        spec.env = vec![EnvVar {
            name: "MODE".into(),
            value: "component".into(),
        }];
        let o = node.run(&spec);
        assert_outcome(&o, 0, TerminationReason::Completed, true);
        assert!(o.log.contains("arg[0]=app\narg[1]=p2\n"), "{}", o.log);
        assert!(o.log.contains("env MODE=component\n"), "{}", o.log);
    }
}

#[test]
fn fail_exits_3_with_error() {
    for node in nodes() {
        let o = node.run(&node.spec("fail", ModuleKind::Module, &[]));
        assert_outcome(&o, 3, TerminationReason::Error, true);
        assert!(o.record.message.contains("status 3"), "{:?}", o.record);
        assert!(o.log.contains("about to fail\n"), "{}", o.log);
        assert!(
            o.log.contains("exiting with status 3 on purpose"),
            "{}",
            o.log
        );
        // stderr records are marked as such.
        let raw = std::fs::read_to_string(node.path("app.log")).unwrap();
        assert!(raw.contains(" stderr F fail: exiting"), "{raw}");
    }
}

#[test]
fn fail_component_is_an_error() {
    let node = Node::new();
    let o = node.run(&node.spec("fail", ModuleKind::Component, &[]));
    assert_eq!(o.record.reason, TerminationReason::Error, "{:?}", o.record);
    assert_ne!(o.record.exit_code, 0);
    assert!(o.record.module_started);
}

fn volume(node: &Node) -> PathBuf {
    let dir = node.path("volume");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("app.conf"), "color = blue\nsize = 3\n").unwrap();
    dir
}

#[test]
fn config_reader_reads_a_read_only_volume() {
    for (kind, node) in kinds_and_nodes() {
        let mut spec = node.spec("config-reader", kind, &["/config/app.conf"]);
        spec.preopens = vec![Preopen {
            host_path: volume(&node),
            guest_path: "/config".into(),
            read_only: true,
        }];
        let o = node.run(&spec);
        assert_outcome(&o, 0, TerminationReason::Completed, true);
        assert_eq!(o.log, "color = blue\nsize = 3\n", "{kind:?}");
    }
}

#[test]
fn file_system_is_limited_to_preopens() {
    for (kind, node) in kinds_and_nodes() {
        let ro = volume(&node);
        let rw = node.path("scratch");
        std::fs::create_dir_all(&rw).unwrap();
        let secret = node.path("secret.txt");
        std::fs::write(&secret, "do not read").unwrap();
        let ops = [
            "write:/config/app.conf".to_string(),
            "write:/config/new.txt".to_string(),
            "write:/scratch/out.txt".to_string(),
            format!("read:{}", secret.display()),
            "read:/config/../secret.txt".to_string(),
            "read:/etc/passwd".to_string(),
            "list:/".to_string(),
            "read:/config/app.conf".to_string(),
        ];
        let op_refs: Vec<&str> = ops.iter().map(String::as_str).collect();
        let mut spec = node.spec("fs-probe", kind, &op_refs);
        spec.preopens = vec![
            Preopen {
                host_path: ro.clone(),
                guest_path: "/config".into(),
                read_only: true,
            },
            Preopen {
                host_path: rw.clone(),
                guest_path: "/scratch".into(),
                read_only: false,
            },
        ];
        let o = node.run(&spec);
        assert_outcome(&o, 0, TerminationReason::Completed, true);
        let line = |prefix: &str| {
            o.log
                .lines()
                .find(|l| l.starts_with(prefix))
                .unwrap_or_else(|| panic!("{kind:?}: no line {prefix:?} in\n{}", o.log))
                .to_string()
        };
        assert!(
            line("write /config/app.conf:").contains("denied"),
            "{kind:?}"
        );
        assert!(
            line("write /config/new.txt:").contains("denied"),
            "{kind:?}"
        );
        assert!(line("write /scratch/out.txt:").contains("ok"), "{kind:?}");
        assert!(line(&format!("read {}:", secret.display())).contains("denied"));
        assert!(
            line("read /config/../secret.txt:").contains("denied"),
            "{kind:?}"
        );
        assert!(line("read /etc/passwd:").contains("denied"), "{kind:?}");
        assert!(
            line("read /config/app.conf:").contains("ok (22 bytes)"),
            "{kind:?}"
        );
        // Host side: the read-only volume is untouched, the writable one
        // got the file.
        assert_eq!(
            std::fs::read_to_string(ro.join("app.conf")).unwrap(),
            "color = blue\nsize = 3\n"
        );
        assert!(!ro.join("new.txt").exists());
        assert!(rw.join("out.txt").exists());
    }
}

#[test]
fn sigterm_stops_an_infinite_loop_via_epoch() {
    for (kind, node) in kinds_and_nodes() {
        let mut running = node.start(&node.spec("infinite-loop", kind, &[]));
        let started = running.wait_started();
        assert_eq!(started, StartStatus::Started);
        wait_for_log(&node.path("app.log"), "spinning");
        running.signal(libc::SIGTERM);
        let o = running.finish(started, GRACE);
        assert_outcome(&o, EXIT_TERMINATED, TerminationReason::Terminated, true);
        assert!(
            o.record.message.contains("interrupted running wasm"),
            "{:?}",
            o.record
        );
    }
}

#[test]
fn sigterm_stops_a_sleeping_worker() {
    for (kind, node) in kinds_and_nodes() {
        let mut running = node.start(&node.spec("worker", kind, &[]));
        let started = running.wait_started();
        wait_for_log(&node.path("app.log"), "heartbeat 0");
        running.signal(libc::SIGTERM);
        let o = running.finish(started, GRACE);
        assert_outcome(&o, EXIT_TERMINATED, TerminationReason::Terminated, true);
        // The sleep was cut short, not waited out until wasm ran again.
        assert_eq!(o.record.message, "stopped by signal", "{kind:?}");
        assert!(o.log.starts_with("heartbeat 0\n"), "{}", o.log);
    }
}

/// Polls the log (bounded) until it contains `needle`.
fn wait_for_log(path: &Path, needle: &str) {
    let deadline = Instant::now() + RUN_BOUND;
    loop {
        let text = read_logs(path, &LogOptions::default()).unwrap_or_default();
        if String::from_utf8_lossy(&text).contains(needle) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{needle:?} never appeared in {path:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn memory_bomb_is_oom_killed() {
    for (kind, node) in kinds_and_nodes() {
        let mut spec = node.spec("memory-bomb", kind, &[]);
        spec.memory_limit_bytes = Some(32 << 20);
        let o = node.run(&spec);
        assert_outcome(&o, EXIT_OOM, TerminationReason::OomKilled, true);
        assert!(
            o.record.message.contains("memory limit of 33554432 bytes"),
            "{:?}",
            o.record
        );
        assert!(o.log.contains("allocated 16 MiB"), "{}", o.log);
        assert!(!o.log.contains("allocated 32 MiB"), "{}", o.log);
    }
}

#[test]
fn deep_recursion_is_a_stack_overflow_error() {
    for (kind, node) in kinds_and_nodes() {
        let mut spec = node.spec("deep-recursion", kind, &[]);
        spec.max_wasm_stack_bytes = Some(256 * 1024);
        let o = node.run(&spec);
        assert_outcome(&o, EXIT_TRAP, TerminationReason::Error, true);
        assert!(
            o.record.message.contains("stack overflow"),
            "{:?}",
            o.record
        );
        assert!(o.record.message.contains("262144 bytes"), "{:?}", o.record);
    }
}

#[test]
fn trap_is_an_error_naming_the_trap() {
    for (kind, node) in kinds_and_nodes() {
        let o = node.run(&node.spec("trap", kind, &[]));
        assert_outcome(&o, EXIT_TRAP, TerminationReason::Error, true);
        assert!(o.record.message.contains("unreachable"), "{:?}", o.record);
        assert!(o.log.contains("about to trap"), "{}", o.log);
    }
}

#[test]
fn output_flood_is_bounded_by_rotation() {
    let node = Node::new();
    let rotation = LogRotation {
        max_bytes: 256 * 1024,
        max_files: 3,
    };
    // 200k lines of 100 bytes: about 20 MB of output (34 MB as records).
    let mut spec = node.spec("output-flood", ModuleKind::Module, &["200000", "100"]);
    spec.log_rotation = rotation;
    let o = node.run(&spec);
    assert_outcome(&o, 0, TerminationReason::Completed, true);
    let files = log_files(&spec.log_path);
    assert_eq!(files.len(), 3, "{files:?}");
    let total: u64 = files
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len())
        .sum();
    assert!(total <= 3 * 256 * 1024, "{total} bytes on disk");
    // The newest output is kept, in order.
    let last: Vec<&str> = o.log.lines().rev().take(2).collect();
    assert!(last[0].starts_with("00000000000000199999 "), "{last:?}");
    assert!(last[1].starts_with("00000000000000199998 "), "{last:?}");
    // A long line is split into partial records but read back whole.
    let node = Node::new();
    let o = node.run(&node.spec("output-flood", ModuleKind::Module, &["1", "40000"]));
    assert_outcome(&o, 0, TerminationReason::Completed, true);
    assert_eq!(o.log.len(), 40001, "one 40000-byte line plus newline");
    let raw = std::fs::read_to_string(node.path("app.log")).unwrap();
    let tags: Vec<&str> = raw.lines().map(|l| l.split(' ').nth(2).unwrap()).collect();
    assert_eq!(tags, ["P", "P", "F"]);
}

#[test]
fn missing_import_is_a_start_error_naming_it() {
    for node in nodes() {
        let o = node.run(&node.spec("missing-import", ModuleKind::Module, &[]));
        assert_outcome(&o, EXIT_START_ERROR, TerminationReason::StartError, false);
        assert!(
            o.record.message.contains("no_such_function"),
            "{:?}",
            o.record
        );
        assert!(o.record.message.contains("wasmk:test"), "{:?}", o.record);
        assert_eq!(o.log, "");
    }
}

#[test]
fn bad_artifacts_and_volumes_are_start_errors() {
    let node = Node::new();
    let mut spec = node.spec("hello", ModuleKind::Module, &[]);
    // Truncated artifact.
    let bytes = std::fs::read(&spec.artifact_path).unwrap();
    let broken = node.path("broken.cwasm");
    std::fs::write(&broken, &bytes[..bytes.len() / 2]).unwrap();
    spec.artifact_path = broken;
    let o = node.run(&spec);
    assert_outcome(&o, EXIT_START_ERROR, TerminationReason::StartError, false);
    assert!(o.record.message.contains("broken.cwasm"), "{:?}", o.record);

    // A raw .wasm is never compiled by the sandbox.
    spec.artifact_path = sample("hello", ModuleKind::Module);
    let o = node.run(&spec);
    assert_outcome(&o, EXIT_START_ERROR, TerminationReason::StartError, false);

    // A missing volume directory.
    let mut spec = node.spec("hello", ModuleKind::Module, &[]);
    spec.preopens = vec![Preopen {
        host_path: node.path("no-such-dir"),
        guest_path: "/data".into(),
        read_only: true,
    }];
    let o = node.run(&spec);
    assert_outcome(&o, EXIT_START_ERROR, TerminationReason::StartError, false);
    assert!(o.record.message.contains("no-such-dir"), "{:?}", o.record);
}

#[test]
fn cache_rejects_truncated_and_reuses_compiled() {
    let node = Node::new();
    let wasm = sample("hello", ModuleKind::Component);
    let bytes = std::fs::read(&wasm).unwrap();
    let truncated = node.path("truncated.wasm");
    std::fs::write(&truncated, &bytes[..bytes.len() - 100]).unwrap();
    let err = node
        .cache
        .ensure_compiled(&node.engine, &digest_of(&truncated), &truncated)
        .unwrap_err();
    assert!(matches!(err, CacheError::Compile { .. }), "{err}");
    assert!(err.to_string().contains("truncated.wasm"), "{err}");

    let first = node
        .cache
        .ensure_compiled(&node.engine, &digest_of(&wasm), &wasm)
        .unwrap();
    assert!(first.compiled);
    let mtime = std::fs::metadata(&first.path).unwrap().modified().unwrap();
    // A second engine (as after an agent restart) reuses the artifact.
    let engine = new_engine(EngineRole::Compiler, None).unwrap();
    let cache = ModuleCache::new(node.cache.dir()).unwrap();
    let second = cache
        .ensure_compiled(&engine, &digest_of(&wasm), &wasm)
        .unwrap();
    assert!(!second.compiled);
    assert_eq!(second.path, first.path);
    assert_eq!(
        std::fs::metadata(&second.path).unwrap().modified().unwrap(),
        mtime
    );
}

#[test]
fn unreadable_spec_exits_with_start_error() {
    let node = Node::new();
    let status = std::process::Command::new(exe())
        .args(["sandbox", "--spec"])
        .arg(node.path("absent.json"))
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(EXIT_START_ERROR));
}

/// Reads `Pss:` (KiB) of a process.
fn pss_kib(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    text.lines()
        .find(|l| l.starts_with("Pss:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Starts `count` idle `worker` sandboxes, prints their mean PSS, stops them.
fn measure_idle_pss(count: usize, exe: &Path) -> f64 {
    let node = Node::new();
    let base = node.spec("worker", ModuleKind::Module, &[]);
    let mut running = Vec::new();
    for i in 0..count {
        let dir = node.path(&format!("pod-{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut spec = base.clone();
        spec.log_path = dir.join("app.log");
        spec.termination_record_path = dir.join("termination.json");
        let spec_path = dir.join("spec.json");
        spec.write(&spec_path).unwrap();
        let sandbox = spawn_sandbox(exe, &spec_path, None).unwrap();
        running.push((sandbox, spec));
    }
    let mut running: Vec<_> = running
        .into_iter()
        .map(|(sandbox, spec)| {
            let SandboxChild { child, start } = sandbox;
            assert_eq!(start.wait_blocking().unwrap(), StartStatus::Started);
            wait_for_log(&spec.log_path, "heartbeat 1");
            (child, spec)
        })
        .collect();
    let pss: Vec<u64> = running
        .iter()
        .filter_map(|(child, _)| pss_kib(child.id()))
        .collect();
    for (child, _) in &running {
        // SAFETY: kill(2) on our own children.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    }
    for (child, spec) in &mut running {
        let deadline = Instant::now() + GRACE;
        loop {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("worker did not stop");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let record = TerminationRecord::read(&spec.termination_record_path).unwrap();
        assert_eq!(record.reason, TerminationReason::Terminated);
    }
    assert_eq!(pss.len(), count, "PSS readable for every sandbox");
    let mean = pss.iter().sum::<u64>() as f64 / count as f64;
    eprintln!(
        "idle worker sandboxes: {count}, mean PSS {mean:.0} KiB (min {}, max {}) [{}]",
        pss.iter().min().unwrap(),
        pss.iter().max().unwrap(),
        exe.display()
    );
    mean
}

#[test]
fn idle_workers_report_pss() {
    let mean = measure_idle_pss(8, &exe());
    assert!(mean > 0.0);
}

/// The density measurement for the report: `WASMK_PSS_SANDBOXES=1000
/// WASMK_PSS_EXE=target/release/wasmk cargo test --test sandbox -- --ignored
/// --nocapture idle_pss_at_scale`.
#[test]
#[ignore]
fn idle_pss_at_scale() {
    let count = std::env::var("WASMK_PSS_SANDBOXES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let exe = std::env::var_os("WASMK_PSS_EXE")
        .map(PathBuf::from)
        .unwrap_or_else(exe);
    measure_idle_pss(count, &exe);
}

/// Field `n` (1-based, as in proc(5)) of `/proc/PID/stat`.
fn stat_field(pid: u32, n: usize) -> Option<i64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    wasmk::sandbox::spawn::stat_field(&stat, n)?.parse().ok()
}

fn threads(pid: u32) -> Option<i64> {
    stat_field(pid, 20)
}

#[test]
fn launched_sandboxes_join_first_and_are_our_children() {
    let node = Node::new();
    let spec = node.spec("worker", ModuleKind::Module, &[]);
    let spec_path = node.path("spec.json");
    spec.write(&spec_path).unwrap();
    // Stand-ins for cgroup join files: the sandbox writes "0" to each.
    let joins: Vec<std::fs::File> = ["cpu", "memory"]
        .iter()
        .map(|h| std::fs::File::create(node.path(h)).unwrap())
        .collect();
    let fds: Vec<_> = joins.iter().map(std::os::fd::AsFd::as_fd).collect();
    let l = launcher().launch(&spec, &fds).unwrap();
    drop(joins);
    for h in ["cpu", "memory"] {
        assert_eq!(std::fs::read_to_string(node.path(h)).unwrap(), "0", "{h}");
    }
    let mut running = Running::new(l.pid, l.start, &spec);
    let started = running.wait_started();
    assert_eq!(started, StartStatus::Started);
    wait_for_log(&spec.log_path, "heartbeat 0");
    // Our child, leading its own session, one thread; the launcher too is
    // single-threaded.
    assert_eq!(stat_field(l.pid, 4), Some(i64::from(std::process::id())));
    assert_eq!(stat_field(l.pid, 6), Some(i64::from(l.pid)), "session");
    assert_eq!(threads(l.pid), Some(1));
    let launcher_pid = launcher().pid().unwrap();
    assert_eq!(threads(launcher_pid), Some(1));
    assert_ne!(launcher_pid, l.pid);
    running.signal(libc::SIGTERM);
    let o = running.finish(started, GRACE);
    assert_outcome(&o, EXIT_TERMINATED, TerminationReason::Terminated, true);
}

#[test]
fn a_failed_join_stops_the_launch_before_the_module() {
    let node = Node::new();
    let spec = node.spec("hello", ModuleKind::Module, &[]);
    let spec_path = node.path("spec.json");
    spec.write(&spec_path).unwrap();
    std::fs::write(node.path("tasks"), "").unwrap();
    // Read-only: the sandbox's write fails as a refused join would.
    let ro = std::fs::File::open(node.path("tasks")).unwrap();
    let err = launcher()
        .launch(&spec, &[std::os::fd::AsFd::as_fd(&ro)])
        .unwrap_err();
    assert!(
        matches!(err, wasmk::sandbox::LaunchError::Failed(_)),
        "{err}"
    );
    assert!(!spec.log_path.exists(), "the module must not have run");
    assert!(!spec.termination_record_path.exists());
    // The launcher goes on serving.
    let o = node.run_launched(&spec);
    assert_outcome(&o, 0, TerminationReason::Completed, true);
}

#[test]
fn a_killed_launcher_is_replaced() {
    let node = Node::new();
    let spec = node.spec("hello", ModuleKind::Module, &[]);
    let own = Launcher::new(&exe()).unwrap();
    let spec_path = node.path("spec.json");
    spec.write(&spec_path).unwrap();
    let first = own.launch(&spec, &[]).unwrap();
    let old = own.pid().unwrap();
    Running::new(first.pid, first.start, &spec).finish(StartStatus::Started, RUN_BOUND);
    // SAFETY: kill(2) of the launcher, a child of this process.
    unsafe { libc::kill(old as i32, libc::SIGKILL) };
    // Not restarted more than once a second.
    std::thread::sleep(Duration::from_millis(1100));
    let second = own.launch(&spec, &[]).unwrap();
    assert_ne!(own.pid(), Some(old));
    let o = Running::new(second.pid, second.start, &spec).finish(StartStatus::Started, RUN_BOUND);
    assert_eq!(o.record.reason, TerminationReason::Completed);
    // Dropping the handle ends the launcher.
    let pid = own.pid().unwrap();
    drop(own);
    assert!(stat_field(pid, 4).is_none(), "launcher {pid} still there");
}

#[test]
fn large_specs_go_through_the_launcher_and_huge_ones_are_refused() {
    let node = Node::new();
    let mut spec = node.spec("hello", ModuleKind::Module, &[]);
    // About 100 KiB of environment: still one message on the socket.
    spec.env = (0..100)
        .map(|i| EnvVar {
            name: format!("BIG_{i}"),
            value: "x".repeat(1000),
        })
        .collect();
    let o = node.run_launched(&spec);
    assert_outcome(&o, 0, TerminationReason::Completed, true);
    assert!(o.log.contains(&format!("env BIG_99={}", "x".repeat(1000))));
    // Past the launcher's limit the caller is told to use exec instead.
    spec.env.push(EnvVar {
        name: "HUGE".into(),
        value: "y".repeat(200 * 1024),
    });
    match launcher().launch(&spec, &[]) {
        Err(wasmk::sandbox::LaunchError::Unavailable(why)) => {
            assert!(why.contains("too large"), "{why}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn a_pool_of_launchers_starts_sandboxes_side_by_side() {
    let node = Node::new();
    let pool = Launchers::new(&exe(), 2).unwrap();
    let specs: Vec<SandboxSpec> = (0..6)
        .map(|i| {
            let mut s = node.spec("hello", ModuleKind::Module, &[&format!("run-{i}")]);
            s.log_path = node.path(&format!("{i}.log"));
            s.termination_record_path = node.path(&format!("{i}.json"));
            s
        })
        .collect();
    let outcomes: Vec<Outcome> = std::thread::scope(|scope| {
        let handles: Vec<_> = specs
            .iter()
            .map(|spec| {
                let pool = &pool;
                scope.spawn(move || {
                    let l = pool.launch(spec, &[]).unwrap();
                    Running::new(l.pid, l.start, spec).finish(StartStatus::Started, RUN_BOUND)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, o) in outcomes.iter().enumerate() {
        assert_eq!(o.record.reason, TerminationReason::Completed, "{i}");
        assert!(o.log.contains(&format!("run-{i}")), "{i}: {}", o.log);
    }
    let pids = pool.pids();
    assert!(!pids.is_empty() && pids.len() <= 2, "{pids:?}");
    // Dropping the pool ends its launchers.
    drop(pool);
    for pid in pids {
        assert!(stat_field(pid, 4).is_none(), "launcher {pid} still there");
    }
}

#[test]
fn a_pool_passes_a_start_over_a_dead_launcher() {
    let node = Node::new();
    let pool = Launchers::new(&exe(), 2).unwrap();
    let spec = node.spec("hello", ModuleKind::Module, &[]);
    let first = pool.launch(&spec, &[]).unwrap();
    let dead = pool.pids();
    assert_eq!(dead.len(), 1, "launchers start on first use: {dead:?}");
    // SAFETY: kill(2) of a launcher, a child of this process.
    unsafe { libc::kill(dead[0] as i32, libc::SIGKILL) };
    let o = Running::new(first.pid, first.start, &spec).finish(StartStatus::Started, RUN_BOUND);
    assert_eq!(o.record.reason, TerminationReason::Completed);
    // The dead one is not restarted within a second of its start; the
    // other takes the start.
    let second = pool.launch(&spec, &[]).unwrap();
    let o = Running::new(second.pid, second.start, &spec).finish(StartStatus::Started, RUN_BOUND);
    assert_eq!(o.record.reason, TerminationReason::Completed);
    assert!(!pool.pids().contains(&dead[0]), "{:?}", pool.pids());
}
