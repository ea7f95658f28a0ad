//! How a range is cut into the blocks that threads take in turn.

#![forbid(unsafe_code)]

use crate::sieve;
use crate::Algorithm;

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
}
