//! The manager against this machine's real cgroups, with real processes.
//!
//! These need root and a writable cgroupfs. Where that is missing they fail
//! loudly, so a CI box without cgroups cannot pass them by skipping; set
//! `WASMK_SKIP_CGROUP_TESTS=1` to skip them on purpose. Each test works
//! under its own root (`wasmk-test-<random>`) that a drop guard removes,
//! killing whatever is left, even when the test fails.

use std::fs;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::*;

fn skip() -> bool {
    if std::env::var("WASMK_SKIP_CGROUP_TESTS").as_deref() == Ok("1") {
        eprintln!("WASMK_SKIP_CGROUP_TESTS=1: skipping a real-cgroup test");
        return true;
    }
    false
}

const HINT: &str = "real-cgroup tests need root and a writable cgroupfs; \
                    set WASMK_SKIP_CGROUP_TESTS=1 to skip them";

/// A unique root cgroup for one test, removed (with its processes) on drop.
struct TestRoot {
    mgr: CgroupManager,
    root: CgroupPath,
}

impl TestRoot {
    fn new(mgr: CgroupManager) -> TestRoot {
        let name = format!("wasmk-test-{:016x}", rand::random::<u64>());
        let root = CgroupPath::new(&name).unwrap();
        // The probe: creating the root is the first write to the hierarchy.
        let guard = TestRoot { mgr, root };
        if let Err(e) = guard.mgr.create_root(&guard.root) {
            panic!("cannot create cgroup {name}: {e}; {HINT}");
        }
        guard
    }

    fn detect() -> TestRoot {
        let mgr = CgroupManager::detect()
            .unwrap_or_else(|e| panic!("cannot detect this host's cgroups: {e}; {HINT}"));
        TestRoot::new(mgr)
    }

    fn pod(&self) -> CgroupPath {
        CgroupPath::pod(&self.root, &uuid::Uuid::new_v4().to_string()).unwrap()
    }
}

impl Drop for TestRoot {
    fn drop(&mut self) {
        if let Err(e) = self.mgr.remove(&self.root) {
            eprintln!("cleanup of cgroup {} failed: {e}", self.root);
        }
    }
}

/// A child process killed and reaped on drop.
struct ChildGuard(Child);

impl ChildGuard {
    fn pid(&self) -> u32 {
        self.0.id()
    }

    /// Waits at most `limit` for the child to exit.
    fn wait(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "child {} did not exit",
                self.pid()
            );
            thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Spawns `sh -c script` that joins `path` between fork and exec.
fn spawn_in(mgr: &CgroupManager, path: &CgroupPath, script: &str) -> ChildGuard {
    let join = mgr.join(path).unwrap();
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: join_self only calls getpid and write on open descriptors,
    // which is allowed between fork and exec.
    unsafe {
        cmd.pre_exec(move || join.join_self());
    }
    ChildGuard(cmd.spawn().unwrap())
}

/// The content of `file` in whichever hierarchy of `path` has it.
fn read_in(mgr: &CgroupManager, path: &CgroupPath, file: &str) -> String {
    for dir in mgr.dirs(path) {
        if let Ok(text) = fs::read_to_string(dir.join(file)) {
            return text.trim().to_string();
        }
    }
    panic!("no {file} for cgroup {path}");
}

/// Expected kernel values for `limits`, per version.
fn expected_files(mgr: &CgroupManager, limits: &Limits) -> Vec<(&'static str, String)> {
    let quota = limits.cpu_quota_us().unwrap();
    let memory = limits.memory_bytes.unwrap();
    let pids = limits.pids_max.unwrap();
    let shares = limits.cpu_shares.unwrap();
    let mut files = Vec::new();
    match mgr.version() {
        CgroupVersion::V1 => {
            files.push(("cpu.cfs_period_us", CFS_PERIOD_US.to_string()));
            files.push(("cpu.cfs_quota_us", quota.to_string()));
            files.push(("cpu.shares", shares.to_string()));
            files.push(("memory.limit_in_bytes", memory.to_string()));
            files.push(("pids.max", pids.to_string()));
        }
        CgroupVersion::V2 => {
            files.push(("cpu.max", format!("{quota} {CFS_PERIOD_US}")));
            files.push(("cpu.weight", shares_to_weight(shares).to_string()));
            files.push(("memory.max", memory.to_string()));
            files.push(("pids.max", pids.to_string()));
        }
    }
    files
}

fn full_controllers(mgr: &CgroupManager) -> bool {
    let have = mgr.controllers();
    [Controller::Cpu, Controller::Memory, Controller::Pids]
        .iter()
        .all(|c| have.contains(c))
}

#[test]
fn real_lifecycle_limits_join_stats_kill_remove() {
    if skip() {
        return;
    }
    let t = TestRoot::detect();
    let mgr = &t.mgr;
    assert!(
        full_controllers(mgr),
        "this host lacks cpu, memory or pids: {:?}",
        mgr.controllers()
    );
    let pod = t.pod();
    let c1 = pod.child("app").unwrap();
    mgr.create(
        &pod,
        &Limits::from_resources(Some(1000), Some(1000), Some(256 << 20), Some(64)),
    )
    .unwrap();
    let limits = Limits::from_resources(Some(250), Some(500), Some(64 << 20), Some(16));
    assert!(
        mgr.create(&c1, &limits).unwrap(),
        "a new cgroup is reported new"
    );
    for (file, want) in expected_files(mgr, &limits) {
        assert_eq!(read_in(mgr, &c1, file), want, "{file}");
    }
    assert!(!mgr.create(&c1, &limits).unwrap(), "an existing one is not");
    if mgr.version() == CgroupVersion::V1 {
        // Created under a root the manager created: swap is off by
        // inheritance, without a write of its own.
        assert_eq!(read_in(mgr, &c1, "memory.swappiness"), "0");
    }

    let mut child = spawn_in(mgr, &c1, "exec sleep 30");
    let pid = child.pid();
    assert_eq!(mgr.pids(&c1).unwrap(), vec![pid]);
    for procs in mgr.procs_files(&c1) {
        let listed = fs::read_to_string(&procs).unwrap();
        assert_eq!(listed.trim(), pid.to_string(), "{}", procs.display());
    }
    // The kernel's own view of the child's cgroups agrees.
    let own = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let suffix = format!(":/{}", c1.as_str());
    let joined = own.lines().filter(|l| l.ends_with(&suffix)).count();
    assert_eq!(joined, mgr.procs_files(&c1).len(), "{own}");

    let stats = mgr.stats(&c1).unwrap();
    assert_eq!(stats.pids_current, Some(1));
    assert!(stats.cpu_usage_nanos.is_some());
    assert!(stats.memory_bytes.is_some());
    assert_eq!(stats.memory_limit, Some(64 << 20));
    assert_eq!(stats.oom_kills, 0);
    // Pod totals include the container.
    assert_eq!(mgr.stats(&pod).unwrap().pids_current, Some(1));
    assert_eq!(mgr.list_pods(&t.root).unwrap().len(), 1);

    mgr.kill_all(&pod).unwrap();
    let status = child.wait(Duration::from_secs(10));
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    assert!(mgr.pids(&c1).unwrap().is_empty());

    mgr.remove(&pod).unwrap();
    assert!(!mgr.exists(&pod));
    assert!(!mgr.exists(&c1));
    mgr.remove(&pod).unwrap();
    assert!(mgr.list_pods(&t.root).unwrap().is_empty());
}

#[test]
fn real_oom_kill_is_counted() {
    if skip() {
        return;
    }
    let t = TestRoot::detect();
    let mgr = &t.mgr;
    let c1 = t.pod().child("hog").unwrap();
    let limits = Limits {
        memory_bytes: Some(16 << 20),
        ..Limits::default()
    };
    mgr.create(&c1, &limits).unwrap();
    // tail must hold the whole newline-free input: far beyond 16 MiB.
    let mut child = spawn_in(mgr, &c1, "head -c 200000000 /dev/zero | tail");
    let status = child.wait(Duration::from_secs(60));
    assert!(!status.success(), "the hog survived: {status:?}");
    let stats = mgr.stats(&c1).unwrap();
    assert!(stats.oom_kills >= 1, "{stats:?}");
    assert_eq!(stats.memory_limit, Some(16 << 20));
}

#[test]
fn real_limit_rejected_by_kernel() {
    if skip() {
        return;
    }
    let t = TestRoot::detect();
    let mgr = &t.mgr;
    let pod = t.pod();
    // The kernel caps pids.max at PID_MAX_LIMIT (4194304).
    let limits = Limits {
        pids_max: Some(10_000_000),
        ..Limits::default()
    };
    match mgr.create(&pod, &limits) {
        Err(CgroupError::LimitRejected {
            path,
            value,
            source,
        }) => {
            assert!(path.ends_with("pids.max"), "{}", path.display());
            assert_eq!(value, "10000000");
            assert_eq!(source.raw_os_error(), Some(libc::EINVAL));
        }
        Err(CgroupError::ControllerUnavailable { controller, .. })
            if !mgr.controllers().contains(&Controller::Pids) =>
        {
            assert_eq!(controller, Controller::Pids);
        }
        other => panic!("got {other:?}"),
    }
}

#[test]
fn real_update_limits_in_place() {
    if skip() {
        return;
    }
    let t = TestRoot::detect();
    let mgr = &t.mgr;
    let pod = t.pod();
    let memory_file = match mgr.version() {
        CgroupVersion::V1 => "memory.limit_in_bytes",
        CgroupVersion::V2 => "memory.max",
    };
    // Grow and shrink: on v1 the memsw limit must move in the right order.
    for bytes in [64u64 << 20, 128 << 20, 32 << 20] {
        let limits = Limits {
            memory_bytes: Some(bytes),
            pids_max: Some(bytes >> 20),
            ..Limits::default()
        };
        mgr.create(&pod, &limits).unwrap();
        assert_eq!(read_in(mgr, &pod, memory_file), bytes.to_string());
        assert_eq!(read_in(mgr, &pod, "pids.max"), (bytes >> 20).to_string());
        if mgr.version() == CgroupVersion::V1
            && mgr
                .dirs(&pod)
                .iter()
                .any(|d| d.join("memory.memsw.limit_in_bytes").exists())
        {
            assert_eq!(
                read_in(mgr, &pod, "memory.memsw.limit_in_bytes"),
                bytes.to_string()
            );
        }
    }
    mgr.create(&pod, &Limits::default()).unwrap();
    assert_eq!(mgr.stats(&pod).unwrap().memory_limit, None);
    assert_eq!(read_in(mgr, &pod, "pids.max"), "max");
}

#[test]
fn real_kill_all_reaches_every_container_and_forked_child() {
    if skip() {
        return;
    }
    let t = TestRoot::detect();
    let mgr = &t.mgr;
    let pod = t.pod();
    let (a, b) = (pod.child("a").unwrap(), pod.child("b").unwrap());
    mgr.create(&a, &Limits::default()).unwrap();
    mgr.create(&b, &Limits::default()).unwrap();
    // A shell that forks two more processes.
    let mut forking = spawn_in(mgr, &a, "sleep 30 & sleep 30 & wait");
    // A process moved in after it started.
    let mut moved = ChildGuard(
        Command::new("sleep")
            .arg("30")
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    );
    mgr.add_pid(&b, moved.pid()).unwrap();
    assert_eq!(mgr.pids(&b).unwrap(), vec![moved.pid()]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while mgr.pids(&a).unwrap().len() < 3 {
        assert!(Instant::now() < deadline, "the shell did not fork");
        thread::sleep(Duration::from_millis(5));
    }

    // remove kills what is left, then deletes the tree.
    mgr.remove(&pod).unwrap();
    assert_eq!(
        forking.wait(Duration::from_secs(10)).signal(),
        Some(libc::SIGKILL)
    );
    assert_eq!(
        moved.wait(Duration::from_secs(10)).signal(),
        Some(libc::SIGKILL)
    );
    assert!(!mgr.exists(&pod));
}

#[test]
fn real_freeze_and_signal_fallback() {
    if skip() {
        return;
    }
    let t = TestRoot::detect();
    let mgr = &t.mgr;
    let c1 = t.pod().child("app").unwrap();
    mgr.create(&c1, &Limits::default()).unwrap();
    let mut child = spawn_in(mgr, &c1, "sleep 30 & exec sleep 30");
    mgr.kill_by_signal(&c1, Instant::now()).unwrap();
    assert_eq!(
        child.wait(Duration::from_secs(10)).signal(),
        Some(libc::SIGKILL)
    );
    assert!(mgr.pids(&c1).unwrap().is_empty());
    // Thawed again: a new process runs to completion.
    let mut next = spawn_in(mgr, &c1, "exit 3");
    assert_eq!(next.wait(Duration::from_secs(10)).code(), Some(3));
}

#[test]
fn real_refuses_to_kill_its_own_process() {
    if skip() {
        return;
    }
    let t = TestRoot::detect();
    let mgr = &t.mgr;
    let pids = vec![std::process::id()];
    assert!(matches!(
        mgr.refuse_self(&t.root, &pids),
        Err(CgroupError::HoldsSelf { .. })
    ));
}

/// On a hybrid host the unused unified mount is a v2 hierarchy without
/// controllers: enough to run the v2 path for processes, `cgroup.kill` and
/// `cgroup.freeze` for real.
#[test]
fn real_v2_on_the_unified_mount_of_a_hybrid_host() {
    if skip() {
        return;
    }
    let text = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mounts = parse_mountinfo(&text).unwrap();
    let Some(unified) = mounts.unified.clone() else {
        eprintln!("no cgroup2 mount on this host");
        return;
    };
    if matches!(mounts.layout().unwrap(), Layout::V2 { .. }) {
        // A pure v2 host: the other tests already ran v2.
        return;
    }
    let mgr = CgroupManager::from_layout(Layout::V2 { mount: unified }).unwrap();
    let t = TestRoot::new(mgr);
    let mgr = &t.mgr;
    assert_eq!(mgr.version(), CgroupVersion::V2);
    let c1 = t.pod().child("app").unwrap();
    mgr.create(&c1, &Limits::default()).unwrap();
    if !mgr.controllers().contains(&Controller::Memory) {
        let limits = Limits {
            memory_bytes: Some(1 << 20),
            ..Limits::default()
        };
        assert!(matches!(
            mgr.create(&c1, &limits),
            Err(CgroupError::ControllerUnavailable {
                controller: Controller::Memory,
                ..
            })
        ));
    }

    let mut child = spawn_in(mgr, &c1, "sleep 30 & exec sleep 30");
    assert!(mgr.pids(&c1).unwrap().contains(&child.pid()));
    assert!(mgr.stats(&c1).unwrap().cpu_usage_nanos.is_some());
    mgr.kill_all(&c1).unwrap();
    assert_eq!(
        child.wait(Duration::from_secs(10)).signal(),
        Some(libc::SIGKILL)
    );

    let mut child = spawn_in(mgr, &c1, "exec sleep 30");
    mgr.kill_by_signal(&c1, Instant::now()).unwrap();
    assert_eq!(
        child.wait(Duration::from_secs(10)).signal(),
        Some(libc::SIGKILL)
    );
    mgr.remove(&c1).unwrap();
    assert!(!mgr.exists(&c1));
}
