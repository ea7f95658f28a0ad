//! Kernel throughput, one thread: numbers/s for each algorithm near 10^6, 10^9 and 10^12
//! (naive only near 10^6: it costs n divisions per number). Each benchmark scans a fixed range
//! and checks its own output (the range finished, the known perfect number found where there
//! is one). Criterion does not compare benchmarks with each other, so after the groups a
//! summary times each variant again (best of three, in this run) and prints numbers/s, the
//! ratios between algorithms, and the cost model's predicted seconds against measured ones (wall
//! clock, and on-CPU time against an on-CPU timing loop). Before, between and after, it prints
//! how contended the shared cache is ([`sigma_kernel::bench::shared_cache_rate`]): on a shared
//! machine the sieve's figures near 10^12 depend on it.
//!
//! `cargo bench -p sigma-kernel --bench kernel` (about two minutes).

use std::hint::black_box;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use criterion::{criterion_group, Criterion, Throughput};
use sigma_kernel::bench::{self, magnitude_name, time_scan, Measurement, MAGNITUDES};
use sigma_kernel::{cost, scan, Algorithm};

/// Numbers per benchmark iteration: a few milliseconds to a few tens of milliseconds each.
fn range_len(algorithm: Algorithm, lo: u64) -> Option<u64> {
    match (algorithm, lo) {
        (Algorithm::Naive, 1_000_000) => Some(8),
        (Algorithm::Naive, _) => None,
        (Algorithm::Trial, 1_000_000) => Some(4_096),
        (Algorithm::Trial, 1_000_000_000) => Some(256),
        (Algorithm::Trial, _) => Some(8),
        (Algorithm::Sieve, 1_000_000) => Some(1 << 20),
        (Algorithm::Sieve, 1_000_000_000) => Some(1 << 20),
        // Near 10^12 blocks of the length a lease's scan uses there: a 15 s lease is over a
        // billion numbers, cut into blocks of about 2^26 (`BlockPlan`'s ceiling), and so is a
        // one-thread scan of 2^28 (a scan cuts a range into at least four blocks a thread). A
        // block's set-up (a division or three per divisor, ~10^6 divisors) is then the percent or
        // so it is in real work, not the fifth it would be in 2^22 numbers.
        (Algorithm::Sieve, _) => Some(1 << 28),
    }
}

/// The shared cache's state at this point of the run (see [`bench::shared_cache_rate`]).
fn print_shared_cache(when: &str) {
    println!(
        "shared cache {when}: {:.0} M random updates/s over 8 MiB",
        bench::shared_cache_rate()
    );
}

fn kernel(c: &mut Criterion) {
    print_shared_cache("before the groups");
    let never = AtomicBool::new(false);
    for lo in MAGNITUDES {
        let mut group = c.benchmark_group(format!("near {}", magnitude_name(lo)));
        group
            .sample_size(10)
            .warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_secs(2));
        for &algorithm in Algorithm::ALL {
            let Some(len) = range_len(algorithm, lo) else {
                continue;
            };
            group.throughput(Throughput::Elements(len));
            group.bench_function(algorithm.as_str(), |b| {
                b.iter(|| {
                    let outcome = scan(algorithm, black_box(lo), lo + len, 1, &never, None)
                        .expect("valid range");
                    assert_eq!(outcome.done, lo + len);
                    outcome.checksum
                })
            });
        }
        group.finish();
    }
    // The seventh perfect number, found by the sieve in a window around it.
    let mut group = c.benchmark_group("seventh perfect number");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(2));
    let (lo, hi) = (137_438_691_328 - (1 << 21), 137_438_691_328 + (1 << 21));
    group.throughput(Throughput::Elements(hi - lo));
    group.bench_function("sieve", |b| {
        b.iter(|| {
            let outcome = scan(Algorithm::Sieve, lo, hi, 1, &never, None).expect("valid");
            assert_eq!(outcome.perfect, [137_438_691_328]);
        })
    });
    group.finish();
    print_shared_cache("after the groups");
}

/// Best of three timings of the benchmark's range, made longer so each takes ~0.2 s or more.
fn best_of_three(algorithm: Algorithm, lo: u64, len: u64) -> Measurement {
    let per_second = |m: &Measurement| m.cpu_seconds.unwrap_or(m.seconds) / m.numbers as f64;
    let mut len = len;
    let mut runs = vec![time_scan(algorithm, lo, len, 1)];
    while runs[0].seconds < 0.2 {
        len *= 2;
        runs = vec![time_scan(algorithm, lo, len, 1)];
    }
    runs.push(time_scan(algorithm, lo, len, 1));
    runs.push(time_scan(algorithm, lo, len, 1));
    runs.into_iter()
        .min_by(|a, b| per_second(a).total_cmp(&per_second(b)))
        .expect("three runs")
}

fn summary() {
    println!();
    println!("summary, one thread, best of three in this run:");
    let rates: Vec<(Algorithm, u64)> = Algorithm::ALL
        .iter()
        .map(|&algorithm| (algorithm, cost::measure_ops_per_second(algorithm, 1)))
        .collect();
    for &(algorithm, rate) in &rates {
        println!("  timing loop {algorithm}: {rate} ops/s");
    }
    // The same against on-CPU time (best of three timing loops), which leaves out other
    // processes' load on a shared machine: wall-clock figures there move by tens of percent
    // between the timing loop and the runs.
    let cpu_rates: Vec<(Algorithm, Option<f64>)> = Algorithm::ALL
        .iter()
        .map(|&algorithm| {
            let best = (0..3)
                .filter_map(|_| bench::ops_per_cpu_second(algorithm))
                .fold(None, |best: Option<f64>, rate| {
                    Some(best.map_or(rate, |b| b.max(rate)))
                });
            (algorithm, best)
        })
        .collect();
    println!(
        "{:<6} {:>6} {:>12} {:>14} {:>14} {:>11} {:>10} {:>7} {:>10} {:>9} {:>7}",
        "alg",
        "near",
        "numbers",
        "numbers/s",
        "(on-CPU)",
        "predicted",
        "measured",
        "error",
        "cpu pred",
        "cpu meas",
        "error"
    );
    let mut measured = Vec::new();
    for lo in MAGNITUDES {
        for &algorithm in Algorithm::ALL {
            let Some(len) = range_len(algorithm, lo) else {
                continue;
            };
            let m = best_of_three(algorithm, lo, len);
            let rate = rates
                .iter()
                .find(|&&(a, _)| a == algorithm)
                .map_or(1, |&(_, r)| r);
            let predicted = m.ops() / rate as f64;
            let cpu_rate = m.cpu_seconds.map_or(String::from("-"), |s| {
                format!("{:.0}", m.numbers as f64 / s)
            });
            let cpu_columns = match (
                cpu_rates
                    .iter()
                    .find(|&&(a, _)| a == algorithm)
                    .and_then(|&(_, rate)| rate),
                m.cpu_seconds,
            ) {
                (Some(rate), Some(seconds)) => {
                    let predicted = m.ops() / rate;
                    format!(
                        " {:>10.3} {:>9.3} {:>+6.1}%",
                        predicted,
                        seconds,
                        (predicted / seconds - 1.0) * 100.0
                    )
                }
                _ => String::new(),
            };
            println!(
                "{:<6} {:>6} {:>12} {:>14.0} {:>14} {:>11.3} {:>10.3} {:>+6.1}%{cpu_columns}",
                algorithm.as_str(),
                magnitude_name(lo),
                m.numbers,
                m.rate(),
                cpu_rate,
                predicted,
                m.seconds,
                (predicted / m.seconds - 1.0) * 100.0
            );
            measured.push(m);
        }
    }
    print_shared_cache("after the summary's runs");
    println!("ratios (numbers/s):");
    for lo in MAGNITUDES {
        let rate_of = |algorithm: Algorithm| {
            measured
                .iter()
                .find(|m| m.algorithm == algorithm && m.lo == lo)
                .map(Measurement::rate)
        };
        let mut line = format!("  near {:<6}", magnitude_name(lo));
        if let (Some(sieve), Some(trial)) = (rate_of(Algorithm::Sieve), rate_of(Algorithm::Trial)) {
            line.push_str(&format!("  sieve/trial {:>9.1}", sieve / trial));
        }
        if let (Some(trial), Some(naive)) = (rate_of(Algorithm::Trial), rate_of(Algorithm::Naive)) {
            line.push_str(&format!("  trial/naive {:>7.1}", trial / naive));
        }
        if let (Some(sieve), Some(naive)) = (rate_of(Algorithm::Sieve), rate_of(Algorithm::Naive)) {
            line.push_str(&format!("  sieve/naive {:>9.1}", sieve / naive));
        }
        println!("{line}");
    }
}

criterion_group!(benches, kernel);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    // `cargo bench --no-run` and `cargo test --benches` build or run this in test mode; the
    // summary is for real benchmark runs only.
    if std::env::args().any(|arg| arg == "--bench") {
        summary();
    }
}
