//! The worker conversation allocates nothing per message: a counting global allocator (this
//! test binary's own) watches a stream of mixed worker messages go through `Reader`, `decode`,
//! and the encoding of a reply into a reused `Vec`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

use xmlwire::protocol::{
    decode, Ack, Algorithm, Assign, Hello, Hex, Message, PerfectList, Progress, Wait, Welcome,
    WorkResult,
};
use xmlwire::{Limits, Reader, XmlStr};

/// Counts allocations made on threads that asked for it (the test harness's own threads
/// allocate as they please).
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

fn count() {
    if COUNTING.try_with(Cell::get).unwrap_or(false) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so `System`'s
// guarantees are ours; counting touches only an atomic and a const-initialized thread local
// (which neither allocates nor has a destructor).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: forwarded as received.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: forwarded as received.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: forwarded as received.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as received.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made by `f` on this thread.
fn allocations_in(f: impl FnOnce()) -> u64 {
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    ALLOCATIONS.load(Ordering::Relaxed) - before
}

const SESSION: &str = "5e5510aa5e5510aa";

/// One round of a worker's conversation, both directions: hello, request, assign, progress,
/// result (with perfect numbers), ack.
fn round(i: u64, out: &mut Vec<u8>) {
    let lo = 1 + i * 10_000;
    let perfect: &[u64] = match i % 3 {
        0 => &[6, 28, 496, 8128],
        1 => &[33_550_336],
        _ => &[],
    };
    let perfect = PerfectList::from_slice(perfect).expect("few");
    let (lo, hi) = if perfect.is_empty() {
        (lo, lo + 10_000)
    } else {
        (1, 33_550_337)
    };
    let messages = [
        Message::Hello(Hello {
            version: 1,
            // A reference, so the host is raw text that decoding leaves unresolved.
            host: XmlStr::Plain("node-07 & co"),
            pid: 4242 + i,
            threads: 8,
            algorithm: Algorithm::Sieve,
            ops_per_sec: 812_345_678,
        }),
        Message::Request,
        Message::Assign(Assign {
            lease: i,
            lo,
            hi,
            deadline_ms: 45_000,
        }),
        Message::Progress(Progress {
            lease: i,
            done: lo + 1,
        }),
        Message::Result(WorkResult {
            lease: i,
            lo,
            hi,
            elapsed_ms: 7000,
            checksum: i.wrapping_mul(0x9e37_79b9_7f4a_7c15),
            perfect,
        }),
        Message::Ack(Ack { lease: i }),
    ];
    for message in &messages {
        message.encode(out);
        out.push(b'\n');
    }
}

/// What a peer answers to `message`, encoded into `out`.
fn reply(message: &Message<'_>, out: &mut Vec<u8>) {
    let session = Hex::new(SESSION).unwrap_or(Hex::ZERO);
    let answer = match *message {
        Message::Hello(ref hello) => Message::Welcome(Welcome {
            compute_id: hello.pid,
            target_ms: 15_000,
            session,
            nonce: session,
        }),
        Message::Request => Message::Wait(Wait { ms: 2000 }),
        Message::Assign(assign) => Message::Progress(Progress {
            lease: assign.lease,
            done: assign.lo,
        }),
        Message::Progress(progress) => Message::Ack(Ack {
            lease: progress.lease,
        }),
        Message::Result(result) => Message::Ack(Ack {
            lease: result.lease,
        }),
        // The compute's answer to an ack: the next request.
        _ => Message::Request,
    };
    answer.encode(out);
}

/// Feeds `stream` in `chunk`-byte pieces, decodes every message and encodes its reply.
/// Returns the number of messages and the sum of their perfect numbers (so nothing is
/// optimized away).
fn run(reader: &mut Reader, stream: &[u8], chunk: usize, out: &mut Vec<u8>) -> (usize, u64) {
    let mut messages = 0;
    let mut perfect_sum = 0u64;
    for piece in stream.chunks(chunk) {
        reader.feed(piece).expect("valid stream");
        while let Some(frame) = reader.next_message().expect("valid stream") {
            let message = decode(&frame).expect("valid message");
            if let Message::Result(result) = &message {
                perfect_sum += result.perfect.iter().sum::<u64>();
            }
            out.clear();
            reply(&message, out);
            black_box(&out);
            messages += 1;
        }
    }
    (messages, perfect_sum)
}

#[test]
fn worker_messages_allocate_nothing() {
    const ROUNDS: u64 = 2000;
    let mut stream = Vec::new();
    for i in 0..ROUNDS {
        round(i, &mut stream);
    }
    let mut reader = Reader::new(Limits::DEFAULT);
    let mut out = Vec::new();

    // Warm-up: the reader's buffers and `out` grow to what the stream needs.
    let (warm, _) = run(&mut reader, &stream, 1500, &mut out);
    assert_eq!(warm, 6 * ROUNDS as usize);

    let mut counted = (0, 0);
    let allocations = allocations_in(|| counted = run(&mut reader, &stream, 1500, &mut out));
    let (messages, perfect_sum) = counted;
    assert_eq!(messages, 6 * ROUNDS as usize);
    assert!(messages >= 10_000);
    // Rounds with i % 3 == 0 find 4 perfect numbers, i % 3 == 1 find one.
    let rounds_with = |rest| (0..ROUNDS).filter(|i| i % 3 == rest).count() as u64;
    let expected = rounds_with(0) * (6 + 28 + 496 + 8128) + rounds_with(1) * 33_550_336;
    assert_eq!(perfect_sum, expected);
    println!(
        "{allocations} allocations for {messages} messages ({} bytes): {:.4} per message",
        stream.len(),
        allocations as f64 / messages as f64
    );
    assert_eq!(allocations, 0, "the worker conversation must not allocate");
}

/// The counter does count: without this, a broken allocator hook would pass the test above.
#[test]
fn the_counter_counts() {
    let allocations = allocations_in(|| {
        black_box(Vec::<u8>::with_capacity(16));
    });
    assert_eq!(allocations, 1);
}
