//! The segmented divisor-pair sieve.
//!
//! For a block `[start, end)`, every number starts at 1 (s(1) = 0) and every divisor d from 2
//! to isqrt(end - 1) adds d + k to each of its multiples n = k * d with k >= d in the block: the
//! pair (d, n / d). A square d * d got 2d and is corrected to d afterwards. So every proper
//! divisor of every n is enumerated and summed, a few memory updates per number.
//!
//! The block is swept in cache-sized segments. Divisors are handled in five bands:
//! * the wheel (the divisors of [`WHEEL_PERIOD`] up to [`TINY_DIVISOR_LIMIT`], whose square is
//!   below the block's start): their pairs repeat with the period but for a term that grows
//!   linearly, so each segment starts from a table instead of 2.7 scattered updates a number.
//! * small (d up to the segment length): each keeps its next multiple and its next k across
//!   segments and hits a segment many times; no division after the block's start. The tiny
//!   ones among them (up to [`TINY_DIVISOR_LIMIT`]) sweep L1-sized pieces of the segment.
//! * window (below 2^40, d up to [`LOG2_COMPACT_WINDOW_LEN`]'s 2^20): the same per-divisor
//!   state, but swept over a window of several segments (4 MiB, in L3), hitting it a few times.
//! * bucketed (up to [`MAX_BUCKET_DIVISORS`] more, above 2^40): each hits a segment at most once and
//!   usually not at all, so each waits in the bucket of the segment of its next multiple and is
//!   touched only when it hits. Buckets are kept per group of divisors with the same
//!   d / segment length (see [`GROUPS`]), so that a group's sweep writes to two buckets only.
//! * direct (only above ~7 * 10^13, where the buckets would take too much memory): the first
//!   multiple in each segment is found by one division per divisor per (wider) segment.
//!
//! Per-number sums are u32 (mod 2^32) for blocks ending at or below [`COMPACT_SUMS_UP_TO`],
//! which lets a segment hold 2^17 numbers in 512 KiB: the checksum then comes from a closed
//! form checked against the u32 sums, and perfect candidates are confirmed by trial division.
//! Above it they are u64, and u128 above [`EXACT_IN_U64_BELOW`], in segments of 2^15.

#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicBool, Ordering};

use crate::kernel::{isqrt, proper_divisor_sum, BlockTally};

/// log2 of the segment length in numbers with u64 (or u128) sums: 2^15 u64 sums are 256 KiB,
/// half of this L2.
pub(crate) const LOG2_SEGMENT_LEN: u32 = 15;
/// log2 of the segment length with u32 sums: 2^17 of them are 512 KiB, half of this L2, the
/// small band's u32 cofactors the other half (2^16 measured no faster and runs ~6% more
/// instructions near 10^12; 2^18 would not fit).
pub(crate) const LOG2_COMPACT_SEGMENT_LEN: u32 = 17;
/// log2 of the window length with u32 sums: 2^20 of them are 4 MiB, in L3. The divisors past
/// the segment length (up to 2^20, all of them below 2^40) hit a window instead of waiting in
/// buckets: a read-modify-write in L3 costs less than an 8-byte bucket entry out to the pool and
/// back per hit, as measured near 10^12 (all divisors on 2^20-number segments already ran 1.08
/// times the bucketed 2^17 ones; with the small ones kept on 2^17 segments, 1.17).
pub(crate) const LOG2_COMPACT_WINDOW_LEN: u32 = 20;
/// The segment length when some divisors are sieved directly: a division per divisor per
/// segment makes longer segments worth their cache misses.
pub(crate) const LOG2_WIDE_SEGMENT_LEN: u32 = 20;
/// Divisors up to this are swept over L1-sized pieces of a segment.
pub(crate) const TINY_DIVISOR_LIMIT: u64 = 1 << 10;
/// The tiny band's pieces: 4096 numbers, 32 KiB of u64 sums or 16 KiB of u32 ones (8192 u32
/// sums, all of L1, measured no faster with the loops aligned).
pub(crate) const TINY_SEGMENT_LEN: u64 = 1 << 12;
/// Blocks ending at or below this keep each number's sum mod 2^32 only (u32 sums: see
/// [`Layout::COMPACT`]). Half the memory per number lets a segment hold four times the numbers
/// in the same cache, so most of the divisors that would be bucketed with u64 sums (ln 4 = 1.4
/// of the 3.4 bucketed hits per number near 10^12) become small ones, whose hits cost a few
/// instructions instead of ~26. What a u32 sum loses is paid back here:
/// * a number whose sum is n mod 2^32 is only a candidate, confirmed by trial division up to
///   its square root. A number that is not perfect passes about once in 2^32 (a few residue
///   classes, such as primes p = 1 mod 2^32, do a small constant factor more often), and
///   confirming it takes at most sqrt(2^40) = 2^20 divisions: about 2^-12 divisions per number
///   scanned, against ~60 cycles of sieving. The perfect numbers themselves (7 up to 2^40) cost
///   at most 2^19 divisions each.
/// * the checksum is computed per block in closed form ([`checksum_in_closed_form`]): one or
///   two divisions per divisor per block (at least 32 numbers per divisor), and at most 2^21
///   (a few milliseconds) for a stopped block's prefix.
/// * below 2^40 a small divisor's cofactor k = n / d (d > [`TINY_DIVISOR_LIMIT`]) is below 2^30.
pub(crate) const COMPACT_SUMS_UP_TO: u64 = 1 << 40;
/// At most this many divisors wait in buckets (8 bytes each: 64 MiB per thread).
pub(crate) const MAX_BUCKET_DIVISORS: u64 = 1 << 23;
/// Blocks are at most this long, so offsets in a block fit in u32 with room for a divisor.
pub(crate) const MAX_BLOCK_LEN: u64 = 1 << 31;
/// Below this bound every s(n) fits in u64, so plain u64 sums are exact. Proof:
/// s(n) <= 1 + sum_{d=2}^{sqrt n} (d + n/d) <= 1 + n/2 + sqrt(n)/2 + n ln sqrt(n), which for
/// n < 2^59 is below 21 * 2^59 < 2^64. Above it the sieve sums in u128.
pub(crate) const EXACT_IN_U64_BELOW: u64 = 1 << 59;
/// Divisions between two looks at the stop flag in the per-block and per-segment setup.
const DIVISIONS_PER_STOP_CHECK: u64 = 1 << 16;

/// How a block's segments are laid out: the segment length and the tiny band's piece length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    /// log2 of the segment length.
    pub log2_segment_len: u32,
    /// The tiny divisors sweep a full segment in pieces this long.
    pub tiny_piece_len: u64,
    /// log2 of the window length: divisors past the segment length and up to the window length
    /// sweep whole windows of segments (equal to the segment length: no such band).
    pub log2_window_len: u32,
}

impl Layout {
    /// u64 (or u128) sums: 256 KiB segments, 32 KiB pieces.
    pub const NARROW: Layout = Layout {
        log2_segment_len: LOG2_SEGMENT_LEN,
        tiny_piece_len: TINY_SEGMENT_LEN,
        log2_window_len: LOG2_SEGMENT_LEN,
    };
    /// u32 sums, for blocks ending at or below [`COMPACT_SUMS_UP_TO`]: 512 KiB segments (half
    /// this L2), 16 KiB pieces, 4 MiB windows.
    pub const COMPACT: Layout = Layout {
        log2_segment_len: LOG2_COMPACT_SEGMENT_LEN,
        tiny_piece_len: TINY_SEGMENT_LEN,
        log2_window_len: LOG2_COMPACT_WINDOW_LEN,
    };

    /// The layout of the blocks ending at `end`.
    pub fn for_end(end: u64) -> Layout {
        if end <= COMPACT_SUMS_UP_TO {
            Layout::COMPACT
        } else {
            Layout::NARROW
        }
    }
}

/// The smallest and largest block lengths worth using for ranges ending at `hi`.
pub(crate) fn block_len_bounds(hi: u64) -> (u64, u64) {
    let max_divisor = isqrt(hi.saturating_sub(1));
    // Starting a block costs one division per divisor; 32 numbers per divisor keep that below a
    // few percent of the block's time. At least one segment.
    let floor = max_divisor
        .saturating_mul(32)
        .clamp(1 << Layout::for_end(hi).log2_segment_len, MAX_BLOCK_LEN);
    // Long blocks lose more work to a stop (only the first unfinished block's prefix is kept),
    // so past the floor stay near a second of work.
    let ceiling = floor.max(1 << 26);
    (floor, ceiling)
}

/// `len` rounded up to whole windows (or, below one window, whole segments) of the blocks
/// ending near `hi`: a partial window or segment is swept by the slower partial loops.
pub(crate) fn whole_block_len(len: u64, hi: u64) -> u64 {
    let layout = Layout::for_end(hi);
    let window = 1 << layout.log2_window_len;
    let unit = if len >= window {
        window
    } else {
        1 << layout.log2_segment_len
    };
    len.next_multiple_of(unit).min(MAX_BLOCK_LEN)
}

/// The bands of divisors a block uses; shared with the cost model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Bands {
    /// Largest divisor the block needs: isqrt(end - 1).
    pub max_divisor: u64,
    /// Small divisors are 2..=small_top.
    pub small_top: u64,
    /// Window divisors are small_top+1..=window_top.
    pub window_top: u64,
    /// Bucketed divisors are window_top+1..=bucket_top; direct ones bucket_top+1..=max_divisor.
    pub bucket_top: u64,
    /// log2 of the segment length.
    pub log2_segment_len: u32,
    /// The tiny divisors' piece length.
    pub tiny_piece_len: u64,
    /// log2 of the window length (see [`Layout`]).
    pub log2_window_len: u32,
}

impl Bands {
    /// The bands of the block `[start, end)` as the sieve scans it.
    pub fn new(start: u64, end: u64) -> Bands {
        Bands::with_layout(start, end, Layout::for_end(end))
    }

    /// The bands of the block `[start, end)` in segments laid out as `layout` (below the direct
    /// band's threshold).
    pub fn with_layout(start: u64, end: u64, layout: Layout) -> Bands {
        let len = end - start;
        let max_divisor = isqrt(end.saturating_sub(1));
        // A bucketed divisor's cofactor n / d must fit in u32.
        let cofactors_fit = |small_top: u64| (end - 1) / (small_top + 1) < u64::from(u32::MAX);
        let small_top = max_divisor.min(1 << layout.log2_segment_len);
        let narrow = Bands {
            max_divisor,
            small_top,
            window_top: small_top,
            bucket_top: small_top,
            log2_segment_len: layout.log2_segment_len,
            tiny_piece_len: layout.tiny_piece_len,
            log2_window_len: layout.log2_segment_len,
        };
        if layout.log2_window_len > layout.log2_segment_len {
            // The divisors past the segment length sweep windows (below 2^40 they all fit:
            // max_divisor <= 2^20); any beyond wait in buckets.
            let window_top = max_divisor.min(1 << layout.log2_window_len);
            let bucket_top =
                if max_divisor - window_top <= MAX_BUCKET_DIVISORS && cofactors_fit(window_top) {
                    max_divisor
                } else {
                    window_top
                };
            return Bands {
                window_top,
                bucket_top,
                log2_window_len: layout.log2_window_len,
                ..narrow
            };
        }
        // A block of one segment would set each bucketed divisor up only to use it once; the
        // direct sweep does the same work without the buckets' memory.
        if max_divisor == small_top || len <= 1 << layout.log2_segment_len {
            return narrow;
        }
        if max_divisor - small_top <= MAX_BUCKET_DIVISORS && cofactors_fit(small_top) {
            return Bands {
                bucket_top: max_divisor,
                ..narrow
            };
        }
        // Too many large divisors for the buckets: wide segments, buckets as far as memory and
        // the cofactors' width allow, one division per divisor per segment beyond.
        let small_top = max_divisor.min(1 << LOG2_WIDE_SEGMENT_LEN);
        let bucket_top = if cofactors_fit(small_top) {
            max_divisor.min(small_top + MAX_BUCKET_DIVISORS)
        } else {
            small_top
        };
        Bands {
            max_divisor,
            small_top,
            window_top: small_top,
            bucket_top,
            log2_segment_len: LOG2_WIDE_SEGMENT_LEN,
            tiny_piece_len: TINY_SEGMENT_LEN,
            log2_window_len: LOG2_WIDE_SEGMENT_LEN,
        }
    }
}

/// A per-number divisor sum: u64 where that is exact (wrapping never happens), else u128.
pub(crate) trait Accumulator: Copy + Default + 'static {
    const ONE: Self;
    fn add(&mut self, value: u64);
    fn subtract(&mut self, value: u64);
    /// s(n) mod 2^64.
    fn low_bits(self) -> u64;
    /// Whether the sum is exactly n (for [`Accumulator::EXACT`] sums), or a candidate for it
    /// (the sum is n mod 2^32, for u32 sums).
    fn is(self, n: u64) -> bool;
    /// Whether the sum is s(n) itself, not s(n) mod 2^32.
    const EXACT: bool = true;
    /// Whether blocks with these sums sieve the wheel's divisors by its tables (see
    /// [`Wheel`]): not u128 ones, where the tables' values could pass u64.
    const WHEEL: bool = true;
    /// `value` as a sum (mod 2^32 for u32 sums).
    #[inline(always)]
    fn of(value: u64) -> Self {
        let mut sum = Self::default();
        sum.add(value);
        sum
    }
    /// How the small band (past the tiny one) stores its cofactors with these sums.
    type Cofactor: Cofactor;
    /// The small band's state for these sums.
    fn small_band(workspace: &mut SieveWorkspace) -> &mut SmallDivisors<Self::Cofactor>;
    /// The wheel's per-block state for these sums.
    fn wheel_fill(workspace: &mut SieveWorkspace) -> &mut WheelFill<Self>;
    /// The window band's state for these sums.
    fn window_band(workspace: &mut SieveWorkspace) -> &mut SmallDivisors<Self::Cofactor>;
}

/// s(n) mod 2^32, for blocks ending at or below [`COMPACT_SUMS_UP_TO`]: `low_bits` is only
/// s(n) mod 2^32 and `is` only finds candidates, confirmed by [`confirmed_perfect`]; the block's
/// checksum comes from [`checksum_in_closed_form`].
impl Accumulator for u32 {
    const ONE: u32 = 1;
    #[inline(always)]
    fn window_band(workspace: &mut SieveWorkspace) -> &mut SmallDivisors<u32> {
        &mut workspace.window_compact
    }
    #[inline(always)]
    fn wheel_fill(workspace: &mut SieveWorkspace) -> &mut WheelFill<u32> {
        &mut workspace.wheel_compact
    }
    type Cofactor = u32;
    #[inline(always)]
    fn small_band(workspace: &mut SieveWorkspace) -> &mut SmallDivisors<u32> {
        &mut workspace.small_compact
    }
    const EXACT: bool = false;
    #[inline(always)]
    fn add(&mut self, value: u64) {
        *self = self.wrapping_add(value as u32);
    }
    #[inline(always)]
    fn subtract(&mut self, value: u64) {
        *self = self.wrapping_sub(value as u32);
    }
    #[inline(always)]
    fn low_bits(self) -> u64 {
        u64::from(self)
    }
    #[inline(always)]
    fn is(self, n: u64) -> bool {
        self == n as u32
    }
}

impl Accumulator for u64 {
    const ONE: u64 = 1;
    #[inline(always)]
    fn window_band(workspace: &mut SieveWorkspace) -> &mut SmallDivisors<u64> {
        &mut workspace.window_wide
    }
    #[inline(always)]
    fn wheel_fill(workspace: &mut SieveWorkspace) -> &mut WheelFill<u64> {
        &mut workspace.wheel_narrow
    }
    type Cofactor = u64;
    #[inline(always)]
    fn small_band(workspace: &mut SieveWorkspace) -> &mut SmallDivisors<u64> {
        &mut workspace.small
    }
    #[inline(always)]
    fn add(&mut self, value: u64) {
        *self = self.wrapping_add(value);
    }
    #[inline(always)]
    fn subtract(&mut self, value: u64) {
        *self = self.wrapping_sub(value);
    }
    #[inline(always)]
    fn low_bits(self) -> u64 {
        self
    }
    #[inline(always)]
    fn is(self, n: u64) -> bool {
        self == n
    }
}

impl Accumulator for u128 {
    const ONE: u128 = 1;
    #[inline(always)]
    fn window_band(workspace: &mut SieveWorkspace) -> &mut SmallDivisors<u64> {
        &mut workspace.window_wide
    }
    #[inline(always)]
    fn wheel_fill(workspace: &mut SieveWorkspace) -> &mut WheelFill<u128> {
        &mut workspace.wheel_wide
    }
    const WHEEL: bool = false;
    type Cofactor = u64;
    #[inline(always)]
    fn small_band(workspace: &mut SieveWorkspace) -> &mut SmallDivisors<u64> {
        &mut workspace.small
    }
    #[inline(always)]
    fn add(&mut self, value: u64) {
        *self += u128::from(value);
    }
    #[inline(always)]
    fn subtract(&mut self, value: u64) {
        *self -= u128::from(value);
    }
    #[inline(always)]
    fn low_bits(self) -> u64 {
        self as u64
    }
    #[inline(always)]
    fn is(self, n: u64) -> bool {
        self == u128::from(n)
    }
}

/// Where divisor d first hits `[first, ...)`: the offset of its first multiple n >= max(first,
/// d * d) and the value d + n / d to add there.
#[inline]
fn first_hit(first: u64, d: u64) -> (u64, u64) {
    let square = d * d;
    if square >= first {
        (square - first, 2 * d)
    } else {
        let quotient = first / d;
        match first % d {
            0 => (0, d + quotient),
            remainder => (d - remainder, d + quotient + 1),
        }
    }
}

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
    fn reset(
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
    fn sieve_full<S: Accumulator, const LEN: usize>(&mut self, sums: &mut [S; LEN], first: u64) {
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
    fn sieve_partial<S: Accumulator>(&mut self, sums: &mut [S], first: u64) {
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

/// The wheel's period: 2520 = lcm(1..=10). Its divisors up to [`TINY_DIVISOR_LIMIT`] (45 of
/// them, 2..=840) make 2.7 of the tiny band's 6.5 hits per number, and their pairs repeat
/// with the period: see [`Wheel`].
pub(crate) const WHEEL_PERIOD: u64 = 2520;

/// The pairs of the divisors d of [`WHEEL_PERIOD`] from 2 to `top`, by residue: they are periodic
/// but for a term that grows by one period's worth per period. For n = q * P + p (P the period,
/// 0 <= p < P) and d | P: d | n exactly when d | p, and then n / d = q * (P / d) + p / d. So
/// these divisors add to s(n), over d | p:
///
/// ```text
/// sum (d + n / d) = base[p] + q * step[p],  base[p] = sum (d + p / d),  step[p] = sum P / d
/// ```
///
/// (for p = 0 every d divides). Given d * d <= n, each is the pair (d, n / d) of the sieve. So
/// instead of 2.7 scattered updates per number, a block's segments start from a table: the
/// values for the next period are one vector addition away ([`WheelFill`]).
#[derive(Default)]
pub(crate) struct Wheel {
    /// The largest divisor in the tables (0: none built yet).
    top: u64,
    base: Vec<u64>,
    step: Vec<u64>,
}

impl Wheel {
    /// The largest wheel divisor a block starting at `start` can use, given that its tiny band
    /// ends at `tiny_top`: pairs (d, n / d) need d * d <= n for every n in the block.
    pub(crate) fn top_for(start: u64, tiny_top: u64) -> u64 {
        tiny_top.min(isqrt(start))
    }

    /// Whether the tables built for `top` sieve `d`.
    pub(crate) fn covers(top: u64, d: u64) -> bool {
        d >= 2 && d <= top && WHEEL_PERIOD.is_multiple_of(d)
    }

    /// Builds the tables for the divisors up to `top`, unless they are built already.
    fn build(&mut self, top: u64) {
        if top == self.top && !self.base.is_empty() {
            return;
        }
        let period = WHEEL_PERIOD as usize;
        self.base.clear();
        self.base.resize(period, 0);
        self.step.clear();
        self.step.resize(period, 0);
        for d in (2..=top).filter(|&d| Wheel::covers(top, d)) {
            for p in (0..WHEEL_PERIOD).step_by(d as usize) {
                self.base[p as usize] += d + p / d;
                self.step[p as usize] += WHEEL_PERIOD / d;
            }
        }
        self.top = top;
    }
}

/// A block's wheel: for each residue p, 1 + the wheel's pairs of the next number n = p
/// (mod the period) still to be filled, and what they grow by per period.
#[derive(Default)]
pub(crate) struct WheelFill<S> {
    next: Vec<S>,
    advance: Vec<S>,
    /// The residue of the next number to be filled.
    cursor: usize,
}

impl<S: Accumulator> WheelFill<S> {
    /// Sets the fill up for a block starting at `start` from the tables of `wheel`.
    fn reset(&mut self, wheel: &Wheel, start: u64) {
        let quotient = start / WHEEL_PERIOD;
        let cursor = (start % WHEEL_PERIOD) as usize;
        self.next.clear();
        // Residues before the cursor come next in the following period. In u64 this cannot
        // wrap below 2^59 (q * step < n * 2.7), and for u32 sums only its low bits matter.
        self.next.extend((0..WHEEL_PERIOD as usize).map(|p| {
            let q = quotient + u64::from(p < cursor);
            S::of((1 + wheel.base[p]).wrapping_add(q.wrapping_mul(wheel.step[p])))
        }));
        self.advance.clear();
        self.advance
            .extend(wheel.step.iter().map(|&step| S::of(step)));
        self.cursor = cursor;
    }

    /// Starts the next `segment` of the block: 1 (the divisor 1) plus the wheel's pairs for
    /// each of its numbers.
    fn fill(&mut self, segment: &mut [S]) {
        let period = WHEEL_PERIOD as usize;
        let mut rest = segment;
        while !rest.is_empty() {
            let run = (period - self.cursor).min(rest.len());
            let (head, tail) = rest.split_at_mut(run);
            let next = &mut self.next[self.cursor..self.cursor + run];
            let advance = &self.advance[self.cursor..self.cursor + run];
            for ((sum, next), &advance) in head.iter_mut().zip(next.iter_mut()).zip(advance) {
                *sum = *next;
                // The steps are below 2^64, so low_bits is each one whole.
                next.add(advance.low_bits());
            }
            self.cursor = (self.cursor + run) % period;
            rest = tail;
        }
    }
}

/// A bucketed divisor's next multiple n = divisor * cofactor, where the pair adds
/// divisor + cofactor, packed as `divisor | cofactor << 32`: the next multiple's entry is one
/// addition away ([`NEXT_COFACTOR`]). The cofactor fits in u32 because buckets are only used
/// where n / d < 2^32 (see [`Bands`]).
type Pending = u64;
/// Added to a [`Pending`] entry: the divisor's next multiple.
const NEXT_COFACTOR: u64 = 1 << 32;

/// Entries per chunk of the bucket pool.
const CHUNK: usize = 512;
/// No chunk.
const NONE: u32 = u32::MAX;
/// Bucketed divisors are grouped by g = d / segment length: a divisor of group g that hits a
/// segment next hits g or g + 1 segments on, so the sweep of one group writes to two buckets
/// only and keeps where it writes in registers, instead of loading and storing a bucket's end
/// for every entry (a chain through memory whenever two entries in a row go to the same
/// bucket). Groups 1..GROUPS are kept apart; group 0 holds every larger divisor.
const GROUPS: usize = 32;

/// The group of bucketed divisor d, for segments 2^log2_segment_len long.
#[inline(always)]
fn group_of(d: u64, log2_segment_len: u32) -> usize {
    let g = (d >> log2_segment_len) as usize;
    if g < GROUPS {
        g
    } else {
        0
    }
}

/// For each segment (a ring, since no divisor jumps further than the ring's length) and group,
/// a bucket: a list of fixed-size chunks from a pool sized once per block, so pushing never
/// allocates. A divisor whose next multiple is past the block's end is filed in the bucket of a
/// segment past the end, which the block never reads (the ring is longer than any jump).
#[derive(Default)]
struct Buckets {
    pool: Vec<Pending>,
    /// For each chunk: the next chunk of the same bucket, or of the free list.
    link: Vec<u32>,
    /// For each bucket (`slot * GROUPS + group`): its newest chunk (the only one that may be
    /// partly filled).
    head: Vec<u32>,
    /// For each bucket: where in `pool` its next entry goes; see [`is_full`].
    write: Vec<u32>,
    free: u32,
    /// A copy of the chunk being drained.
    drain: Vec<Pending>,
    start: u64,
    /// The next divisor not yet active (its square is past the segments swept so far).
    next_square_root: u64,
    high: u64,
    log2_segment_len: u32,
    ring_mask: usize,
}

impl Buckets {
    /// Sets the buckets up for divisors `low..=high` in a block starting at `start`.
    /// Returns false when stopped.
    fn reset(
        &mut self,
        start: u64,
        low: u64,
        high: u64,
        log2_segment_len: u32,
        stop: &AtomicBool,
    ) -> bool {
        let divisors = (high + 1).saturating_sub(low) as usize;
        // A divisor's next multiple is at most this many segments on.
        let jump = (high >> log2_segment_len) as usize + 1;
        let ring = (jump + 1).next_power_of_two();
        // Every divisor is in at most one bucket; each bucket has at most one partly filled
        // chunk, and group g uses g + 2 slots at a time, group 0 the whole ring; one more for
        // the chunk being drained while its entries move on (it is freed once drained).
        let groups = jump.min(GROUPS);
        let partial = ring + (1..groups).map(|g| g + 2).sum::<usize>();
        let chunks = divisors.div_ceil(CHUNK) + partial + 3;
        self.pool.resize(chunks * CHUNK, 0);
        self.link.clear();
        self.link.extend(1..=chunks as u32);
        if let Some(last) = self.link.last_mut() {
            *last = NONE;
        }
        self.free = 0;
        self.drain.resize(CHUNK, 0);
        self.head.clear();
        self.head.resize(ring * GROUPS, NONE);
        self.write.clear();
        self.write.resize(ring * GROUPS, 0);
        self.start = start;
        self.log2_segment_len = log2_segment_len;
        self.ring_mask = ring - 1;
        // Divisors already active at the start file their first multiple, at most one divisor
        // ahead; the others wait until the sweep reaches their square.
        let mut d = low;
        while d <= high && d * d < start {
            if d.is_multiple_of(DIVISIONS_PER_STOP_CHECK) && stop.load(Ordering::Relaxed) {
                return false;
            }
            let (offset, value) = first_hit(start, d);
            self.push(start + offset, d | (value - d) << 32);
            d += 1;
        }
        self.next_square_root = d;
        self.high = high;
        true
    }

    /// Adds the squares d * d that fall in the segment `[first, first + sums.len())` for the
    /// divisors that become active there, and files their next multiples.
    fn activate<S: Accumulator>(&mut self, sums: &mut [S], first: u64) {
        while self.next_square_root <= self.high {
            let d = self.next_square_root;
            let Some(sum) = sums.get_mut((d * d - first) as usize) else {
                break;
            };
            // 2d, as every band adds at a square; `correct_squares` makes it d.
            sum.add(2 * d);
            self.push(d * d + d, d | (d + 1) << 32);
            self.next_square_root += 1;
        }
    }

    /// Files `entry`, whose next multiple is `n`.
    fn push(&mut self, n: u64, entry: Pending) {
        let slot = ((n - self.start) >> self.log2_segment_len) as usize & self.ring_mask;
        let group = group_of(entry & u64::from(u32::MAX), self.log2_segment_len);
        let bucket = slot * GROUPS + group;
        let mut write = self.write[bucket];
        if is_full(write, self.head[bucket]) {
            write = new_chunk(&mut self.free, &mut self.link, &mut self.head[bucket]);
        }
        self.pool[write as usize] = entry;
        self.write[bucket] = write + 1;
    }

    /// Adds the hits of the segment starting at `first` (of which `len` numbers are in the
    /// block) and files each divisor under the segment of its next multiple. Every bucketed
    /// divisor is longer than a segment, so it hits it at most once. `LEN` is the segment length.
    #[inline(never)]
    fn sieve<S: Accumulator, const LEN: usize>(
        &mut self,
        sums: &mut [S; LEN],
        len: usize,
        first: u64,
    ) {
        self.activate(&mut sums[..len], first);
        let log2_segment_len = LEN.trailing_zeros();
        debug_assert_eq!(log2_segment_len, self.log2_segment_len);
        let start = self.start;
        let ring_mask = self.ring_mask;
        let slot = ((first - start) >> log2_segment_len) as usize & ring_mask;
        let Buckets {
            pool,
            link,
            head,
            write,
            free,
            drain,
            ..
        } = self;
        let (pool, link, head, write) =
            (&mut pool[..], &mut link[..], &mut head[..], &mut write[..]);
        for group in 0..GROUPS {
            let bucket = slot * GROUPS + group;
            let mut chunk = std::mem::replace(&mut head[bucket], NONE);
            if chunk == NONE {
                continue;
            }
            let mut fill = (std::mem::replace(&mut write[bucket], 0) as usize)
                .wrapping_sub(chunk as usize * CHUNK);
            if group == 0 {
                while chunk != NONE {
                    // A copy of the chunk, as its entries go to any bucket, this chunk's too.
                    let base = chunk as usize * CHUNK;
                    let entries = &mut drain[..fill];
                    entries.copy_from_slice(&pool[base..base + fill]);
                    let next_chunk = link[chunk as usize];
                    link[chunk as usize] = *free;
                    *free = chunk;
                    chunk = next_chunk;
                    fill = CHUNK;
                    for &entry in entries.iter() {
                        let divisor = entry & u64::from(u32::MAX);
                        let cofactor = entry >> 32;
                        let n = divisor * cofactor;
                        // Every entry of this bucket has its multiple in this segment (and in
                        // the block): the mask only tells the compiler so.
                        sums[(n - first) as usize & (LEN - 1)].add(divisor + cofactor);
                        let next_slot =
                            ((n + divisor - start) >> log2_segment_len) as usize & ring_mask;
                        let next_bucket = next_slot * GROUPS;
                        let mut at = write[next_bucket];
                        if is_full(at, head[next_bucket]) {
                            at = new_chunk(free, link, &mut head[next_bucket]);
                        }
                        pool[at as usize] = entry + NEXT_COFACTOR;
                        write[next_bucket] = at + 1;
                    }
                }
                continue;
            }
            // Group g's two buckets and where they write next.
            let near_bucket = ((slot + group) & ring_mask) * GROUPS + group;
            let far_bucket = ((slot + group + 1) & ring_mask) * GROUPS + group;
            let mut near = write[near_bucket] as usize;
            let mut far = write[far_bucket] as usize;
            // Past this offset in the segment, the next multiple is in the far bucket.
            let far_from = (group as u64 + 1) << log2_segment_len;
            while chunk != NONE {
                let base = chunk as usize * CHUNK;
                let mut done = 0;
                while done < fill {
                    if is_full(near as u32, head[near_bucket]) {
                        near = new_chunk(free, link, &mut head[near_bucket]) as usize;
                    }
                    if is_full(far as u32, head[far_bucket]) {
                        far = new_chunk(free, link, &mut head[far_bucket]) as usize;
                    }
                    // Each entry moves to one of the two: this many fit in both.
                    let run = (fill - done)
                        .min(CHUNK - near % CHUNK)
                        .min(CHUNK - far % CHUNK);
                    let (near_base, far_base) = (near - near % CHUNK, far - far % CHUNK);
                    let Ok([input, near_chunk, far_chunk]) = pool.get_disjoint_mut([
                        base + done..base + done + run,
                        near_base..near_base + CHUNK,
                        far_base..far_base + CHUNK,
                    ]) else {
                        unreachable!("three buckets' chunks are distinct and in the pool");
                    };
                    let (Ok(near_chunk), Ok(far_chunk)) =
                        (near_chunk.try_into(), far_chunk.try_into())
                    else {
                        unreachable!("chunks are CHUNK long");
                    };
                    let (near_fill, far_fill) = sweep_group(
                        sums,
                        input,
                        first,
                        far_from,
                        (near_chunk, near % CHUNK),
                        (far_chunk, far % CHUNK),
                    );
                    near = near_base + near_fill;
                    far = far_base + far_fill;
                    done += run;
                }
                // Drained: the chunk is free for the buckets that come next.
                let next_chunk = link[chunk as usize];
                link[chunk as usize] = *free;
                *free = chunk;
                chunk = next_chunk;
                fill = CHUNK;
            }
            write[near_bucket] = near as u32;
            write[far_bucket] = far as u32;
        }
    }
}

/// The bucket sweep for a run of one group's entries (see [`GROUPS`]): adds each entry's pair
/// at its multiple in the segment starting at `first` and moves it on to the near or the far
/// bucket's chunk, filled up to the positions given; returns the positions moved on. Both
/// chunks have room for every entry of the run. Each entry is written to both chunks and only
/// one position moves: the other copy is overwritten next, or lies past its chunk's fill.
#[inline(never)]
fn sweep_group<S: Accumulator, const LEN: usize>(
    sums: &mut [S; LEN],
    entries: &[Pending],
    first: u64,
    far_from: u64,
    (near_chunk, mut near): (&mut [Pending; CHUNK], usize),
    (far_chunk, mut far): (&mut [Pending; CHUNK], usize),
) -> (usize, usize) {
    debug_assert!(near + entries.len() <= CHUNK && far + entries.len() <= CHUNK);
    for &entry in entries {
        let divisor = entry & u64::from(u32::MAX);
        let cofactor = entry >> 32;
        let offset = divisor * cofactor - first;
        // Every entry of this bucket has its multiple in this segment: the mask only tells the
        // compiler so (and the chunks' masks that positions stay in them, as they do).
        sums[offset as usize & (LEN - 1)].add(divisor + cofactor);
        let moved = entry + NEXT_COFACTOR;
        near_chunk[near & (CHUNK - 1)] = moved;
        far_chunk[far & (CHUNK - 1)] = moved;
        let to_far = offset + divisor >= far_from;
        near += usize::from(!to_far);
        far += usize::from(to_far);
    }
    (near, far)
}

/// Whether a bucket whose newest chunk is `head` and whose next entry would go at `write` needs
/// a new chunk: a multiple of CHUNK is either the end of a full chunk or the start of an empty
/// one (the sweep takes a chunk for each of its two buckets before it knows which will be used).
#[inline(always)]
fn is_full(write: u32, head: u32) -> bool {
    (write as usize).is_multiple_of(CHUNK)
        && (head == NONE || head as usize * CHUNK != write as usize)
}

/// Takes a chunk off the free list `free` as the new head of the bucket whose head is `head`;
/// returns where its first entry goes.
#[inline(never)]
#[cold]
fn new_chunk(free: &mut u32, link: &mut [u32], head: &mut u32) -> u32 {
    let fresh = *free;
    *free = link[fresh as usize];
    link[fresh as usize] = *head;
    *head = fresh;
    fresh * CHUNK as u32
}

/// Per-thread sieve state, reused across blocks so the scan loop does not allocate.
#[derive(Default)]
pub(crate) struct SieveWorkspace {
    compact: Vec<u32>,
    narrow: Vec<u64>,
    wide: Vec<u128>,
    tiny: SmallDivisors<u64>,
    wheel: Wheel,
    wheel_compact: WheelFill<u32>,
    wheel_narrow: WheelFill<u64>,
    wheel_wide: WheelFill<u128>,
    small: SmallDivisors<u64>,
    small_compact: SmallDivisors<u32>,
    window_compact: SmallDivisors<u32>,
    window_wide: SmallDivisors<u64>,
    buckets: Buckets,
}

impl SieveWorkspace {
    pub fn new() -> SieveWorkspace {
        SieveWorkspace::default()
    }

    /// Sieves `[start, end)` (at most [`MAX_BLOCK_LEN`] long) into `tally`, calling
    /// `on_progress` after each segment; returns early, with `tally.done` short, on `stop`.
    pub fn scan_block(
        &mut self,
        start: u64,
        end: u64,
        stop: &AtomicBool,
        on_progress: &mut dyn FnMut(u64),
        tally: &mut BlockTally,
    ) {
        if end <= COMPACT_SUMS_UP_TO {
            self.scan_block_compact(start, end, stop, on_progress, tally);
        } else if end <= EXACT_IN_U64_BELOW {
            self.scan_block_with(start, end, Layout::NARROW, stop, on_progress, tally, |w| {
                &mut w.narrow
            });
        } else {
            self.scan_block_with(start, end, Layout::NARROW, stop, on_progress, tally, |w| {
                &mut w.wide
            });
        }
    }

    /// [`SieveWorkspace::scan_block`] with u32 sums (for `end <= COMPACT_SUMS_UP_TO`): the
    /// checksum of the part done, `[start, tally.done)`, is computed in closed form, and its low
    /// 32 bits are checked against the wrapping sum of the sieve's u32 sums.
    fn scan_block_compact(
        &mut self,
        start: u64,
        end: u64,
        stop: &AtomicBool,
        on_progress: &mut dyn FnMut(u64),
        tally: &mut BlockTally,
    ) {
        let checksum_before = tally.checksum;
        let perfect_before = tally.perfect.len();
        // While sieving, the checksum adds the u32 sums: its low 32 bits are their wrapping sum.
        tally.checksum = 0;
        self.scan_block_with(start, end, Layout::COMPACT, stop, on_progress, tally, |w| {
            &mut w.compact
        });
        let sieved = tally.checksum as u32;
        self.settle_compact(start, sieved, checksum_before, perfect_before, tally);
    }

    /// Replaces the u32 sums' checksum by the exact one for `[start, tally.done)` once the
    /// sieve's own total, `sieved`, agrees with it mod 2^32. A disagreement is a bug in the
    /// sieve (a missed or doubled update); rather than return a wrong answer, the part done is
    /// then sieved again with exact u64 sums, to the same end and ignoring the stop flag (at most
    /// one block's work), so the block's result and the progress already reported stay true.
    fn settle_compact(
        &mut self,
        start: u64,
        sieved: u32,
        checksum_before: u64,
        perfect_before: usize,
        tally: &mut BlockTally,
    ) {
        let done = tally.done;
        let exact = checksum_in_closed_form(start, done);
        if exact as u32 == sieved {
            tally.checksum = checksum_before.wrapping_add(exact);
            return;
        }
        debug_assert!(
            false,
            "u32 sums of [{start}, {done}) add to {sieved}, not {}",
            exact as u32
        );
        tally.done = start;
        tally.checksum = 0;
        tally.perfect.truncate(perfect_before);
        let never = AtomicBool::new(false);
        self.scan_block_with(
            start,
            done,
            Layout::NARROW,
            &never,
            &mut |_| {},
            tally,
            |w| &mut w.narrow,
        );
        tally.checksum = checksum_before.wrapping_add(tally.checksum);
    }

    #[allow(clippy::too_many_arguments)]
    fn scan_block_with<S: Accumulator>(
        &mut self,
        start: u64,
        end: u64,
        layout: Layout,
        stop: &AtomicBool,
        on_progress: &mut dyn FnMut(u64),
        tally: &mut BlockTally,
        sums_of: fn(&mut SieveWorkspace) -> &mut Vec<S>,
    ) {
        debug_assert!(start >= 1 && start <= end && end - start <= MAX_BLOCK_LEN);
        if start == end {
            return;
        }
        let bands = Bands::with_layout(start, end, layout);
        let args = (start, end, &bands, stop, on_progress, tally, sums_of);
        // Every layout [`Bands::with_layout`] makes; the tiny pieces are 2^12 in each.
        const PIECE: usize = TINY_SEGMENT_LEN as usize;
        const NARROW: usize = 1 << LOG2_SEGMENT_LEN;
        const COMPACT: usize = 1 << LOG2_COMPACT_SEGMENT_LEN;
        const COMPACT_WINDOW: usize = 1 << LOG2_COMPACT_WINDOW_LEN;
        const WIDE: usize = 1 << LOG2_WIDE_SEGMENT_LEN;
        match (bands.log2_segment_len, bands.log2_window_len) {
            (LOG2_COMPACT_SEGMENT_LEN, LOG2_COMPACT_WINDOW_LEN) => {
                self.scan_segments::<S, COMPACT, COMPACT_WINDOW, PIECE>(args)
            }
            (LOG2_SEGMENT_LEN, _) => self.scan_segments::<S, NARROW, NARROW, PIECE>(args),
            _ => self.scan_segments::<S, WIDE, WIDE, PIECE>(args),
        }
    }

    /// [`SieveWorkspace::scan_block_with`] for segments `LEN` long.
    #[allow(clippy::type_complexity)]
    fn scan_segments<S: Accumulator, const LEN: usize, const WINDOW: usize, const PIECE: usize>(
        &mut self,
        (start, end, bands, stop, on_progress, tally, sums_of): (
            u64,
            u64,
            &Bands,
            &AtomicBool,
            &mut dyn FnMut(u64),
            &mut BlockTally,
            fn(&mut SieveWorkspace) -> &mut Vec<S>,
        ),
    ) {
        debug_assert_eq!(LEN, 1 << bands.log2_segment_len);
        debug_assert_eq!(WINDOW, 1 << bands.log2_window_len);
        debug_assert!(WINDOW.is_multiple_of(LEN));
        let full_len = LEN as u64;
        let tiny_top = bands.small_top.min(TINY_DIVISOR_LIMIT);
        debug_assert_eq!(PIECE as u64, bands.tiny_piece_len);
        let wheel_top = if S::WHEEL {
            Wheel::top_for(start, tiny_top)
        } else {
            0
        };
        self.wheel.build(wheel_top);
        let mut wheel = std::mem::take(S::wheel_fill(self));
        wheel.reset(&self.wheel, start);
        self.tiny.reset(start, 2, tiny_top, PIECE as u64, |d| {
            Wheel::covers(wheel_top, d)
        });
        let mut small = std::mem::take(S::small_band(self));
        small.reset(start, tiny_top + 1, bands.small_top, full_len, |_| false);
        let mut window_band = std::mem::take(S::window_band(self));
        window_band.reset(
            start,
            bands.small_top + 1,
            bands.window_top,
            WINDOW as u64,
            |_| false,
        );
        let mut sums = std::mem::take(sums_of(self));
        let restore = |workspace: &mut SieveWorkspace, sums, small, window_band, wheel| {
            *sums_of(workspace) = sums;
            *S::small_band(workspace) = small;
            *S::window_band(workspace) = window_band;
            *S::wheel_fill(workspace) = wheel;
        };
        if !self.buckets.reset(
            start,
            bands.window_top + 1,
            bands.bucket_top,
            bands.log2_segment_len,
            stop,
        ) {
            restore(self, sums, small, window_band, wheel);
            return;
        }
        sums.clear();
        sums.resize(WINDOW, S::ONE);
        let mut window_first = start;
        'windows: while window_first < end {
            let window = &mut sums[..];
            let window_len = (WINDOW as u64).min(end - window_first) as usize;
            // With the wheel's divisors, or with just the divisor 1 (s(1) = 0: 1 has none).
            wheel.fill(&mut window[..window_len]);
            if window_first == 1 {
                window[0] = S::default();
            }
            if WINDOW > LEN {
                match <&mut [S; WINDOW]>::try_from(&mut *window) {
                    Ok(whole) if window_len == WINDOW => {
                        window_band.sieve_full(whole, window_first)
                    }
                    _ => window_band.sieve_partial(&mut window[..window_len], window_first),
                }
            }
            let mut first = window_first;
            for whole in window[..window_len.next_multiple_of(LEN)].chunks_exact_mut(LEN) {
                let Ok(whole) = <&mut [S; LEN]>::try_from(whole) else {
                    break 'windows;
                };
                let this_len = full_len.min(end - first) as usize;
                if this_len == LEN {
                    // The tiny divisors hit most often: sweep them over L1-sized pieces.
                    for (piece, piece_first) in
                        whole.chunks_exact_mut(PIECE).zip((first..).step_by(PIECE))
                    {
                        if let Ok(piece) = <&mut [S; PIECE]>::try_from(piece) {
                            self.tiny.sieve_full(piece, piece_first);
                        }
                    }
                    small.sieve_full(whole, first);
                } else {
                    self.tiny.sieve_partial(&mut whole[..this_len], first);
                    small.sieve_partial(&mut whole[..this_len], first);
                }
                self.buckets.sieve(whole, this_len, first);
                let segment = &mut whole[..this_len];
                if !sieve_directly(segment, first, bands.bucket_top + 1, stop) {
                    break 'windows;
                }
                correct_squares(segment, first);
                read_out(segment, first, tally);
                first += this_len as u64;
                tally.done = first;
                on_progress(first);
                if first < end && stop.load(Ordering::Relaxed) {
                    break 'windows;
                }
            }
            window_first = first;
        }
        restore(self, sums, small, window_band, wheel);
    }
}

/// Adds the pairs of every divisor from `low` up to the segment's square root, finding each
/// one's first multiple by division. Returns false when stopped part-way.
#[inline(never)]
fn sieve_directly<S: Accumulator>(
    segment: &mut [S],
    first: u64,
    low: u64,
    stop: &AtomicBool,
) -> bool {
    let last = first + (segment.len() as u64 - 1);
    let high = isqrt(last);
    let mut d = low;
    while d <= high {
        let chunk_end = high.min(d + DIVISIONS_PER_STOP_CHECK - 1);
        for divisor in d..=chunk_end {
            let (offset, mut add) = first_hit(first, divisor);
            let mut offset = offset as usize;
            while let Some(sum) = segment.get_mut(offset) {
                sum.add(add);
                offset += divisor as usize;
                add += 1;
            }
        }
        d = chunk_end + 1;
        if d <= high && stop.load(Ordering::Relaxed) {
            return false;
        }
    }
    true
}

/// Adds the segment's sums (starting at `first`) to the checksum and records its perfect
/// numbers. Eight numbers at a time, without a branch per number, so that it vectorises.
fn read_out<S: Accumulator>(segment: &[S], first: u64, tally: &mut BlockTally) {
    const LANES: usize = 8;
    let mut checksum = tally.checksum;
    let mut chunks = segment.chunks_exact(LANES);
    let mut n = first;
    for chunk in &mut chunks {
        let mut any = false;
        for (sum, n) in chunk.iter().zip(n..) {
            checksum = checksum.wrapping_add(sum.low_bits());
            any |= sum.is(n);
        }
        if any {
            record_perfect(chunk, n, tally);
        }
        n += LANES as u64;
    }
    let rest = chunks.remainder();
    for sum in rest {
        checksum = checksum.wrapping_add(sum.low_bits());
    }
    record_perfect(rest, n, tally);
    tally.checksum = checksum;
}

/// Records the perfect numbers among `sums`, the sums of `first`, `first + 1`, ...
#[cold]
fn record_perfect<S: Accumulator>(sums: &[S], first: u64, tally: &mut BlockTally) {
    for (sum, n) in sums.iter().zip(first..) {
        if sum.is(n) && (S::EXACT || confirmed_perfect(n)) {
            tally.perfect.push(n);
        }
    }
}

/// Whether n is perfect, by trial division up to its square root: for the candidates of u32
/// sums (s(n) = n mod 2^32), which below [`COMPACT_SUMS_UP_TO`] take at most 2^20 divisions
/// and come about once in 2^32 numbers.
#[inline(never)]
fn confirmed_perfect(n: u64) -> bool {
    n >= 2 && proper_divisor_sum(n) == u128::from(n)
}

/// The wrapping sum of s(n) over `[start, end)` (1 <= start), the checksum, without sieving:
/// s(n) = 1 + sum of (d + n / d) over the divisors 2 <= d <= sqrt(n), minus d for a square
/// n = d * d (the pair (d, d) is the divisor d once). So each d from 2 to isqrt(end - 1) adds,
/// over its multiples n = k * d in the range with k >= d (k from k0 to k1), d + k: an
/// arithmetic series; minus d when its square is in the range (k0 = d). Two divisions per
/// divisor (one for those whose square is in the range).
pub(crate) fn checksum_in_closed_form(start: u64, end: u64) -> u64 {
    if start >= end {
        return 0;
    }
    // The 1 of every n >= 2.
    let mut total = end - start.max(2).min(end);
    let last = end - 1;
    for d in 2..=isqrt(last) {
        let k1 = last / d;
        let k0 = if d * d >= start { d } else { start.div_ceil(d) };
        if k0 > k1 {
            continue;
        }
        let count = u128::from(k1 - k0 + 1);
        let mut sum = count * u128::from(d) + (u128::from(k0) + u128::from(k1)) * count / 2;
        if k0 == d {
            sum -= u128::from(d);
        }
        // Truncation is the definition: the checksum is mod 2^64.
        total = total.wrapping_add(sum as u64);
    }
    total
}

/// Every square r * r (r >= 2) in the segment got the pair (r, r) as 2r; it has r once.
fn correct_squares<S: Accumulator>(segment: &mut [S], first: u64) {
    let mut root = isqrt(first - 1) + 1;
    while let Some(square) = root.checked_mul(root) {
        let Some(sum) = segment.get_mut((square - first) as usize) else {
            break;
        };
        if root >= 2 {
            sum.subtract(root);
        }
        root += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `[start, end)` with u128 (`wide`) or u64 sums, in segments of 2^15.
    fn sieve_range(start: u64, end: u64, wide: bool) -> BlockTally {
        let mut workspace = SieveWorkspace::new();
        let mut tally = BlockTally {
            done: start,
            ..BlockTally::default()
        };
        let never = AtomicBool::new(false);
        let layout = Layout::NARROW;
        if wide {
            workspace.scan_block_with(start, end, layout, &never, &mut |_| {}, &mut tally, |w| {
                &mut w.wide
            });
        } else {
            workspace.scan_block_with(start, end, layout, &never, &mut |_| {}, &mut tally, |w| {
                &mut w.narrow
            });
        }
        tally
    }

    /// `[start, end)` with u32 sums, stopped after `segments` segments (if given).
    fn sieve_compact(start: u64, end: u64, segments: Option<u64>) -> BlockTally {
        let mut workspace = SieveWorkspace::new();
        let mut tally = BlockTally {
            done: start,
            ..BlockTally::default()
        };
        let stop = AtomicBool::new(false);
        let mut seen = 0;
        let mut on_progress = |_| {
            seen += 1;
            if Some(seen) == segments {
                stop.store(true, Ordering::Relaxed);
            }
        };
        workspace.scan_block_compact(start, end, &stop, &mut on_progress, &mut tally);
        tally
    }

    /// The u32 sums' result for `[start, end)` is the u64 sums' one (checksum, perfect
    /// numbers, end); also when stopped after 1 and 2 segments. Returns the u32 result.
    fn compact_agrees(start: u64, end: u64) -> BlockTally {
        let compact = sieve_compact(start, end, None);
        let narrow = sieve_range(start, end, false);
        assert_eq!(compact.done, end, "[{start}, {end})");
        assert_eq!(compact.checksum, narrow.checksum, "[{start}, {end})");
        assert_eq!(compact.perfect, narrow.perfect, "[{start}, {end})");
        for segments in [1, 2] {
            let stopped = sieve_compact(start, end, Some(segments));
            let prefix = sieve_range(start, stopped.done, false);
            let segment = 1 << Layout::COMPACT.log2_segment_len;
            assert_eq!(
                stopped.done,
                end.min(start + segments * segment),
                "[{start}, {end}) stopped"
            );
            assert_eq!(
                stopped.checksum, prefix.checksum,
                "[{start}, {end}) stopped"
            );
            assert_eq!(stopped.perfect, prefix.perfect, "[{start}, {end}) stopped");
        }
        compact
    }

    #[test]
    fn compact_sums_match_trial_division_from_1() {
        let tally = sieve_compact(1, 10_000, None);
        assert_eq!(tally.checksum, 32_236_803);
        assert_eq!(tally.perfect, [6, 28, 496, 8128]);
        assert_eq!(tally.done, 10_000);
        for end in [2, 3, 7, 29, 1 << 17, (1 << 17) + 1, 3 << 17] {
            compact_agrees(1, end);
        }
    }

    #[test]
    fn compact_and_u64_sums_agree_near_each_magnitude() {
        let segment = 1u64 << Layout::COMPACT.log2_segment_len;
        for start in [
            999_000,
            1_000_000,
            999_999_999 - 12_345,
            1_000_000_000,
            999_999_999_999 - 777,
            1_000_000_000_000,
            COMPACT_SUMS_UP_TO - 5 * segment - 3,
        ] {
            // Blocks of one number, of part of a segment, and of several ending mid-segment;
            // the block edges at start and end are what differ.
            for len in [1, 100, segment - 1, segment, segment + 1, 4 * segment + 777] {
                let end = (start + len).min(COMPACT_SUMS_UP_TO);
                compact_agrees(start, end);
            }
        }
        // Window divisors up to 2^40's (2^20), over several windows, the last one partial; and
        // a block of exactly two windows.
        let window = 1u64 << Layout::COMPACT.log2_window_len;
        let start = COMPACT_SUMS_UP_TO - 2 * window - 3 * segment - 11;
        let bands = Bands::new(start, COMPACT_SUMS_UP_TO);
        assert_eq!(bands.log2_segment_len, Layout::COMPACT.log2_segment_len);
        assert_eq!(bands.window_top, (1 << 20) - 1);
        compact_agrees(start, COMPACT_SUMS_UP_TO);
        compact_agrees(1_000_000_000_000, 1_000_000_000_000 + 2 * window);
    }

    #[test]
    fn compact_sums_at_squares() {
        // Blocks starting at, just after and ending just after a square; squares of divisors
        // of each band (tiny, small, bucketed) and at the band edges.
        let segment = 1u64 << Layout::COMPACT.log2_segment_len;
        for root in [
            2,
            3,
            1024,
            1025,
            segment - 1,
            segment,
            segment + 1,
            2 * segment,
            1_000_000,
        ] {
            let square = root * root;
            for (start, end) in [
                (square, square + 1),
                (square, square + 3 * segment),
                (square + 1, square + 2 * segment),
                (square.saturating_sub(2 * segment).max(1), square + 1),
                (square.saturating_sub(2 * segment).max(1), square + segment),
            ] {
                compact_agrees(start, end);
            }
        }
    }

    #[test]
    fn compact_sums_find_the_first_seven_perfect_numbers() {
        let segment = 1u64 << Layout::COMPACT.log2_segment_len;
        assert_eq!(compact_agrees(1, 3 * segment).perfect, [6, 28, 496, 8128]);
        for perfect in [33_550_336, 8_589_869_056, 137_438_691_328] {
            for (start, end) in [
                (perfect, perfect + 1),
                (perfect - segment, perfect + 2 * segment),
                (perfect - 3 * segment - 1, perfect + 1),
            ] {
                assert_eq!(compact_agrees(start, end).perfect, [perfect]);
            }
        }
    }

    #[test]
    fn false_candidates_are_rejected() {
        // A prime p = 1 mod 2^32 has s(p) = 1 = p mod 2^32: a u32 sum's candidate.
        let prime = (1u64..)
            .map(|k| (k << 32) + 1)
            .find(|&n| proper_divisor_sum(n) == 1)
            .unwrap_or(0);
        assert!(prime > 1 << 32 && prime < COMPACT_SUMS_UP_TO);
        assert!(1u32.is(prime));
        assert!(!confirmed_perfect(prime));
        assert!(confirmed_perfect(8_589_869_056));
        assert!(!confirmed_perfect(1));
        let segment = 1u64 << Layout::COMPACT.log2_segment_len;
        for (start, end) in [(prime, prime + 1), (prime - 5, prime + 3 * segment)] {
            assert!(compact_agrees(start, end).perfect.is_empty());
        }
    }

    #[test]
    fn closed_form_checksum_matches_trial_division() {
        for (start, end) in [
            (1, 1),
            (1, 2),
            (1, 3),
            (2, 5),
            (1, 10_000),
            (4, 5),
            (99, 101),
            (1_000_000, 1_003_000),
            (999_999_999_000, 1_000_000_000_100),
        ] {
            let expected = (start..end).fold(0u64, |total, n| {
                total.wrapping_add(proper_divisor_sum(n) as u64)
            });
            assert_eq!(
                checksum_in_closed_form(start, end),
                expected,
                "[{start}, {end})"
            );
        }
        // Near 2^50, where the series' terms need more than 64 bits before the truncation.
        let (start, end) = ((1 << 50) - 3, (1 << 50) + 3);
        let expected = (start..end).fold(0u64, |total, n| {
            total.wrapping_add(proper_divisor_sum(n) as u64)
        });
        assert_eq!(checksum_in_closed_form(start, end), expected);
    }

    /// A disagreement between the u32 sums and the closed form is a bug: debug builds stop on
    /// it; release builds sieve the part done again with u64 sums.
    #[test]
    #[cfg_attr(debug_assertions, should_panic(expected = "u32 sums of"))]
    fn a_disagreeing_u32_total_falls_back_to_u64_sums() {
        let (start, end) = (999_999_000_000, 999_999_000_000 + (5 << 17) + 7);
        let mut workspace = SieveWorkspace::new();
        let mut tally = BlockTally {
            done: start,
            checksum: 12345,
            perfect: vec![28],
        };
        let never = AtomicBool::new(false);
        workspace.scan_block_with(
            start,
            end,
            Layout::COMPACT,
            &never,
            &mut |_| {},
            &mut tally,
            |w| &mut w.compact,
        );
        tally.perfect.push(496);
        let wrong = (tally.checksum as u32) ^ 1;
        workspace.settle_compact(start, wrong, 12345, 1, &mut tally);
        let narrow = sieve_range(start, end, false);
        assert_eq!(tally.done, end);
        assert_eq!(tally.checksum, narrow.checksum.wrapping_add(12345));
        assert_eq!(tally.perfect, [28]);
    }

    #[test]
    fn small_range_matches_trial_division() {
        let tally = sieve_range(1, 10_000, false);
        assert_eq!(tally.checksum, 32_236_803);
        assert_eq!(tally.perfect, [6, 28, 496, 8128]);
        assert_eq!(tally.done, 10_000);
    }

    #[test]
    fn u64_and_u128_sums_agree_where_both_are_exact() {
        for (start, end) in [(1, 70_000), (999_000_000_000, 999_000_300_000)] {
            let narrow = sieve_range(start, end, false);
            let wide = sieve_range(start, end, true);
            assert_eq!(narrow.checksum, wide.checksum);
            assert_eq!(narrow.perfect, wide.perfect);
        }
    }

    #[test]
    fn wheel_tables_are_the_pairs_of_its_divisors() {
        let mut wheel = Wheel::default();
        for top in [0, 1, 2, 7, 10, 840, TINY_DIVISOR_LIMIT] {
            wheel.build(top);
            let start = (top * top).max(1) + 12_345;
            let mut fill = WheelFill::<u64>::default();
            fill.reset(&wheel, start);
            let mut segment = vec![0u64; 3 * WHEEL_PERIOD as usize + 17];
            fill.fill(&mut segment[..100]);
            fill.fill(&mut segment[100..]);
            for (n, &sum) in (start..).zip(&segment) {
                let pairs: u64 = (2..=top)
                    .filter(|&d| WHEEL_PERIOD.is_multiple_of(d) && n.is_multiple_of(d))
                    .map(|d| d + n / d)
                    .sum();
                assert_eq!(sum, 1 + pairs, "top {top}, n {n}");
            }
        }
    }

    #[test]
    fn wheel_sums_agree_with_sums_without_it() {
        // u64 sums use the wheel, u128 sums do not. Starts around the squares of wheel
        // divisors (where the wheel gains one), from the first block that has one.
        for start in [
            4, 5, 8, 9, 10, 24, 25, 35, 36, 48, 49, 400, 1000, 7056, 705_600, 705_601,
        ] {
            for len in [1, 3, 2520, 2521, 70_000] {
                let narrow = sieve_range(start, start + len, false);
                let wide = sieve_range(start, start + len, true);
                assert_eq!(narrow.checksum, wide.checksum, "[{start}, +{len})");
                assert_eq!(narrow.perfect, wide.perfect, "[{start}, +{len})");
            }
        }
    }

    /// `[start, end)` sieved as windows of at most one segment: every divisor past the small
    /// band is then found directly, none bucketed.
    fn sieve_in_windows(start: u64, end: u64) -> BlockTally {
        let mut joined = BlockTally {
            done: start,
            ..BlockTally::default()
        };
        while joined.done < end {
            let window_end = end.min(joined.done + (1 << LOG2_SEGMENT_LEN) - 1);
            let part = sieve_range(joined.done, window_end, false);
            joined.checksum = joined.checksum.wrapping_add(part.checksum);
            joined.perfect.extend(part.perfect);
            joined.done = window_end;
        }
        joined
    }

    #[test]
    fn bucket_groups_agree_with_direct_sieving() {
        let segment = 1u64 << LOG2_SEGMENT_LEN;
        // Near 1.5 * 10^12 the divisors reach 1.22 * 10^6: every group 1..GROUPS, and group 0
        // (d of 2^20 and more); near 2 * 10^9, group 1 only, and the ring (4 slots) wraps
        // dozens of times; near 2^30, the first bucketed divisors become active inside the
        // block. Blocks start and end mid-segment.
        for (start, segments) in [
            (1_500_000_000_000 - 12_345, 14),
            (2_000_000_000, 150),
            (1_073_000_000, 40),
        ] {
            let end = start + segments * segment + 777;
            let bands = Bands::with_layout(start, end, Layout::NARROW);
            assert!(bands.bucket_top > bands.small_top, "{start}: buckets used");
            let whole = sieve_range(start, end, false);
            let windows = sieve_in_windows(start, end);
            assert_eq!(whole.checksum, windows.checksum, "{start}");
            assert_eq!(whole.perfect, windows.perfect, "{start}");
            assert_eq!(whole.done, end);
        }
    }

    #[test]
    fn divisors_at_group_edges() {
        // Blocks whose largest divisors sit just below and above the edges between groups
        // (multiples of the segment length) and at the edge to group 0.
        let segment = 1u64 << LOG2_SEGMENT_LEN;
        for edge in [2 * segment, 3 * segment, GROUPS as u64 * segment] {
            for root in [edge - 1, edge, edge + 1] {
                let start = root * root - 3 * segment;
                let end = root * root + 3 * segment + 5;
                let whole = sieve_range(start, end, false);
                assert_eq!(
                    whole.checksum,
                    sieve_in_windows(start, end).checksum,
                    "{root}"
                );
            }
        }
    }

    #[test]
    fn perfect_numbers_in_and_after_the_eight_number_chunks() {
        // 8128 as the first, a middle and the last number of a chunk, and in the remainder.
        for (start, end) in [
            (8128, 8140),
            (8125, 8140),
            (8121, 8129),
            (8120, 8129),
            (8128, 8129),
        ] {
            let tally = sieve_range(start, end, false);
            assert_eq!(tally.perfect, [8128], "[{start}, {end})");
            assert_eq!(sieve_range(start, end, true).perfect, [8128]);
        }
        assert_eq!(sieve_range(1, 100, false).perfect, [6, 28]);
    }

    #[test]
    fn bands_split_as_documented() {
        let near_a_trillion = Bands::new(1_000_000_000_000, 1_000_100_000_000);
        assert_eq!(near_a_trillion.max_divisor, 1_000_049);
        assert_eq!(
            near_a_trillion.small_top,
            1 << Layout::COMPACT.log2_segment_len
        );
        assert_eq!(near_a_trillion.window_top, 1_000_049);
        assert_eq!(near_a_trillion.bucket_top, 1_000_049);
        let narrow = Bands::with_layout(1_000_000_000_000, 1_000_100_000_000, Layout::NARROW);
        assert_eq!(narrow.small_top, 1 << LOG2_SEGMENT_LEN);
        assert_eq!(narrow.bucket_top, 1_000_049);
        assert_eq!(narrow.window_top, 1 << LOG2_SEGMENT_LEN);
        let one_segment = Bands::new(1_000_000_000_000, 1_000_000_000_100);
        assert_eq!(one_segment.window_top, 1_000_000);
        let narrow_segment =
            Bands::with_layout(1_000_000_000_000, 1_000_000_000_100, Layout::NARROW);
        assert_eq!(narrow_segment.bucket_top, 1 << LOG2_SEGMENT_LEN);
        let past_compact = Bands::new(COMPACT_SUMS_UP_TO, COMPACT_SUMS_UP_TO + (1 << 26));
        assert_eq!(past_compact.log2_segment_len, LOG2_SEGMENT_LEN);
        let near_the_top = Bands::new(u64::MAX - (1 << 22), u64::MAX);
        assert_eq!(near_the_top.max_divisor, u64::from(u32::MAX));
        assert_eq!(near_the_top.log2_segment_len, LOG2_WIDE_SEGMENT_LEN);
    }
}
