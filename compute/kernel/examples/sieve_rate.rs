//! One-thread sieve throughput for A/B comparisons: for each magnitude, `runs` scans of the
//! same range, timed by on-CPU time, and the median numbers/s.
//!
//! `cargo run --release -p sigma-kernel --example sieve_rate -- [runs] [lo:len ...]`

use std::sync::atomic::AtomicBool;

use sigma_kernel::bench::thread_cpu_seconds;
use sigma_kernel::{scan, Algorithm};

fn main() {
    let mut args = std::env::args().skip(1);
    let runs: usize = args.next().map_or(5, |a| a.parse().expect("runs"));
    let mut ranges: Vec<(u64, u64)> = args
        .map(|a| {
            let (lo, len) = a.split_once(':').expect("lo:len");
            (lo.parse().expect("lo"), len.parse().expect("len"))
        })
        .collect();
    if ranges.is_empty() {
        ranges = vec![
            (1_000_000, 1 << 24),
            (1_000_000_000, 1 << 24),
            (1_000_000_000_000, 1 << 24),
        ];
    }
    let never = AtomicBool::new(false);
    for (lo, len) in ranges {
        let mut rates = Vec::new();
        let mut checksum = 0;
        for _ in 0..runs {
            let before = thread_cpu_seconds().expect("schedstat");
            let outcome = scan(Algorithm::Sieve, lo, lo + len, 1, &never, None).expect("valid");
            let seconds = thread_cpu_seconds().expect("schedstat") - before;
            checksum = outcome.checksum;
            rates.push(len as f64 / seconds);
        }
        rates.sort_by(f64::total_cmp);
        println!(
            "lo {lo:>16} len {len:>10}: median {:>7.2} M/s (min {:.2}, max {:.2}) checksum {checksum:016x}",
            rates[runs / 2] / 1e6,
            rates[0] / 1e6,
            rates[runs - 1] / 1e6
        );
    }
}
