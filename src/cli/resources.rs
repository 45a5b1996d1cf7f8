//! `wasmk get|apply|create|delete|describe|version`: kubectl's resource
//! commands against a wasmk API.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use futures::StreamExt;
use serde_json::{Value, json};

use super::print::{self, Format};
use crate::api::registry::{DynResource, Registry};
use crate::client::{ApiClient, ClientError, ListParams, PatchType, resource_path};

#[derive(Args, Debug)]
pub struct GetArgs {
    /// Resource type (pods, deploy, ...), optionally `TYPE/NAME`.
    pub resource: String,
    /// Names of objects.
    pub names: Vec<String>,
    #[arg(short, long)]
    pub namespace: Option<String>,
    /// List across all namespaces.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Label selector (`app=web,tier!=db`).
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Field selector (`spec.nodeName=n1`).
    #[arg(long)]
    pub field_selector: Option<String>,
    /// Output format: wide, json, yaml, name.
    #[arg(short, long)]
    pub output: Option<String>,
    /// Watch for changes after listing.
    #[arg(short, long)]
    pub watch: bool,
}

#[derive(Args, Debug)]
pub struct FileArgs {
    /// Files or directories of YAML/JSON manifests; `-` for stdin.
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<String>,
    #[arg(short, long)]
    pub namespace: Option<String>,
}

#[derive(Args, Debug)]
pub struct DeleteArgs {
    /// Resource type, or `TYPE/NAME`.
    pub resource: Option<String>,
    pub names: Vec<String>,
    #[arg(short = 'f', long = "filename")]
    pub files: Vec<String>,
    #[arg(short, long)]
    pub namespace: Option<String>,
    /// Seconds given to the object to terminate (pods).
    #[arg(long)]
    pub grace_period: Option<i64>,
    /// Do not wait for the objects to be gone.
    #[arg(long)]
    pub no_wait: bool,
}

#[derive(Args, Debug)]
pub struct DescribeArgs {
    pub resource: String,
    pub name: Option<String>,
    #[arg(short, long)]
    pub namespace: Option<String>,
}

/// A resource type by what the user typed.
pub fn resolve_type(name: &str) -> Result<&'static dyn DynResource> {
    Registry::get()
        .resolve(name)
        .ok_or_else(|| anyhow!("the server doesn't have a resource type \"{name}\""))
}

fn split_type_name(resource: &str, names: &[String]) -> (String, Vec<String>) {
    match resource.split_once('/') {
        Some((t, n)) => {
            let mut all = vec![n.to_string()];
            all.extend(names.iter().cloned());
            (t.to_string(), all)
        }
        None => (resource.to_string(), names.to_vec()),
    }
}

fn path_of(rt: &dyn DynResource, ns: Option<&str>, name: Option<&str>) -> String {
    let i = rt.info();
    let ns = if i.namespaced { ns } else { None };
    resource_path(i.group, i.version, i.plural, ns, name, None)
}

/// Prints an error from the server the way kubectl does.
fn server_err(e: ClientError) -> anyhow::Error {
    anyhow!("{e}")
}

pub async fn version(kubeconfig: Option<&Path>) -> Result<()> {
    println!("Client Version: v{}", env!("CARGO_PKG_VERSION"));
    let (client, _) = ApiClient::from_kubeconfig(kubeconfig).map_err(server_err)?;
    let v = client.get("/version").await.map_err(server_err)?;
    println!(
        "Server Version: {}",
        v["gitVersion"].as_str().unwrap_or("unknown")
    );
    Ok(())
}

pub async fn get(kubeconfig: Option<&Path>, args: GetArgs) -> Result<()> {
    let (client, default_ns) = ApiClient::from_kubeconfig(kubeconfig).map_err(server_err)?;
    let (type_name, names) = split_type_name(&args.resource, &args.names);
    let rt = resolve_type(&type_name)?;
    let info = rt.info();
    let format = Format::parse(args.output.as_deref())?;
    let ns = args.namespace.clone().unwrap_or(default_ns);
    let ns_opt = if args.all_namespaces || !info.namespaced {
        None
    } else {
        Some(ns.as_str())
    };
    let with_ns = args.all_namespaces && info.namespaced;
    let params = ListParams {
        label_selector: args.selector.clone(),
        field_selector: args.field_selector.clone(),
        ..Default::default()
    };
    if !names.is_empty() {
        let mut failed = false;
        for n in &names {
            let path = path_of(rt, ns_opt.or(Some(&ns)), Some(n));
            match format {
                Format::Table | Format::Wide => match client.get_table(&path).await {
                    Ok(t) => print!(
                        "{}",
                        print::render_table(&t, format == Format::Wide, false, true)
                    ),
                    Err(e) => {
                        eprintln!("{e}");
                        failed = true;
                    }
                },
                _ => match client.get(&path).await {
                    Ok(v) => print_object(&v, format, info.kind, info.group),
                    Err(e) => {
                        eprintln!("{e}");
                        failed = true;
                    }
                },
            }
        }
        if failed {
            std::process::exit(1);
        }
        return Ok(());
    }
    let path = crate::client::path::with_query(&path_of(rt, ns_opt, None), &params.query_pairs());
    let list_rv;
    match format {
        Format::Table | Format::Wide => {
            let t = client.get_table(&path).await.map_err(server_err)?;
            list_rv = t
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            if t["rows"].as_array().is_none_or(|r| r.is_empty()) {
                if args.all_namespaces || !info.namespaced {
                    eprintln!("No resources found");
                } else {
                    eprintln!("No resources found in {ns} namespace.");
                }
            } else {
                print!(
                    "{}",
                    print::render_table(&t, format == Format::Wide, with_ns, true)
                );
            }
        }
        _ => {
            let v = client
                .list(&path_of(rt, ns_opt, None), &params)
                .await
                .map_err(server_err)?;
            list_rv = v
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            match format {
                Format::Name => {
                    for i in v["items"].as_array().cloned().unwrap_or_default() {
                        println!(
                            "{}",
                            print::type_name(
                                info.kind,
                                info.group,
                                i["metadata"]["name"].as_str().unwrap_or("")
                            )
                        );
                    }
                }
                Format::Json => println!("{}", print::to_json(&as_list(&v))),
                _ => print!("{}", print::to_yaml(&as_list(&v))),
            }
        }
    }
    if args.watch {
        let wp = ListParams {
            resource_version: Some(list_rv),
            ..params
        };
        let mut stream = client
            .watch(&path_of(rt, ns_opt, None), &wp)
            .await
            .map_err(server_err)?;
        while let Some(ev) = stream.next().await {
            let ev = ev.map_err(server_err)?;
            if let Some(e) = ev.error() {
                bail!("{e}");
            }
            let name = ev
                .object
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("");
            let ons = ev
                .object
                .pointer("/metadata/namespace")
                .and_then(Value::as_str);
            match format {
                Format::Table | Format::Wide => {
                    if let Ok(t) = client.get_table(&path_of(rt, ons, Some(name))).await {
                        print!(
                            "{}",
                            print::render_table(&t, format == Format::Wide, with_ns, false)
                        );
                    } else {
                        println!("{name}   (deleted)");
                    }
                }
                _ => print_object(&ev.object, format, info.kind, info.group),
            }
        }
    }
    Ok(())
}

/// A list response as kubectl prints it with -o json/yaml: `kind: List`.
fn as_list(v: &Value) -> Value {
    json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, "items": v["items"].clone()})
}

fn print_object(v: &Value, format: Format, kind: &str, group: &str) {
    match format {
        Format::Json => println!("{}", print::to_json(v)),
        Format::Name => println!(
            "{}",
            print::type_name(kind, group, v["metadata"]["name"].as_str().unwrap_or(""))
        ),
        _ => print!("{}", print::to_yaml(v)),
    }
}

/// Reads manifests from files, directories (their .yaml/.yml/.json files)
/// and stdin (`-`), splitting multi-document YAML and `kind: List`.
pub fn read_manifests(files: &[String]) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    for f in files {
        let mut sources: Vec<(String, String)> = Vec::new();
        if f == "-" {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("reading stdin")?;
            sources.push(("stdin".into(), s));
        } else {
            let p = PathBuf::from(f);
            if p.is_dir() {
                let mut entries: Vec<PathBuf> = std::fs::read_dir(&p)
                    .with_context(|| format!("reading directory {f}"))?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| {
                        matches!(
                            p.extension().and_then(|e| e.to_str()),
                            Some("yaml" | "yml" | "json")
                        )
                    })
                    .collect();
                entries.sort();
                for e in entries {
                    let s = std::fs::read_to_string(&e)
                        .with_context(|| format!("reading {}", e.display()))?;
                    sources.push((e.display().to_string(), s));
                }
            } else {
                let s = std::fs::read_to_string(&p).with_context(|| {
                    format!("the path \"{f}\" does not exist or cannot be read")
                })?;
                sources.push((f.clone(), s));
            }
        }
        for (name, text) in sources {
            out.extend(parse_documents(&text).with_context(|| format!("error parsing {name}"))?);
        }
    }
    Ok(out)
}

/// Splits YAML documents (JSON is YAML) and flattens `kind: List`.
pub fn parse_documents(text: &str) -> Result<Vec<Value>> {
    use serde::Deserialize;
    let mut out = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(text) {
        let v = Value::deserialize(doc).map_err(|e| anyhow!("{e}"))?;
        match v {
            Value::Null => {}
            Value::Object(ref m) if m.get("kind").and_then(Value::as_str) == Some("List") => {
                for item in m
                    .get("items")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
                {
                    out.push(item);
                }
            }
            Value::Object(_) => out.push(v),
            other => bail!("a manifest must be an object, found {other}"),
        }
    }
    Ok(out)
}

fn type_of(obj: &Value) -> Result<&'static dyn DynResource> {
    let av = obj["apiVersion"].as_str().unwrap_or("");
    let kind = obj["kind"].as_str().unwrap_or("");
    if av.is_empty() || kind.is_empty() {
        bail!("a manifest is missing apiVersion or kind: {}", obj);
    }
    let (group, version) = match av.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", av),
    };
    Registry::get()
        .by_kind(group, kind)
        .filter(|t| t.info().version == version)
        .ok_or_else(|| anyhow!("no matches for kind \"{kind}\" in version \"{av}\""))
}

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// A merge patch that turns `old` (the last applied manifest) into `new`:
/// every field of `new`, plus nulls for fields `old` had and `new` dropped.
pub fn apply_patch(old: &Value, new: &Value) -> Value {
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            let mut p = serde_json::Map::new();
            for (k, nv) in n {
                p.insert(k.clone(), apply_patch(o.get(k).unwrap_or(&Value::Null), nv));
            }
            for k in o.keys() {
                if !n.contains_key(k) {
                    p.insert(k.clone(), Value::Null);
                }
            }
            Value::Object(p)
        }
        (_, n) => n.clone(),
    }
}

pub async fn apply(kubeconfig: Option<&Path>, args: FileArgs, apply: bool) -> Result<()> {
    let (client, default_ns) = ApiClient::from_kubeconfig(kubeconfig).map_err(server_err)?;
    let docs = read_manifests(&args.files)?;
    let ns_default = args.namespace.clone().unwrap_or(default_ns);
    let mut failed = false;
    for mut obj in docs {
        let rt = match type_of(&obj) {
            Ok(rt) => rt,
            Err(e) => {
                eprintln!("error: {e}");
                failed = true;
                continue;
            }
        };
        let info = rt.info();
        let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
        let ns = obj["metadata"]["namespace"]
            .as_str()
            .map(str::to_string)
            .unwrap_or(ns_default.clone());
        let label = print::type_name(info.kind, info.group, &name);
        let result: Result<&str, ClientError> = async {
            if !apply {
                client.create(&path_of(rt, Some(&ns), None), &obj).await?;
                return Ok("created");
            }
            // The manifest as applied, without the annotation itself.
            let mut applied = obj.clone();
            if let Some(a) = applied
                .pointer_mut("/metadata/annotations")
                .and_then(Value::as_object_mut)
            {
                a.remove(LAST_APPLIED);
            }
            let applied_text = serde_json::to_string(&applied).unwrap_or_default();
            obj["metadata"]["annotations"][LAST_APPLIED] = json!(applied_text);
            match client.get(&path_of(rt, Some(&ns), Some(&name))).await {
                Err(e) if e.is_not_found() => {
                    client.create(&path_of(rt, Some(&ns), None), &obj).await?;
                    Ok("created")
                }
                Err(e) => Err(e),
                Ok(current) => {
                    let last: Value = current
                        .pointer(&format!(
                            "/metadata/annotations/{}",
                            LAST_APPLIED.replace('/', "~1")
                        ))
                        .and_then(Value::as_str)
                        .and_then(|s| serde_json::from_str(s).ok())
                        .unwrap_or(Value::Null);
                    let patch = apply_patch(&last, &obj);
                    let updated = client
                        .patch(
                            &path_of(rt, Some(&ns), Some(&name)),
                            PatchType::Merge,
                            &patch,
                        )
                        .await?;
                    let changed = updated.pointer("/metadata/resourceVersion")
                        != current.pointer("/metadata/resourceVersion");
                    Ok(if changed { "configured" } else { "unchanged" })
                }
            }
        }
        .await;
        match result {
            Ok(what) => println!("{label} {what}"),
            Err(e) => {
                eprintln!("{e}");
                failed = true;
            }
        }
    }
    if failed {
        std::process::exit(1);
    }
    Ok(())
}

pub async fn delete(kubeconfig: Option<&Path>, args: DeleteArgs) -> Result<()> {
    let (client, default_ns) = ApiClient::from_kubeconfig(kubeconfig).map_err(server_err)?;
    let ns_default = args.namespace.clone().unwrap_or(default_ns);
    let mut targets: Vec<(&'static dyn DynResource, String, String)> = Vec::new();
    if !args.files.is_empty() {
        for obj in read_manifests(&args.files)? {
            let rt = type_of(&obj)?;
            let ns = obj["metadata"]["namespace"]
                .as_str()
                .map(str::to_string)
                .unwrap_or(ns_default.clone());
            targets.push((
                rt,
                ns,
                obj["metadata"]["name"].as_str().unwrap_or("").to_string(),
            ));
        }
    } else {
        let Some(resource) = &args.resource else {
            bail!("You must provide one or more resources by argument or filename.");
        };
        let (t, names) = split_type_name(resource, &args.names);
        let rt = resolve_type(&t)?;
        if names.is_empty() {
            bail!("resource(s) were provided, but no name was specified");
        }
        for n in names {
            targets.push((rt, ns_default.clone(), n));
        }
    }
    let mut opts =
        json!({"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"});
    if let Some(g) = args.grace_period {
        opts["gracePeriodSeconds"] = json!(g);
    }
    let mut failed = false;
    let mut pending = Vec::new();
    for (rt, ns, name) in targets {
        let info = rt.info();
        let path = path_of(rt, Some(&ns), Some(&name));
        match client.delete(&path, &opts).await {
            Ok(_) => {
                if info.namespaced {
                    println!(
                        "{} \"{}\" deleted from {} namespace",
                        info.kind.to_lowercase(),
                        name,
                        ns
                    );
                } else {
                    println!("{} \"{}\" deleted", info.kind.to_lowercase(), name);
                }
                pending.push(path);
            }
            Err(e) => {
                eprintln!("{e}");
                failed = true;
            }
        }
    }
    if !args.no_wait {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(120);
        for path in pending {
            loop {
                match client.get(&path).await {
                    Err(e) if e.is_not_found() => break,
                    _ if tokio::time::Instant::now() > deadline => {
                        eprintln!("timed out waiting for {path} to be deleted");
                        failed = true;
                        break;
                    }
                    _ => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
                }
            }
        }
    }
    if failed {
        std::process::exit(1);
    }
    Ok(())
}

pub async fn describe(kubeconfig: Option<&Path>, args: DescribeArgs) -> Result<()> {
    let (client, default_ns) = ApiClient::from_kubeconfig(kubeconfig).map_err(server_err)?;
    let (t, names) = split_type_name(
        &args.resource,
        &args.name.iter().cloned().collect::<Vec<_>>(),
    );
    let rt = resolve_type(&t)?;
    let info = rt.info();
    let ns = args.namespace.clone().unwrap_or(default_ns);
    let objs: Vec<Value> = if names.is_empty() {
        let v = client
            .list(&path_of(rt, Some(&ns), None), &ListParams::default())
            .await
            .map_err(server_err)?;
        v["items"].as_array().cloned().unwrap_or_default()
    } else {
        let mut out = Vec::new();
        for n in &names {
            out.push(
                client
                    .get(&path_of(rt, Some(&ns), Some(n)))
                    .await
                    .map_err(server_err)?,
            );
        }
        out
    };
    let events_rt = resolve_type("events")?;
    for (i, obj) in objs.iter().enumerate() {
        if i > 0 {
            println!();
        }
        let m = &obj["metadata"];
        let mut rows = vec![vec![
            "Name:".to_string(),
            m["name"].as_str().unwrap_or("").to_string(),
        ]];
        if info.namespaced {
            rows.push(vec![
                "Namespace:".into(),
                m["namespace"].as_str().unwrap_or("").to_string(),
            ]);
        }
        rows.push(vec!["Labels:".into(), kv_lines(&m["labels"])]);
        rows.push(vec!["Annotations:".into(), kv_lines(&m["annotations"])]);
        rows.push(vec![
            "CreationTimestamp:".into(),
            m["creationTimestamp"].as_str().unwrap_or("").to_string(),
        ]);
        print!("{}", print::align(&rows));
        for section in ["spec", "status", "data"] {
            if let Some(v) = obj.get(section).filter(|v| !v.is_null()) {
                let title = format!("{}{}:", &section[..1].to_uppercase(), &section[1..]);
                println!("{title}");
                for line in print::to_yaml(v).lines() {
                    println!("  {line}");
                }
            }
        }
        // Events about this object.
        let sel = format!(
            "involvedObject.name={},involvedObject.kind={}",
            m["name"].as_str().unwrap_or(""),
            info.kind
        );
        let evs = client
            .list(
                &path_of(
                    events_rt,
                    Some(m["namespace"].as_str().unwrap_or(&ns)),
                    None,
                ),
                &ListParams {
                    field_selector: Some(sel),
                    ..Default::default()
                },
            )
            .await
            .map(|v| v["items"].as_array().cloned().unwrap_or_default())
            .unwrap_or_default();
        if evs.is_empty() {
            println!("Events:            <none>");
        } else {
            println!("Events:");
            let mut rows = vec![vec![
                "  Type".to_string(),
                "Reason".into(),
                "Count".into(),
                "From".into(),
                "Message".into(),
            ]];
            for e in evs {
                rows.push(vec![
                    format!("  {}", e["type"].as_str().unwrap_or("")),
                    e["reason"].as_str().unwrap_or("").to_string(),
                    e["count"].as_i64().unwrap_or(1).to_string(),
                    e.pointer("/source/component")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                    e["message"].as_str().unwrap_or("").to_string(),
                ]);
            }
            print!("{}", print::align(&rows));
        }
    }
    Ok(())
}

fn kv_lines(v: &Value) -> String {
    match v.as_object() {
        Some(m) if !m.is_empty() => m
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
            .collect::<Vec<_>>()
            .join("\n                   "),
        _ => "<none>".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_document_yaml_and_lists() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n---\n{\"apiVersion\":\"v1\",\"kind\":\"List\",\"items\":[{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"metadata\":{\"name\":\"s\"}}]}\n";
        let docs = parse_documents(text).unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1]["kind"], "Secret");
        assert!(parse_documents("- 1\n- 2\n").is_err());
        assert!(parse_documents("a: [").is_err());
    }

    #[test]
    fn apply_patch_removes_dropped_fields() {
        let old =
            json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "data": {"x": "1", "y": "2"}});
        let new = json!({"metadata": {"labels": {"a": "1"}}, "data": {"x": "3"}});
        assert_eq!(
            apply_patch(&old, &new),
            json!({"metadata": {"labels": {"a": "1", "b": null}}, "data": {"x": "3", "y": null}})
        );
        // Without a last-applied record, the manifest is asserted as is.
        assert_eq!(apply_patch(&Value::Null, &new), new);
    }

    #[test]
    fn types_from_manifests() {
        assert_eq!(
            type_of(&json!({"apiVersion": "apps/v1", "kind": "Deployment"}))
                .unwrap()
                .info()
                .plural,
            "deployments"
        );
        assert!(type_of(&json!({"apiVersion": "apps/v2", "kind": "Deployment"})).is_err());
        assert!(type_of(&json!({"kind": "Deployment"})).is_err());
    }
}
