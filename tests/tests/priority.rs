//! The search runs at idle priority by default: compute's scan threads are SCHED_IDLE while its
//! main thread is not; `--priority normal` leaves them SCHED_OTHER.

use std::time::Duration;

use sigma_tests::{eventually, Manage, Process};

const SCHED_OTHER: u32 = 0;
const SCHED_IDLE: u32 = 5;

/// Each thread of `pid`: its name and its scheduling policy (field 41 of its stat file).
fn threads_of(pid: u32) -> Vec<(String, u32)> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut threads = Vec::new();
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        // The name is in parentheses and may hold spaces; fields from the 3rd follow the last ')'.
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let name = head.split_once('(').map_or("", |(_, name)| name).to_owned();
        if let Some(policy) = rest.split_whitespace().nth(41 - 3) {
            if let Ok(policy) = policy.parse() {
                threads.push((name, policy));
            }
        }
    }
    threads
}

/// Starts a compute with `extra` on a long search and returns the threads seen while it scans.
fn threads_while_scanning(manage: &Manage, extra: &[&str]) -> (Process, Vec<(String, u32)>) {
    // Started here rather than by the harness, which asks for normal priority.
    let address = manage.address_arg();
    let mut args = vec![address.as_str(), "--threads", "2"];
    args.extend_from_slice(extra);
    let compute = Process::start("compute", &args);
    let mut seen = Vec::new();
    let scanning = eventually(Duration::from_secs(60), || {
        seen = threads_of(compute.pid());
        // The lease's thread ("scan") is the kernel's first worker; it starts "scan-1".
        seen.iter().any(|(name, _)| name == "scan") && seen.iter().any(|(name, _)| name == "scan-1")
    });
    assert!(
        scanning,
        "the compute's scan threads run within 60 s: {seen:?}"
    );
    (compute, seen)
}

#[test]
fn scan_threads_are_idle_by_default_and_normal_on_request() {
    // Ranges of 30 s: the scan threads live long enough to be looked at.
    let manage = Manage::start(&["--target-seconds", "30"]);

    let (compute, threads) = threads_while_scanning(&manage, &[]);
    assert!(
        compute
            .wait_for_stderr("search priority: idle (SCHED_IDLE)", Duration::from_secs(5))
            .is_some(),
        "compute logs its priority at start"
    );
    for (name, policy) in &threads {
        let expected = if name.starts_with("scan") {
            SCHED_IDLE
        } else {
            SCHED_OTHER
        };
        assert_eq!(*policy, expected, "thread {name} of {threads:?}");
    }
    assert!(
        threads.iter().any(|(name, _)| name == "compute"),
        "{threads:?}"
    );
    drop(compute);

    let (compute, threads) = threads_while_scanning(&manage, &["--priority", "normal"]);
    assert!(
        compute
            .wait_for_stderr("search priority: normal", Duration::from_secs(5))
            .is_some(),
        "compute logs its priority at start"
    );
    for (name, policy) in &threads {
        assert_eq!(*policy, SCHED_OTHER, "thread {name} of {threads:?}");
    }
}
