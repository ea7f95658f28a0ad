//! Derives the sieve cost model's weights: times one-thread sieve scans at magnitudes from 10^4
//! to 10^13, splits each run's work into its kinds (`compute::cost::sieve_work`), and fits the
//! seconds per unit of each kind by least squares. The weights in `cost.rs` are these figures
//! divided by the seconds per small-divisor update. Also prints how far the current model is
//! off on each run.
//!
//! `cargo run --release -p compute --example fit_cost_model` (about a minute, one core).

use compute::bench;
use compute::cost::{self, SieveWork};
use compute::Algorithm;

fn features(work: &SieveWork) -> [f64; 5] {
    // Direct updates and divisions only matter past ~7 * 10^13, outside what this fits.
    [
        work.small_hits,
        work.numbers,
        work.visits,
        work.bucket_hits,
        work.divisions,
    ]
}

/// Solves the normal equations (A^T A) x = A^T b by Gaussian elimination.
fn least_squares(rows: &[[f64; 5]], targets: &[f64]) -> [f64; 5] {
    let mut normal = [[0.0; 6]; 5];
    for (row, &target) in rows.iter().zip(targets) {
        // Relative error matters, not absolute: weigh each run by 1 / its time.
        let weight = 1.0 / target;
        for i in 0..5 {
            for j in 0..5 {
                normal[i][j] += row[i] * row[j] * weight * weight;
            }
            normal[i][5] += row[i] * target * weight * weight;
        }
    }
    for column in 0..5 {
        let pivot = (column..5)
            .max_by(|&a, &b| normal[a][column].abs().total_cmp(&normal[b][column].abs()))
            .unwrap_or(column);
        normal.swap(column, pivot);
        for row in 0..5 {
            if row != column && normal[column][column] != 0.0 {
                let factor = normal[row][column] / normal[column][column];
                for k in column..6 {
                    normal[row][k] -= factor * normal[column][k];
                }
            }
        }
    }
    let mut solution = [0.0; 5];
    for i in 0..5 {
        solution[i] = if normal[i][i] == 0.0 {
            0.0
        } else {
            normal[i][5] / normal[i][i]
        };
    }
    solution
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
    let fit = least_squares(&rows, &targets);
    let unit = fit[0];
    println!("seconds per small-divisor update: {unit:.3e}");
    println!(
        "weights (numbers, visits, bucket updates, divisions) in small-divisor updates: \
         {:.2}, {:.2}, {:.2}, {:.2}",
        fit[1] / unit,
        fit[2] / unit,
        fit[3] / unit,
        fit[4] / unit
    );
}
