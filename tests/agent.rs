//! The node agent in real `wasmk up` processes (issue 3): pods of pushed
//! modules run in their own cgroups with their spec's limits, their logs
//! reach `kubectl logs`, `kubectl delete pod` stops them, hostile modules
//! are contained while a neighbour keeps running, restart policies and
//! crash-loop backoff behave as in Kubernetes, an agent killed with -9
//! re-adopts its pods, and `kubectl top` prints usage.
//!
//! Every cluster gets its own cgroup root (`--cgroup-root`), removed with
//! everything in it when the test ends, so sandboxes never outlive a test.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{Cluster, eventually};
use wasmk::cgroup::{CgroupManager, CgroupPath};
use wasmk::sandbox::ModuleKind;
use wasmk::sandbox::testing::sample;

/// Upper bound for anything a test waits for.
const WAIT: Duration = Duration::from_secs(90);
const NODE: &str = "agent-test";

/// A `wasmk up` whose pods live under their own cgroup root, which is
/// emptied and removed on drop (after the cluster process is gone).
struct Node {
    cluster: Cluster,
    cgroup_root: String,
    /// A `wasmk agent` process beside a `wasmk up --no-agent`, if any.
    agent: Option<std::process::Child>,
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut a) = self.agent.take() {
            let _ = a.kill();
            let _ = a.wait();
        }
        self.cluster.kill9();
        common::remove_cgroup_root(&self.cgroup_root);
    }
}

fn cgroup_root() -> String {
    common::cgroup_root("test")
}

impl Node {
    fn up(extra: &[&str]) -> Node {
        let root = cgroup_root();
        let mut args = vec![
            "--node-name",
            NODE,
            "--cgroup-root",
            root.as_str(),
            "--stats-interval",
            "1s",
            "--lease-interval",
            "2s",
        ];
        args.extend_from_slice(extra);
        let cluster = Cluster::up_with(&args);
        let node = Node {
            cluster,
            cgroup_root: root,
            agent: None,
        };
        node.wait_ready();
        node
    }

    /// A master without an agent, and a `wasmk agent` process joining it
    /// with `--server`, `--token-file` and `--ca-file`.
    fn standalone() -> Node {
        let root = cgroup_root();
        let cluster = Cluster::up_with(&["--no-agent"]);
        let token = cluster.write_file("agent-token", &cluster.token());
        let agent = std::process::Command::new(common::wasmk_bin())
            .arg("agent")
            .args(["--server", &cluster.url, "--name", NODE])
            .arg("--token-file")
            .arg(&token)
            .arg("--ca-file")
            .arg(cluster.data_dir.join("pki/ca.crt"))
            .arg("--data-dir")
            .arg(cluster.home.path().join("agent"))
            .args(["--listen", "127.0.0.1:0", "--cgroup-root", &root])
            .args(["--stats-interval", "1s", "--lease-interval", "2s"])
            .env("HOME", cluster.home.path())
            .env("WASMK_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("spawn wasmk agent");
        let node = Node {
            cluster,
            cgroup_root: root,
            agent: Some(agent),
        };
        node.wait_ready();
        node
    }

    fn node_field(&self, path: &str) -> String {
        let out =
            self.cluster
                .kubectl(&["get", "node", NODE, "-o", &format!("jsonpath={{{path}}}")]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn wait_ready(&self) {
        let ready = eventually(WAIT, || {
            let out = self.cluster.kubectl(&[
                "get",
                "node",
                NODE,
                "-o",
                "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
            ]);
            (String::from_utf8_lossy(&out.stdout) == "True").then_some(())
        });
        assert!(ready.is_some(), "node {NODE} never became Ready");
    }

    fn push(&self, name: &str) -> String {
        self.push_as(name, ModuleKind::Module, &format!("{name}:v1"))
    }

    /// Pushes a sample as `image`; returns its digest.
    fn push_as(&self, name: &str, kind: ModuleKind, image: &str) -> String {
        let file = sample(name, kind);
        let out = self
            .cluster
            .wasmk(&["push", &file.display().to_string(), "--name", image]);
        assert!(
            out.status.success(),
            "push {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        text.split_whitespace()
            .find(|w| w.starts_with("sha256:"))
            .map(str::to_string)
            .unwrap_or_else(|| panic!("no digest in {text:?}"))
    }

    fn apply(&self, manifest: &str) {
        let path = self
            .cluster
            .write_file(&format!("{}.yaml", uuid::Uuid::new_v4()), manifest);
        self.cluster
            .kubectl_ok(&["apply", "-f", &path.display().to_string()]);
    }

    /// A one-container pod bound to the node.
    fn pod(&self, name: &str, image: &str, policy: &str, extra_spec: &str, extra_container: &str) {
        self.apply(&format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  nodeName: {NODE}\n  restartPolicy: {policy}\n{extra_spec}  containers:\n  - name: app\n    image: {image}\n    resources:\n      limits: {{cpu: 250m, memory: 64Mi}}\n{extra_container}"
        ));
    }

    fn jsonpath(&self, pod: &str, path: &str) -> String {
        let out = self
            .cluster
            .kubectl(&["get", "pod", pod, "-o", &format!("jsonpath={{{path}}}")]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until `path` of the pod satisfies `ok`; returns its value.
    fn wait_for(&self, pod: &str, path: &str, ok: impl Fn(&str) -> bool) -> String {
        let mut last = String::new();
        let got = eventually(WAIT, || {
            last = self.jsonpath(pod, path);
            ok(&last).then(|| last.clone())
        });
        match got {
            Some(v) => v,
            None => panic!(
                "pod {pod}: {path} never matched (last {last:?}); pod:\n{}",
                self.cluster.kubectl_ok(&["get", "pod", pod, "-o", "yaml"])
            ),
        }
    }

    fn phase(&self, pod: &str, want: &str) {
        self.wait_for(pod, ".status.phase", |p| p == want);
    }

    fn waiting_reason(&self, pod: &str, want: &str) -> String {
        self.wait_for(
            pod,
            ".status.containerStatuses[0].state.waiting.reason",
            |r| r == want,
        );
        self.jsonpath(pod, ".status.containerStatuses[0].state.waiting.message")
    }

    fn terminated(&self, pod: &str, reason: &str) -> (String, String) {
        self.wait_for(
            pod,
            ".status.containerStatuses[0].state.terminated.reason",
            |r| r == reason,
        );
        (
            self.jsonpath(
                pod,
                ".status.containerStatuses[0].state.terminated.exitCode",
            ),
            self.jsonpath(pod, ".status.containerStatuses[0].state.terminated.message"),
        )
    }

    fn uid(&self, pod: &str) -> String {
        self.jsonpath(pod, ".metadata.uid")
    }

    /// The container's cgroup directory in hierarchy `controller` (v1) or
    /// the unified one (v2).
    fn cgroup_dir(&self, pod: &str, controller: &str) -> PathBuf {
        let mgr = CgroupManager::detect().expect("cgroups");
        let path =
            CgroupPath::new(&format!("{}/pod{}/app", self.cgroup_root, self.uid(pod))).unwrap();
        let dirs = mgr.dirs(&path);
        dirs.iter()
            .find(|d| d.to_string_lossy().contains(&format!("/{controller}/")))
            .or(dirs.first())
            .cloned()
            .expect("a cgroup directory")
    }

    fn sandbox_pids(&self, pod: &str) -> Vec<u32> {
        self.pids_of(&self.uid(pod))
    }

    /// The processes in the `app` container cgroup of pod `uid`.
    fn pids_of(&self, uid: &str) -> Vec<u32> {
        let mgr = CgroupManager::detect().expect("cgroups");
        let path = CgroupPath::new(&format!("{}/pod{uid}/app", self.cgroup_root)).unwrap();
        mgr.pids(&path).unwrap_or_default()
    }

    fn logs(&self, args: &[&str]) -> String {
        let mut a = vec!["logs"];
        a.extend_from_slice(args);
        self.cluster.kubectl_ok(&a)
    }
}

/// Whether `pid` is a live process (an unreaped zombie is not: its parent
/// after the agent died may be slow to reap it).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit(')')
                .next()
                .map(|r| r.trim_start().starts_with('Z'))
        })
        .is_some_and(|zombie| !zombie)
}

fn read(path: PathBuf) -> String {
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .trim()
        .to_string()
}

#[test]
fn pods_run_in_their_cgroups_log_and_stop_on_delete() {
    let n = Node::up(&[]);
    n.push("hello");
    n.push("worker");
    n.push("config-reader");

    // Args, env (literal, downward API, ConfigMap) and a ConfigMap volume.
    n.apply(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  level: debug\n  app.conf: |\n    colour=blue\n",
    );
    n.pod(
        "hello",
        "hello:v1",
        "Never",
        "",
        "    args: [\"one\", \"$(GREETING) there\"]\n    env:\n    - {name: GREETING, value: hi}\n    - name: POD\n      valueFrom: {fieldRef: {fieldPath: metadata.name}}\n    - name: LEVEL\n      valueFrom: {configMapKeyRef: {name: settings, key: level}}\n",
    );
    n.phase("hello", "Succeeded");
    let (code, _) = n.terminated("hello", "Completed");
    assert_eq!(code, "0");
    let out = n.logs(&["hello"]);
    for line in [
        "arg[0]=app",
        "arg[1]=one",
        "arg[2]=hi there",
        "env GREETING=hi",
        "env POD=hello",
        "env LEVEL=debug",
        "hello from wasm",
    ] {
        assert!(
            out.lines().any(|l| l == line),
            "{line:?} missing from:\n{out}"
        );
    }
    assert!(
        n.jsonpath("hello", ".status.containerStatuses[0].imageID")
            .starts_with("sha256:")
    );

    // Components (WASI preview 2) run the same way.
    n.push_as("hello", ModuleKind::Component, "hello-p2:v1");
    n.pod(
        "hello-p2",
        "hello-p2:v1",
        "Never",
        "",
        "    args: [\"component\"]\n",
    );
    n.phase("hello-p2", "Succeeded");
    let out = n.logs(&["hello-p2"]);
    assert!(out.lines().any(|l| l == "arg[1]=component"), "{out}");

    n.pod(
        "reader",
        "config-reader:v1",
        "Never",
        "  volumes:\n  - name: cfg\n    configMap: {name: settings}\n",
        "    args: [\"/etc/app/app.conf\"]\n    volumeMounts:\n    - {name: cfg, mountPath: /etc/app}\n",
    );
    n.phase("reader", "Succeeded");
    assert_eq!(n.logs(&["reader"]).trim(), "colour=blue");

    // A long-running pod: its cgroup exists with the spec's limits.
    n.pod("worker", "worker:v1", "Always", "", "");
    n.phase("worker", "Running");
    n.wait_for("worker", ".status.containerStatuses[0].ready", |r| {
        r == "true"
    });
    let mgr = CgroupManager::detect().unwrap();
    let memory_file = match mgr.version() {
        wasmk::cgroup::CgroupVersion::V1 => "memory.limit_in_bytes",
        wasmk::cgroup::CgroupVersion::V2 => "memory.max",
    };
    assert_eq!(
        read(n.cgroup_dir("worker", "memory").join(memory_file)),
        "67108864"
    );
    let cpu = match mgr.version() {
        wasmk::cgroup::CgroupVersion::V1 => {
            read(n.cgroup_dir("worker", "cpu").join("cpu.cfs_quota_us"))
        }
        wasmk::cgroup::CgroupVersion::V2 => read(n.cgroup_dir("worker", "cpu").join("cpu.max")),
    };
    assert!(cpu.starts_with("25000"), "cpu quota {cpu}");
    assert_eq!(read(n.cgroup_dir("worker", "pids").join("pids.max")), "64");
    assert_eq!(n.sandbox_pids("worker").len(), 1);
    let worker_dir = n.cgroup_dir("worker", "pids");

    // Logs through the API, kubectl and wasmk alike.
    let beat = eventually(WAIT, || {
        let out = n.logs(&["worker", "--tail", "1"]);
        out.starts_with("heartbeat").then_some(out)
    });
    assert!(beat.is_some(), "no heartbeat in the worker's log");
    let out = n.cluster.wasmk(&["logs", "worker", "-c", "app"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("heartbeat 0"));
    let follow = std::process::Command::new(common::kubectl_bin())
        .args(["logs", "-f", "worker"])
        .env("KUBECONFIG", &n.cluster.kubeconfig)
        .env("HOME", n.cluster.home.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let mut follow = follow;
    let _ = follow.kill();
    let out = follow.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines().count() >= 2,
        "kubectl logs -f streamed {text:?}"
    );

    // A container that is not there, or not chosen, gets Kubernetes' errors.
    let out = n.cluster.kubectl(&["logs", "worker", "-c", "nope"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("container nope is not valid for pod worker")
    );
    let out = n.cluster.kubectl(&["logs", "worker", "--previous"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("previous terminated container"));

    // Usage for kubectl top.
    let top = eventually(WAIT, || {
        let out = n.cluster.kubectl(&["top", "pods"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.lines()
            .any(|l| l.starts_with("worker "))
            .then_some(text)
    })
    .expect("kubectl top pods never listed the worker");
    let row: Vec<&str> = top
        .lines()
        .find(|l| l.starts_with("worker "))
        .unwrap()
        .split_whitespace()
        .collect();
    assert!(row[1].ends_with('m') && row[2].ends_with("Mi"), "{top}");
    let top = n.cluster.kubectl_ok(&["top", "nodes"]);
    assert!(top.contains(NODE) && top.contains('%'), "{top}");

    // Deleting returns once the sandbox is stopped and its cgroup gone.
    n.cluster
        .kubectl_ok(&["delete", "pod", "worker", "--timeout=60s"]);
    assert!(
        !worker_dir.exists(),
        "{} still exists",
        worker_dir.display()
    );
}

#[test]
fn hostile_modules_are_contained_beside_a_neighbour() {
    let n = Node::up(&[
        "--container-log-max-size",
        "64Ki",
        "--container-log-max-files",
        "2",
    ]);
    for m in [
        "worker",
        "infinite-loop",
        "memory-bomb",
        "deep-recursion",
        "output-flood",
        "trap",
        "missing-import",
        "hello",
    ] {
        n.push(m);
    }
    n.pod("neighbour", "worker:v1", "Always", "", "");
    n.phase("neighbour", "Running");
    let neighbour_pid = n.sandbox_pids("neighbour");

    n.pod(
        "loop",
        "infinite-loop:v1",
        "Always",
        "  activeDeadlineSeconds: 3\n",
        "",
    );
    n.pod("loop-deleted", "infinite-loop:v1", "Always", "", "");
    n.pod("bomb", "memory-bomb:v1", "Never", "", "");
    n.pod("deep", "deep-recursion:v1", "Never", "", "");
    n.pod("flood", "output-flood:v1", "Never", "", "");
    n.pod("trap", "trap:v1", "Never", "", "");
    n.pod("missing", "missing-import:v1", "Never", "", "");
    n.pod(
        "nokey",
        "hello:v1",
        "Never",
        "",
        "    env:\n    - name: X\n      valueFrom: {configMapKeyRef: {name: absent, key: k}}\n",
    );
    n.pod("nomodule", "no-such-module:v3", "Never", "", "");
    // A blob that is damaged in the store is refused, not run.
    let digest = n.push("fail");
    let blob = n
        .cluster
        .data_dir
        .join("blobs")
        .join(format!("sha256-{}", &digest["sha256:".len()..]))
        .join("000000");
    let mut bytes = std::fs::read(&blob).unwrap();
    bytes[20] ^= 0xff;
    std::fs::write(&blob, bytes).unwrap();
    n.pod("corrupt", "fail:v1", "Never", "", "");

    n.phase("loop", "Failed");
    assert_eq!(n.jsonpath("loop", ".status.reason"), "DeadlineExceeded");
    n.terminated("loop", "DeadlineExceeded");

    n.wait_for("loop-deleted", ".status.phase", |p| p == "Running");
    n.cluster
        .kubectl_ok(&["delete", "pod", "loop-deleted", "--timeout=60s"]);

    let (code, message) = n.terminated("bomb", "OOMKilled");
    assert_eq!(code, "137", "{message}");
    let (code, message) = n.terminated("deep", "Error");
    assert_eq!(code, "134");
    assert!(message.contains("stack overflow"), "{message}");
    let (code, message) = n.terminated("trap", "Error");
    assert_eq!(code, "134");
    assert!(message.contains("unreachable"), "{message}");
    let message = n.waiting_reason("missing", "CreateContainerError");
    assert!(message.contains("no_such_function"), "{message}");
    let message = n.waiting_reason("nokey", "CreateContainerConfigError");
    assert_eq!(message, "configmap \"absent\" not found");
    let message = n.waiting_reason("corrupt", "ErrImagePull");
    assert!(message.contains("corrupt"), "{message}");
    let message = n.waiting_reason("nomodule", "ModuleNotFound");
    assert!(
        message.contains("no-such-module") && message.contains("wasmk push"),
        "{message}"
    );

    // The flood's log stays within its rotation budget while it runs.
    n.phase("flood", "Running");
    std::thread::sleep(Duration::from_secs(3));
    let uid = n.uid("flood");
    let log_dir = n.cluster.data_dir.join("agent/pods");
    // <uid>.app.0.log and its rotated <uid>.app.0.log.1, ...
    let prefix = format!("{uid}.app.0.log");
    let total: u64 = std::fs::read_dir(&log_dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
        .sum();
    assert!(
        total <= 2 * 64 * 1024 + 32 * 1024,
        "flood logs use {total} bytes"
    );
    n.cluster
        .kubectl_ok(&["delete", "pod", "flood", "--timeout=60s"]);

    // A sandbox killed from outside is reported, and restarted by policy.
    n.pod("victim", "worker:v1", "Always", "", "");
    n.phase("victim", "Running");
    let pid = n.sandbox_pids("victim")[0];
    // SAFETY: kill(2) on a sandbox this test started through the cluster.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    n.wait_for("victim", ".status.containerStatuses[0].restartCount", |c| {
        c == "1"
    });
    let message = n.jsonpath(
        "victim",
        ".status.containerStatuses[0].lastState.terminated.message",
    );
    assert!(message.contains("signal 9"), "{message}");
    assert_eq!(
        n.jsonpath(
            "victim",
            ".status.containerStatuses[0].lastState.terminated.exitCode"
        ),
        "137"
    );

    // Through all of it the neighbour ran on, untouched, and the node
    // stayed Ready.
    assert_eq!(n.jsonpath("neighbour", ".status.phase"), "Running");
    assert_eq!(
        n.jsonpath("neighbour", ".status.containerStatuses[0].restartCount"),
        "0"
    );
    assert_eq!(n.sandbox_pids("neighbour"), neighbour_pid);
    n.wait_ready();
}

#[test]
fn restart_policies_and_crash_loop_backoff() {
    let n = Node::up(&[]);
    n.push("fail");
    n.push("hello");
    n.pod("always", "fail:v1", "Always", "", "");
    n.pod("onfailure", "fail:v1", "OnFailure", "", "");
    n.pod("never", "fail:v1", "Never", "", "");
    n.pod("done", "hello:v1", "OnFailure", "", "");

    for p in ["always", "onfailure"] {
        let message = n.waiting_reason(p, "CrashLoopBackOff");
        assert!(
            message.starts_with("back-off 10s restarting failed container=app"),
            "{message}"
        );
        assert_eq!(
            n.jsonpath(p, ".status.containerStatuses[0].restartCount"),
            "1"
        );
        assert_eq!(
            n.jsonpath(
                p,
                ".status.containerStatuses[0].lastState.terminated.exitCode"
            ),
            "3"
        );
        assert_eq!(n.jsonpath(p, ".status.phase"), "Running");
    }
    // After the back-off it runs (and fails) again.
    n.wait_for("always", ".status.containerStatuses[0].restartCount", |c| {
        c == "2"
    });
    let out = n.logs(&["always", "--previous"]);
    assert!(out.contains("about to fail"), "{out}");

    // Init containers run to completion, in order, before the app.
    n.apply(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: init\nspec:\n  nodeName: {NODE}\n  restartPolicy: Never\n  initContainers:\n  - {{name: first, image: hello:v1, args: [first]}}\n  - {{name: second, image: hello:v1, args: [second]}}\n  containers:\n  - {{name: app, image: hello:v1, args: [main]}}\n"
    ));
    n.phase("init", "Succeeded");
    for (c, arg) in [("first", "first"), ("second", "second"), ("app", "main")] {
        let out = n.logs(&["init", "-c", c]);
        assert!(
            out.lines().any(|l| l == format!("arg[1]={arg}")),
            "{c}: {out}"
        );
    }
    let first_done = n.jsonpath(
        "init",
        ".status.initContainerStatuses[0].state.terminated.finishedAt",
    );
    let second_start = n.jsonpath(
        "init",
        ".status.initContainerStatuses[1].state.terminated.startedAt",
    );
    let app_start = n.jsonpath(
        "init",
        ".status.containerStatuses[0].state.terminated.startedAt",
    );
    assert!(first_done <= second_start && second_start <= app_start);

    n.phase("never", "Failed");
    let (code, _) = n.terminated("never", "Error");
    assert_eq!(code, "3");
    assert_eq!(
        n.jsonpath("never", ".status.containerStatuses[0].restartCount"),
        "0"
    );
    n.phase("done", "Succeeded");
}

#[test]
fn an_agent_killed_with_9_readopts_its_pods() {
    let mut n = Node::up(&[]);
    n.push("worker");
    n.pod("worker", "worker:v1", "Always", "", "");
    n.phase("worker", "Running");
    let uid = n.uid("worker");
    let before = n.pids_of(&uid);
    assert_eq!(before.len(), 1);

    n.cluster.kill9();
    // The sandbox outlives the agent.
    assert_eq!(n.pids_of(&uid), before);
    n.cluster.start("127.0.0.1:0");
    n.wait_ready();
    // Give the new agent time to (wrongly) start a duplicate, then check
    // it did not: the same single process runs, the status says Running.
    let log = eventually(WAIT, || {
        let out = n.logs(&["worker", "--tail", "1"]);
        out.starts_with("heartbeat").then_some(out)
    });
    assert!(log.is_some());
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(n.sandbox_pids("worker"), before);
    assert_eq!(n.jsonpath("worker", ".status.phase"), "Running");
    assert_eq!(
        n.jsonpath("worker", ".status.containerStatuses[0].restartCount"),
        "0"
    );
    let running = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            std::fs::read(e.path().join("cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(n.uid("worker").as_str()))
                .unwrap_or(false)
        })
        .count();
    assert_eq!(running, 1, "one sandbox process for the pod");

    // A pod deleted while its agent was down is removed, sandbox and
    // cgroup, when the agent comes back.
    n.pod("orphan", "worker:v1", "Always", "", "");
    n.phase("orphan", "Running");
    let orphan_dir = n.cgroup_dir("orphan", "pids");
    let orphan_uid = n.uid("orphan");
    n.cluster.kill9();
    n.cluster.extra_args.push("--no-agent".into());
    n.cluster.start("127.0.0.1:0");
    n.cluster
        .kubectl_ok(&["delete", "pod", "orphan", "--grace-period=0", "--force"]);
    n.cluster.kill9();
    assert_eq!(
        n.pids_of(&orphan_uid).len(),
        1,
        "the orphan ran on meanwhile"
    );
    n.cluster.extra_args.pop();
    n.cluster.start("127.0.0.1:0");
    let gone = eventually(WAIT, || (!orphan_dir.exists()).then_some(()));
    assert!(gone.is_some(), "{} was not removed", orphan_dir.display());
    // Its log and records went with it; the other pod's stay.
    let files_of = |uid: &str| -> Vec<String> {
        let prefix = format!("{uid}.");
        std::fs::read_dir(n.cluster.data_dir.join("agent/pods"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|f| f.starts_with(&prefix))
            .collect()
    };
    let left = eventually(WAIT, || files_of(&orphan_uid).is_empty().then_some(()));
    assert!(left.is_some(), "{:?}", files_of(&orphan_uid));
    assert!(!files_of(&uid).is_empty(), "the running pod's log is kept");

    n.cluster
        .kubectl_ok(&["delete", "pod", "worker", "--timeout=60s"]);
    for pid in before {
        assert!(!alive(pid), "sandbox {pid} still runs");
    }
    assert_eq!(
        files_of(&uid),
        Vec::<String>::new(),
        "a deleted pod's files"
    );
}

/// The HTTP status of a `curl` request, with an optional bearer token.
fn http_status(method: &str, url: &str, token: Option<&str>, body: Option<&str>) -> String {
    let mut cmd = std::process::Command::new("curl");
    cmd.args([
        "-sk",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-X",
        method,
        url,
    ]);
    if let Some(t) = token {
        cmd.args(["-H", &format!("Authorization: Bearer {t}")]);
    }
    if let Some(b) = body {
        cmd.args(["-H", "Content-Type: application/json", "--data", b]);
    }
    let out = cmd.output().expect("run curl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_standalone_agent_joins_and_serves_only_the_api_server() {
    let n = Node::standalone();
    // The Node it registered tells where its endpoint is.
    assert_eq!(
        n.node_field(".status.addresses[?(@.type==\"InternalIP\")].address"),
        "127.0.0.1"
    );
    let port = n.node_field(".status.daemonEndpoints.kubeletEndpoint.Port");
    assert!(port.parse::<u16>().is_ok_and(|p| p > 0), "{port:?}");
    assert_eq!(n.node_field(".status.allocatable.pods"), "1100");
    let lease = n.cluster.kubectl_ok(&[
        "get",
        "lease",
        "-n",
        "kube-node-lease",
        NODE,
        "-o",
        "jsonpath={.spec.holderIdentity}",
    ]);
    assert_eq!(lease, NODE);

    n.push("hello");
    n.pod("hello", "hello:v1", "Never", "", "");
    n.phase("hello", "Succeeded");
    let out = n.logs(&["hello"]);
    assert!(out.lines().any(|l| l == "hello from wasm"), "{out}");

    // The agent's endpoint wants a token the API server vouches for, of
    // an identity allowed to read logs.
    let base = format!("https://127.0.0.1:{port}");
    let logs = format!("{base}/containerLogs/default/hello/app");
    assert_eq!(
        http_status("GET", &format!("{base}/healthz"), None, None),
        "200"
    );
    assert_eq!(http_status("GET", &logs, None, None), "401");
    assert_eq!(http_status("GET", &logs, Some("not-a-token"), None), "401");
    let admin = n.cluster.token();
    assert_eq!(http_status("GET", &logs, Some(&admin), None), "200");

    // TokenReviews: only for agents and administrators.
    let reviews = format!(
        "{}/apis/authentication.k8s.io/v1/tokenreviews",
        n.cluster.url
    );
    let review = r#"{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{"token":"not-a-token"}}"#;
    assert_eq!(http_status("POST", &reviews, None, Some(review)), "401");
    assert_eq!(
        http_status("POST", &reviews, Some(&admin), Some(review)),
        "201"
    );
}
