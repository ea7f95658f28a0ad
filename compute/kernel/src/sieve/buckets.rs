//! The bucketed band: large divisors that hit a segment at most once, each waiting in the
//! bucket of the segment of its next multiple.

#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicBool, Ordering};

use super::sums::{first_hit, Accumulator};
use super::DIVISIONS_PER_STOP_CHECK;

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
pub(super) const GROUPS: usize = 32;

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
pub(super) struct Buckets {
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
    pub(super) fn reset(
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
    pub(super) fn activate<S: Accumulator>(&mut self, sums: &mut [S], first: u64) {
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
    pub(super) fn push(&mut self, n: u64, entry: Pending) {
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
    pub(super) fn sieve<S: Accumulator, const LEN: usize>(
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
