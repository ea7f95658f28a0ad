//! The writer: what it escapes, and Writer then Reader is the identity on resolved text.

mod common;

use proptest::prelude::*;
use xmlwire::{Frame, Limits, Reader, Token, Writer, XmlStr};

/// What a string reads back as: the characters XML cannot carry are replaced by U+FFFD.
fn carried(text: &str) -> String {
    text.chars()
        .map(|c| match c as u32 {
            0x9 | 0xA | 0xD | 0x20..=0xD7FF | 0xE000..=0xFFFD | 0x10000.. => c,
            _ => '\u{FFFD}',
        })
        .collect()
}

fn read_one(bytes: &[u8], check: impl FnOnce(&Frame<'_>)) {
    let mut reader = Reader::new(Limits::default());
    reader.feed(bytes).unwrap();
    let frame = reader
        .next_message()
        .unwrap_or_else(|e| panic!("{e} in {:?}", String::from_utf8_lossy(bytes)))
        .expect("one complete message");
    check(&frame);
    assert!(reader.next_message().unwrap().is_none());
    reader.finish().unwrap();
}

/// The resolved value of the first attribute and the resolved text content of the root.
fn attribute_and_text(frame: &Frame<'_>) -> (String, String) {
    let mut value = String::new();
    let mut text = String::new();
    for token in frame.tokens {
        match *token {
            Token::Attribute { value: raw, .. } if value.is_empty() => {
                XmlStr::Raw(frame.str(raw)).unescape_into(&mut value)
            }
            Token::Text { raw } => XmlStr::Raw(frame.str(raw)).unescape_into(&mut text),
            Token::CData { text: literal } => text.push_str(frame.str(literal)),
            _ => {}
        }
    }
    (value, text)
}

#[test]
fn escapes_as_documented() {
    let mut out = Vec::new();
    Writer::new(&mut out)
        .open("m")
        .attr("a", "&<>\"'\t\n\r\u{0}\u{1f}\u{fffe}\u{ffff}\u{fffd}é")
        .attr_u64("n", 0)
        .attr_u64("max", u64::MAX)
        .end_open()
        .text("&<>\"'\t\n\r]]>\u{0}")
        .close("m");
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "<m a=\"&amp;&lt;&gt;&quot;'&#9;&#10;&#13;\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}é\" \
         n=\"0\" max=\"18446744073709551615\">&amp;&lt;&gt;\"'\t\n&#13;]]&gt;\u{fffd}</m>"
    );
}

#[test]
fn raw_copies_keep_references_and_escape_what_the_place_needs() {
    let mut out = Vec::new();
    Writer::new(&mut out)
        .open("m")
        .attr_xml("a", XmlStr::Raw("say \"hi\" &amp; &#x41; & <"))
        .attr_xml("b", XmlStr::Plain("&amp;"))
        .end_open()
        .text_xml(XmlStr::Raw("]]> &lt; &bogus; \r"))
        .close("m");
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "<m a=\"say &quot;hi&quot; &amp; &#x41; &amp; &lt;\" b=\"&amp;amp;\">\
         ]]&gt; &lt; &amp;bogus; &#13;</m>"
    );
}

#[test]
fn xml_str_resolves_and_compares() {
    let raw = XmlStr::Raw("a &amp; b &lt;&gt;&quot;&apos;&#65;&#x1F600;");
    assert_eq!(raw.chars().collect::<String>(), "a & b <>\"'A😀");
    assert_eq!(raw, XmlStr::Plain("a & b <>\"'A😀"));
    assert_ne!(raw, XmlStr::Plain("a & b"));
    assert_eq!(raw.as_plain(), None);
    assert_eq!(XmlStr::Raw("plain").as_plain(), Some("plain"));
    assert_eq!(XmlStr::Plain("a&amp;").as_plain(), Some("a&amp;"));
    assert_eq!(XmlStr::Raw("x").raw_len(), 1);
    // A hand-made Raw with a malformed reference: the `&` stands for itself.
    let mut out = String::new();
    XmlStr::Raw("a & b &bogus; &#0; &am").unescape_into(&mut out);
    assert_eq!(out, "a & b &bogus; &#0; &am");
    assert_eq!(XmlStr::Raw("&am").chars().collect::<String>(), "&am");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn attribute_round_trip(value in any::<String>()) {
        let mut out = Vec::new();
        Writer::new(&mut out).open("m").attr("v", &value).end_empty();
        read_one(&out, |frame| {
            assert_eq!(attribute_and_text(frame).0, carried(&value));
        });
    }

    #[test]
    fn text_round_trip(text in any::<String>()) {
        let mut out = Vec::new();
        Writer::new(&mut out).open("m").end_open().text(&text).close("m");
        read_one(&out, |frame| {
            assert_eq!(attribute_and_text(frame).1, carried(&text));
        });
    }

    #[test]
    fn specials_round_trip(text in "[&<>\"'\\]\t\r\n a-c\u{e9}\u{1F600}-]{0,40}") {
        let mut out = Vec::new();
        Writer::new(&mut out).open("m").attr("v", &text).end_open().text(&text).close("m");
        read_one(&out, |frame| {
            assert_eq!(attribute_and_text(frame), (text.clone(), text.clone()));
        });
    }

    #[test]
    fn raw_copy_round_trip(text in any::<String>()) {
        // Read a value back, copy its raw form into a new message (attribute and text), and
        // read that: the resolved text survives both copies.
        let mut first = Vec::new();
        Writer::new(&mut first).open("m").attr("v", &text).end_empty();
        let mut second = Vec::new();
        read_one(&first, |frame| {
            let raw = frame
                .tokens
                .iter()
                .find_map(|t| match *t {
                    Token::Attribute { value, .. } => Some(XmlStr::Raw(frame.str(value))),
                    _ => None,
                })
                .unwrap();
            assert_eq!(raw, XmlStr::Plain(&carried(&text)));
            Writer::new(&mut second)
                .open("n")
                .attr_xml("v", raw)
                .end_open()
                .text_xml(raw)
                .close("n");
        });
        read_one(&second, |frame| {
            let expected = carried(&text);
            assert_eq!(attribute_and_text(frame), (expected.clone(), expected));
        });
    }
}
