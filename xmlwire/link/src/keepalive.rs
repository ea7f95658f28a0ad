//! TCP settings for connections that cross a network, shared by compute and manage: TCP
//! keepalive and the user timeout, so that the kernel gives up on a peer that acknowledges
//! nothing (a host switched off, a cable pulled) within a bounded time instead of after the
//! default two hours of idle (keepalive) or about 15 minutes of retransmissions. The figures are
//! `xmlwire::liveness`'s.

#![forbid(unsafe_code)]

use std::os::fd::AsFd;

use nix::sys::socket::{setsockopt, sockopt};
use xmlwire::liveness::{KEEPALIVE_IDLE, KEEPALIVE_INTERVAL, KEEPALIVE_PROBES, TCP_USER_TIMEOUT};

/// Turns TCP keepalive on (first probe after 10 s idle, then every 5 s, failing after 3
/// unanswered: a dead peer of an idle connection is noticed within 25 s) and sets the user
/// timeout (20 s of unacknowledged data fail the connection).
pub fn keep_alive<F: AsFd>(socket: &F) -> nix::Result<()> {
    setsockopt(socket, sockopt::KeepAlive, &true)?;
    setsockopt(
        socket,
        sockopt::TcpKeepIdle,
        &(KEEPALIVE_IDLE.as_secs() as u32),
    )?;
    setsockopt(
        socket,
        sockopt::TcpKeepInterval,
        &(KEEPALIVE_INTERVAL.as_secs() as u32),
    )?;
    setsockopt(socket, sockopt::TcpKeepCount, &KEEPALIVE_PROBES)?;
    setsockopt(
        socket,
        sockopt::TcpUserTimeout,
        &(TCP_USER_TIMEOUT.as_millis() as u32),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::getsockopt;
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn keepalive_settings_stick() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        keep_alive(&stream).unwrap();
        assert!(getsockopt(&stream, sockopt::KeepAlive).unwrap());
        assert_eq!(getsockopt(&stream, sockopt::TcpKeepIdle).unwrap(), 10);
        assert_eq!(getsockopt(&stream, sockopt::TcpKeepInterval).unwrap(), 5);
        assert_eq!(getsockopt(&stream, sockopt::TcpKeepCount).unwrap(), 3);
        assert_eq!(
            getsockopt(&stream, sockopt::TcpUserTimeout).unwrap(),
            20_000
        );
    }
}
