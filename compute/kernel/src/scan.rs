//! The multi-threaded scan.
//!
//! A scan cuts `[lo, hi)` into blocks; threads pull block indices from a shared counter, and each
//! finished (or stopped) block is merged into the contiguous prefix in index order. The stop flag
//! is checked between segments of a block (and, for the trial-division algorithms, every few
//! thousand divisions), so a stop takes effect within milliseconds and everything up to the first
//! unfinished number is kept.

#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::thread;

use crate::divisors::{naive_sum, trial_sum};
use crate::plan::BlockPlan;
use crate::sieve::SieveWorkspace;
use crate::tally::BlockTally;
use crate::Algorithm;

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
    /// `lo` was 0; ranges start at 1.
    ZeroLo,
    /// `lo > hi`.
    Reversed {
        /// Start of the range.
        lo: u64,
        /// End of the range.
        hi: u64,
    },
    /// `threads` was 0.
    NoThreads,
}

impl fmt::Display for ScanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScanError::ZeroLo => f.write_str("the range must start at 1 or above"),
            ScanError::Reversed { lo, hi } => {
                write!(f, "the range is reversed: lo {lo} is above hi {hi}")
            }
            ScanError::NoThreads => f.write_str("at least one thread is needed"),
        }
    }
}

impl std::error::Error for ScanError {}

/// Tests `[start, end)` one number at a time; stops early (leaving `done` short) on `stop`.
fn scan_numbers_one_by_one(
    start: u64,
    end: u64,
    stop: &AtomicBool,
    divisor_sum: fn(u64, &AtomicBool) -> Option<u128>,
    on_progress: &mut dyn FnMut(u64),
    tally: &mut BlockTally,
) {
    for n in start..end {
        if n > start && stop.load(Ordering::Relaxed) {
            return;
        }
        match divisor_sum(n, stop) {
            Some(sum) => tally.record(n, sum),
            None => return,
        }
        tally.done = n + 1;
        on_progress(tally.done);
    }
}

/// Per-thread state reused across blocks, so the scan loop does not allocate.
struct Worker {
    algorithm: Algorithm,
    sieve: Option<SieveWorkspace>,
}

impl Worker {
    fn new(algorithm: Algorithm) -> Worker {
        Worker {
            algorithm,
            sieve: None,
        }
    }

    fn run_block(
        &mut self,
        start: u64,
        end: u64,
        stop: &AtomicBool,
        on_progress: &mut dyn FnMut(u64),
    ) -> BlockTally {
        let mut tally = BlockTally::starting_at(start);
        match self.algorithm {
            Algorithm::Naive => {
                scan_numbers_one_by_one(start, end, stop, naive_sum, on_progress, &mut tally)
            }
            Algorithm::Trial => {
                scan_numbers_one_by_one(start, end, stop, trial_sum, on_progress, &mut tally)
            }
            Algorithm::Sieve => self
                .sieve
                .get_or_insert_with(SieveWorkspace::new)
                .scan_block(start, end, stop, on_progress, &mut tally),
        }
        tally
    }
}

/// The contiguous prefix of finished blocks, and the finished blocks beyond it.
struct Prefix {
    /// The next block to join the prefix.
    next: u64,
    /// Set once a stopped block joined the prefix: nothing after it can.
    closed: bool,
    waiting: BTreeMap<u64, BlockTally>,
    outcome: ScanOutcome,
}

impl Prefix {
    fn absorb(&mut self, index: u64, tally: BlockTally, plan: &BlockPlan) {
        if self.closed || index < self.next {
            return;
        }
        self.waiting.insert(index, tally);
        while let Some(tally) = self.waiting.remove(&self.next) {
            let (_, end) = plan.bounds(self.next);
            self.outcome.done = tally.done;
            self.outcome.checksum = self.outcome.checksum.wrapping_add(tally.checksum);
            self.outcome.perfect.extend_from_slice(&tally.perfect);
            self.next += 1;
            if tally.done < end {
                self.closed = true;
                self.waiting.clear();
                break;
            }
        }
    }
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
    if lo == 0 {
        return Err(ScanError::ZeroLo);
    }
    if lo > hi {
        return Err(ScanError::Reversed { lo, hi });
    }
    if threads == 0 {
        return Err(ScanError::NoThreads);
    }
    if let Some(progress) = progress {
        progress.store(lo, Ordering::Release);
    }
    let plan = BlockPlan::new(algorithm, lo, hi, threads);
    let blocks = plan.blocks();
    let next_block = AtomicU64::new(0);
    // Mirrors `Prefix::next` so a thread can tell, without the lock, that its block is the first
    // unfinished one and its own progress is the prefix's.
    let prefix_head = AtomicU64::new(0);
    let prefix = Mutex::new(Prefix {
        next: 0,
        closed: false,
        waiting: BTreeMap::new(),
        outcome: ScanOutcome {
            lo,
            done: lo,
            checksum: 0,
            perfect: Vec::new(),
        },
    });

    let work = || {
        let mut worker = Worker::new(algorithm);
        loop {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let index = next_block.fetch_add(1, Ordering::Relaxed);
            if index >= blocks {
                break;
            }
            let (start, end) = plan.bounds(index);
            let mut on_progress = |done: u64| {
                if let Some(progress) = progress {
                    if prefix_head.load(Ordering::Acquire) == index {
                        progress.fetch_max(done, Ordering::AcqRel);
                    }
                }
            };
            let tally = worker.run_block(start, end, stop, &mut on_progress);
            let stopped = tally.done < end;
            let mut prefix = prefix
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            prefix.absorb(index, tally, &plan);
            // Once a stopped block closed the prefix, no block's progress is the prefix's.
            let head = if prefix.closed { u64::MAX } else { prefix.next };
            prefix_head.store(head, Ordering::Release);
            if let Some(progress) = progress {
                progress.fetch_max(prefix.outcome.done, Ordering::AcqRel);
            }
            if stopped || prefix.closed {
                break;
            }
        }
    };

    let threads = (threads as u64).min(blocks.max(1)) as usize;
    thread::scope(|scope| {
        for number in 1..threads {
            // The calling thread works too, so a thread the system refuses to start only makes
            // the scan slower, never incomplete.
            if thread::Builder::new()
                .name(format!("scan-{number}"))
                .spawn_scoped(scope, work)
                .is_err()
            {
                break;
            }
        }
        work();
    });

    let prefix = prefix
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    Ok(prefix.outcome)
}
