//! The three algorithms and the multi-threaded scan.
//!
//! A scan cuts `[lo, hi)` into blocks; threads pull block indices from a shared counter, and each
//! finished (or stopped) block is merged into the contiguous prefix in index order. The stop flag
//! is checked between segments of a block (and, for the trial-division algorithms, every few
//! thousand divisions), so a stop takes effect within milliseconds and everything up to the first
//! unfinished number is kept.

#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::thread;

use crate::sieve::{self, SieveWorkspace};

/// How numbers are tested.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// Trial division by every d < n.
    Naive,
    /// Trial division up to the square root, divisor pairs.
    Trial,
    /// The segmented divisor-pair sieve (the default).
    #[default]
    Sieve,
}

impl Algorithm {
    /// Every algorithm, slowest first.
    pub const ALL: [Algorithm; 3] = [Algorithm::Naive, Algorithm::Trial, Algorithm::Sieve];

    /// The name used on the command line and on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Naive => "naive",
            Algorithm::Trial => "trial",
            Algorithm::Sieve => "sieve",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An algorithm name that is not `naive`, `trial` or `sieve`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownAlgorithm(pub String);

impl fmt::Display for UnknownAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown algorithm {:?} (expected naive, trial or sieve)",
            self.0
        )
    }
}

impl std::error::Error for UnknownAlgorithm {}

impl FromStr for Algorithm {
    type Err = UnknownAlgorithm;

    fn from_str(text: &str) -> Result<Algorithm, UnknownAlgorithm> {
        Algorithm::ALL
            .into_iter()
            .find(|algorithm| algorithm.name() == text)
            .ok_or_else(|| UnknownAlgorithm(text.to_owned()))
    }
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

/// The exact sum of the proper divisors of `n` (s(1) = 0), by trial division up to the square
/// root. Independent of the sieve, so it can check a claimed perfect number; near 2^64 it takes
/// about 2^32 divisions (seconds).
pub fn proper_divisor_sum(n: u64) -> u128 {
    let never = AtomicBool::new(false);
    trial_sum(n, &never).unwrap_or(0)
}

/// The integer square root: the largest r with r * r <= n.
pub fn isqrt(n: u64) -> u64 {
    // The float estimate is off by at most a few units near 2^64; fix it up exactly in u128.
    let mut root = (n as f64).sqrt() as u64;
    while u128::from(root) * u128::from(root) > u128::from(n) {
        root -= 1;
    }
    while u128::from(root + 1) * u128::from(root + 1) <= u128::from(n) {
        root += 1;
    }
    root
}

/// How many divisions the trial-division loops run between two looks at the stop flag
/// (a few hundred microseconds of work).
const DIVISIONS_PER_STOP_CHECK: u64 = 1 << 16;

/// s(n) by trial division up to the square root, or `None` when stopped part-way.
pub(crate) fn trial_sum(n: u64, stop: &AtomicBool) -> Option<u128> {
    if n < 2 {
        return Some(0);
    }
    let root = isqrt(n);
    let mut sum: u128 = 1;
    let mut start = 2;
    while start <= root {
        let end = root.min(start + DIVISIONS_PER_STOP_CHECK - 1);
        for d in start..=end {
            // `n / d` and `n % d` compile to one division.
            if n.is_multiple_of(d) {
                sum += u128::from(d) + u128::from(n / d);
            }
        }
        start = end + 1;
        if start <= root && stop.load(Ordering::Relaxed) {
            return None;
        }
    }
    if root * root == n {
        // The pair (root, root) was counted twice.
        sum -= u128::from(root);
    }
    Some(sum)
}

/// s(n) by trial division by every d < n, or `None` when stopped part-way.
pub(crate) fn naive_sum(n: u64, stop: &AtomicBool) -> Option<u128> {
    let mut sum: u128 = 0;
    let mut start = 1;
    while start < n {
        let end = (n - 1).min(start + DIVISIONS_PER_STOP_CHECK - 1);
        for d in start..=end {
            if n.is_multiple_of(d) {
                sum += u128::from(d);
            }
        }
        start = end + 1;
        if start < n && stop.load(Ordering::Relaxed) {
            return None;
        }
    }
    Some(sum)
}

/// The work of one block, `[start, done)`: `done` is the block's end unless it was stopped.
#[derive(Debug, Default)]
pub(crate) struct BlockTally {
    pub done: u64,
    pub checksum: u64,
    pub perfect: Vec<u64>,
}

impl BlockTally {
    fn starting_at(start: u64) -> BlockTally {
        BlockTally {
            done: start,
            checksum: 0,
            perfect: Vec::new(),
        }
    }

    /// Counts number `n` with the exact divisor sum `sum`.
    pub fn record(&mut self, n: u64, sum: u128) {
        // Truncation is the definition: the checksum adds s(n) mod 2^64.
        self.checksum = self.checksum.wrapping_add(sum as u64);
        if n >= 2 && sum == u128::from(n) {
            self.perfect.push(n);
        }
    }
}

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

/// How a range is cut into blocks.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BlockPlan {
    pub lo: u64,
    pub hi: u64,
    pub block_len: u64,
    /// Blocks of `block_len` but the last, which ends at `hi` (up to 1.5 block lengths).
    blocks: u64,
}

impl BlockPlan {
    pub fn new(algorithm: Algorithm, lo: u64, hi: u64, threads: usize) -> BlockPlan {
        let len = hi - lo;
        let threads = threads.max(1) as u64;
        // A few blocks per thread balance the load; the algorithm sets the floor and ceiling.
        let balanced = len / threads.saturating_mul(4);
        let (floor, ceiling) = match algorithm {
            // The trial-division algorithms check the stop flag inside a number, so blocks only
            // need to be long enough to make the merge's lock negligible.
            Algorithm::Naive | Algorithm::Trial => (1, 1 << 12),
            Algorithm::Sieve => sieve::block_len_bounds(hi),
        };
        let target = balanced.clamp(floor, ceiling).max(1);
        // Blocks of at least the target, as equal as can be; the sieve's in whole windows.
        let even = len.div_ceil((len / target).max(1)).max(1);
        let (block_len, longest) = match algorithm {
            Algorithm::Naive | Algorithm::Trial => (even, u64::MAX),
            Algorithm::Sieve => (sieve::whole_block_len(even, hi), sieve::MAX_BLOCK_LEN),
        };
        // A short last block would pay a whole block's set-up for a few numbers: it joins the
        // one before.
        let mut blocks = len.div_ceil(block_len).max(1);
        let tail = len - (blocks - 1) * block_len;
        if blocks > 1 && tail < block_len / 2 && block_len + tail <= longest {
            blocks -= 1;
        }
        BlockPlan {
            lo,
            hi,
            block_len,
            blocks,
        }
    }

    pub fn blocks(&self) -> u64 {
        self.blocks
    }

    pub fn bounds(&self, index: u64) -> (u64, u64) {
        let start = self.lo + index * self.block_len;
        if index + 1 >= self.blocks {
            (start, self.hi)
        } else {
            (start, start + self.block_len)
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sieve_blocks_are_whole_windows_with_no_short_tail() {
        let window = 1u64 << 20;
        let lo = 1_000_000_000_000;
        // A range one block long (2^25, the floor there) is one block, not one and a sliver.
        let one = BlockPlan::new(Algorithm::Sieve, lo, lo + (1 << 25), 1);
        assert_eq!(one.blocks(), 1);
        // A lease's range there (15 s at ~100 M/s a thread) is cut into blocks of about 2^26,
        // as is the kernel bench's one-thread scan of 2^28 numbers.
        for (len, threads) in [(1_500_000_000, 1), (1_500_000_000, 2), (1 << 28, 1)] {
            let plan = BlockPlan::new(Algorithm::Sieve, lo, lo + len, threads);
            let ratio = plan.block_len as f64 / (1u64 << 26) as f64;
            assert!(
                (1.0..1.1).contains(&ratio),
                "{len}, {threads} threads: {ratio}"
            );
        }
        for (len, threads) in [
            (10u64 << 25, 1),
            (10 << 25, 2),
            ((7 << 25) + 12_345, 2),
            (1_000_000_000, 2),
            (33 << 20, 1),
        ] {
            let plan = BlockPlan::new(Algorithm::Sieve, lo, lo + len, threads);
            let (floor, _) = sieve::block_len_bounds(lo + len);
            assert!(plan.block_len.is_multiple_of(window), "{len}");
            assert!(plan.block_len >= floor, "{len}");
            let (start, end) = plan.bounds(plan.blocks() - 1);
            assert_eq!(end, lo + len);
            assert!(
                end - start >= plan.block_len / 2,
                "{len}: tail {}",
                end - start
            );
            assert!(
                end - start <= plan.block_len * 3 / 2,
                "{len}: tail {}",
                end - start
            );
            if plan.blocks() >= 2 {
                let (_, before_last) = plan.bounds(plan.blocks() - 2);
                assert_eq!(before_last, start);
            }
        }
        // Below a window, blocks stay short enough for every thread to get some.
        let small = BlockPlan::new(Algorithm::Sieve, 1_000_000, 2_000_000, 2);
        assert!(small.blocks() >= 2);
    }

    #[test]
    fn isqrt_is_exact_at_the_edges() {
        for n in [0, 1, 2, 3, 4, 15, 16, 17, 99, 100, 101] {
            let r = isqrt(n);
            assert!(r * r <= n && (r + 1) * (r + 1) > n, "{n}");
        }
        assert_eq!(isqrt(u64::MAX), u64::from(u32::MAX));
        assert_eq!(isqrt(u64::MAX - 1), u64::from(u32::MAX));
        let top_square = u64::from(u32::MAX) * u64::from(u32::MAX);
        assert_eq!(isqrt(top_square), u64::from(u32::MAX));
        assert_eq!(isqrt(top_square - 1), u64::from(u32::MAX) - 1);
        for root in [1u64 << 26, (1 << 26) + 1, 3_037_000_499, 1_000_000_000] {
            assert_eq!(isqrt(root * root), root);
            assert_eq!(isqrt(root * root - 1), root - 1);
            assert_eq!(isqrt(root * root + 2 * root), root);
        }
    }

    #[test]
    fn divisor_sums_of_small_numbers() {
        let never = AtomicBool::new(false);
        let expected = [0u128, 1, 1, 3, 1, 6, 1, 7, 4, 8, 1, 16];
        for (n, &sum) in (1u64..).zip(expected.iter()) {
            assert_eq!(trial_sum(n, &never), Some(sum), "trial {n}");
            assert_eq!(naive_sum(n, &never), Some(sum), "naive {n}");
            assert_eq!(proper_divisor_sum(n), sum);
        }
    }

    #[test]
    fn algorithm_names_round_trip() {
        for algorithm in Algorithm::ALL {
            assert_eq!(algorithm.name().parse(), Ok(algorithm));
        }
        assert!("Sieve".parse::<Algorithm>().is_err());
        assert_eq!(Algorithm::default(), Algorithm::Sieve);
    }
}
