//! The perfect-numbers run: the whole system, end to end, against the kernel alone.
//!
//! `cargo bench -p sigma-tests --bench perfect` searches 1..=10^10 (the first six perfect
//! numbers, about a minute) with the README's cluster: `manage --local 1 --exit-when-done`, one
//! compute on every core, default target and double-checks. With an argument,
//! `cargo bench -p sigma-tests --bench perfect -- 137438691328`, it searches up to that number
//! instead (the seventh perfect number, about 15 minutes on two cores).
//!
//! It prints the time, since manage started listening, at which manage logged each perfect
//! number (after its own check of the claim), then the whole run's time and rate; while the
//! search runs, `report --xml` (polled every 250 ms) shows the numbers as they come. As a
//! baseline in the same run it times `compute scan` of 2^28 numbers on one thread at three
//! points of the search and prints the cluster's rate over (cores x the one-thread rate): how
//! much of the kernel's speed the cluster delivers, sizing, probes, double-checks and the
//! protocol included.

use std::time::{Duration, Instant};

use sigma_tests::cluster::{final_state, report_status};
use sigma_tests::faults::scan_rate;
use sigma_tests::{Manage, PERFECT_NUMBERS};

/// Seconds since midnight of a log line's `[YYYY-MM-DDTHH:MM:SS.mmmZ` timestamp.
fn log_seconds(line: &str) -> Option<f64> {
    let stamp = line.strip_prefix('[')?.get(..24)?;
    let time = stamp.split_once('T')?.1.trim_end_matches('Z');
    let mut parts = time.split(':');
    let hours: f64 = parts.next()?.parse().ok()?;
    let minutes: f64 = parts.next()?.parse().ok()?;
    let seconds: f64 = parts.next()?.parse().ok()?;
    Some(hours * 3600.0 + minutes * 60.0 + seconds)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let until: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(10_000_000_000);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let expected: Vec<u64> = PERFECT_NUMBERS
        .iter()
        .copied()
        .filter(|&p| p <= until)
        .collect();
    eprintln!(
        "searching 1..={until} with manage --local 1 ({cores} threads); expecting {expected:?}"
    );

    let until_arg = until.to_string();
    // The harness builds the binaries on first use (release profile, which this bench's
    // profile may not share): before the clock starts.
    sigma_tests::binary("manage");
    let started = Instant::now();
    let mut manage =
        Manage::start_quiet(&["--until", &until_arg, "--exit-when-done", "--local", "1"]);
    let address = manage.address_arg();
    let mut shown = Vec::new();
    // Generous: a tenth of the one-thread rate near 10^9 on every core.
    let bound = Duration::from_secs(3600 * 6);
    loop {
        match report_status(&address) {
            Some(status) => {
                for &n in &status.perfect {
                    if !shown.contains(&n) {
                        shown.push(n);
                        eprintln!(
                            "{:>9.1} s  report shows perfect {n} ({} numbers tested)",
                            started.elapsed().as_secs_f64(),
                            status.tested
                        );
                    }
                }
                if status.done {
                    break;
                }
            }
            // manage exits by itself once done (--exit-when-done).
            None if manage.process.wait_exit(Duration::ZERO).is_some() => break,
            None => {}
        }
        assert!(started.elapsed() < bound, "the search took over {bound:?}");
        std::thread::sleep(Duration::from_millis(250));
    }
    let seconds = started.elapsed().as_secs_f64();
    let status = manage
        .process
        .wait_exit(Duration::from_secs(60))
        .expect("manage exits after the search (--exit-when-done)");
    assert!(status.success(), "manage ended with {status}");
    // The last word is manage's own: what it recorded when it stopped.
    let (tested, frontier, perfect) = final_state(&manage.process);
    assert_eq!(
        (tested, frontier),
        (until, until + 1),
        "manage's final count"
    );
    assert_eq!(perfect, expected, "the perfect numbers manage recorded");
    // From manage's own log: the search can end right at a perfect number, and manage exits
    // at once (--exit-when-done), before a poll of report sees it.
    let lines = manage.process.stderr_lines();
    let started_at = lines
        .iter()
        .find(|l| l.contains("listening on "))
        .and_then(|l| log_seconds(l))
        .expect("manage logged where it listens");
    for line in &lines {
        let Some((_, rest)) = line.split_once("] perfect number ") else {
            continue;
        };
        let n = rest.split_whitespace().next().unwrap_or("?");
        let at = log_seconds(line).map_or(f64::NAN, |t| (t - started_at).rem_euclid(86_400.0));
        eprintln!("{at:>9.1} s  perfect {n:>15}  (manage's log)");
    }
    eprintln!(
        "all {} found; 1..={until} done in {seconds:.1} s ({:.1} M numbers/s), {tested} numbers tested",
        expected.len(),
        until as f64 / seconds / 1e6,
    );

    // The kernel alone, one thread, at a quarter, half and the end of the search, on scans long
    // enough (2^28 numbers, a few seconds) that starting a block weighs no more than in the
    // cluster's ranges.
    let rates: Vec<f64> = [until / 4, until / 2, until - until / 100]
        .iter()
        .map(|&lo| scan_rate(lo.max(1), 1 << 28))
        .collect();
    // Time per number grows with n, so the whole run's ideal is the harmonic mean.
    let ideal = rates.len() as f64 / rates.iter().map(|r| 1.0 / r).sum::<f64>() * cores as f64;
    eprintln!(
        "baseline: compute scan, one thread: {} M numbers/s at 1/4, 1/2, 99/100 of the search; x {cores} cores = {:.1} M/s",
        rates
            .iter()
            .map(|r| format!("{:.1}", r / 1e6))
            .collect::<Vec<_>>()
            .join(", "),
        ideal / 1e6
    );
    eprintln!(
        "cluster / (cores x one thread) = {:.2}",
        until as f64 / seconds / ideal
    );
}
