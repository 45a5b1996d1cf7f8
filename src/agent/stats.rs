//! Resource usage of the node and of each pod and container, read from
//! `/proc` and the pods' cgroups, served in the shape of the kubelet's
//! Summary API (`/stats/summary`, the fields metrics-server uses). CPU
//! rates are the change since the previous sample (taken periodically), or
//! the average since start when there is none yet.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::sync::watch;

use super::Ctx;
use super::sysinfo;

/// One cumulative CPU reading.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Sample {
    at: Instant,
    cpu_ns: u64,
}

/// A CPU rate in nanocores from two readings; `None` when they are too
/// close together to mean anything.
fn rate(prev: Sample, now: Sample) -> Option<u64> {
    let dt = now.at.checked_duration_since(prev.at)?;
    if dt < Duration::from_millis(200) {
        return None;
    }
    let used = now.cpu_ns.saturating_sub(prev.cpu_ns) as f64;
    Some((used / dt.as_secs_f64()) as u64)
}

/// Average nanocores over a lifetime of `alive`.
fn lifetime_rate(cpu_ns: u64, alive: chrono::Duration) -> u64 {
    let secs = alive.num_milliseconds().max(1) as f64 / 1000.0;
    (cpu_ns as f64 / secs) as u64
}

/// Samples usage and answers summary requests.
pub struct Collector {
    ctx: Arc<Ctx>,
    /// Last periodic sample per cgroup (`uid` or `uid/container`) and "node".
    samples: Mutex<HashMap<String, Sample>>,
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

impl Collector {
    pub fn new(ctx: Arc<Ctx>) -> Collector {
        Collector {
            ctx,
            samples: Mutex::new(HashMap::new()),
        }
    }

    /// Reads the CPU counter of a pod's (or container's) cgroup.
    fn read_cpu(&self, uid: &str, container: Option<&str>) -> Option<(u64, Option<u64>)> {
        let mgr = self.ctx.cgroups.manager().ok()?;
        let path = match container {
            Some(c) => self.ctx.cgroups.container(uid, c).ok()?,
            None => self.ctx.cgroups.pod(uid).ok()?,
        };
        let s = mgr.stats(&path).ok()?;
        Some((s.cpu_usage_nanos?, s.memory_bytes))
    }

    /// Takes a sample of every active pod and of the node.
    pub fn sample(&self) {
        let now = Instant::now();
        let mut fresh = HashMap::new();
        if let Some((busy, _)) = sysinfo::cpu_time() {
            fresh.insert(
                "node".to_string(),
                Sample {
                    at: now,
                    cpu_ns: busy,
                },
            );
        }
        for p in self.ctx.index.all().iter().filter(|p| p.active) {
            if let Some((cpu, _)) = self.read_cpu(&p.uid, None) {
                fresh.insert(
                    p.uid.clone(),
                    Sample {
                        at: now,
                        cpu_ns: cpu,
                    },
                );
            }
            for c in &p.containers {
                if let Some((cpu, _)) = self.read_cpu(&p.uid, Some(c)) {
                    fresh.insert(
                        format!("{}/{c}", p.uid),
                        Sample {
                            at: now,
                            cpu_ns: cpu,
                        },
                    );
                }
            }
        }
        *self.samples.lock() = fresh;
    }

    /// Samples every `every` until `shutdown`.
    pub async fn run(self: Arc<Self>, every: Duration, mut shutdown: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let me = self.clone();
                    let _ = tokio::task::spawn_blocking(move || me.sample()).await;
                }
                _ = super::stopped(&mut shutdown) => return,
            }
        }
    }

    fn usage(
        &self,
        key: &str,
        cpu_ns: u64,
        since: Option<DateTime<Utc>>,
        at: Instant,
    ) -> (u64, Option<Duration>) {
        let prev = self.samples.lock().get(key).copied();
        let now = Sample { at, cpu_ns };
        match prev.and_then(|p| rate(p, now).map(|r| (r, now.at - p.at))) {
            Some((r, window)) => (r, Some(window)),
            None => (
                since.map_or(0, |s| lifetime_rate(cpu_ns, Utc::now() - s)),
                None,
            ),
        }
    }

    /// The Summary document (blocking: reads cgroups).
    pub fn summary(&self) -> Value {
        let at = Instant::now();
        let now = rfc3339(Utc::now());
        let window = |w: Option<Duration>| w.map(|d| format!("{:.3}s", d.as_secs_f64()));
        let facts = sysinfo::host_facts(&self.ctx.cfg.data_dir);
        let (node_cpu, node_window) = match sysinfo::cpu_time() {
            Some((busy, _)) => self.usage("node", busy, None, at),
            None => (0, None),
        };
        let node_cpu_total = sysinfo::cpu_time().map(|(b, _)| b).unwrap_or(0);
        let working_set = facts.memory_total.saturating_sub(facts.memory_available);
        let mut pods = Vec::new();
        for p in self.ctx.index.all().iter().filter(|p| p.active) {
            let started = p.status.start_time.map(|t| t.0);
            let Some((pod_cpu, pod_mem)) = self.read_cpu(&p.uid, None) else {
                continue;
            };
            let (pod_rate, pod_window) = self.usage(&p.uid, pod_cpu, started, at);
            let mut containers = Vec::new();
            for c in &p.containers {
                let running = p
                    .status
                    .container_statuses
                    .iter()
                    .chain(&p.status.init_container_statuses)
                    .find(|s| &s.name == c)
                    .and_then(|s| s.state.running.as_ref());
                let Some(running) = running else { continue };
                let Some((cpu, mem)) = self.read_cpu(&p.uid, Some(c)) else {
                    continue;
                };
                let since = running.started_at.map(|t| t.0);
                let (r, _) = self.usage(&format!("{}/{c}", p.uid), cpu, since, at);
                containers.push(json!({
                    "name": c,
                    "startTime": since.map(rfc3339),
                    "cpu": {"time": now, "usageNanoCores": r, "usageCoreNanoSeconds": cpu},
                    "memory": {"time": now, "workingSetBytes": mem.unwrap_or(0)},
                }));
            }
            pods.push(json!({
                "podRef": {"name": p.name, "namespace": p.namespace, "uid": p.uid},
                "startTime": started.map(rfc3339),
                "window": window(pod_window),
                "cpu": {"time": now, "usageNanoCores": pod_rate, "usageCoreNanoSeconds": pod_cpu},
                "memory": {"time": now, "workingSetBytes": pod_mem.unwrap_or(0)},
                "containers": containers,
            }));
        }
        json!({
            "node": {
                "nodeName": self.ctx.cfg.node_name,
                "window": window(node_window),
                "cpu": {"time": now, "usageNanoCores": node_cpu, "usageCoreNanoSeconds": node_cpu_total},
                "memory": {
                    "time": now,
                    "workingSetBytes": working_set,
                    "availableBytes": facts.memory_available,
                    "usageBytes": working_set,
                },
            },
            "pods": pods,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates() {
        let t0 = Instant::now();
        let a = Sample {
            at: t0,
            cpu_ns: 1_000_000_000,
        };
        let b = Sample {
            at: t0 + Duration::from_secs(2),
            cpu_ns: 2_000_000_000,
        };
        assert_eq!(rate(a, b), Some(500_000_000));
        let close = Sample {
            at: t0 + Duration::from_millis(10),
            cpu_ns: 1_500_000_000,
        };
        assert_eq!(rate(a, close), None);
        assert_eq!(rate(b, a), None, "readings out of order");
        assert_eq!(
            lifetime_rate(3_000_000_000, chrono::Duration::seconds(6)),
            500_000_000
        );
        assert_eq!(lifetime_rate(5, chrono::Duration::zero()), 5000);
    }
}
