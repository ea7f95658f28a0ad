//! xmlwire: the hand-written XML of sigma's wire protocol.
//!
//! * [`Reader`] is a push tokenizer: append bytes as they arrive, in chunks of any size, and take
//!   complete messages ([`Frame`]s) out. A message is one top-level element; whitespace may stand
//!   between messages. Parsing resumes where it stopped, so the cost is linear in the bytes.
//! * [`Writer`] builds a message into a reusable `Vec<u8>`, escaping as it goes.
//! * [`protocol`] has the typed messages of sigma and their encoding and decoding.
//!
//! This crate must not panic on any input; a panic is a critical bug. It allocates nothing per
//! message once its buffers have grown to the largest message seen.
//!
//! # What the reader accepts
//!
//! XML 1.0 as sigma needs it: the XML declaration and other processing instructions (skipped),
//! comments (skipped), elements, attributes quoted either way, text, CDATA sections, the five
//! predefined entities and character references (checked while tokenizing, resolved on demand
//! by [`XmlStr`]). Everything must be valid UTF-8 made of XML 1.0 characters.
//!
//! It refuses, each with its own [`ErrorKind`] and the stream offset of the offending byte:
//! DOCTYPE (so no entity is ever defined or expanded), malformed or mismatched tags, duplicate
//! attributes, bad references, `<` in attribute values, `]]>` in text, `--` in comments, and
//! anything over its [`Limits`].
//!
//! Deliberate restrictions: names are ASCII, `[A-Za-z_:][A-Za-z0-9_:.-]*` (sigma's names are;
//! it keeps name checks a table lookup); a reference is at most 32 bytes long; no line-end or
//! attribute-value normalization is done (text comes out as it was sent: see [`XmlStr`]).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod auth;
pub mod error;
pub mod escape;
pub mod liveness;
pub mod protocol;
pub mod reader;
mod scan;
pub mod token;
pub mod writer;

pub use error::{Error, ErrorKind};
pub use escape::XmlStr;
pub use reader::{Frame, Limits, Reader};
pub use token::{Span, Token};
pub use writer::Writer;
