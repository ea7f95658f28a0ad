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

use crate::isqrt;

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

mod blocks;
mod buckets;
mod direct;
mod readout;
mod small;
mod sums;
#[cfg(test)]
mod tests;
mod wheel;

pub(crate) use blocks::SieveWorkspace;
pub(crate) use wheel::Wheel;
