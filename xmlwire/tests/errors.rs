//! Malformed input: each case gives exactly this ErrorKind at exactly this stream offset, fed
//! whole and fed one byte at a time, and the reader stays failed afterwards.

mod common;

use common::run_chunked;
use xmlwire::{ErrorKind::*, Limits, Reader};

macro_rules! malformed {
    ($($name:ident: $input:expr => ($kind:expr, $offset:expr);)*) => {$(
        #[test]
        fn $name() {
            let owned = $input;
            let input: &[u8] = owned.as_ref();
            for chunks in [vec![], vec![1; input.len()]] {
                let outcome = run_chunked(input, &chunks, Limits::default());
                let error = outcome.end.expect_err("must be refused");
                assert_eq!((error.kind, error.offset), ($kind, $offset), "chunks {chunks:?}");
            }
        }
    )*};
}

malformed! {
    // Byte offsets are 0-based stream offsets of the offending byte.
    doctype: "<!DOCTYPE a [<!ENTITY x 'y'>]><a>&x;</a>" => (DoctypeNotAllowed, 0);
    doctype_after_message: "<a/>\n<!DOCTYPE a>" => (DoctypeNotAllowed, 5);
    bad_bang: "<a><!x></a>" => (InvalidMarkup, 3);
    bad_bang_lowercase_doctype: "<!doctype a>" => (InvalidMarkup, 0);
    mismatched_close: "<a><b></a></b>" => (MismatchedCloseTag, 8);
    mismatched_close_prefix: "<ab></a>" => (MismatchedCloseTag, 6);
    mismatched_close_longer: "<a></ab>" => (MismatchedCloseTag, 5);
    close_between_messages: "<a/></a>" => (UnexpectedCloseTag, 4);
    unclosed_at_eof: "<a><b></b>" => (UnexpectedEof, 10);
    unclosed_tag_at_eof: "<a x='1'" => (UnexpectedEof, 8);
    comment_unclosed_at_eof: "<!-- x" => (UnexpectedEof, 6);
    duplicate_attribute: "<a x='1' y='2' x='3'/>" => (DuplicateAttribute, 15);
    duplicate_attribute_other_quote: "<a xy=\"1\" xy='1'/>" => (DuplicateAttribute, 10);
    duplicate_on_inner_only: "<a x='1'><b y='1' y='2'/></a>" => (DuplicateAttribute, 18);
    invalid_name_start: "<1a/>" => (InvalidName, 1);
    invalid_name_space: "< a/>" => (InvalidName, 1);
    invalid_name_char: "<a\u{e9}/>" => (ExpectedTagEnd, 2);
    invalid_attribute_name: "<a -x='1'/>" => (InvalidName, 3);
    invalid_close_name: "<a></1>" => (InvalidName, 5);
    invalid_pi_target: "<? x?><a/>" => (InvalidName, 2);
    attribute_without_space: "<a x='1'y='2'/>" => (ExpectedWhitespace, 8);
    attribute_without_value: "<a x/>" => (ExpectedEquals, 4);
    attribute_unquoted: "<a x=1/>" => (ExpectedQuote, 5);
    slash_without_gt: "<a/ >" => (ExpectedTagEnd, 3);
    junk_in_tag: "<a x='1'\"/>" => (ExpectedTagEnd, 8);
    junk_in_close: "<a></a x>" => (ExpectedTagEnd, 7);
    lt_in_attribute: "<a x='<'/>" => (LtInAttributeValue, 6);
    text_between_messages: "<a/> x <b/>" => (JunkBetweenMessages, 5);
    text_before_message: "hello" => (JunkBetweenMessages, 0);
    cdata_between_messages: "<![CDATA[x]]>" => (JunkBetweenMessages, 0);
    cdata_end_in_text: "<a>x]]>y</a>" => (CDataEndInText, 4);
    cdata_end_in_text_start: "<a>]]></a>" => (CDataEndInText, 3);
    double_dash_in_comment: "<a><!-- a -- b --></a>" => (DoubleDashInComment, 10);
    comment_ending_in_three_dashes: "<!-- a --->" => (DoubleDashInComment, 7);
    xml_declaration_inside: "<a><?xml version='1.0'?></a>" => (ReservedPiTarget, 5);
    xml_declaration_inside_any_case: "<a><?XmL?></a>" => (ReservedPiTarget, 5);
    unknown_entity: "<a>&nbsp;</a>" => (UnknownEntity, 3);
    unknown_entity_in_attribute: "<a x='&foo;'/>" => (UnknownEntity, 6);
    char_ref_zero: "<a>&#0;</a>" => (InvalidCharRef, 3);
    char_ref_control: "<a>&#x1F;</a>" => (InvalidCharRef, 3);
    char_ref_surrogate: "<a>&#xD800;</a>" => (InvalidCharRef, 3);
    char_ref_too_big: "<a>&#x110000;</a>" => (InvalidCharRef, 3);
    char_ref_fffe: "<a x='&#65534;'/>" => (InvalidCharRef, 6);
    char_ref_huge: "<a>&#99999999999999999999;</a>" => (InvalidCharRef, 3);
    char_ref_no_digits: "<a>&#;</a>" => (MalformedReference, 5);
    char_ref_no_hex_digits: "<a>&#x;</a>" => (MalformedReference, 6);
    char_ref_uppercase_x: "<a>&#X41;</a>" => (MalformedReference, 5);
    bare_ampersand: "<a>a & b</a>" => (MalformedReference, 6);
    missing_semicolon: "<a>&amp </a>" => (MissingSemicolon, 7);
    missing_semicolon_digits: "<a>&#12a;</a>" => (MissingSemicolon, 7);
    missing_semicolon_at_quote: "<a x='&lt'/>" => (MissingSemicolon, 9);
    reference_too_long: "<a>&#00000000000000000000000000000000065;</a>" => (MalformedReference, 35);
    nul_in_text: "<a>x\0</a>" => (InvalidChar, 4);
    control_in_attribute: "<a x='\u{1}'/>" => (InvalidChar, 6);
    control_in_comment: "<!--\u{b}--><a/>" => (InvalidChar, 4);
    control_in_cdata: "<a><![CDATA[\u{c}]]></a>" => (InvalidChar, 12);
    nonchar_fffe: "<a>\u{fffe}</a>" => (InvalidChar, 3);
    nonchar_ffff_in_pi: "<?p \u{ffff}?><a/>" => (InvalidChar, 4);
    utf8_lone_continuation: b"<a>\x80</a>" => (InvalidUtf8, 3);
    utf8_overlong: b"<a>\xC0\xAF</a>" => (InvalidUtf8, 3);
    utf8_surrogate: b"<a>\xED\xA0\x80</a>" => (InvalidUtf8, 4);
    utf8_truncated: b"<a x='\xE2\x82'/>" => (InvalidUtf8, 8);
    utf8_above_max: b"<a>\xF4\x90\x80\x80</a>" => (InvalidUtf8, 4);
    utf8_in_name: b"<a\xC3\xA9/>" => (ExpectedTagEnd, 2);
    utf8_invalid_byte: b"<a>\xFF</a>" => (InvalidUtf8, 3);
    utf8_between_messages: b"<a/>\xC3\xA9" => (JunkBetweenMessages, 4);
    too_deep: "<a>".repeat(40) => (TooDeep, 96);
}

#[test]
fn errors_are_sticky() {
    let mut reader = Reader::new(Limits::default());
    reader.feed(b"<a/><b x='1' x='2'/><c/>").unwrap();
    assert!(reader.next_message().unwrap().is_some());
    let error = reader.next_message().unwrap_err();
    assert_eq!((error.kind, error.offset), (DuplicateAttribute, 13));
    assert_eq!(reader.next_message().unwrap_err(), error);
    assert_eq!(reader.feed(b"<d/>").unwrap_err(), error);
    assert_eq!(reader.finish().unwrap_err(), error);
}

#[test]
fn offsets_count_the_whole_stream() {
    // The error's offset counts every byte ever fed, across released messages.
    let mut reader = Reader::new(Limits::default());
    let mut fed = 0u64;
    for _ in 0..1000 {
        reader.feed(b"<ok/>  ").unwrap();
        fed += 7;
        assert!(reader.next_message().unwrap().is_some());
    }
    reader.feed(b"<a>\0").unwrap();
    let error = reader.next_message().unwrap_err();
    assert_eq!((error.kind, error.offset), (InvalidChar, fed + 3));
}

#[test]
fn every_error_kind_has_a_description() {
    for kind in [
        InvalidUtf8,
        DoctypeNotAllowed,
        MessageTooLarge,
        UnexpectedEof,
    ] {
        assert!(!kind.to_string().is_empty());
    }
}
