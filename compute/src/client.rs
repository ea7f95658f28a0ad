//! Client mode: the worker that takes ranges from manage.
//!
//! The work connection is blocking and driven by the main thread: hello, then request, scan,
//! progress, result, again and again. A second connection, the control connection, is watched
//! by its own thread with a mio poll; on `<shutdown>` it sends this process SIGINT with kill(2),
//! which takes exactly the path of a Ctrl-C: the signal handlers set the stop flag, the scan
//! stops between blocks, and the finished prefix goes back to manage as a partial result.
//!
//! With `--accept-jobs` the control connection also carries jobs: each `<job>` runs on a thread
//! of its own in the sandbox ([`crate::sandbox::run_job`]) while the search goes on (see
//! `control`).

mod backoff;
mod control;

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use sigma_kernel::{cost, scan, Algorithm, ScanError};
use sigma_link::token::{self, TokenError};
use sigma_link::{Link, LinkError, ResolveError, DEFAULT_PORT};
use xmlwire::liveness::SILENCE_LIMIT;
use xmlwire::protocol::{self, ErrorCode, Message, PerfectList, WorkResult};
use xmlwire::{Limits, XmlStr};

use crate::priority::Priority;
use crate::sandbox::SandboxConfig;
use backoff::Backoff;
use control::{Control, ControlError};
/// How often a running scan reports how far it got.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(3);
/// How long manage may take to answer a message.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Bytes kept of each of a job's stdout, stderr and compiler output: three of them in base64
/// stay well under the 1 MiB message limit of manage's reader. Past it the sandbox stops the
/// program (`output-limit`) and the stream is flagged truncated.
const JOB_OUTPUT_CAP: usize = 192 << 10;

/// Why client mode stopped for good (what reconnecting cannot fix).
#[derive(Debug)]
pub enum ClientError {
    /// manage's address does not resolve.
    Resolve(ResolveError),
    /// The token file cannot be read.
    Token(TokenError),
    /// A signal handler cannot be installed.
    Signals(io::Error),
    /// Our own binary, which the sandbox runs jobs through, cannot be found.
    Sandbox(io::Error),
    /// Jobs cannot be isolated here (--accept-jobs refuses to start): what is missing.
    Isolation(String),
    /// manage refused us for good: another protocol version, or a token it does not take.
    Refused(ErrorCode, String),
    /// manage requires its token and we have none.
    TokenRequired(String),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Resolve(e) => e.fmt(f),
            ClientError::Token(e) => e.fmt(f),
            ClientError::Signals(e) => write!(f, "cannot install a signal handler: {e}"),
            ClientError::Sandbox(e) => {
                write!(f, "cannot find our own binary for the sandbox: {e}")
            }
            ClientError::Isolation(why) => write!(f, "--accept-jobs: {why}"),
            ClientError::Refused(code, text) => write!(f, "manage refused us: {code}: {text}"),
            ClientError::TokenRequired(text) => {
                write!(f, "manage requires its token ({text}): give --token-file")
            }
        }
    }
}

impl std::error::Error for ClientError {}

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
    /// The priority of the search threads and the timing loop.
    pub priority: Priority,
}

/// Connects to manage and scans the ranges it assigns until told to stop (a signal, or
/// manage's shutdown). Returns an error only for what retrying cannot fix.
pub fn run(options: Options) -> Result<(), ClientError> {
    let server = options
        .server
        .unwrap_or_else(|| format!("127.0.0.1:{DEFAULT_PORT}"));
    let address = sigma_link::resolve(&server).map_err(ClientError::Resolve)?;
    let threads = options
        .threads
        .unwrap_or_else(|| thread::available_parallelism().map_or(1, |n| n.get()));
    let algorithm = options.algorithm.unwrap_or(Algorithm::Sieve);
    let token = match &options.token_file {
        Some(path) => Some(token::read(path).map_err(ClientError::Token)?.token),
        None => None,
    };
    let stop = sigma_link::stop_flag().map_err(ClientError::Signals)?;
    let sandbox = if options.accept_jobs {
        let mut config = SandboxConfig::for_current_exe().map_err(ClientError::Sandbox)?;
        config.output_cap = JOB_OUTPUT_CAP;
        // Isolation or nothing: --accept-jobs refuses to start without it.
        config.prepare().map_err(ClientError::Isolation)?;
        Some(Arc::new(config))
    } else {
        None
    };
    log::info!("search priority: {}", options.priority);
    let ops_per_sec = measure_at(options.priority, algorithm, threads);
    log::info!(
        "timing loop: {ops_per_sec} ops/s with {threads} threads ({})",
        algorithm.as_str()
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
        priority: options.priority,
        stop,
        token,
        undelivered: None,
        sandbox,
        manage_silent: Arc::new(AtomicBool::new(false)),
    };
    me.run()
}

/// The timing loop, run on a thread at the search's priority so that its figure is what the
/// search gets: under SCHED_IDLE on a busy host that is less than the host could give.
fn measure_at(priority: Priority, algorithm: Algorithm, threads: usize) -> u64 {
    let measure = move || {
        if let Err(error) = priority.apply_to_current_thread() {
            log::warn!(
                "cannot lower the search to {priority}: {error}; it runs at normal priority"
            );
        }
        cost::measure_ops_per_second(algorithm, threads)
    };
    match thread::Builder::new().name("timing".into()).spawn(measure) {
        Ok(timing) => timing
            .join()
            .unwrap_or_else(|_| cost::measure_ops_per_second(algorithm, threads)),
        // No thread to spare: measured here, at normal priority.
        Err(_) => cost::measure_ops_per_second(algorithm, threads),
    }
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
    Lost(SessionError),
    /// manage refused us for a reason reconnecting cannot fix (no token, another version).
    Refused(ClientError),
}

/// Why a session failed to start or was lost (logged; the worker reconnects).
#[derive(Debug)]
enum SessionError {
    /// The link failed: connecting, or waiting for an answer.
    Link(LinkError),
    /// Sending a message failed: which one, and why.
    Send(&'static str, LinkError),
    /// The control connection could not be set up.
    Control(ControlError),
    /// Another handle on the work socket could not be made.
    CloneSocket(io::Error),
    /// manage answered with an error this state cannot act on.
    Refused(ErrorCode, String),
    /// manage answered something else than what was expected.
    Unexpected {
        /// What was expected.
        expected: String,
        /// What came.
        got: Reply,
    },
    /// manage sent nothing, not even a heartbeat, for the silence limit; the error the work
    /// connection met meanwhile, if any.
    Silent(Option<Box<SessionError>>),
    /// The scan thread could not be started.
    ScanThread(io::Error),
    /// The scan thread panicked.
    ScanPanicked,
    /// manage assigned a range the kernel refuses.
    Unscannable {
        /// Start of the range.
        lo: u64,
        /// End of the range.
        hi: u64,
        /// Why.
        error: ScanError,
    },
    /// More perfect numbers in one range than the protocol carries: a broken kernel.
    TooManyPerfect(usize),
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionError::Link(e) => e.fmt(f),
            SessionError::Send(what, e) => write!(f, "sending {what}: {e}"),
            SessionError::Control(e) => e.fmt(f),
            SessionError::CloneSocket(e) => write!(f, "cloning the work socket: {e}"),
            SessionError::Refused(code, text) => write!(f, "manage refused us: {code}: {text}"),
            SessionError::Unexpected { expected, got } => {
                write!(f, "expected {expected}, got {got:?}")
            }
            SessionError::Silent(during) => {
                write!(
                    f,
                    "manage silent for {} s, no heartbeat",
                    SILENCE_LIMIT.as_secs()
                )?;
                match during {
                    Some(error) => write!(f, " ({error})"),
                    None => Ok(()),
                }
            }
            SessionError::ScanThread(e) => write!(f, "cannot start the scan thread: {e}"),
            SessionError::ScanPanicked => f.write_str("the scan thread panicked"),
            SessionError::Unscannable { lo, hi, error } => {
                write!(
                    f,
                    "manage assigned [{lo}, {hi}), which cannot be scanned: {error}"
                )
            }
            SessionError::TooManyPerfect(count) => {
                write!(f, "{count} perfect numbers in one range")
            }
        }
    }
}

struct Worker {
    address: SocketAddr,
    host: String,
    pid: u32,
    threads: usize,
    algorithm: Algorithm,
    ops_per_sec: u64,
    /// The priority each lease's scan thread takes before it starts the kernel's threads.
    priority: Priority,
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
    fn run(mut self) -> Result<(), ClientError> {
        let mut backoff = Backoff::default();
        // The last failure logged: a line is written when the link's state changes, not on
        // every attempt (a manage down for an hour would otherwise fill the log).
        let mut logged_failure: Option<String> = None;
        loop {
            let started = Instant::now();
            match self.session() {
                Ok(SessionEnd::Stopped) => return Ok(()),
                Ok(SessionEnd::Refused(why)) => return Err(why),
                Ok(SessionEnd::Lost(why)) => {
                    log::warn!("lost manage at {}: {why}; reconnecting", self.address);
                    logged_failure = Some(why.to_string());
                    // Only a session that lasted shows manage is healthy again; quick
                    // failures keep backing off.
                    if started.elapsed() > backoff::MAX {
                        backoff.reset();
                    }
                }
                Err(why) => {
                    let why = why.to_string();
                    if logged_failure.as_ref() != Some(&why) {
                        log::warn!(
                            "cannot work with manage at {}: {why}; retrying, {:.1} s apart at first, up to {} s",
                            self.address,
                            backoff::FIRST.as_secs_f64(),
                            backoff::MAX.as_secs()
                        );
                        logged_failure = Some(why);
                    }
                }
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
            let delay = backoff.next_random();
            log::debug!("reconnecting in {:.1} s", delay.as_secs_f64());
            if self.sleep(delay) {
                return Ok(());
            }
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
    fn session(&mut self) -> Result<SessionEnd, SessionError> {
        let mut link = connect(self.address).map_err(SessionError::Link)?;
        let hello = Message::Hello(protocol::Hello {
            version: protocol::PROTOCOL_VERSION,
            host: XmlStr::Plain(&self.host),
            pid: u64::from(self.pid),
            threads: self.threads as u64,
            algorithm: self.algorithm,
            ops_per_sec: self.ops_per_sec,
        });
        link.send(&hello)
            .map_err(|e| SessionError::Send("hello", e))?;
        let (compute_id, session, nonce) = match receive(&mut link)? {
            Reply::Welcome {
                compute_id,
                session,
                nonce,
            } => (compute_id, session, nonce),
            Reply::Error(code @ (ErrorCode::Version | ErrorCode::Unauthorized), text) => {
                return Ok(SessionEnd::Refused(ClientError::Refused(code, text)))
            }
            Reply::Error(code, text) => return Err(SessionError::Refused(code, text)),
            other => {
                return Err(SessionError::Unexpected {
                    expected: "welcome".into(),
                    got: other,
                })
            }
        };
        // Proving the token costs nothing, and a manage that does not ask ignores it.
        let mac = self
            .token
            .as_deref()
            .and_then(|token| token::answer(token, &nonce));
        if let Some(mac) = mac.as_deref().and_then(protocol::Hex::new) {
            let auth = Message::Auth(protocol::Auth { mac });
            link.send(&auth)
                .map_err(|e| SessionError::Send("auth", e))?;
        }
        log::info!("joined manage at {} as compute {compute_id}", self.address);
        let work_socket = link
            .stream()
            .try_clone()
            .map_err(SessionError::CloneSocket)?;
        let control = Control::open(
            self.address,
            compute_id,
            &session,
            self.sandbox.clone(),
            work_socket,
        )
        .map_err(SessionError::Control)?;
        self.manage_silent = Arc::clone(&control.silent);
        let end = self.work(&mut link);
        control.close();
        Ok(match end {
            SessionEnd::Lost(why)
                if self.manage_silent.load(Ordering::Relaxed)
                    && !matches!(why, SessionError::Silent(_)) =>
            {
                SessionEnd::Lost(SessionError::Silent(Some(Box::new(why))))
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
                    return SessionEnd::Lost(SessionError::Send("a request", e));
                }
            }
            match receive(link) {
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
                    return SessionEnd::Refused(ClientError::TokenRequired(text))
                }
                Ok(Reply::Error(ErrorCode::ShuttingDown, _)) => {
                    // The shutdown message is on its way on the control connection.
                    self.sleep(Duration::from_millis(500));
                }
                Ok(other) => {
                    return SessionEnd::Lost(SessionError::Unexpected {
                        expected: "an assign or a wait".into(),
                        got: other,
                    })
                }
                Err(why) => return SessionEnd::Lost(why),
            }
        }
    }

    /// Scans `[lo, hi)` on all threads, reporting progress, then delivers the result. A stop
    /// ends the scan early and the finished prefix is delivered. If manage goes away mid-scan
    /// the scan still finishes: its result is delivered after reconnecting.
    fn scan_lease(
        &mut self,
        link: &mut Link,
        lease: u64,
        lo: u64,
        hi: u64,
    ) -> Result<(), SessionError> {
        let started = Instant::now();
        let progress = Arc::new(AtomicU64::new(lo));
        let scanner = {
            let (stop, progress) = (Arc::clone(&self.stop), Arc::clone(&progress));
            let (algorithm, threads, priority) = (self.algorithm, self.threads, self.priority);
            thread::Builder::new()
                .name("scan".into())
                .spawn(move || {
                    // A failure was logged by the timing loop, which tried first.
                    let _ = priority.apply_to_current_thread();
                    scan(algorithm, lo, hi, threads, &stop, Some(&progress))
                })
                .map_err(SessionError::ScanThread)?
        };
        let mut lost: Option<SessionError> = None;
        let mut reported = lo;
        let mut next_report = started + PROGRESS_INTERVAL;
        while !scanner.is_finished() {
            thread::sleep(Duration::from_millis(10));
            if lost.is_none() && self.manage_silent.load(Ordering::Relaxed) {
                // The scan goes on: its result is delivered after reconnecting, and counts
                // for every number nobody else finished meanwhile.
                lost = Some(SessionError::Silent(None));
            }
            if lost.is_none() && Instant::now() >= next_report {
                next_report += PROGRESS_INTERVAL;
                let done = progress.load(Ordering::Relaxed);
                if done > reported {
                    reported = done;
                    let message = Message::Progress(protocol::Progress { lease, done });
                    if let Err(e) = link.send(&message) {
                        lost = Some(SessionError::Send("progress", e));
                    }
                }
            }
        }
        let elapsed = started.elapsed();
        let outcome = scanner
            .join()
            .map_err(|_| SessionError::ScanPanicked)?
            .map_err(|error| SessionError::Unscannable { lo, hi, error })?;
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
    fn deliver(
        &mut self,
        link: &mut Link,
        finished: &Finished,
        ask: bool,
    ) -> Result<bool, SessionError> {
        let Some(perfect) = PerfectList::from_slice(&finished.perfect) else {
            // Only 8 perfect numbers exist below 2^64: more means a broken kernel.
            return Err(SessionError::TooManyPerfect(finished.perfect.len()));
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
        sent.map_err(|e| SessionError::Send("a result", e))?;
        match receive(link)? {
            Reply::Ack(lease) if lease == finished.lease => {}
            Reply::Error(ErrorCode::UnknownLease, text) => {
                log::warn!(
                    "manage did not take the result of lease {}: {text}",
                    finished.lease
                );
            }
            other => {
                return Err(SessionError::Unexpected {
                    expected: format!("the ack of lease {}", finished.lease),
                    got: other,
                })
            }
        }
        self.undelivered = None;
        Ok(ask)
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

/// The work connection: a link with no delay on small writes and TCP keepalive.
fn connect(address: SocketAddr) -> Result<Link, LinkError> {
    let link = Link::connect(address, CONNECT_TIMEOUT, REPLY_TIMEOUT, Limits::default())?;
    let _ = link.stream().set_nodelay(true);
    if let Err(e) = sigma_link::keep_alive(link.stream()) {
        log::warn!("cannot turn TCP keepalive on: {e}");
    }
    Ok(link)
}

/// The next message on the work connection, waiting at most the reply timeout.
fn receive(link: &mut Link) -> Result<Reply, SessionError> {
    link.receive(|_, message| Reply::from_message(message))
        .map_err(SessionError::Link)
}
