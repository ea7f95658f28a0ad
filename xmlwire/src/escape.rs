//! Character and entity references: resolving them without allocating.

/// Text as it travels: either raw from the wire (references unresolved, already validated by
/// the reader) or plain (as a program wrote it; escaped when written). Two `XmlStr`s are equal
/// when their resolved texts are equal.
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
        std::iter::empty()
    }
    /// Appends the resolved text to `out`.
    pub fn unescape_into(&self, out: &mut String) {
        let _ = out;
        todo!()
    }
    /// The text without escapes, borrowed when it has no references (`Plain`, or `Raw` with no
    /// `&`), else `None`: callers that need it then use `unescape_into`.
    pub fn as_plain(&self) -> Option<&'a str> {
        todo!()
    }
}
