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
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod error;
pub mod escape;
pub mod protocol;
pub mod reader;
pub mod token;
pub mod writer;

pub use error::{Error, ErrorKind};
pub use escape::XmlStr;
pub use reader::{Frame, Limits, Reader};
pub use token::{Span, Token};
pub use writer::Writer;
