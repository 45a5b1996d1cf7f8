//! `kill -9` of `wasmk up` under a write load loses no acknowledged write
//! (issue 2, "Done when").

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::Cluster;
use serde_json::json;
use wasmk::client::{ApiClient, ListParams};

fn client(c: &Cluster) -> ApiClient {
    ApiClient::from_kubeconfig(Some(&c.kubeconfig))
        .expect("client")
        .0
}

async fn load_until_killed(
    c: &Cluster,
    round: usize,
    acked: Arc<Mutex<BTreeSet<String>>>,
) -> tokio::task::JoinSet<()> {
    let mut set = tokio::task::JoinSet::new();
    for w in 0..16 {
        let cl = client(c);
        let acked = acked.clone();
        set.spawn(async move {
            for i in 0.. {
                let name = format!("r{round}-w{w}-{i}");
                let body = json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": name}, "data": {"v": "x".repeat(200)}});
                match cl
                    .create("/api/v1/namespaces/default/configmaps", &body)
                    .await
                {
                    Ok(_) => {
                        acked.lock().unwrap().insert(name);
                    }
                    // The server was killed: stop this writer.
                    Err(_) => return,
                }
            }
        });
    }
    set
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill9_during_writes_loses_no_acknowledged_write() {
    let mut c = Cluster::up();
    let acked = Arc::new(Mutex::new(BTreeSet::new()));
    for round in 0..3 {
        let mut writers = load_until_killed(&c, round, acked.clone()).await;
        // Let the load run for a varying while, then crash the server.
        tokio::time::sleep(Duration::from_millis(400 + 300 * round as u64)).await;
        c.kill9();
        while writers.join_next().await.is_some() {}
        let before = acked.lock().unwrap().len();
        assert!(before > 0, "no write was acknowledged before the kill");

        c.start("127.0.0.1:0");
        let cl = client(&c);
        let list = cl
            .list(
                "/api/v1/namespaces/default/configmaps",
                &ListParams::default(),
            )
            .await
            .expect("list after restart");
        let present: BTreeSet<String> = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
            .collect();
        let missing: Vec<String> = acked
            .lock()
            .unwrap()
            .iter()
            .filter(|n| !present.contains(*n))
            .cloned()
            .collect();
        assert!(
            missing.is_empty(),
            "round {round}: {} of {before} acknowledged writes lost, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        );
        eprintln!("round {round}: {before} acknowledged writes, all present after kill -9");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_restart_keeps_all_state() {
    let mut c = Cluster::up();
    let cl = client(&c);
    for i in 0..50 {
        cl.create(
            "/api/v1/namespaces/default/configmaps",
            &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("keep-{i}")}, "data": {"i": i.to_string()}}),
        )
        .await
        .unwrap();
    }
    let status = c.stop();
    assert!(status.success(), "wasmk up exited with {status} on SIGTERM");
    c.start("127.0.0.1:0");
    let cl = client(&c);
    for i in [0, 25, 49] {
        let v = cl
            .get(&format!("/api/v1/namespaces/default/configmaps/keep-{i}"))
            .await
            .unwrap();
        assert_eq!(v["data"]["i"], i.to_string());
    }
}
