//! Faults end to end: computes and manage killed with SIGKILL in the middle of real runs, manage
//! restarted on the same state folder and port (the computes reconnect by themselves), and the
//! durable state (`sigma.db`) read afterwards. After every run: the perfect numbers are exactly
//! those of the search, `tested` is its size, and the stored ranges tile it with no gap and no
//! overlap. After every kill of manage: everything it had acknowledged is on disk.
//!
//! The random choices (which compute, when) print their seed; `SIGMA_FAULT_SEED` replays them.
//! The tests run one at a time: the machine has two cores, and each test runs a cluster.

use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use sigma_tests::cluster::{
    assert_live_leases_disjoint, compute_id, event_fields, events_of, field, perfect_between,
    results, Event,
};
use sigma_tests::faults::{
    acknowledged, assert_final_state, assert_nothing_acknowledged_lost, numbers_per_second,
    restart, resumed_tested, round_size, sigkill, Rng, StoredState,
};
use sigma_tests::{Manage, Process};

static SERIAL: Mutex<()> = Mutex::new(());

/// One test at a time; the binaries are built (once) before a test's clock starts.
fn serial() -> MutexGuard<'static, ()> {
    let guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    sigma_tests::binary("manage");
    guard
}

const SECOND: Duration = Duration::from_secs(1);
/// A compute runs its timing loop before it joins; on a loaded machine that takes a while.
const JOIN: Duration = Duration::from_secs(30);

fn one_thread(manage: &Manage) -> Process {
    manage.start_compute(&["--threads", "1"])
}

/// `--start`, `--until` and `--target-seconds`, as manage takes them.
fn bounds(start: u64, until: u64, target_seconds: &str) -> Vec<String> {
    vec![
        "--start".into(),
        start.to_string(),
        "--until".into(),
        until.to_string(),
        "--target-seconds".into(),
        target_seconds.into(),
    ]
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// Waits for the search to be done and checks it through `report --xml`: exactly its size
/// tested, the frontier past its end, exactly its perfect numbers (verification runs on a
/// thread, so they may trail the count by a moment), and `computes` computes connected (the
/// killed manage's computes came back). Then `report -k`: manage and every compute exit 0.
/// Last, the database, read after manage stopped, tiles the search exactly. The search must be
/// done by `deadline` (at least 5 s from now).
fn finish(
    manage: &mut Manage,
    computes: &mut [Process],
    start: u64,
    until: u64,
    deadline: Instant,
) {
    let expected = perfect_between(start, until + 1);
    manage.wait_exact(start, until, computes.len(), deadline);
    let checked = assert_live_leases_disjoint(&manage.events());
    eprintln!("{checked} leases assigned by the last manage, none overlapping a live one");

    let (status, stdout, stderr) = manage.report(&["-k"]);
    assert!(status.success(), "report -k failed: {stdout:?} {stderr:?}");
    manage.process.expect_clean_exit(Duration::from_secs(10));
    for compute in computes.iter_mut() {
        compute.expect_clean_exit(Duration::from_secs(10));
    }
    assert_final_state(manage.state.path(), start, until, &expected);
}

/// One thread's rate now, for sizing a search, kept within 5,000,000 to 60,000,000 numbers/s:
/// one sample of a machine whose load changes must not size a search absurdly.
fn sizing_rate(lo: u64) -> f64 {
    numbers_per_second(lo).clamp(5e6, 6e7)
}

/// Three one-thread computes search 1..=N (the first five perfect numbers; N sized for about
/// 12 s without faults) with ranges of 1 s. Every 2 to 4 s, and also when the count passes
/// about 20%, 45% and 70% of the search (so that a run faster than planned still has its
/// faults), one of them, preferably one holding a lease, is killed with SIGKILL and a new one
/// started. manage hands the killed leases out again; nothing is lost or counted twice.
#[test]
fn computes_killed_at_random_lose_nothing() {
    let _serial = serial();
    let started = Instant::now();
    let mut rng = Rng::seeded("computes_killed_at_random_lose_nothing");
    // Three one-thread computes on two cores: about 1.5 times one thread, on a shared machine.
    let until = round_size(sizing_rate(1_000_000_000) * 1.5 * 12.0, 100_000_000);
    let start = 1;
    let mut manage = Manage::start(&strs(&bounds(start, until, "1")));
    let mut computes: Vec<Process> = (0..3).map(|_| one_thread(&manage)).collect();
    let mut marks: Vec<u64> = [20, 45, 70]
        .iter()
        .map(|percent| (until / 100) * (percent - 5 + rng.below(11)))
        .collect();
    let (mut kills, mut mid_lease) = (0, 0);
    let deadline = started + Duration::from_secs(50);
    loop {
        let due = Instant::now() + rng.between(2 * SECOND, 4 * SECOND);
        let status = manage.poll_status(deadline, "the search is not done", |status| {
            status.done
                || Instant::now() >= due
                || marks.first().is_some_and(|&m| status.tested >= m)
        });
        if status.done {
            break;
        }
        marks.retain(|&m| m > status.tested);
        let busy: Vec<usize> = (0..computes.len())
            .filter(|&i| {
                let pid = u64::from(computes[i].pid());
                status
                    .computes
                    .iter()
                    .any(|c| c.pid == pid && c.lease.is_some())
            })
            .collect();
        let victim = if busy.is_empty() {
            rng.below(computes.len() as u64) as usize
        } else {
            mid_lease += 1;
            busy[rng.below(busy.len() as u64) as usize]
        };
        eprintln!(
            "SIGKILL compute pid {} at {} of {until} tested ({} of {} computes hold a lease)",
            computes[victim].pid(),
            status.tested,
            busy.len(),
            computes.len()
        );
        sigkill(&mut computes[victim]);
        computes[victim] = one_thread(&manage);
        kills += 1;
    }
    let left = manage
        .events()
        .iter()
        .filter(|e| matches!(e, Event::Left { .. }))
        .count();
    assert!(
        left >= kills,
        "manage noticed {left} of {kills} killed computes"
    );
    eprintln!("{kills} computes killed, {mid_lease} of them in the middle of a lease");
    assert!(
        kills >= 3 && mid_lease >= 2,
        "too few faults to mean much: {kills} kills, {mid_lease} in a lease"
    );
    finish(&mut manage, &mut computes, start, until, deadline);
    eprintln!("took {:.1} s", started.elapsed().as_secs_f64());
}

/// manage is killed in the middle of a lease of its only compute and restarted on the same
/// state and port after that compute finished the lease: the compute reconnects by itself and
/// delivers the result, which manage takes as a late result of the lease outstanding at its
/// last stop, and counts in full. A second compute joins, and the search from 8,500,000,000
/// past the 6th perfect number (8,589,869,056; sized for about 12 s) finishes exactly.
#[test]
fn manage_killed_mid_lease_takes_the_late_result_after_restart() {
    let _serial = serial();
    let started = Instant::now();
    let start = 8_500_000_000;
    let until = start + round_size(sizing_rate(start) * 12.0, 100_000_000) - 1;
    let args = bounds(start, until, "3");
    let mut manage = Manage::start(&strs(&args));
    let mut computes = vec![one_thread(&manage)];
    let id = compute_id(&computes[0], JOIN);
    let finished_line = |lease: u64| format!("lease {lease}: [");
    // A lease predicted to take 2 s or more (not the first, a short probe) that the compute is
    // still scanning.
    let mut chosen = None;
    for nth in 2..12 {
        let lease = manage.wait_for_assign(id, nth, Duration::from_secs(40));
        if lease.predicted_ms < 2000 {
            continue;
        }
        thread::sleep(Duration::from_millis(300));
        let acked = acknowledged(&manage);
        if computes[0]
            .wait_for_stderr(&finished_line(lease.lease), Duration::ZERO)
            .is_some()
        {
            eprintln!("lease {lease:?} finished too soon; taking the next one");
            continue;
        }
        sigkill(&mut manage.process);
        chosen = Some((lease, acked));
        break;
    }
    let (lease, acked) = chosen.expect("the compute held a lease of 2 s or more");
    eprintln!("killed manage in lease {lease:?}");
    let old_results = results(&events_of(&manage.process));
    assert!(
        old_results.iter().all(|r| r.lease != lease.lease),
        "manage took the result of lease {} before it was killed: the late delivery was not forced",
        lease.lease
    );
    let stored = assert_nothing_acknowledged_lost(manage.state.path(), &acked);
    let outstanding = StoredState::open(manage.state.path()).leases();
    assert!(
        outstanding.contains(&(lease.lease, lease.lo)),
        "lease {lease:?} is stored as outstanding: {outstanding:?}"
    );

    // The compute finishes its scan while manage is down; then manage comes back.
    computes[0]
        .wait_for_stderr(&finished_line(lease.lease), Duration::from_secs(30))
        .expect("the compute finishes its lease with manage down");
    let old = restart(&mut manage, &strs(&args));
    assert_live_leases_disjoint(&events_of(&old));
    assert_eq!(
        resumed_tested(&manage.process),
        stored,
        "the count manage resumed with"
    );
    manage
        .process
        .wait_for_stdout(
            &format!(
                " restored lease={} compute={id} lo={} hi={}",
                lease.lease, lease.lo, lease.hi
            ),
            SECOND,
        )
        .expect("the restarted manage names the outstanding lease");

    let late = manage
        .process
        .wait_for_stdout(
            &format!(" result lease={} compute=", lease.lease),
            Duration::from_secs(30),
        )
        .expect("the compute delivers its result after manage restarts");
    let (_, fields) = event_fields(&late).expect("an event line");
    assert_eq!(field(&fields, "late"), Some(1), "a late result: {late}");
    let numbers = |key| field::<u64>(&fields, key).expect("the result event's fields");
    assert_eq!(
        numbers("new"),
        numbers("hi") - numbers("lo"),
        "the late result counts in full (nobody else did that range): {late}"
    );
    let rejoined = computes[0]
        .stderr_lines()
        .iter()
        .filter(|l| l.contains(" as compute "))
        .count();
    assert_eq!(
        rejoined, 2,
        "the compute joined, then rejoined the restarted manage"
    );

    computes.push(one_thread(&manage));
    finish(
        &mut manage,
        &mut computes,
        start,
        until,
        started + 55 * SECOND,
    );
    eprintln!("took {:.1} s", started.elapsed().as_secs_f64());
}

/// manage is killed with SIGKILL twice at random moments of a run of two computes over 1..=N
/// (sized for about 12 s without faults): once the count passes a random point between 10%
/// and 35% of the search, then one between 45% and 70%, each after a further random delay.
/// It is restarted each time on the same state and port (first with the same bounds, then with
/// none: the state keeps its own) after a random outage of up to 1.5 s, and the computes
/// reconnect by themselves. Nothing acknowledged is lost at either kill, and the search
/// finishes exactly.
#[test]
fn manage_killed_twice_at_random_moments_loses_nothing() {
    let _serial = serial();
    let started = Instant::now();
    let mut rng = Rng::seeded("manage_killed_twice_at_random_moments_loses_nothing");
    let until = round_size(sizing_rate(1_000_000_000) * 1.5 * 12.0, 100_000_000);
    let start = 1;
    let args = bounds(start, until, "1");
    let mut manage = Manage::start(&strs(&args));
    let mut computes: Vec<Process> = (0..2).map(|_| one_thread(&manage)).collect();
    for compute in &computes {
        compute_id(compute, JOIN);
    }
    let deadline = started + Duration::from_secs(45);
    let mut late = 0;
    for (round, (low, high)) in [(10, 35), (45, 70)].into_iter().enumerate() {
        let mark = (until / 100) * (low + rng.below(high - low + 1));
        manage.poll_status(deadline, "the kill's mark is not reached", |status| {
            status.tested >= mark
        });
        thread::sleep(rng.between(Duration::ZERO, Duration::from_millis(700)));
        let acked = acknowledged(&manage);
        assert!(!acked.status.done, "the search ended before kill {round}");
        // The check above is only a lower bound: a moment more does not weaken it.
        thread::sleep(rng.between(Duration::ZERO, Duration::from_millis(300)));
        sigkill(&mut manage.process);
        eprintln!(
            "kill {round}: past {mark} of {until}, {} numbers reported tested before it",
            acked.status.tested
        );
        let stored = assert_nothing_acknowledged_lost(manage.state.path(), &acked);
        thread::sleep(rng.between(Duration::ZERO, Duration::from_millis(1500)));
        let old = if round == 0 {
            restart(&mut manage, &strs(&args))
        } else {
            restart(&mut manage, &["--target-seconds", "1"])
        };
        assert_live_leases_disjoint(&events_of(&old));
        late += results(&events_of(&old))
            .iter()
            .filter(|r| r.late_or_partly_new)
            .count();
        assert_eq!(
            resumed_tested(&manage.process),
            stored,
            "the count manage resumed with after kill {round}"
        );
    }
    finish(
        &mut manage,
        &mut computes,
        start,
        until,
        started + 55 * SECOND,
    );
    late += results(&manage.events())
        .iter()
        .filter(|r| r.late_or_partly_new)
        .count();
    eprintln!(
        "{late} results late or partly new; took {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
