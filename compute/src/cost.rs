//! The timing loop and the cost model (filled in by the kernel issue).
//!
//! predicted seconds = ops(algorithm, lo, hi) / ops_per_second, where ops_per_second comes from
//! the timing loop on this machine with this many threads.

use crate::Algorithm;

/// Predicted kernel operations to scan `[lo, hi)` with `algorithm`.
pub fn ops(algorithm: Algorithm, lo: u64, hi: u64) -> f64 {
    let _ = (algorithm, lo, hi);
    todo!()
}

/// Runs the timing loop: a short run of a known number of kernel operations on `threads`
/// threads, timed. Returns operations per second.
pub fn measure_ops_per_second(algorithm: Algorithm, threads: usize) -> u64 {
    let _ = (algorithm, threads);
    todo!()
}
