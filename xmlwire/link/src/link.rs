//! The blocking client link to manage: a socket with deadlines, the push reader, and a reused
//! output buffer. compute's work connection and every report command talk to manage this way.

use std::fmt;
use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use xmlwire::protocol::{self, DecodeError, Message};
use xmlwire::{Limits, Reader};

/// What went wrong on the link.
#[derive(Debug)]
pub enum LinkError {
    /// Nothing answered at the address within the deadline, or the connection was refused.
    Connect {
        /// manage's address.
        address: SocketAddr,
        /// Why.
        source: io::Error,
    },
    /// The socket refused its timeouts.
    Setup(io::Error),
    /// Writing failed (manage went away, or did not read within the deadline).
    Send(io::Error),
    /// Reading failed (manage went away, or sent nothing within the deadline).
    Receive(io::Error),
    /// manage closed the connection.
    Closed,
    /// manage sent bytes that are not well-formed XML within the reader's limits.
    BadXml(xmlwire::Error),
    /// manage sent XML that is not a valid message.
    BadMessage(DecodeError),
}

impl fmt::Display for LinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkError::Connect { address, source } => {
                write!(f, "cannot reach manage at {address}: {source}")
            }
            LinkError::Setup(e) => write!(f, "cannot set timeouts: {e}"),
            LinkError::Send(e) => write!(f, "cannot send to manage: {e}"),
            LinkError::Receive(e) => write!(f, "cannot read from manage: {e}"),
            LinkError::Closed => f.write_str("manage closed the connection"),
            LinkError::BadXml(e) => write!(f, "manage sent bad XML: {e}"),
            LinkError::BadMessage(e) => write!(f, "manage sent a bad message: {e}"),
        }
    }
}

impl std::error::Error for LinkError {}

/// A blocking connection to manage.
pub struct Link {
    stream: TcpStream,
    reader: Reader,
    out: Vec<u8>,
}

impl Link {
    /// Connects within `connect_timeout`; afterwards every read and write may block at most
    /// `reply_timeout`. `limits` bound what the reader accepts from manage.
    pub fn connect(
        address: SocketAddr,
        connect_timeout: Duration,
        reply_timeout: Duration,
        limits: Limits,
    ) -> Result<Link, LinkError> {
        let stream = TcpStream::connect_timeout(&address, connect_timeout)
            .map_err(|source| LinkError::Connect { address, source })?;
        stream
            .set_read_timeout(Some(reply_timeout))
            .and_then(|()| stream.set_write_timeout(Some(reply_timeout)))
            .map_err(LinkError::Setup)?;
        Ok(Link {
            stream,
            reader: Reader::new(limits),
            out: Vec::with_capacity(256),
        })
    }

    /// The socket, for its options and for another handle on it.
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Sends one message.
    pub fn send(&mut self, message: &Message<'_>) -> Result<(), LinkError> {
        self.send_all(&[message])
    }

    /// Sends the messages in one write.
    pub fn send_all(&mut self, messages: &[&Message<'_>]) -> Result<(), LinkError> {
        self.out.clear();
        for message in messages {
            message.encode(&mut self.out);
        }
        self.stream.write_all(&self.out).map_err(LinkError::Send)
    }

    /// Sends bytes already encoded.
    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<(), LinkError> {
        self.stream.write_all(bytes).map_err(LinkError::Send)
    }

    /// Waits for the next message (at most the reply timeout for each read) and hands it, with
    /// its raw bytes, to `handle`.
    pub fn receive<T>(
        &mut self,
        handle: impl FnOnce(&[u8], Message<'_>) -> T,
    ) -> Result<T, LinkError> {
        loop {
            match self.reader.next_message() {
                Ok(Some(frame)) => {
                    let message = protocol::decode(&frame).map_err(LinkError::BadMessage)?;
                    return Ok(handle(frame.bytes, message));
                }
                Ok(None) => {}
                Err(e) => return Err(LinkError::BadXml(e)),
            }
            match self.reader.read_from(&mut self.stream) {
                Ok(0) => return Err(LinkError::Closed),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(LinkError::Receive(e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::TcpListener;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn messages_go_out_and_come_back_whole() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let peer = std::thread::spawn(move || {
            let (mut socket, _) = listener.accept().unwrap();
            let mut got = [0u8; 32];
            let n = socket.read(&mut got).unwrap();
            // Answer in two pieces: the reader must wait for the whole message.
            socket.write_all(b"<wait ms=").unwrap();
            socket.flush().unwrap();
            std::thread::sleep(Duration::from_millis(20));
            socket.write_all(b"\"250\"/>").unwrap();
            got[..n].to_vec()
        });
        let mut link = Link::connect(address, SECOND, SECOND, Limits::default()).unwrap();
        link.send(&Message::Request).unwrap();
        let (raw, ms) = link
            .receive(|raw, message| match message {
                Message::Wait(wait) => (raw.to_vec(), wait.ms),
                other => panic!("{other:?}"),
            })
            .unwrap();
        assert_eq!(ms, 250);
        assert_eq!(raw, b"<wait ms=\"250\"/>");
        assert_eq!(peer.join().unwrap(), b"<request/>");
        assert!(matches!(
            link.receive(|_, _| ()).unwrap_err(),
            LinkError::Closed
        ));
    }

    #[test]
    fn failures_say_what_failed() {
        // A port that was free a moment ago: nothing listens there.
        let address = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let error = Link::connect(address, SECOND, SECOND, Limits::default())
            .err()
            .unwrap();
        assert!(
            error
                .to_string()
                .starts_with(&format!("cannot reach manage at {address}: ")),
            "{error}"
        );
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let peer = std::thread::spawn(move || {
            let (mut socket, _) = listener.accept().unwrap();
            socket.write_all(b"<assign lease=\"x\"/>").unwrap();
        });
        let mut link = Link::connect(address, SECOND, SECOND, Limits::default()).unwrap();
        let error = link.receive(|_, _| ()).unwrap_err();
        peer.join().unwrap();
        assert!(matches!(error, LinkError::BadMessage(_)), "{error}");
        assert!(error.to_string().starts_with("manage sent a bad message"));
    }
}
