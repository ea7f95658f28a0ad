//! Errors, each with the byte offset in the stream where it was found.

/// What went wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Placeholder until the tokenizer lands; the xmlwire issue replaces this list.
    Syntax,
}

/// A tokenizer error: what, and the u64 byte offset in the stream (counted from the first byte
/// ever fed to the [`Reader`](crate::Reader)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Error {
    /// What went wrong.
    pub kind: ErrorKind,
    /// Byte offset in the stream.
    pub offset: u64,
}
