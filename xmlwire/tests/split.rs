//! Split anywhere: however a stream is cut into chunks, the reader yields exactly the frames,
//! tokens and error (kind and offset) of the whole stream.

mod common;

use common::{run_chunked, run_whole, Rng};
use proptest::prelude::*;
use xmlwire::Limits;

/// Pieces of sigma-like messages and of every construct, valid and not, to concatenate.
const FRAGMENTS: &[&str] = &[
    "<hello version=\"1\" host=\"node-07.lab\" pid=\"4242\" threads=\"8\"/>",
    "<request/>",
    "<assign lease=\"17\" lo=\"1000000000\" hi=\"1012000000\" deadline-ms=\"45000\"/>",
    "<result lease='17' lo=\"1\" hi=\"2\"><perfect n=\"8589869056\"/></result>",
    "<error code=\"bad-message\" message=\"a &amp; b &lt; c &#x1F600; &#233;\"/>",
    "<status>\n  <compute id=\"1\">ïdle &gt; <![CDATA[x]]y]]></compute>\n</status>",
    "<?xml version=\"1.0\"?>",
    "<!-- a comment - with dashes -->",
    "<?pi data??>",
    "\n  \r\n\t",
    "<a>",
    "</a>",
    "<b x='1'>",
    "</b>",
    "text",
    "&amp;",
    "&#65;",
    "é€😀",
    "]]>",
    "--",
    "<!--",
    "-->",
    "<![CDATA[",
    "]]",
    "?>",
    "/>",
    ">",
    "<",
    "&",
    "&#",
    ";",
    "\"",
    "'",
    "=",
    " ",
    "x",
    "\u{0}",
    "\u{1}",
    "\u{fffe}",
    "<!DOCTYPE a>",
    "<!x",
];

fn corpus_stream() -> impl Strategy<Value = Vec<u8>> {
    // Mostly sigma messages, sometimes anything: valid streams and streams that fail anywhere.
    let pieces = prop::collection::vec(
        prop_oneof![
            6 => (0usize..6).prop_map(|i| FRAGMENTS[i].as_bytes().to_vec()),
            3 => (0..FRAGMENTS.len()).prop_map(|i| FRAGMENTS[i].as_bytes().to_vec()),
            1 => prop::collection::vec(any::<u8>(), 0..4),
        ],
        0..24,
    );
    pieces.prop_map(|p| p.concat())
}

fn small_limits() -> Limits {
    Limits {
        max_message_bytes: 300,
        max_depth: 4,
        max_attributes: 5,
        max_name_bytes: 12,
        max_tokens: 40,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn any_chunking_matches_the_whole(
        stream in corpus_stream(),
        chunks in prop::collection::vec(1usize..40, 0..60),
    ) {
        for limits in [Limits::default(), small_limits()] {
            let whole = run_chunked(&stream, &[], limits);
            let chunked = run_chunked(&stream, &chunks, limits);
            prop_assert_eq!(&whole, &chunked);
        }
    }

    #[test]
    fn byte_by_byte_matches_the_whole(stream in corpus_stream()) {
        let whole = run_whole(&stream);
        let bytewise = run_chunked(&stream, &vec![1; stream.len()], Limits::default());
        prop_assert_eq!(whole, bytewise);
    }
}

#[test]
fn every_two_chunk_split_of_a_sample() {
    // Exhaustive over the split point for a stream with one of everything, terminators
    // included (`-|->`, `]]|>`, `?|>`, `/|>`, split UTF-8).
    let stream = FRAGMENTS[..10].concat();
    let whole = run_whole(stream.as_bytes());
    assert_eq!(whole.end, Ok(()));
    assert_eq!(whole.messages.len(), 6);
    for cut in 0..=stream.len() {
        assert_eq!(
            run_chunked(stream.as_bytes(), &[cut], Limits::default()),
            whole,
            "cut at {cut}"
        );
    }
}

#[test]
fn every_three_chunk_split_of_terminators() {
    let stream = "<a><!--x-->]<![CDATA[]]]]><?p?>\u{20ac}<b/>&amp;</a>";
    let whole = run_whole(stream.as_bytes());
    assert_eq!(whole.end, Ok(()));
    for first in 0..=stream.len() {
        for second in 0..=stream.len() - first {
            let chunked = run_chunked(stream.as_bytes(), &[first, second], Limits::default());
            assert_eq!(chunked, whole, "cuts {first}, {second}");
        }
    }
}

#[test]
fn random_chunks_over_a_long_stream() {
    let mut rng = Rng(0x5eed);
    let mut stream = Vec::new();
    while stream.len() < 200_000 {
        stream.extend(FRAGMENTS[rng.below(6) as usize].as_bytes());
        stream.extend(b"\n");
    }
    let whole = run_whole(&stream);
    assert_eq!(whole.end, Ok(()));
    let chunks: Vec<usize> = (0..stream.len())
        .map(|_| 1 + rng.below(4096) as usize)
        .collect();
    assert_eq!(run_chunked(&stream, &chunks, Limits::default()), whole);
}
