//! Golden token sequences, one construct per case, and the behaviours of the push API: every
//! prefix of a valid message needs more and never fails, several messages in one feed, limits.

mod common;

use common::{run_chunked, run_whole, tokens_of};
use xmlwire::{ErrorKind, Limits, Reader};

/// `golden!(name: input => [(words...), ...])`: the single message in `input` tokenizes to
/// exactly these tokens, whole and fed one byte at a time; and every proper prefix of it needs
/// more bytes without failing.
macro_rules! golden {
    ($($name:ident: $input:expr => [$(($($word:expr),*)),* $(,)?];)*) => {$(
        #[test]
        fn $name() {
            let input: &[u8] = $input.as_ref();
            let expected: Vec<Vec<String>> =
                vec![$(vec![$(String::from($word)),*]),*];
            assert_eq!(tokens_of(input).expect("valid input"), expected, "whole");
            let bytewise = run_chunked(input, &vec![1; input.len()], Limits::default());
            assert_eq!(bytewise.end, Ok(()), "byte by byte");
            assert_eq!(bytewise.messages.len(), 1);
            assert_eq!(bytewise.messages[0].tokens, expected, "byte by byte");
            assert_every_prefix_needs_more(input);
        }
    )*};
}

/// Feeding any proper prefix of one message yields no message and no error.
fn assert_every_prefix_needs_more(input: &[u8]) {
    let end = input
        .iter()
        .rposition(|&b| b == b'>')
        .expect("a message ends in '>'");
    for len in 0..=end {
        let mut reader = Reader::new(Limits::default());
        reader.feed(&input[..len]).unwrap();
        match reader.next_message() {
            Ok(None) => {}
            other => panic!(
                "prefix {:?}: {:?}",
                String::from_utf8_lossy(&input[..len]),
                other
            ),
        }
        // Once the element has begun, ending the stream there is an error.
        let element_begun = input.starts_with(b"<") && input[1].is_ascii_alphabetic() && len > 0;
        if element_begun {
            assert!(reader.finish().is_err(), "finish after {len} bytes");
        }
    }
}

golden! {
    empty_element: "<request/>" => [("start", "request"), ("empty")];
    empty_element_with_space: "<request />" => [("start", "request"), ("empty")];
    open_close: "<a></a>" => [("start", "a"), ("open"), ("close", "a")];
    close_with_space: "<a></a \n>" => [("start", "a"), ("open"), ("close", "a")];
    attributes_both_quotes: r#"<range lo="10" hi='20'/>"# => [
        ("start", "range"), ("attr", "lo", "10"), ("attr", "hi", "20"), ("empty")
    ];
    attribute_spacing: "<a\tx = \"1\"\r\ny\n=\n'2' ></a>" => [
        ("start", "a"), ("attr", "x", "1"), ("attr", "y", "2"), ("open"), ("close", "a")
    ];
    attribute_other_quote_inside: r#"<a x="it's" y='say "hi"'/>"# => [
        ("start", "a"), ("attr", "x", "it's"), ("attr", "y", r#"say "hi""#), ("empty")
    ];
    attribute_empty_value: r#"<a x=""/>"# => [("start", "a"), ("attr", "x", ""), ("empty")];
    attribute_gt_allowed: r#"<a x="1 > 0"/>"# => [("start", "a"), ("attr", "x", "1 > 0"), ("empty")];
    attribute_references_raw: r#"<error message="a &amp; b &lt; c &#x41;&#66;"/>"# => [
        ("start", "error"), ("attr", "message", "a &amp; b &lt; c &#x41;&#66;"), ("empty")
    ];
    names_with_punctuation: "<ns:a-b.c_d x-y.z:w='1'></ns:a-b.c_d>" => [
        ("start", "ns:a-b.c_d"), ("attr", "x-y.z:w", "1"), ("open"), ("close", "ns:a-b.c_d")
    ];
    text: "<a>hello</a>" => [("start", "a"), ("open"), ("text", "hello"), ("close", "a")];
    text_with_references: "<a>x &gt; y &amp;&amp; &quot;z&apos;</a>" => [
        ("start", "a"), ("open"), ("text", "x &gt; y &amp;&amp; &quot;z&apos;"), ("close", "a")
    ];
    text_with_lone_brackets: "<a>]] > ]x]></a>" => [
        ("start", "a"), ("open"), ("text", "]] > ]x]>"), ("close", "a")
    ];
    whitespace_between_children: "<status>\n  <compute id=\"1\"/>\n</status>" => [
        ("start", "status"), ("open"), ("text", "\n  "), ("start", "compute"),
        ("attr", "id", "1"), ("empty"), ("text", "\n"), ("close", "status")
    ];
    unicode_text_and_values: "<a v=\"é€😀\">ünï😀</a>" => [
        ("start", "a"), ("attr", "v", "é€😀"), ("open"), ("text", "ünï😀"), ("close", "a")
    ];
    cdata: "<a><![CDATA[x<y&z]]]]></a>" => [
        ("start", "a"), ("open"), ("cdata", "x<y&z]]"), ("close", "a")
    ];
    cdata_empty_and_text_around: "<a>1<![CDATA[]]>2</a>" => [
        ("start", "a"), ("open"), ("text", "1"), ("cdata", ""), ("text", "2"), ("close", "a")
    ];
    comment_skipped: "<a>x<!-- <b> & - -->y</a>" => [
        ("start", "a"), ("open"), ("text", "x"), ("text", "y"), ("close", "a")
    ];
    comment_dash_before_end: "<a><!---x- --></a>" => [("start", "a"), ("open"), ("close", "a")];
    pi_skipped: "<a><?app do ? this?></a>" => [("start", "a"), ("open"), ("close", "a")];
    declaration_skipped: "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<a/>" => [
        ("start", "a"), ("empty")
    ];
    comment_before_message: "<!-- hello -->\n<?pi?><a/>" => [("start", "a"), ("empty")];
    leading_whitespace: " \r\n\t<a/>" => [("start", "a"), ("empty")];
    nested: "<result lease=\"17\"><perfect n=\"6\"/><perfect n=\"28\"/></result>" => [
        ("start", "result"), ("attr", "lease", "17"), ("open"),
        ("start", "perfect"), ("attr", "n", "6"), ("empty"),
        ("start", "perfect"), ("attr", "n", "28"), ("empty"),
        ("close", "result")
    ];
    del_and_c1_controls_allowed: "<a>\u{7f}\u{85}</a>" => [
        ("start", "a"), ("open"), ("text", "\u{7f}\u{85}"), ("close", "a")
    ];
}

#[test]
fn several_messages_in_one_feed() {
    let input = b"<hello version=\"1\"/>\n<request/>  <ack lease=\"3\"></ack>\r\n";
    let outcome = run_whole(input);
    assert_eq!(outcome.end, Ok(()));
    let bytes: Vec<&[u8]> = outcome.messages.iter().map(|m| &m.bytes[..]).collect();
    assert_eq!(
        bytes,
        [
            &b"<hello version=\"1\"/>"[..],
            b"<request/>",
            b"<ack lease=\"3\"></ack>"
        ]
    );
    let offsets: Vec<u64> = outcome.messages.iter().map(|m| m.offset).collect();
    assert_eq!(offsets, [0, 21, 33]);
    assert_eq!(outcome.messages[2].tokens.len(), 4);
}

#[test]
fn frames_borrow_and_release() {
    // The buffer is reused: many messages through a small reader never accumulate.
    let mut reader = Reader::new(Limits::default());
    for n in 0..10_000u64 {
        let msg = format!("<progress lease=\"{n}\" done=\"{}\"/>", n * 7);
        reader.feed(msg.as_bytes()).unwrap();
        let frame = reader.next_message().unwrap().unwrap();
        assert_eq!(frame.bytes, msg.as_bytes());
        assert!(reader.next_message().unwrap().is_none());
    }
    reader.finish().unwrap();
    assert!(reader.stream_len() > 300_000);
}

#[test]
fn release_memory_only_between_messages() {
    let mut reader = Reader::new(Limits::default());
    assert!(!reader.release_memory(), "nothing allocated yet");
    reader.feed(b"<request/> <ack lease=\"1\"").unwrap();
    assert_eq!(reader.next_message().unwrap().unwrap().bytes, b"<request/>");
    assert!(reader.next_message().unwrap().is_none());
    // Half a message is pending: nothing is freed, nothing is lost.
    assert!(!reader.release_memory());
    reader.feed(b"/>\n").unwrap();
    let frame = reader.next_message().unwrap().unwrap();
    assert_eq!(
        (frame.bytes, frame.offset),
        (&b"<ack lease=\"1\"/>"[..], 11)
    );
    assert!(reader.next_message().unwrap().is_none());
    assert!(reader.release_memory());
    assert!(!reader.release_memory(), "freed already");
    // Offsets carry on after the release, for frames and errors alike (43: the name `y`).
    reader.feed(b"<request/><x></y>").unwrap();
    assert_eq!(reader.next_message().unwrap().unwrap().offset, 28);
    let error = reader.next_message().unwrap_err();
    assert_eq!(
        (error.kind, error.offset),
        (ErrorKind::MismatchedCloseTag, 43)
    );
    assert!(!reader.release_memory(), "a failed stream keeps its state");
}

#[test]
fn read_from_a_source() {
    let input = b"<a x=\"1\"/><b>text</b>".repeat(2000);
    // A source that hands out 7 bytes per read.
    struct Trickle<'a>(&'a [u8]);
    impl std::io::Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(7).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }
    let mut source = Trickle(&input);
    let mut reader = Reader::new(Limits::default());
    let mut count = 0;
    while reader.read_from(&mut source).unwrap() > 0 {
        while let Some(frame) = reader.next_message().unwrap() {
            assert!(frame.bytes == b"<a x=\"1\"/>" || frame.bytes == b"<b>text</b>");
            count += 1;
        }
    }
    reader.finish().unwrap();
    assert_eq!(count, 4000);
}

#[test]
fn a_read_that_fills_less_than_its_room_is_short() {
    let mut reader = Reader::new(Limits::default());
    assert!(!reader.last_read_was_short(), "no read yet");
    // 20 bytes into the first buffer (512 bytes): short.
    let mut small = &b"<request/><request/>"[..];
    assert_eq!(reader.read_from(&mut small).unwrap(), 20);
    assert!(reader.last_read_was_short());
    while reader.next_message().unwrap().is_some() {}
    // A source with more than the room: the read fills it, so it is not short.
    let big = b"<request/>".repeat(1000);
    let mut source = &big[..];
    let n = reader.read_from(&mut source).unwrap();
    assert!(n > 0 && n < big.len());
    assert!(!reader.last_read_was_short());
    // The end of stream (0 bytes) is short too.
    let mut empty = &b""[..];
    while reader.next_message().unwrap().is_some() {}
    assert_eq!(reader.read_from(&mut empty).unwrap(), 0);
    assert!(reader.last_read_was_short());
}

#[test]
fn read_from_stops_at_the_cap() {
    let limits = Limits {
        max_message_bytes: 100,
        ..Limits::default()
    };
    let mut reader = Reader::new(limits);
    let mut input = b"<a ".to_vec();
    input.resize(20_003, b' ');
    let mut source = &input[..];
    let error = loop {
        let n = reader.read_from(&mut source).unwrap();
        assert!(n > 0, "the error must come before the input runs out");
        if let Err(e) = reader.next_message() {
            break e;
        }
    };
    assert_eq!(error.kind, ErrorKind::MessageTooLarge);
    assert_eq!(error.offset, 100);
    // The reader stays failed.
    assert_eq!(reader.next_message().unwrap_err(), error);
    assert_eq!(reader.feed(b"<a/>").unwrap_err(), error);
    assert!(reader.read_from(&mut source).is_err());
}

#[test]
fn message_larger_than_the_limit() {
    let limits = Limits {
        max_message_bytes: 64,
        ..Limits::default()
    };
    // Exactly at the limit: fine.
    let fits = format!("<a x=\"{}\"/>", "y".repeat(64 - 9));
    assert_eq!(fits.len(), 64);
    let outcome = run_chunked(fits.as_bytes(), &[], limits);
    assert_eq!(outcome.end, Ok(()));
    assert_eq!(outcome.messages.len(), 1);
    // One byte more: an error at the 65th byte of the message, whole or in chunks, and even
    // before that byte has arrived.
    let too_big = format!("  <a x=\"{}\"/>", "y".repeat(64 - 8));
    for chunks in [vec![], vec![1; too_big.len()], vec![66]] {
        let outcome = run_chunked(too_big.as_bytes(), &chunks, limits);
        let error = outcome.end.unwrap_err();
        assert_eq!(error.kind, ErrorKind::MessageTooLarge);
        assert_eq!(error.offset, 2 + 64);
    }
    // Whitespace between messages does not count.
    let spaced = format!("{}{fits}{}{fits}", " ".repeat(1000), "\n".repeat(1000));
    let outcome = run_chunked(spaced.as_bytes(), &[], limits);
    assert_eq!((outcome.end, outcome.messages.len()), (Ok(()), 2));
}

#[test]
fn a_huge_message_fed_bytewise_is_linear() {
    // 1 MiB of text in 1-byte feeds: would take minutes if every feed rescanned the message.
    let mut input = b"<a>".to_vec();
    input.extend(
        std::iter::repeat(b"x&amp;y\xC3\xA9 ")
            .flatten()
            .take(1 << 20),
    );
    input.extend(b"</a>");
    let limits = Limits {
        max_message_bytes: 2 << 20,
        ..Limits::default()
    };
    let started = std::time::Instant::now();
    let outcome = run_chunked(&input, &vec![1; input.len()], limits);
    assert_eq!(outcome.end, Ok(()));
    assert_eq!(outcome.messages.len(), 1);
    assert!(
        started.elapsed().as_secs() < 20,
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn deep_nesting_is_a_clean_error() {
    let input = b"<a>".repeat(100_000);
    for chunks in [vec![], vec![4096; 100]] {
        let outcome = run_chunked(&input, &chunks, Limits::default());
        let error = outcome.end.unwrap_err();
        assert_eq!(error.kind, ErrorKind::TooDeep);
        assert_eq!(error.offset, 32 * 3, "the `<` of the 33rd element");
    }
    // Exactly 32 deep is fine.
    let mut ok = b"<a>".repeat(31);
    ok.extend(b"<a/>");
    ok.extend(b"</a>".repeat(31));
    assert_eq!(run_whole(&ok).end, Ok(()));
}

#[test]
fn limits_on_attributes_names_tokens() {
    let limits = Limits {
        max_attributes: 3,
        max_name_bytes: 4,
        max_tokens: 6,
        ..Limits::default()
    };
    let run = |input: &str| {
        run_chunked(input.as_bytes(), &[], limits)
            .end
            .map_err(|e| (e.kind, e.offset))
    };
    assert_eq!(run("<a b='' c='' d=''/>"), Ok(()));
    assert_eq!(
        run("<a b='' c='' d='' e=''/>"),
        Err((ErrorKind::TooManyAttributes, 18))
    );
    assert_eq!(run("<abcd/>"), Ok(()));
    assert_eq!(run("<abcde/>"), Err((ErrorKind::NameTooLong, 5)));
    assert_eq!(run("<a abcde=''/>"), Err((ErrorKind::NameTooLong, 7)));
    assert_eq!(run("<a></abcde>"), Err((ErrorKind::NameTooLong, 9)));
    assert_eq!(run("<a><?abcde?></a>"), Err((ErrorKind::NameTooLong, 9)));
    // start, open, start, empty, text, close = 6 tokens
    assert_eq!(run("<a><b/>x</a>"), Ok(()));
    assert_eq!(run("<a><b/>x<c/></a>"), Err((ErrorKind::TooManyTokens, 10)));
}

#[test]
fn limits_default_values() {
    let limits = Limits::default();
    assert_eq!(limits, Limits::DEFAULT);
    assert_eq!(limits.max_message_bytes, 1 << 20);
    assert_eq!(limits.max_depth, 32);
    assert_eq!(limits.max_attributes, 64);
    assert_eq!(limits.max_name_bytes, 64);
    assert_eq!(limits.max_tokens, 100_000);
}

#[test]
fn finish_reports_unfinished_message() {
    let mut reader = Reader::new(Limits::default());
    reader.feed(b"<a/>\n<b>").unwrap();
    assert!(reader.next_message().unwrap().is_some());
    assert!(reader.next_message().unwrap().is_none());
    let error = reader.finish().unwrap_err();
    assert_eq!((error.kind, error.offset), (ErrorKind::UnexpectedEof, 8));
    let mut reader = Reader::new(Limits::default());
    reader.feed(b"<a/>   ").unwrap();
    assert!(reader.next_message().unwrap().is_some());
    assert!(reader.next_message().unwrap().is_none());
    assert_eq!(reader.finish(), Ok(()));
}

#[test]
fn line_col_of_an_error() {
    let mut reader = Reader::new(Limits::default());
    reader
        .feed(b"<a/>\n<status>\n  <x y='1' y='2'/>\n</status>")
        .unwrap();
    assert!(reader.next_message().unwrap().is_some());
    let error = reader.next_message().unwrap_err();
    assert_eq!(error.kind, ErrorKind::DuplicateAttribute);
    assert_eq!(error.offset, 5 + 9 + 11);
    assert_eq!(reader.line_col(error.offset), Some((2, 12)));
    assert_eq!(reader.line_col(0), None, "released with the first message");
    assert_eq!(error.to_string(), "duplicate attribute at byte 25");
}

#[test]
fn terminators_split_across_two_chunks() {
    // Each input is cut right inside a terminator (marked `|`): the first chunk must need more,
    // and the two chunks must give what the whole gives.
    let cases: &[&[u8]] = &[
        b"<a><!-- x -|-></a>",
        b"<a><!-- x --|></a>",
        b"<a><![CDATA[x]|]></a>",
        b"<a><![CDATA[x]]|></a>",
        b"<a>x]]|</a>",
        b"<a><?pi x ?|></a>",
        b"<a/|>",
        b"<a><b/|></a>",
        b"<a x=\"\xE2|\x82\xAC\"/>",
        b"<a x=\"\xE2\x82|\xAC\"/>",
        b"<a>\xF0\x9F|\x98\x80</a>",
        b"<a>&am|p;</a>",
        b"<a><![CD|ATA[x]]></a>",
        b"<a></a|>",
    ];
    for case in cases {
        let cut = case.iter().position(|&b| b == b'|').unwrap();
        let input: Vec<u8> = case.iter().copied().filter(|&b| b != b'|').collect();
        let mut reader = Reader::new(Limits::default());
        reader.feed(&input[..cut]).unwrap();
        assert!(
            reader.next_message().unwrap().is_none(),
            "{}",
            String::from_utf8_lossy(case)
        );
        let whole = run_whole(&input);
        assert_eq!(whole.end, Ok(()), "{}", String::from_utf8_lossy(case));
        assert_eq!(run_chunked(&input, &[cut], Limits::default()), whole);
    }
}
