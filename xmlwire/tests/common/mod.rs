//! Helpers shared by the integration tests: feeding a reader and rendering its tokens as
//! strings, so expectations read like the XML they describe.
#![allow(dead_code)]

use xmlwire::{Error, Frame, Limits, Reader, Token};

/// One token rendered as words: `["start", "range"]`, `["attr", "lo", "10"]`, `["open"]`,
/// `["empty"]`, `["close", "range"]`, `["text", "raw text"]`, `["cdata", "text"]`.
pub type Rendered = Vec<String>;

pub fn render_token(frame: &Frame<'_>, token: &Token) -> Rendered {
    let words: Vec<&str> = match *token {
        Token::ElementStart { name } => vec!["start", frame.str(name)],
        Token::Attribute { name, value } => vec!["attr", frame.str(name), frame.str(value)],
        Token::ElementOpen => vec!["open"],
        Token::ElementEmpty => vec!["empty"],
        Token::ElementClose { name } => vec!["close", frame.str(name)],
        Token::Text { raw } => vec!["text", frame.str(raw)],
        Token::CData { text } => vec!["cdata", frame.str(text)],
    };
    words.into_iter().map(String::from).collect()
}

/// A message as the tests compare it: stream offset, bytes, rendered tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub offset: u64,
    pub bytes: Vec<u8>,
    pub tokens: Vec<Rendered>,
}

pub fn message(frame: &Frame<'_>) -> Message {
    Message {
        offset: frame.offset,
        bytes: frame.bytes.to_vec(),
        tokens: frame
            .tokens
            .iter()
            .map(|t| render_token(frame, t))
            .collect(),
    }
}

/// Everything a stream produced: its messages, then how it ended (`Ok` if cleanly, the error
/// otherwise, including `finish`'s).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub messages: Vec<Message>,
    pub end: Result<(), Error>,
}

/// Takes every complete message out of `reader`; `Err` stops.
pub fn drain(reader: &mut Reader, messages: &mut Vec<Message>) -> Result<(), Error> {
    while let Some(frame) = reader.next_message()? {
        messages.push(message(&frame));
    }
    Ok(())
}

/// Feeds `input` cut at the given lengths (the rest in a last chunk), draining after each.
pub fn run_chunked(input: &[u8], chunk_lengths: &[usize], limits: Limits) -> Outcome {
    let mut reader = Reader::new(limits);
    let mut messages = Vec::new();
    let mut rest = input;
    let mut lengths = chunk_lengths.iter();
    let end = loop {
        let take = match lengths.next() {
            Some(&n) => n.min(rest.len()),
            None => rest.len(),
        };
        let (chunk, after) = rest.split_at(take);
        rest = after;
        if let Err(e) = reader
            .feed(chunk)
            .and_then(|()| drain(&mut reader, &mut messages))
        {
            break Err(e);
        }
        if rest.is_empty() {
            break reader.finish();
        }
    };
    Outcome { messages, end }
}

pub fn run_whole(input: &[u8]) -> Outcome {
    run_chunked(input, &[], Limits::default())
}

/// The tokens of the single message in `input`, or its error.
pub fn tokens_of(input: &[u8]) -> Result<Vec<Rendered>, Error> {
    let outcome = run_whole(input);
    outcome.end?;
    assert_eq!(
        outcome.messages.len(),
        1,
        "expected one message in {input:?}"
    );
    Ok(outcome.messages.into_iter().next().unwrap().tokens)
}

/// Tiny deterministic PRNG (xorshift64*), for tests that want reproducible randomness without a
/// dependency.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}
