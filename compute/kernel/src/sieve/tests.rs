//! The sieve against trial division, band by band and at the edges of its layouts.

use std::sync::atomic::{AtomicBool, Ordering};

use super::blocks::SieveWorkspace;
use super::buckets::GROUPS;
use super::readout::*;
use super::sums::*;
use super::wheel::*;
use super::*;
use crate::proper_divisor_sum;
use crate::tally::BlockTally;

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
    let narrow_segment = Bands::with_layout(1_000_000_000_000, 1_000_000_000_100, Layout::NARROW);
    assert_eq!(narrow_segment.bucket_top, 1 << LOG2_SEGMENT_LEN);
    let past_compact = Bands::new(COMPACT_SUMS_UP_TO, COMPACT_SUMS_UP_TO + (1 << 26));
    assert_eq!(past_compact.log2_segment_len, LOG2_SEGMENT_LEN);
    let near_the_top = Bands::new(u64::MAX - (1 << 22), u64::MAX);
    assert_eq!(near_the_top.max_divisor, u64::from(u32::MAX));
    assert_eq!(near_the_top.log2_segment_len, LOG2_WIDE_SEGMENT_LEN);
}
