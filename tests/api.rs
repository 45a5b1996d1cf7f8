//! API semantics over HTTPS against an in-process master: concurrency,
//! selectors, paging, watch, patches, subresources, deletion, and bad input
//! (issue 2, items 4 and 8).

use std::time::Duration;

use futures::StreamExt;
use http::Method;
use serde_json::{Value, json};
use wasmk::client::{ApiClient, ListParams, PatchType};
use wasmk::server::{Master, MasterConfig};

struct Env {
    master: Master,
    client: ApiClient,
    _dir: tempfile::TempDir,
}

async fn start() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let master = Master::start(MasterConfig {
        data_dir: dir.path().join("data"),
        listen: "127.0.0.1:0".parse().unwrap(),
        extra_sans: vec![],
        extra_kubeconfig: None,
        control: Default::default(),
    })
    .await
    .unwrap();
    let client = ApiClient::new(
        vec![master.url.clone()],
        master.ca_pem.as_bytes(),
        Some(master.admin_token.clone()),
    )
    .unwrap();
    Env {
        master,
        client,
        _dir: dir,
    }
}

const CMS: &str = "/api/v1/namespaces/default/configmaps";

fn cm(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels}, "data": {"k": "v"}})
}

async fn raw(e: &Env, method: Method, path: &str, body: &[u8], ct: &str) -> (u16, Value) {
    let (code, _, bytes) = e
        .client
        .raw(
            method,
            path,
            Some(bytes::Bytes::copy_from_slice(body)),
            Some(ct),
        )
        .await
        .unwrap();
    (
        code.as_u16(),
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optimistic_concurrency_and_conflicts() {
    let e = start().await;
    let created = e.client.create(CMS, &cm("a", json!({}))).await.unwrap();
    let rv = created["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!created["metadata"]["uid"].as_str().unwrap().is_empty());
    assert!(created["metadata"]["creationTimestamp"].is_string());

    // Same name again: 409 AlreadyExists.
    let err = e.client.create(CMS, &cm("a", json!({}))).await.unwrap_err();
    assert_eq!(err.code(), Some(409));
    assert_eq!(err.api().unwrap().reason, "AlreadyExists");

    // Update with the current rv succeeds, with a stale one is 409 Conflict.
    let mut upd = created.clone();
    upd["data"]["k"] = json!("v2");
    let updated = e.client.update(&format!("{CMS}/a"), &upd).await.unwrap();
    assert_ne!(updated["metadata"]["resourceVersion"].as_str().unwrap(), rv);
    let err = e
        .client
        .update(&format!("{CMS}/a"), &upd)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(409));
    assert!(
        err.api()
            .unwrap()
            .message
            .contains("the object has been modified"),
        "{err}"
    );

    // A no-op update does not bump the resourceVersion.
    let same = e
        .client
        .update(&format!("{CMS}/a"), &updated)
        .await
        .unwrap();
    assert_eq!(
        same["metadata"]["resourceVersion"],
        updated["metadata"]["resourceVersion"]
    );
    e.master.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selectors_and_paging() {
    let e = start().await;
    for i in 0..25 {
        let tier = if i % 2 == 0 { "web" } else { "db" };
        e.client
            .create(CMS, &cm(&format!("c{i:02}"), json!({"tier": tier})))
            .await
            .unwrap();
    }
    let web = e
        .client
        .list(
            CMS,
            &ListParams {
                label_selector: Some("tier=web".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(web["items"].as_array().unwrap().len(), 13);
    let notweb = e
        .client
        .list(
            CMS,
            &ListParams {
                label_selector: Some("tier notin (web)".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(notweb["items"].as_array().unwrap().len(), 12);
    let one = e
        .client
        .list(
            CMS,
            &ListParams {
                field_selector: Some("metadata.name=c03".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(one["items"].as_array().unwrap().len(), 1);
    let bad = e
        .client
        .list(
            CMS,
            &ListParams {
                field_selector: Some("spec.bogus=1".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Some(400));
    let bad = e
        .client
        .list(
            CMS,
            &ListParams {
                label_selector: Some("a in (".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Some(400));

    // Pages of 10 cover everything exactly once.
    let mut names = Vec::new();
    let mut cont: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = e
            .client
            .list(
                CMS,
                &ListParams {
                    limit: Some(10),
                    continue_: cont.clone(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        pages += 1;
        for i in page["items"].as_array().unwrap() {
            names.push(i["metadata"]["name"].as_str().unwrap().to_string());
        }
        match page["metadata"]["continue"].as_str() {
            Some(c) if !c.is_empty() => {
                assert!(page["metadata"]["remainingItemCount"].as_i64().unwrap() > 0);
                cont = Some(c.to_string());
            }
            _ => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(names.len(), 25);
    names.dedup();
    assert_eq!(names.len(), 25);
    let err = e
        .client
        .list(
            CMS,
            &ListParams {
                continue_: Some("garbage".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(400));
    e.master.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_resumes_and_filters() {
    let e = start().await;
    let a = e
        .client
        .create(CMS, &cm("w1", json!({"x": "1"})))
        .await
        .unwrap();
    let rv = a["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let mut w = e
        .client
        .watch(
            CMS,
            &ListParams {
                resource_version: Some(rv.clone()),
                label_selector: Some("x=1".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    e.client
        .create(CMS, &cm("w2", json!({"x": "2"})))
        .await
        .unwrap();
    e.client
        .create(CMS, &cm("w3", json!({"x": "1"})))
        .await
        .unwrap();
    // Relabeling w1 out of the selection is a DELETED for this watcher.
    e.client
        .patch(
            &format!("{CMS}/w1"),
            PatchType::Merge,
            &json!({"metadata": {"labels": {"x": "9"}}}),
        )
        .await
        .unwrap();
    let ev1 = tokio::time::timeout(Duration::from_secs(5), w.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(ev1.object["metadata"]["name"], "w3");
    assert_eq!(format!("{:?}", ev1.type_), "Added");
    let ev2 = tokio::time::timeout(Duration::from_secs(5), w.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(ev2.object["metadata"]["name"], "w1");
    assert_eq!(format!("{:?}", ev2.type_), "Deleted");

    // A watch without resourceVersion starts with the current objects.
    let mut all = e.client.watch(CMS, &ListParams::default()).await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..3 {
        let ev = tokio::time::timeout(Duration::from_secs(5), all.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        seen.push(ev.object["metadata"]["name"].as_str().unwrap().to_string());
    }
    seen.sort();
    assert_eq!(seen, ["w1", "w2", "w3"]);
    e.master.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patches_and_subresources() {
    let e = start().await;
    let deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "a", "image": "m:1", "env": [{"name": "X", "value": "1"}]},
                                        {"name": "b", "image": "n:1"}]}}}});
    let base = "/apis/apps/v1/namespaces/default/deployments";
    e.client.create(base, &deploy).await.unwrap();
    // Strategic merge: change one container's image by name.
    let p =
        json!({"spec": {"template": {"spec": {"containers": [{"name": "b", "image": "n:2"}]}}}});
    let d = e
        .client
        .patch(&format!("{base}/web"), PatchType::StrategicMerge, &p)
        .await
        .unwrap();
    let cs = d["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(cs.len(), 2);
    assert_eq!(cs[1]["image"], "n:2");
    assert_eq!(d["metadata"]["generation"], 2);
    // JSON patch.
    let p = json!([{"op": "replace", "path": "/spec/replicas", "value": 4}]);
    let d = e
        .client
        .patch(&format!("{base}/web"), PatchType::Json, &p)
        .await
        .unwrap();
    assert_eq!(d["spec"]["replicas"], 4);
    let p = json!([{"op": "test", "path": "/spec/replicas", "value": 99}]);
    let err = e
        .client
        .patch(&format!("{base}/web"), PatchType::Json, &p)
        .await
        .unwrap_err();
    assert!(matches!(err.code(), Some(422) | Some(400)), "{err}");
    // Scale subresource.
    let s = e.client.get(&format!("{base}/web/scale")).await.unwrap();
    assert_eq!(s["kind"], "Scale");
    assert_eq!(s["spec"]["replicas"], 4);
    assert_eq!(s["status"]["selector"], "app=web");
    let s = e
        .client
        .patch(
            &format!("{base}/web/scale"),
            PatchType::Merge,
            &json!({"spec": {"replicas": 2}}),
        )
        .await
        .unwrap();
    assert_eq!(s["spec"]["replicas"], 2);
    // Status subresource: status changes only through /status. (A Service:
    // no controller writes its status behind the test's back.)
    let svcs = "/api/v1/namespaces/default/services";
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "lb"},
        "spec": {"type": "LoadBalancer", "selector": {"app": "web"}, "ports": [{"port": 80}]}});
    e.client.create(svcs, &svc).await.unwrap();
    let st = e
        .client
        .patch(
            &format!("{svcs}/lb/status"),
            PatchType::Merge,
            &json!({"status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.7"}]}},
                    "spec": {"selector": {"app": "other"}}}),
        )
        .await
        .unwrap();
    assert_eq!(st["status"]["loadBalancer"]["ingress"][0]["ip"], "10.0.0.7");
    assert_eq!(st["spec"]["selector"]["app"], "web");
    let main = e
        .client
        .patch(
            &format!("{svcs}/lb"),
            PatchType::Merge,
            &json!({"status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.1"}]}}}),
        )
        .await
        .unwrap();
    assert_eq!(
        main["status"]["loadBalancer"]["ingress"][0]["ip"],
        "10.0.0.7"
    );
    e.master.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_and_deletion() {
    let e = start().await;
    // Creating into a missing namespace is refused.
    let err = e
        .client
        .create("/api/v1/namespaces/nope/configmaps", &cm("x", json!({})))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(404));
    assert!(
        err.api()
            .unwrap()
            .message
            .contains("namespaces \"nope\" not found"),
        "{err}"
    );
    // System namespaces cannot be deleted.
    let err = e
        .client
        .delete("/api/v1/namespaces/default", &Value::Null)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(403));
    // A namespace being deleted refuses new content.
    e.client
        .create(
            "/api/v1/namespaces",
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}}),
        )
        .await
        .unwrap();
    // Held by a finalizer, so the namespace stays Terminating (rather than
    // being gone at once) while the next create is refused.
    let mut x = cm("x", json!({}));
    x["metadata"]["finalizers"] = json!(["example.com/hold"]);
    e.client
        .create("/api/v1/namespaces/team/configmaps", &x)
        .await
        .unwrap();
    let ns = e
        .client
        .delete("/api/v1/namespaces/team", &Value::Null)
        .await
        .unwrap();
    assert_eq!(ns["status"]["phase"], "Terminating");
    let err = e
        .client
        .create("/api/v1/namespaces/team/configmaps", &cm("y", json!({})))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(403));
    // Finalizers hold an object until they are removed.
    let mut held = cm("held", json!({}));
    held["metadata"]["finalizers"] = json!(["example.com/hold"]);
    e.client.create(CMS, &held).await.unwrap();
    let d = e
        .client
        .delete(&format!("{CMS}/held"), &Value::Null)
        .await
        .unwrap();
    assert!(d["metadata"]["deletionTimestamp"].is_string());
    assert!(e.client.get(&format!("{CMS}/held")).await.is_ok());
    e.client
        .patch(
            &format!("{CMS}/held"),
            PatchType::Merge,
            &json!({"metadata": {"finalizers": null}}),
        )
        .await
        .unwrap();
    assert_eq!(
        e.client
            .get(&format!("{CMS}/held"))
            .await
            .unwrap_err()
            .code(),
        Some(404)
    );
    // Delete preconditions.
    let c = e.client.create(CMS, &cm("pre", json!({}))).await.unwrap();
    let err = e
        .client
        .delete(
            &format!("{CMS}/pre"),
            &json!({"preconditions": {"uid": "not-it"}}),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(409));
    e.client
        .delete(
            &format!("{CMS}/pre"),
            &json!({"preconditions": {"uid": c["metadata"]["uid"]}}),
        )
        .await
        .unwrap();
    e.master.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_status_with_the_right_code() {
    let e = start().await;
    let json_ct = "application/json";
    // Malformed JSON.
    let (code, st) = raw(&e, Method::POST, CMS, b"{\"apiVersion\": \"v1\", ", json_ct).await;
    assert_eq!(code, 400);
    assert_eq!(st["kind"], "Status");
    assert!(
        st["message"].as_str().unwrap().contains("not valid JSON"),
        "{st}"
    );
    // Malformed YAML.
    let (code, st) = raw(
        &e,
        Method::POST,
        CMS,
        b"kind: [unclosed",
        "application/yaml",
    )
    .await;
    assert_eq!(code, 400, "{st}");
    // YAML that is fine.
    let (code, _) = raw(
        &e,
        Method::POST,
        CMS,
        b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: y1}\n",
        "application/yaml",
    )
    .await;
    assert_eq!(code, 201);
    // Wrong kind for the endpoint.
    let (code, st) = raw(
        &e,
        Method::POST,
        CMS,
        br#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"s"}}"#,
        json_ct,
    )
    .await;
    assert_eq!(code, 400);
    assert!(st["message"].as_str().unwrap().contains("kind"), "{st}");
    // Unknown resource and unknown group version.
    let (code, st) = raw(
        &e,
        Method::GET,
        "/api/v1/namespaces/default/widgets",
        b"",
        json_ct,
    )
    .await;
    assert_eq!(code, 404);
    assert_eq!(st["reason"], "NotFound");
    let (code, _) = raw(&e, Method::GET, "/apis/apps/v9/deployments", b"", json_ct).await;
    assert_eq!(code, 404);
    // Wrong content type.
    let (code, st) = raw(&e, Method::POST, CMS, b"<xml/>", "application/xml").await;
    assert_eq!(code, 415, "{st}");
    // Oversized body.
    let big = vec![b' '; 4 * 1024 * 1024];
    let (code, st) = raw(&e, Method::POST, CMS, &big, json_ct).await;
    assert_eq!(code, 413, "{st}");
    // Invalid name.
    let (code, st) = raw(
        &e,
        Method::POST,
        CMS,
        br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"Bad Name"}}"#,
        json_ct,
    )
    .await;
    assert_eq!(code, 422);
    assert_eq!(st["reason"], "Invalid");
    assert_eq!(st["details"]["causes"][0]["field"], "metadata.name");
    // Stale resourceVersion.
    let c = e.client.create(CMS, &cm("s1", json!({}))).await.unwrap();
    let mut stale = c.clone();
    stale["metadata"]["resourceVersion"] = json!("1");
    let (code, st) = raw(
        &e,
        Method::PUT,
        &format!("{CMS}/s1"),
        stale.to_string().as_bytes(),
        json_ct,
    )
    .await;
    assert_eq!(code, 409, "{st}");
    // Wrong type of a field.
    let (code, st) = raw(
        &e,
        Method::POST,
        "/apis/apps/v1/namespaces/default/deployments",
        br#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d"},"spec":{"replicas":"three"}}"#,
        json_ct,
    )
    .await;
    assert_eq!(code, 400);
    assert!(
        st["message"].as_str().unwrap().contains("spec.replicas"),
        "{st}"
    );
    // Unsupported patch type.
    let (code, _) = raw(&e, Method::PATCH, &format!("{CMS}/s1"), b"{}", "text/plain").await;
    assert_eq!(code, 415);
    // Method not allowed.
    let (code, _) = raw(&e, Method::PUT, CMS, b"{}", json_ct).await;
    assert_eq!(code, 405);
    // The server is still fine.
    assert!(e.client.get(&format!("{CMS}/s1")).await.is_ok());
    e.master.stop().await;
}

/// The master's Unix socket (what `wasmk up`'s agent uses): owner-only, the
/// same API with the same authentication, a client that fails over to TCP
/// when the socket is gone, and no socket file left after a stop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_unix_socket_serves_the_same_api_to_local_clients() {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let e = start().await;
    let path = e.master.socket.clone().expect("a socket");
    assert_eq!(path, e.master.data_dir().join("api.sock"));
    let meta = std::fs::symlink_metadata(&path).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let url = e.master.socket_url().unwrap();
    assert!(url.starts_with("unix:/"), "{url}");

    let local = ApiClient::new(
        vec![url.clone()],
        e.master.ca_pem.as_bytes(),
        Some(e.master.admin_token.clone()),
    )
    .unwrap();
    let mut watch = local.watch(CMS, &ListParams::default()).await.unwrap();
    local
        .create(CMS, &cm("over-socket", json!({})))
        .await
        .unwrap();
    // Written through the socket, visible over HTTPS, and the watch
    // (streamed over HTTP/1.1 on the socket) sees it.
    let got = e.client.get(&format!("{CMS}/over-socket")).await.unwrap();
    assert_eq!(got["data"]["k"], "v");
    let ev = tokio::time::timeout(Duration::from_secs(10), watch.next())
        .await
        .expect("a watch event")
        .unwrap()
        .unwrap();
    assert_eq!(ev.object["metadata"]["name"], "over-socket");
    local
        .patch(
            &format!("{CMS}/over-socket"),
            PatchType::Merge,
            &json!({"data": {"k": "w"}}),
        )
        .await
        .unwrap();

    // The socket does not skip authentication.
    let anonymous = ApiClient::new(vec![url.clone()], e.master.ca_pem.as_bytes(), None).unwrap();
    let err = anonymous.get(CMS).await.unwrap_err();
    assert_eq!(err.code(), Some(401), "{err}");

    // A socket that is not there: the next server answers, and the
    // failure names the socket when there is no next one.
    let missing = format!("unix:{}", e.master.data_dir().join("nope.sock").display());
    let failover = ApiClient::new(
        vec![missing.clone(), e.master.url.clone()],
        e.master.ca_pem.as_bytes(),
        Some(e.master.admin_token.clone()),
    )
    .unwrap();
    let got = failover.get(&format!("{CMS}/over-socket")).await.unwrap();
    assert_eq!(got["data"]["k"], "w");
    let alone = ApiClient::new(
        vec![missing],
        e.master.ca_pem.as_bytes(),
        Some(e.master.admin_token.clone()),
    )
    .unwrap();
    let err = alone.get(CMS).await.unwrap_err().to_string();
    assert!(err.contains("nope.sock"), "{err}");

    // A relative socket path is a clear error, not a connection attempt.
    let err = ApiClient::new(vec!["unix:api.sock".into()], &[], None).unwrap_err();
    assert!(err.to_string().contains("absolute"), "{err}");

    e.master.stop().await;
    assert!(!path.exists(), "the socket is removed at stop");
}
