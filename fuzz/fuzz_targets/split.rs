//! Any chunking of a stream yields exactly what the whole stream yields: the same frames
//! (offsets, bytes, tokens) and the same end (error kind and offset, or a clean finish).
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use xmlwire::{Error, Limits, Reader, Token};

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    /// Chunk lengths (the rest of the stream goes in a last chunk).
    cuts: Vec<u8>,
    small_limits: bool,
    stream: &'a [u8],
}

#[derive(Debug, PartialEq)]
struct Message {
    offset: u64,
    bytes: Vec<u8>,
    tokens: Vec<Token>,
}

fn run(stream: &[u8], cuts: &[u8], limits: Limits) -> (Vec<Message>, Result<(), Error>) {
    let mut reader = Reader::new(limits);
    let mut messages = Vec::new();
    let mut rest = stream;
    let mut cuts = cuts.iter();
    let end = loop {
        let take = cuts
            .next()
            .map_or(rest.len(), |&n| usize::from(n).min(rest.len()));
        let (chunk, after) = rest.split_at(take);
        rest = after;
        let fed = reader.feed(chunk).and_then(|()| {
            while let Some(frame) = reader.next_message()? {
                messages.push(Message {
                    offset: frame.offset,
                    bytes: frame.bytes.to_vec(),
                    tokens: frame.tokens.to_vec(),
                });
            }
            Ok(())
        });
        if let Err(error) = fed {
            break Err(error);
        }
        if rest.is_empty() {
            break reader.finish();
        }
    };
    (messages, end)
}

fuzz_target!(|input: Input<'_>| {
    let limits = if input.small_limits {
        Limits {
            max_message_bytes: 512,
            max_depth: 4,
            max_attributes: 4,
            max_name_bytes: 8,
            max_tokens: 64,
        }
    } else {
        Limits::DEFAULT
    };
    let whole = run(input.stream, &[], limits);
    let chunked = run(input.stream, &input.cuts, limits);
    assert_eq!(whole, chunked);
});
