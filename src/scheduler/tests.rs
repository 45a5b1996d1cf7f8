//! Whole-cycle scenarios and the no-overcommit property.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use proptest::prelude::*;

use super::plugins::test_util::{NodeBuilder, expr, node, pinned_to, pod};
use super::*;

fn cache(nodes: Vec<NodeBuilder>) -> Cache {
    let objs: Vec<_> = nodes.into_iter().map(NodeBuilder::obj).collect();
    Cache::from_objects(&objs, [])
}

fn message(r: Result<String, FitError>) -> String {
    match r {
        Ok(n) => panic!("expected a FitError, got node {n}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn fit_error_message_for_mixed_reasons() {
    let mut c = cache(vec![
        node("a"),
        node("b").ready("Unknown"),
        node("c").ready("Unknown"),
    ]);
    c.add_pod(&pod("old").request("", "6Gi").node_name("a").obj())
        .unwrap();
    let p = pod("p").request("", "4Gi").build();
    assert_eq!(
        message(schedule_one(&p, &c)),
        "0/3 nodes are available: 1 Insufficient memory, 2 node(s) had untolerated taint(s). \
         no new claims to deallocate, preemption: 0/3 nodes are available: \
         1 No preemption victims found for incoming pod, 2 Preemption is not helpful for scheduling."
    );
    // Asking for more than a node has: eviction cannot help anywhere.
    let huge = pod("h").request("", "16Gi").build();
    let err = schedule_one(&huge, &c).unwrap_err();
    assert_eq!(
        err.to_string(),
        "0/3 nodes are available: 1 Insufficient memory, 2 node(s) had untolerated taint(s). \
         no new claims to deallocate, preemption: 0/3 nodes are available: \
         3 Preemption is not helpful for scheduling."
    );
    assert_eq!(err.rejected_by, vec!["NodeResourcesFit", "TaintToleration"]);
}

#[test]
fn reasons_are_counted_per_node_and_sorted_as_strings() {
    let mut nodes: Vec<NodeBuilder> = (0..10)
        .map(|i| node(&format!("t{i}")).taint("dedicated", "gpu", "NoSchedule"))
        .collect();
    nodes.push(node("small1").capacity("1", "1Gi", "110"));
    nodes.push(node("small2").capacity("1", "1Gi", "110"));
    let c = cache(nodes);
    let p = pod("p").request("2", "2Gi").build();
    // "10 ..." sorts before "2 ..." as Kubernetes sorts the rendered strings;
    // each small node gives both reasons.
    assert_eq!(
        message(schedule_one(&p, &c)),
        "0/12 nodes are available: 10 node(s) had untolerated taint(s), 2 Insufficient cpu, \
         2 Insufficient memory. no new claims to deallocate, preemption: 0/12 nodes are available: \
         12 Preemption is not helpful for scheduling."
    );
}

#[test]
fn cordoned_nodes_are_skipped() {
    let c = cache(vec![node("a").cordoned(), node("b")]);
    assert_eq!(schedule_one(&pod("p").build(), &c).unwrap(), "b");
    let all = cache(vec![node("a").cordoned(), node("b").cordoned()]);
    assert_eq!(
        message(schedule_one(&pod("p").build(), &all)),
        "0/2 nodes are available: 2 node(s) were unschedulable. no new claims to deallocate, \
         preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling."
    );
    let tolerant = pod("p")
        .toleration(TAINT_UNSCHEDULABLE, "Exists", "", "NoSchedule")
        .build();
    assert!(schedule_one(&tolerant, &all).is_ok());
}

#[test]
fn not_ready_nodes_are_skipped() {
    let c = cache(vec![
        node("a").ready("False"),
        node("b").ready("Unknown"),
        node("c"),
    ]);
    for i in 0..5 {
        assert_eq!(
            schedule_one(&pod(&format!("p{i}")).build(), &c).unwrap(),
            "c"
        );
    }
    // Once the controller has tainted it, the taint alone keeps pods off.
    let tainted = cache(vec![
        node("a").taint(TAINT_UNREACHABLE, "", "NoSchedule"),
        node("b"),
    ]);
    assert_eq!(schedule_one(&pod("p").build(), &tainted).unwrap(), "b");
}

#[test]
fn tolerations_open_tainted_nodes() {
    let c = cache(vec![
        node("gpu").taint("dedicated", "gpu", "NoSchedule"),
        node("busy").capacity("4", "8Gi", "0"),
    ]);
    let plain = pod("p").build();
    assert_eq!(
        message(schedule_one(&plain, &c)),
        "0/2 nodes are available: 1 Too many pods, 1 node(s) had untolerated taint(s). \
         no new claims to deallocate, preemption: 0/2 nodes are available: \
         1 No preemption victims found for incoming pod, 1 Preemption is not helpful for scheduling."
    );
    let tolerant = pod("p")
        .toleration("dedicated", "Equal", "gpu", "NoSchedule")
        .build();
    assert_eq!(schedule_one(&tolerant, &c).unwrap(), "gpu");
}

#[test]
fn prefer_no_schedule_is_avoided_when_possible() {
    let c = cache(vec![
        node("a").taint("spot", "", "PreferNoSchedule"),
        node("b"),
    ]);
    for i in 0..5 {
        assert_eq!(
            schedule_one(&pod(&format!("p{i}")).build(), &c).unwrap(),
            "b"
        );
    }
}

#[test]
fn three_replicas_spread_over_three_equal_nodes() {
    for owner in ["rs-a", "rs-b", "rs-c", "rs-d"] {
        let mut c = cache(vec![node("n1"), node("n2"), node("n3")]);
        let pods: Vec<PodInfo> = (0..3)
            .map(|i| {
                pod(&format!("{owner}-{i}"))
                    .request("100m", "128Mi")
                    .owner(owner)
                    .build()
            })
            .collect();
        let results = schedule_batch(&pods, &mut c);
        let mut placed: Vec<String> = results.into_iter().map(|(_, r)| r.unwrap()).collect();
        placed.sort();
        assert_eq!(placed, vec!["n1", "n2", "n3"], "owner {owner}");
        c.check_consistency();
    }
}

#[test]
fn spreading_outweighs_a_small_load_difference() {
    let mut c = cache(vec![node("a"), node("b")]);
    c.add_pod(
        &pod("web-0")
            .request("100m", "128Mi")
            .owner("web")
            .node_name("a")
            .obj(),
    )
    .unwrap();
    c.add_pod(&pod("other").request("200m", "256Mi").node_name("b").obj())
        .unwrap();
    let next = pod("web-1").request("100m", "128Mi").owner("web").build();
    assert_eq!(schedule_one(&next, &c).unwrap(), "b");
}

#[test]
fn least_allocated_node_is_preferred() {
    let mut c = cache(vec![node("a"), node("b"), node("c")]);
    c.add_pod(&pod("x").request("2", "4Gi").node_name("a").obj())
        .unwrap();
    c.add_pod(&pod("y").request("1", "2Gi").node_name("b").obj())
        .unwrap();
    for i in 0..5 {
        let p = pod(&format!("p{i}")).request("500m", "1Gi").build();
        assert_eq!(schedule_one(&p, &c).unwrap(), "c");
    }
    // Bigger nodes are emptier in proportion.
    let c2 = cache(vec![
        node("small"),
        node("big").capacity("16", "32Gi", "110"),
    ]);
    assert_eq!(
        schedule_one(&pod("p").request("1", "1Gi").build(), &c2).unwrap(),
        "big"
    );
}

#[test]
fn preferred_affinity_steers_placement() {
    let c = cache(vec![
        node("a").label("disk", "hdd"),
        node("b").label("disk", "ssd"),
    ]);
    let p = pod("p").preferred(50, expr("disk", "In", &["ssd"])).build();
    assert_eq!(schedule_one(&p, &c).unwrap(), "b");
    let required = pod("q")
        .required(vec![expr("disk", "In", &["hdd"])])
        .build();
    assert_eq!(schedule_one(&required, &c).unwrap(), "a");
    let selector = pod("r").selector("disk", "nvme").build();
    assert_eq!(
        message(schedule_one(&selector, &c)),
        "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector. \
         no new claims to deallocate, preemption: 0/2 nodes are available: \
         2 Preemption is not helpful for scheduling."
    );
}

#[test]
fn node_name_pins_the_pod() {
    let c = cache(vec![node("a"), node("b")]);
    assert_eq!(
        schedule_one(&pod("p").node_name("b").build(), &c).unwrap(),
        "b"
    );
    assert_eq!(
        message(schedule_one(&pod("p").node_name("zzz").build(), &c)),
        "0/2 nodes are available: 2 node(s) didn't match the requested node name. \
         no new claims to deallocate, preemption: 0/2 nodes are available: \
         2 Preemption is not helpful for scheduling."
    );
}

#[test]
fn daemonset_pods_only_look_at_their_node() {
    let c = cache(vec![
        node("a"),
        node("b").capacity("4", "8Gi", "0"),
        node("c"),
    ]);
    let ds = pod("ds-b").required(vec![pinned_to("b")]).build();
    let err = schedule_one(&ds, &c).unwrap_err();
    assert_eq!(
        err.to_string(),
        "0/3 nodes are available: 1 Too many pods, 2 node(s) didn't satisfy plugin(s) [NodeAffinity]. \
         no new claims to deallocate, preemption: 0/3 nodes are available: \
         1 No preemption victims found for incoming pod, 2 Preemption is not helpful for scheduling."
    );
    assert_eq!(err.rejected_by, vec!["NodeAffinity", "NodeResourcesFit"]);
    let ds_a = pod("ds-a").required(vec![pinned_to("a")]).build();
    assert_eq!(schedule_one(&ds_a, &c).unwrap(), "a");
    let mut both = pinned_to("a");
    both.match_fields.extend(pinned_to("c").match_fields);
    assert_eq!(
        message(schedule_one(&pod("x").required(vec![both]).build(), &c)),
        "0/3 nodes are available: pod affinity terms conflict. no new claims to deallocate, \
         preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
    );
}

#[test]
fn no_nodes_at_all() {
    let err = schedule_one(&pod("p").build(), &Cache::new()).unwrap_err();
    assert_eq!(err.to_string(), "no nodes available to schedule pods");
    assert_eq!(err.condition_reason(), "SchedulerError");
}

#[test]
fn ties_are_broken_per_pod_and_reproducibly() {
    let c = cache(vec![node("a"), node("b"), node("c"), node("d")]);
    let pick = |i: usize| schedule_one(&pod(&format!("p{i}")).build(), &c).unwrap();
    let first: Vec<String> = (0..20).map(pick).collect();
    let again: Vec<String> = (0..20).map(pick).collect();
    assert_eq!(first, again);
    let distinct: std::collections::BTreeSet<_> = first.iter().collect();
    assert!(distinct.len() > 1, "every tie went to {first:?}");
}

#[test]
fn big_clusters_stop_searching_early() {
    let nodes: Vec<NodeBuilder> = (0..500).map(|i| node(&format!("n{i:03}"))).collect();
    let c = cache(nodes);
    // 500 nodes: 50 - 500/125 = 46% -> 230 feasible nodes are enough.
    schedule_one(&pod("p").build(), &c).unwrap();
    assert_eq!(c.next_start.load(Ordering::Relaxed), 230);
    schedule_one(&pod("q").build(), &c).unwrap();
    assert_eq!(c.next_start.load(Ordering::Relaxed), 460);
    let every = Profile::default().with_percentage_of_nodes_to_score(100);
    every.schedule_one(&pod("r").build(), &c).unwrap();
    assert_eq!(c.next_start.load(Ordering::Relaxed), 460);
}

#[test]
fn batch_reports_pods_already_placed() {
    let mut c = cache(vec![node("a"), node("b")]);
    let p = pod("p").build();
    let first = schedule_batch(std::slice::from_ref(&p), &mut c);
    let again = schedule_batch(std::slice::from_ref(&p), &mut c);
    assert_eq!(first, again);
    assert_eq!(first[0].0, "default/p");
    assert_eq!(c.pod_count(), 1);
}

/// A random cluster: capacities, taints, cordons, labels.
fn arb_node(i: usize) -> impl Strategy<Value = NodeBuilder> {
    (1u32..=8, 1u32..=16, 1u32..=6, 0u8..8, any::<bool>()).prop_map(
        move |(cpu, mem_gi, pods, kind, ssd)| {
            let mut n = node(&format!("n{i}")).capacity(
                &cpu.to_string(),
                &format!("{mem_gi}Gi"),
                &pods.to_string(),
            );
            n = match kind {
                0 => n.taint("dedicated", "gpu", "NoSchedule"),
                1 => n.cordoned(),
                2 => n.ready("False"),
                3 => n.taint("spot", "", "PreferNoSchedule"),
                _ => n,
            };
            if ssd { n.label("disk", "ssd") } else { n }
        },
    )
}

fn arb_pod(i: usize) -> impl Strategy<Value = PodInfo> {
    (0u32..=3000, 0u32..=4096, 0u8..6, 0u8..4).prop_map(move |(cpu, mem_mi, kind, owner)| {
        let mut p = pod(&format!("p{i}")).request(&format!("{cpu}m"), &format!("{mem_mi}Mi"));
        p = match kind {
            0 => p.selector("disk", "ssd"),
            1 => p.toleration("dedicated", "Exists", "", ""),
            2 => p.required(vec![pinned_to(&format!("n{}", i % 7))]),
            _ => p,
        };
        if owner > 0 {
            p = p.owner(&format!("rs{owner}"));
        }
        p.build()
    })
}

fn arb_cluster() -> impl Strategy<Value = (Vec<NodeBuilder>, Vec<PodInfo>)> {
    (1usize..12, 1usize..60).prop_flat_map(|(n, p)| {
        (
            (0..n).map(arb_node).collect::<Vec<_>>(),
            (0..p).map(arb_pod).collect::<Vec<_>>(),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Whatever the cluster, a batch never overcommits a node, never breaks
    /// a filter, and only gives up on pods that fit nowhere.
    #[test]
    fn batches_never_overcommit((nodes, pods) in arb_cluster()) {
        let objs: Vec<_> = nodes.into_iter().map(NodeBuilder::obj).collect();
        let mut c = Cache::from_objects(&objs, []);
        let results = schedule_batch(&pods, &mut c);
        prop_assert_eq!(results.len(), pods.len());

        // Recompute usage from the results, independently of the cache.
        let mut used: HashMap<&str, (i64, i64, i64)> = HashMap::new();
        for (p, (key, r)) in pods.iter().zip(&results) {
            prop_assert_eq!(key, &p.key());
            if let Ok(n) = r {
                let u = used.entry(n.as_str()).or_default();
                u.0 += p.requests.milli_cpu;
                u.1 += p.requests.memory;
                u.2 += 1;
                let info = c.node(n).expect("placed on a cached node");
                let profile = Profile::default();
                for f in profile.filters() {
                    // Usage now includes the pod itself; check the static filters.
                    if f.name() != "NodeResourcesFit" {
                        prop_assert!(f.filter(p, info).is_ok(), "{} rejects {} on {}", f.name(), p.key(), n);
                    }
                }
            }
        }
        for n in c.nodes() {
            let (cpu, mem, count) = used.get(n.name()).copied().unwrap_or_default();
            let a = n.allocatable();
            prop_assert!(cpu <= a.milli_cpu, "cpu {} > {} on {}", cpu, a.milli_cpu, n.name());
            prop_assert!(mem <= a.memory, "memory {} > {} on {}", mem, a.memory, n.name());
            prop_assert!(count <= a.pods, "pods {} > {} on {}", count, a.pods, n.name());
            prop_assert_eq!(n.requested().milli_cpu, cpu);
            prop_assert_eq!(i64::from(n.pod_count()), count);
        }
        c.check_consistency();

        // Nodes only fill up during a batch, so a pod that failed still fits nowhere.
        for (p, (_, r)) in pods.iter().zip(&results) {
            if let Err(e) = r {
                prop_assert_eq!(e.num_all_nodes, objs.len());
                let mut probe = Cache::from_objects(&objs, []);
                for (q, (_, rq)) in pods.iter().zip(&results) {
                    if let Ok(n) = rq {
                        probe.assume_pod(q, n).expect("replaying a placement");
                    }
                }
                prop_assert!(schedule_one(p, &probe).is_err(), "{} fits after all", p.key());
            }
        }
    }
}
