//! xmlwire against quick-xml on ~1 MiB of sigma protocol messages, whole and in random chunks.
//!
//! Input: a deterministic mix (fixed seed) of hello, request, assign, progress, result (with
//! perfect children), ack, error (with references) and status documents, separated by
//! newlines. Every variant reads every element name, every attribute value (resolved), and
//! every text, and asserts the message count inside the timed closure.
//!
//! * `xmlwire/whole`: the buffer fed at once into a new `Reader`.
//! * `xmlwire/chunked`: fed in random 1..4096-byte chunks (fixed seed), messages taken out
//!   after each chunk.
//! * `quick-xml/whole`: `Reader::from_reader(&[u8])`, attributes with `with_checks(false)`,
//!   values through `normalized_value`, text through `xml10_content`.
//! * `quick-xml/chunked`: the same through a `BufRead` that hands out the same chunk sizes.
//!
//! After the criterion groups, a summary measures each variant's median over 15 runs and prints
//! MB/s and the xmlwire/quick-xml ratios, since criterion prints no ratios.

use std::hint::black_box;
use std::io::BufRead;
use std::time::Duration;

use criterion::{criterion_group, Criterion, Throughput};
use quick_xml::events::Event;
use quick_xml::XmlVersion;
use xmlwire::{Limits, Reader, Token, XmlStr};

const TARGET_BYTES: usize = 1 << 20;

/// xorshift64*: a tiny deterministic PRNG, so the input and the chunking are fixed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The input and how many messages it holds.
struct Input {
    bytes: Vec<u8>,
    messages: usize,
    chunks: Vec<usize>,
}

fn build_input() -> Input {
    let mut rng = Rng(0x5167_4d41);
    let mut out = String::with_capacity(TARGET_BYTES + 4096);
    let mut messages = 0;
    let mut lease = 1u64;
    while out.len() < TARGET_BYTES {
        let lo = 1_000_000_000 + rng.below(1 << 40);
        let hi = lo + 12_000_000;
        match rng.below(100) {
            0..=29 => out.push_str(&format!(
                "<progress lease=\"{lease}\" done=\"{}\"/>",
                lo + rng.below(12_000_000)
            )),
            30..=44 => out.push_str("<request/>"),
            45..=59 => {
                lease += 1;
                out.push_str(&format!(
                    "<assign lease=\"{lease}\" lo=\"{lo}\" hi=\"{hi}\" deadline-ms=\"45000\"/>"
                ))
            }
            60..=74 => {
                out.push_str(&format!(
                    "<result lease=\"{lease}\" lo=\"{lo}\" hi=\"{hi}\" elapsed-ms=\"{}\" \
                     checksum=\"{}\">",
                    14_000 + rng.below(2000),
                    rng.next()
                ));
                for _ in 0..rng.below(3) {
                    out.push_str("<perfect n=\"8589869056\"/>");
                }
                out.push_str("</result>");
            }
            75..=89 => out.push_str(&format!("<ack lease=\"{lease}\"/>")),
            90..=94 => out.push_str(&format!(
                "<hello version=\"1\" host=\"node-{:02}.lab\" pid=\"{}\" threads=\"8\" \
                 algorithm=\"sieve\" ops-per-sec=\"{}\"/>",
                rng.below(64),
                rng.below(65536),
                800_000_000 + rng.below(100_000_000)
            )),
            95..=97 => out.push_str(
                "<error code=\"bad-message\" message=\"a &amp; b &lt; c, &quot;quoted&quot; \
                 &#x2013; see &lt;assign&gt;\"/>",
            ),
            _ => {
                out.push_str("<status tested=\"123456789012\" frontier=\"123400000000\">\n");
                for id in 0..4 {
                    out.push_str(&format!(
                        "  <compute id=\"{id}\" host=\"node-{id:02}.lab\" rate=\"{}\" \
                         lease=\"{lease}\">busy &amp; well</compute>\n",
                        rng.below(1 << 30)
                    ));
                }
                out.push_str("  <perfect n=\"6\"/><perfect n=\"28\"/><perfect n=\"496\"/>\n");
                out.push_str("</status>");
            }
        }
        out.push('\n');
        messages += 1;
    }
    let mut chunks = Vec::new();
    let mut covered = 0;
    while covered < out.len() {
        let n = 1 + rng.below(4096) as usize;
        chunks.push(n);
        covered += n;
    }
    Input {
        bytes: out.into_bytes(),
        messages,
        chunks,
    }
}

/// What a variant computes from the messages, so nothing is optimized away.
#[derive(Default)]
struct Tally {
    messages: usize,
    sum: usize,
}

fn limits() -> Limits {
    Limits {
        max_message_bytes: 1 << 20,
        ..Limits::default()
    }
}

/// Uses every token of one frame: names, resolved attribute values, resolved text.
fn use_frame(frame: &xmlwire::Frame<'_>, scratch: &mut String, tally: &mut Tally) {
    for token in frame.tokens {
        match *token {
            // Names are compared as bytes, as quick-xml's are.
            Token::ElementStart { name } => tally.sum += frame.slice(name).len(),
            Token::Attribute { name, value } => {
                tally.sum += frame.slice(name).len();
                tally.sum += resolved_len(XmlStr::Raw(frame.str(value)), scratch);
            }
            Token::Text { raw } => tally.sum += resolved_len(XmlStr::Raw(frame.str(raw)), scratch),
            Token::CData { text } => tally.sum += frame.str(text).len(),
            _ => {}
        }
    }
    tally.messages += 1;
}

fn resolved_len(text: XmlStr<'_>, scratch: &mut String) -> usize {
    match text.as_plain() {
        Some(plain) => plain.len(),
        None => {
            scratch.clear();
            text.unescape_into(scratch);
            scratch.len()
        }
    }
}

fn xmlwire_whole(input: &Input) -> Tally {
    let mut tally = Tally::default();
    let mut scratch = String::new();
    let mut reader = Reader::new(limits());
    reader.feed(&input.bytes).unwrap();
    while let Some(frame) = reader.next_message().unwrap() {
        use_frame(&frame, &mut scratch, &mut tally);
    }
    reader.finish().unwrap();
    tally
}

fn xmlwire_chunked(input: &Input) -> Tally {
    let mut tally = Tally::default();
    let mut scratch = String::new();
    let mut reader = Reader::new(limits());
    let mut rest = &input.bytes[..];
    for &n in &input.chunks {
        let (chunk, after) = rest.split_at(n.min(rest.len()));
        rest = after;
        reader.feed(chunk).unwrap();
        while let Some(frame) = reader.next_message().unwrap() {
            use_frame(&frame, &mut scratch, &mut tally);
        }
    }
    reader.finish().unwrap();
    tally
}

/// Uses one quick-xml event as `use_frame` uses tokens.
fn use_event(event: Event<'_>, tally: &mut Tally) {
    match event {
        Event::Start(e) | Event::Empty(e) => {
            tally.sum += e.name().as_ref().len();
            for attribute in e.attributes().with_checks(false) {
                let attribute = attribute.unwrap();
                tally.sum += attribute.key.as_ref().len();
                tally.sum += attribute
                    .normalized_value(XmlVersion::Implicit1_0)
                    .unwrap()
                    .len();
            }
        }
        Event::Text(e) => tally.sum += e.xml10_content().len(),
        Event::GeneralRef(e) => tally.sum += e.len(),
        Event::CData(e) => tally.sum += e.len(),
        _ => {}
    }
}

/// Runs `next` until it returns false, using each event it hands over; counts a message when
/// the depth returns to 0.
fn quick_xml_loop<F>(mut next: F) -> Tally
where
    F: FnMut(&mut dyn FnMut(Event<'_>)) -> bool,
{
    let mut tally = Tally::default();
    let mut depth = 0usize;
    while next(&mut |event| {
        let ends_message = match &event {
            Event::Start(_) => {
                depth += 1;
                false
            }
            Event::End(_) => {
                depth -= 1;
                depth == 0
            }
            Event::Empty(_) => depth == 0,
            _ => false,
        };
        use_event(event, &mut tally);
        if ends_message {
            tally.messages += 1;
        }
    }) {}
    tally
}

fn quick_xml_whole(input: &Input) -> Tally {
    let mut reader = quick_xml::Reader::from_reader(&input.bytes[..]);
    quick_xml_loop(|handle| match reader.read_event().unwrap() {
        Event::Eof => false,
        event => {
            handle(event);
            true
        }
    })
}

/// A `BufRead` over a byte slice that hands out the given chunk sizes.
struct Chunked<'a> {
    bytes: &'a [u8],
    chunks: std::slice::Iter<'a, usize>,
    available: usize,
}

impl std::io::Read for Chunked<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for Chunked<'_> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        if self.available == 0 {
            self.available = self.chunks.next().copied().unwrap_or(usize::MAX);
        }
        let n = self.available.min(self.bytes.len());
        Ok(&self.bytes[..n])
    }
    fn consume(&mut self, amount: usize) {
        self.bytes = &self.bytes[amount..];
        self.available -= amount;
    }
}

fn quick_xml_chunked(input: &Input) -> Tally {
    let source = Chunked {
        bytes: &input.bytes,
        chunks: input.chunks.iter(),
        available: 0,
    };
    let mut reader = quick_xml::Reader::from_reader(source);
    let mut buf = Vec::new();
    quick_xml_loop(|handle| {
        buf.clear();
        match reader.read_event_into(&mut buf).unwrap() {
            Event::Eof => false,
            event => {
                handle(event);
                true
            }
        }
    })
}

type Variant = (&'static str, fn(&Input) -> Tally);

const VARIANTS: [Variant; 4] = [
    ("xmlwire/whole", xmlwire_whole),
    ("xmlwire/chunked", xmlwire_chunked),
    ("quick-xml/whole", quick_xml_whole),
    ("quick-xml/chunked", quick_xml_chunked),
];

fn check(input: &Input, tally: &Tally) {
    assert_eq!(tally.messages, input.messages);
}

fn tokenize(c: &mut Criterion) {
    let input = build_input();
    // The variants must agree before they are timed.
    for (name, run) in VARIANTS {
        let tally = run(&input);
        assert_eq!(tally.messages, input.messages, "{name}");
    }
    let mut group = c.benchmark_group("tokenize");
    group.throughput(Throughput::Bytes(input.bytes.len() as u64));
    group.sample_size(20);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(3));
    for (name, run) in VARIANTS {
        group.bench_function(name, |b| {
            b.iter(|| {
                let tally = run(black_box(&input));
                check(&input, &tally);
                black_box(tally.sum)
            })
        });
    }
    group.finish();
}

/// This thread's CPU time in seconds: unlike wall time, it does not count the time other
/// processes hold the CPU, so the summary stays meaningful on a busy machine.
fn thread_cpu_seconds() -> f64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into the valid, exclusively borrowed `now`.
    let status = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    assert_eq!(status, 0, "clock_gettime");
    now.tv_sec as f64 + now.tv_nsec as f64 * 1e-9
}

/// Runs every variant once per round, `rounds` times (round-robin, so a change in the
/// machine's load hits all variants alike), and returns each variant's median seconds of
/// thread CPU time.
fn median_seconds(input: &Input, rounds: usize) -> Vec<f64> {
    let mut times = vec![Vec::with_capacity(rounds); VARIANTS.len()];
    for _ in 0..rounds {
        for (variant, &(_, run)) in VARIANTS.iter().enumerate() {
            let started = thread_cpu_seconds();
            let tally = run(black_box(input));
            times[variant].push(thread_cpu_seconds() - started);
            check(input, &tally);
            black_box(tally.sum);
        }
    }
    times
        .into_iter()
        .map(|mut runs| {
            runs.sort_by(f64::total_cmp);
            runs[runs.len() / 2]
        })
        .collect()
}

fn summary() {
    let input = build_input();
    let mb = input.bytes.len() as f64 / 1e6;
    println!(
        "\nsummary: {} bytes, {} messages, median thread CPU time of 15 runs per variant",
        input.bytes.len(),
        input.messages
    );
    median_seconds(&input, 2);
    let rates: Vec<f64> = median_seconds(&input, 15)
        .into_iter()
        .map(|seconds| mb / seconds)
        .collect();
    for ((name, _), rate) in VARIANTS.iter().zip(&rates) {
        println!("  {name:<18} {rate:8.1} MB/s");
    }
    println!(
        "  ratio xmlwire/quick-xml: whole {:.2}x (goal >= 1.2), chunked {:.2}x (goal >= 1.0)",
        rates[0] / rates[2],
        rates[1] / rates[3]
    );
}

criterion_group!(benches, tokenize);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    // `cargo test --benches` runs this with `--test`: check, but skip the timed summary.
    if !std::env::args().any(|arg| arg == "--test" || arg == "--list") {
        summary();
    }
}
