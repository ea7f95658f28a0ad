//! A search across a small LAN of network namespaces (see `sigma_tests::netns`): manage on one
//! host, a one-thread compute on each of three others, report on a fifth, each with its own
//! address on a bridge. Nothing but those namespaces' own addresses is ever contacted.
//!
//! It checks, in one run to `--until`:
//!
//! 1. every compute registers with its own address (and the pid it reports is the process the
//!    test started: `ip netns exec` execs);
//! 2. one host's cable is pulled (its bridge port set down) in the middle of a lease: the lease
//!    expires and its range goes to another host; manage notices the silent compute and the
//!    compute notices the silent manage, each within the silence limit of the heartbeat
//!    (`xmlwire::liveness`), measured from the cut;
//! 3. the cable is plugged back in: the compute reconnects on a new connection and works again;
//! 4. manage is SIGKILLed mid-run and restarted on the same state and address: nothing it
//!    acknowledged is lost, the computes come back by themselves;
//! 5. the result is exact: the known perfect numbers, `tested == until - start + 1`, and the
//!    stored ranges tile the search.
//!
//! Needs root (it creates namespaces); without it, it fails and says so. Everything it creates
//! is deleted at the end, also when it fails.

use std::thread;
use std::time::{Duration, Instant};

use sigma_tests::cluster::{
    assert_live_leases_disjoint, compute_id, event_fields, events_of, field, parse_events,
    perfect_between, Event,
};
use sigma_tests::faults::{
    acknowledged, assert_final_state, assert_nothing_acknowledged_lost, numbers_per_second,
    restart, resumed_tested, round_size, sigkill,
};
use sigma_tests::netns::{leftover, Lan};
use sigma_tests::{eventually, Manage, Process};
use xmlwire::liveness::SILENCE_LIMIT;

const SECOND: Duration = Duration::from_secs(1);
/// A compute runs its timing loop before it joins; on a loaded machine that takes a while.
const JOIN: Duration = Duration::from_secs(30);
/// manage's sweep runs every second, and the machine is shared: the margin over the silence
/// limit allowed for noticing.
const NOTICE_MARGIN: Duration = Duration::from_secs(3);
/// The shortest lease manage is started with here, in seconds.
const LEASE_FLOOR: &str = "5";

/// The event `expired lease=L compute=C lo=.. hi=..` of compute `compute`, as `(L, lo, hi)`.
fn expired_lease(line: &str, compute: u64) -> Option<(u64, u64, u64)> {
    let (name, fields) = event_fields(line)?;
    let get = |key| field::<u64>(&fields, key);
    if name != "expired" || get("compute")? != compute {
        return None;
    }
    Some((get("lease")?, get("lo")?, get("hi")?))
}

/// How many lines of `lines` contain `needle`.
fn count(lines: &[String], needle: &str) -> usize {
    lines.iter().filter(|l| l.contains(needle)).count()
}

#[test]
#[cfg_attr(not(sigma_root), ignore = "needs root: builds network namespaces")]
fn a_lan_search_survives_a_cut_host_and_a_manage_restart() {
    // First, so that a machine that cannot run it says so at once; and declared first, so
    // dropped last: after every process in its namespaces.
    let lan = Lan::create(5);
    sigma_tests::binary("manage");
    let started = Instant::now();
    let (manage_host, desk) = (&lan.hosts[0], &lan.hosts[4]);
    let compute_hosts = &lan.hosts[1..4];

    // Three one-thread computes on two cores, one of them cut off for a while: sized for about
    // 45 s at one and a half times one thread's rate now (one sample of a shared machine, kept
    // within reason), and at least 3,000,000,000 numbers: the cut and the reconnection take
    // some 20 s of wall time whatever the machine's speed, and manage's restart must come
    // before the end.
    let rate = numbers_per_second(1_000_000_000).clamp(5e6, 1.2e8);
    let start = 1;
    let until = round_size(rate * 1.5 * 45.0, 3_000_000_000);
    let until_arg = until.to_string();
    let args = [
        "--start",
        "1",
        "--until",
        &until_arg,
        "--target-seconds",
        "1",
        "--lease-floor",
        LEASE_FLOOR,
    ];
    let listen = format!("{}:8128", manage_host.address);
    let mut manage = Manage::start_in(&manage_host.netns, &listen, &args);
    manage.report_netns = Some(desk.netns.clone());
    let deadline = started + Duration::from_secs(170);

    // 1. Every compute registers, from its own namespace, with its own address.
    let mut computes: Vec<Process> = compute_hosts
        .iter()
        .map(|host| Process::start_in(&host.netns, "compute", &[&listen, "--threads", "1"], |_| {}))
        .collect();
    let ids: Vec<u64> = computes.iter().map(|c| compute_id(c, JOIN)).collect();
    let status = manage.poll_status(deadline, "three computes connect", |s| {
        s.computes.len() == 3
    });
    for (compute, host) in computes.iter().zip(compute_hosts) {
        let pid = u64::from(compute.pid());
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).expect("the compute runs");
        assert!(
            exe.ends_with("compute"),
            "the process started in {} is {exe:?}, not compute: ip netns exec did not exec",
            host.netns
        );
        let doc = status
            .computes
            .iter()
            .find(|c| c.pid == pid)
            .unwrap_or_else(|| panic!("no compute with pid {pid} (in {}): {status:?}", host.netns));
        assert!(
            doc.address.starts_with(&format!("{}:", host.address)),
            "compute {} in {} registered from {}, not from {}",
            doc.id,
            host.netns,
            doc.address,
            host.address
        );
        eprintln!(
            "compute {} (pid {pid}) in {} registered from {}",
            doc.id, host.netns, doc.address
        );
    }

    // 2. Pull the first compute host's cable while it holds a lease.
    let (victim, victim_host, victim_id) = (0, 1, ids[0]);
    let victim_pid = u64::from(computes[victim].pid());
    manage.poll_status(deadline, "the victim holds a lease", |s| {
        s.computes
            .iter()
            .any(|c| c.pid == victim_pid && c.lease.is_some())
    });
    let before_cut = manage.process.stderr_lines().len();
    let events_before_cut = manage.process.stdout_lines().len();
    let compute_lines_before = computes[victim].stderr_lines().len();
    lan.cut(victim_host);
    let cut_at = Instant::now();
    eprintln!(
        "cut {} off (bridge port {} down) while compute {victim_id} holds a lease",
        lan.hosts[victim_host].netns, lan.hosts[victim_host].port
    );

    // What each side notices, and when (first seen, polled every 50 ms).
    let mut expired: Option<((u64, u64, u64), Duration)> = None;
    let mut reassigned: Option<(u64, Duration)> = None;
    let mut manage_noticed: Option<Duration> = None;
    let mut compute_noticed: Option<Duration> = None;
    let silent_marker = format!("compute {victim_id} silent for ");
    let noticed = eventually(SILENCE_LIMIT + 10 * SECOND, || {
        let lines = manage.process.stderr_lines();
        let new = &lines[before_cut.min(lines.len())..];
        let events = manage.process.stdout_lines();
        let new_events = &events[events_before_cut.min(events.len())..];
        if expired.is_none() {
            expired = new_events
                .iter()
                .find_map(|l| expired_lease(l, victim_id))
                .map(|lease| (lease, cut_at.elapsed()));
        }
        if let (Some(((_, lo, hi), _)), None) = (expired, reassigned) {
            reassigned = parse_events(new_events)
                .into_iter()
                .find_map(|e| match e {
                    Event::Assign(a) if a.compute != victim_id && a.lo < hi && lo < a.hi => {
                        Some(a.compute)
                    }
                    _ => None,
                })
                .map(|c| (c, cut_at.elapsed()));
        }
        if manage_noticed.is_none() && count(new, &silent_marker) > 0 {
            manage_noticed = Some(cut_at.elapsed());
        }
        let compute_lines = computes[victim].stderr_lines();
        if compute_noticed.is_none()
            && count(&compute_lines[compute_lines_before..], "giving it up") > 0
        {
            compute_noticed = Some(cut_at.elapsed());
        }
        expired.is_some()
            && reassigned.is_some()
            && manage_noticed.is_some()
            && compute_noticed.is_some()
    });
    assert!(
        noticed,
        "after the cut: lease expired {expired:?}, range reassigned to {reassigned:?}, manage noticed {manage_noticed:?}, compute noticed {compute_noticed:?}"
    );
    let ((lease, lo, hi), expired_after) = expired.expect("seen");
    let (taker, reassigned_after) = reassigned.expect("seen");
    let (manage_noticed, compute_noticed) = (
        manage_noticed.expect("seen"),
        compute_noticed.expect("seen"),
    );
    eprintln!(
        "after the cut: lease {lease} [{lo}, {hi}) expired at {:.1} s and went to compute {taker} at {:.1} s; manage noticed the silent compute at {:.1} s, the compute noticed the silent manage at {:.1} s",
        expired_after.as_secs_f64(),
        reassigned_after.as_secs_f64(),
        manage_noticed.as_secs_f64(),
        compute_noticed.as_secs_f64()
    );
    assert!(
        expired_after < manage_noticed,
        "the lease expired ({expired_after:?}) before manage gave the compute up ({manage_noticed:?})"
    );
    for (who, after) in [("manage", manage_noticed), ("the compute", compute_noticed)] {
        assert!(
            after <= SILENCE_LIMIT + NOTICE_MARGIN,
            "{who} noticed the silent peer only after {after:?} (limit {SILENCE_LIMIT:?})"
        );
        // The last heartbeat heard came at most one interval before the cut.
        assert!(
            after >= SILENCE_LIMIT - xmlwire::liveness::HEARTBEAT_INTERVAL - SECOND,
            "{who} gave the peer up after only {after:?}"
        );
    }
    let status = manage.status();
    assert!(
        status.computes.iter().all(|c| c.pid != victim_pid),
        "the cut compute is no longer listed: {status:?}"
    );

    // 3. Plug it back in: it reconnects (a new connection, a new compute id) and works again.
    let joins_before = count(&computes[victim].stderr_lines(), " as compute ");
    lan.reconnect(victim_host);
    let up_at = Instant::now();
    let rejoined = eventually(Duration::from_secs(45), || {
        count(&computes[victim].stderr_lines(), " as compute ") > joins_before
    });
    assert!(
        rejoined,
        "the compute did not rejoin within 45 s of the reconnection"
    );
    let new_id = {
        let lines = computes[victim].stderr_lines();
        let line = lines
            .iter()
            .rev()
            .find(|l| l.contains(" as compute "))
            .expect("seen")
            .clone();
        line.rsplit_once(" as compute ")
            .and_then(|(_, id)| id.trim().parse::<u64>().ok())
            .unwrap_or_else(|| panic!("bad join line {line:?}"))
    };
    eprintln!(
        "the compute rejoined as compute {new_id} {:.1} s after the reconnection",
        up_at.elapsed().as_secs_f64()
    );
    assert_ne!(new_id, victim_id, "a new connection gets a new compute id");
    let worked = eventually(Duration::from_secs(30), || {
        manage
            .events()
            .iter()
            .any(|e| matches!(e, Event::Result(r) if r.compute == new_id))
    });
    assert!(
        worked,
        "the reconnected compute {new_id} delivered no result within 30 s"
    );
    let status = manage.poll_status(deadline, "the compute is listed again", |s| {
        s.computes.iter().any(|c| c.pid == victim_pid)
    });
    let doc = status
        .computes
        .iter()
        .find(|c| c.pid == victim_pid)
        .expect("listed");
    assert!(
        doc.address
            .starts_with(&format!("{}:", lan.hosts[victim_host].address)),
        "the reconnected compute comes from its own address: {doc:?}"
    );
    assert!(
        !status.done,
        "the search ended before manage's restart: size it larger"
    );

    // 4. manage is SIGKILLed mid-run and restarted on the same state and address.
    let acked = acknowledged(&manage);
    sigkill(&mut manage.process);
    let stored = assert_nothing_acknowledged_lost(manage.state.path(), &acked);
    thread::sleep(SECOND);
    let old = restart(&mut manage, &args);
    assert_live_leases_disjoint(&events_of(&old));
    assert_eq!(
        resumed_tested(&manage.process),
        stored,
        "the count manage resumed with"
    );

    // 5. The search finishes exactly, with every compute back, each from its own address.
    let expected = perfect_between(start, until + 1);
    let last = manage.wait_exact(start, until, 3, deadline);
    for (compute, host) in computes.iter().zip(compute_hosts) {
        let doc = last
            .computes
            .iter()
            .find(|c| c.pid == u64::from(compute.pid()))
            .unwrap_or_else(|| panic!("the compute of {} is connected: {last:?}", host.netns));
        assert!(
            doc.address.starts_with(&format!("{}:", host.address)),
            "{doc:?} comes from {}",
            host.address
        );
        assert!(
            count(&compute.stderr_lines(), " numbers in ") > 0,
            "the compute in {} scanned ranges",
            host.netns
        );
    }
    assert_live_leases_disjoint(&manage.events());
    let (status, stdout, stderr) = manage.report(&["-k"]);
    assert!(status.success(), "report -k failed: {stdout:?} {stderr:?}");
    manage.process.expect_clean_exit(10 * SECOND);
    for compute in computes.iter_mut() {
        compute.expect_clean_exit(10 * SECOND);
    }
    assert_final_state(manage.state.path(), start, until, &expected);
    eprintln!(
        "searched [1, {until}] across the LAN in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // Everything is torn down.
    let tag = lan.tag().to_string();
    drop(computes);
    drop(manage);
    drop(old);
    drop(lan);
    let left = leftover(&tag);
    assert!(left.is_empty(), "namespaces left behind: {left:?}");
}

/// A test that fails half-way leaves nothing behind: its processes are killed and reaped, its
/// namespaces (and the veths in them) deleted.
#[test]
#[cfg_attr(not(sigma_root), ignore = "needs root: builds network namespaces")]
fn a_failing_test_leaves_no_namespace_and_no_process() {
    sigma_tests::binary("compute");
    let mut pid = 0;
    let mut tag = String::new();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let lan = Lan::create(2);
        tag = lan.tag().to_string();
        let address = format!("{}:8128", lan.hosts[0].address);
        // Nothing listens there: the compute keeps trying to connect.
        let compute = Process::start_in(&lan.hosts[1].netns, "compute", &[&address], |_| {});
        pid = compute.pid();
        assert!(
            compute
                .wait_for_stderr("cannot work with manage", Duration::from_secs(30))
                .is_some(),
            "the compute runs in its namespace and finds no manage"
        );
        panic!("failing on purpose, with a compute running in the LAN");
    }));
    assert!(outcome.is_err(), "the closure panicked");
    assert!(pid != 0, "the compute was started");
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "the compute (pid {pid}) was killed and reaped"
    );
    assert!(!tag.is_empty(), "the LAN was made");
    let left = leftover(&tag);
    assert!(left.is_empty(), "namespaces left behind: {left:?}");
}
