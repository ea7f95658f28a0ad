//! The tiny, small and window bands: divisors that hit a segment (or a window of segments)
//! many times, each keeping its next cofactor across segments.

#![forbid(unsafe_code)]

use super::sums::{first_hit, Accumulator};

/// How a small divisor's cofactor is stored: u64, or u32 where it fits (u32 sums: below 2^40,
/// k < 2^30 for every d > [`TINY_DIVISOR_LIMIT`]), which halves the state that streams
/// through the cache once per segment.
pub(crate) trait Cofactor: Copy + Default {
    fn get(self) -> u64;
    fn new(k: u64) -> Self;
}

impl Cofactor for u64 {
    #[inline(always)]
    fn get(self) -> u64 {
        self
    }
    #[inline(always)]
    fn new(k: u64) -> u64 {
        k
    }
}

impl Cofactor for u32 {
    #[inline(always)]
    fn get(self) -> u64 {
        u64::from(self)
    }
    #[inline(always)]
    fn new(k: u64) -> u32 {
        debug_assert!(k <= u64::from(u32::MAX));
        // Fits by the bound above; a wrong k would also break the checksum's self-check.
        k as u32
    }
}

/// A band of small divisors `low..=top` and their state: for each, the cofactor k of its next
/// multiple n = k * d (k >= d). Storing k alone (n is one multiplication away) keeps the state
/// at 8 (or 4) bytes a divisor, which matters because all of it streams through the cache once
/// per segment.
#[derive(Default)]
pub(crate) struct SmallDivisors<C> {
    low: u64,
    cofactor: Vec<C>,
    /// Runs of divisors that hit a full segment the same number of times, m or m + 1 where
    /// m = segment length / d: `(first divisor, last divisor, m)`, smallest divisors first.
    /// Looping a known m times per divisor keeps the loop exits predictable.
    laps: Vec<(u64, u64, u32)>,
}

impl<C: Cofactor> SmallDivisors<C> {
    /// Sets the band `low..=top` up for a block starting at `start`, swept in segments of
    /// `segment_len` (at least `top`).
    /// Divisors that `skip` accepts are left out (the wheel's, which it sieves instead).
    pub(super) fn reset(
        &mut self,
        start: u64,
        low: u64,
        top: u64,
        segment_len: u64,
        skip: impl Fn(u64) -> bool,
    ) {
        self.low = low;
        self.cofactor.clear();
        self.cofactor
            .extend((low..=top).map(|d| C::new(first_hit(start, d).1 - d)));
        self.laps.clear();
        let mut d = low;
        while d <= top {
            if skip(d) {
                d += 1;
                continue;
            }
            let laps = segment_len / d;
            let last = (segment_len / laps).min(top);
            let last = (d..=last).find(|&e| skip(e)).map_or(last, |e| e - 1);
            self.laps.push((d, last, laps as u32));
            d = last + 1;
        }
    }

    /// Adds the band's pairs to the full segment `sums` starting at `first`, then moves the
    /// state on to the next segment.
    #[inline(never)]
    pub(super) fn sieve_full<S: Accumulator, const LEN: usize>(
        &mut self,
        sums: &mut [S; LEN],
        first: u64,
    ) {
        debug_assert!(LEN.is_power_of_two());
        for &(low, high, laps) in &self.laps {
            let cofactors =
                &mut self.cofactor[(low - self.low) as usize..=(high - self.low) as usize];
            for (cofactor, d) in cofactors.iter_mut().zip(low..) {
                let k = cofactor.get();
                let mut offset = (d * k - first) as usize;
                let mut add = d + k;
                let step = d as usize;
                if offset < step {
                    // Active and past its first hit: exactly `laps` hits fit, maybe one more.
                    for _ in 0..laps {
                        sums[offset].add(add);
                        offset += step;
                        add += 1;
                    }
                    // Without a branch: a miss adds 0 to the last hit instead.
                    let hit = offset < LEN;
                    sums[if hit { offset } else { offset - step }].add(if hit { add } else { 0 });
                    // From the count, not from `add`: the loop then needs only add's low bits.
                    *cofactor = C::new(k + u64::from(laps) + u64::from(hit));
                } else {
                    while offset < LEN {
                        sums[offset].add(add);
                        offset += step;
                        add += 1;
                    }
                    *cofactor = C::new(add - d);
                }
            }
        }
    }

    /// As [`SmallDivisors::sieve_full`], for a block's last, shorter segment.
    #[inline(never)]
    pub(super) fn sieve_partial<S: Accumulator>(&mut self, sums: &mut [S], first: u64) {
        let divisors = self.laps.iter().flat_map(|&(low, high, _)| low..=high);
        for d in divisors {
            let cofactor = &mut self.cofactor[(d - self.low) as usize];
            let k = cofactor.get();
            let n = d * k;
            let mut add = d + k;
            if n - first < sums.len() as u64 {
                let mut offset = (n - first) as usize;
                while let Some(sum) = sums.get_mut(offset) {
                    sum.add(add);
                    offset += d as usize;
                    add += 1;
                }
            }
            *cofactor = C::new(add - d);
        }
    }
}
