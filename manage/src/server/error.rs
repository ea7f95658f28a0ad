//! Why manage stops with an error: one type for everything `run` can fail on, each with its
//! one-line message (main prints it after `manage: ` and exits 1).

use std::fmt;
use std::io;
use std::net::SocketAddr;

use manage::scheduler::ConfigError;

use super::events::EventsError;
use super::local::LocalError;
use super::store::StoreError;
use super::token::TokenError;

/// Why manage could not start, or stopped running.
#[derive(Debug)]
pub enum ServerError {
    /// The poll, the signal handlers, the waker or the verifier thread could not be set up.
    Setup {
        /// What, as "cannot ...".
        what: &'static str,
        /// Why.
        source: io::Error,
    },
    /// The listening address cannot be bound.
    Listen {
        /// The address.
        address: SocketAddr,
        /// Why.
        source: io::Error,
    },
    /// The durable state cannot be opened, read or written.
    Store(StoreError),
    /// The token file.
    Token(TokenError),
    /// The event log cannot be opened.
    Events(EventsError),
    /// `--local` computes cannot be started.
    Local(LocalError),
    /// The saved search and the command line make no scheduler.
    Restore(ConfigError),
    /// The poll itself failed.
    Poll(io::Error),
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerError::Setup { what, source } => write!(f, "{what}: {source}"),
            ServerError::Listen { address, source } => {
                write!(f, "cannot listen on {address}: {source}")
            }
            ServerError::Store(error) => error.fmt(f),
            ServerError::Token(error) => error.fmt(f),
            ServerError::Events(error) => error.fmt(f),
            ServerError::Local(error) => error.fmt(f),
            ServerError::Restore(error) => write!(f, "bad search bounds: {error}"),
            ServerError::Poll(source) => write!(f, "poll failed: {source}"),
        }
    }
}

impl std::error::Error for ServerError {}

impl From<StoreError> for ServerError {
    fn from(error: StoreError) -> ServerError {
        ServerError::Store(error)
    }
}

impl From<TokenError> for ServerError {
    fn from(error: TokenError) -> ServerError {
        ServerError::Token(error)
    }
}

impl From<EventsError> for ServerError {
    fn from(error: EventsError) -> ServerError {
        ServerError::Events(error)
    }
}

impl From<LocalError> for ServerError {
    fn from(error: LocalError) -> ServerError {
        ServerError::Local(error)
    }
}

impl From<ConfigError> for ServerError {
    fn from(error: ConfigError) -> ServerError {
        ServerError::Restore(error)
    }
}

/// A setup step's error, as a [`ServerError::Setup`] saying `what` failed.
pub fn setup(what: &'static str) -> impl FnOnce(io::Error) -> ServerError {
    move |source| ServerError::Setup { what, source }
}
