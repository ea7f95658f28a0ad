//! Arbitrary bytes into a `Reader`, fed in chunks the input chooses: it must never panic, every
//! call must make progress, and every frame must be well formed (spans in bounds and valid
//! UTF-8, references resolvable the same way by the iterator and into a buffer).
#![no_main]

use libfuzzer_sys::fuzz_target;
use xmlwire::{Frame, Limits, Reader, Token, XmlStr};

/// Small limits, so that every limit is reached often.
const LIMITS: Limits = Limits {
    max_message_bytes: 2048,
    max_depth: 6,
    max_attributes: 6,
    max_name_bytes: 12,
    max_tokens: 200,
};

fuzz_target!(|data: &[u8]| {
    // The first byte picks the chunk size, the rest is the stream.
    let Some((&chunk_choice, stream)) = data.split_first() else {
        return;
    };
    let chunk = 1 + usize::from(chunk_choice % 64);
    let mut reader = Reader::new(if chunk_choice >= 128 {
        LIMITS
    } else {
        Limits::DEFAULT
    });
    let mut scratch = String::new();
    // Every frame ends after the previous one: the progress guard.
    let mut last_end = 0u64;
    let mut failed = false;
    'feed: for piece in stream.chunks(chunk) {
        if reader.feed(piece).is_err() {
            failed = true;
            break;
        }
        // A reader holds at most (fed bytes / 3) messages ("<a/>" is the smallest), so more
        // iterations than bytes fed means it is looping.
        for _ in 0..=reader.stream_len() {
            match reader.next_message() {
                Ok(Some(frame)) => {
                    assert!(frame.offset >= last_end, "frame before the previous one");
                    last_end = frame.offset + frame.bytes.len() as u64;
                    assert!(last_end <= stream.len() as u64, "frame past the stream");
                    check_frame(&frame, &mut scratch);
                }
                Ok(None) => continue 'feed,
                Err(error) => {
                    assert!(
                        error.offset <= stream.len() as u64,
                        "error offset past the stream"
                    );
                    failed = true;
                    break 'feed;
                }
            }
        }
        panic!("next_message made no progress");
    }
    let finished = reader.finish();
    if failed {
        assert!(finished.is_err(), "a failed reader stays failed");
    }
});

fn check_frame(frame: &Frame<'_>, scratch: &mut String) {
    assert!(frame.bytes.first() == Some(&b'<') && frame.bytes.last() == Some(&b'>'));
    assert!(!frame.tokens.is_empty());
    let span_text = |span: xmlwire::Span| {
        let text = frame.str(span);
        assert!(span.start <= span.end && span.end as usize <= frame.bytes.len());
        assert_eq!(
            text.len(),
            (span.end - span.start) as usize,
            "span not valid UTF-8"
        );
        text
    };
    let mut depth = 0usize;
    for token in frame.tokens {
        match *token {
            Token::ElementStart { name } | Token::ElementClose { name } => {
                assert!(!span_text(name).is_empty());
            }
            Token::Attribute { name, value } => {
                assert!(!span_text(name).is_empty());
                check_resolving(XmlStr::Raw(span_text(value)), scratch);
            }
            Token::Text { raw } => check_resolving(XmlStr::Raw(span_text(raw)), scratch),
            Token::CData { text } => {
                span_text(text);
            }
            Token::ElementOpen => depth += 1,
            Token::ElementEmpty => {}
        }
        if let Token::ElementClose { .. } = token {
            depth = depth.checked_sub(1).expect("close without open");
        }
    }
    assert_eq!(depth, 0, "a frame closes what it opens");
}

fn check_resolving(text: XmlStr<'_>, scratch: &mut String) {
    scratch.clear();
    text.unescape_into(scratch);
    assert!(scratch.chars().eq(text.chars()));
    assert!(text == XmlStr::Plain(scratch));
    if let Some(plain) = text.as_plain() {
        assert_eq!(plain, scratch);
    }
}
