//! Errors, each with the byte offset in the stream where it was found.

use std::fmt;

/// What went wrong. The offset of the [`Error`] is that of the offending byte, as told for each
/// kind; it does not depend on how the stream was cut into chunks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Bytes that are not UTF-8 (overlong forms, surrogates, above U+10FFFF, stray continuation
    /// bytes, a sequence cut short). At the first byte no valid sequence could contain.
    InvalidUtf8,
    /// A character that XML 1.0 forbids: a control character other than tab, LF and CR, or
    /// U+FFFE / U+FFFF. At its first byte.
    InvalidChar,
    /// Something other than whitespace, comments, processing instructions or the XML
    /// declaration between two messages (text, CDATA). At its first byte.
    JunkBetweenMessages,
    /// An end tag between messages. At its `<`.
    UnexpectedCloseTag,
    /// A name was expected and this byte cannot start one, or a name holds a byte outside
    /// xmlwire's ASCII name alphabet `[A-Za-z_:][A-Za-z0-9_:.-]*`. At that byte.
    InvalidName,
    /// A name longer than [`Limits::max_name_bytes`](crate::Limits). At its first byte past the
    /// limit.
    NameTooLong,
    /// An attribute name not followed by `=`. At the byte found instead.
    ExpectedEquals,
    /// `=` not followed by `"` or `'`. At the byte found instead.
    ExpectedQuote,
    /// Two attributes with no whitespace between them. At the second name.
    ExpectedWhitespace,
    /// A start tag that does not end in `>` or `/>`, or an end tag with something other than
    /// whitespace between its name and `>`. At the byte found instead.
    ExpectedTagEnd,
    /// `<` inside an attribute value. At the `<`.
    LtInAttributeValue,
    /// The same attribute twice on one element. At the second one's name.
    DuplicateAttribute,
    /// An end tag whose name is not that of the open element. At the end tag's name.
    MismatchedCloseTag,
    /// `&name;` where name is not one of `amp`, `lt`, `gt`, `quot`, `apos` (no other entity
    /// exists: DTDs are refused). At the `&`.
    UnknownEntity,
    /// `&#N;` or `&#xN;` whose code point is not an XML character (0, controls, surrogates,
    /// U+FFFE, U+FFFF, above U+10FFFF). At the `&`.
    InvalidCharRef,
    /// `&` not starting a reference (`& `, `&#;`, `&#x;`), or a reference longer than 32 bytes.
    /// At the offending byte.
    MalformedReference,
    /// A reference whose name or digits are not followed by `;`. At the byte found instead.
    MissingSemicolon,
    /// `]]>` in character data. At its first `]`.
    CDataEndInText,
    /// `--` inside a comment (including a comment ending in `--->`). At the first `-`.
    DoubleDashInComment,
    /// `<!` followed by neither `--`, `[CDATA[` nor `DOCTYPE`. At the `<`.
    InvalidMarkup,
    /// A document type declaration: refused, so no entity is ever defined or expanded. At its
    /// `<`.
    DoctypeNotAllowed,
    /// A processing instruction named `xml` (in any case) inside a message: the XML declaration
    /// may only come before one. At the target name.
    ReservedPiTarget,
    /// A message longer than [`Limits::max_message_bytes`](crate::Limits). At its first byte
    /// past the limit (reported as soon as the message is known not to end within it).
    MessageTooLarge,
    /// Elements nested deeper than [`Limits::max_depth`](crate::Limits). At the `<` of the
    /// element one too deep.
    TooDeep,
    /// More than [`Limits::max_attributes`](crate::Limits) attributes on one element. At the
    /// name of the first attribute too many.
    TooManyAttributes,
    /// More than [`Limits::max_tokens`](crate::Limits) tokens in one message. At the first byte
    /// of the token one too many.
    TooManyTokens,
    /// The stream ended inside a message. At the end of the stream.
    UnexpectedEof,
}

impl ErrorKind {
    /// A short description, as in the [`Display`](fmt::Display) impl.
    pub fn describe(self) -> &'static str {
        use ErrorKind::*;
        match self {
            InvalidUtf8 => "invalid UTF-8",
            InvalidChar => "character not allowed in XML",
            JunkBetweenMessages => "unexpected content between messages",
            UnexpectedCloseTag => "end tag between messages",
            InvalidName => "invalid name",
            NameTooLong => "name too long",
            ExpectedEquals => "expected '=' after attribute name",
            ExpectedQuote => "expected a quote to open the attribute value",
            ExpectedWhitespace => "expected whitespace between attributes",
            ExpectedTagEnd => "expected the end of the tag",
            LtInAttributeValue => "'<' in attribute value",
            DuplicateAttribute => "duplicate attribute",
            MismatchedCloseTag => "end tag does not match the open element",
            UnknownEntity => "unknown entity",
            InvalidCharRef => "character reference to a character not allowed in XML",
            MalformedReference => "malformed reference",
            MissingSemicolon => "reference not terminated by ';'",
            CDataEndInText => "']]>' in text",
            DoubleDashInComment => "'--' inside a comment",
            InvalidMarkup => "invalid markup after '<!'",
            DoctypeNotAllowed => "DOCTYPE not allowed",
            ReservedPiTarget => "XML declaration inside a message",
            MessageTooLarge => "message too large",
            TooDeep => "elements nested too deep",
            TooManyAttributes => "too many attributes",
            TooManyTokens => "too many tokens in message",
            UnexpectedEof => "stream ended inside a message",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// A tokenizer error: what, and the u64 byte offset in the stream (counted from the first byte
/// ever fed to the [`Reader`](crate::Reader)). For a line and column, see
/// [`Reader::line_col`](crate::Reader::line_col).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Error {
    /// What went wrong.
    pub kind: ErrorKind,
    /// Byte offset in the stream.
    pub offset: u64,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.kind, self.offset)
    }
}

impl std::error::Error for Error {}
