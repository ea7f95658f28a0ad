//! The push reader: bytes in, complete messages out.

use crate::{Error, Span, Token};

/// Limits on what a [`Reader`] accepts; anything over them is an error, never a reallocation
/// without bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest message, in bytes (also the cap on the reader's buffer).
    pub max_message_bytes: usize,
    /// Deepest element nesting.
    pub max_depth: usize,
    /// Most attributes on one element.
    pub max_attributes: usize,
    /// Longest element or attribute name, in bytes.
    pub max_name_bytes: usize,
    /// Most tokens in one message.
    pub max_tokens: usize,
}

/// A complete message: its bytes and its tokens, whose spans index `bytes`.
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    /// The message's bytes, from its `<` to its final `>`.
    pub bytes: &'a [u8],
    /// Its tokens, in order.
    pub tokens: &'a [Token],
    /// Stream offset of `bytes[0]`.
    pub offset: u64,
}

impl<'a> Frame<'a> {
    /// The text a span covers. Spans from this frame's tokens are always valid UTF-8 on char
    /// boundaries, since the reader validated them.
    pub fn str(&self, span: Span) -> &'a str {
        let _ = span;
        todo!()
    }
}

/// Incremental reader: `feed` bytes (or `read_from` a socket), then take messages with
/// `next_message` until it says it needs more.
pub struct Reader {}

impl Reader {
    /// A reader with the given limits.
    pub fn new(limits: Limits) -> Self {
        let _ = limits;
        todo!()
    }
    /// Appends bytes. Fails (and keeps failing) once the stream is in error.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let _ = bytes;
        todo!()
    }
    /// Reads once from `source` straight into the buffer's spare room, growing it up to the
    /// message cap. Returns what `read` returned (0 is end of stream).
    pub fn read_from<R: std::io::Read>(&mut self, source: &mut R) -> std::io::Result<usize> {
        let _ = source;
        todo!()
    }
    /// The next complete message, or `Ok(None)` when more bytes are needed. The previous
    /// message's bytes are released by this call.
    pub fn next_message(&mut self) -> Result<Option<Frame<'_>>, Error> {
        todo!()
    }
    /// At end of stream: an error if a message was left unfinished.
    pub fn finish(&self) -> Result<(), Error> {
        todo!()
    }
}
