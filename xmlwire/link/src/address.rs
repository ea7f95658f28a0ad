//! manage's address as people write it: `HOST`, `HOST:PORT`, `[V6]:PORT` or a bare IPv6
//! address, with manage's default port where none is given.

use std::fmt;
use std::io;
use std::net::{Ipv6Addr, SocketAddr, ToSocketAddrs};

/// The port manage listens on by default (8128 is the 4th perfect number).
pub const DEFAULT_PORT: u16 = 8128;

/// An address that does not resolve.
#[derive(Debug)]
pub enum ResolveError {
    /// The resolver failed (unknown host, bad port, ...).
    Lookup {
        /// The address as given.
        server: String,
        /// Why.
        source: io::Error,
    },
    /// The name resolves to no address at all.
    Empty {
        /// The address as given.
        server: String,
    },
}

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResolveError::Lookup { server, source } => {
                write!(f, "cannot resolve {server}: {source}")
            }
            ResolveError::Empty { server } => write!(f, "{server} resolves to no address"),
        }
    }
}

impl std::error::Error for ResolveError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ResolveError::Lookup { source, .. } => Some(source),
            ResolveError::Empty { .. } => None,
        }
    }
}

/// `server` with [`DEFAULT_PORT`] added when it names no port.
fn with_port(server: &str) -> String {
    if server.parse::<SocketAddr>().is_ok() {
        server.to_owned()
    } else if server.parse::<Ipv6Addr>().is_ok() {
        format!("[{server}]:{DEFAULT_PORT}")
    } else if server.contains(':') {
        server.to_owned()
    } else {
        format!("{server}:{DEFAULT_PORT}")
    }
}

/// `server` if its port, when it names one, is a port a connection can go to (1 to 65535): for
/// clap's `value_parser`, so a bad port is a usage error (exit 2) before anything is resolved.
pub fn server_argument(server: &str) -> Result<String, String> {
    let port = if let Some(rest) = server.strip_prefix('[') {
        rest.split_once("]:").map(|(_, port)| port)
    } else if server.parse::<Ipv6Addr>().is_ok() {
        None
    } else {
        server.rsplit_once(':').map(|(_, port)| port)
    };
    match port {
        Some(port) if !matches!(port.parse::<u16>(), Ok(1..)) => Err(format!(
            "bad port {port:?}: a port is a number from 1 to 65535"
        )),
        _ => Ok(server.to_owned()),
    }
}

/// Resolves `server` to its first address, adding [`DEFAULT_PORT`] when it names none.
pub fn resolve(server: &str) -> Result<SocketAddr, ResolveError> {
    with_port(server)
        .to_socket_addrs()
        .map_err(|source| ResolveError::Lookup {
            server: server.to_owned(),
            source,
        })?
        .next()
        .ok_or_else(|| ResolveError::Empty {
            server: server.to_owned(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_port_is_added_only_where_none_is_given() {
        assert_eq!(with_port("10.0.0.7"), "10.0.0.7:8128");
        assert_eq!(with_port("10.0.0.7:9000"), "10.0.0.7:9000");
        assert_eq!(with_port("example.org"), "example.org:8128");
        assert_eq!(with_port("example.org:80"), "example.org:80");
        assert_eq!(with_port("::1"), "[::1]:8128");
        assert_eq!(with_port("[::1]:9000"), "[::1]:9000");
    }

    #[test]
    fn a_server_argument_with_a_bad_port_is_refused() {
        for good in [
            "10.0.0.7",
            "10.0.0.7:9000",
            "example.org:80",
            "::1",
            "[::1]:9000",
        ] {
            assert_eq!(server_argument(good).as_deref(), Ok(good));
        }
        for bad in [
            "127.0.0.1:99999",
            "host:0",
            "host:",
            "host:x",
            "[::1]:65536",
        ] {
            let error = server_argument(bad).unwrap_err();
            assert!(error.contains("from 1 to 65535"), "{bad}: {error}");
        }
    }

    #[test]
    fn addresses_resolve_or_say_why_not() {
        assert_eq!(
            resolve("127.0.0.1").unwrap(),
            "127.0.0.1:8128".parse().unwrap()
        );
        assert_eq!(resolve("[::1]:7").unwrap(), "[::1]:7".parse().unwrap());
        let error = resolve("127.0.0.1:99999").unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("cannot resolve 127.0.0.1:99999"),
            "{error}"
        );
    }
}
