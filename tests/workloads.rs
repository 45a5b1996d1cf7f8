//! Deployments end to end (issue 4): real kubectl drives create, scale,
//! rolling update, history and rollback of Wasm pods run by real agents;
//! `wasmk deploy` returns when its replicas run; deleted pods are replaced;
//! a pod that fits nowhere says why; with two agents, stopping one moves
//! its pods to the other and, when it returns, the pods it still ran that
//! were replaced are stopped.
//!
//! Each agent gets its own cgroup root, removed with everything in it when
//! the test ends.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Cluster, eventually, wasmk_bin};
use wasmk::cgroup::{CgroupManager, CgroupPath};
use wasmk::sandbox::ModuleKind;
use wasmk::sandbox::testing::sample;

const WAIT: Duration = Duration::from_secs(90);

fn cgroup_root() -> String {
    common::cgroup_root("wl")
}

use common::remove_cgroup_root as remove_cgroup;

/// An all-in-one cluster whose node is `node`, plus optional extra agents.
struct Fixture {
    cluster: Cluster,
    roots: Vec<String>,
    agents: Vec<Child>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        for a in &mut self.agents {
            let _ = a.kill();
            let _ = a.wait();
        }
        self.cluster.kill9();
        for r in &self.roots {
            remove_cgroup(r);
        }
    }
}

impl Fixture {
    fn up(node: &str) -> Fixture {
        let root = cgroup_root();
        let cluster = Cluster::up_with(&["--node-name", node, "--cgroup-root", &root]);
        let f = Fixture {
            cluster,
            roots: vec![root],
            agents: Vec::new(),
        };
        f.wait_node_ready(node);
        f
    }

    /// Starts `wasmk agent` for node `name` against the cluster.
    fn start_agent(&mut self, name: &str, data_dir: &std::path::Path) -> Child {
        let root = format!("{}-{name}", self.roots[0]);
        if !self.roots.contains(&root) {
            self.roots.push(root.clone());
        }
        // Joins with a bootstrap token, as a new machine would.
        let out = self.cluster.wasmk(&["token", "create", "--ttl", "1h"]);
        assert!(
            out.status.success(),
            "wasmk token create: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let token = self
            .cluster
            .write_file("agent-token", String::from_utf8_lossy(&out.stdout).trim());
        let ca = self.cluster.data_dir.join("pki").join("ca.crt");
        Command::new(wasmk_bin())
            .args(["agent", "--server", &self.cluster.url, "--name", name])
            .arg("--token-file")
            .arg(&token)
            .arg("--ca-file")
            .arg(&ca)
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--listen", "127.0.0.1:0", "--cgroup-root", &root])
            .env("HOME", self.cluster.home.path())
            .env("WASMK_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn wasmk agent")
    }

    fn wait_node_ready(&self, node: &str) {
        let ready = eventually(WAIT, || {
            let out = self.cluster.kubectl(&[
                "get",
                "node",
                node,
                "-o",
                "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
            ]);
            (String::from_utf8_lossy(&out.stdout) == "True").then_some(())
        });
        assert!(ready.is_some(), "node {node} never became Ready");
    }

    fn push(&self, sample_name: &str, image: &str) {
        let file = sample(sample_name, ModuleKind::Module);
        let out = self
            .cluster
            .wasmk(&["push", &file.display().to_string(), "--name", image]);
        assert!(
            out.status.success(),
            "push {image}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `name phase node image` of the pods matching `selector` that are not
    /// being deleted (pods of a lost node stay Terminating until it returns,
    /// as in Kubernetes), sorted.
    fn pods(&self, selector: &str) -> Vec<(String, String, String, String)> {
        let out = self.cluster.kubectl_ok(&[
            "get",
            "pods",
            "-l",
            selector,
            "-o",
            "jsonpath={range .items[*]}{.metadata.name} {.status.phase} {.spec.nodeName} {.spec.containers[0].image} {.metadata.deletionTimestamp}{\"\\n\"}{end}",
        ]);
        let mut v: Vec<_> = out
            .lines()
            .filter_map(|l| {
                let mut it = l.split(' ');
                if l.split(' ').nth(4).is_some_and(|d| !d.is_empty()) {
                    return None;
                }
                Some((
                    it.next()?.to_string(),
                    it.next()?.to_string(),
                    it.next()?.to_string(),
                    it.next()?.to_string(),
                ))
            })
            .collect();
        v.sort();
        v
    }

    /// Waits until exactly `n` pods match, all Running an image that starts with `image`.
    fn wait_running(
        &self,
        selector: &str,
        n: usize,
        image: &str,
    ) -> Vec<(String, String, String, String)> {
        let mut last = Vec::new();
        let got = eventually(WAIT, || {
            last = self.pods(selector);
            (last.len() == n
                && last
                    .iter()
                    .all(|p| p.1 == "Running" && p.3.starts_with(image)))
            .then(|| last.clone())
        });
        got.unwrap_or_else(|| {
            panic!(
                "never {n} Running pods of {image} for {selector}; last: {last:?}\n{}",
                self.cluster.kubectl_ok(&["get", "pods", "-o", "wide"])
            )
        })
    }
}

#[test]
fn kubectl_drives_scale_rolling_update_and_rollback() {
    let f = Fixture::up("solo");
    f.push("worker", "worker:v1");
    f.push("greeter", "greeter:v1");
    let c = &f.cluster;
    c.kubectl_ok(&[
        "create",
        "deployment",
        "web",
        "--image=worker:v1",
        "--replicas=3",
    ]);
    c.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=90s"]);
    let first = f.wait_running("app=web", 3, "worker:v1");

    // Scale out and in.
    c.kubectl_ok(&["scale", "deployment", "web", "--replicas=5"]);
    f.wait_running("app=web", 5, "worker:v1");
    c.kubectl_ok(&["scale", "deployment", "web", "--replicas=2"]);
    f.wait_running("app=web", 2, "worker:v1");

    // A deleted pod is replaced.
    let victim = f.pods("app=web")[0].0.clone();
    c.kubectl_ok(&["delete", "pod", &victim, "--wait=true"]);
    let after = f.wait_running("app=web", 2, "worker:v1");
    assert!(
        after.iter().all(|p| p.0 != victim),
        "{victim} still listed: {after:?}"
    );
    assert!(first.len() == 3);

    // Rolling update to a second module.
    c.kubectl_ok(&["set", "image", "deployment/web", "worker=greeter:v1"]);
    c.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=90s"]);
    f.wait_running("app=web", 2, "greeter:v1");
    let history = c.kubectl_ok(&["rollout", "history", "deployment/web"]);
    let revisions: Vec<&str> = history
        .lines()
        .filter(|l| l.trim_start().starts_with(|ch: char| ch.is_ascii_digit()))
        .collect();
    assert_eq!(revisions.len(), 2, "{history}");
    let rev2 = c.kubectl_ok(&["rollout", "history", "deployment/web", "--revision=2"]);
    assert!(rev2.contains("greeter:v1"), "{rev2}");

    // Rollback.
    c.kubectl_ok(&["rollout", "undo", "deployment/web"]);
    c.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=90s"]);
    f.wait_running("app=web", 2, "worker:v1");
    let image = c.kubectl_ok(&[
        "get",
        "deployment",
        "web",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image} {.metadata.annotations.deployment\\.kubernetes\\.io/revision}",
    ]);
    assert_eq!(image.trim(), "worker:v1 3");

    // `wasmk deploy` pushes, creates and waits for its replicas.
    let greeter = sample("greeter", ModuleKind::Module);
    let out = c.wasmk(&[
        "deploy",
        &greeter.display().to_string(),
        "--name",
        "hello",
        "--replicas",
        "3",
        "--env",
        "GREETING=Bonjour",
    ]);
    assert!(
        out.status.success(),
        "wasmk deploy: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let pods = f.wait_running("app=hello", 3, "hello@sha256:");
    let logs = eventually(WAIT, || {
        let out = c.wasmk(&["logs", &pods[0].0]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.contains("Bonjour from").then_some(text)
    });
    assert!(logs.is_some(), "the greeting never reached the logs");

    // A pod that fits nowhere reports why.
    let big = c.write_file(
        "big.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: big\nspec:\n  containers:\n  - name: c\n    image: worker:v1\n    resources:\n      requests: {cpu: '500'}\n",
    );
    c.kubectl_ok(&["apply", "-f", &big.display().to_string()]);
    let why = eventually(WAIT, || {
        let out = c.kubectl_ok(&[
            "get",
            "pod",
            "big",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"PodScheduled\")].message}",
        ]);
        (!out.is_empty()).then_some(out)
    })
    .expect("no PodScheduled condition on an unschedulable pod");
    assert!(
        why.contains("0/1 nodes are available") && why.contains("Insufficient cpu"),
        "{why}"
    );
}

#[test]
fn pods_move_when_an_agent_stops_and_return_cleanly() {
    let mut f = Fixture::up("alpha");
    let beta_dir = f.cluster.home.path().join("beta");
    let beta = f.start_agent("beta", &beta_dir);
    f.agents.push(beta);
    f.wait_node_ready("beta");
    f.push("worker", "worker:v1");
    let c = &f.cluster;
    c.kubectl_ok(&[
        "create",
        "deployment",
        "spread",
        "--image=worker:v1",
        "--replicas=4",
    ]);
    c.kubectl_ok(&["rollout", "status", "deployment/spread", "--timeout=90s"]);
    let pods = f.wait_running("app=spread", 4, "worker:v1");
    let on_beta: Vec<String> = pods
        .iter()
        .filter(|p| p.2 == "beta")
        .map(|p| p.0.clone())
        .collect();
    assert!(
        !on_beta.is_empty() && on_beta.len() < 4,
        "replicas not spread over both nodes: {pods:?}"
    );

    // Stop beta's agent (its sandboxes keep running, as after a crash).
    let mut beta = f.agents.pop().expect("beta");
    unsafe {
        libc::kill(beta.id() as i32, libc::SIGKILL);
    }
    let _ = beta.wait();
    let lost = Instant::now();
    let moved = eventually(WAIT, || {
        let now = f.pods("app=spread");
        (now.len() == 4 && now.iter().all(|p| p.1 == "Running" && p.2 == "alpha")).then_some(now)
    });
    let moved = moved.unwrap_or_else(|| {
        panic!(
            "pods did not move to alpha: {}",
            f.cluster.kubectl_ok(&["get", "pods", "-o", "wide"])
        )
    });
    eprintln!(
        "node lost -> its pods Running elsewhere in {:.1}s",
        lost.elapsed().as_secs_f64()
    );
    for p in &on_beta {
        assert!(moved.iter().all(|m| &m.0 != p), "{p} was not replaced");
    }
    let taints = f.cluster.kubectl_ok(&[
        "get",
        "node",
        "beta",
        "-o",
        "jsonpath={.spec.taints[*].key}",
    ]);
    assert!(
        taints.contains("node.kubernetes.io/unreachable"),
        "{taints}"
    );

    // Beta returns: its taints go, and the sandboxes of replaced pods stop.
    let beta = f.start_agent("beta", &beta_dir);
    f.agents.push(beta);
    f.wait_node_ready("beta");
    let root = f
        .roots
        .iter()
        .find(|r| r.ends_with("-beta"))
        .cloned()
        .expect("beta root");
    let mgr = CgroupManager::detect().expect("cgroups");
    let clean = eventually(WAIT, || {
        let pods = mgr
            .list_pods(&CgroupPath::new(&root).expect("root"))
            .unwrap_or_default();
        let taints = f.cluster.kubectl_ok(&[
            "get",
            "node",
            "beta",
            "-o",
            "jsonpath={.spec.taints[*].key}",
        ]);
        let all = f
            .cluster
            .kubectl_ok(&["get", "pods", "-l", "app=spread", "-o", "name"]);
        (pods.is_empty() && !taints.contains("unreachable") && all.lines().count() == 4)
            .then_some(())
    });
    assert!(
        clean.is_some(),
        "beta kept replaced pods or its taints after returning"
    );
    f.wait_running("app=spread", 4, "worker:v1");
}
