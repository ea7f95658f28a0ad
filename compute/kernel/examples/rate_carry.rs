//! Does a rate measured on one range carry to another? For each range, one-thread sieve scans
//! timed by on-CPU time (the ranges alternated, `runs` rounds, medians), and the cost model's
//! operations per CPU-second: where the model counts the work right, that figure is the same
//! for a probe from 1 and for the ranges after it.
//!
//! `cargo run --release -p sigma-kernel --example rate_carry -- [runs] [lo:hi ...]` (floats accepted:
//! `1:2e8 2e8:4e8`).

use std::sync::atomic::AtomicBool;

use sigma_kernel::bench::thread_cpu_seconds;
use sigma_kernel::{cost, scan, Algorithm};

fn main() {
    let mut args = std::env::args().skip(1);
    let runs: usize = args.next().map_or(5, |a| a.parse().expect("runs"));
    let mut ranges: Vec<(u64, u64)> = args
        .map(|a| {
            let (lo, hi) = a.split_once(':').expect("lo:hi");
            let number = |text: &str| text.parse::<f64>().expect("a number") as u64;
            (number(lo), number(hi))
        })
        .collect();
    if ranges.is_empty() {
        ranges = vec![(1, 200_000_000), (200_000_000, 400_000_000)];
    }
    let never = AtomicBool::new(false);
    let mut seconds = vec![Vec::new(); ranges.len()];
    for _ in 0..runs.max(1) {
        for (&(lo, hi), samples) in ranges.iter().zip(&mut seconds) {
            let before = thread_cpu_seconds().expect("schedstat");
            scan(Algorithm::Sieve, lo, hi, 1, &never, None).expect("a valid range");
            samples.push(thread_cpu_seconds().expect("schedstat") - before);
        }
    }
    for (&(lo, hi), samples) in ranges.iter().zip(&mut seconds) {
        samples.sort_by(f64::total_cmp);
        let median = samples[samples.len() / 2];
        let work = cost::sieve_work(lo, hi);
        println!(
            "[{lo}, {hi}): {median:.3} CPU-s, {:.1} M numbers/s, {:.1} M model ops per CPU-s; per number: {:.2} small updates, {:.2} unwheeled, {:.3} visits",
            (hi - lo) as f64 / median / 1e6,
            work.ops() / median / 1e6,
            work.small_hits / work.numbers,
            work.unwheeled_hits / work.numbers,
            work.visits / work.numbers,
        );
    }
}
