//! The three algorithms and the multi-threaded scan (filled in by the kernel issue).

use std::sync::atomic::{AtomicBool, AtomicU64};

/// How numbers are tested.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// Trial division by every d < n.
    Naive,
    /// Trial division up to the square root, divisor pairs.
    Trial,
    /// The segmented divisor-pair sieve (the default).
    Sieve,
}

/// What a scan finished: the contiguous prefix `[lo, done)` of the requested range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScanOutcome {
    /// Start of the range.
    pub lo: u64,
    /// Every number in `[lo, done)` was tested; `done == hi` when the scan was not stopped.
    pub done: u64,
    /// Wrapping sum of s(n) over `[lo, done)`.
    pub checksum: u64,
    /// The perfect numbers in `[lo, done)`, increasing.
    pub perfect: Vec<u64>,
}

/// A range that cannot be scanned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScanError {
    /// Placeholder until the kernel issue lands.
    Invalid,
}

/// Scans `[lo, hi)` with `threads` threads. Checks `stop` between blocks; `progress` (when
/// given) is kept at the end of the completed prefix so another thread can report it.
pub fn scan(
    algorithm: Algorithm,
    lo: u64,
    hi: u64,
    threads: usize,
    stop: &AtomicBool,
    progress: Option<&AtomicU64>,
) -> Result<ScanOutcome, ScanError> {
    let _ = (algorithm, lo, hi, threads, stop, progress);
    todo!()
}
