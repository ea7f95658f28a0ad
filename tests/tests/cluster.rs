//! The cluster end to end: the release binaries of manage, compute and report on 127.0.0.1, with
//! ports the kernel chose. Every test kills what it started (a `Process` is killed and reaped
//! when dropped, also when an assertion fails) and every wait is bounded.
//!
//! Runs that must last long enough to stop a compute in the middle of a range search near
//! 1.37 * 10^11 (the 7th perfect number, 137,438,691,328, lies there) or 10^12, on one thread per
//! compute, with ranges of 1 to 2 s.

use std::os::unix::process::ExitStatusExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread;
use std::time::{Duration, Instant};

use sigma_tests::cluster::{
    assert_live_leases_disjoint, assert_status_leases_disjoint, compute_id, final_state,
    merged_results, perfect_between, report_status, results, Event, Lease, StatusDoc,
};
use sigma_tests::{
    binary, Manage, Process, PERFECT_NUMBERS, SIGHUP, SIGINT, SIGKILL, SIGQUIT, SIGTERM,
};

/// The machine has two cores and cargo runs two tests at a time. Most tests only need the run
/// to be correct, whatever the speed; the sizing test measures time, so it runs alone.
static CPU: RwLock<()> = RwLock::new(());

fn shared_cpu() -> RwLockReadGuard<'static, ()> {
    CPU.read().unwrap_or_else(|e| e.into_inner())
}

fn whole_cpu() -> RwLockWriteGuard<'static, ()> {
    CPU.write().unwrap_or_else(|e| e.into_inner())
}

const SECOND: Duration = Duration::from_secs(1);
/// A compute measures its timing loop before it joins; on a loaded machine that takes a while.
const JOIN: Duration = Duration::from_secs(30);
/// The 7th perfect number lies in [NEAR_7TH, NEAR_7TH + 100,000,000).
const NEAR_7TH: u64 = 137_400_000_000;

/// A search from NEAR_7TH that keeps two one-thread computes busy for about `seconds` at this
/// machine's speed now (at least 100,000,000 numbers, so it holds the 7th perfect number). A
/// fixed size would end before a test's second or fourth lease on a fast machine: the ranges
/// themselves are sized by time.
fn search_near_7th(seconds: f64) -> (u64, u64) {
    let one_thread = sigma_tests::faults::numbers_per_second(NEAR_7TH).clamp(5e6, 3e8);
    let len = sigma_tests::faults::round_size(one_thread * 2.0 * seconds, 100_000_000);
    (NEAR_7TH, NEAR_7TH + len - 1)
}

fn start_computes(manage: &Manage, count: usize) -> Vec<Process> {
    (0..count)
        .map(|_| manage.start_compute(&["--threads", "1"]))
        .collect()
}

/// Waits for compute `id` to hold a lease predicted to take at least 1 s (not one of the short
/// probes a compute starts with), lets it work `into`, checks the lease is still unfinished, and
/// sends `process` the signal. Returns the lease it was stopped in.
fn signal_mid_range(
    manage: &Manage,
    process: &Process,
    id: u64,
    nth: usize,
    into: Duration,
    signal: i32,
) -> Lease {
    for count in nth..nth + 10 {
        let lease = manage.wait_for_assign(id, count, Duration::from_secs(40));
        if lease.predicted_ms < 1000 {
            continue;
        }
        thread::sleep(into);
        let ended = manage.events().iter().any(|e| match e {
            Event::Result(r) => r.lease == lease.lease,
            Event::Left { compute } => *compute == id,
            Event::Expired { lease: l } => *l == lease.lease,
            Event::Assign(_) => false,
        });
        if !ended {
            process.signal(signal);
            return lease;
        }
        eprintln!("lease {lease:?} ended within {into:?}; waiting for the next one");
    }
    panic!("compute {id} never held a lease of 1 s that lasted {into:?}");
}

/// The result manage took for `lease`, if any.
fn result_of(manage: &Manage, lease: u64) -> Option<sigma_tests::cluster::ResultEvent> {
    results(&manage.events())
        .into_iter()
        .find(|r| r.lease == lease)
}

/// Asserts a compute stopped in the middle of `lease` delivered the prefix it finished.
fn assert_partial_result(manage: &Manage, compute: &Process, lease: &Lease) {
    assert!(
        compute
            .stderr_lines()
            .iter()
            .any(|l| l.contains("(stopped early)")),
        "compute {} did not stop in the middle of a range",
        compute.pid()
    );
    let found = sigma_tests::eventually(Duration::from_secs(5), || {
        result_of(manage, lease.lease).is_some()
    });
    assert!(
        found,
        "manage took no result for the stopped lease {lease:?}"
    );
    let result = result_of(manage, lease.lease).expect("found above");
    assert_eq!(result.lo, lease.lo, "a partial result starts at the lease");
    assert!(
        result.hi < lease.hi,
        "the result {result:?} of a stopped lease {lease:?} is partial"
    );
}

/// Asserts the search of `[start, until]` finished exactly: every number tested once as far as
/// the count goes, the results cover exactly the search, the perfect numbers are those of the
/// range, and no two live leases ever overlapped.
fn assert_exact(manage: &Manage, status: &StatusDoc, start: u64, until: u64) {
    assert!(status.done, "{status:?}");
    assert_eq!(status.tested, until - start + 1, "tested: {status:?}");
    assert_eq!(status.frontier, until + 1, "frontier: {status:?}");
    assert_eq!(
        status.perfect,
        perfect_between(start, until + 1),
        "perfect numbers"
    );
    let events = manage.events();
    assert_eq!(
        merged_results(&events),
        vec![(start, until + 1)],
        "the results cover exactly the search"
    );
    let checked = assert_live_leases_disjoint(&events);
    assert!(checked >= 2, "only {checked} leases assigned");
}

/// `report -k`, and every process exits 0 within `within` of it.
fn kill_cluster(manage: &mut Manage, computes: &mut [Process], within: Duration) {
    let asked = Instant::now();
    let (status, stdout, stderr) = manage.report(&["-k"]);
    assert!(status.success(), "report -k failed: {stdout:?} {stderr:?}");
    assert!(
        stdout
            .iter()
            .any(|l| l.contains("is shutting the cluster down")),
        "report -k says what it did: {stdout:?}"
    );
    let left = within.saturating_sub(asked.elapsed());
    manage.process.expect_clean_exit(left);
    for compute in computes {
        let left = within.saturating_sub(asked.elapsed());
        compute.expect_clean_exit(left);
    }
    eprintln!(
        "report -k: everything exited 0 within {:.2} s",
        asked.elapsed().as_secs_f64()
    );
}

/// The wrapping sum of s(n) over `[lo, hi)`, from `compute scan`.
fn scan_checksum(lo: u64, hi: u64) -> u64 {
    let mut scan = Process::start("compute", &["scan", &lo.to_string(), &hi.to_string()]);
    scan.expect_clean_exit(Duration::from_secs(60));
    let line = scan
        .wait_for_stdout("checksum ", SECOND)
        .expect("scan prints its checksum");
    line["checksum ".len()..].trim().parse().expect("a number")
}

/// Scenario 1, as the issue gives it: two computes search 1..=40,000,000 and manage exits by
/// itself; the final state comes from manage's last log line.
#[test]
fn two_computes_find_the_first_five_and_everything_exits_when_done() {
    let _cpu = shared_cpu();
    let started = Instant::now();
    let mut manage = Manage::start(&[
        "--until",
        "40000000",
        "--exit-when-done",
        "--target-seconds",
        "1",
    ]);
    let mut computes = start_computes(&manage, 2);
    manage.process.expect_clean_exit(Duration::from_secs(60));
    for compute in &mut computes {
        compute.expect_clean_exit(Duration::from_secs(10));
    }
    let (tested, frontier, perfect) = final_state(&manage.process);
    assert_eq!(tested, 40_000_000);
    assert_eq!(frontier, 40_000_001);
    assert_eq!(perfect, PERFECT_NUMBERS[..5].to_vec());
    let events = manage.events();
    assert_eq!(merged_results(&events), vec![(1, 40_000_001)]);
    assert_live_leases_disjoint(&events);
    // With no range done twice, the results' checksums add up to the whole range's.
    let results = results(&events);
    let numbers: u64 = results.iter().map(|r| r.hi - r.lo).sum();
    if numbers == 40_000_000 {
        let sum = results
            .iter()
            .fold(0u64, |sum, r| sum.wrapping_add(r.checksum));
        assert_eq!(
            sum,
            scan_checksum(1, 40_000_001),
            "checksums of the results"
        );
    } else {
        eprintln!("{numbers} numbers scanned for 40,000,000: some twice; checksum not compared");
    }
    eprintln!("took {:.1} s", started.elapsed().as_secs_f64());
}

/// Scenario 1 read from `report --xml`: manage keeps running after the search, so the final
/// state is polled; then `report -k` stops everything.
#[test]
fn report_shows_exactly_forty_million_tested() {
    let _cpu = shared_cpu();
    let mut manage = Manage::start(&["--until", "40000000", "--target-seconds", "1"]);
    let mut computes = start_computes(&manage, 2);
    let status = manage.wait_done(Duration::from_secs(60));
    assert_eq!(status.start, 1);
    assert_eq!(status.until, 40_000_000);
    assert_eq!(status.perfect, PERFECT_NUMBERS[..5].to_vec());
    assert_exact(&manage, &status, 1, 40_000_000);
    // Both computes stay connected, idle.
    assert_eq!(status.computes.len(), 2, "{status:?}");
    // The progress line of the human view: all done, nothing left to wait for.
    let (exit, stdout, stderr) = manage.report(&[]);
    assert!(exit.success(), "report failed: {stderr:?}");
    assert!(
        stdout
            .iter()
            .any(|line| line == "progress   100.0% of numbers up to 40,000,000, ETA 0 s"),
        "{stdout:?}"
    );
    kill_cluster(&mut manage, &mut computes, Duration::from_secs(5));
}

/// Scenario 2: `report -k` while both computes are in the middle of a range: everything exits 0
/// within 5 s, and the prefixes they finished are recorded.
#[test]
fn report_kill_during_a_run_stops_everything_within_five_seconds() {
    let _cpu = shared_cpu();
    let mut manage = Manage::start(&["--start", "1000000000000", "--target-seconds", "2"]);
    let mut computes = start_computes(&manage, 2);
    let ids: Vec<u64> = computes.iter().map(|c| compute_id(c, JOIN)).collect();
    for &id in &ids {
        manage.wait_for_assign(id, 2, Duration::from_secs(30));
    }
    thread::sleep(Duration::from_millis(300));
    kill_cluster(&mut manage, &mut computes, Duration::from_secs(5));
    let (tested, _, perfect) = final_state(&manage.process);
    let events = manage.events();
    let counted: u64 = merged_results(&events).iter().map(|(lo, hi)| hi - lo).sum();
    assert_eq!(
        tested, counted,
        "every result, partial ones too, is counted"
    );
    assert!(perfect.is_empty());
    assert!(
        manage
            .process
            .stderr_lines()
            .iter()
            .any(|l| l.contains("asks to shut the cluster down (2 computes)")),
        "manage logs the kill"
    );
    for compute in &computes {
        assert!(
            compute
                .stderr_lines()
                .iter()
                .any(|l| l.contains("said bye to manage")),
            "compute {} said bye",
            compute.pid()
        );
    }
}

/// Scenario 3, a compute: stopped by `signal` in the middle of a range it exits 0 and hands in
/// the prefix it finished; the other compute finishes the search, and the count is exact.
fn compute_signal_loses_no_numbers(signal: i32) {
    let _cpu = shared_cpu();
    let (start, until) = search_near_7th(8.0);
    let mut manage = Manage::start(&[
        "--start",
        &start.to_string(),
        "--until",
        &until.to_string(),
        "--target-seconds",
        "2",
    ]);
    let mut computes = start_computes(&manage, 2);
    let id = compute_id(&computes[0], JOIN);
    let lease = signal_mid_range(
        &manage,
        &computes[0],
        id,
        2,
        Duration::from_millis(300),
        signal,
    );
    computes[0].expect_clean_exit(Duration::from_secs(5));
    assert_partial_result(&manage, &computes[0], &lease);
    let status = manage.wait_done(Duration::from_secs(60));
    assert_exact(&manage, &status, start, until);
    assert_eq!(status.perfect, vec![137_438_691_328]);
    assert_eq!(status.computes.len(), 1, "the stopped compute left");
    kill_cluster(&mut manage, &mut computes[1..], Duration::from_secs(5));
}

#[test]
fn compute_stopped_by_sigint_loses_no_numbers() {
    compute_signal_loses_no_numbers(SIGINT);
}

#[test]
fn compute_stopped_by_sigquit_loses_no_numbers() {
    compute_signal_loses_no_numbers(SIGQUIT);
}

#[test]
fn compute_stopped_by_sighup_loses_no_numbers() {
    compute_signal_loses_no_numbers(SIGHUP);
}

#[test]
fn compute_stopped_by_sigterm_loses_no_numbers() {
    compute_signal_loses_no_numbers(SIGTERM);
}

/// Scenario 3, manage: `signal` in the middle of a range shuts the cluster down; everything
/// exits 0, and the compute's finished prefix is recorded before manage exits.
fn manage_signal_shuts_the_cluster_down(signal: i32, name: &str) {
    let _cpu = shared_cpu();
    let mut manage = Manage::start(&["--start", "1000000000000", "--target-seconds", "2"]);
    let mut computes = start_computes(&manage, 1);
    let id = compute_id(&computes[0], JOIN);
    let lease = signal_mid_range(
        &manage,
        &manage.process,
        id,
        2,
        Duration::from_millis(300),
        signal,
    );
    let asked = Instant::now();
    manage.process.expect_clean_exit(Duration::from_secs(8));
    computes[0].expect_clean_exit(Duration::from_secs(8).saturating_sub(asked.elapsed()));
    eprintln!(
        "{name}: everything exited 0 within {:.2} s",
        asked.elapsed().as_secs_f64()
    );
    assert!(
        manage
            .process
            .stderr_lines()
            .iter()
            .any(|l| l.contains(&format!("shutting down (received {name})"))),
        "manage logs why it shuts down"
    );
    assert_partial_result(&manage, &computes[0], &lease);
    let (tested, _, _) = final_state(&manage.process);
    let counted: u64 = merged_results(&manage.events())
        .iter()
        .map(|(lo, hi)| hi - lo)
        .sum();
    assert_eq!(tested, counted, "the partial result is counted");
}

#[test]
fn manage_stopped_by_sigint_exits_cleanly() {
    manage_signal_shuts_the_cluster_down(SIGINT, "SIGINT");
}

#[test]
fn manage_stopped_by_sigquit_exits_cleanly() {
    manage_signal_shuts_the_cluster_down(SIGQUIT, "SIGQUIT");
}

#[test]
fn manage_stopped_by_sighup_exits_cleanly() {
    manage_signal_shuts_the_cluster_down(SIGHUP, "SIGHUP");
}

#[test]
fn manage_stopped_by_sigterm_exits_cleanly() {
    manage_signal_shuts_the_cluster_down(SIGTERM, "SIGTERM");
}

/// Scenario 4: a compute killed with SIGKILL in the middle of a range; manage sees its
/// connection close, gives the range to the other compute, and the count is still exact.
#[test]
fn a_killed_computes_range_is_reassigned() {
    let _cpu = shared_cpu();
    let (start, until) = search_near_7th(8.0);
    let mut manage = Manage::start(&[
        "--start",
        &start.to_string(),
        "--until",
        &until.to_string(),
        "--target-seconds",
        "2",
    ]);
    let mut computes = start_computes(&manage, 2);
    let id = compute_id(&computes[0], JOIN);
    let lease = signal_mid_range(
        &manage,
        &computes[0],
        id,
        2,
        Duration::from_millis(300),
        SIGKILL,
    );
    let status = computes[0]
        .wait_exit(Duration::from_secs(5))
        .expect("SIGKILL ends it");
    assert_eq!(status.signal(), Some(SIGKILL), "{status}");
    assert!(
        sigma_tests::eventually(Duration::from_secs(5), || manage
            .events()
            .contains(&Event::Left { compute: id })),
        "manage notices the killed compute"
    );
    let done = manage.wait_done(Duration::from_secs(60));
    assert_exact(&manage, &done, start, until);
    // The killed lease got no result; its numbers were handed to the other compute.
    assert!(result_of(&manage, lease.lease).is_none());
    let events = manage.events();
    let other_got_it = events.iter().any(|e| match e {
        Event::Assign(l) => l.compute != id && l.lo <= lease.lo && lease.lo < l.hi,
        _ => false,
    });
    assert!(
        other_got_it,
        "the killed lease {lease:?} was reassigned to the other compute"
    );
    kill_cluster(&mut manage, &mut computes[1..], Duration::from_secs(5));
}

/// Scenario 5: computes join late and leave early while `report --xml` is sampled as fast as it
/// runs; no two computes ever hold overlapping leases, in any sample or in manage's log.
#[test]
fn late_joiners_and_early_leavers_never_overlap() {
    let _cpu = shared_cpu();
    let (start, until) = search_near_7th(14.0);
    let mut manage = Manage::start(&[
        "--start",
        &start.to_string(),
        "--until",
        &until.to_string(),
        "--target-seconds",
        "1",
    ]);
    let address = manage.address_arg();
    let stop = AtomicBool::new(false);
    let (samples, busy, done) = thread::scope(|scope| {
        let sampler = scope.spawn(|| {
            let (mut samples, mut busy) = (0usize, 0usize);
            let backstop = Instant::now() + Duration::from_secs(150);
            while !stop.load(Ordering::Relaxed) && Instant::now() < backstop {
                let Some(status) = report_status(&address) else {
                    thread::sleep(Duration::from_millis(20));
                    continue;
                };
                assert_status_leases_disjoint(&status);
                samples += 1;
                if status.computes.iter().filter(|c| c.lease.is_some()).count() >= 2 {
                    busy += 1;
                }
                thread::sleep(Duration::from_millis(20));
            }
            (samples, busy)
        });

        // Stops the sampler also when an assertion below fails, so the scope can end.
        let _stop_sampler = SetOnDrop(&stop);
        let mut first = manage.start_compute(&["--threads", "1"]);
        let first_id = compute_id(&first, JOIN);
        manage.wait_for_assign(first_id, 2, Duration::from_secs(30));
        // A second compute joins late...
        let mut second = manage.start_compute(&["--threads", "1"]);
        let second_id = compute_id(&second, JOIN);
        manage.wait_for_assign(second_id, 2, Duration::from_secs(30));
        // ...and a third later still; then the first two leave early, one after the other.
        let third = manage.start_compute(&["--threads", "1"]);
        let third_id = compute_id(&third, JOIN);
        manage.wait_for_assign(third_id, 1, Duration::from_secs(30));
        first.signal(SIGTERM);
        first.expect_clean_exit(Duration::from_secs(5));
        manage.wait_for_assign(second_id, 4, Duration::from_secs(30));
        second.signal(SIGINT);
        second.expect_clean_exit(Duration::from_secs(5));
        let done = manage.wait_done(Duration::from_secs(60));
        stop.store(true, Ordering::Relaxed);
        let (samples, busy) = sampler.join().expect("the sampler found no overlap");
        let mut rest = [third];
        kill_cluster(&mut manage, &mut rest, Duration::from_secs(5));
        (samples, busy, done)
    });
    eprintln!("{samples} samples of report --xml, {busy} with two or more leases held");
    assert!(
        busy >= 3,
        "the run had two computes at work in only {busy} of {samples} samples"
    );
    assert_exact(&manage, &done, start, until);
    assert_eq!(done.perfect, vec![137_438_691_328]);
}

/// Sets the flag when dropped, also while unwinding.
struct SetOnDrop<'a>(&'a AtomicBool);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Scenario 6: with `--target-seconds 2`, the ranges after each compute's first (a probe) take
/// 2 s within 20%, by their median; the table of measured times is printed.
#[test]
fn ranges_take_the_target_time() {
    let _cpu = whole_cpu();
    const TARGET: f64 = 2.0;
    const WANTED: usize = 12;
    let mut manage = Manage::start(&["--start", "1000000000000", "--target-seconds", "2"]);
    let mut computes = start_computes(&manage, 2);
    let ids: Vec<u64> = computes.iter().map(|c| compute_id(c, JOIN)).collect();
    // Results after each compute's first, of whole leases (not a stop's partial result).
    let sized = |events: &[Event]| -> Vec<(Lease, f64)> {
        let leases: Vec<Lease> = events
            .iter()
            .filter_map(|e| match e {
                Event::Assign(l) => Some(*l),
                _ => None,
            })
            .collect();
        let mut rows = Vec::new();
        for &id in &ids {
            let mine: Vec<&Lease> = leases.iter().filter(|l| l.compute == id).collect();
            for lease in mine.iter().skip(1) {
                if let Some(r) = results(events).iter().find(|r| r.lease == lease.lease) {
                    if r.hi == lease.hi {
                        rows.push((**lease, r.seconds));
                    }
                }
            }
        }
        rows
    };
    let enough = sigma_tests::eventually(Duration::from_secs(50), || {
        sized(&manage.events()).len() >= WANTED
    });
    kill_cluster(&mut manage, &mut computes, Duration::from_secs(5));
    let mut rows = sized(&manage.events());
    assert!(
        enough,
        "only {} sized ranges finished in 50 s: {rows:?}",
        rows.len()
    );
    rows.sort_by_key(|(l, _)| l.lease);
    eprintln!("\nrange sizing, target {TARGET} s:");
    eprintln!(
        "{:>7} {:>7} {:>15} {:>12} {:>11} {:>10}",
        "compute", "lease", "lo", "numbers", "predicted s", "measured s"
    );
    for (lease, seconds) in &rows {
        eprintln!(
            "{:>7} {:>7} {:>15} {:>12} {:>11.2} {:>10.2}",
            lease.compute,
            lease.lease,
            lease.lo,
            lease.hi - lease.lo,
            lease.predicted_ms as f64 / 1000.0,
            seconds
        );
    }
    let mut measured: Vec<f64> = rows.iter().map(|(_, s)| *s).collect();
    measured.sort_by(f64::total_cmp);
    let median = if measured.len() % 2 == 1 {
        measured[measured.len() / 2]
    } else {
        (measured[measured.len() / 2 - 1] + measured[measured.len() / 2]) / 2.0
    };
    eprintln!("median {median:.2} s = {:.2} x the target", median / TARGET);
    assert!(
        (TARGET * 0.8..=TARGET * 1.2).contains(&median),
        "the median range took {median:.2} s, not {TARGET} s within 20%"
    );
}

/// The harness itself: the binaries are where it says.
#[test]
fn binaries_are_built() {
    for name in ["manage", "compute", "report"] {
        assert!(binary(name).is_file(), "{name} is built");
    }
}
