//! Client mode: the worker that takes ranges from manage.
//!
//! The work connection is blocking and driven by the main thread: hello, then request, scan,
//! progress, result, again and again. A second connection, the control connection, is watched
//! by its own thread with a mio poll; on `<shutdown>` it sends this process SIGINT with kill(2),
//! which takes exactly the path of a Ctrl-C: the signal handlers set the stop flag, the scan
//! stops between blocks, and the finished prefix goes back to manage as a partial result.
//!
//! With `--accept-jobs` the control connection also carries jobs: each `<job>` runs on a thread
//! of its own in the sandbox ([`crate::sandbox::run_job`]) while the search goes on, and its
//! `<job-result>` goes back through a channel to the control thread, which a mio `Waker` wakes;
//! only that thread touches the control socket.

use std::io::{self, Write};
use std::net::{Shutdown as SocketShutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use xmlwire::liveness::{Liveness, SILENCE_LIMIT};
use xmlwire::protocol::{self, ErrorCode, Message, PerfectList, WorkResult};
use xmlwire::{Limits, Reader, XmlStr};

use crate::sandbox::{run_job, JobOutcome, JobRequest, SandboxConfig};
use crate::{cost, scan, Algorithm};

/// The port manage listens on by default (8128 is the 4th perfect number).
pub const DEFAULT_PORT: u16 = 8128;
/// How often a running scan reports how far it got.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(3);
/// How long manage may take to answer a message.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Reconnection backoff: doubles from the first to the last.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Bytes kept of each of a job's stdout, stderr and compiler output: three of them in base64
/// stay well under the 1 MiB message limit of manage's reader. Past it the sandbox stops the
/// program (`output-limit`) and the stream is flagged truncated.
const JOB_OUTPUT_CAP: usize = 192 << 10;

/// What client mode is given on the command line.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// manage's address, `HOST[:PORT]` (default 127.0.0.1:8128).
    pub server: Option<String>,
    /// Scan threads (default: every core).
    pub threads: Option<usize>,
    /// The algorithm (default: sieve).
    pub algorithm: Option<Algorithm>,
    /// A file holding manage's token, for a manage that requires it.
    pub token_file: Option<std::path::PathBuf>,
    /// Run the jobs manage sends on the control connection.
    pub accept_jobs: bool,
}

/// Connects to manage and scans the ranges it assigns until told to stop (a signal, or
/// manage's shutdown). Returns an error only for what retrying cannot fix.
pub fn run(options: Options) -> Result<(), String> {
    let server = options
        .server
        .unwrap_or_else(|| format!("127.0.0.1:{DEFAULT_PORT}"));
    let address = resolve(&server)?;
    let threads = options
        .threads
        .unwrap_or_else(|| thread::available_parallelism().map_or(1, |n| n.get()));
    let algorithm = options.algorithm.unwrap_or(Algorithm::Sieve);
    let token = match &options.token_file {
        Some(path) => Some(xmlwire::auth::read_token_file(path)?),
        None => None,
    };
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGQUIT,
        signal_hook::consts::SIGHUP,
        signal_hook::consts::SIGTERM,
    ] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .map_err(|e| format!("cannot install a signal handler: {e}"))?;
    }
    let sandbox = if options.accept_jobs {
        let mut config = SandboxConfig::for_current_exe()
            .map_err(|e| format!("cannot find our own binary for the sandbox: {e}"))?;
        config.output_cap = JOB_OUTPUT_CAP;
        // Isolation or nothing: --accept-jobs refuses to start without it.
        config
            .prepare()
            .map_err(|e| format!("--accept-jobs: {e}"))?;
        Some(Arc::new(config))
    } else {
        None
    };
    let ops_per_sec = cost::measure_ops_per_second(algorithm, threads);
    log::info!(
        "timing loop: {ops_per_sec} ops/s with {threads} threads ({})",
        algorithm.name()
    );
    let host = hostname::get()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "unknown-host".into());
    let me = Worker {
        address,
        host,
        pid: std::process::id(),
        threads,
        algorithm,
        ops_per_sec,
        stop,
        token,
        undelivered: None,
        sandbox,
        manage_silent: Arc::new(AtomicBool::new(false)),
    };
    me.run()
}

/// `HOST`, `HOST:PORT`, `[V6]:PORT` or `V6`, resolved to the first address.
fn resolve(server: &str) -> Result<SocketAddr, String> {
    let with_port = if server.parse::<SocketAddr>().is_ok() {
        server.to_string()
    } else if server.parse::<std::net::Ipv6Addr>().is_ok() {
        format!("[{server}]:{DEFAULT_PORT}")
    } else if server.contains(':') {
        server.to_string()
    } else {
        format!("{server}:{DEFAULT_PORT}")
    };
    with_port
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {server}: {e}"))?
        .next()
        .ok_or_else(|| format!("{server} resolves to no address"))
}

/// A finished (or stopped) scan whose result manage has not acknowledged yet.
#[derive(Clone, Debug)]
struct Finished {
    lease: u64,
    lo: u64,
    hi: u64,
    elapsed_ms: u64,
    checksum: u64,
    perfect: Vec<u64>,
}

/// How a session with manage ended.
enum SessionEnd {
    /// We were told to stop, and said bye.
    Stopped,
    /// The connection failed or manage went away; reconnect.
    Lost(String),
    /// manage refused us for a reason reconnecting cannot fix (no token, another version).
    Refused(String),
}

struct Worker {
    address: SocketAddr,
    host: String,
    pid: u32,
    threads: usize,
    algorithm: Algorithm,
    ops_per_sec: u64,
    stop: Arc<AtomicBool>,
    /// manage's shared secret, when we were given it.
    token: Option<String>,
    /// Kept across reconnections, so finished work is delivered once manage is back.
    undelivered: Option<Finished>,
    /// Set with `--accept-jobs`: how jobs run.
    sandbox: Option<Arc<SandboxConfig>>,
    /// Set by the control thread of the current session when manage fell silent (no message,
    /// not even a heartbeat, for the silence limit): the session is lost.
    manage_silent: Arc<AtomicBool>,
}

impl Worker {
    fn run(mut self) -> Result<(), String> {
        let mut backoff = FIRST_BACKOFF;
        loop {
            let started = Instant::now();
            match self.session() {
                Ok(SessionEnd::Stopped) => return Ok(()),
                Ok(SessionEnd::Refused(why)) => return Err(why),
                Ok(SessionEnd::Lost(why)) => {
                    log::warn!("lost manage at {}: {why}", self.address);
                    // Only a session that lasted shows manage is healthy again; quick
                    // failures keep backing off.
                    if started.elapsed() > MAX_BACKOFF {
                        backoff = FIRST_BACKOFF;
                    }
                }
                Err(why) => log::warn!("cannot work with manage at {}: {why}", self.address),
            }
            if self.stopping() {
                if let Some(f) = &self.undelivered {
                    log::warn!(
                        "stopping with the result of [{}, {}) undelivered: manage reissues that range",
                        f.lo,
                        f.hi
                    );
                }
                return Ok(());
            }
            log::info!("reconnecting in {:.1} s", backoff.as_secs_f64());
            if self.sleep(backoff) {
                return Ok(());
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Sleeps up to `duration`, waking early on a stop; returns whether we are stopping.
    fn sleep(&self, duration: Duration) -> bool {
        let deadline = Instant::now() + duration;
        while Instant::now() < deadline {
            if self.stopping() {
                return true;
            }
            thread::sleep(Duration::from_millis(20).min(deadline - Instant::now()));
        }
        self.stopping()
    }

    /// One connection to manage: handshake, then work until stopped or lost. `Err` is a
    /// failure to connect or shake hands.
    fn session(&mut self) -> Result<SessionEnd, String> {
        let mut link = Link::connect(self.address)?;
        let hello = Message::Hello(protocol::Hello {
            version: protocol::PROTOCOL_VERSION,
            host: XmlStr::Plain(&self.host),
            pid: u64::from(self.pid),
            threads: self.threads as u64,
            algorithm: wire_algorithm(self.algorithm),
            ops_per_sec: self.ops_per_sec,
        });
        link.send(&hello)
            .map_err(|e| format!("sending hello: {e}"))?;
        let (compute_id, session, nonce) = match link.receive()? {
            Reply::Welcome {
                compute_id,
                session,
                nonce,
            } => (compute_id, session, nonce),
            Reply::Error(code @ (ErrorCode::Version | ErrorCode::Unauthorized), text) => {
                return Ok(SessionEnd::Refused(format!(
                    "manage refused us: {code}: {text}"
                )))
            }
            Reply::Error(code, text) => return Err(format!("manage refused us: {code}: {text}")),
            other => return Err(format!("expected welcome, got {other:?}")),
        };
        if let (Some(token), Some(nonce)) = (&self.token, protocol::Hex::new(&nonce)) {
            // Proving the token costs nothing, and a manage that does not ask ignores it.
            let mac = xmlwire::auth::answer(token, nonce);
            let auth = Message::Auth(protocol::Auth {
                mac: protocol::Hex::new(&mac).ok_or("a MAC that is not hex")?,
            });
            link.send(&auth).map_err(|e| format!("sending auth: {e}"))?;
        }
        log::info!("joined manage at {} as compute {compute_id}", self.address);
        let work_socket = link
            .stream
            .try_clone()
            .map_err(|e| format!("cloning the work socket: {e}"))?;
        let control = Control::open(
            self.address,
            compute_id,
            &session,
            self.sandbox.clone(),
            work_socket,
        )?;
        self.manage_silent = Arc::clone(&control.silent);
        let end = self.work(&mut link);
        control.close();
        Ok(match end {
            SessionEnd::Lost(why)
                if self.manage_silent.load(Ordering::Relaxed)
                    && !why.starts_with("manage silent") =>
            {
                SessionEnd::Lost(format!(
                    "manage silent for {} s, no heartbeat ({why})",
                    SILENCE_LIMIT.as_secs()
                ))
            }
            end => end,
        })
    }

    fn work(&mut self, link: &mut Link) -> SessionEnd {
        loop {
            // Whether the request went with the result (see `deliver`).
            let mut asked = false;
            if let Some(finished) = self.undelivered.clone() {
                match self.deliver(link, &finished, !self.stopping()) {
                    Ok(requested) => asked = requested,
                    Err(why) => return SessionEnd::Lost(why),
                }
            }
            if self.stopping() {
                // A request already sent is given back by manage when the bye comes.
                let _ = link.send(&Message::Bye);
                log::info!("stopped; said bye to manage");
                return SessionEnd::Stopped;
            }
            if !asked {
                if let Err(e) = link.send(&Message::Request) {
                    return SessionEnd::Lost(format!("sending a request: {e}"));
                }
            }
            match link.receive() {
                Ok(Reply::Assign { lease, lo, hi }) => {
                    if let Err(why) = self.scan_lease(link, lease, lo, hi) {
                        return SessionEnd::Lost(why);
                    }
                }
                Ok(Reply::Wait(ms)) => {
                    log::debug!("nothing to do; asking again in {ms} ms");
                    self.sleep(Duration::from_millis(ms.clamp(10, 60_000)));
                }
                Ok(Reply::Error(ErrorCode::Unauthorized, text)) => {
                    return SessionEnd::Refused(format!(
                        "manage requires its token ({text}): give --token-file"
                    ))
                }
                Ok(Reply::Error(ErrorCode::ShuttingDown, _)) => {
                    // The shutdown message is on its way on the control connection.
                    self.sleep(Duration::from_millis(500));
                }
                Ok(other) => return SessionEnd::Lost(format!("unexpected reply {other:?}")),
                Err(why) => return SessionEnd::Lost(why),
            }
        }
    }

    /// Scans `[lo, hi)` on all threads, reporting progress, then delivers the result. A stop
    /// ends the scan early and the finished prefix is delivered. If manage goes away mid-scan
    /// the scan still finishes: its result is delivered after reconnecting.
    fn scan_lease(&mut self, link: &mut Link, lease: u64, lo: u64, hi: u64) -> Result<(), String> {
        let started = Instant::now();
        let progress = Arc::new(AtomicU64::new(lo));
        let scanner = {
            let (stop, progress) = (Arc::clone(&self.stop), Arc::clone(&progress));
            let (algorithm, threads) = (self.algorithm, self.threads);
            thread::Builder::new()
                .name("scan".into())
                .spawn(move || scan(algorithm, lo, hi, threads, &stop, Some(&progress)))
                .map_err(|e| format!("cannot start the scan thread: {e}"))?
        };
        let mut lost: Option<String> = None;
        let mut reported = lo;
        let mut next_report = started + PROGRESS_INTERVAL;
        while !scanner.is_finished() {
            thread::sleep(Duration::from_millis(10));
            if lost.is_none() && self.manage_silent.load(Ordering::Relaxed) {
                // The scan goes on: its result is delivered after reconnecting, and counts
                // for every number nobody else finished meanwhile.
                lost = Some(format!(
                    "manage silent for {} s, no heartbeat",
                    SILENCE_LIMIT.as_secs()
                ));
            }
            if lost.is_none() && Instant::now() >= next_report {
                next_report += PROGRESS_INTERVAL;
                let done = progress.load(Ordering::Relaxed);
                if done > reported {
                    reported = done;
                    let message = Message::Progress(protocol::Progress { lease, done });
                    if let Err(e) = link.send(&message) {
                        lost = Some(format!("sending progress: {e}"));
                    }
                }
            }
        }
        let elapsed = started.elapsed();
        let outcome = scanner
            .join()
            .map_err(|_| "the scan thread panicked".to_string())?
            .map_err(|e| format!("manage assigned [{lo}, {hi}), which cannot be scanned: {e:?}"))?;
        let numbers = outcome.done - lo;
        let seconds = elapsed.as_secs_f64();
        log::info!(
            "lease {lease}: [{lo}, {}) {numbers} numbers in {seconds:.2} s, {:.0} numbers/s{}",
            outcome.done,
            numbers as f64 / seconds.max(1e-9),
            if outcome.done < hi {
                " (stopped early)"
            } else {
                ""
            }
        );
        for n in &outcome.perfect {
            log::info!("found perfect number {n}");
        }
        let finished = Finished {
            lease,
            lo,
            hi: outcome.done,
            elapsed_ms: elapsed.as_millis() as u64,
            checksum: outcome.checksum,
            perfect: outcome.perfect,
        };
        self.undelivered = Some(finished.clone());
        if let Some(why) = lost {
            return Err(why);
        }
        // Delivered at the top of `work`'s loop, with the next request.
        Ok(())
    }

    /// Sends a result and waits for its ack. Done either way when manage answers: an ack, or
    /// an unknown-lease error (the range was settled without it). With `ask`, the next
    /// request goes in the same write: manage answers both in one batch (the ack, then the
    /// assign), which saves a round trip between ranges. Returns whether it asked.
    fn deliver(&mut self, link: &mut Link, finished: &Finished, ask: bool) -> Result<bool, String> {
        let Some(perfect) = PerfectList::from_slice(&finished.perfect) else {
            // Only 8 perfect numbers exist below 2^64: more means a broken kernel.
            return Err(format!(
                "{} perfect numbers in one range",
                finished.perfect.len()
            ));
        };
        let message = Message::Result(WorkResult {
            lease: finished.lease,
            lo: finished.lo,
            hi: finished.hi,
            elapsed_ms: finished.elapsed_ms,
            checksum: finished.checksum,
            perfect,
        });
        let sent = if ask {
            link.send_all(&[&message, &Message::Request])
        } else {
            link.send(&message)
        };
        sent.map_err(|e| format!("sending a result: {e}"))?;
        match link.receive()? {
            Reply::Ack(lease) if lease == finished.lease => {}
            Reply::Error(ErrorCode::UnknownLease, text) => {
                log::warn!(
                    "manage did not take the result of lease {}: {text}",
                    finished.lease
                );
            }
            other => {
                return Err(format!(
                    "expected the ack of lease {}, got {other:?}",
                    finished.lease
                ))
            }
        }
        self.undelivered = None;
        Ok(ask)
    }
}

fn wire_algorithm(algorithm: Algorithm) -> protocol::Algorithm {
    match algorithm {
        Algorithm::Naive => protocol::Algorithm::Naive,
        Algorithm::Trial => protocol::Algorithm::Trial,
        Algorithm::Sieve => protocol::Algorithm::Sieve,
    }
}

/// What manage can answer on the work connection, copied out of the reader's buffer.
#[derive(Debug)]
enum Reply {
    Welcome {
        compute_id: u64,
        session: String,
        nonce: String,
    },
    Assign {
        lease: u64,
        lo: u64,
        hi: u64,
    },
    Wait(u64),
    Ack(u64),
    Error(ErrorCode, String),
    /// Any other message, by name; only ever shown in a log line (through Debug).
    Other(#[allow(dead_code)] &'static str),
}

impl Reply {
    fn from_message(message: Message<'_>) -> Reply {
        match message {
            Message::Welcome(w) => Reply::Welcome {
                compute_id: w.compute_id,
                session: w.session.as_str().to_string(),
                nonce: w.nonce.as_str().to_string(),
            },
            Message::Assign(a) => Reply::Assign {
                lease: a.lease,
                lo: a.lo,
                hi: a.hi,
            },
            Message::Wait(w) => Reply::Wait(w.ms),
            Message::Ack(a) => Reply::Ack(a.lease),
            Message::Error(e) => {
                let mut text = String::new();
                e.message.unescape_into(&mut text);
                Reply::Error(e.code, text)
            }
            other => Reply::Other(other.name()),
        }
    }
}

/// The blocking work connection: a socket, a reader and a reusable output buffer.
struct Link {
    stream: TcpStream,
    reader: Reader,
    out: Vec<u8>,
}

impl Link {
    fn connect(address: SocketAddr) -> Result<Link, String> {
        let stream = TcpStream::connect_timeout(&address, CONNECT_TIMEOUT)
            .map_err(|e| format!("connecting: {e}"))?;
        let _ = stream.set_nodelay(true);
        if let Err(e) = crate::net::keep_alive(&stream) {
            log::warn!("cannot turn TCP keepalive on: {e}");
        }
        stream
            .set_read_timeout(Some(REPLY_TIMEOUT))
            .and_then(|()| stream.set_write_timeout(Some(REPLY_TIMEOUT)))
            .map_err(|e| format!("setting timeouts: {e}"))?;
        Ok(Link {
            stream,
            reader: Reader::new(Limits::default()),
            out: Vec::with_capacity(256),
        })
    }

    fn send(&mut self, message: &Message<'_>) -> io::Result<()> {
        self.send_all(&[message])
    }

    /// The messages, in one write.
    fn send_all(&mut self, messages: &[&Message<'_>]) -> io::Result<()> {
        self.out.clear();
        for message in messages {
            message.encode(&mut self.out);
        }
        self.stream.write_all(&self.out)
    }

    /// The next message, waiting at most the reply timeout.
    fn receive(&mut self) -> Result<Reply, String> {
        loop {
            match self.reader.next_message() {
                Ok(Some(frame)) => {
                    return protocol::decode(&frame)
                        .map(Reply::from_message)
                        .map_err(|e| format!("bad message from manage: {e}"))
                }
                Ok(None) => {}
                Err(e) => return Err(format!("bad XML from manage: {e}")),
            }
            match self.reader.read_from(&mut self.stream) {
                Ok(0) => return Err("manage closed the connection".into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("reading: {e}")),
            }
        }
    }
}

/// The control connection and the thread that watches it.
struct Control {
    /// A handle on the same socket, to wake the thread by shutting the socket down.
    socket: TcpStream,
    watcher: JoinHandle<()>,
    /// Set by the thread when manage fell silent.
    silent: Arc<AtomicBool>,
}

impl Control {
    fn open(
        address: SocketAddr,
        compute_id: u64,
        session: &str,
        sandbox: Option<Arc<SandboxConfig>>,
        work: TcpStream,
    ) -> Result<Control, String> {
        let stream = TcpStream::connect_timeout(&address, CONNECT_TIMEOUT)
            .map_err(|e| format!("opening the control connection: {e}"))?;
        if let Err(e) = crate::net::keep_alive(&stream) {
            log::warn!("cannot turn TCP keepalive on: {e}");
        }
        let hex = protocol::Hex::new(session)
            .ok_or_else(|| "manage sent a session that is not hex".to_string())?;
        let mut out = Vec::new();
        Message::Control(protocol::Control {
            compute_id,
            session: hex,
            accept_jobs: sandbox.is_some(),
        })
        .encode(&mut out);
        (&stream)
            .write_all(&out)
            .map_err(|e| format!("sending control: {e}"))?;
        let socket = stream
            .try_clone()
            .map_err(|e| format!("cloning the control socket: {e}"))?;
        stream
            .set_nonblocking(true)
            .map_err(|e| format!("control socket: {e}"))?;
        let silent = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&silent);
        let watcher = thread::Builder::new()
            .name("control".into())
            .spawn(move || {
                if watch_control(stream, sandbox) == ControlEnd::Silent {
                    // Wake the work thread wherever it waits on manage: a blocked read
                    // returns, and the next write fails.
                    flag.store(true, Ordering::Relaxed);
                    let _ = work.shutdown(SocketShutdown::Both);
                }
            })
            .map_err(|e| format!("cannot start the control thread: {e}"))?;
        Ok(Control {
            socket,
            watcher,
            silent,
        })
    }

    fn close(self) {
        // End of stream wakes the watcher's poll, and it returns.
        let _ = self.socket.shutdown(SocketShutdown::Both);
        let _ = self.watcher.join();
    }
}

/// Why the control thread returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ControlEnd {
    /// The connection ended or failed (or the work thread closed it).
    Closed,
    /// manage sent nothing, not even a heartbeat, for the silence limit.
    Silent,
}

/// The control thread: a mio poll on the control socket. On `<shutdown>` it sends this process
/// SIGINT, the same path as Ctrl-C; a `<job>` (with a sandbox) starts a job thread, whose result
/// comes back through `results` and the waker and is written here. It sends `<heartbeat/>` when
/// it has sent nothing for the heartbeat interval, and gives manage up when it has heard nothing
/// for the silence limit ([`xmlwire::liveness`]). It returns when the connection ends (results
/// of jobs still running are then dropped).
fn watch_control(stream: TcpStream, sandbox: Option<Arc<SandboxConfig>>) -> ControlEnd {
    const CONTROL: mio::Token = mio::Token(0);
    const WAKE: mio::Token = mio::Token(1);
    let mut socket = mio::net::TcpStream::from_std(stream);
    let Ok(mut poll) = mio::Poll::new() else {
        log::error!("cannot create the control poll");
        return ControlEnd::Closed;
    };
    if poll
        .registry()
        .register(&mut socket, CONTROL, mio::Interest::READABLE)
        .is_err()
    {
        log::error!("cannot watch the control connection");
        return ControlEnd::Closed;
    }
    let waker = match mio::Waker::new(poll.registry(), WAKE) {
        Ok(waker) => Arc::new(waker),
        Err(e) => {
            log::error!("cannot create the control waker: {e}");
            return ControlEnd::Closed;
        }
    };
    let (results, finished) = mpsc::channel::<Vec<u8>>();
    let mut pending: Vec<u8> = Vec::new();
    let mut events = mio::Events::with_capacity(8);
    let mut reader = Reader::new(Limits::default());
    let mut liveness = Liveness::new(Instant::now());
    loop {
        let timeout = liveness
            .next_deadline()
            .saturating_duration_since(Instant::now());
        if let Err(e) = poll.poll(&mut events, Some(timeout)) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            log::error!("control poll failed: {e}");
            return ControlEnd::Closed;
        }
        // Drain to WouldBlock: mio reports readiness once per change.
        let mut heard = false;
        loop {
            match reader.read_from(&mut socket) {
                Ok(0) => return ControlEnd::Closed,
                Ok(_) => heard = true,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::OutOfMemory => break,
                Err(_) => return ControlEnd::Closed,
            }
        }
        let now = Instant::now();
        if heard {
            liveness.heard(now);
        }
        if liveness.silent(now) {
            log::warn!(
                "manage sent nothing on the control connection for {:.1} s: giving it up",
                liveness.silent_for(now).as_secs_f64()
            );
            return ControlEnd::Silent;
        }
        if liveness.heartbeat_due(now) {
            Message::Heartbeat.encode(&mut pending);
        }
        // Job results to send: queue them, then write what the socket takes.
        while let Ok(bytes) = finished.try_recv() {
            pending.extend_from_slice(&bytes);
        }
        while !pending.is_empty() {
            match socket.write(&pending) {
                Ok(0) => return ControlEnd::Closed,
                Ok(n) => {
                    pending.drain(..n);
                    liveness.sent(now);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log::warn!("cannot send a job result: {e}");
                    return ControlEnd::Closed;
                }
            }
        }
        let interest = if pending.is_empty() {
            mio::Interest::READABLE
        } else {
            mio::Interest::READABLE | mio::Interest::WRITABLE
        };
        if poll
            .registry()
            .reregister(&mut socket, CONTROL, interest)
            .is_err()
        {
            log::error!("cannot watch the control connection");
            return ControlEnd::Closed;
        }
        loop {
            match reader.next_message() {
                Ok(None) => break,
                Ok(Some(frame)) => match protocol::decode(&frame) {
                    Ok(Message::Shutdown(shutdown)) => {
                        let mut reason = String::new();
                        shutdown.reason.unescape_into(&mut reason);
                        log::info!("manage asks us to stop: {reason}");
                        if let Err(e) = kill(Pid::this(), Signal::SIGINT) {
                            log::error!("cannot signal ourselves: {e}");
                        }
                    }
                    Ok(Message::Heartbeat) => {}
                    Ok(Message::Job(job)) => match &sandbox {
                        Some(config) => {
                            start_job(&job, Arc::clone(config), results.clone(), &waker)
                        }
                        None => {
                            log::warn!("manage sent job {} but we do not accept jobs", job.id);
                            let mut out = Vec::new();
                            let outcome = JobOutcome {
                                status: protocol::JobStatus::Rejected,
                                exit_code: None,
                                signal: None,
                                stdout: Default::default(),
                                stderr: Default::default(),
                                compiler_output: Default::default(),
                                usage: Default::default(),
                                compile_usage: None,
                                message: Some("this compute does not accept jobs".into()),
                            };
                            encode_job_result(job.id, &outcome, &mut out);
                            pending.extend_from_slice(&out);
                            let _ = waker.wake();
                        }
                    },
                    Ok(other) => {
                        log::warn!("unexpected <{}> on the control connection", other.name())
                    }
                    Err(e) => {
                        log::warn!("bad message on the control connection: {e}");
                        return ControlEnd::Closed;
                    }
                },
                Err(e) => {
                    log::warn!("bad XML on the control connection: {e}");
                    return ControlEnd::Closed;
                }
            }
        }
    }
}

/// Copies a `<job>` out of the reader's buffer and runs it on a thread of its own; the encoded
/// `<job-result>` goes to `results`, and `waker` wakes the control thread to send it.
fn start_job(
    job: &protocol::Job<'_>,
    config: Arc<SandboxConfig>,
    results: mpsc::Sender<Vec<u8>>,
    waker: &Arc<mio::Waker>,
) {
    let id = job.id;
    let program = job.program;
    let language = program.language;
    let mut name = String::new();
    program.name.unescape_into(&mut name);
    let mut source = Vec::new();
    program.source.bytes_into(&mut source);
    let mut stdin = Vec::new();
    if let Some(input) = program.stdin {
        input.bytes_into(&mut stdin);
    }
    let limit = Duration::from_millis(program.time_limit_ms);
    let memory_mb = program.memory_limit_mb;
    let waker = Arc::clone(waker);
    log::info!(
        "job {id}: {name:?} ({}, {} ms, {memory_mb} MiB)",
        language.as_str(),
        program.time_limit_ms
    );
    let spawned = thread::Builder::new()
        .name(format!("job-{id}"))
        .spawn(move || {
            let request = JobRequest {
                language,
                name: &name,
                source: &source,
                stdin: &stdin,
                cpu_time: limit,
                wall_time: limit,
                memory_mb,
            };
            let outcome = run_job(&request, &config);
            log::info!(
                "job {id}: {} (exit {:?}, signal {:?}, {} ms CPU, {} ms wall, {} KiB)",
                outcome.status.as_str(),
                outcome.exit_code,
                outcome.signal,
                outcome.usage.cpu_ms,
                outcome.usage.wall_ms,
                outcome.usage.peak_kb
            );
            let mut out = Vec::new();
            encode_job_result(id, &outcome, &mut out);
            if results.send(out).is_err() {
                log::warn!("job {id}: the control connection is gone; its result is dropped");
                return;
            }
            let _ = waker.wake();
        });
    if let Err(e) = spawned {
        log::error!("job {id}: cannot start its thread: {e}");
    }
}

/// Encodes a job's outcome as its `<job-result>` (manage adds the compute and host).
fn encode_job_result(id: u64, outcome: &JobOutcome, out: &mut Vec<u8>) {
    let mut texts = [String::new(), String::new(), String::new()];
    let streams = [&outcome.stdout, &outcome.stderr, &outcome.compiler_output];
    for (text, stream) in texts.iter_mut().zip(streams) {
        protocol::Base64::encode_into(&stream.bytes, text);
    }
    let output = |i: usize| protocol::Output {
        data: protocol::Base64::new(&texts[i]).unwrap_or(protocol::Base64::EMPTY),
        truncated: streams[i].truncated,
    };
    let message = outcome.message.as_deref().map(XmlStr::Plain);
    Message::JobResult(protocol::JobResult {
        id,
        status: outcome.status,
        exit_code: outcome.exit_code.and_then(|c| u64::try_from(c).ok()),
        signal: outcome.signal.and_then(|s| u64::try_from(s).ok()),
        cpu_ms: outcome.usage.cpu_ms,
        wall_ms: outcome.usage.wall_ms,
        peak_kb: outcome.usage.peak_kb,
        compute_id: None,
        host: None,
        message,
        stdout: output(0),
        stderr: output(1),
        compiler_output: output(2),
    })
    .encode(out);
}
