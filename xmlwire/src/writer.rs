//! Building messages into a reusable buffer.
//!
//! What gets escaped, and how characters XML cannot carry are handled:
//!
//! | character                         | in attribute values (quoted with `"`) | in text     |
//! |-----------------------------------|---------------------------------------|-------------|
//! | `&` `<` `>`                       | `&amp;` `&lt;` `&gt;`                 | the same    |
//! | `"`                               | `&quot;`                              | literal     |
//! | `'`                               | literal                               | literal     |
//! | tab, LF                           | `&#9;` `&#10;`                        | literal     |
//! | CR                                | `&#13;`                               | `&#13;`     |
//! | other C0 controls, U+FFFE, U+FFFF | replaced by U+FFFD                    | the same    |
//!
//! Tab, LF and CR become references in attribute values, and CR in text, because an XML
//! parser normalizes the literal characters (to spaces, and CR LF to LF): references survive.
//! `>` is always escaped, so `]]>` can never appear in text. The characters XML 1.0 cannot
//! carry at all (NUL and the other controls, U+FFFE, U+FFFF) cannot be written even as
//! references, so they are replaced by U+FFFD REPLACEMENT CHARACTER: the writer never produces
//! an invalid document, and every other string reads back exactly as it was written.
//!
//! Names are written as given; they must be names of the ASCII alphabet the reader accepts
//! (checked in debug builds only: names are the program's constants, not input).

use crate::scan::{self, Reference};
use crate::XmlStr;

/// Writes one message into a `Vec<u8>` (appending), escaping attribute values and text. It keeps
/// no element stack: the caller closes what it opened.
///
/// ```
/// use xmlwire::Writer;
/// let mut out = Vec::new();
/// Writer::new(&mut out)
///     .open("error")
///     .attr("message", "a & \"b\"")
///     .attr_u64("lease", 17)
///     .end_empty();
/// assert_eq!(out, b"<error message=\"a &amp; &quot;b&quot;\" lease=\"17\"/>");
/// ```
pub struct Writer<'a> {
    out: &'a mut Vec<u8>,
}

/// Where an escaped string goes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Context {
    Attribute,
    Text,
}

impl<'a> Writer<'a> {
    /// A writer appending to `out`.
    pub fn new(out: &'a mut Vec<u8>) -> Self {
        Writer { out }
    }
    /// `<name`
    pub fn open(&mut self, name: &str) -> &mut Self {
        debug_assert!(scan::is_name(name.as_bytes()), "bad element name {name:?}");
        self.out.push(b'<');
        self.out.extend_from_slice(name.as_bytes());
        self
    }
    /// ` name="value"`, the value escaped.
    pub fn attr(&mut self, name: &str, value: &str) -> &mut Self {
        self.attr_start(name);
        escape(self.out, value, Context::Attribute, false);
        self.out.push(b'"');
        self
    }
    /// ` name="123"`
    pub fn attr_u64(&mut self, name: &str, value: u64) -> &mut Self {
        self.attr_start(name);
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        let mut rest = value;
        loop {
            at -= 1;
            digits[at] = b'0' + (rest % 10) as u8;
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        self.out.extend_from_slice(&digits[at..]);
        self.out.push(b'"');
        self
    }
    /// ` name="value"`: raw text is copied as it is (already valid), plain text escaped.
    ///
    /// Copying raw text keeps its references, but still escapes what the new place needs: raw
    /// text from a `'`-quoted value may hold `"`, raw text from content may hold literal
    /// newlines. A hand-made `Raw` with a malformed reference gets its `&` escaped.
    pub fn attr_xml(&mut self, name: &str, value: XmlStr<'_>) -> &mut Self {
        self.attr_start(name);
        match value {
            XmlStr::Raw(raw) => escape(self.out, raw, Context::Attribute, true),
            XmlStr::Plain(plain) => escape(self.out, plain, Context::Attribute, false),
        }
        self.out.push(b'"');
        self
    }
    /// `>`: the start tag ends and content follows.
    pub fn end_open(&mut self) -> &mut Self {
        self.out.push(b'>');
        self
    }
    /// `/>`: the element is empty.
    pub fn end_empty(&mut self) -> &mut Self {
        self.out.extend_from_slice(b"/>");
        self
    }
    /// Escaped character data.
    pub fn text(&mut self, text: &str) -> &mut Self {
        escape(self.out, text, Context::Text, false);
        self
    }
    /// Character data: raw copied, plain escaped (see [`attr_xml`](Self::attr_xml) for what
    /// copying raw text still escapes: here `>`, as a raw attribute value may hold `]]>`).
    pub fn text_xml(&mut self, text: XmlStr<'_>) -> &mut Self {
        match text {
            XmlStr::Raw(raw) => escape(self.out, raw, Context::Text, true),
            XmlStr::Plain(plain) => escape(self.out, plain, Context::Text, false),
        }
        self
    }
    /// `</name>`
    pub fn close(&mut self, name: &str) -> &mut Self {
        debug_assert!(scan::is_name(name.as_bytes()), "bad element name {name:?}");
        self.out.extend_from_slice(b"</");
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(b'>');
        self
    }

    fn attr_start(&mut self, name: &str) {
        debug_assert!(
            scan::is_name(name.as_bytes()),
            "bad attribute name {name:?}"
        );
        self.out.push(b' ');
        self.out.extend_from_slice(name.as_bytes());
        self.out.extend_from_slice(b"=\"");
    }
}

/// Does `b` need a look in this context? Printable ASCII other than the specials goes straight
/// through; everything else (specials, controls, non-ASCII lead bytes) is looked at.
#[inline]
fn needs_care(b: u8, context: Context) -> bool {
    match b {
        b'&' | b'<' | b'>' | b'\r' => true,
        b'"' | b'\t' | b'\n' => context == Context::Attribute,
        // 0xEF leads U+FFFE and U+FFFF; other non-ASCII is copied as is.
        0xEF => true,
        _ => b < 0x20,
    }
}

/// Appends `text` escaped for `context`. With `keep_references`, well-formed references are
/// copied as they are (raw text); otherwise every `&` is escaped.
fn escape(out: &mut Vec<u8>, text: &str, context: Context, keep_references: bool) {
    let bytes = text.as_bytes();
    out.reserve(bytes.len());
    let mut copied = 0;
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if !needs_care(b, context) {
            i += 1;
            continue;
        }
        out.extend_from_slice(bytes.get(copied..i).unwrap_or_default());
        let mut len = 1;
        match b {
            b'&' => match scan::parse_reference(bytes.get(i..).unwrap_or_default()) {
                Reference::Char(_, ref_len) if keep_references => {
                    out.extend_from_slice(bytes.get(i..i + ref_len).unwrap_or_default());
                    len = ref_len;
                }
                _ => out.extend_from_slice(b"&amp;"),
            },
            b'<' => out.extend_from_slice(b"&lt;"),
            b'>' => out.extend_from_slice(b"&gt;"),
            b'"' => out.extend_from_slice(b"&quot;"),
            b'\t' => out.extend_from_slice(b"&#9;"),
            b'\n' => out.extend_from_slice(b"&#10;"),
            b'\r' => out.extend_from_slice(b"&#13;"),
            0xEF => {
                // A three-byte sequence (the input is a `str`): U+FFFE and U+FFFF are replaced,
                // the rest copied.
                len = 3;
                let sequence = bytes.get(i..i + 3).unwrap_or_default();
                if sequence == "\u{FFFE}".as_bytes() || sequence == "\u{FFFF}".as_bytes() {
                    out.extend_from_slice("\u{FFFD}".as_bytes());
                } else {
                    out.extend_from_slice(sequence);
                }
            }
            _ => out.extend_from_slice("\u{FFFD}".as_bytes()),
        }
        i += len;
        copied = i;
    }
    out.extend_from_slice(bytes.get(copied..).unwrap_or_default());
}
