//! Derives the sieve cost model's weights: times one-thread sieve scans at magnitudes from 10^4
//! to 10^13, splits each run's work into its kinds (`compute::cost::sieve_work`), and fits the
//! seconds per unit of each kind (non-negative, least squared relative error). The weights in `cost.rs` are these figures
//! divided by the seconds per small-divisor update. Also prints how far the current model is
//! off on each run.
//!
//! `cargo run --release -p compute --example fit_cost_model` (about a minute, one core).

use compute::bench;
use compute::cost::{self, SieveWork};
use compute::Algorithm;

fn features(work: &SieveWork) -> [f64; 4] {
    // Direct updates and divisions only matter past ~7 * 10^13, outside what this fits.
    [work.numbers, work.small_hits, work.visits, work.bucket_hits]
}

fn relative_error(weights: &[f64; 4], rows: &[[f64; 4]], targets: &[f64]) -> f64 {
    rows.iter()
        .zip(targets)
        .map(|(row, &target)| {
            let predicted: f64 = row.iter().zip(weights).map(|(x, w)| x * w).sum();
            (predicted / target - 1.0).powi(2)
        })
        .sum()
}

/// Non-negative seconds per unit of each kind of work that minimise the squared relative
/// errors, by coordinate search (four unknowns; least squares without the sign constraint
/// trades negative weights against each other on collinear features).
fn fit(rows: &[[f64; 4]], targets: &[f64]) -> [f64; 4] {
    let mut weights = [4e-9, 6e-10, 1e-9, 3e-9];
    let mut steps = [1e-9, 2e-10, 1e-9, 1e-9];
    for _ in 0..10_000 {
        let mut improved = false;
        for i in 0..4 {
            for sign in [1.0f64, -1.0] {
                let mut trial = weights;
                trial[i] = (trial[i] + sign * steps[i]).max(0.0);
                if relative_error(&trial, rows, targets) < relative_error(&weights, rows, targets) {
                    weights = trial;
                    improved = true;
                }
            }
        }
        if !improved {
            steps.iter_mut().for_each(|step| *step /= 2.0);
        }
    }
    weights
}

fn main() {
    let rate = cost::measure_ops_per_second(Algorithm::Sieve, 1);
    println!("timing loop: {rate} ops/s (wall clock); runs below use on-CPU time");
    let mut rows = Vec::new();
    let mut targets = Vec::new();
    let magnitudes = [
        10_000u64,
        100_000,
        1_000_000,
        10_000_000,
        100_000_000,
        1_000_000_000,
        10_000_000_000,
        100_000_000_000,
        1_000_000_000_000,
        3_000_000_000_000,
        10_000_000_000_000,
    ];
    println!(
        "{:>16} {:>12} {:>9} {:>10} {:>10} {:>7}",
        "lo", "numbers", "seconds", "numbers/s", "predicted", "error"
    );
    for &lo in &magnitudes {
        // The best of three, to keep other load on the machine out of the fit.
        let seconds = |m: &bench::Measurement| m.cpu_seconds.unwrap_or(m.seconds);
        let best = (0..3)
            .map(|_| bench::measure(Algorithm::Sieve, lo, 1, 0.3))
            .min_by(|a, b| {
                (seconds(a) / a.numbers as f64).total_cmp(&(seconds(b) / b.numbers as f64))
            })
            .expect("three runs");
        let best = bench::Measurement {
            seconds: seconds(&best),
            ..best
        };
        let work = cost::sieve_work(lo, lo + best.numbers);
        let predicted = work.ops() / rate as f64;
        println!(
            "{:>16} {:>12} {:>9.3} {:>10.0} {:>10.3} {:>+6.1}%",
            lo,
            best.numbers,
            best.seconds,
            best.rate(),
            predicted,
            (predicted / best.seconds - 1.0) * 100.0
        );
        rows.push(features(&work));
        targets.push(best.seconds);
    }
    let fit = fit(&rows, &targets);
    let unit = fit[1];
    println!("seconds per small-divisor update: {unit:.3e}");
    println!(
        "weights in small-divisor updates: numbers {:.2}, visits {:.2}, bucket updates {:.2}",
        fit[0] / unit,
        fit[2] / unit,
        fit[3] / unit
    );
    for (row, &target) in rows.iter().zip(&targets) {
        let predicted: f64 = row.iter().zip(&fit).map(|(x, w)| x * w).sum();
        println!("  fitted {:>+6.1}%", (predicted / target - 1.0) * 100.0);
    }
}
