//! Tests of the store through its handle, with an in-memory durable log.

use std::sync::Arc;

use parking_lot::Mutex;
use raft::eraftpb::{Entry, HardState, SnapshotMetadata};

use super::durable::Recovered;
use super::*;

/// A MemDurable the test keeps a handle to, to simulate crashes.
#[derive(Clone, Default)]
struct SharedMem(Arc<Mutex<MemDurable>>);

impl Durable for SharedMem {
    fn recover(&mut self) -> Result<Recovered, StoreError> {
        self.0.lock().recover()
    }
    fn append_entries(&mut self, e: &[Entry]) -> Result<(), StoreError> {
        self.0.lock().append_entries(e)
    }
    fn set_hard_state(&mut self, hs: &HardState) -> Result<(), StoreError> {
        self.0.lock().set_hard_state(hs)
    }
    fn sync(&mut self) -> Result<(), StoreError> {
        self.0.lock().sync()
    }
    fn save_snapshot(&mut self, m: &SnapshotMetadata, d: &[u8]) -> Result<(), StoreError> {
        self.0.lock().save_snapshot(m, d)
    }
}

fn open(mem: &SharedMem, snapshot_every: u64) -> Store {
    let opts = StoreOptions {
        raft: RaftOptions {
            snapshot_every,
            keep_entries: 2,
            tick: std::time::Duration::from_millis(10),
            ..Default::default()
        },
        ..Default::default()
    };
    Store::open(opts, Box::new(mem.clone()), Arc::new(NoPeers)).unwrap()
}

fn cm(name: &str, v: &str) -> Vec<u8> {
    format!(r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{name}"}},"data":{{"v":"{v}"}}}}"#)
        .into_bytes()
}

fn data_of(b: &bytes::Bytes) -> String {
    let v: serde_json::Value = serde_json::from_slice(b).unwrap();
    v["data"]["v"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn writes_apply_and_survive_a_crash() {
    let mem = SharedMem::default();
    let store = open(&mem, 1000);
    let a = store
        .txn(vec![Op::create("cm/a", cm("a", "1"))])
        .await
        .unwrap();
    let b = store
        .txn(vec![Op::update("cm/a", cm("a", "2"), a.rv)])
        .await
        .unwrap();
    assert!(b.rv > a.rv);
    // The applied index is current even when nobody waits on it.
    assert!(store.applied() >= b.rv);
    let stale = store
        .txn(vec![Op::update("cm/a", cm("a", "3"), a.rv)])
        .await;
    assert!(matches!(
        stale,
        Err(StoreError::Apply(ApplyError::Conflict { .. }))
    ));
    let rv = store.barrier().await.unwrap();
    assert!(rv >= b.rv);
    assert_eq!(
        store.read(|sm| data_of(&sm.get("cm/a").unwrap().value)),
        "2"
    );
    store.shutdown();
    drop(store);

    // Only what was synced survives; every acknowledged write was synced.
    let crashed = SharedMem(Arc::new(Mutex::new(mem.0.lock().crash())));
    let store = open(&crashed, 1000);
    store.barrier().await.unwrap();
    let got = store.read(|sm| sm.get("cm/a").cloned()).unwrap();
    assert_eq!(got.rv, b.rv);
    assert_eq!(data_of(&got.value), "2");
    // And the restarted store keeps working.
    store
        .txn(vec![Op::update("cm/a", cm("a", "4"), b.rv)])
        .await
        .unwrap();
}

#[tokio::test]
async fn proposals_are_batched_into_few_syncs() {
    let mem = SharedMem::default();
    let store = open(&mem, 100_000);
    store.barrier().await.unwrap();
    let before = mem.0.lock().syncs;
    let mut tasks = Vec::new();
    for i in 0..200 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            s.txn(vec![Op::create(format!("cm/{i}"), cm("x", "1"))])
                .await
                .unwrap()
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let syncs = mem.0.lock().syncs - before;
    assert_eq!(store.read(|sm| sm.count("cm/")), 200);
    assert!(
        syncs < 200,
        "expected batching, got {syncs} syncs for 200 writes"
    );
}

#[tokio::test]
async fn snapshots_compact_and_restore() {
    let mem = SharedMem::default();
    let store = open(&mem, 10);
    let mut last = 0;
    for i in 0..35 {
        last = store
            .txn(vec![Op::create(format!("cm/{i}"), cm("x", &i.to_string()))])
            .await
            .unwrap()
            .rv;
    }
    let snap_index = store.snapshot_now().await.unwrap();
    assert!(snap_index >= last);
    {
        let m = mem.0.lock();
        let r = m.clone().recover().unwrap();
        let (meta, _) = r.snapshot.expect("a snapshot was saved");
        assert!(meta.index >= 30);
        assert!(r.entries.iter().all(|e| e.index > meta.index));
    }
    store.shutdown();
    drop(store);
    let store = open(&SharedMem(Arc::new(Mutex::new(mem.0.lock().crash()))), 10);
    store.barrier().await.unwrap();
    assert_eq!(store.read(|sm| sm.count("cm/")), 35);
    assert_eq!(
        store.read(|sm| data_of(&sm.get("cm/34").unwrap().value)),
        "34"
    );
}

#[tokio::test]
async fn watch_delivers_in_order_and_resumes() {
    let mem = SharedMem::default();
    let store = open(&mem, 1000);
    let a = store
        .txn(vec![Op::create("cm/a", cm("a", "1"))])
        .await
        .unwrap();
    let mut w = store.watch("cm/", a.rv).unwrap();
    let mut w_other = store.watch("pods/", a.rv).unwrap();
    let b = store
        .txn(vec![Op::update("cm/a", cm("a", "2"), a.rv)])
        .await
        .unwrap();
    store
        .txn(vec![Op::create("pods/p", cm("p", "1"))])
        .await
        .unwrap();
    let c = store.txn(vec![Op::delete("cm/a", None)]).await.unwrap();
    let e1 = w.next().await.unwrap();
    assert_eq!((e1.kind, e1.rv), (EventType::Modified, b.rv));
    let e2 = w.next().await.unwrap();
    assert_eq!((e2.kind, e2.rv), (EventType::Deleted, c.rv));
    assert_eq!(w_other.next().await.unwrap().key.as_ref(), "pods/p");

    // Resuming from an older rv replays from history.
    let mut again = store.watch("cm/", a.rv).unwrap();
    assert_eq!(again.next().await.unwrap().rv, b.rv);

    // list_and_watch: consistent list plus later events.
    let (items, rv, mut sub) = store.list_and_watch("pods/");
    assert_eq!(items.len(), 1);
    let d = store
        .txn(vec![Op::create("pods/q", cm("q", "1"))])
        .await
        .unwrap();
    let e = sub.next().await.unwrap();
    assert!(e.rv > rv);
    assert_eq!(e.rv, d.rv);
}

#[tokio::test]
async fn too_old_resource_version_is_refused() {
    let mem = SharedMem::default();
    let opts = StoreOptions {
        raft: RaftOptions::default(),
        history: HistoryLimits {
            max_events: 2,
            max_bytes: usize::MAX,
        },
        blob_dir: None,
    };
    let store = Store::open(opts, Box::new(mem.clone()), Arc::new(NoPeers)).unwrap();
    let first = store
        .txn(vec![Op::create("cm/0", cm("x", "0"))])
        .await
        .unwrap();
    for i in 1..5 {
        store
            .txn(vec![Op::create(format!("cm/{i}"), cm("x", "0"))])
            .await
            .unwrap();
    }
    assert!(matches!(
        store.watch("cm/", first.rv),
        Err(StoreError::TooOld { .. })
    ));
}

#[tokio::test]
async fn a_lagging_watcher_catches_up_from_history() {
    let mem = SharedMem::default();
    let store = open(&mem, 100_000);
    let mut w = store.watch("cm/", store.barrier().await.unwrap()).unwrap();
    // More batches than the broadcast channel holds.
    for i in 0..5000 {
        store
            .txn(vec![Op::create(format!("cm/{i:05}"), cm("x", "0"))])
            .await
            .unwrap();
    }
    let mut n = 0;
    let mut last = 0;
    while n < 5000 {
        let e = w.next().await.unwrap();
        assert!(e.rv > last, "events out of order");
        last = e.rv;
        n += 1;
    }
}

#[tokio::test]
async fn disk_store_recovers_writes_and_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let opts = || StoreOptions {
        raft: RaftOptions {
            snapshot_every: 25,
            keep_entries: 5,
            ..Default::default()
        },
        ..Default::default()
    };
    let mut rvs = Vec::new();
    {
        let d = durable::DiskDurable::open(dir.path()).unwrap();
        let store = Store::open(opts(), Box::new(d), Arc::new(NoPeers)).unwrap();
        for i in 0..60 {
            rvs.push(
                store
                    .txn(vec![Op::create(format!("cm/{i}"), cm("x", &i.to_string()))])
                    .await
                    .unwrap()
                    .rv,
            );
        }
        // The directory is locked while the store runs.
        assert!(durable::DiskDurable::open(dir.path()).is_err());
        store.shutdown();
    }
    let d = durable::DiskDurable::open(dir.path()).unwrap();
    let store = Store::open(opts(), Box::new(d), Arc::new(NoPeers)).unwrap();
    store.barrier().await.unwrap();
    assert_eq!(store.read(|sm| sm.count("cm/")), 60);
    for (i, rv) in rvs.iter().enumerate() {
        let got = store
            .read(|sm| sm.get(&format!("cm/{i}")).cloned())
            .unwrap();
        assert_eq!(got.rv, *rv);
        assert_eq!(data_of(&got.value), i.to_string());
    }
    let next = store
        .txn(vec![Op::create("cm/after", cm("x", "y"))])
        .await
        .unwrap();
    assert!(next.rv > *rvs.last().unwrap());
}
