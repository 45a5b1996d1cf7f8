use super::*;
use crate::auth::{Pki, ServingNames};
use crate::store::command::Op;
use crate::store::{MemDurable, RaftOptions, StoreOptions};
use raft::eraftpb::{
    ConfChangeSingle, ConfChangeType, ConfChangeV2, ConfState, Snapshot, SnapshotMetadata,
};

fn snapshot_message(index: u64, data: Vec<u8>) -> Message {
    Message {
        msg_type: MessageType::MsgSnapshot as i32,
        from: 1,
        to: 2,
        term: 3,
        snapshot: Some(Snapshot {
            data,
            metadata: Some(SnapshotMetadata {
                conf_state: Some(ConfState {
                    voters: vec![1, 2],
                    ..Default::default()
                }),
                index,
                term: 3,
            }),
        }),
        ..Default::default()
    }
}

fn digest(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

async fn encode_stream(data: &[u8], blob_dir: Option<&Path>) -> Vec<u8> {
    let mut w = FrameWriter::new(Vec::new());
    write_snapshot_stream(&mut w, &snapshot_message(9, data.to_vec()), data, blob_dir)
        .await
        .unwrap();
    w.into_inner().await.unwrap()
}

#[tokio::test]
async fn a_snapshot_stream_round_trips_with_its_blob_chunks() {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..(3 * CHUNK + 17)).map(|i| (i % 251) as u8).collect();
    write_blob_chunk(src.path(), &digest('a'), 0, b"first").unwrap();
    write_blob_chunk(src.path(), &digest('a'), 1, b"second").unwrap();
    write_blob_chunk(src.path(), &digest('b'), 0, &vec![7u8; CHUNK]).unwrap();
    // Not chunks: ignored.
    std::fs::write(src.path().join("sha256-zz"), b"x").unwrap();
    std::fs::write(
        src.path()
            .join(blob_dir_name(&digest('a')).unwrap())
            .join(".000002.tmp"),
        b"partial",
    )
    .unwrap();
    let bytes = encode_stream(&data, Some(src.path())).await;
    let got = read_snapshot_stream(&mut bytes.as_slice(), "test", Some(dst.path()))
        .await
        .unwrap();
    assert_eq!(got.blobs, 3);
    let snap = got.message.snapshot.unwrap();
    assert_eq!(snap.data, data);
    assert_eq!(snap.metadata.unwrap().index, 9);
    assert_eq!(
        list_blob_chunks(dst.path())
            .into_iter()
            .map(|(d, c, p)| (d, c, std::fs::read(p).unwrap().len()))
            .collect::<Vec<_>>(),
        vec![
            (digest('a'), 0, 5),
            (digest('a'), 1, 6),
            (digest('b'), 0, CHUNK)
        ]
    );
}

#[tokio::test]
async fn damaged_snapshot_streams_are_refused() {
    let data = vec![5u8; 1000];
    let good = encode_stream(&data, None).await;
    // Where the data frame's payload starts: after the head frame.
    let head_len = u32::from_be_bytes([good[0], good[1], good[2], good[3]]) as usize;
    let data_at = 5 + head_len + 5;
    let mut flipped = good.clone();
    flipped[data_at + 10] ^= 0x40;
    let mut huge = good.clone();
    huge[..4].copy_from_slice(&(MAX_FRAME as u32 + 1).to_be_bytes());
    let mut wrong_tag = good.clone();
    wrong_tag[4] = TAG_SNAP_DATA;
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("bit flip", flipped, "checksum"),
        (
            "truncated",
            good[..good.len() - 3].to_vec(),
            "ends inside a frame",
        ),
        (
            "no end frame",
            good[..data_at + 1000].to_vec(),
            "before its end frame",
        ),
        ("oversized frame", huge, "exceeds the limit"),
        (
            "data before header",
            wrong_tag,
            "expected a snapshot header",
        ),
        ("empty", Vec::new(), "empty snapshot stream"),
    ];
    for (what, bytes, want) in cases {
        let err = read_snapshot_stream(&mut bytes.as_slice(), "test", None)
            .await
            .expect_err(what)
            .to_string();
        assert!(err.contains(want), "{what}: {err}");
    }
}

#[test]
fn raft_ids_are_stable_small_and_nonzero() {
    // The documented derivation, pinned: changing it would renumber
    // every existing cluster.
    assert_eq!(raft_id("m1"), raft_id("m1"));
    let ids: Vec<u64> = ["m1", "m2", "m3", "m4", "m5"]
        .iter()
        .map(|n| raft_id(n))
        .collect();
    for id in &ids {
        assert!((1..=65535).contains(id));
    }
    let mut unique = ids.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "{ids:?}");
    let d = Sha256::digest(b"m1");
    let want = 1 + u64::from_be_bytes(d[..8].try_into().unwrap()) % 65535;
    assert_eq!(raft_id("m1"), want);
}

#[test]
fn peer_urls() {
    let cases = [
        ("https://10.0.0.1:2380", Ok("10.0.0.1:2380")),
        ("https://m1.example.com:2380/", Ok("m1.example.com:2380")),
        ("https://[::1]:2380", Ok("[::1]:2380")),
        ("http://10.0.0.1:2380", Err("start with https://")),
        ("https://10.0.0.1", Err("port is missing")),
        ("https://10.0.0.1:x", Err("not a number")),
        ("https://::1:2380", Err("IPv6 in brackets")),
        ("https://h:1/path", Err("HOST:PORT")),
    ];
    for (url, want) in cases {
        match (dial_address(url), want) {
            (Ok(got), Ok(w)) => assert_eq!(got, w, "{url}"),
            (Err(e), Err(w)) => assert!(e.to_string().contains(w), "{url}: {e}"),
            (got, want) => panic!("{url}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn who_may_speak_for_whom() {
    let (m1, m2) = (raft_id("m1"), raft_id("m2"));
    assert!(authorize("m1", m1, m2, m2).is_ok());
    assert!(
        authorize("m1", m2, m1, m2)
            .unwrap_err()
            .contains("expected master")
    );
    assert!(
        authorize("admin", m1, m2, m2)
            .unwrap_err()
            .contains("cannot speak")
    );
    assert!(authorize("m2", m2, m2, m2).unwrap_err().contains("itself"));
}

/// Masters in one process, talking over loopback TLS.
struct Net {
    _dir: tempfile::TempDir,
    pki: Pki,
    names: Vec<String>,
    stores: Vec<Store>,
    transports: Vec<Arc<PeerTransport>>,
    addrs: Vec<String>,
    blob_dirs: Vec<PathBuf>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

fn options(name: &str, voters: &[u64]) -> StoreOptions {
    StoreOptions {
        raft: RaftOptions {
            id: raft_id(name),
            voters: voters.to_vec(),
            tick: Duration::from_millis(10),
            election_tick: 10,
            heartbeat_tick: 2,
            snapshot_every: 5,
            keep_entries: 0,
            request_timeout: Duration::from_secs(5),
        },
        ..Default::default()
    }
}

impl Net {
    async fn start(names: &[&str]) -> Net {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::load_or_create(&dir.path().join("pki"), &ServingNames::loopback()).unwrap();
        let mut net = Net {
            _dir: dir,
            pki,
            names: Vec::new(),
            stores: Vec::new(),
            transports: Vec::new(),
            addrs: Vec::new(),
            blob_dirs: Vec::new(),
            tasks: Vec::new(),
        };
        let voters: Vec<u64> = names.iter().map(|n| raft_id(n)).collect();
        for n in names {
            net.add(n, &voters).await;
        }
        net
    }

    /// Starts master `name` (voters empty: it waits to be added).
    async fn add(&mut self, name: &str, voters: &[u64]) -> usize {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = format!("https://{}", listener.local_addr().unwrap());
        let blob_dir = self._dir.path().join(format!("blobs-{name}"));
        let identity = self
            .pki
            .issue_peer_cert(name, &["127.0.0.1".parse().unwrap()])
            .unwrap();
        let t = PeerTransport::new(PeerConfig {
            id: raft_id(name),
            identity,
            ca_pem: self.pki.ca_cert_pem().to_string(),
            blob_dir: Some(blob_dir.clone()),
        })
        .unwrap();
        let mut opts = options(name, voters);
        opts.blob_dir = Some(blob_dir.clone());
        let store = Store::open(opts, Box::new(MemDurable::new()), t.clone()).unwrap();
        self.tasks.extend(t.start(listener, store.clone()));
        self.names.push(name.to_string());
        self.stores.push(store);
        self.transports.push(t);
        self.addrs.push(addr);
        self.blob_dirs.push(blob_dir);
        // Everyone learns everyone's address.
        for (i, t) in self.transports.iter().enumerate() {
            for (j, n) in self.names.iter().enumerate() {
                if i != j {
                    t.set_peer(
                        raft_id(n),
                        PeerAddr {
                            name: n.clone(),
                            url: self.addrs[j].clone(),
                        },
                    )
                    .unwrap();
                }
            }
        }
        self.stores.len() - 1
    }

    async fn leader(&self) -> usize {
        for _ in 0..500 {
            if let Some(i) = self.stores.iter().position(|s| s.role().is_leader) {
                return i;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no leader elected");
    }

    async fn stop(self) {
        for t in &self.transports {
            t.shutdown();
        }
        for t in self.tasks {
            let _ = t.await;
        }
        for s in self.stores {
            let _ = tokio::task::spawn_blocking(move || s.shutdown()).await;
        }
    }
}

fn cm(name: &str) -> Vec<u8> {
    format!(r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{name}"}}}}"#)
        .into_bytes()
}

/// Writes through any master with retries while leadership moves.
async fn write(store: &Store, key: &str) -> u64 {
    for _ in 0..100 {
        match store.txn(vec![Op::create(key, cm(key))]).await {
            Ok(a) => return a.rv,
            Err(crate::store::StoreError::NoLeader { .. }) => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            Err(e) => panic!("write {key}: {e}"),
        }
    }
    panic!("write {key}: no leader");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn masters_replicate_over_tls_and_followers_get_their_answers() {
    let net = Net::start(&["m1", "m2", "m3"]).await;
    let leader = net.leader().await;
    let f = (leader + 1) % 3;
    let other = (leader + 2) % 3;
    // A follower's write is forwarded to the leader; its caller gets the
    // result.
    let applied = net.stores[f]
        .txn(vec![Op::create("cm/a", cm("a"))])
        .await
        .unwrap();
    assert!(applied.rv > 0);
    // A linearizable read on the third master sees it.
    let index = net.stores[other].barrier().await.unwrap();
    assert!(index >= applied.rv);
    assert!(net.stores[other].read(|sm| sm.get("cm/a").is_some()));
    // A watch on a follower stays ordered across a leader change.
    let mut sub = net.stores[f].watch("cm/", applied.rv).unwrap();
    for i in 0..5 {
        write(&net.stores[leader], &format!("cm/before-{i}")).await;
    }
    net.stores[leader]
        .transfer_leader(net.stores[other].role().id)
        .unwrap();
    for _ in 0..300 {
        if net.stores[other].role().is_leader {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(net.stores[other].role().is_leader, "leadership moved");
    for i in 0..5 {
        write(&net.stores[f], &format!("cm/after-{i}")).await;
    }
    let mut seen = Vec::new();
    let mut last = 0;
    while seen.len() < 10 {
        let e = tokio::time::timeout(Duration::from_secs(10), sub.next())
            .await
            .expect("watch event in time")
            .unwrap();
        assert!(e.rv > last, "events out of order: {} after {last}", e.rv);
        last = e.rv;
        seen.push(e.key.to_string());
    }
    let want: Vec<String> = (0..5)
        .map(|i| format!("cm/before-{i}"))
        .chain((0..5).map(|i| format!("cm/after-{i}")))
        .collect();
    assert_eq!(seen, want);
    let status = net.stores[other].raft_status();
    assert_eq!(status.role, "Leader");
    assert_eq!(status.voters.len(), 3);
    assert_eq!(status.progress.len(), 3);
    net.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_added_later_receives_the_snapshot_and_the_module_blobs() {
    let mut net = Net::start(&["m1", "m2", "m3"]).await;
    let leader = net.leader().await;
    let blob = digest('c');
    net.stores[leader]
        .txn(vec![Op::blob_chunk(blob.clone(), 0, vec![9u8; 3000])])
        .await
        .unwrap();
    // Enough writes that the log is compacted past what a new master has.
    for i in 0..20 {
        write(&net.stores[leader], &format!("cm/{i}")).await;
    }
    let new = net.add("m4", &[]).await;
    let id = raft_id("m4");
    let cc = ConfChangeV2 {
        changes: vec![ConfChangeSingle {
            change_type: ConfChangeType::AddLearnerNode as i32,
            node_id: id,
        }],
        ..Default::default()
    };
    let cs = net.stores[leader].change_membership(cc).await.unwrap();
    assert!(cs.learners.contains(&id));
    let target = net.stores[leader].applied();
    tokio::time::timeout(
        Duration::from_secs(20),
        net.stores[new].wait_applied(target),
    )
    .await
    .expect("the new master caught up")
    .unwrap();
    assert_eq!(net.stores[new].read(|sm| sm.count("cm/")), 20);
    let chunk = net.blob_dirs[new]
        .join(blob_dir_name(&blob).unwrap())
        .join("000000");
    assert_eq!(std::fs::read(chunk).unwrap(), vec![9u8; 3000]);
    net.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_with_a_foreign_certificate_are_refused() {
    let net = Net::start(&["m1"]).await;
    let other = tempfile::tempdir().unwrap();
    let foreign = Pki::load_or_create(other.path(), &ServingNames::loopback()).unwrap();
    let attacker = foreign
        .issue_peer_cert("m2", &["127.0.0.1".parse().unwrap()])
        .unwrap();
    // The attacker trusts our CA (it is public) but its certificate is
    // from another one.
    let mut client = tls::client_config(net.pki.ca_cert_pem().as_bytes(), Some(&attacker)).unwrap();
    client.alpn_protocols = vec![ALPN.to_vec()];
    let connector = TlsConnector::from(Arc::new(client));
    let dial = dial_address(&net.addrs[0]).unwrap();
    let result = async {
        let mut tls = connect(
            raft_id("m2"),
            raft_id("m1"),
            KIND_MESSAGES,
            &dial,
            ServerName::try_from("m1".to_string()).unwrap(),
            &connector,
        )
        .await?;
        // TLS 1.3 reports a refused client certificate on the first read.
        let mut b = [0u8; 1];
        match tls.read(&mut b).await {
            Ok(0) => Err(malformed("m1", "closed")),
            Ok(_) => Ok(()),
            Err(e) => Err(io_err("read", "m1")(e)),
        }
    }
    .await;
    assert!(
        result.is_err(),
        "a certificate from another CA was accepted"
    );
    net.stop().await;
}
