//! Tokens: spans into the bytes of one message.

/// A byte range `[start, end)` into a [`Frame`](crate::Frame)'s bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Span {
    /// First byte.
    pub start: u32,
    /// One past the last byte.
    pub end: u32,
}

/// One token of a message. Comments, processing instructions and the XML declaration are
/// skipped and produce no token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Token {
    /// The start of a start tag.
    /// ```text
    /// <range lo="10"/>
    ///  -----            name
    /// ```
    ElementStart {
        /// The element name.
        name: Span,
    },
    /// An attribute; the value is raw (references not yet resolved, but already validated).
    /// ```text
    /// <range lo="10"/>
    ///        --          name
    ///            --      value
    /// ```
    Attribute {
        /// The attribute name.
        name: Span,
        /// The raw value, between the quotes.
        value: Span,
    },
    /// `>` ending a start tag: content follows.
    ElementOpen,
    /// `/>` ending a start tag: the element is empty and closed.
    ElementEmpty,
    /// An end tag.
    /// ```text
    /// </range>
    ///   -----   name
    /// ```
    ElementClose {
        /// The element name.
        name: Span,
    },
    /// Character data, raw (references not yet resolved, but already validated). Whitespace
    /// between child elements comes as text too.
    Text {
        /// The raw text.
        raw: Span,
    },
    /// The contents of a CDATA section, taken literally.
    /// ```text
    /// <![CDATA[a<b]]>
    ///          ---     text
    /// ```
    CData {
        /// The literal text.
        text: Span,
    },
}
