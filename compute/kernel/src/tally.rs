//! What one block of a scan found, filled in by the sieve or by the one-by-one algorithms.

#![forbid(unsafe_code)]

/// The work of one block, `[start, done)`: `done` is the block's end unless it was stopped.
#[derive(Debug, Default)]
pub(crate) struct BlockTally {
    pub done: u64,
    pub checksum: u64,
    pub perfect: Vec<u64>,
}

impl BlockTally {
    pub fn starting_at(start: u64) -> BlockTally {
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
