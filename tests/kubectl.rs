//! Real kubectl v1.35 against `wasmk up` (issue 2, item 7).

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::Cluster;

const MANIFEST: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata:
  name: web-config
data:
  greeting: hello
---
apiVersion: v1
kind: Secret
metadata:
  name: web-secret
stringData:
  password: s3cret
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: hello:v1
        env:
        - name: GREETING
          valueFrom:
            configMapKeyRef: {name: web-config, key: greeting}
        resources:
          limits: {cpu: 100m, memory: 64Mi}
"#;

#[test]
fn discovery_and_namespaces() {
    let c = Cluster::up();
    let out = c.kubectl_ok(&["api-resources"]);
    for r in [
        "pods",
        "deployments",
        "cronjobs",
        "leases",
        "modules",
        "horizontalpodautoscalers",
    ] {
        assert!(out.contains(r), "api-resources lacks {r}:\n{out}");
    }
    let ns = c.kubectl_ok(&["get", "ns"]);
    for n in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(ns.contains(n), "{ns}");
    }
    assert!(ns.starts_with("NAME"), "{ns}");
    let v = c.kubectl_ok(&["version", "-o", "json"]);
    assert!(v.contains("\"minor\": \"35\""), "{v}");
}

#[test]
fn apply_twice_get_yaml_label_annotate_delete() {
    let c = Cluster::up();
    let f = c.write_file("app.yaml", MANIFEST);
    let out = c.kubectl_ok(&["apply", "-f", f.to_str().unwrap()]);
    assert!(out.contains("configmap/web-config created"), "{out}");
    assert!(out.contains("secret/web-secret created"), "{out}");
    assert!(out.contains("deployment.apps/web created"), "{out}");

    let changed = MANIFEST
        .replace("replicas: 2", "replicas: 3")
        .replace("greeting: hello", "greeting: bonjour");
    let f2 = c.write_file("app2.yaml", &changed);
    let out = c.kubectl_ok(&["apply", "-f", f2.to_str().unwrap()]);
    assert!(out.contains("deployment.apps/web configured"), "{out}");
    assert!(out.contains("configmap/web-config configured"), "{out}");
    let y = c.kubectl_ok(&["get", "deployment", "web", "-o", "yaml"]);
    assert!(y.contains("replicas: 3"), "{y}");
    assert!(y.contains("generation: 2"), "{y}");
    assert!(
        y.contains("kubectl.kubernetes.io/last-applied-configuration"),
        "{y}"
    );
    let cm = c.kubectl_ok(&["get", "cm", "web-config", "-o", "jsonpath={.data.greeting}"]);
    assert_eq!(cm, "bonjour");
    // Applying the same file again changes nothing.
    let out = c.kubectl_ok(&["apply", "-f", f2.to_str().unwrap()]);
    assert!(out.contains("deployment.apps/web unchanged"), "{out}");

    c.kubectl_ok(&["label", "deployment", "web", "tier=frontend"]);
    c.kubectl_ok(&["annotate", "deployment", "web", "owner=team-a"]);
    let y = c.kubectl_ok(&["get", "deployment", "web", "-o", "yaml"]);
    assert!(
        y.contains("tier: frontend") && y.contains("owner: team-a"),
        "{y}"
    );
    let sel = c.kubectl_ok(&["get", "deploy", "-l", "tier=frontend", "-o", "name"]);
    assert_eq!(sel.trim(), "deployment.apps/web");
    c.kubectl_ok(&["label", "deployment", "web", "tier-"]);
    let sel = c.kubectl(&["get", "deploy", "-l", "tier=frontend", "-o", "name"]);
    assert!(String::from_utf8_lossy(&sel.stdout).trim().is_empty());

    c.kubectl_ok(&["delete", "-f", f2.to_str().unwrap()]);
    let gone = c.kubectl(&["get", "deployment", "web"]);
    assert!(!gone.status.success());
    assert!(
        String::from_utf8_lossy(&gone.stderr).contains("NotFound"),
        "{:?}",
        gone
    );
}

#[test]
fn watch_receives_an_event() {
    let c = Cluster::up();
    let mut child = Command::new(common::kubectl_bin())
        .args(["get", "configmaps", "--watch", "--request-timeout=20s"])
        .env("KUBECONFIG", &c.kubeconfig)
        .env("HOME", c.home.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let f = c.write_file(
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: watched\ndata:\n  a: b\n",
    );
    c.kubectl_ok(&["apply", "-f", f.to_str().unwrap()]);
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while std::time::Instant::now() < deadline {
            match stdout.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    if String::from_utf8_lossy(&buf).contains("watched") {
                        break;
                    }
                }
            }
        }
        String::from_utf8_lossy(&buf).into_owned()
    });
    let seen = reader.join().unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        seen.contains("watched"),
        "kubectl get --watch printed: {seen:?}"
    );
}

#[test]
fn requests_without_the_token_get_401() {
    let c = Cluster::up();
    let bad = c.write_file(
        "bad-kubeconfig",
        &std::fs::read_to_string(&c.kubeconfig)
            .unwrap()
            .lines()
            .map(|l| {
                if l.trim().starts_with("token:") {
                    "    token: wrong-token".to_string()
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n"),
    );
    let out = Command::new(common::kubectl_bin())
        .args(["get", "ns"])
        .env("KUBECONFIG", &bad)
        .env("HOME", c.home.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Unauthorized") || err.contains("logged in"),
        "{err}"
    );
    // Health and version stay open.
    let health = c.kubectl_ok(&["get", "--raw", "/healthz"]);
    assert_eq!(health.trim(), "ok");
}

#[test]
fn validation_errors_reach_kubectl() {
    let c = Cluster::up();
    let f = c.write_file(
        "bad.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: Bad_Name\nspec:\n  replicas: -1\n  selector: {matchLabels: {a: b}}\n  template:\n    metadata: {labels: {a: b}}\n    spec:\n      containers: [{name: c, image: m:1}]\n",
    );
    let out = c.kubectl(&["apply", "-f", f.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is invalid"), "{err}");
    assert!(err.contains("metadata.name"), "{err}");
    assert!(err.contains("spec.replicas"), "{err}");
    // Unknown fields: kubectl asks for strict validation and gets a clear refusal.
    let f = c.write_file(
        "unknown.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata: {a: b}\ncolour: red\n",
    );
    let out = c.kubectl(&["apply", "-f", f.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown field") && err.contains("colour"),
        "{err}"
    );
}

#[test]
fn garbage_collection_and_namespace_deletion() {
    let c = Cluster::up();
    c.kubectl_ok(&["create", "namespace", "team"]);
    c.kubectl_ok(&[
        "-n",
        "team",
        "create",
        "deployment",
        "api",
        "--image=hello:v1",
        "--replicas=2",
    ]);
    c.kubectl_ok(&[
        "-n",
        "team",
        "create",
        "configmap",
        "c1",
        "--from-literal=a=b",
    ]);
    // The controllers create a ReplicaSet and its pods.
    let pods = common::eventually(Duration::from_secs(20), || {
        let out = c.kubectl_ok(&["-n", "team", "get", "pods", "-o", "name"]);
        (out.lines().count() == 2).then_some(out)
    });
    assert!(pods.is_some(), "the deployment's pods were not created");

    // Orphan: the ReplicaSet survives its deployment, without an owner.
    c.kubectl_ok(&[
        "-n",
        "team",
        "delete",
        "deployment",
        "api",
        "--cascade=orphan",
    ]);
    let rs = c.kubectl_ok(&[
        "-n",
        "team",
        "get",
        "rs",
        "-o",
        "jsonpath={.items[0].metadata.ownerReferences}",
    ]);
    assert!(
        rs.trim().is_empty(),
        "owner reference left after orphaning: {rs}"
    );
    assert_eq!(
        c.kubectl_ok(&["-n", "team", "get", "pods", "-o", "name"])
            .lines()
            .count(),
        2
    );

    // Background (kubectl's default): deleting the ReplicaSet removes its pods.
    c.kubectl_ok(&["-n", "team", "delete", "rs", "--all"]);
    let gone = common::eventually(Duration::from_secs(20), || {
        c.kubectl_ok(&["-n", "team", "get", "pods", "-o", "name"])
            .trim()
            .is_empty()
            .then_some(())
    });
    assert!(
        gone.is_some(),
        "pods of a deleted ReplicaSet were not collected"
    );

    // Foreground: the owner waits for its dependents.
    c.kubectl_ok(&[
        "-n",
        "team",
        "create",
        "deployment",
        "fg",
        "--image=hello:v1",
        "--replicas=1",
    ]);
    common::eventually(Duration::from_secs(20), || {
        (c.kubectl_ok(&["-n", "team", "get", "pods", "-o", "name"])
            .lines()
            .count()
            == 1)
            .then_some(())
    })
    .expect("pod of fg");
    c.kubectl_ok(&[
        "-n",
        "team",
        "delete",
        "deployment",
        "fg",
        "--cascade=foreground",
    ]);
    let left = c.kubectl_ok(&["-n", "team", "get", "deploy,rs,pods", "-o", "name"]);
    assert!(left.trim().is_empty(), "foreground deletion left {left}");

    // Deleting the namespace deletes what it holds, then the namespace.
    c.kubectl_ok(&["delete", "namespace", "team"]);
    let ns = c.kubectl(&["get", "namespace", "team"]);
    assert!(!ns.status.success());
    let cm = c.kubectl(&["-n", "team", "get", "configmap", "c1"]);
    assert!(!cm.status.success());
}

#[test]
fn resource_quotas_and_limit_ranges() {
    let c = Cluster::up();
    c.kubectl_ok(&["create", "namespace", "q"]);
    c.kubectl_ok(&[
        "-n",
        "q",
        "create",
        "quota",
        "small",
        "--hard=pods=2,requests.cpu=1,count/configmaps=1",
    ]);
    let f = c.write_file(
        "lr.yaml",
        "apiVersion: v1\nkind: LimitRange\nmetadata:\n  name: defaults\n  namespace: q\nspec:\n  limits:\n  - type: Container\n    default: {cpu: 400m}\n    defaultRequest: {cpu: 300m}\n    max: {cpu: 800m}\n",
    );
    c.kubectl_ok(&["apply", "-f", f.to_str().unwrap()]);
    let pod = |name: &str, cpu: Option<&str>| {
        let res = cpu
            .map(|l| format!("\n    resources: {{limits: {{cpu: {l}}}}}"))
            .unwrap_or_default();
        c.write_file(
            &format!("{name}.yaml"),
            &format!(
                "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: q\nspec:\n  containers:\n  - name: c\n    image: hello:v1{res}\n"
            ),
        )
    };
    // LimitRange defaults fill in the resources the pod does not state.
    c.kubectl_ok(&["create", "-f", pod("a", None).to_str().unwrap()]);
    let res = c.kubectl_ok(&[
        "-n",
        "q",
        "get",
        "pod",
        "a",
        "-o",
        "jsonpath={.spec.containers[0].resources.limits.cpu}/{.spec.containers[0].resources.requests.cpu}",
    ]);
    assert_eq!(res.trim(), "400m/300m");
    // Its maximum is enforced.
    let out = c.kubectl(&["create", "-f", pod("big", Some("2")).to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("maximum cpu usage per Container is 800m"),
        "{err}"
    );
    // The quota is charged on create and refuses what exceeds it.
    c.kubectl_ok(&["create", "-f", pod("b", Some("500m")).to_str().unwrap()]);
    let out = c.kubectl(&["create", "-f", pod("c", Some("100m")).to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("exceeded quota: small") && err.contains("pods=2"),
        "{err}"
    );
    c.kubectl_ok(&["-n", "q", "create", "configmap", "one"]);
    let out = c.kubectl(&["-n", "q", "create", "configmap", "two"]);
    assert!(!out.status.success());
    let used = c.kubectl_ok(&[
        "-n",
        "q",
        "get",
        "quota",
        "small",
        "-o",
        "jsonpath={.status.used.pods} {.status.used.requests\\.cpu} {.status.hard.pods}",
    ]);
    assert_eq!(used.trim(), "2 800m 2");
    // Deleting a pod frees its share (the quota controller recounts).
    c.kubectl_ok(&[
        "-n",
        "q",
        "delete",
        "pod",
        "a",
        "--grace-period=0",
        "--force",
    ]);
    let freed = common::eventually(Duration::from_secs(20), || {
        let out = c.kubectl_ok(&[
            "-n",
            "q",
            "get",
            "quota",
            "small",
            "-o",
            "jsonpath={.status.used.pods} {.status.used.requests\\.cpu}",
        ]);
        (out.trim() == "1 500m").then_some(())
    });
    assert!(freed.is_some(), "deleting a pod did not free its quota");
    c.kubectl_ok(&["create", "-f", pod("c", Some("100m")).to_str().unwrap()]);
    let desc = c.kubectl_ok(&["-n", "q", "describe", "quota", "small"]);
    assert!(
        desc.contains("requests.cpu") && desc.contains("600m"),
        "{desc}"
    );
}
