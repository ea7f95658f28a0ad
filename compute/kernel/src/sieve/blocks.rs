//! A block's sweep: the per-thread workspace that runs every band over a block's segments.

#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicBool, Ordering};

use super::buckets::Buckets;
use super::direct::sieve_directly;
use super::readout::{checksum_in_closed_form, correct_squares, read_out};
use super::small::SmallDivisors;
use super::sums::Accumulator;
use super::wheel::{Wheel, WheelFill};
use super::{
    Bands, Layout, COMPACT_SUMS_UP_TO, EXACT_IN_U64_BELOW, LOG2_COMPACT_SEGMENT_LEN,
    LOG2_COMPACT_WINDOW_LEN, LOG2_SEGMENT_LEN, LOG2_WIDE_SEGMENT_LEN, MAX_BLOCK_LEN,
    TINY_DIVISOR_LIMIT, TINY_SEGMENT_LEN,
};
use crate::tally::BlockTally;

/// Per-thread sieve state, reused across blocks so the scan loop does not allocate.
#[derive(Default)]
pub(crate) struct SieveWorkspace {
    pub(super) compact: Vec<u32>,
    pub(super) narrow: Vec<u64>,
    pub(super) wide: Vec<u128>,
    tiny: SmallDivisors<u64>,
    wheel: Wheel,
    pub(super) wheel_compact: WheelFill<u32>,
    pub(super) wheel_narrow: WheelFill<u64>,
    pub(super) wheel_wide: WheelFill<u128>,
    pub(super) small: SmallDivisors<u64>,
    pub(super) small_compact: SmallDivisors<u32>,
    pub(super) window_compact: SmallDivisors<u32>,
    pub(super) window_wide: SmallDivisors<u64>,
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
    pub(super) fn scan_block_compact(
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
    pub(super) fn settle_compact(
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
    pub(super) fn scan_block_with<S: Accumulator>(
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
