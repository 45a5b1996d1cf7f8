//! Resource limits and their conversion from Kubernetes resources (pure).
//!
//! The formulas are the kubelet's (`pkg/kubelet/cm/helpers_linux.go` and the
//! cgroup v2 KEP 2254), so a pod gets the same kernel values it would get on
//! a Kubernetes node.

/// CFS bandwidth period Kubernetes uses, in microseconds (100 ms).
pub const CFS_PERIOD_US: u64 = 100_000;
/// Smallest CFS quota the kernel accepts and Kubernetes writes (1 ms).
pub const MIN_CFS_QUOTA_US: u64 = 1_000;
/// cgroup v1 `cpu.shares` bounds and default.
pub const MIN_SHARES: u64 = 2;
pub const MAX_SHARES: u64 = 262_144;
pub const DEFAULT_SHARES: u64 = 1024;
/// cgroup v2 `cpu.weight` bounds and default.
pub const MIN_WEIGHT: u64 = 1;
pub const MAX_WEIGHT: u64 = 10_000;
pub const DEFAULT_WEIGHT: u64 = 100;

/// The limits written into one cgroup. `None` means "no limit" (the kernel
/// default); `create` on an existing cgroup resets such a field to it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    /// CPU limit in millicores, enforced as a CFS quota over a 100 ms period.
    /// `Some(0)` means no limit, as in Kubernetes.
    pub cpu_millis: Option<u64>,
    /// Relative CPU weight in v1 `cpu.shares` units; v2 converts it to
    /// `cpu.weight`.
    pub cpu_shares: Option<u64>,
    /// Memory limit in bytes (swap is not allowed on top of it).
    pub memory_bytes: Option<u64>,
    /// Maximum number of tasks (processes and threads).
    pub pids_max: Option<u64>,
}

impl Limits {
    /// Limits for a container (or, with summed values, a pod) from its
    /// Kubernetes resources, as the kubelet computes them:
    /// - a missing CPU request defaults to the CPU limit (API defaulting);
    ///   shares come from the request and are never below 2, so best-effort
    ///   containers get the minimum weight;
    /// - a zero CPU or memory limit means no limit.
    pub fn from_resources(
        requests_cpu_milli: Option<u64>,
        limits_cpu_milli: Option<u64>,
        limits_memory_bytes: Option<u64>,
        pids: Option<u64>,
    ) -> Limits {
        let request = requests_cpu_milli.or(limits_cpu_milli).unwrap_or(0);
        Limits {
            cpu_millis: limits_cpu_milli.filter(|m| *m > 0),
            cpu_shares: Some(milli_cpu_to_shares(request)),
            memory_bytes: limits_memory_bytes.filter(|b| *b > 0),
            pids_max: pids,
        }
    }

    /// The CFS quota in microseconds per [`CFS_PERIOD_US`], if CPU is limited.
    pub fn cpu_quota_us(&self) -> Option<u64> {
        self.cpu_millis.and_then(milli_cpu_to_quota)
    }
}

/// Kubernetes `MilliCPUToQuota` with the 100 ms period: `None` for 0 (no
/// limit), never below 1 ms.
pub fn milli_cpu_to_quota(milli: u64) -> Option<u64> {
    if milli == 0 {
        return None;
    }
    Some((milli.saturating_mul(CFS_PERIOD_US) / 1000).max(MIN_CFS_QUOTA_US))
}

/// Kubernetes `MilliCPUToShares`: 1024 shares per CPU, clamped to
/// `[2, 262144]`.
pub fn milli_cpu_to_shares(milli: u64) -> u64 {
    (milli.saturating_mul(1024) / 1000).clamp(MIN_SHARES, MAX_SHARES)
}

/// cgroup v1 shares to v2 weight with the kubelet's linear mapping of
/// `[2, 262144]` onto `[1, 10000]` (KEP 2254); out-of-range shares are
/// clamped first.
pub fn shares_to_weight(shares: u64) -> u64 {
    let shares = shares.clamp(MIN_SHARES, MAX_SHARES);
    1 + (shares - MIN_SHARES) * (MAX_WEIGHT - MIN_WEIGHT) / (MAX_SHARES - MIN_SHARES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_table() {
        for (milli, want) in [
            (0, None),
            (1, Some(1_000)),
            (9, Some(1_000)),
            (10, Some(1_000)),
            (11, Some(1_100)),
            (100, Some(10_000)),
            (250, Some(25_000)),
            (1000, Some(100_000)),
            (2500, Some(250_000)),
            (u64::MAX, Some(u64::MAX / 1000)),
        ] {
            assert_eq!(milli_cpu_to_quota(milli), want, "{milli}m");
        }
    }

    #[test]
    fn shares_table() {
        for (milli, want) in [
            (0, 2),
            (1, 2),
            (2, 2),
            (3, 3),
            (100, 102),
            (250, 256),
            (500, 512),
            (1000, 1024),
            (256_000, 262_144),
            (300_000, 262_144),
            (u64::MAX, 262_144),
        ] {
            assert_eq!(milli_cpu_to_shares(milli), want, "{milli}m");
        }
    }

    #[test]
    fn weight_table() {
        for (shares, want) in [
            (0, 1),
            (2, 1),
            (3, 1),
            (28, 1),
            (29, 2),
            (102, 4),
            (1024, 39),
            (2048, 79),
            (262_144, 10_000),
            (1_000_000, 10_000),
        ] {
            assert_eq!(shares_to_weight(shares), want, "{shares} shares");
        }
    }

    #[test]
    fn from_resources_table() {
        let cases = [
            (
                "guaranteed",
                (Some(500), Some(500), Some(64 << 20), Some(100)),
                Limits {
                    cpu_millis: Some(500),
                    cpu_shares: Some(512),
                    memory_bytes: Some(64 << 20),
                    pids_max: Some(100),
                },
            ),
            (
                "burstable: request below limit",
                (Some(100), Some(1000), None, None),
                Limits {
                    cpu_millis: Some(1000),
                    cpu_shares: Some(102),
                    memory_bytes: None,
                    pids_max: None,
                },
            ),
            (
                "request defaults to limit",
                (None, Some(250), None, None),
                Limits {
                    cpu_millis: Some(250),
                    cpu_shares: Some(256),
                    ..Limits::default()
                },
            ),
            (
                "best effort gets minimum shares",
                (None, None, None, None),
                Limits {
                    cpu_shares: Some(2),
                    ..Limits::default()
                },
            ),
            (
                "zero limits mean unlimited",
                (Some(0), Some(0), Some(0), None),
                Limits {
                    cpu_shares: Some(2),
                    ..Limits::default()
                },
            ),
        ];
        for (name, (req, lim, mem, pids), want) in cases {
            assert_eq!(Limits::from_resources(req, lim, mem, pids), want, "{name}");
        }
    }

    #[test]
    fn quota_from_limits() {
        let limits = Limits::from_resources(None, Some(1500), None, None);
        assert_eq!(limits.cpu_quota_us(), Some(150_000));
        assert_eq!(Limits::default().cpu_quota_us(), None);
        let zero = Limits {
            cpu_millis: Some(0),
            ..Limits::default()
        };
        assert_eq!(zero.cpu_quota_us(), None);
    }
}
