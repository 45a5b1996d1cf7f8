//! Scheduler placement benchmark (docs/benchmarks.md, "scheduler placements/s").
//!
//! Builds a simulated cluster (varied allocatable, some tainted, cordoned,
//! not-ready or labelled nodes) and a stream of pods (varied requests, some
//! with node selectors, tolerations, preferred affinity and controller
//! owners, a few that fit nowhere), then times:
//! - `schedule_batch` over the whole stream on a fresh cache (throughput);
//! - `schedule_one` + `assume_pod` per pod on a fresh cache (latency).
//!
//! Both runs must agree pod for pod, and the placements are checked
//! independently of the scheduler's own plugins: no node over capacity, no
//! pod on a node it may not use.
//!
//! `cargo run --release -p wasmk-benchmarks --bin sched_bench -- --nodes 1000 --pods 10000`

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use wasmk::api::ObjectMeta;
use wasmk::api::OwnerReference;
use wasmk::api::core::{
    Affinity, Container, Node, NodeAffinity, NodeCondition, NodeSelectorRequirement,
    NodeSelectorTerm, Pod, PodSpec, PreferredSchedulingTerm, ResourceRequirements, Taint,
    Toleration,
};
use wasmk::api::quantity::Quantity;
use wasmk::scheduler::{Cache, FitError, PodInfo, Profile};
use wasmk_benchmarks::percentile;

#[derive(Parser, Debug)]
#[command(about = "Time the scheduler's placements on a simulated cluster")]
struct Args {
    /// Simulated nodes.
    #[arg(long, default_value_t = 1000)]
    nodes: usize,
    /// Pods to place.
    #[arg(long, default_value_t = 10_000)]
    pods: usize,
    /// Throughput runs (the median is reported).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Seed of the generated cluster.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// percentageOfNodesToScore (0 = Kubernetes' adaptive default, 100 = all nodes).
    #[arg(long, default_value_t = 0)]
    percentage: usize,
}

/// SplitMix64: small, seeded, good enough to vary a workload.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    /// True with probability `pct` percent.
    fn chance(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

fn q(s: &str) -> Quantity {
    Quantity(s.to_string())
}

fn make_nodes(n: usize, rng: &mut Rng) -> Vec<Node> {
    const SHAPES: [(&str, &str); 4] =
        [("4", "8Gi"), ("8", "16Gi"), ("16", "64Gi"), ("32", "128Gi")];
    (0..n)
        .map(|i| {
            let (cpu, mem) = rng.pick(&SHAPES);
            let pods = if rng.chance(50) { "110" } else { "250" };
            let mut labels = BTreeMap::new();
            labels.insert("kubernetes.io/hostname".to_string(), format!("node-{i:05}"));
            labels.insert(
                "topology.kubernetes.io/zone".to_string(),
                format!("zone-{}", i % 3),
            );
            if rng.chance(30) {
                labels.insert("disk".to_string(), "ssd".to_string());
            }
            let mut node = Node {
                metadata: ObjectMeta {
                    name: format!("node-{i:05}"),
                    uid: format!("node-uid-{i}"),
                    labels,
                    ..Default::default()
                },
                ..Default::default()
            };
            let alloc: BTreeMap<String, Quantity> = [
                ("cpu".to_string(), q(cpu)),
                ("memory".to_string(), q(mem)),
                ("pods".to_string(), q(pods)),
            ]
            .into();
            node.status.capacity = alloc.clone();
            node.status.allocatable = alloc;
            let roll = rng.below(100);
            let ready = if roll == 0 { "False" } else { "True" };
            node.status.conditions.push(NodeCondition {
                type_: "Ready".into(),
                status: ready.into(),
                ..Default::default()
            });
            if roll == 1 {
                node.spec.unschedulable = true;
            }
            if (2..7).contains(&roll) {
                node.spec.taints.push(Taint {
                    key: "dedicated".into(),
                    value: "gpu".into(),
                    effect: "NoSchedule".into(),
                    time_added: None,
                });
            }
            if (7..12).contains(&roll) {
                node.spec.taints.push(Taint {
                    key: "spot".into(),
                    value: String::new(),
                    effect: "PreferNoSchedule".into(),
                    time_added: None,
                });
            }
            node
        })
        .collect()
}

fn make_pods(n: usize, rng: &mut Rng) -> Vec<Pod> {
    const CPU: [&str; 5] = ["50m", "100m", "250m", "500m", "1"];
    const MEM: [&str; 6] = ["64Mi", "128Mi", "256Mi", "512Mi", "1Gi", "2Gi"];
    let owners = (n / 50).max(1) as u64;
    (0..n)
        .map(|i| {
            let mut requests = BTreeMap::new();
            if rng.chance(1) {
                // Bigger than any node: exercises the FitError path.
                requests.insert("cpu".to_string(), q("64"));
            } else if !rng.chance(5) {
                requests.insert("cpu".to_string(), q(rng.pick(&CPU)));
                requests.insert("memory".to_string(), q(rng.pick(&MEM)));
            }
            let mut spec = PodSpec {
                containers: vec![Container {
                    name: "main".into(),
                    image: "hello:1".into(),
                    resources: ResourceRequirements {
                        requests,
                        ..Default::default()
                    },
                    ..Default::default()
                }],
                scheduler_name: "default-scheduler".into(),
                ..Default::default()
            };
            if rng.chance(20) {
                spec.node_selector.insert("disk".into(), "ssd".into());
            }
            if rng.chance(5) {
                spec.tolerations.push(Toleration {
                    key: "dedicated".into(),
                    operator: "Equal".into(),
                    value: "gpu".into(),
                    effect: "NoSchedule".into(),
                    toleration_seconds: None,
                });
            }
            if rng.chance(10) {
                spec.affinity = Some(Affinity {
                    node_affinity: Some(NodeAffinity {
                        required_during_scheduling_ignored_during_execution: None,
                        preferred_during_scheduling_ignored_during_execution: vec![
                            PreferredSchedulingTerm {
                                weight: 50,
                                preference: NodeSelectorTerm {
                                    match_expressions: vec![NodeSelectorRequirement {
                                        key: "topology.kubernetes.io/zone".into(),
                                        operator: "In".into(),
                                        values: vec![format!("zone-{}", i % 3)],
                                    }],
                                    match_fields: vec![],
                                },
                            },
                        ],
                    }),
                    ..Default::default()
                });
            }
            let mut metadata = ObjectMeta {
                name: format!("pod-{i:06}"),
                namespace: "bench".into(),
                uid: format!("pod-uid-{i}"),
                ..Default::default()
            };
            if rng.chance(80) {
                let o = rng.below(owners);
                metadata.owner_references.push(OwnerReference {
                    api_version: "apps/v1".into(),
                    kind: "ReplicaSet".into(),
                    name: format!("rs-{o}"),
                    uid: format!("rs-uid-{o}"),
                    controller: Some(true),
                    block_owner_deletion: Some(true),
                });
            }
            Pod {
                metadata,
                spec,
                ..Default::default()
            }
        })
        .collect()
}

type Placements = Vec<Result<String, FitError>>;

/// Checks placements from the objects alone: capacity, cordons,
/// readiness, NoSchedule taints, node selectors.
fn validate(nodes: &[Node], pods: &[Pod], placed: &Placements) -> anyhow::Result<()> {
    let by_name: HashMap<&str, &Node> = nodes
        .iter()
        .map(|n| (n.metadata.name.as_str(), n))
        .collect();
    let mut used: HashMap<&str, (i64, i64, i64)> = HashMap::new();
    for (pod, r) in pods.iter().zip(placed) {
        let Ok(name) = r else { continue };
        let node = by_name
            .get(name.as_str())
            .with_context(|| format!("{} placed on unknown node {name}", pod.metadata.name))?;
        let (cpu, mem) = wasmk::api::core::pod_requests(&pod.spec);
        let u = used.entry(name.as_str()).or_default();
        u.0 += cpu;
        u.1 += mem;
        u.2 += 1;
        if node.spec.unschedulable {
            bail!("{} placed on cordoned {name}", pod.metadata.name);
        }
        if !node.is_ready() {
            bail!("{} placed on not-ready {name}", pod.metadata.name);
        }
        for t in node.spec.taints.iter().filter(|t| t.effect == "NoSchedule") {
            let tolerated = pod
                .spec
                .tolerations
                .iter()
                .any(|tol| tol.key == t.key && tol.value == t.value);
            if !tolerated {
                bail!(
                    "{} placed on {name} despite taint {}",
                    pod.metadata.name,
                    t.key
                );
            }
        }
        for (k, v) in &pod.spec.node_selector {
            if node.metadata.labels.get(k) != Some(v) {
                bail!(
                    "{} placed on {name} without label {k}={v}",
                    pod.metadata.name
                );
            }
        }
    }
    for node in nodes {
        let (cpu, mem, count) = used
            .get(node.metadata.name.as_str())
            .copied()
            .unwrap_or_default();
        let a = &node.status.allocatable;
        let cap = |k: &str, milli: bool| {
            a.get(k)
                .map(|q| if milli { q.milli_value() } else { q.value() })
                .unwrap_or(0)
        };
        if cpu > cap("cpu", true) || mem > cap("memory", false) || count > cap("pods", false) {
            bail!(
                "node {} overcommitted: cpu {cpu}m, memory {mem}, pods {count}",
                node.metadata.name
            );
        }
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut rng = Rng(args.seed);
    let nodes = make_nodes(args.nodes, &mut rng);
    let pods = make_pods(args.pods, &mut rng);
    let profile = Profile::default().with_percentage_of_nodes_to_score(args.percentage);

    let t = Instant::now();
    let infos: Vec<PodInfo> = pods.iter().map(PodInfo::from_pod).collect();
    let prep = t.elapsed();

    // Throughput: the whole stream through schedule_batch, several times.
    let mut batch_times: Vec<Duration> = Vec::new();
    let mut batch_result: Placements = Vec::new();
    for _ in 0..args.rounds.max(1) {
        let mut cache = Cache::from_objects(&nodes, []);
        let t = Instant::now();
        let results = profile.schedule_batch(&infos, &mut cache);
        batch_times.push(t.elapsed());
        batch_result = results.into_iter().map(|(_, r)| r).collect();
    }
    batch_times.sort();
    let median = batch_times[batch_times.len() / 2];

    // Latency: one decision plus its assumption at a time.
    let mut cache = Cache::from_objects(&nodes, []);
    let mut lat_us: Vec<f64> = Vec::with_capacity(infos.len());
    let mut one_result: Placements = Vec::with_capacity(infos.len());
    for p in &infos {
        let t = Instant::now();
        let r = profile.schedule_one(p, &cache);
        if let Ok(n) = &r {
            cache.assume_pod(p, n)?;
        }
        lat_us.push(t.elapsed().as_secs_f64() * 1e6);
        one_result.push(r);
    }
    lat_us.sort_by(f64::total_cmp);

    if batch_result != one_result {
        bail!("schedule_batch and schedule_one placed pods differently");
    }
    validate(&nodes, &pods, &batch_result)?;

    let placed = batch_result.iter().filter(|r| r.is_ok()).count();
    let failed = batch_result.len() - placed;
    let per_sec = infos.len() as f64 / median.as_secs_f64();
    let p50 = percentile(&lat_us, 50.0).unwrap_or(0.0);
    let p99 = percentile(&lat_us, 99.0).unwrap_or(0.0);
    let mean = lat_us.iter().sum::<f64>() / lat_us.len().max(1) as f64;
    let sample_error = batch_result
        .iter()
        .find_map(|r| r.as_ref().err())
        .map(|e| e.to_string())
        .unwrap_or_default();

    println!(
        "sched_bench: {} nodes, {} pods ({} placed, {} unschedulable), percentageOfNodesToScore={}",
        args.nodes,
        infos.len(),
        placed,
        failed,
        if args.percentage == 0 {
            "adaptive".to_string()
        } else {
            args.percentage.to_string()
        }
    );
    println!(
        "  PodInfo::from_pod:   {:.1} ms for all pods",
        prep.as_secs_f64() * 1e3
    );
    println!(
        "  schedule_batch:      {:.0} placements/s (median of {} runs, {:.1} ms per run)",
        per_sec,
        batch_times.len(),
        median.as_secs_f64() * 1e3
    );
    println!("  schedule_one+assume: p50 {p50:.1} us, p99 {p99:.1} us, mean {mean:.1} us");
    println!("  validation:          ok (no node over capacity, all constraints held)");
    if !sample_error.is_empty() {
        println!("  sample FitError:     {sample_error}");
    }
    println!(
        "{}",
        serde_json::json!({
            "bench": "sched",
            "nodes": args.nodes,
            "pods": infos.len(),
            "placed": placed,
            "unschedulable": failed,
            "percentage_of_nodes_to_score": args.percentage,
            "placements_per_sec": per_sec.round(),
            "p50_us": p50,
            "p99_us": p99,
        })
    );
    Ok(())
}
