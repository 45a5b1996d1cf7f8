//! The manager against temporary directory trees that imitate cgroupfs.
//!
//! The kernel fills a new cgroup directory with interface files; a plain
//! directory does not, so these tests pre-create the cgroups they use with
//! the files a kernel would show (the "existing cgroup" path of `create`).
//! The fresh-cgroup path runs against the real kernel in `real_tests`.

use std::fs;
use std::path::{Path, PathBuf};

use tempfile::TempDir;

use super::*;

const V1_UNLIMITED: &str = "9223372036854771712";

fn write(path: &Path, content: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn path(p: &str) -> CgroupPath {
    CgroupPath::new(p).unwrap()
}

/// A fake v1 host: one directory per hierarchy, named by its controllers
/// (`cpu,cpuacct`), as systemd mounts them.
struct FakeV1 {
    tmp: TempDir,
    hierarchies: Vec<&'static str>,
    memsw: bool,
}

impl FakeV1 {
    fn new(hierarchies: &[&'static str], memsw: bool) -> FakeV1 {
        let fake = FakeV1 {
            tmp: tempfile::tempdir().unwrap(),
            hierarchies: hierarchies.to_vec(),
            memsw,
        };
        for h in hierarchies {
            fake.add_files(&fake.tmp.path().join(h), h);
        }
        fake
    }

    fn manager(&self) -> CgroupManager {
        let hierarchies = self
            .hierarchies
            .iter()
            .map(|h| V1Hierarchy {
                mount: self.mount(h),
                controllers: h.split(',').map(str::to_string).collect(),
            })
            .collect();
        CgroupManager::from_layout(Layout::V1 { hierarchies }).unwrap()
    }

    fn mount(&self, hierarchy: &str) -> PathBuf {
        self.tmp.path().join(hierarchy)
    }

    fn file(&self, hierarchy: &str, cgroup: &str, name: &str) -> PathBuf {
        self.mount(hierarchy).join(cgroup).join(name)
    }

    /// Makes `cgroup` and its parents in every hierarchy, as the kernel
    /// would show them.
    fn add_cgroup(&self, cgroup: &str) {
        for h in &self.hierarchies {
            let mut dir = self.mount(h);
            for component in cgroup.split('/') {
                dir.push(component);
                if !dir.exists() {
                    self.add_files(&dir, h);
                }
            }
        }
    }

    fn add_files(&self, dir: &Path, hierarchy: &str) {
        write(&dir.join("cgroup.procs"), "");
        for controller in hierarchy.split(',') {
            let files: &[(&str, &str)] = match controller {
                "cpu" => &[
                    ("cpu.cfs_period_us", "100000\n"),
                    ("cpu.cfs_quota_us", "-1\n"),
                    ("cpu.shares", "1024\n"),
                ],
                "cpuacct" => &[("cpuacct.usage", "0\n")],
                "memory" => &[
                    ("memory.limit_in_bytes", V1_UNLIMITED),
                    ("memory.swappiness", "60\n"),
                    ("memory.usage_in_bytes", "0\n"),
                    ("memory.stat", "cache 0\nrss 0\n"),
                    (
                        "memory.oom_control",
                        "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
                    ),
                    ("memory.failcnt", "0\n"),
                ],
                "pids" => &[("pids.max", "max\n"), ("pids.current", "0\n")],
                "freezer" => &[("freezer.state", "THAWED\n")],
                _ => &[],
            };
            for (name, content) in files {
                write(&dir.join(name), content);
            }
            if controller == "memory" && self.memsw {
                write(&dir.join("memory.memsw.limit_in_bytes"), V1_UNLIMITED);
            }
        }
    }
}

const ALL_LIMITS: Limits = Limits {
    cpu_millis: Some(500),
    cpu_shares: Some(512),
    memory_bytes: Some(64 << 20),
    pids_max: Some(32),
};

#[test]
fn v1_separate_hierarchies_get_every_limit() {
    let fake = FakeV1::new(&["cpu", "cpuacct", "memory", "pids", "freezer"], true);
    let mgr = fake.manager();
    assert_eq!(mgr.version(), CgroupVersion::V1);
    assert_eq!(
        mgr.controllers(),
        vec![
            Controller::Cpu,
            Controller::Cpuacct,
            Controller::Memory,
            Controller::Pids,
            Controller::Freezer
        ]
    );
    let c1 = "wasmk/podA/c1";
    fake.add_cgroup(c1);
    mgr.create(&path(c1), &ALL_LIMITS).unwrap();

    for (hierarchy, file, want) in [
        ("cpu", "cpu.cfs_period_us", "100000"),
        ("cpu", "cpu.cfs_quota_us", "50000"),
        ("cpu", "cpu.shares", "512"),
        ("memory", "memory.limit_in_bytes", "67108864"),
        ("memory", "memory.memsw.limit_in_bytes", "67108864"),
        ("memory", "memory.swappiness", "0"),
        ("pids", "pids.max", "32"),
    ] {
        assert_eq!(read(&fake.file(hierarchy, c1, file)), want, "{file}");
    }
    // Parents keep their values: limits go to the named cgroup only.
    assert_eq!(
        read(&fake.file("cpu", "wasmk/podA", "cpu.cfs_quota_us")),
        "-1\n"
    );

    let procs = mgr.procs_files(&path(c1));
    let want: Vec<PathBuf> = fake
        .hierarchies
        .iter()
        .map(|h| fake.file(h, c1, "cgroup.procs"))
        .collect();
    assert_eq!(procs, want);
}

#[test]
fn v1_create_on_existing_cgroup_resets_unset_limits() {
    let fake = FakeV1::new(&["cpu,cpuacct", "memory", "pids"], true);
    let mgr = fake.manager();
    fake.add_cgroup("wasmk/podA");
    let pod = path("wasmk/podA");
    assert!(!mgr.create(&pod, &ALL_LIMITS).unwrap(), "it existed");
    mgr.create(&pod, &Limits::default()).unwrap();
    for (hierarchy, file, want) in [
        ("cpu,cpuacct", "cpu.cfs_quota_us", "-1"),
        ("cpu,cpuacct", "cpu.shares", "1024"),
        ("memory", "memory.limit_in_bytes", "-1"),
        ("memory", "memory.memsw.limit_in_bytes", "-1"),
        ("pids", "pids.max", "max"),
    ] {
        assert_eq!(
            read(&fake.file(hierarchy, "wasmk/podA", file)),
            want,
            "{file}"
        );
    }
}

#[test]
fn v1_comounted_cpu_cpuacct_is_one_hierarchy() {
    let fake = FakeV1::new(&["cpu,cpuacct", "memory", "pids"], false);
    let mgr = fake.manager();
    assert_eq!(
        mgr.controllers(),
        vec![
            Controller::Cpu,
            Controller::Cpuacct,
            Controller::Memory,
            Controller::Pids
        ]
    );
    let c1 = "wasmk/podA/c1";
    fake.add_cgroup(c1);
    mgr.create(&path(c1), &ALL_LIMITS).unwrap();
    assert_eq!(mgr.procs_files(&path(c1)).len(), 3);
    assert_eq!(
        read(&fake.file("cpu,cpuacct", c1, "cpu.cfs_quota_us")),
        "50000"
    );

    write(
        &fake.file("cpu,cpuacct", c1, "cpuacct.usage"),
        "123456789\n",
    );
    let stats = mgr.stats(&path(c1)).unwrap();
    assert_eq!(stats.cpu_usage_nanos, Some(123_456_789));
}

#[test]
fn v1_without_swap_accounting_writes_only_the_limit() {
    let fake = FakeV1::new(&["memory"], false);
    let mgr = fake.manager();
    fake.add_cgroup("wasmk/podA");
    mgr.create(&path("wasmk/podA"), &ALL_LIMITS.with_only_memory())
        .unwrap();
    assert_eq!(
        read(&fake.file("memory", "wasmk/podA", "memory.limit_in_bytes")),
        "67108864"
    );
    assert!(
        !fake
            .file("memory", "wasmk/podA", "memory.memsw.limit_in_bytes")
            .exists()
    );
}

impl Limits {
    fn with_only_memory(self) -> Limits {
        Limits {
            memory_bytes: self.memory_bytes,
            ..Limits::default()
        }
    }
}

#[test]
fn missing_controller_fails_only_the_limit_that_needs_it() {
    let fake = FakeV1::new(&["cpu,cpuacct", "memory"], false);
    let mgr = fake.manager();
    let c1 = path("wasmk/podA/c1");
    match mgr.create(&c1, &ALL_LIMITS) {
        Err(CgroupError::ControllerUnavailable {
            controller,
            needed_for,
        }) => {
            assert_eq!(controller, Controller::Pids);
            assert_eq!(needed_for, "pids limit");
        }
        other => panic!("got {other:?}"),
    }
    assert!(
        !mgr.exists(&c1),
        "nothing is created when a controller is missing"
    );

    let err = mgr.create(&c1, &ALL_LIMITS).unwrap_err().to_string();
    assert!(err.contains("pids"), "{err}");

    fake.add_cgroup(c1.as_str());
    let without_pids = Limits {
        pids_max: None,
        ..ALL_LIMITS
    };
    mgr.create(&c1, &without_pids).unwrap();
    let stats = mgr.stats(&c1).unwrap();
    assert_eq!(stats.pids_current, None);
    assert_eq!(stats.memory_limit, Some(64 << 20));
}

#[test]
fn v1_memory_only_host_reports_what_it_has() {
    let fake = FakeV1::new(&["memory"], false);
    let mgr = fake.manager();
    assert_eq!(mgr.controllers(), vec![Controller::Memory]);
    let cpu = Limits {
        cpu_millis: Some(100),
        ..Limits::default()
    };
    assert!(matches!(
        mgr.create(&path("wasmk/p"), &cpu),
        Err(CgroupError::ControllerUnavailable {
            controller: Controller::Cpu,
            ..
        })
    ));
    fake.add_cgroup("wasmk/p");
    let stats = mgr.stats(&path("wasmk/p")).unwrap();
    assert_eq!(stats.cpu_usage_nanos, None);
    assert_eq!(stats.memory_bytes, Some(0));
    assert_eq!(stats.memory_limit, None);
}

#[test]
fn v1_stats_working_set_and_oom_kills() {
    let fake = FakeV1::new(&["cpuacct", "memory", "pids"], true);
    let mgr = fake.manager();
    let c1 = "wasmk/podA/c1";
    fake.add_cgroup(c1);
    write(&fake.file("cpuacct", c1, "cpuacct.usage"), "5000\n");
    write(
        &fake.file("memory", c1, "memory.usage_in_bytes"),
        "10485760\n",
    );
    write(
        &fake.file("memory", c1, "memory.stat"),
        "cache 4194304\ninactive_file 1\ntotal_cache 4194304\ntotal_inactive_file 2097152\n",
    );
    write(
        &fake.file("memory", c1, "memory.limit_in_bytes"),
        "67108864\n",
    );
    write(
        &fake.file("memory", c1, "memory.oom_control"),
        "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
    );
    write(&fake.file("memory", c1, "memory.failcnt"), "40\n");
    write(&fake.file("pids", c1, "pids.current"), "3\n");
    assert_eq!(
        mgr.stats(&path(c1)).unwrap(),
        Stats {
            cpu_usage_nanos: Some(5000),
            memory_bytes: Some(8 << 20),
            memory_limit: Some(64 << 20),
            pids_current: Some(3),
            oom_kills: 2,
        }
    );

    // Before Linux 4.13 oom_control has no oom_kill line: fall back to failcnt.
    write(
        &fake.file("memory", c1, "memory.oom_control"),
        "oom_kill_disable 0\nunder_oom 0\n",
    );
    assert_eq!(mgr.stats(&path(c1)).unwrap().oom_kills, 40);
}

#[test]
fn v1_missing_interface_file_is_an_error_naming_it() {
    let fake = FakeV1::new(&["cpu"], false);
    let mgr = fake.manager();
    // A plain mkdir gets no interface files, unlike a kernel cgroup.
    match mgr.create(&path("wasmk/podA"), &ALL_LIMITS.with_only_cpu()) {
        Err(CgroupError::Io { op, path, .. }) => {
            assert_eq!(op, "write limit");
            assert_eq!(path, fake.file("cpu", "wasmk/podA", "cpu.cfs_quota_us"));
        }
        other => panic!("got {other:?}"),
    }
}

impl Limits {
    fn with_only_cpu(self) -> Limits {
        Limits {
            cpu_millis: self.cpu_millis,
            cpu_shares: self.cpu_shares,
            ..Limits::default()
        }
    }
}

#[test]
fn v1_list_pods_unions_hierarchies() {
    let fake = FakeV1::new(&["cpu", "memory"], false);
    let mgr = fake.manager();
    fake.add_cgroup("wasmk/podaaa/c1");
    fake.add_cgroup("wasmk/podbbb");
    fs::create_dir_all(fake.mount("memory").join("wasmk/podccc")).unwrap();
    fs::create_dir_all(fake.mount("cpu").join("wasmk/other")).unwrap();
    fs::create_dir_all(fake.mount("cpu").join("wasmk/pod")).unwrap();
    write(&fake.mount("cpu").join("wasmk/podfile"), "");
    assert_eq!(
        mgr.list_pods(&path("wasmk")).unwrap(),
        vec!["aaa".to_string(), "bbb".to_string(), "ccc".to_string()]
    );
    assert!(mgr.list_pods(&path("elsewhere")).unwrap().is_empty());
}

#[test]
fn add_pid_and_pids_use_every_hierarchy() {
    let fake = FakeV1::new(&["cpu", "memory", "pids"], false);
    let mgr = fake.manager();
    fake.add_cgroup("wasmk/podA/c1");
    let c1 = path("wasmk/podA/c1");
    mgr.add_pid(&c1, 4242).unwrap();
    for h in ["cpu", "memory", "pids"] {
        assert_eq!(read(&fake.file(h, c1.as_str(), "cgroup.procs")), "4242");
    }
    assert_eq!(mgr.pids(&c1).unwrap(), vec![4242]);
    match mgr.add_pid(&path("wasmk/podB/c1"), 1) {
        Err(CgroupError::Io { path, .. }) => {
            assert_eq!(path, fake.file("cpu", "wasmk/podB/c1", "cgroup.procs"))
        }
        other => panic!("got {other:?}"),
    }
}

#[test]
fn missing_cgroups_are_empty_and_removed() {
    let fake = FakeV1::new(&["cpu", "memory", "freezer"], false);
    let mgr = fake.manager();
    let gone = path("wasmk/podgone");
    assert!(!mgr.exists(&gone));
    assert!(mgr.pids(&gone).unwrap().is_empty());
    mgr.kill_all(&gone).unwrap();
    mgr.remove(&gone).unwrap();
}

/// A fake v2 host whose root offers `offered` controllers.
struct FakeV2 {
    tmp: TempDir,
}

impl FakeV2 {
    fn new(offered: &str) -> FakeV2 {
        let fake = FakeV2 {
            tmp: tempfile::tempdir().unwrap(),
        };
        let root = fake.tmp.path();
        write(&root.join("cgroup.controllers"), &format!("{offered}\n"));
        write(&root.join("cgroup.subtree_control"), "");
        write(&root.join("cgroup.procs"), "1\n");
        fake
    }

    fn manager(&self) -> CgroupManager {
        CgroupManager::from_layout(Layout::V2 {
            mount: self.tmp.path().to_path_buf(),
        })
        .unwrap()
    }

    fn file(&self, cgroup: &str, name: &str) -> PathBuf {
        self.tmp.path().join(cgroup).join(name)
    }

    /// Makes `cgroup` and its parents with the files of a cgroup that has
    /// `offered` controllers, swap accounting or not.
    fn add_cgroup(&self, cgroup: &str, offered: &str, swap: bool) {
        let mut dir = self.tmp.path().to_path_buf();
        for component in cgroup.split('/') {
            dir.push(component);
            if dir.exists() {
                continue;
            }
            let mut files = vec![
                ("cgroup.controllers", format!("{offered}\n")),
                ("cgroup.subtree_control", String::new()),
                ("cgroup.procs", String::new()),
                ("cgroup.freeze", "0\n".to_string()),
                ("cgroup.kill", String::new()),
                (
                    "cpu.stat",
                    "usage_usec 0\nuser_usec 0\nsystem_usec 0\n".to_string(),
                ),
                ("cpu.max", "max 100000\n".to_string()),
                ("cpu.weight", "100\n".to_string()),
                ("memory.max", "max\n".to_string()),
                ("memory.current", "0\n".to_string()),
                (
                    "memory.stat",
                    "anon 0\nfile 0\ninactive_file 0\n".to_string(),
                ),
                (
                    "memory.events",
                    "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n".to_string(),
                ),
                ("pids.max", "max\n".to_string()),
                ("pids.current", "0\n".to_string()),
            ];
            if swap {
                files.push(("memory.swap.max", "max\n".to_string()));
            }
            for (name, content) in files {
                write(&dir.join(name), &content);
            }
        }
    }
}

#[test]
fn v2_delegates_controllers_down_to_the_parent() {
    let fake = FakeV2::new("cpuset cpu io memory hugetlb pids rdma misc");
    let mgr = fake.manager();
    assert_eq!(mgr.version(), CgroupVersion::V2);
    assert_eq!(
        mgr.controllers(),
        vec![Controller::Cpu, Controller::Memory, Controller::Pids]
    );
    let c1 = "wasmk/podA/c1";
    fake.add_cgroup(c1, "cpu io memory pids", true);
    mgr.create(&path(c1), &ALL_LIMITS).unwrap();
    for ancestor in ["", "wasmk", "wasmk/podA"] {
        assert_eq!(
            read(&fake.file(ancestor, "cgroup.subtree_control")),
            "+cpu +memory +pids",
            "ancestor {ancestor:?}"
        );
    }
    assert_eq!(
        read(&fake.file(c1, "cgroup.subtree_control")),
        "",
        "the leaf keeps none"
    );
    assert_eq!(
        mgr.procs_files(&path(c1)),
        vec![fake.file(c1, "cgroup.procs")]
    );
}

#[test]
fn v2_leaves_already_delegated_controllers_alone() {
    let fake = FakeV2::new("cpu memory pids");
    let mgr = fake.manager();
    fake.add_cgroup("wasmk/podA", "cpu memory pids", false);
    write(
        &fake.file("", "cgroup.subtree_control"),
        "cpu memory pids\n",
    );
    write(&fake.file("wasmk", "cgroup.subtree_control"), "memory\n");
    mgr.create(&path("wasmk/podA"), &Limits::default()).unwrap();
    assert_eq!(
        read(&fake.file("", "cgroup.subtree_control")),
        "cpu memory pids\n"
    );
    assert_eq!(
        read(&fake.file("wasmk", "cgroup.subtree_control")),
        "+cpu +pids"
    );
}

#[test]
fn v2_limit_values_and_reset() {
    let fake = FakeV2::new("cpu memory pids");
    let mgr = fake.manager();
    let c1 = "wasmk/podA/c1";
    fake.add_cgroup(c1, "cpu memory pids", true);
    mgr.create(&path(c1), &ALL_LIMITS).unwrap();
    for (file, want) in [
        ("cpu.max", "50000 100000"),
        ("cpu.weight", "20"),
        ("memory.max", "67108864"),
        ("memory.swap.max", "0"),
        ("pids.max", "32"),
    ] {
        assert_eq!(read(&fake.file(c1, file)), want, "{file}");
    }
    mgr.create(&path(c1), &Limits::default()).unwrap();
    for (file, want) in [
        ("cpu.max", "max 100000"),
        ("cpu.weight", "100"),
        ("memory.max", "max"),
        ("pids.max", "max"),
    ] {
        assert_eq!(read(&fake.file(c1, file)), want, "{file}");
    }
}

#[test]
fn v2_without_pids_controller() {
    let fake = FakeV2::new("cpu memory");
    let mgr = fake.manager();
    assert_eq!(mgr.controllers(), vec![Controller::Cpu, Controller::Memory]);
    fake.add_cgroup("wasmk/podA", "cpu memory", false);
    assert!(matches!(
        mgr.create(&path("wasmk/podA"), &ALL_LIMITS),
        Err(CgroupError::ControllerUnavailable {
            controller: Controller::Pids,
            ..
        })
    ));
    let without_pids = Limits {
        pids_max: None,
        ..ALL_LIMITS
    };
    mgr.create(&path("wasmk/podA"), &without_pids).unwrap();
    assert_eq!(
        read(&fake.file("", "cgroup.subtree_control")),
        "+cpu +memory"
    );
    assert!(!fake.file("wasmk/podA", "memory.swap.max").exists());
    assert_eq!(mgr.stats(&path("wasmk/podA")).unwrap().pids_current, None);
}

#[test]
fn v2_stats() {
    let fake = FakeV2::new("cpu memory pids");
    let mgr = fake.manager();
    let c1 = "wasmk/podA/c1";
    fake.add_cgroup(c1, "cpu memory pids", true);
    write(
        &fake.file(c1, "cpu.stat"),
        "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n",
    );
    write(&fake.file(c1, "memory.current"), "10485760\n");
    write(
        &fake.file(c1, "memory.stat"),
        "anon 6291456\nfile 4194304\ninactive_file 3145728\n",
    );
    write(&fake.file(c1, "memory.max"), "67108864\n");
    write(
        &fake.file(c1, "memory.events"),
        "low 0\nhigh 0\nmax 9\noom 1\noom_kill 1\n",
    );
    write(&fake.file(c1, "pids.current"), "2\n");
    assert_eq!(
        mgr.stats(&path(c1)).unwrap(),
        Stats {
            cpu_usage_nanos: Some(1_500_000),
            memory_bytes: Some(7 << 20),
            memory_limit: Some(64 << 20),
            pids_current: Some(2),
            oom_kills: 1,
        }
    );
    write(&fake.file(c1, "memory.max"), "max\n");
    assert_eq!(mgr.stats(&path(c1)).unwrap().memory_limit, None);
    write(&fake.file(c1, "memory.events"), "oom_kill lots\n");
    assert!(matches!(
        mgr.stats(&path(c1)),
        Err(CgroupError::Parse { path, .. }) if path == fake.file(c1, "memory.events")
    ));
}

#[test]
fn v2_needs_the_root_controller_list() {
    let tmp = tempfile::tempdir().unwrap();
    match CgroupManager::from_layout(Layout::V2 {
        mount: tmp.path().to_path_buf(),
    }) {
        Err(CgroupError::Io { path, .. }) => {
            assert_eq!(path, tmp.path().join("cgroup.controllers"))
        }
        other => panic!("got {other:?}"),
    }
}

#[test]
fn cgroup_paths() {
    for (input, want) in [
        ("wasmk", Some("wasmk")),
        ("/wasmk", Some("wasmk")),
        ("/kubepods.slice/wasmk/", Some("kubepods.slice/wasmk")),
        ("wasmk/pod1/app", Some("wasmk/pod1/app")),
        ("", None),
        ("/", None),
        ("wasmk//pod", None),
        ("wasmk/../etc", None),
        ("./wasmk", None),
        ("was\0mk", None),
    ] {
        assert_eq!(
            CgroupPath::new(input).ok().as_ref().map(CgroupPath::as_str),
            want,
            "{input:?}"
        );
    }
    let root = path("wasmk");
    assert_eq!(
        CgroupPath::container(&root, "1234-abcd", "app")
            .unwrap()
            .as_str(),
        "wasmk/pod1234-abcd/app"
    );
    assert_eq!(CgroupPath::pod(&root, "u").unwrap().as_str(), "wasmk/podu");
    for bad in ["", "..", "a/b", "."] {
        assert!(
            matches!(root.child(bad), Err(CgroupError::InvalidPath { .. })),
            "{bad:?}"
        );
    }
}

#[test]
fn v1_layout_without_managed_controllers_is_refused() {
    let layout = Layout::V1 {
        hierarchies: vec![V1Hierarchy {
            mount: PathBuf::from("/sys/fs/cgroup/cpuset"),
            controllers: vec!["cpuset".to_string()],
        }],
    };
    assert!(matches!(
        CgroupManager::from_layout(layout),
        Err(CgroupError::NoHierarchy)
    ));
}

#[test]
fn unmanaged_hierarchies_get_no_cgroups() {
    let fake = FakeV1::new(&["cpuset", "memory"], false);
    let hierarchies = ["cpuset", "memory"]
        .iter()
        .map(|h| V1Hierarchy {
            mount: fake.mount(h),
            controllers: vec![h.to_string()],
        })
        .collect();
    let mgr = CgroupManager::from_layout(Layout::V1 { hierarchies }).unwrap();
    assert_eq!(
        mgr.dirs(&path("wasmk")),
        vec![fake.mount("memory").join("wasmk")]
    );
}
