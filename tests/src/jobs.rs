//! Helpers for the job tests: a manage with computes that accept jobs, `report run` with a
//! bounded wait, and the check every attack test ends with: manage and every compute are still
//! up and searching.

use crate::cluster::event_fields;
use std::time::{Duration, Instant};

use crate::cluster::StatusDoc;
use crate::{eventually, Manage, Process};

/// A compute measures its timing loop before it joins; on a loaded machine that takes a while.
const JOIN: Duration = Duration::from_secs(60);
/// How long one `report run` may take: compile (rustc on a busy host) plus run.
const RUN: Duration = Duration::from_secs(120);
/// Where the attack clusters search: far enough from 1 that the search's speed is steady.
pub const START: &str = "1000000000000";

/// Whether the tests can start computes with `--accept-jobs` (the sandbox needs root); prints
/// a one-line reason when not.
pub fn can_run_jobs() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        eprintln!("SKIPPING: computes that accept jobs need root (the job sandbox)");
    }
    root
}

/// A manage and computes started with `--accept-jobs`, each joined.
pub struct JobCluster {
    /// The manage.
    pub manage: Manage,
    /// The computes.
    pub computes: Vec<Process>,
}

/// How a `report run` ended.
#[derive(Debug)]
pub struct JobRun {
    /// report's exit code.
    pub code: Option<i32>,
    /// What it printed on stdout (the program's stdout).
    pub stdout: Vec<String>,
    /// What it printed on stderr (compiler output, the program's stderr, report's own lines).
    pub stderr: Vec<String>,
}

impl JobRun {
    /// stdout as one text.
    pub fn out(&self) -> String {
        self.stdout.join("\n")
    }

    /// stderr as one text.
    pub fn err(&self) -> String {
        self.stderr.join("\n")
    }

    /// Whether stdout has exactly this line.
    pub fn said(&self, line: &str) -> bool {
        self.stdout.iter().any(|l| l == line)
    }
}

/// A source file in a temporary folder kept alive as long as it is.
pub struct Source {
    _dir: tempfile::TempDir,
    /// Its path.
    pub path: std::path::PathBuf,
}

impl Source {
    /// Writes `text` as `name` in a fresh folder.
    pub fn new(name: &str, text: &str) -> Source {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write the source");
        Source { _dir: dir, path }
    }
}

/// Waits (bounded) until `count` computes said on their control connection that they accept
/// jobs (manage's `accepts-jobs` events); panics otherwise.
pub fn wait_for_job_computes(manage: &Manage, count: usize) {
    let joined = eventually(JOIN, || {
        manage
            .process
            .stdout_lines()
            .iter()
            .filter(|line| event_fields(line).is_some_and(|(name, _)| name == "accepts-jobs"))
            .count()
            >= count
    });
    assert!(joined, "{count} computes did not announce accept-jobs");
}

impl JobCluster {
    /// A manage searching from [`START`] and `count` computes with `--accept-jobs` and
    /// `compute_args`, all joined.
    pub fn start(count: usize, compute_args: &[&str]) -> JobCluster {
        let manage = Manage::start(&["--start", START]);
        let mut args = vec!["--accept-jobs"];
        args.extend_from_slice(compute_args);
        let computes: Vec<Process> = (0..count).map(|_| manage.start_compute(&args)).collect();
        wait_for_job_computes(&manage, count);
        JobCluster { manage, computes }
    }

    /// Starts `report run FILE EXTRA…` without waiting for it.
    pub fn submit(&self, source: &Source, extra: &[&str]) -> Process {
        let address = self.manage.address_arg();
        let token = self.manage.submit_token_file();
        let mut args = vec![
            address.as_str(),
            "--token-file",
            token.to_str().expect("temporary paths are UTF-8"),
            "run",
            source.path.to_str().expect("temporary paths are UTF-8"),
        ];
        args.extend_from_slice(extra);
        Process::start("report", &args)
    }

    /// Waits (bounded) for a `report run` started by [`JobCluster::submit`].
    pub fn finish(report: &mut Process) -> JobRun {
        let status = report.wait_exit(RUN).expect("report run finishes");
        JobRun {
            code: status.code(),
            stdout: report.stdout_lines(),
            stderr: report.stderr_lines(),
        }
    }

    /// Runs `text` as `name` with `report run` and waits for it.
    pub fn run(&self, name: &str, text: &str, extra: &[&str]) -> JobRun {
        let source = Source::new(name, text);
        let mut report = self.submit(&source, extra);
        Self::finish(&mut report)
    }

    /// Asserts manage and every compute still run, every compute is still connected, and each
    /// one's search moves on (its tested numbers, counting its lease's reported progress, grow).
    pub fn assert_up_and_searching(&mut self) {
        assert!(
            self.manage.process.wait_exit(Duration::ZERO).is_none(),
            "manage has exited"
        );
        for compute in &mut self.computes {
            assert!(
                compute.wait_exit(Duration::ZERO).is_none(),
                "a compute has exited: {:?}",
                compute.stderr_lines().last()
            );
        }
        let pids: Vec<u64> = self.computes.iter().map(|c| u64::from(c.pid())).collect();
        let before = self.manage.status();
        for pid in &pids {
            assert!(
                before.computes.iter().any(|c| c.pid == *pid),
                "compute {pid} is not connected: {before:?}"
            );
        }
        let moved = eventually(Duration::from_secs(30), || {
            let Some(now) = self.manage.try_status() else {
                return false;
            };
            pids.iter()
                .all(|&pid| searched(&now, pid) > searched(&before, pid))
        });
        assert!(moved, "the search stopped on a compute");
    }
}

/// Numbers compute `pid` tested: its results plus its lease's reported progress.
pub fn searched(status: &StatusDoc, pid: u64) -> u64 {
    status
        .computes
        .iter()
        .filter(|c| c.pid == pid)
        .map(|c| c.tested + c.lease.map_or(0, |(lo, _, done)| done - lo))
        .sum()
}

/// The search speed of compute `pid` over `window`, numbers per second: the numbers tested
/// between the first and the last change seen (progress comes every few seconds), over the
/// time between those changes.
pub fn search_rate(manage: &Manage, pid: u64, window: Duration) -> f64 {
    let end = Instant::now() + window;
    let mut first: Option<(Instant, u64)> = None;
    let mut last: Option<(Instant, u64)> = None;
    let mut seen = None;
    while Instant::now() < end {
        if let Some(status) = manage.try_status() {
            let value = searched(&status, pid);
            if seen.is_some_and(|previous| value != previous) {
                let point = (Instant::now(), value);
                if first.is_none() {
                    first = Some(point);
                }
                last = Some(point);
            }
            seen = Some(value);
        }
        // Each sample starts a `report`: not so often that it slows the search it measures.
        std::thread::sleep(Duration::from_millis(250));
    }
    match (first, last) {
        (Some((t0, v0)), Some((t1, v1))) if t1 > t0 && v1 > v0 => {
            (v1 - v0) as f64 / (t1 - t0).as_secs_f64()
        }
        _ => panic!("compute {pid} reported too little progress in {window:?} to measure"),
    }
}

/// Processes on this host whose command line contains `needle`.
pub fn processes_with(needle: &str) -> Vec<u32> {
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if pid != me
            && cmdline
                .windows(needle.len())
                .any(|window| window == needle.as_bytes())
        {
            found.push(pid);
        }
    }
    found
}

/// A string no other process on the machine has in its command line or files.
pub fn marker(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("sigma-marker-{name}-{}-{nanos}", std::process::id())
}
