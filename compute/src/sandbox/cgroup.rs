//! Control groups: the limits of a stage as a whole (memory of all its processes, task count,
//! CPU cores and share) and its figures (CPU time, peak memory, OOM kills).
//!
//! Both layouts are handled. cgroup v1 (one hierarchy per controller, as on a host where
//! `/sys/fs/cgroup/memory` and `/sys/fs/cgroup/pids` exist) is preferred when its memory, pids,
//! cpu and cpuacct controllers are all mounted; otherwise a cgroup2 hierarchy with memory, pids
//! and cpu. Job groups live in a parent named [`PARENT`], made under compute's own group of each
//! v1 hierarchy (so a limit put on compute also bounds its jobs) or at the root of the v2
//! hierarchy (a v2 group with processes cannot hand controllers to children). The parent gets
//! the lowest CPU weight: when a job and the search want the same core, the search wins.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// The name of the parent group of every job group.
pub(crate) const PARENT: &str = "sigma-jobs";
/// The CPU weight of all jobs together against one search thread's 1024 (v1 shares): when the
/// search keeps two cores busy, the jobs get about a fifth of one; with the lowest weight (2)
/// a job on a busy host would get nothing at all and never finish.
const PARENT_SHARES: u64 = 256;
/// The same in cgroup2's units (default 100 where v1 has 1024).
const PARENT_WEIGHT: u64 = 25;
/// The CFS period the CPU quota is set against, µs.
const PERIOD_US: u64 = 100_000;

/// Where job groups are made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hierarchy {
    /// One directory per v1 controller (each the [`PARENT`] group there).
    V1 {
        /// memory controller.
        memory: PathBuf,
        /// pids controller.
        pids: PathBuf,
        /// cpu controller (quota and shares).
        cpu: PathBuf,
        /// cpuacct controller (CPU time).
        cpuacct: PathBuf,
    },
    /// The [`PARENT`] group of a cgroup2 hierarchy.
    V2(PathBuf),
}

/// What one stage may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Limits {
    pub memory_bytes: u64,
    pub tasks: u64,
    pub cores: u64,
}

/// One mount of /proc/self/mountinfo: (mount root, mount point, type, super options).
fn mounts() -> io::Result<Vec<(String, PathBuf, String, String)>> {
    let text = std::fs::read_to_string("/proc/self/mountinfo")?;
    let mut found = Vec::new();
    for line in text.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let left: Vec<&str> = left.split(' ').collect();
        let right: Vec<&str> = right.split(' ').collect();
        if left.len() < 5 || right.len() < 3 {
            continue;
        }
        found.push((
            left[3].to_owned(),
            PathBuf::from(left[4]),
            right[0].to_owned(),
            right[2].to_owned(),
        ));
    }
    Ok(found)
}

/// Our own group in each hierarchy, from /proc/self/cgroup: (controllers, path).
fn own_groups() -> io::Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string("/proc/self/cgroup")?;
    Ok(text
        .lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let _id = parts.next()?;
            let controllers = parts.next()?.to_owned();
            let path = parts.next()?.to_owned();
            Some((controllers, path))
        })
        .collect())
}

/// `mount point + (our path below the mount's root)`.
fn below(mount_root: &str, point: &Path, own: &str) -> PathBuf {
    let relative = own.strip_prefix(mount_root).unwrap_or(own);
    point.join(relative.trim_start_matches('/'))
}

impl Hierarchy {
    /// Finds a usable hierarchy, or says in one line what is missing.
    pub fn detect() -> Result<Hierarchy, String> {
        let mounts = mounts().map_err(|e| format!("cannot read /proc/self/mountinfo: {e}"))?;
        let own = own_groups().map_err(|e| format!("cannot read /proc/self/cgroup: {e}"))?;
        let v1 = |controller: &str| -> Option<PathBuf> {
            let (root, point, _, _) = mounts.iter().find(|(_, _, kind, options)| {
                kind == "cgroup" && options.split(',').any(|o| o == controller)
            })?;
            let (_, path) = own
                .iter()
                .find(|(controllers, _)| controllers.split(',').any(|c| c == controller))?;
            Some(below(root, point, path).join(PARENT))
        };
        if let (Some(memory), Some(pids), Some(cpu), Some(cpuacct)) =
            (v1("memory"), v1("pids"), v1("cpu"), v1("cpuacct"))
        {
            return Ok(Hierarchy::V1 {
                memory,
                pids,
                cpu,
                cpuacct,
            });
        }
        let missing_v1: Vec<&str> = ["memory", "pids", "cpu", "cpuacct"]
            .into_iter()
            .filter(|c| v1(c).is_none())
            .collect();
        for (_, point, kind, _) in &mounts {
            if kind != "cgroup2" {
                continue;
            }
            let controllers =
                std::fs::read_to_string(point.join("cgroup.controllers")).unwrap_or_default();
            let has = |name: &str| controllers.split_whitespace().any(|c| c == name);
            if has("memory") && has("pids") && has("cpu") {
                return Ok(Hierarchy::V2(point.join(PARENT)));
            }
        }
        Err(format!(
            "no usable cgroups: v1 lacks the {} controller(s) and no cgroup2 hierarchy has memory, pids and cpu",
            missing_v1.join(", ")
        ))
    }

    /// Makes the parent group(s) and gives them the lowest CPU weight.
    pub(crate) fn prepare(&self) -> Result<(), String> {
        let make = |dir: &Path| match std::fs::create_dir(dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(format!("cannot make the cgroup {}: {e}", dir.display())),
        };
        match self {
            Hierarchy::V1 {
                memory,
                pids,
                cpu,
                cpuacct,
            } => {
                for dir in [memory, pids, cpu, cpuacct] {
                    make(dir)?;
                }
                write(&cpu.join("cpu.shares"), &PARENT_SHARES.to_string())?;
            }
            Hierarchy::V2(parent) => {
                if let Some(root) = parent.parent() {
                    write(&root.join("cgroup.subtree_control"), "+memory +pids +cpu")?;
                }
                make(parent)?;
                write(&parent.join("cgroup.subtree_control"), "+memory +pids +cpu")?;
                write(&parent.join("cpu.weight"), &PARENT_WEIGHT.to_string())?;
            }
        }
        Ok(())
    }

    /// The parent directories, for the supervisor's command line.
    pub(crate) fn dirs(&self) -> Vec<&Path> {
        match self {
            Hierarchy::V1 {
                memory,
                pids,
                cpu,
                cpuacct,
            } => vec![memory, pids, cpu, cpuacct],
            Hierarchy::V2(parent) => vec![parent],
        }
    }

    /// The inverse of [`Hierarchy::dirs`].
    pub(crate) fn from_dirs(dirs: &[PathBuf]) -> Option<Hierarchy> {
        match dirs {
            [memory, pids, cpu, cpuacct] => Some(Hierarchy::V1 {
                memory: memory.clone(),
                pids: pids.clone(),
                cpu: cpu.clone(),
                cpuacct: cpuacct.clone(),
            }),
            [parent] => Some(Hierarchy::V2(parent.clone())),
            _ => None,
        }
    }

    /// The group `name` (it may not exist).
    pub(crate) fn group(&self, name: &str) -> Group {
        Group {
            dirs: self.dirs().iter().map(|dir| dir.join(name)).collect(),
            v2: matches!(self, Hierarchy::V2(_)),
        }
    }

    /// Makes the group `name` with `limits`.
    pub(crate) fn create(&self, name: &str, limits: Limits) -> Result<Group, String> {
        let group = self.group(name);
        for dir in &group.dirs {
            std::fs::create_dir(dir)
                .map_err(|e| format!("cannot make the cgroup {}: {e}", dir.display()))?;
        }
        let quota = limits.cores.max(1).saturating_mul(PERIOD_US);
        let memory = limits.memory_bytes.to_string();
        let tasks = limits.tasks.to_string();
        let set = |file: &str, value: &str| write(&group.file(file), value);
        let done = if group.v2 {
            set("memory.max", &memory)
                .and_then(|()| set("memory.swap.max", "0").or(Ok(())))
                .and_then(|()| set("pids.max", &tasks))
                .and_then(|()| set("cpu.max", &format!("{quota} {PERIOD_US}")))
        } else {
            set("memory.limit_in_bytes", &memory)
                // Absent without swap accounting; where present, swap counts too.
                .and_then(|()| set("memory.memsw.limit_in_bytes", &memory).or(Ok(())))
                .and_then(|()| set("pids.max", &tasks))
                .and_then(|()| set("cpu.cfs_period_us", &PERIOD_US.to_string()))
                .and_then(|()| set("cpu.cfs_quota_us", &quota.to_string()))
        };
        if let Err(e) = done {
            group.remove();
            return Err(e);
        }
        Ok(group)
    }

    /// Removes the job groups left by computes that are gone (their names start with the pid of
    /// the compute that made them), killing what is still in them.
    pub(crate) fn remove_stale(&self) {
        let Some(first) = self.dirs().first().map(|dir| dir.to_path_buf()) else {
            return;
        };
        let Ok(entries) = std::fs::read_dir(&first) else {
            return;
        };
        for entry in entries.flatten() {
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            let owner = name
                .split('-')
                .next()
                .and_then(|pid| pid.parse::<i32>().ok());
            let alive = owner.is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
            if owner.is_some() && !alive {
                let group = self.group(&name);
                group.kill_all(Duration::from_secs(2));
                group.remove();
            }
        }
    }
}

fn write(path: &Path, value: &str) -> Result<(), String> {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|mut file| file.write_all(value.as_bytes()))
        .map_err(|e| format!("cannot write {value:?} to {}: {e}", path.display()))
}

/// One job group (a directory per v1 controller, or one v2 directory).
#[derive(Debug)]
pub(crate) struct Group {
    dirs: Vec<PathBuf>,
    v2: bool,
}

impl Group {
    /// The first of the group's directories holding `file`.
    fn file(&self, file: &str) -> PathBuf {
        self.dirs
            .iter()
            .map(|dir| dir.join(file))
            .find(|path| path.exists())
            .unwrap_or_else(|| self.dirs[0].join(file))
    }

    /// The `cgroup.procs` file of each directory: writing `0` there moves the writer in.
    pub(crate) fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs
            .iter()
            .map(|dir| dir.join("cgroup.procs"))
            .collect()
    }

    fn read(&self, file: &str) -> String {
        std::fs::read_to_string(self.file(file)).unwrap_or_default()
    }

    fn number(&self, file: &str) -> u64 {
        self.read(file).trim().parse().unwrap_or(0)
    }

    /// `key N` from a flat keyed file such as memory.events.
    fn keyed(&self, file: &str, key: &str) -> u64 {
        self.read(file)
            .lines()
            .find_map(|line| line.strip_prefix(key)?.strip_prefix(' '))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or(0)
    }

    /// CPU time of every process that was in the group, µs.
    pub(crate) fn cpu_us(&self) -> u64 {
        if self.v2 {
            self.keyed("cpu.stat", "usage_usec")
        } else {
            self.number("cpuacct.usage") / 1000
        }
    }

    /// The most memory the group held at once, bytes.
    pub(crate) fn peak_bytes(&self) -> u64 {
        if self.v2 {
            self.number("memory.peak")
        } else {
            self.number("memory.max_usage_in_bytes")
        }
    }

    /// How often the kernel killed a process of the group for memory, or (v1 kernels without
    /// the count) whether the group hit its limit.
    pub(crate) fn oom_kills(&self) -> u64 {
        if self.v2 {
            return self.keyed("memory.events", "oom_kill");
        }
        let control = self.read("memory.oom_control");
        if control.lines().any(|line| line.starts_with("oom_kill ")) {
            self.keyed("memory.oom_control", "oom_kill")
        } else {
            u64::from(self.number("memory.failcnt") > 0)
        }
    }

    /// How often a fork was refused at the task limit.
    pub(crate) fn task_limit_hits(&self) -> u64 {
        self.keyed("pids.events", "max")
    }

    fn pids(&self) -> Vec<i32> {
        self.read("cgroup.procs")
            .lines()
            .filter_map(|line| line.trim().parse().ok())
            .collect()
    }

    /// SIGKILLs every process in the group until it is empty or `patience` runs out; returns
    /// how many were left.
    pub(crate) fn kill_all(&self, patience: Duration) -> usize {
        let deadline = Instant::now() + patience;
        loop {
            let pids = self.pids();
            if pids.is_empty() || Instant::now() >= deadline {
                return pids.len();
            }
            if self.v2 && write(&self.file("cgroup.kill"), "1").is_ok() {
                // One write kills them all.
            } else {
                for pid in pids.into_iter().filter(|&pid| pid > 1) {
                    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Removes the group's directories (an empty group's); a few tries, as a killed process
    /// leaves its group a moment after it dies.
    pub(crate) fn remove(&self) {
        for dir in &self.dirs {
            for _ in 0..200 {
                match std::fs::remove_dir(dir) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => {
                        std::thread::sleep(Duration::from_millis(5))
                    }
                    _ => break,
                }
            }
        }
    }
}
