//! Character and entity references: resolving them without allocating.

use crate::scan::{self, Reference};

/// Text as it travels: either raw from the wire (references unresolved, already validated by
/// the reader) or plain (as a program wrote it; escaped when written). Two `XmlStr`s are equal
/// when their resolved texts are equal.
///
/// Resolving only replaces references: xmlwire does not normalize line ends or whitespace in
/// attribute values, so a literal tab or newline comes through as it is (the [`Writer`]
/// writes them as references in attribute values, so nothing is lost either way).
///
/// A `Raw` string made by hand may hold a malformed reference: its `&` then resolves to itself.
///
/// [`Writer`]: crate::Writer
#[derive(Clone, Copy, Debug)]
pub enum XmlStr<'a> {
    /// Raw text from a message, with references such as `&amp;` still in it.
    Raw(&'a str),
    /// Plain text, to be escaped when written.
    Plain(&'a str),
}

impl<'a> XmlStr<'a> {
    /// The resolved characters, one at a time, without allocating.
    pub fn chars(&self) -> impl Iterator<Item = char> + 'a {
        match *self {
            XmlStr::Raw(text) => Chars {
                rest: text,
                raw: true,
            },
            XmlStr::Plain(text) => Chars {
                rest: text,
                raw: false,
            },
        }
    }

    /// Appends the resolved text to `out`.
    pub fn unescape_into(&self, out: &mut String) {
        let mut rest = match *self {
            XmlStr::Plain(text) => return out.push_str(text),
            XmlStr::Raw(text) => text,
        };
        while let Some(amp) = memchr::memchr(b'&', rest.as_bytes()) {
            let (before, from_amp) = rest.split_at(amp);
            out.push_str(before);
            match scan::parse_reference(from_amp.as_bytes()) {
                Reference::Char(c, len) => {
                    out.push(c);
                    rest = from_amp.get(len..).unwrap_or_default();
                }
                _ => {
                    out.push('&');
                    rest = from_amp.get(1..).unwrap_or_default();
                }
            }
        }
        out.push_str(rest);
    }

    /// The text without escapes, borrowed when it has no references (`Plain`, or `Raw` with no
    /// `&`), else `None`: callers that need it then use `unescape_into`.
    pub fn as_plain(&self) -> Option<&'a str> {
        match *self {
            XmlStr::Plain(text) => Some(text),
            // `contains` is core's own byte search: cheaper to set up than memchr's on the
            // short values most messages carry.
            XmlStr::Raw(text) if text.as_bytes().contains(&b'&') => None,
            XmlStr::Raw(text) => Some(text),
        }
    }

    /// The text as stored (raw or plain), without resolving anything.
    pub fn as_stored(&self) -> &'a str {
        match *self {
            XmlStr::Raw(text) | XmlStr::Plain(text) => text,
        }
    }

    /// Length in bytes of the text as stored (raw or plain), not of the resolved text.
    pub fn raw_len(&self) -> usize {
        self.as_stored().len()
    }
}

impl PartialEq for XmlStr<'_> {
    /// Compares the resolved texts: `Raw("a&amp;b") == Plain("a&b")`.
    fn eq(&self, other: &Self) -> bool {
        if let (Some(a), Some(b)) = (self.as_plain(), other.as_plain()) {
            return a == b;
        }
        self.chars().eq(other.chars())
    }
}

impl Eq for XmlStr<'_> {}

impl PartialEq<str> for XmlStr<'_> {
    /// Compares the resolved text with `other`.
    fn eq(&self, other: &str) -> bool {
        *self == XmlStr::Plain(other)
    }
}

impl PartialEq<&str> for XmlStr<'_> {
    /// Compares the resolved text with `other`.
    fn eq(&self, other: &&str) -> bool {
        *self == XmlStr::Plain(other)
    }
}

/// Iterator over resolved characters.
struct Chars<'a> {
    rest: &'a str,
    raw: bool,
}

impl Iterator for Chars<'_> {
    type Item = char;

    fn next(&mut self) -> Option<char> {
        let c = self.rest.chars().next()?;
        if self.raw && c == '&' {
            if let Reference::Char(resolved, len) = scan::parse_reference(self.rest.as_bytes()) {
                self.rest = self.rest.get(len..).unwrap_or_default();
                return Some(resolved);
            }
        }
        self.rest = self.rest.get(c.len_utf8()..).unwrap_or_default();
        Some(c)
    }
}
