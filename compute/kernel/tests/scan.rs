//! The kernel against its definition: known values, the three algorithms against each other at
//! every magnitude, the edges of u64, and stopping.
//!
//! Where naive is compared: it costs n divisions per number, so it is checked on ranges below
//! about 10^6 and on single numbers up to 3.4 * 10^7 (the fifth perfect number). Trial division
//! (sqrt(n) divisions per number) is the reference from 10^9 up: windows of up to a few thousand
//! numbers near 10^9 and 10^12, and of one or two numbers near 10^15 and 10^18. Long sieve
//! ranges (where the bucketed divisors are used) are checked against the same range cut into
//! one-segment windows, which take the sieve's other path (every large divisor found directly).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use sigma_kernel::proper_divisor_sum;
use sigma_kernel::{scan, Algorithm, ScanError, ScanOutcome};

fn run(algorithm: Algorithm, lo: u64, hi: u64, threads: usize) -> ScanOutcome {
    let never = AtomicBool::new(false);
    let outcome = scan(algorithm, lo, hi, threads, &never, None).expect("a valid range");
    assert_eq!(outcome.lo, lo);
    assert_eq!(outcome.done, hi, "{algorithm} [{lo}, {hi}) not finished");
    outcome
}

/// All three algorithms (or the affordable ones) give the same outcome.
fn assert_agree(algorithms: &[Algorithm], lo: u64, hi: u64, threads: usize) -> ScanOutcome {
    let reference = run(algorithms[0], lo, hi, threads);
    for &algorithm in &algorithms[1..] {
        let outcome = run(algorithm, lo, hi, threads);
        assert_eq!(
            outcome, reference,
            "{algorithm} vs {} on [{lo}, {hi})",
            algorithms[0]
        );
    }
    reference
}

const ALL: [Algorithm; 3] = [Algorithm::Naive, Algorithm::Trial, Algorithm::Sieve];
const FAST: [Algorithm; 2] = [Algorithm::Trial, Algorithm::Sieve];

#[test]
fn checksum_below_ten_thousand() {
    for threads in [1, 3] {
        let outcome = assert_agree(&ALL, 1, 10_000, threads);
        assert_eq!(outcome.checksum, 32_236_803);
        assert_eq!(outcome.perfect, [6, 28, 496, 8128]);
    }
}

#[test]
fn the_first_values_of_s() {
    // s(1..=12) = 0 1 1 3 1 6 1 7 4 8 1 16.
    let expected = [0u64, 1, 1, 3, 1, 6, 1, 7, 4, 8, 1, 16];
    for (n, &s) in (1u64..).zip(expected.iter()) {
        for algorithm in ALL {
            assert_eq!(
                run(algorithm, n, n + 1, 1).checksum,
                s,
                "{algorithm} s({n})"
            );
        }
    }
    assert_eq!(run(Algorithm::Sieve, 1, 10, 1).checksum, 24);
}

#[test]
fn the_first_five_perfect_numbers_from_one() {
    let outcome = run(Algorithm::Sieve, 1, 40_000_000, 2);
    assert_eq!(outcome.perfect, [6, 28, 496, 8128, 33_550_336]);
}

#[test]
fn the_fifth_perfect_number_by_every_algorithm() {
    for algorithm in ALL {
        let outcome = run(algorithm, 33_550_336, 33_550_337, 1);
        assert_eq!(outcome.perfect, [33_550_336], "{algorithm}");
        assert_eq!(outcome.checksum, 33_550_336);
    }
    let window = assert_agree(&FAST, 33_550_000, 33_551_000, 2);
    assert_eq!(window.perfect, [33_550_336]);
}

#[test]
fn the_sixth_and_seventh_perfect_numbers_in_windows() {
    let sixth = assert_agree(&FAST, 8_589_869_000, 8_589_870_000, 2);
    assert_eq!(sixth.perfect, [8_589_869_056]);
    let seventh = assert_agree(&FAST, 137_438_691_000, 137_438_692_000, 2);
    assert_eq!(seventh.perfect, [137_438_691_328]);
}

#[test]
fn edges_at_one() {
    for algorithm in ALL {
        let empty = run(algorithm, 1, 1, 1);
        assert_eq!((empty.checksum, empty.perfect.len()), (0, 0));
        assert_eq!(run(algorithm, 1, 2, 1).checksum, 0, "s(1) = 0");
        assert_eq!(run(algorithm, 1, 3, 4).checksum, 1);
    }
}

#[test]
fn invalid_ranges_are_rejected() {
    let never = AtomicBool::new(false);
    for algorithm in ALL {
        assert_eq!(
            scan(algorithm, 0, 10, 1, &never, None),
            Err(ScanError::ZeroLo)
        );
        assert_eq!(
            scan(algorithm, 11, 10, 1, &never, None),
            Err(ScanError::Reversed { lo: 11, hi: 10 })
        );
        assert_eq!(
            scan(algorithm, 1, 10, 0, &never, None),
            Err(ScanError::NoThreads)
        );
        assert_eq!(
            scan(algorithm, 0, 0, 1, &never, None),
            Err(ScanError::ZeroLo)
        );
    }
}

/// s(2^64 - 2) from its factorization 2 * 7^2 * 73 * 127 * 337 * 92737 * 649657, independent of
/// any scanning code.
fn divisor_sum_of_top_number() -> u128 {
    let factors: [(u128, u32); 7] = [
        (2, 1),
        (7, 2),
        (73, 1),
        (127, 1),
        (337, 1),
        (92_737, 1),
        (649_657, 1),
    ];
    let n: u128 = factors.iter().map(|&(p, a)| p.pow(a)).product();
    assert_eq!(n, u128::from(u64::MAX - 1));
    let sigma: u128 = factors
        .iter()
        .map(|&(p, a)| (0..=a).map(|i| p.pow(i)).sum::<u128>())
        .product();
    sigma - n
}

#[test]
fn edges_at_the_top_of_u64() {
    // The largest half-open bound is hi = u64::MAX, so the largest number is 2^64 - 2.
    for algorithm in ALL {
        let empty = run(algorithm, u64::MAX, u64::MAX, 2);
        assert_eq!((empty.done, empty.checksum), (u64::MAX, 0));
    }
    let top = run(Algorithm::Sieve, u64::MAX - 1, u64::MAX, 1);
    assert_eq!(u128::from(top.checksum), divisor_sum_of_top_number());
    assert!(top.perfect.is_empty());
}

#[test]
fn sums_past_two_to_the_64_are_exact() {
    // The largest multiple of 720720 (= 2^4 3^2 5 7 11 13) below 2^64 - 1 has s(n) > 3n, past
    // 2^64: its checksum is s(n) mod 2^64, and a wrapped sum must not make it perfect.
    let n = (u64::MAX - 1) / 720_720 * 720_720;
    let exact = proper_divisor_sum(n);
    assert!(exact > u128::from(u64::MAX), "s({n}) = {exact} wraps");
    let outcome = run(Algorithm::Sieve, n, n + 1, 2);
    assert_eq!(outcome.checksum, exact as u64);
    assert!(outcome.perfect.is_empty());
}

#[test]
fn u64_and_u128_sums_meet_at_two_to_the_59() {
    // Blocks ending at or below 2^59 sum in u64, above in u128: straddle the switch.
    let edge = 1u64 << 59;
    assert_agree(&FAST, edge - 1, edge + 1, 1);
}

/// Scans `[lo, hi)` as windows of at most `window` numbers, each a separate scan, and joins them.
fn scan_in_windows(lo: u64, hi: u64, window: u64) -> ScanOutcome {
    let mut joined = ScanOutcome {
        lo,
        done: lo,
        checksum: 0,
        perfect: Vec::new(),
    };
    while joined.done < hi {
        let end = hi.min(joined.done + window);
        let part = run(Algorithm::Sieve, joined.done, end, 1);
        joined.checksum = joined.checksum.wrapping_add(part.checksum);
        joined.perfect.extend(part.perfect);
        joined.done = end;
    }
    joined
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn all_three_agree_on_small_ranges(lo in 1u64..20_000, len in 0u64..600) {
        assert_agree(&ALL, lo, lo + len, 2);
    }

    #[test]
    fn all_three_agree_near_a_million(lo in 999_000u64..1_001_000, len in 0u64..24) {
        assert_agree(&ALL, lo, lo + len, 2);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn trial_and_sieve_agree_near_a_billion(
        lo in 999_000_000u64..1_001_000_000,
        len in 0u64..2_000,
        threads in 1usize..4,
    ) {
        assert_agree(&FAST, lo, lo + len, threads);
    }

    #[test]
    fn trial_and_sieve_agree_near_a_trillion(
        lo in 999_000_000_000u64..1_001_000_000_000,
        len in 0u64..48,
    ) {
        assert_agree(&FAST, lo, lo + len, 2);
    }

    #[test]
    fn bucketed_and_direct_sieving_agree(
        lo in prop_oneof![1u64..1_000_000, 1_000_000_000u64..1_100_000_000, 999_000_000_000u64..1_001_000_000_000],
        segments in 2u64..6,
        cut in 1u64..32_768,
    ) {
        // One scan of several segments uses the buckets (and tiny/small bands across segment
        // boundaries); windows of at most one segment find every large divisor directly.
        let hi = lo + segments * 32_768 + 17;
        let whole = run(Algorithm::Sieve, lo, hi, 1);
        prop_assert_eq!(whole, scan_in_windows(lo, hi, cut));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4, ..ProptestConfig::default() })]

    #[test]
    fn trial_and_sieve_agree_near_10_to_the_15(
        lo in 999_000_000_000_000u64..1_001_000_000_000_000,
        len in 0u64..4,
    ) {
        assert_agree(&FAST, lo, lo + len, 1);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1, ..ProptestConfig::default() })]

    #[test]
    fn trial_and_sieve_agree_near_10_to_the_18(
        lo in 999_000_000_000_000_000u64..1_001_000_000_000_000_000,
        len in 1u64..3,
    ) {
        assert_agree(&FAST, lo, lo + len, 2);
    }
}

#[test]
fn many_threads_give_the_same_outcome_as_one() {
    let lo = 10_000_000_000;
    let hi = lo + 3_000_000;
    let one = run(Algorithm::Sieve, lo, hi, 1);
    for threads in [2, 3, 8] {
        assert_eq!(
            run(Algorithm::Sieve, lo, hi, threads),
            one,
            "{threads} threads"
        );
    }
}

#[test]
fn a_stop_before_the_start_does_nothing() {
    let stop = AtomicBool::new(true);
    for algorithm in ALL {
        let outcome = scan(algorithm, 100, 1_000_000, 2, &stop, None).expect("valid");
        assert_eq!(outcome.done, 100);
        assert_eq!((outcome.checksum, outcome.perfect.len()), (0, 0));
    }
}

/// Starts a scan of a range far too long to finish, stops it after `delay`, and returns the
/// outcome and how long the scan took to notice.
fn stop_after(
    algorithm: Algorithm,
    lo: u64,
    hi: u64,
    threads: usize,
    delay: Duration,
) -> (ScanOutcome, Duration, Vec<u64>) {
    let stop = Arc::new(AtomicBool::new(false));
    let progress = Arc::new(AtomicU64::new(0));
    let seen = thread::scope(|scope| {
        let watcher = scope.spawn(|| {
            let started = Instant::now();
            let mut seen = Vec::new();
            while started.elapsed() < delay {
                seen.push(progress.load(Ordering::Acquire));
                thread::sleep(Duration::from_millis(5));
            }
            stop.store(true, Ordering::Release);
            (Instant::now(), seen)
        });
        let outcome = scan(algorithm, lo, hi, threads, &stop, Some(&progress)).expect("valid");
        let finished = Instant::now();
        let (stopped_at, seen) = watcher.join().expect("watcher");
        (
            outcome,
            finished.saturating_duration_since(stopped_at),
            seen,
        )
    });
    let (outcome, latency, seen) = seen;
    assert_eq!(progress.load(Ordering::Acquire), outcome.done);
    (outcome, latency, seen)
}

#[test]
fn a_stopped_scan_keeps_its_exact_prefix_and_stops_quickly() {
    let cases = [
        (Algorithm::Sieve, 1_000_000_000_000u64, 2),
        (Algorithm::Sieve, 1_000_000_000_000u64, 1),
        (Algorithm::Sieve, 5_000_000u64, 2),
        (Algorithm::Trial, 1_000_000_000_000u64, 2),
        (Algorithm::Naive, 100_000_000u64, 2),
    ];
    for (algorithm, lo, threads) in cases {
        let hi = lo + 100_000_000_000;
        let (outcome, latency, seen) =
            stop_after(algorithm, lo, hi, threads, Duration::from_millis(300));
        println!(
            "{algorithm} near {lo} on {threads} thread(s): stopped after {:?} at {} ({} done)",
            latency,
            outcome.done,
            outcome.done - lo
        );
        // 50 ms is the design figure; a loaded test machine gets slack, not a flaky test.
        assert!(latency < Duration::from_millis(1_000), "{latency:?}");
        assert!(outcome.done < hi);
        assert!(
            seen.windows(2).all(|pair| pair[0] <= pair[1]),
            "progress went backwards: {seen:?}"
        );
        assert!(seen.iter().all(|&p| p <= outcome.done));
        // The prefix is exact: the same as a fresh, unstopped scan of it.
        let fresh = run(algorithm, lo, outcome.done, 2);
        assert_eq!(outcome, fresh);
    }
}

#[test]
fn a_stop_inside_one_long_number_takes_effect() {
    // Trial division of one number near 10^18 takes seconds, naive near 10^12 hours.
    for (algorithm, lo) in [
        (Algorithm::Trial, 1_000_000_000_000_000_000u64),
        (Algorithm::Naive, 1_000_000_000_000u64),
        (Algorithm::Sieve, 1_000_000_000_000_000_000u64),
    ] {
        let (outcome, latency, _) = stop_after(algorithm, lo, lo + 2, 1, Duration::from_millis(50));
        assert_eq!(outcome.done, lo, "{algorithm}");
        assert!(
            latency < Duration::from_millis(1_000),
            "{algorithm}: {latency:?}"
        );
    }
}
