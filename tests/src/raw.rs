//! Raw-socket helpers for the hardening tests: a TCP client that sends arbitrary bytes to manage
//! and reads its replies one message at a time, a scripted compute that holds a lease, manage's
//! resident memory, and the process's file-descriptor limit. Every wait is bounded.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// The hello of protocol.md, as a compute sends it.
pub const HELLO: &str =
    r#"<hello version="2" host="h" pid="1" threads="1" algorithm="sieve" ops-per-sec="1000000"/>"#;

/// How long a reply may take on loopback before a test calls it missing.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// A plain TCP client: bytes in, whole messages out.
pub struct Raw {
    /// The socket, for tests that need it directly.
    pub stream: TcpStream,
    /// Bytes read and not yet taken as a message.
    pending: Vec<u8>,
    /// The peer closed (end of stream or reset).
    eof: bool,
}

/// What reading a message found.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// One whole message.
    Message(String),
    /// manage closed the connection (end of stream, or a reset) with nothing more.
    Closed,
    /// Nothing complete arrived in time.
    Timeout,
}

impl Raw {
    /// Connects to `address` (bounded).
    pub fn connect(address: SocketAddr) -> Raw {
        let stream = TcpStream::connect_timeout(&address, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("connecting to {address}: {e}"));
        let _ = stream.set_nodelay(true);
        // A manage that stops reading must fail the test, not hang it.
        let _ = stream.set_write_timeout(Some(Duration::from_secs(10)));
        Raw {
            stream,
            pending: Vec::new(),
            eof: false,
        }
    }

    /// Wraps a connected socket (one a test accepted, playing manage).
    pub fn from_stream(stream: TcpStream) -> Raw {
        let _ = stream.set_nodelay(true);
        let _ = stream.set_write_timeout(Some(Duration::from_secs(10)));
        Raw {
            stream,
            pending: Vec::new(),
            eof: false,
        }
    }

    /// Sends all of `bytes`.
    pub fn send(&mut self, bytes: impl AsRef<[u8]>) -> io::Result<()> {
        self.stream.write_all(bytes.as_ref())
    }

    /// Sends all of `bytes`, panicking on failure.
    pub fn send_ok(&mut self, bytes: impl AsRef<[u8]>) {
        self.send(bytes).expect("manage takes the bytes");
    }

    /// Closes our sending side (manage sees end of stream).
    pub fn shut_write(&self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }

    /// The next whole message manage sent, waiting at most `timeout`.
    pub fn next(&mut self, timeout: Duration) -> Next {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(end) = message_end(&self.pending) {
                let message: Vec<u8> = self.pending.drain(..end).collect();
                let text = String::from_utf8_lossy(&message).trim().to_string();
                return Next::Message(text);
            }
            if self.eof {
                return Next::Closed;
            }
            let now = Instant::now();
            if now >= deadline {
                return Next::Timeout;
            }
            let _ = self
                .stream
                .set_read_timeout(Some((deadline - now).max(Duration::from_millis(1))));
            let mut chunk = [0u8; 64 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => self.eof = true,
                Ok(n) => self.pending.extend_from_slice(&chunk[..n]),
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.kind() == io::ErrorKind::TimedOut
                        || e.kind() == io::ErrorKind::Interrupted => {}
                // A reset: manage closed with our bytes unread. What it sent before is above.
                Err(_) => self.eof = true,
            }
        }
    }

    /// The next message, which must arrive within [`REPLY_TIMEOUT`].
    pub fn reply(&mut self) -> String {
        match self.next(REPLY_TIMEOUT) {
            Next::Message(message) => message,
            other => panic!("expected a reply from manage, got {other:?}"),
        }
    }

    /// Sends `bytes` and returns the reply.
    pub fn ask(&mut self, bytes: impl AsRef<[u8]>) -> String {
        self.send_ok(bytes);
        self.reply()
    }

    /// Expects an `<error>` with `code`, then the connection closed by manage; returns the
    /// error's text.
    pub fn expect_error_and_close(&mut self, code: &str) -> String {
        let reply = self.reply();
        assert!(
            reply.starts_with("<error ") && attr(&reply, "code").as_deref() == Some(code),
            "expected <error code=\"{code}\">, got {reply}"
        );
        self.expect_closed();
        reply
    }

    /// Expects manage to close the connection (within [`REPLY_TIMEOUT`]) with nothing more sent.
    pub fn expect_closed(&mut self) {
        match self.next(REPLY_TIMEOUT) {
            Next::Closed => {}
            other => panic!("expected manage to close the connection, got {other:?}"),
        }
    }
}

/// Where the first whole message of `bytes` ends, if one is complete. Enough for manage's
/// replies: attribute values are quoted and escaped, and only `<status>` has children, which
/// are empty elements.
fn message_end(bytes: &[u8]) -> Option<usize> {
    let start = bytes.iter().position(|b| !b.is_ascii_whitespace())?;
    if bytes[start] != b'<' {
        // Not XML: hand it over as it is, so the test shows it.
        return Some(bytes.len());
    }
    let name_end = start
        + 1
        + bytes[start + 1..]
            .iter()
            .position(|b| b.is_ascii_whitespace() || *b == b'/' || *b == b'>')?;
    let name = &bytes[start + 1..name_end];
    let mut quote = None;
    let mut i = name_end;
    while i < bytes.len() {
        let b = bytes[i];
        match quote {
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if b == b'"' || b == b'\'' => quote = Some(b),
            None if b == b'>' => {
                if bytes[i - 1] == b'/' {
                    return Some(i + 1);
                }
                let mut close = b"</".to_vec();
                close.extend_from_slice(name);
                close.push(b'>');
                return bytes[i..]
                    .windows(close.len())
                    .position(|w| w == close.as_slice())
                    .map(|p| i + p + close.len());
            }
            None => {}
        }
        i += 1;
    }
    None
}

/// The value of attribute `name` on the first element of `message` (as written, unescaped
/// only for the test's purposes: none of the values looked at hold references).
pub fn attr(message: &str, name: &str) -> Option<String> {
    let tag_end = message.find('>').unwrap_or(message.len());
    let tag = &message[..tag_end];
    let needle = format!(" {name}=\"");
    let at = tag.find(&needle)? + needle.len();
    let len = tag[at..].find('"')?;
    Some(tag[at..at + len].to_string())
}

/// The number in attribute `name`, which must be there.
pub fn num(message: &str, name: &str) -> u64 {
    attr(message, name)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no number {name} in {message}"))
}

/// The `<compute>` element with `id` in a `<status>` document.
pub fn compute_in_status(status: &str, id: u64) -> Option<String> {
    let needle = format!("<compute id=\"{id}\"");
    let at = status.find(&needle)?;
    let end = status[at..].find("/>")? + 2;
    Some(status[at..at + end].to_string())
}

/// Asks for a `<status>` on a fresh connection, then says bye.
pub fn status(address: SocketAddr) -> String {
    let mut client = Raw::connect(address);
    let status = client.ask("<status-request/>");
    assert!(
        status.starts_with("<status "),
        "expected <status>, got {status}"
    );
    let _ = client.send("<bye/>");
    status
}

/// A compute played by the test: it said hello, got a welcome, and holds one lease.
pub struct FakeCompute {
    /// Its work connection.
    pub raw: Raw,
    /// The compute id from the welcome.
    pub id: u64,
    /// Its lease: id, lo, hi.
    pub lease: u64,
    pub lo: u64,
    pub hi: u64,
}

impl FakeCompute {
    /// Connects, says the hello of protocol.md, and asks for a lease.
    pub fn join(address: SocketAddr) -> FakeCompute {
        Self::join_as(address, HELLO)
    }

    /// Connects, says `hello`, and asks for a lease.
    pub fn join_as(address: SocketAddr, hello: &str) -> FakeCompute {
        let mut raw = Raw::connect(address);
        let welcome = raw.ask(hello);
        assert!(
            welcome.starts_with("<welcome "),
            "expected <welcome>, got {welcome}"
        );
        let id = num(&welcome, "compute-id");
        let mut compute = FakeCompute {
            raw,
            id,
            lease: 0,
            lo: 0,
            hi: 0,
        };
        compute.request();
        compute
    }

    /// Asks for a lease and keeps it.
    pub fn request(&mut self) {
        let assign = self.raw.ask("<request/>");
        assert!(
            assign.starts_with("<assign "),
            "expected <assign>, got {assign}"
        );
        self.lease = num(&assign, "lease");
        self.lo = num(&assign, "lo");
        self.hi = num(&assign, "hi");
        assert!(self.lo < self.hi, "{assign}");
    }

    /// Reports progress to `done` (no reply is sent for progress).
    pub fn progress(&mut self, done: u64) {
        let message = format!(r#"<progress lease="{}" done="{done}"/>"#, self.lease);
        self.raw.send_ok(message);
    }

    /// Sends the result of the whole lease and expects its ack.
    pub fn finish(&mut self) {
        let result = format!(
            r#"<result lease="{}" lo="{}" hi="{}" elapsed-ms="5" checksum="0"/>"#,
            self.lease, self.lo, self.hi
        );
        let ack = self.raw.ask(result);
        assert_eq!(ack, format!(r#"<ack lease="{}"/>"#, self.lease));
    }

    /// Proves it is still served: progress shows in the status, the result is acked, and a new
    /// lease follows. Returns how many numbers the result added to `tested`.
    pub fn keeps_working(&mut self, address: SocketAddr) -> u64 {
        let before = num(&status(address), "tested");
        let done = self.lo + (self.hi - self.lo) / 2;
        self.progress(done);
        // Progress has no reply: wait (bounded) until the status shows it.
        let deadline = Instant::now() + REPLY_TIMEOUT;
        loop {
            let status = status(address);
            let mine = compute_in_status(&status, self.id)
                .unwrap_or_else(|| panic!("compute {} missing from {status}", self.id));
            if attr(&mine, "done").and_then(|d| d.parse().ok()) == Some(done) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "progress to {done} never showed: {mine}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let numbers = self.hi - self.lo;
        self.finish();
        let after = num(&status(address), "tested");
        assert_eq!(after, before + numbers, "the acked result counts once");
        self.request();
        numbers
    }
}

/// Resident memory of process `pid` in KiB (VmRSS of /proc/PID/status).
pub fn rss_kib(pid: u32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("reading /proc/{pid}/status: {e}"));
    text.lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in /proc/{pid}/status"))
}

/// Raises this process's soft limit on open files as far as `wanted` (at most the hard limit);
/// processes started afterwards inherit it. Returns the soft limit now in force.
pub fn raise_open_files(wanted: u64) -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed in.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 0;
        }
        if limit.rlim_cur < wanted {
            let raised = libc::rlimit {
                rlim_cur: (wanted as libc::rlim_t).min(limit.rlim_max),
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    limit.rlim_cur
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_replies() {
        assert_eq!(message_end(b"<ack lease=\"1\"/>x"), Some(16));
        assert_eq!(message_end(b"<ack lease=\"1\""), None);
        assert_eq!(message_end(b"<e m='a/>b'/>"), Some(13));
        let status = b"<status a=\"1\"><compute id=\"1\"/></status>\n<x/>";
        assert_eq!(message_end(status), Some(40));
        assert_eq!(message_end(b"<status a=\"1\"><compute"), None);
        assert_eq!(
            attr("<error code=\"bad-xml\" about=\"pid\"/>", "about").as_deref(),
            Some("pid")
        );
        assert_eq!(attr("<a x=\"1\"><b y=\"2\"/></a>", "y"), None);
    }
}
