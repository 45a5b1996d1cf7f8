//! Workload commands: `wasmk deploy`, `scale`, `rollout`, `cordon`,
//! `uncordon`, `drain`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::push::{name_and_tag, push_file};
use super::resources::resolve_type;
use crate::client::{ApiClient, ListParams, PatchType, resource_path};

fn client(kubeconfig: Option<&Path>) -> Result<(ApiClient, String)> {
    ApiClient::from_kubeconfig(kubeconfig).map_err(|e| anyhow!("{e}"))
}

fn deploy_path(ns: &str, name: Option<&str>) -> String {
    resource_path("apps", "v1", "deployments", Some(ns), name, None)
}

#[derive(Args, Debug)]
pub struct DeployArgs {
    /// The .wasm module or component to run.
    pub file: PathBuf,
    /// Deployment (and module) name; default: the file's stem.
    #[arg(long)]
    pub name: Option<String>,
    /// Number of pods.
    #[arg(long)]
    pub replicas: Option<i32>,
    #[arg(short, long)]
    pub namespace: Option<String>,
    /// Environment variables, `KEY=VALUE` (repeatable).
    #[arg(long = "env", short = 'e')]
    pub env: Vec<String>,
    /// Arguments passed to the module (repeatable).
    #[arg(long = "arg")]
    pub args: Vec<String>,
    /// CPU limit per pod (e.g. `250m`).
    #[arg(long)]
    pub cpu: Option<String>,
    /// Memory limit per pod (e.g. `64Mi`).
    #[arg(long)]
    pub memory: Option<String>,
    /// Return once the Deployment is written, without waiting for pods.
    #[arg(long)]
    pub no_wait: bool,
    /// How long to wait for the rollout.
    #[arg(long, default_value = "300")]
    pub timeout_seconds: u64,
}

/// The container spec a deploy describes.
pub fn container_for(name: &str, image: &str, args: &DeployArgs) -> Result<Value> {
    let mut c = json!({"name": name, "image": image});
    if !args.args.is_empty() {
        c["args"] = json!(args.args);
    }
    if !args.env.is_empty() {
        let mut env = Vec::new();
        for kv in &args.env {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| anyhow!("--env {kv:?} is not KEY=VALUE"))?;
            env.push(json!({"name": k, "value": v}));
        }
        c["env"] = Value::Array(env);
    }
    let mut limits = serde_json::Map::new();
    if let Some(cpu) = &args.cpu {
        crate::api::quantity::Quantity::parse(cpu).map_err(|e| anyhow!("--cpu: {e}"))?;
        limits.insert("cpu".into(), json!(cpu));
    }
    if let Some(mem) = &args.memory {
        crate::api::quantity::Quantity::parse(mem).map_err(|e| anyhow!("--memory: {e}"))?;
        limits.insert("memory".into(), json!(mem));
    }
    if !limits.is_empty() {
        c["resources"] = json!({"limits": limits, "requests": limits});
    }
    Ok(c)
}

pub async fn deploy(kubeconfig: Option<&Path>, args: DeployArgs) -> Result<()> {
    let (client, default_ns) = client(kubeconfig)?;
    let ns = args.namespace.clone().unwrap_or(default_ns);
    let (name, _) = name_and_tag(&args.file, args.name.as_deref())?;
    crate::api::validation::dns1123_label(&name)
        .map_err(|e| anyhow!("invalid deployment name {name:?}: {e}; use --name"))?;
    let digest = push_file(&client, &args.file, &name, "latest").await?;
    // Pinning the digest makes every new binary a rollout.
    let image = format!("{name}@{digest}");
    eprintln!("pushed {name} {digest}");
    let container = container_for(&name, &image, &args)?;
    let path = deploy_path(&ns, Some(&name));
    match client.get(&path).await {
        Err(e) if e.is_not_found() => {
            let d = json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
                "spec": {
                    "replicas": args.replicas.unwrap_or(1),
                    "selector": {"matchLabels": {"app": name}},
                    "template": {"metadata": {"labels": {"app": name}},
                                 "spec": {"containers": [container]}},
                },
            });
            client
                .create(&deploy_path(&ns, None), &d)
                .await
                .map_err(|e| anyhow!("{e}"))?;
            eprintln!("deployment.apps/{name} created");
        }
        Err(e) => return Err(anyhow!("{e}")),
        Ok(_) => {
            let mut patch = json!({"spec": {"template": {"spec": {"containers": [container]}}}});
            if let Some(r) = args.replicas {
                patch["spec"]["replicas"] = json!(r);
            }
            client
                .patch(&path, PatchType::StrategicMerge, &patch)
                .await
                .map_err(|e| anyhow!("{e}"))?;
            eprintln!("deployment.apps/{name} configured");
        }
    }
    if args.no_wait {
        return Ok(());
    }
    wait_rollout(
        &client,
        &ns,
        &name,
        Duration::from_secs(args.timeout_seconds),
        true,
    )
    .await?;
    // Show the pods.
    let pods = client
        .get_table(&format!(
            "{}?labelSelector=app%3D{}",
            resource_path("", "v1", "pods", Some(&ns), None, None),
            name
        ))
        .await
        .map_err(|e| anyhow!("{e}"))?;
    print!("{}", super::print::render_table(&pods, false, false, true));
    Ok(())
}

/// Why a pod will not become ready, if it is stuck on a known failure.
fn pod_failure(pod: &Value) -> Option<String> {
    let name = pod["metadata"]["name"].as_str().unwrap_or("");
    for cs in pod["status"]["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if let Some(w) = cs["state"].get("waiting") {
            let reason = w["reason"].as_str().unwrap_or("");
            if matches!(
                reason,
                "ModuleNotFound"
                    | "CreateContainerError"
                    | "CreateContainerConfigError"
                    | "CrashLoopBackOff"
                    | "ErrImagePull"
            ) {
                let last = cs["lastState"]["terminated"]["reason"]
                    .as_str()
                    .unwrap_or("");
                let msg = w["message"].as_str().unwrap_or("");
                return Some(format!(
                    "pod {name}: {reason}{}{}",
                    if msg.is_empty() {
                        String::new()
                    } else {
                        format!(": {msg}")
                    },
                    if last.is_empty() {
                        String::new()
                    } else {
                        format!(" (last exit: {last})")
                    }
                ));
            }
        }
    }
    for c in pod["status"]["conditions"].as_array().into_iter().flatten() {
        if c["type"] == "PodScheduled" && c["status"] == "False" && c["reason"] == "Unschedulable" {
            return Some(format!(
                "pod {name} cannot be scheduled: {}",
                c["message"].as_str().unwrap_or("")
            ));
        }
    }
    None
}

/// Waits until the Deployment's rollout completes, printing progress as
/// kubectl does; fails with the reason of a failing pod.
pub async fn wait_rollout(
    client: &ApiClient,
    ns: &str,
    name: &str,
    timeout: Duration,
    progress: bool,
) -> Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    let bar = if progress {
        let pb = indicatif::ProgressBar::new_spinner();
        pb.enable_steady_tick(Duration::from_millis(120));
        Some(pb)
    } else {
        None
    };
    let mut last_msg = String::new();
    let result = loop {
        let d = client
            .get(&deploy_path(ns, Some(name)))
            .await
            .map_err(|e| anyhow!("{e}"))?;
        let spec_replicas = d["spec"]["replicas"].as_i64().unwrap_or(1);
        let generation = d["metadata"]["generation"].as_i64().unwrap_or(0);
        let st = &d["status"];
        let observed = st["observedGeneration"].as_i64().unwrap_or(0);
        let updated = st["updatedReplicas"].as_i64().unwrap_or(0);
        let replicas = st["replicas"].as_i64().unwrap_or(0);
        let available = st["availableReplicas"].as_i64().unwrap_or(0);
        if let Some(c) = st["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == "Progressing" && c["reason"] == "ProgressDeadlineExceeded")
        {
            break Err(anyhow!(
                "deployment \"{name}\" exceeded its progress deadline: {}",
                c["message"].as_str().unwrap_or("")
            ));
        }
        // Pod-level progress and failures.
        let sel = d["spec"]["selector"]["matchLabels"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        let pods = client
            .list(
                &resource_path("", "v1", "pods", Some(ns), None, None),
                &ListParams {
                    label_selector: Some(sel),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| anyhow!("{e}"))?;
        let items = pods["items"].as_array().cloned().unwrap_or_default();
        let scheduled = items
            .iter()
            .filter(|p| {
                p["spec"]["nodeName"]
                    .as_str()
                    .is_some_and(|n| !n.is_empty())
            })
            .count();
        let running = items
            .iter()
            .filter(|p| p["status"]["phase"] == "Running")
            .count();
        let ready = items
            .iter()
            .filter(|p| {
                p["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
            .count();
        if let Some(f) = items.iter().find_map(pod_failure) {
            break Err(anyhow!("rollout of deployment \"{name}\" failed: {f}"));
        }
        let msg = format!(
            "deployment \"{name}\": {updated}/{spec_replicas} updated, pods {scheduled} scheduled, {running} started, {ready} ready"
        );
        if let Some(b) = &bar {
            b.set_message(msg.clone());
        } else if msg != last_msg {
            println!("Waiting for {msg}...");
        }
        last_msg = msg;
        if observed >= generation
            && updated == spec_replicas
            && replicas == spec_replicas
            && available == spec_replicas
        {
            break Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            break Err(anyhow!(
                "timed out waiting for the rollout of deployment \"{name}\" ({last_msg})"
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    result?;
    println!("deployment \"{name}\" successfully rolled out");
    Ok(())
}

#[derive(Args, Debug)]
pub struct ScaleArgs {
    /// Resource type or TYPE/NAME (deployment, replicaset, replicationcontroller).
    pub resource: String,
    pub name: Option<String>,
    #[arg(long)]
    pub replicas: i32,
    #[arg(short, long)]
    pub namespace: Option<String>,
}

pub async fn scale(kubeconfig: Option<&Path>, args: ScaleArgs) -> Result<()> {
    let (client, default_ns) = client(kubeconfig)?;
    let ns = args.namespace.clone().unwrap_or(default_ns);
    let (t, name) = match (args.resource.split_once('/'), &args.name) {
        (Some((t, n)), _) => (t.to_string(), n.to_string()),
        (None, Some(n)) => (args.resource.clone(), n.clone()),
        (None, None) => bail!("a resource name is required"),
    };
    let rt = resolve_type(&t)?;
    let i = rt.info();
    if !i.subresources.contains(&"scale") {
        bail!("{} cannot be scaled", i.qualified());
    }
    let path = resource_path(
        i.group,
        i.version,
        i.plural,
        Some(&ns),
        Some(&name),
        Some("scale"),
    );
    client
        .patch(
            &path,
            PatchType::Merge,
            &json!({"spec": {"replicas": args.replicas}}),
        )
        .await
        .map_err(|e| anyhow!("{e}"))?;
    println!("{} scaled", super::print::type_name(i.kind, i.group, &name));
    Ok(())
}

#[derive(Subcommand, Debug)]
pub enum RolloutCmd {
    /// Wait until the rollout finishes.
    Status(RolloutTarget),
    /// List revisions.
    History(RolloutTarget),
    /// Roll back to the previous (or a given) revision.
    Undo(UndoArgs),
    /// Stop rolling out template changes.
    Pause(RolloutTarget),
    /// Resume a paused rollout.
    Resume(RolloutTarget),
}

#[derive(Args, Debug)]
pub struct RolloutTarget {
    /// `deployment/NAME`
    pub target: String,
    #[arg(short, long)]
    pub namespace: Option<String>,
}

#[derive(Args, Debug)]
pub struct UndoArgs {
    #[command(flatten)]
    pub t: RolloutTarget,
    #[arg(long)]
    pub to_revision: Option<i64>,
}

fn deployment_name(target: &str) -> Result<String> {
    match target.split_once('/') {
        Some(("deployment" | "deployments" | "deploy" | "deployment.apps", n)) => Ok(n.to_string()),
        Some((t, _)) => bail!("rollout works on deployments, not {t:?}"),
        None => Ok(target.to_string()),
    }
}

/// The ReplicaSets a Deployment owns, with their revisions, oldest first.
async fn revisions(client: &ApiClient, ns: &str, name: &str) -> Result<(Value, Vec<(i64, Value)>)> {
    let d = client
        .get(&deploy_path(ns, Some(name)))
        .await
        .map_err(|e| anyhow!("{e}"))?;
    let uid = d["metadata"]["uid"].as_str().unwrap_or("").to_string();
    let rss = client
        .list(
            &resource_path("apps", "v1", "replicasets", Some(ns), None, None),
            &ListParams::default(),
        )
        .await
        .map_err(|e| anyhow!("{e}"))?;
    let mut out: Vec<(i64, Value)> = rss["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|rs| {
            rs["metadata"]["ownerReferences"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|o| o["uid"] == uid.as_str())
        })
        .map(|rs| {
            let rev = rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            (rev, rs.clone())
        })
        .collect();
    out.sort_by_key(|(r, _)| *r);
    Ok((d, out))
}

pub async fn rollout(kubeconfig: Option<&Path>, cmd: RolloutCmd) -> Result<()> {
    let (client, default_ns) = client(kubeconfig)?;
    match cmd {
        RolloutCmd::Status(t) => {
            let ns = t.namespace.unwrap_or(default_ns);
            let name = deployment_name(&t.target)?;
            wait_rollout(&client, &ns, &name, Duration::from_secs(600), false).await
        }
        RolloutCmd::History(t) => {
            let ns = t.namespace.unwrap_or(default_ns);
            let name = deployment_name(&t.target)?;
            let (_, revs) = revisions(&client, &ns, &name).await?;
            println!("deployment.apps/{name} ");
            let mut rows = vec![vec!["REVISION".to_string(), "CHANGE-CAUSE".to_string()]];
            for (r, rs) in revs {
                let cause = rs["metadata"]["annotations"]["kubernetes.io/change-cause"]
                    .as_str()
                    .unwrap_or("<none>")
                    .to_string();
                rows.push(vec![r.to_string(), cause]);
            }
            print!("{}", super::print::align(&rows));
            Ok(())
        }
        RolloutCmd::Undo(u) => {
            let ns = u.t.namespace.unwrap_or(default_ns);
            let name = deployment_name(&u.t.target)?;
            let (d, revs) = revisions(&client, &ns, &name).await?;
            let current = revs.last().map(|(r, _)| *r).unwrap_or(0);
            let target = match u.to_revision {
                Some(r) => revs
                    .iter()
                    .find(|(rev, _)| *rev == r)
                    .ok_or_else(|| anyhow!("unable to find specified revision {r} in history"))?,
                None => revs
                    .iter()
                    .rev()
                    .find(|(rev, _)| *rev != current)
                    .ok_or_else(|| anyhow!("no rollout history found for deployment \"{name}\""))?,
            };
            let mut template = target.1["spec"]["template"].clone();
            if let Some(l) = template["metadata"]["labels"].as_object_mut() {
                l.remove("pod-template-hash");
            }
            if d["spec"]["paused"] == true {
                bail!(
                    "you cannot rollback a paused deployment; resume it first with 'wasmk rollout resume deployment/{name}' and try again"
                );
            }
            client
                .patch(
                    &deploy_path(&ns, Some(&name)),
                    PatchType::Json,
                    &json!([{"op": "replace", "path": "/spec/template", "value": template}]),
                )
                .await
                .map_err(|e| anyhow!("{e}"))?;
            println!("deployment.apps/{name} rolled back");
            Ok(())
        }
        RolloutCmd::Pause(t) => set_paused(&client, &default_ns, t, true).await,
        RolloutCmd::Resume(t) => set_paused(&client, &default_ns, t, false).await,
    }
}

async fn set_paused(
    client: &ApiClient,
    default_ns: &str,
    t: RolloutTarget,
    paused: bool,
) -> Result<()> {
    let ns = t.namespace.unwrap_or_else(|| default_ns.to_string());
    let name = deployment_name(&t.target)?;
    let patch = json!({"spec": {"paused": if paused { json!(true) } else { Value::Null }}});
    client
        .patch(&deploy_path(&ns, Some(&name)), PatchType::Merge, &patch)
        .await
        .map_err(|e| anyhow!("{e}"))?;
    println!(
        "deployment.apps/{name} {}",
        if paused { "paused" } else { "resumed" }
    );
    Ok(())
}

#[derive(Args, Debug)]
pub struct NodeArgs {
    pub node: String,
}

#[derive(Args, Debug)]
pub struct DrainArgs {
    pub node: String,
    /// Also evict pods not managed by a controller.
    #[arg(long)]
    pub force: bool,
    /// Leave DaemonSet pods (they would be recreated on the node anyway).
    #[arg(long)]
    pub ignore_daemonsets: bool,
    #[arg(long, default_value = "120")]
    pub timeout_seconds: u64,
}

async fn set_unschedulable(client: &ApiClient, node: &str, on: bool) -> Result<()> {
    client
        .patch(
            &resource_path("", "v1", "nodes", None, Some(node), None),
            PatchType::Merge,
            &json!({"spec": {"unschedulable": if on { json!(true) } else { Value::Null }}}),
        )
        .await
        .map_err(|e| anyhow!("{e}"))?;
    Ok(())
}

pub async fn cordon(kubeconfig: Option<&Path>, args: NodeArgs, on: bool) -> Result<()> {
    let (client, _) = client(kubeconfig)?;
    set_unschedulable(&client, &args.node, on).await?;
    println!(
        "node/{} {}",
        args.node,
        if on { "cordoned" } else { "uncordoned" }
    );
    Ok(())
}

pub async fn drain(kubeconfig: Option<&Path>, args: DrainArgs) -> Result<()> {
    let (client, _) = client(kubeconfig)?;
    set_unschedulable(&client, &args.node, true).await?;
    println!("node/{} cordoned", args.node);
    let pods = client
        .list(
            "/api/v1/pods",
            &ListParams {
                field_selector: Some(format!("spec.nodeName={}", args.node)),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| anyhow!("{e}"))?;
    let mut evicted: BTreeMap<String, String> = BTreeMap::new();
    for p in pods["items"].as_array().into_iter().flatten() {
        let ns = p["metadata"]["namespace"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let name = p["metadata"]["name"].as_str().unwrap_or("").to_string();
        let owner = p["metadata"]["ownerReferences"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|o| o["controller"] == true)
            .and_then(|o| o["kind"].as_str())
            .map(str::to_string);
        match owner.as_deref() {
            Some("DaemonSet") if args.ignore_daemonsets => continue,
            Some("DaemonSet") => {
                bail!("cannot delete DaemonSet-managed pod {ns}/{name} (use --ignore-daemonsets)")
            }
            None if !args.force => {
                bail!("cannot delete pod {ns}/{name}: not managed by a controller (use --force)")
            }
            _ => {}
        }
        let body = json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name, "namespace": ns}});
        client
            .create(
                &resource_path("", "v1", "pods", Some(&ns), Some(&name), Some("eviction")),
                &body,
            )
            .await
            .map_err(|e| anyhow!("{e}"))?;
        println!("evicting pod {ns}/{name}");
        evicted.insert(format!("{ns}/{name}"), ns);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(args.timeout_seconds);
    for key in evicted.keys() {
        let (ns, name) = key.split_once('/').context("key")?;
        loop {
            match client
                .get(&resource_path("", "v1", "pods", Some(ns), Some(name), None))
                .await
            {
                Err(e) if e.is_not_found() => {
                    println!("pod/{name} evicted");
                    break;
                }
                _ if tokio::time::Instant::now() > deadline => {
                    bail!("timed out waiting for pod {key} to be evicted")
                }
                _ => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        }
    }
    println!("node/{} drained", args.node);
    Ok(())
}
