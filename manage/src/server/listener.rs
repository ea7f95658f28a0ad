//! The listening socket, with an accept queue sized for the connection cap.
//!
//! std and mio listen with a backlog of 128. When manage restarts, every compute of a large
//! cluster reconnects at once; a burst past 128 overflows the accept queue, and each dropped SYN
//! costs its client a one-second retransmission (3,000 connections back to back: 9 overflows).
//! socket2 exposes `listen(backlog)`, so the queue can hold what the cap admits.

use std::io;
use std::net::SocketAddr;

use mio::net::TcpListener;
use socket2::{Domain, Protocol, Socket, Type};

/// Where Linux keeps the ceiling it silently applies to every `listen` backlog.
const SOMAXCONN_PATH: &str = "/proc/sys/net/core/somaxconn";

/// A listener on `address` whose backlog asks for `wanted` pending connections.
pub struct Listener {
    pub socket: TcpListener,
    /// The backlog asked of the kernel.
    pub wanted: usize,
    /// The kernel's ceiling on any backlog, when it can be read.
    pub kernel_ceiling: Option<usize>,
}

impl Listener {
    /// Binds `address` (address reuse on, as mio does, so a restart can rebind at once) and
    /// listens with a backlog of `wanted`, clamped to what `listen` takes.
    pub fn bind(address: SocketAddr, wanted: usize) -> io::Result<Listener> {
        let socket = Socket::new(
            Domain::for_address(address),
            Type::STREAM,
            Some(Protocol::TCP),
        )?;
        socket.set_reuse_address(true)?;
        socket.set_nonblocking(true)?;
        socket.bind(&address.into())?;
        let backlog = i32::try_from(wanted).unwrap_or(i32::MAX);
        socket.listen(backlog)?;
        Ok(Listener {
            socket: TcpListener::from_std(socket.into()),
            wanted,
            kernel_ceiling: kernel_ceiling(),
        })
    }

    /// The backlog the kernel really gives: the one asked for, or its ceiling when lower.
    pub fn backlog(&self) -> usize {
        self.kernel_ceiling
            .map_or(self.wanted, |ceiling| ceiling.min(self.wanted))
    }

    /// A warning for the log when the kernel gives less than was asked, naming the setting.
    pub fn shortfall(&self) -> Option<String> {
        let ceiling = self.kernel_ceiling?;
        (ceiling < self.wanted).then(|| {
            format!(
                "the kernel caps the listen backlog at {ceiling} ({SOMAXCONN_PATH}), below the \
                 {} asked for: a burst of reconnections may wait for SYN retransmissions",
                self.wanted
            )
        })
    }
}

fn kernel_ceiling() -> Option<usize> {
    std::fs::read_to_string(SOMAXCONN_PATH)
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backlog_is_the_one_asked_for_within_the_kernel_ceiling() {
        let listener = Listener::bind("127.0.0.1:0".parse().unwrap(), 10_000).unwrap();
        let given = listener.backlog();
        match listener.kernel_ceiling {
            Some(ceiling) if ceiling < 10_000 => {
                assert_eq!(given, ceiling);
                assert!(listener.shortfall().unwrap().contains("somaxconn"));
            }
            _ => {
                assert_eq!(given, 10_000);
                assert!(listener.shortfall().is_none());
            }
        }
    }

    #[test]
    fn a_burst_past_128_waits_for_no_retransmission() {
        // A connect whose SYN finds the accept queue full is dropped and retried after a
        // second; with room in the queue a loopback connect takes microseconds. So a burst
        // past std's 128, with nothing accepted, shows the backlog without parsing `ss`.
        let listener = Listener::bind("127.0.0.1:0".parse().unwrap(), 1024).unwrap();
        let address = listener.socket.local_addr().unwrap();
        let burst = listener.backlog().min(600);
        let mut slowest = std::time::Duration::ZERO;
        let held: Vec<_> = (0..burst)
            .map(|_| {
                let started = std::time::Instant::now();
                let stream = std::net::TcpStream::connect(address).unwrap();
                slowest = slowest.max(started.elapsed());
                stream
            })
            .collect();
        assert!(
            slowest < std::time::Duration::from_millis(900),
            "a connect of {burst} took {slowest:?}: a SYN was dropped"
        );
        drop(held);
    }
}
