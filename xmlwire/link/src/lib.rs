//! What sigma's binaries share, once: the blocking client link to manage ([`Link`]), address
//! resolving with the default port ([`resolve`]), the token file and its challenge answer
//! ([`token`]), TCP keepalive ([`keep_alive`]), random bytes from the OS ([`random`]), signals
//! as a stop flag ([`stop_flag`]), and command-line errors on one line that keep clap's
//! suggestions ([`cli`]).
//!
//! xmlwire itself stays free of I/O; this crate is where its messages meet sockets and files.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod address;
pub mod cli;
mod keepalive;
mod link;
pub mod random;
mod signals;
pub mod token;

pub use address::{resolve, server_argument, ResolveError, DEFAULT_PORT};
pub use keepalive::keep_alive;
pub use link::{Link, LinkError};
pub use signals::stop_flag;
