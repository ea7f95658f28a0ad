//! One TCP connection of the reactor: its socket, the incremental XML reader, and a write queue.
//! It only moves bytes; what the messages mean is decided by the server.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::time::Instant;

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use xmlwire::liveness::Liveness;
use xmlwire::{Limits, Reader};

/// Who is on the other end, once the first message said so.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Nothing received yet.
    Unknown,
    /// A compute's work connection.
    Compute(u64),
    /// A compute's control connection.
    Control(u64),
    /// A report client.
    Report,
}

/// A right a report's request needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Right {
    /// Submit a job (`<run>`): the submission token or the cluster token.
    Submit,
    /// Shut the cluster down (`<kill>`): the cluster token only.
    Cluster,
}

/// What this connection proved, and the nonce it must answer next.
#[derive(Debug, Default)]
pub struct AuthState {
    /// The last nonce sent and not yet answered (a welcome's or a challenge's).
    pub nonce: Option<String>,
    /// The connection answered a nonce with the cluster token (or no proof is asked of it, for
    /// a compute): it may work, or, as a report, shut the cluster down and submit jobs.
    pub authorized: bool,
    /// The connection answered a nonce with the submission token (or the cluster token): it may
    /// submit jobs, and nothing else.
    pub may_submit: bool,
}

impl AuthState {
    /// Whether the connection proved `right`.
    pub fn holds(&self, right: Right) -> bool {
        match right {
            Right::Submit => self.may_submit,
            Right::Cluster => self.authorized,
        }
    }
}

/// What reading did.
pub enum ReadOutcome {
    /// Read until the socket had nothing more; the connection stays open.
    Drained,
    /// The reader's buffer is full: take messages out, then read again.
    Full,
    /// The peer closed its side (or the connection failed).
    Closed,
}

/// A connection and its buffers. The read buffer lives in the [`Reader`] (capped by its limits);
/// the write queue is capped by the server, which drops a peer that never reads.
pub struct Connection {
    pub stream: TcpStream,
    pub peer: SocketAddr,
    pub reader: Reader,
    pub role: Role,
    pub auth: AuthState,
    /// Bytes queued for the peer; `outbox[sent..]` is still to go. Replies are encoded
    /// straight into it.
    pub outbox: Vec<u8>,
    sent: usize,
    /// Registered for writable events too (only while the outbox is not empty).
    wants_writable: bool,
    /// Close once the outbox is flushed (after an error reply or a bye).
    pub closing: bool,
    /// Closed: the server removes it after the event batch.
    pub closed: bool,
    /// Has replies queued in this batch (it is in the server's flush list).
    pub dirty: bool,
    pub last_heard: Instant,
    /// Heartbeats and silence, for a control connection (set once it is one).
    pub liveness: Option<Liveness>,
}

impl Connection {
    pub fn new(stream: TcpStream, peer: SocketAddr, limits: Limits, now: Instant) -> Self {
        Connection {
            stream,
            peer,
            reader: Reader::new(limits),
            role: Role::Unknown,
            auth: AuthState::default(),
            outbox: Vec::new(),
            sent: 0,
            wants_writable: false,
            closing: false,
            closed: false,
            dirty: false,
            last_heard: now,
            liveness: None,
        }
    }

    /// Reads everything the socket has into the reader, until it is drained, end of stream, or
    /// a full reader buffer (then the server takes messages out and calls again). Drained means
    /// WouldBlock, or a read shorter than the room it offered: the socket's queue was empty
    /// then, and with edge-triggered events any later byte raises a new event, so the
    /// WouldBlock read is a system call saved per event (Tokio skips it the same way). Not when
    /// the event said the peer closed (`peer_closed`): then reading goes on to the end of
    /// stream, which no later event would announce.
    pub fn read_available(&mut self, peer_closed: bool) -> ReadOutcome {
        loop {
            match self.reader.read_from(&mut self.stream) {
                Ok(0) => return ReadOutcome::Closed,
                Ok(_) if self.reader.last_read_was_short() && !peer_closed => {
                    return ReadOutcome::Drained
                }
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return ReadOutcome::Drained,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::OutOfMemory => return ReadOutcome::Full,
                // The reader is in error: the caller takes that error out and replies.
                Err(e) if e.kind() == io::ErrorKind::InvalidData => return ReadOutcome::Drained,
                Err(_) => return ReadOutcome::Closed,
            }
        }
    }

    /// Frees the read buffer and the outbox if nothing is pending in either (a quiet
    /// connection: an idle compute waits seconds between messages, so 10,000 of them would
    /// otherwise hold ~9 KiB each for nothing). Returns whether anything was freed.
    pub fn release_idle_memory(&mut self) -> bool {
        let outbox_free = self.pending_output() == 0 && self.outbox.capacity() > 0;
        if outbox_free {
            self.outbox = Vec::new();
            self.sent = 0;
        }
        self.reader.release_memory() | outbox_free
    }

    /// Bytes queued and not yet written.
    pub fn pending_output(&self) -> usize {
        self.outbox.len() - self.sent
    }

    /// Writes what it can; keeps writable interest registered only while something remains.
    /// Returns false when the connection failed.
    pub fn flush(&mut self, registry: &Registry, token: Token) -> bool {
        while self.sent < self.outbox.len() {
            match self.stream.write(&self.outbox[self.sent..]) {
                Ok(0) => return false,
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return false,
            }
        }
        if self.sent == self.outbox.len() {
            // Keep the allocation: the next reply reuses it.
            self.outbox.clear();
            self.sent = 0;
        }
        let want = self.sent < self.outbox.len();
        if want != self.wants_writable {
            let interest = if want {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            if registry
                .reregister(&mut self.stream, token, interest)
                .is_err()
            {
                return false;
            }
            self.wants_writable = want;
        }
        true
    }
}
