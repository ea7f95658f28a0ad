//! Measurements shared by `compute bench` and the criterion benchmark: scan rates sized by
//! time, the timing loop's figures, and the cost model's predictions against measured times.

#![forbid(unsafe_code)]

use std::io::{self, Write};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use crate::{cost, scan, sieve, Algorithm};

/// The magnitudes every report covers.
pub const MAGNITUDES: [u64; 3] = [1_000_000, 1_000_000_000, 1_000_000_000_000];

/// One timed scan.
#[derive(Clone, Copy, Debug)]
pub struct Measurement {
    /// What was scanned.
    pub algorithm: Algorithm,
    /// The range `[lo, lo + numbers)`.
    pub lo: u64,
    /// How many numbers.
    pub numbers: u64,
    /// Threads used.
    pub threads: usize,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Seconds this thread spent on a CPU, for one-thread scans where the system reports it:
    /// on a shared machine it leaves out the time other processes took.
    pub cpu_seconds: Option<f64>,
}

impl Measurement {
    /// Numbers per second.
    pub fn rate(&self) -> f64 {
        self.numbers as f64 / self.seconds.max(1e-9)
    }

    /// The cost model's operations for this range.
    pub fn ops(&self) -> f64 {
        cost::ops(self.algorithm, self.lo, self.lo + self.numbers)
    }
}

/// Times one scan of `[lo, lo + numbers)`.
pub fn time_scan(algorithm: Algorithm, lo: u64, numbers: u64, threads: usize) -> Measurement {
    let never = AtomicBool::new(false);
    let cpu_before = thread_cpu_seconds();
    let started = Instant::now();
    let outcome = scan(algorithm, lo, lo + numbers, threads, &never, None);
    let seconds = started.elapsed().as_secs_f64();
    let cpu_seconds = match (threads, cpu_before, thread_cpu_seconds()) {
        // A one-thread scan runs on the calling thread.
        (1, Some(before), Some(after)) if after > before => Some(after - before),
        _ => None,
    };
    // A benchmark that scanned nothing would report nonsense.
    assert!(
        matches!(&outcome, Ok(outcome) if outcome.done == lo + numbers),
        "scan of [{lo}, {}) did not finish",
        lo + numbers
    );
    Measurement {
        algorithm,
        lo,
        numbers,
        threads,
        seconds,
        cpu_seconds,
    }
}

/// The timing loop's workload for one thread, run on the calling thread and timed by its
/// on-CPU time: cost-model operations per CPU-second, or None where the system does not say.
/// On a shared machine this checks the model without the noise of other processes' load.
pub fn ops_per_cpu_second(algorithm: Algorithm) -> Option<f64> {
    let never = AtomicBool::new(false);
    let ranges = cost::calibration_ranges(algorithm);
    let ops: f64 = ranges
        .iter()
        .map(|&(lo, hi)| cost::ops(algorithm, lo, hi))
        .sum();
    let before = thread_cpu_seconds()?;
    for &(lo, hi) in ranges {
        let _ = scan(algorithm, lo, hi, 1, &never, None);
    }
    let seconds = thread_cpu_seconds()? - before;
    (seconds > 0.0).then(|| ops / seconds)
}

/// Random read-modify-writes per second (millions) over 8 MiB, a quarter of this machine's
/// L3, on the calling thread: how contended the shared cache is at the moment. The sieve's
/// window band updates a 4 MiB window in L3, so on a shared VM its rate near 10^12 depends on
/// the neighbours' use of it; a benchmark prints this beside the rates it measures.
pub fn shared_cache_rate() -> f64 {
    const WORDS: usize = 1 << 21;
    const UPDATES: u32 = 1 << 24;
    let mut words = vec![0u32; WORDS];
    // xorshift64: addresses no prefetcher can guess.
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let cpu_before = thread_cpu_seconds();
    let started = Instant::now();
    for _ in 0..UPDATES {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        words[state as usize % WORDS] += 1;
    }
    std::hint::black_box(&words);
    let wall = started.elapsed().as_secs_f64();
    let seconds = match (cpu_before, thread_cpu_seconds()) {
        (Some(before), Some(after)) if after > before => after - before,
        _ => wall,
    };
    f64::from(UPDATES) / seconds.max(1e-9) / 1e6
}

/// Time the calling thread has spent on a CPU (Linux's /proc/thread-self/schedstat, in ns).
pub fn thread_cpu_seconds() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanoseconds: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(nanoseconds as f64 * 1e-9)
}

/// The smallest useful range for `algorithm` with `threads` threads near `lo`: enough numbers
/// that every thread gets blocks. A sieve block holds at least 32 numbers per divisor (32
/// million near 10^12), so a shorter range there would leave all but one thread idle and
/// report the all-threads rate as one thread's; four blocks a thread let them finish together.
fn starting_length(algorithm: Algorithm, lo: u64, threads: usize) -> u64 {
    match algorithm {
        Algorithm::Naive | Algorithm::Trial => threads as u64,
        Algorithm::Sieve if threads == 1 => 1 << 16,
        Algorithm::Sieve => {
            let (shortest_block, _) = sieve::block_len_bounds(lo.saturating_add(1 << 26));
            shortest_block.saturating_mul(4 * threads as u64)
        }
    }
}

/// Scans ranges starting at `lo`, doubling the length until one takes at least `min_seconds`,
/// and returns that last run. The run before it took at least half as long, so the whole costs
/// about twice `min_seconds`.
pub fn measure(algorithm: Algorithm, lo: u64, threads: usize, min_seconds: f64) -> Measurement {
    let mut numbers = starting_length(algorithm, lo, threads);
    loop {
        let measurement = time_scan(algorithm, lo, numbers, threads);
        if measurement.seconds >= min_seconds || numbers > u64::MAX / 4 {
            return measurement;
        }
        // Jump most of the way when far off, so tiny first runs do not dominate.
        let factor = (min_seconds / measurement.seconds.max(1e-6)).clamp(2.0, 64.0);
        numbers = (numbers as f64 * factor) as u64;
    }
}

/// Whether `algorithm` near `lo` is affordable in a benchmark: naive costs n divisions per
/// number, seconds per number past 10^9.
pub fn affordable(algorithm: Algorithm, lo: u64) -> bool {
    algorithm != Algorithm::Naive || lo <= 100_000_000
}

/// "10^k" for powers of ten, else the number.
pub fn magnitude_name(lo: u64) -> String {
    let mut power = 0;
    let mut value = lo;
    while value >= 10 && value.is_multiple_of(10) {
        value /= 10;
        power += 1;
    }
    if value == 1 {
        format!("10^{power}")
    } else {
        lo.to_string()
    }
}

/// Prints the `compute bench` report: the timing loop per algorithm, numbers/s per algorithm
/// near 10^6, 10^9 and 10^12 on one thread and on `threads` threads, the ratios between
/// algorithms measured in this run, and the cost model's predicted against measured seconds.
/// Takes under a minute.
pub fn run_report(threads: usize, out: &mut dyn Write) -> io::Result<()> {
    let threads = threads.max(1);
    let thread_counts: Vec<usize> = if threads == 1 {
        vec![1]
    } else {
        vec![1, threads]
    };
    const MIN_SECONDS: f64 = 0.4;

    writeln!(out, "timing loop (cost-model operations per second):")?;
    let mut rates = Vec::new();
    for &algorithm in Algorithm::ALL {
        let mut line = format!("  {algorithm:<6}");
        for &count in &thread_counts {
            let started = Instant::now();
            let rate = cost::measure_ops_per_second(algorithm, count);
            let seconds = started.elapsed().as_secs_f64();
            line.push_str(&format!(
                "  {count} thread{}: {rate:>14} ops/s ({seconds:.2} s)",
                if count == 1 { "" } else { "s" }
            ));
            rates.push((algorithm, count, rate));
        }
        writeln!(out, "{line}")?;
        out.flush()?;
    }

    writeln!(out)?;
    writeln!(
        out,
        "{:<6} {:>6} {:>7} {:>14} {:>9} {:>14}",
        "alg", "near", "threads", "numbers", "seconds", "numbers/s"
    )?;
    let mut measurements = Vec::new();
    for &lo in &MAGNITUDES {
        for &algorithm in Algorithm::ALL {
            if !affordable(algorithm, lo) {
                writeln!(
                    out,
                    "{:<6} {:>6}  skipped: about {:.1} s per number by the model",
                    algorithm.as_str(),
                    magnitude_name(lo),
                    predicted_seconds(&rates, algorithm, 1, lo, lo + 1),
                )?;
                continue;
            }
            for &count in &thread_counts {
                let m = measure(algorithm, lo, count, MIN_SECONDS);
                writeln!(
                    out,
                    "{:<6} {:>6} {:>7} {:>14} {:>9.3} {:>14.0}",
                    algorithm.as_str(),
                    magnitude_name(lo),
                    count,
                    m.numbers,
                    m.seconds,
                    m.rate()
                )?;
                out.flush()?;
                measurements.push(m);
            }
        }
    }

    writeln!(out)?;
    writeln!(
        out,
        "ratios measured in this run (numbers/s of the faster over the slower):"
    )?;
    for &count in &thread_counts {
        for &lo in &MAGNITUDES {
            let rate_of = |algorithm: Algorithm| {
                measurements
                    .iter()
                    .find(|m| m.algorithm == algorithm && m.lo == lo && m.threads == count)
                    .map(Measurement::rate)
            };
            let mut line = format!("  {count} thread(s) near {:<6}", magnitude_name(lo));
            if let (Some(sieve), Some(trial)) =
                (rate_of(Algorithm::Sieve), rate_of(Algorithm::Trial))
            {
                line.push_str(&format!("  sieve/trial {:>10.1}", sieve / trial));
            }
            if let (Some(trial), Some(naive)) =
                (rate_of(Algorithm::Trial), rate_of(Algorithm::Naive))
            {
                line.push_str(&format!("  trial/naive {:>8.1}", trial / naive));
            }
            if let (Some(sieve), Some(naive)) =
                (rate_of(Algorithm::Sieve), rate_of(Algorithm::Naive))
            {
                line.push_str(&format!("  sieve/naive {:>10.1}", sieve / naive));
            }
            writeln!(out, "{line}")?;
        }
    }

    writeln!(out)?;
    writeln!(
        out,
        "cost model: predicted seconds = ops(range) / timing-loop rate, against the measured runs"
    )?;
    writeln!(
        out,
        "(wall clock, as manage will use it; and, for one thread, on-CPU time against an on-CPU"
    )?;
    writeln!(
        out,
        " timing loop, which leaves out other processes' load on a shared machine)"
    )?;
    let cpu_rates: Vec<(Algorithm, Option<f64>)> = Algorithm::ALL
        .iter()
        .map(|&algorithm| (algorithm, ops_per_cpu_second(algorithm)))
        .collect();
    writeln!(
        out,
        "{:<6} {:>6} {:>7} {:>14} {:>10} {:>9} {:>7} {:>10} {:>9} {:>7}",
        "alg",
        "near",
        "threads",
        "numbers",
        "predicted",
        "measured",
        "error",
        "cpu pred",
        "cpu meas",
        "error"
    )?;
    for m in &measurements {
        let predicted = predicted_seconds(&rates, m.algorithm, m.threads, m.lo, m.lo + m.numbers);
        let mut line = format!(
            "{:<6} {:>6} {:>7} {:>14} {:>10.3} {:>9.3} {:>+6.1}%",
            m.algorithm.as_str(),
            magnitude_name(m.lo),
            m.threads,
            m.numbers,
            predicted,
            m.seconds,
            (predicted / m.seconds - 1.0) * 100.0
        );
        let cpu_rate = cpu_rates
            .iter()
            .find(|&&(a, _)| a == m.algorithm)
            .and_then(|&(_, rate)| rate);
        if let (Some(rate), Some(cpu_seconds)) = (cpu_rate, m.cpu_seconds) {
            let predicted = m.ops() / rate;
            line.push_str(&format!(
                " {:>10.3} {:>9.3} {:>+6.1}%",
                predicted,
                cpu_seconds,
                (predicted / cpu_seconds - 1.0) * 100.0
            ));
        }
        writeln!(out, "{line}")?;
    }
    Ok(())
}

fn predicted_seconds(
    rates: &[(Algorithm, usize, u64)],
    algorithm: Algorithm,
    threads: usize,
    lo: u64,
    hi: u64,
) -> f64 {
    let rate = rates
        .iter()
        .find(|&&(a, t, _)| a == algorithm && t == threads)
        .map_or(1, |&(_, _, rate)| rate);
    cost::ops(algorithm, lo, hi) / rate as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_thread_gets_blocks_of_a_measured_range() {
        for lo in MAGNITUDES {
            for threads in [2, 3, 16] {
                let len = starting_length(Algorithm::Sieve, lo, threads);
                let plan = crate::plan::BlockPlan::new(Algorithm::Sieve, lo, lo + len, threads);
                assert!(
                    plan.blocks() >= 2 * threads as u64,
                    "near {lo}, {threads} threads: {len} numbers make {} blocks",
                    plan.blocks()
                );
            }
        }
    }

    #[test]
    fn shared_cache_rate_is_a_plausible_rate() {
        let rate = shared_cache_rate();
        // Millions of updates per second: even a loaded or emulated CPU does one per µs, and
        // none does 100 a nanosecond.
        assert!(rate.is_finite() && rate > 1.0 && rate < 100_000.0, "{rate}");
    }
}
