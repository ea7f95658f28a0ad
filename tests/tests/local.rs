//! `manage --local N`: the computes it starts end when it ends, however it ends.

use std::time::{Duration, Instant};

use sigma_tests::{eventually, Manage, SIGKILL};

/// A process as it was when first seen: its pid and its start time (field 22 of
/// /proc/PID/stat), so that a pid reused by another process is not mistaken for it.
struct Seen {
    pid: u32,
    started: u64,
}

/// The state (field 3) and start time (field 22) in /proc/PID/stat, if the process exists.
fn stat_of(pid: u32) -> Option<(char, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The name in parentheses may hold spaces: the fields that follow start after the last ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    let started = fields.get(19)?.parse().ok()?;
    Some((state, started))
}

impl Seen {
    fn now(pid: u32) -> Option<Seen> {
        stat_of(pid).map(|(_, started)| Seen { pid, started })
    }

    /// Still running: the same process, not yet a zombie waiting to be reaped.
    fn alive(&self) -> bool {
        matches!(stat_of(self.pid), Some((state, started))
            if started == self.started && state != 'Z' && state != 'X')
    }
}

/// Kills what a failed test would otherwise leave behind.
struct KillOnDrop(Vec<Seen>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        for seen in &self.0 {
            if seen.alive() {
                // SAFETY: kill(2) has no memory-safety preconditions.
                unsafe {
                    libc::kill(seen.pid as libc::pid_t, SIGKILL);
                }
            }
        }
    }
}

/// The children of `pid`, over all its threads.
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut children = Vec::new();
    for task in tasks.flatten() {
        let list = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        children.extend(
            list.split_whitespace()
                .filter_map(|pid| pid.parse::<u32>().ok()),
        );
    }
    children
}

#[test]
fn local_computes_end_within_2_s_of_a_sigkilled_manage() {
    let mut manage = Manage::start(&["--local", "2"]);
    // Both computes joined (their log is manage's standard error): they are past start-up.
    assert!(
        eventually(Duration::from_secs(60), || {
            let lines = manage.process.stderr_lines();
            lines.iter().filter(|l| l.contains("joined manage")).count() >= 2
        }),
        "two local computes join within 60 s"
    );
    let computes = KillOnDrop(
        children_of(manage.process.pid())
            .into_iter()
            .filter_map(Seen::now)
            .collect(),
    );
    assert_eq!(computes.0.len(), 2, "manage --local 2 has two children");

    manage.process.signal(SIGKILL);
    let killed = Instant::now();
    assert!(
        manage.process.wait_exit(Duration::from_secs(5)).is_some(),
        "manage dies of SIGKILL"
    );
    let gone = eventually(Duration::from_secs(2), || {
        computes.0.iter().all(|seen| !seen.alive())
    });
    let waited = killed.elapsed();
    let left: Vec<u32> = computes
        .0
        .iter()
        .filter(|seen| seen.alive())
        .map(|seen| seen.pid)
        .collect();
    assert!(
        gone,
        "local computes {left:?} still run {waited:?} after manage was SIGKILLed"
    );
    eprintln!("both local computes ended {waited:?} after manage's SIGKILL");
}
