//! The reactor: one thread, one mio poll. It moves bytes between sockets and the I/O-free
//! [`Scheduler`], which decides everything; it also owns the clock, the signals and shutdown.

use std::collections::HashMap;
use std::io::{self, Read};
use std::net::{Shutdown, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use manage::checks::CheckOutcome;
use manage::jobs::{Action, Jobs, JobsConfig, Policy, Submitted};
use manage::registry::{ComputeInfo, Identity};
use manage::scheduler::{
    PerfectFinding, RequestOutcome, SchedError, Scheduler, SchedulerConfig, Snapshot,
};
use manage::sizing::CostModel;
use manage::store::{load_or_create_token, ComputeRow, Store, StoredLease};
use manage::{ComputeId, LeaseId, Millis};
use mio::event::Event;
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};
use signal_hook_mio::v1_0::Signals;
use slab::Slab;
use xmlwire::liveness::{Liveness, SILENCE_LIMIT};
use xmlwire::protocol::{
    self, Ack, Algorithm as WireAlgorithm, Challenge, ComputeStatus, ErrorCode, ErrorMessage,
    FlaggedCompute, FoundPerfect, Hello, Hex, Job, JobResult, JobStatus, LeaseStatus, Message,
    Output, Run, Schedule, Status, Stopping, Wait, Welcome, WorkResult,
};
use xmlwire::{auth, Limits, XmlStr};

use crate::connection::{AuthState, Connection, ReadOutcome, Role};
use crate::local::LocalComputes;
use crate::verify::{Claim, Verifier};

/// What `main` decided from the command line.
pub struct Config {
    pub listen: SocketAddr,
    /// Bounds asked for; a new state takes them, an existing one must match.
    pub start: Option<u64>,
    pub until: Option<u64>,
    pub state_dir: PathBuf,
    /// The shared secret; default: `token` in the state folder, created on first start.
    pub token_file: Option<PathBuf>,
    /// Computes must answer the welcome's nonce before they get work.
    pub require_token: bool,
    /// The share of completed ranges computed again by another compute, to compare checksums.
    pub double_check: f64,
    pub target: Duration,
    pub exit_when_done: bool,
    pub local_computes: usize,
    pub shutdown_grace: Duration,
    /// The shortest lease deadline.
    pub lease_floor: Duration,
}

const LISTENER: Token = Token(usize::MAX - 1);
const SIGNALS: Token = Token(usize::MAX - 2);
const WAKER: Token = Token(usize::MAX - 3);

/// Connections beyond the cap wait in the kernel's backlog: accepting pauses at the cap and
/// resumes below 90% of it, so a flood cannot make manage thrash between the two. The cap is this,
/// or less where the open-files limit is lower (see [`connection_cap`]): every compute holds two
/// connections, so 65,536 serves some 30,000 computes.
const MAX_CONNECTIONS: usize = 65_536;
/// Descriptors kept for everything that is not a connection: the listener, the poll, the signal
/// pipe, the waker, the database and its journal, the local computes' pipes, the verifier.
const RESERVED_DESCRIPTORS: u64 = 64;

/// Raises the soft limit on open files to the hard limit (allowed without privilege; the
/// common default soft limit of 1,024 would cap manage at a few hundred computes) and returns
/// how many connections fit under it, at most [`MAX_CONNECTIONS`].
fn connection_cap() -> usize {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let soft = match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => hard,
            Err(_) => soft,
        },
        Ok((soft, _)) => soft,
        // Unknown: assume the cap fits; accept errors still pause accepting.
        Err(_) => u64::MAX,
    };
    let cap = soft.saturating_sub(RESERVED_DESCRIPTORS).max(1);
    usize::try_from(cap).map_or(MAX_CONNECTIONS, |cap| cap.min(MAX_CONNECTIONS))
}
/// A peer that lets this much output pile up does not read its replies: it is dropped.
const MAX_PENDING_OUTPUT: usize = 4 << 20;
/// A connection must say who it is within this time (slow or silent clients hold no slot long).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often idle connections are looked for; the sweep is O(connections), so not every loop.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);
/// The largest protocol message manage reads (status requests and results are tiny; a run
/// carries a source file).
const MAX_MESSAGE_BYTES: usize = 1 << 20;

/// How long a job may take past its own time limit before manage gives up on it: the compute's
/// compile stage (60 s wall at most), the sandbox's own margins (~8 s), and the network.
const JOB_MARGIN_MS: u64 = 90_000;
/// The largest limits a `<run>` may ask for; over them it is rejected.
const MAX_JOB_TIME_MS: u64 = 600_000;
const MAX_JOB_MEMORY_MB: u64 = 16_384;

/// A message for another connection than the one being handled: a job to a compute's control
/// connection, or a job's result to the report waiting for it.
struct Outgoing {
    key: usize,
    bytes: Vec<u8>,
    /// Close that connection once this is flushed (a report after its result).
    close: bool,
}

/// The cost model the scheduler sizes ranges with: the kernel's own.
struct KernelCost;

impl CostModel for KernelCost {
    type Algorithm = sigma_kernel::Algorithm;
    fn ops(&self, algorithm: &sigma_kernel::Algorithm, lo: u64, hi: u64) -> f64 {
        sigma_kernel::cost::ops(*algorithm, lo, hi)
    }
}

fn kernel_algorithm(wire: WireAlgorithm) -> sigma_kernel::Algorithm {
    match wire {
        WireAlgorithm::Naive => sigma_kernel::Algorithm::Naive,
        WireAlgorithm::Trial => sigma_kernel::Algorithm::Trial,
        WireAlgorithm::Sieve => sigma_kernel::Algorithm::Sieve,
    }
}

fn wire_algorithm(kernel: sigma_kernel::Algorithm) -> WireAlgorithm {
    match kernel {
        sigma_kernel::Algorithm::Naive => WireAlgorithm::Naive,
        sigma_kernel::Algorithm::Trial => WireAlgorithm::Trial,
        sigma_kernel::Algorithm::Sieve => WireAlgorithm::Sieve,
    }
}

/// Milliseconds that never go backwards yet read as Unix time: the wall clock at start plus the
/// monotonic time since.
struct Clock {
    started: Instant,
    unix_ms_at_start: u64,
}

impl Clock {
    fn new() -> Clock {
        let unix_ms_at_start = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        Clock {
            started: Instant::now(),
            unix_ms_at_start,
        }
    }
    fn ms(&self, at: Instant) -> Millis {
        self.unix_ms_at_start + at.saturating_duration_since(self.started).as_millis() as u64
    }
    fn instant(&self, ms: Millis) -> Instant {
        self.started + Duration::from_millis(ms.saturating_sub(self.unix_ms_at_start))
    }
}

/// A compute's two connections and the session its control connection must present.
struct Links {
    work: usize,
    control: Option<usize>,
    session: String,
}

/// What handling one message asks of the reactor beyond the reply.
enum After {
    /// Keep reading this connection.
    Continue,
    /// Flush the reply and close this connection.
    Close,
    /// Start the clean shutdown.
    Shutdown(String),
    /// Reply sent; now signal ourselves (report -k), which starts the same clean shutdown.
    SignalSelf,
}

/// Everything but the connections, so a message borrowed from a connection's reader can be
/// handled while the rest of the server changes.
struct Core {
    config: Config,
    clock: Clock,
    scheduler: Scheduler<KernelCost>,
    links: HashMap<u64, Links>,
    verifier: Verifier,
    shutdown: Option<Instant>,
    store: Store,
    /// The shared secret privileged requests prove they hold.
    token: String,
    /// The first store error: manage stops without sending the replies that depended on it.
    store_failure: Option<String>,
    /// Job routing; job owners are report connection keys.
    jobs: Jobs,
    /// Each live job's encoded `<job>`, kept for failover.
    job_messages: HashMap<u64, Vec<u8>>,
    next_job: u64,
    /// Messages for other connections, queued by the handlers; the server delivers them.
    outgoing: Vec<Outgoing>,
}

pub fn run(config: Config) -> Result<(), String> {
    let poll = Poll::new().map_err(|e| format!("cannot create the poll: {e}"))?;
    let mut listener = TcpListener::bind(config.listen)
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let address = listener
        .local_addr()
        .map_err(|e| format!("cannot read the listening address: {e}"))?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)
        .map_err(|e| format!("cannot register the listener: {e}"))?;
    let mut signals = Signals::new([SIGINT, SIGQUIT, SIGHUP, SIGTERM])
        .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    poll.registry()
        .register(&mut signals, SIGNALS, Interest::READABLE)
        .map_err(|e| format!("cannot register signals: {e}"))?;
    let waker = Arc::new(
        Waker::new(poll.registry(), WAKER).map_err(|e| format!("cannot create a waker: {e}"))?,
    );
    let verifier =
        Verifier::start(waker).map_err(|e| format!("cannot start the verifier thread: {e}"))?;

    let (mut store, recovered) =
        Store::open(&config.state_dir, config.start, config.until, u64::MAX - 1)?;
    let token_path = config
        .token_file
        .clone()
        .unwrap_or_else(|| config.state_dir.join("token"));
    let token = load_or_create_token(&token_path, config.token_file.is_none())?;
    log::info!(
        "token in {}{}",
        token_path.display(),
        if config.require_token {
            "; computes must prove they hold it"
        } else {
            ""
        }
    );
    let mut scheduler_config = SchedulerConfig::new(recovered.start, recovered.until);
    scheduler_config.sizing.target_ms = config.target.as_millis().max(1) as u64;
    scheduler_config.deadline_floor_ms = config.lease_floor.as_millis().max(1) as u64;
    scheduler_config.double_check = config.double_check;
    let snapshot = Snapshot {
        start: recovered.start,
        until: recovered.until,
        done: recovered.done.clone(),
        perfect: recovered.perfect.clone(),
        next_lease: LeaseId(recovered.next_lease),
        next_compute: ComputeId(recovered.next_compute),
        outstanding: recovered
            .leases
            .iter()
            .map(manage::scheduler::RestoredLease::from)
            .collect(),
    };
    let scheduler = Scheduler::restore(scheduler_config, KernelCost, &snapshot)
        .map_err(|e| format!("bad search bounds: {e:?}"))?;
    // Leases outstanding at the last stop go back to the pool (restore left them undone).
    for lease in &recovered.leases {
        log::info!(
            "lease {} [{}, {}) of compute {} was outstanding at the last stop: back to the pool",
            lease.id.0,
            lease.lo,
            lease.hi,
            lease.compute.0
        );
        store.lease_ended(lease.id)?;
    }
    store.commit()?;
    let mut verifier = verifier;
    for claim in &recovered.claims {
        log::info!(
            "checking claim {} again (unchecked at the last stop)",
            claim.n
        );
        verifier.submit(Claim {
            n: claim.n,
            compute: claim.compute.0,
            host: claim.host.clone(),
            found_ms: claim.found_ms,
        });
    }
    let status = scheduler.status(0);
    log::info!(
        "state in {}: {}; {} numbers tested, every number below {} tested, perfect numbers {:?}",
        store.path().display(),
        if recovered.fresh { "new" } else { "resumed" },
        status.tested,
        status.frontier,
        status.perfect.iter().map(|p| p.n).collect::<Vec<_>>()
    );
    log::info!(
        "listening on {address}; searching {}..={} with ranges of {:.1} s",
        recovered.start,
        recovered.until,
        config.target.as_secs_f64()
    );
    let next_job = store.next_job_id()?;
    let mut local = LocalComputes::start(config.local_computes, address, &token_path)?;
    let grace = config.shutdown_grace;

    let max_connections = connection_cap();
    log::info!("up to {max_connections} connections at once");
    let mut server = Server {
        poll,
        listener,
        accepting: true,
        max_connections,
        signals,
        connections: Slab::new(),
        closed: Vec::new(),
        dirty: Vec::new(),
        next_sweep: Instant::now() + SWEEP_INTERVAL,
        core: Core {
            config,
            clock: Clock::new(),
            scheduler,
            links: HashMap::new(),
            verifier,
            shutdown: None,
            store,
            token,
            store_failure: None,
            jobs: Jobs::new(JobsConfig::default(), random_seed()),
            job_messages: HashMap::new(),
            next_job,
            outgoing: Vec::new(),
        },
    };
    let outcome = server.run();
    server.close_everything();
    local.stop(grace);
    let status = server
        .core
        .scheduler
        .status(server.core.clock.ms(Instant::now()));
    log::info!(
        "stopped: {} numbers tested, every number below {} tested, perfect numbers: {:?}",
        status.tested,
        status.frontier,
        status.perfect.iter().map(|p| p.n).collect::<Vec<_>>()
    );
    outcome
}

struct Server {
    poll: Poll,
    listener: TcpListener,
    accepting: bool,
    /// At most this many connections at once (from [`connection_cap`]).
    max_connections: usize,
    signals: Signals,
    connections: Slab<Connection>,
    /// Keys closed during the current event batch, removed after it (keys are reused).
    closed: Vec<usize>,
    /// Keys with replies queued in this batch: flushed after the batch's commit.
    dirty: Vec<usize>,
    next_sweep: Instant,
    core: Core,
}

impl Server {
    fn run(&mut self) -> Result<(), String> {
        let mut events = Events::with_capacity(1024);
        loop {
            let timeout = self.poll_timeout();
            crate::log_output::flush();
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(format!("poll failed: {e}"));
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(),
                    SIGNALS => self.drain_signals(),
                    WAKER => self.collect_verdicts(),
                    Token(key) => self.connection_event(key, event),
                }
            }
            self.on_timers();
            self.commit_and_flush()?;
            self.remove_closed();
            if self.finished() {
                return Ok(());
            }
        }
    }

    /// Until the nearest deadline: a lease expiry, the idle sweep, or the end of shutdown.
    fn poll_timeout(&self) -> Duration {
        let now = Instant::now();
        let mut next = self.next_sweep;
        if let Some(deadline) = self.core.scheduler.next_deadline() {
            next = next.min(self.core.clock.instant(deadline));
        }
        if let Some(deadline) = self.core.jobs.next_deadline() {
            next = next.min(self.core.clock.instant(deadline));
        }
        if let Some(deadline) = self.core.shutdown {
            next = next.min(deadline);
        }
        next.saturating_duration_since(now)
    }

    fn accept(&mut self) {
        while self.accepting {
            if self.connections.len() >= self.max_connections {
                log::warn!(
                    "{} connections: not accepting more for now",
                    self.max_connections
                );
                self.pause_accepting();
                return;
            }
            match self.listener.accept() {
                Ok((mut stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    if let Err(e) = sigma_link::keep_alive(&stream) {
                        log::debug!("cannot turn TCP keepalive on for {peer}: {e}");
                    }
                    let entry = self.connections.vacant_entry();
                    let token = Token(entry.key());
                    if let Err(e) =
                        self.poll
                            .registry()
                            .register(&mut stream, token, Interest::READABLE)
                    {
                        log::warn!("cannot register a connection from {peer}: {e}");
                        continue;
                    }
                    log::debug!("connection {} from {peer}", token.0);
                    let limits = Limits {
                        max_message_bytes: MAX_MESSAGE_BYTES,
                        ..Limits::default()
                    };
                    entry.insert(Connection::new(stream, peer, limits, Instant::now()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Out of file descriptors, most likely: back off until connections close.
                    log::warn!("accept failed: {e}");
                    self.pause_accepting();
                    return;
                }
            }
        }
    }

    fn pause_accepting(&mut self) {
        if self.accepting {
            let _ = self.poll.registry().deregister(&mut self.listener);
            self.accepting = false;
        }
    }

    fn resume_accepting(&mut self) {
        if !self.accepting && self.core.shutdown.is_none() {
            if let Err(e) =
                self.poll
                    .registry()
                    .register(&mut self.listener, LISTENER, Interest::READABLE)
            {
                log::warn!("cannot resume accepting: {e}");
                return;
            }
            self.accepting = true;
        }
    }

    fn drain_signals(&mut self) {
        let received: Vec<i32> = self.signals.pending().collect();
        for signal in received {
            let name = match signal {
                SIGINT => "SIGINT",
                SIGQUIT => "SIGQUIT",
                SIGHUP => "SIGHUP",
                SIGTERM => "SIGTERM",
                _ => "a signal",
            };
            self.begin_shutdown(&format!("received {name}"));
        }
    }

    fn collect_verdicts(&mut self) {
        for verdict in self.core.verifier.ready() {
            let claim = verdict.claim;
            let finding = PerfectFinding {
                n: claim.n,
                compute: ComputeId(claim.compute),
                host: claim.host.clone(),
                found_ms: claim.found_ms,
            };
            let written = self.core.store.claim_checked(&finding, verdict.perfect);
            self.core.persist(written);
            if !verdict.perfect {
                log::warn!(
                    "compute {} on {} claimed {}, which is not perfect: not recorded",
                    claim.compute,
                    claim.host,
                    claim.n
                );
                let now_ms = self.core.clock.ms(Instant::now());
                if let Some(flagged) =
                    self.core
                        .scheduler
                        .claim_refuted(ComputeId(claim.compute), claim.n, now_ms)
                {
                    log_flagged(&flagged);
                }
                continue;
            }
            let host = claim.host.clone();
            if self.core.scheduler.record_perfect(
                claim.n,
                ComputeId(claim.compute),
                claim.host,
                claim.found_ms,
            ) {
                log::info!(
                    "perfect number {} found by compute {} on {host}",
                    claim.n,
                    claim.compute
                );
            }
        }
    }

    fn connection_event(&mut self, key: usize, event: &Event) {
        let Some(connection) = self.connections.get_mut(key) else {
            return; // spurious: already removed
        };
        if connection.closed {
            return;
        }
        if event.is_writable() && !connection.flush(self.poll.registry(), Token(key)) {
            self.close(key, "write failed");
            return;
        }
        if !(event.is_readable() || event.is_read_closed() || event.is_error()) {
            return;
        }
        let peer_closed = event.is_read_closed() || event.is_error();
        loop {
            let outcome = match self.connections.get_mut(key) {
                Some(connection) => connection.read_available(peer_closed),
                None => return,
            };
            self.take_messages(key);
            match outcome {
                ReadOutcome::Drained => break,
                ReadOutcome::Full if self.is_open(key) => continue,
                ReadOutcome::Full => break,
                ReadOutcome::Closed => {
                    // Replies already queued still go out (the peer may only have shut down
                    // its sending side); then the connection is closed.
                    if let Some(connection) = self.connections.get_mut(key) {
                        connection.closing = true;
                    }
                    break;
                }
            }
        }
        self.mark_dirty(key);
    }

    fn is_open(&self, key: usize) -> bool {
        self.connections.get(key).is_some_and(|c| !c.closed)
    }

    /// Takes every complete message out of the connection's reader and handles it.
    fn take_messages(&mut self, key: usize) {
        let now = Instant::now();
        loop {
            let Some(connection) = self.connections.get_mut(key) else {
                return;
            };
            if connection.closed || connection.closing {
                return;
            }
            // Replies are flushed only after the event batch, and a peer that pipelines
            // requests faster than manage answers them keeps this read loop going: without this
            // check its replies piled up here without bound (hardening test: 2,000,000
            // pipelined status requests grew manage past 170 MiB and stalled everyone else).
            if connection.pending_output() > MAX_PENDING_OUTPUT {
                self.close(key, "it does not read its replies");
                return;
            }
            let peer = connection.peer;
            let after = match connection.reader.next_message() {
                Ok(None) => return,
                Ok(Some(frame)) => {
                    connection.last_heard = now;
                    if let Some(liveness) = &mut connection.liveness {
                        liveness.heard(now);
                    }
                    match protocol::decode(&frame) {
                        Ok(message) => self.core.handle(
                            key,
                            peer,
                            &mut connection.role,
                            &mut connection.auth,
                            &mut connection.outbox,
                            message,
                            now,
                        ),
                        Err(error) => {
                            log::warn!("bad message from {peer}: {error}; closing");
                            let reply = error.to_message(&frame);
                            Message::Error(reply).encode(&mut connection.outbox);
                            After::Close
                        }
                    }
                }
                Err(error) => {
                    log::warn!("bad XML from {peer}: {error}; closing");
                    let code = ErrorCode::for_reader_error(&error);
                    let text = error.to_string();
                    let reply = ErrorMessage {
                        code,
                        message: XmlStr::Plain(&text),
                        about: None,
                    };
                    Message::Error(reply).encode(&mut connection.outbox);
                    After::Close
                }
            };
            if let Some(connection) = self.connections.get_mut(key) {
                if matches!(connection.role, Role::Control(_)) && connection.liveness.is_none() {
                    connection.liveness = Some(Liveness::new(now));
                }
            }
            self.mark_dirty(key);
            self.deliver();
            match after {
                After::Continue => {}
                After::Close => {
                    if let Some(connection) = self.connections.get_mut(key) {
                        connection.closing = true;
                    }
                    return;
                }
                After::Shutdown(reason) => self.begin_shutdown(&reason),
                After::SignalSelf => {
                    if kill(Pid::this(), Signal::SIGINT).is_err() {
                        self.begin_shutdown("asked to by report (kill(2) failed)");
                    }
                }
            }
        }
    }

    /// Group commit: the batch's changes go to disk in one transaction, and only then are the
    /// batch's replies (acks among them) sent. A failed commit stops manage with nothing sent.
    fn commit_and_flush(&mut self) -> Result<(), String> {
        if let Some(failure) = self.core.store_failure.take() {
            return Err(failure);
        }
        // Closing a connection can queue messages for others (a job given back goes to another
        // compute, or its report is told): loop until nothing is left to flush.
        loop {
            self.core.store.commit()?;
            let dirty = std::mem::take(&mut self.dirty);
            if dirty.is_empty() {
                return Ok(());
            }
            for &key in &dirty {
                if let Some(connection) = self.connections.get_mut(key) {
                    connection.dirty = false;
                }
                self.flush(key);
                if self.connections.get(key).is_some_and(|c| c.closing) {
                    self.close(key, "closing after the reply");
                }
            }
            if let Some(failure) = self.core.store_failure.take() {
                return Err(failure);
            }
        }
    }

    /// Moves the messages the handlers queued for other connections into their outboxes. A
    /// connection that is gone loses its message (a report that left: its result is dropped).
    fn deliver(&mut self) {
        for out in std::mem::take(&mut self.core.outgoing) {
            match self.connections.get_mut(out.key) {
                Some(connection) if !connection.closed && !connection.closing => {
                    connection.outbox.extend_from_slice(&out.bytes);
                    if out.close {
                        connection.closing = true;
                    }
                    self.mark_dirty(out.key);
                }
                _ => log::info!(
                    "connection {} is gone: a message for it is dropped",
                    out.key
                ),
            }
        }
    }

    /// Notes that a connection has replies queued.
    fn mark_dirty(&mut self, key: usize) {
        if let Some(connection) = self.connections.get_mut(key) {
            if !connection.dirty {
                connection.dirty = true;
                self.dirty.push(key);
            }
        }
    }

    fn flush(&mut self, key: usize) {
        let Some(connection) = self.connections.get_mut(key) else {
            return;
        };
        if connection.closed {
            return;
        }
        if !connection.flush(self.poll.registry(), Token(key)) {
            self.close(key, "write failed");
        } else if connection.pending_output() > MAX_PENDING_OUTPUT {
            self.close(key, "it does not read its replies");
        }
    }

    /// Marks a connection closed and settles what it held; it is removed after the batch.
    fn close(&mut self, key: usize, why: &str) {
        let Some(connection) = self.connections.get_mut(key) else {
            return;
        };
        if connection.closed {
            return;
        }
        connection.closed = true;
        // Our side is done: the peer reads what was flushed, then end of stream.
        let _ = connection.stream.shutdown(Shutdown::Write);
        self.closed.push(key);
        let peer = connection.peer;
        match connection.role {
            Role::Compute(id) => self.core.compute_left(id, key, why),
            Role::Control(id) => {
                let mut was_current = false;
                if let Some(links) = self.core.links.get_mut(&id) {
                    if links.control == Some(key) {
                        links.control = None;
                        was_current = true;
                    }
                }
                log::debug!("control connection of compute {id} closed: {why}");
                if was_current {
                    self.core.jobs_compute_gone(id);
                }
            }
            Role::Report => {
                log::debug!("connection from {peer} closed: {why}");
                self.core.report_gone(key);
            }
            Role::Unknown => log::debug!("connection from {peer} closed: {why}"),
        }
        self.deliver();
    }

    fn remove_closed(&mut self) {
        for key in self.closed.drain(..) {
            if let Some(mut connection) = self.connections.try_remove(key) {
                let _ = self.poll.registry().deregister(&mut connection.stream);
            }
        }
        if self.connections.len() < self.max_connections / 10 * 9 {
            self.resume_accepting();
        }
    }

    fn on_timers(&mut self) {
        let now = Instant::now();
        let now_ms = self.core.clock.ms(now);
        let expired = self.core.jobs.expire(now_ms);
        self.core.apply(expired, now_ms);
        self.deliver();
        for expired in self.core.scheduler.expire(now_ms) {
            let written = self.core.store.lease_ended(expired.lease);
            self.core.persist(written);
            log::warn!(
                "lease {} of compute {} expired: [{}, {}) goes back to the pool",
                expired.lease.0,
                expired.compute.0,
                expired.lo,
                expired.hi
            );
        }
        if now >= self.next_sweep {
            self.next_sweep = now + SWEEP_INTERVAL;
            self.release_quiet_buffers(now);
            let silent: Vec<usize> = self
                .connections
                .iter()
                .filter(|(_, c)| {
                    !c.closed
                        && c.role == Role::Unknown
                        && now.duration_since(c.last_heard) > HANDSHAKE_TIMEOUT
                })
                .map(|(key, _)| key)
                .collect();
            self.heartbeats(now);
            for key in silent {
                if let Some(connection) = self.connections.get_mut(key) {
                    let reply = ErrorMessage {
                        code: ErrorCode::OutOfOrder,
                        message: XmlStr::Plain("no complete first message in time"),
                        about: None,
                    };
                    Message::Error(reply).encode(&mut connection.outbox);
                }
                if let Some(connection) = self.connections.get_mut(key) {
                    connection.closing = true;
                }
                self.mark_dirty(key);
            }
        }
    }

    /// Connections that said nothing for a sweep interval give their buffers back; busy ones
    /// keep them, so the hot path does not allocate.
    fn release_quiet_buffers(&mut self, now: Instant) {
        for (_, connection) in self.connections.iter_mut() {
            if !connection.closed && now.duration_since(connection.last_heard) >= SWEEP_INTERVAL {
                connection.release_idle_memory();
            }
        }
    }

    /// Control connections: a heartbeat to each that was sent nothing for the interval, and
    /// the computes whose control connection was silent for the limit are closed (both
    /// connections; the lease goes back to the pool).
    fn heartbeats(&mut self, now: Instant) {
        let mut silent = Vec::new();
        let mut due = Vec::new();
        for (key, connection) in self.connections.iter_mut() {
            let (Role::Control(id), Some(liveness)) = (connection.role, &mut connection.liveness)
            else {
                continue;
            };
            if connection.closed || connection.closing {
                continue;
            }
            if liveness.silent(now) {
                silent.push((key, id, liveness.silent_for(now)));
            } else if liveness.heartbeat_due(now) {
                Message::Heartbeat.encode(&mut connection.outbox);
                liveness.sent(now);
                due.push(key);
            }
        }
        for key in due {
            self.mark_dirty(key);
        }
        for (key, id, quiet) in silent {
            let why = format!(
                "silent for {:.1} s: no heartbeat on its control connection (limit {} s)",
                quiet.as_secs_f64(),
                SILENCE_LIMIT.as_secs()
            );
            log::warn!("compute {id} {why}; closing its connections");
            let work = self
                .core
                .links
                .get(&id)
                .filter(|l| l.control == Some(key))
                .map(|l| l.work);
            if let Some(work) = work {
                self.close(work, &why);
            }
            self.close(key, &why);
        }
    }

    fn begin_shutdown(&mut self, reason: &str) {
        if self.core.shutdown.is_some() {
            return;
        }
        let computes = self.core.links.len();
        log::info!(
            "shutting down ({reason}): telling {computes} computes to stop, waiting up to {:.1} s",
            self.core.config.shutdown_grace.as_secs_f64()
        );
        self.core.shutdown = Some(Instant::now() + self.core.config.shutdown_grace);
        self.pause_accepting();
        let controls: Vec<usize> = self.core.links.values().filter_map(|l| l.control).collect();
        for key in controls {
            if let Some(connection) = self.connections.get_mut(key) {
                shutdown_message(reason).encode(&mut connection.outbox);
            }
            self.mark_dirty(key);
        }
        // Report connections have nothing more coming.
        let reports: Vec<usize> = self
            .connections
            .iter()
            .filter(|(_, c)| matches!(c.role, Role::Report | Role::Unknown) && !c.closed)
            .map(|(key, _)| key)
            .collect();
        for key in reports {
            if let Some(connection) = self.connections.get_mut(key) {
                connection.closing = true;
            }
            self.mark_dirty(key);
        }
    }

    /// Shutting down, and either every compute has left with its last result and every claim
    /// is checked, or the grace period is over.
    fn finished(&self) -> bool {
        let Some(deadline) = self.core.shutdown else {
            return false;
        };
        let settled = self.core.links.is_empty() && self.core.verifier.outstanding == 0;
        if settled {
            return true;
        }
        if Instant::now() >= deadline {
            log::warn!(
                "grace period over: {} computes still connected, {} claims unchecked",
                self.core.links.len(),
                self.core.verifier.outstanding
            );
            return true;
        }
        false
    }

    fn close_everything(&mut self) {
        let keys: Vec<usize> = self.connections.iter().map(|(key, _)| key).collect();
        for key in keys {
            self.flush(key);
            self.close(key, "manage is stopping");
        }
        self.remove_closed();
        // Verdicts that arrived in the last moments still count.
        self.collect_verdicts();
    }
}

fn log_flagged(flagged: &manage::flags::Flagged) {
    let offence = match flagged.offence {
        manage::flags::Offence::FalseClaim { n } => format!("claimed {n} is perfect"),
        manage::flags::Offence::LostCheck { lo, hi } => {
            format!("its checksum of [{lo}, {hi}) lost a double-check")
        }
    };
    log::warn!(
        "compute {} ({} pid {}) flagged: {offence}; {} offences{}",
        flagged.compute.0,
        flagged.identity.host,
        flagged.identity.pid,
        flagged.flags,
        if flagged.refused {
            ", refused from now on"
        } else {
            ""
        }
    );
}

fn log_check(id: u64, lo: u64, hi: u64, check: &CheckOutcome) {
    match check {
        CheckOutcome::Selected { dropped } => {
            log::debug!("[{lo}, {hi}) from compute {id} will be double-checked");
            if let Some((a, b)) = dropped {
                log::warn!("too many open double-checks: [{a}, {b}) will not be checked");
            }
        }
        CheckOutcome::Passed { first } => log::info!(
            "double-check of [{lo}, {hi}) by compute {id} agrees with compute {}",
            first.0
        ),
        CheckOutcome::Mismatch { first } => log::warn!(
            "double-check of [{lo}, {hi}): compute {id} disagrees with compute {} ({} pid {}); a third compute decides",
            first.compute.0,
            first.identity.host,
            first.identity.pid
        ),
        CheckOutcome::Decided { wrong, right } => log::warn!(
            "third computation of [{lo}, {hi}) agrees with compute {}: compute {} ({} pid {}) was wrong",
            right.compute.0,
            wrong.compute.0,
            wrong.identity.host,
            wrong.identity.pid
        ),
        other => log::warn!("double-check of [{lo}, {hi}) by compute {id}: {other:?}"),
    }
}

fn shutdown_message(reason: &str) -> Message<'_> {
    Message::Shutdown(protocol::Shutdown {
        reason: XmlStr::Plain(reason),
    })
}

/// Lowercase hex of 16 random bytes from the kernel.
fn random_hex() -> String {
    let mut bytes = [0u8; 16];
    if let Err(e) = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes)) {
        // Sessions only tie a control connection to its compute; a weak one is no hole in
        // authentication, which does not rely on them.
        log::warn!("cannot read /dev/urandom ({e}); using the clock");
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        bytes = nanos.to_le_bytes();
    }
    let mut text = String::with_capacity(32);
    Hex::encode_into(&bytes, &mut text);
    text
}

/// A `<job-result>` for a job no program ran to the end of.
fn failed_result(id: u64, status: JobStatus, why: &str) -> JobResult<'_> {
    JobResult {
        id,
        status,
        exit_code: None,
        signal: None,
        cpu_ms: 0,
        wall_ms: 0,
        peak_kb: 0,
        compute_id: None,
        host: None,
        message: Some(XmlStr::Plain(why)),
        stdout: Output::default(),
        stderr: Output::default(),
        compiler_output: Output::default(),
    }
}

/// A seed for the random job schedule, from the kernel (the clock if that fails).
fn random_seed() -> u64 {
    let mut bytes = [0u8; 8];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .is_err()
    {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        return nanos as u64;
    }
    u64::from_le_bytes(bytes)
}

fn error_reply<'a>(code: ErrorCode, text: &'a str) -> Message<'a> {
    Message::Error(ErrorMessage {
        code,
        message: XmlStr::Plain(text),
        about: None,
    })
}

/// The error code a scheduling error is answered with.
fn sched_error_code(error: &SchedError) -> ErrorCode {
    match error {
        SchedError::UnknownLease(_) | SchedError::LeaseEnded(_) => ErrorCode::UnknownLease,
        SchedError::LeaseNotYours { .. } => ErrorCode::UnknownLease,
        SchedError::LeaseOutstanding(_) => ErrorCode::OutOfOrder,
        SchedError::Refused { .. } => ErrorCode::Unauthorized,
        SchedError::UnknownCompute(_) => ErrorCode::OutOfOrder,
        _ => ErrorCode::BadMessage,
    }
}

impl Core {
    /// Keeps the first store error; the loop stops on it before sending any reply.
    fn persist(&mut self, written: Result<(), String>) {
        if let Err(error) = written {
            log::error!("{error}");
            self.store_failure.get_or_insert(error);
        }
    }

    /// Handles one decoded message from connection `key`, writing any reply to `outbox`.
    // The connection's parts come one by one: its reader is borrowed by `message`.
    #[allow(clippy::too_many_arguments)]
    fn handle(
        &mut self,
        key: usize,
        peer: SocketAddr,
        role: &mut Role,
        auth: &mut AuthState,
        outbox: &mut Vec<u8>,
        message: Message<'_>,
        now: Instant,
    ) -> After {
        let now_ms = self.clock.ms(now);
        let compute_unproven = matches!(role, Role::Compute(_)) && !auth.authorized;
        match (*role, message) {
            (Role::Unknown, Message::Hello(hello)) => {
                self.hello(key, peer, role, auth, outbox, hello, now_ms)
            }
            (Role::Compute(id), Message::Auth(answer)) => {
                if !self.config.require_token {
                    // A compute may hold a token this manage does not ask for.
                    return After::Continue;
                }
                if self.check_answer(auth, Some(answer.mac)) {
                    log::info!("compute {id} proved it holds the token");
                    After::Continue
                } else {
                    log::warn!("compute {id} at {peer} failed authentication; closing");
                    error_reply(ErrorCode::Unauthorized, "wrong answer to the nonce")
                        .encode(outbox);
                    After::Close
                }
            }
            (Role::Compute(id), Message::Request | Message::Progress(_) | Message::Result(_))
                if compute_unproven =>
            {
                log::warn!("compute {id} at {peer} asked for work without the token; closing");
                error_reply(
                    ErrorCode::Unauthorized,
                    "this manage requires the token: answer the welcome's nonce with <auth>",
                )
                .encode(outbox);
                After::Close
            }
            (Role::Unknown | Role::Report, Message::Auth(answer)) => {
                *role = Role::Report;
                if self.check_answer(auth, Some(answer.mac)) {
                    After::Continue
                } else {
                    log::warn!("report at {peer} failed authentication; closing");
                    error_reply(ErrorCode::Unauthorized, "wrong or unasked-for answer")
                        .encode(outbox);
                    After::Close
                }
            }
            (Role::Unknown, Message::Control(control)) => {
                let id = control.compute_id;
                let matches = self.links.get(&id).is_some_and(|l| {
                    constant_time_eq(l.session.as_bytes(), control.session.as_str().as_bytes())
                });
                if !matches {
                    log::warn!("control connection from {peer} with a wrong compute id or session");
                    error_reply(ErrorCode::Unauthorized, "unknown compute or wrong session")
                        .encode(outbox);
                    return After::Close;
                }
                if let Some(links) = self.links.get_mut(&id) {
                    links.control = Some(key);
                }
                *role = Role::Control(id);
                log::debug!("control connection of compute {id} from {peer}");
                if control.accept_jobs && self.shutdown.is_none() {
                    log::info!("compute {id} accepts jobs");
                    let actions = self.jobs.add_compute(id, now_ms);
                    self.apply(actions, now_ms);
                }
                if let Some(_deadline) = self.shutdown {
                    shutdown_message("manage is shutting down").encode(outbox);
                }
                After::Continue
            }
            (Role::Compute(id), Message::Request) => self.request(id, outbox, now_ms),
            (Role::Compute(id), Message::Progress(progress)) => {
                match self.scheduler.progress(
                    ComputeId(id),
                    LeaseId(progress.lease),
                    progress.done,
                    now_ms,
                ) {
                    Ok(()) => After::Continue,
                    // A compute whose lease expired keeps going until it hears; not an offence.
                    Err(SchedError::LeaseEnded(_)) => After::Continue,
                    Err(error) => {
                        log::warn!("compute {id}: bad progress: {error}");
                        let text = error.to_string();
                        error_reply(sched_error_code(&error), &text).encode(outbox);
                        After::Close
                    }
                }
            }
            (Role::Compute(id), Message::Result(result)) => self.result(id, outbox, result, now_ms),
            (Role::Compute(_), Message::Bye)
            | (Role::Report, Message::Bye)
            | (Role::Unknown, Message::Bye) => After::Close,
            (Role::Unknown | Role::Report, Message::StatusRequest) => {
                *role = Role::Report;
                self.status(now_ms).encode_status(outbox);
                After::Continue
            }
            (Role::Unknown | Role::Report, Message::Kill(kill)) => {
                *role = Role::Report;
                if let Some(refusal) = self.privileged(auth, kill.mac, outbox, peer, "kill") {
                    return refusal;
                }
                let computes = self.links.len() as u64;
                log::info!("report at {peer} asks to shut the cluster down ({computes} computes)");
                Message::Stopping(Stopping { computes }).encode(outbox);
                After::SignalSelf
            }
            (Role::Unknown | Role::Report, Message::Run(run)) => {
                *role = Role::Report;
                if let Some(refusal) = self.privileged(auth, run.mac, outbox, peer, "run") {
                    return refusal;
                }
                self.run(key, peer, outbox, run, now_ms)
            }
            (Role::Control(_), Message::Heartbeat) => After::Continue,
            (Role::Control(id), Message::JobResult(result)) => {
                self.job_result(id, result, now_ms);
                After::Continue
            }
            (_, Message::Error(error)) => {
                // An error is never answered with another error: just close.
                let mut text = String::new();
                error.message.unescape_into(&mut text);
                log::warn!("{peer} sent an error ({}: {text}); closing", error.code);
                After::Close
            }
            (_, message) => {
                log::warn!("{peer} sent <{}> out of order; closing", message.name());
                let text = format!("<{}> is not expected here", message.name());
                error_reply(ErrorCode::OutOfOrder, &text).encode(outbox);
                After::Close
            }
        }
    }

    /// Whether `mac` answers the nonce pending on this connection (which it uses up), or the
    /// connection proved itself before.
    fn check_answer(&self, auth: &mut AuthState, mac: Option<Hex<'_>>) -> bool {
        if auth.authorized {
            return true;
        }
        let (Some(nonce), Some(mac)) = (auth.nonce.take(), mac) else {
            return false;
        };
        let proven = Hex::new(&nonce).is_some_and(|nonce| auth::verify(&self.token, nonce, mac));
        auth.authorized = proven;
        proven
    }

    /// The gate of a privileged request: `None` lets it through; otherwise the reply is queued
    /// (a challenge, or a refusal) and the request goes no further.
    fn privileged(
        &self,
        auth: &mut AuthState,
        mac: Option<Hex<'_>>,
        outbox: &mut Vec<u8>,
        peer: SocketAddr,
        what: &str,
    ) -> Option<After> {
        if auth.authorized {
            return None;
        }
        if mac.is_none() {
            let nonce = random_hex();
            Message::Challenge(Challenge {
                nonce: Hex::new(&nonce).unwrap_or_else(unreachable_hex),
            })
            .encode(outbox);
            auth.nonce = Some(nonce);
            return Some(After::Continue);
        }
        if self.check_answer(auth, mac) {
            return None;
        }
        log::warn!("{what} from {peer} refused: wrong answer to the challenge");
        error_reply(ErrorCode::Unauthorized, "wrong answer to the challenge").encode(outbox);
        Some(After::Close)
    }

    #[allow(clippy::too_many_arguments)]
    fn hello(
        &mut self,
        key: usize,
        peer: SocketAddr,
        role: &mut Role,
        auth: &mut AuthState,
        outbox: &mut Vec<u8>,
        hello: Hello<'_>,
        now_ms: Millis,
    ) -> After {
        if let Err(reply) = hello.check_version() {
            log::warn!(
                "compute at {peer} speaks protocol version {}; refused",
                hello.version
            );
            Message::Error(reply).encode(outbox);
            return After::Close;
        }
        if self.shutdown.is_some() {
            error_reply(ErrorCode::ShuttingDown, "manage is shutting down").encode(outbox);
            return After::Close;
        }
        let (Ok(pid), Ok(threads)) = (u32::try_from(hello.pid), u32::try_from(hello.threads))
        else {
            error_reply(ErrorCode::BadMessage, "pid and threads must fit in 32 bits")
                .encode(outbox);
            return After::Close;
        };
        let mut host = String::new();
        hello.host.unescape_into(&mut host);
        let info = ComputeInfo {
            identity: Identity {
                host: host.clone(),
                pid,
            },
            peer: peer.to_string(),
            threads,
            algorithm: kernel_algorithm(hello.algorithm),
            ops_per_sec: hello.ops_per_sec,
        };
        let id = self.scheduler.join(info, now_ms).0;
        let address = peer.to_string();
        let row = ComputeRow {
            id: ComputeId(id),
            host: &host,
            pid,
            address: &address,
            threads,
            algorithm: hello.algorithm.as_str(),
            ops_per_sec: hello.ops_per_sec,
            joined_ms: now_ms,
        };
        let written = self.store.compute_joined(&row);
        self.persist(written);
        let session = random_hex();
        let nonce = random_hex();
        let welcome = Welcome {
            compute_id: id,
            target_ms: self.config.target.as_millis() as u64,
            session: Hex::new(&session).unwrap_or_else(unreachable_hex),
            nonce: Hex::new(&nonce).unwrap_or_else(unreachable_hex),
        };
        Message::Welcome(welcome).encode(outbox);
        auth.authorized = !self.config.require_token;
        auth.nonce = Some(nonce);
        self.links.insert(
            id,
            Links {
                work: key,
                control: None,
                session,
            },
        );
        *role = Role::Compute(id);
        log::info!(
            "compute {id} joined: {host} pid {pid}, {threads} threads, {}, benchmark {} ops/s, from {peer}",
            hello.algorithm.as_str(),
            hello.ops_per_sec
        );
        After::Continue
    }

    fn request(&mut self, id: u64, outbox: &mut Vec<u8>, now_ms: Millis) -> After {
        if self.shutdown.is_some() {
            error_reply(ErrorCode::ShuttingDown, "manage is shutting down").encode(outbox);
            return After::Continue;
        }
        match self.scheduler.request(ComputeId(id), now_ms) {
            Ok(RequestOutcome::Assign(assignment)) => {
                let (host, pid) = self
                    .scheduler
                    .registry()
                    .get(ComputeId(id))
                    .map(|r| (r.info.identity.host.clone(), r.info.identity.pid))
                    .unwrap_or_default();
                let lease = StoredLease {
                    id: assignment.lease,
                    compute: ComputeId(id),
                    host,
                    pid,
                    lo: assignment.lo,
                    hi: assignment.hi,
                };
                let written = self
                    .store
                    .lease_issued(&lease, now_ms, assignment.deadline_ms);
                self.persist(written);
                log::info!(
                    "assign {} {} [{}, {}) ({} numbers) to compute {id}, predicted {:.1} s",
                    if assignment.check {
                        "double-check lease"
                    } else {
                        "lease"
                    },
                    assignment.lease.0,
                    assignment.lo,
                    assignment.hi,
                    assignment.hi - assignment.lo,
                    assignment.predicted_ms as f64 / 1000.0
                );
                Message::Assign(protocol::Assign {
                    lease: assignment.lease.0,
                    lo: assignment.lo,
                    hi: assignment.hi,
                    deadline_ms: assignment.deadline_ms.saturating_sub(now_ms),
                })
                .encode(outbox);
                After::Continue
            }
            Ok(RequestOutcome::Wait { ms }) => {
                Message::Wait(Wait { ms }).encode(outbox);
                After::Continue
            }
            Err(error) => {
                log::warn!("compute {id}: request refused: {error}");
                let text = error.to_string();
                error_reply(sched_error_code(&error), &text).encode(outbox);
                After::Close
            }
        }
    }

    fn result(
        &mut self,
        id: u64,
        outbox: &mut Vec<u8>,
        result: WorkResult,
        now_ms: Millis,
    ) -> After {
        // What this result adds, before the scheduler counts it: only these pieces are stored,
        // so the stored ranges stay disjoint.
        let pieces: Vec<(u64, u64)> = self
            .scheduler
            .pool()
            .done()
            .gaps(result.lo, result.hi)
            .collect();
        let outcome = self.scheduler.result(
            ComputeId(id),
            LeaseId(result.lease),
            result.lo,
            result.hi,
            result.elapsed_ms,
            result.checksum,
            result.perfect.as_slice(),
            now_ms,
        );
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(error @ (SchedError::UnknownLease(_) | SchedError::LeaseEnded(_))) => {
                // Not an offence: the compute drops the result and carries on.
                log::warn!("compute {id}: result not taken: {error}");
                let text = error.to_string();
                error_reply(ErrorCode::UnknownLease, &text).encode(outbox);
                return After::Continue;
            }
            Err(error) => {
                log::warn!("compute {id}: bad result: {error}");
                let text = error.to_string();
                error_reply(sched_error_code(&error), &text).encode(outbox);
                return After::Close;
            }
        };
        let host = self
            .scheduler
            .registry()
            .get(ComputeId(id))
            .map(|r| r.info.identity.host.clone())
            .unwrap_or_default();
        let whole = pieces == [(result.lo, result.hi)];
        let mut written = self.store.ranges_done(
            &pieces,
            ComputeId(id),
            &host,
            result.elapsed_ms,
            whole.then_some(result.checksum),
            now_ms,
        );
        if written.is_ok() && !outcome.late {
            written = self.store.lease_ended(LeaseId(result.lease));
        }
        for &n in &outcome.claims {
            if written.is_ok() {
                written = self.store.claim(&PerfectFinding {
                    n,
                    compute: ComputeId(id),
                    host: host.clone(),
                    found_ms: now_ms,
                });
            }
        }
        self.persist(written);
        // Sent after the batch's commit, like every reply.
        Message::Ack(Ack {
            lease: result.lease,
        })
        .encode(outbox);
        let seconds = result.elapsed_ms as f64 / 1000.0;
        let numbers = result.hi - result.lo;
        log::info!(
            "result of lease {} from compute {id}: [{}, {}), {numbers} numbers in {seconds:.2} s ({:.0}/s){}{}, checksum {}",
            result.lease,
            result.lo,
            result.hi,
            numbers as f64 / seconds.max(0.001),
            if outcome.late { ", late" } else { "" },
            if outcome.newly_counted < numbers {
                format!(", {} new", outcome.newly_counted)
            } else {
                String::new()
            },
            result.checksum
        );
        if let Some(check) = &outcome.check {
            log_check(id, result.lo, result.hi, check);
        }
        if let Some(flagged) = &outcome.flagged {
            log_flagged(flagged);
        }
        for n in outcome.claims {
            self.verifier.submit(Claim {
                n,
                compute: id,
                host: host.clone(),
                found_ms: now_ms,
            });
        }
        if self.config.exit_when_done && self.scheduler.is_done() {
            return After::Shutdown("every number of the search is tested".into());
        }
        After::Continue
    }

    /// A compute's work connection closed: its lease goes back to the pool.
    fn compute_left(&mut self, id: u64, key: usize, why: &str) {
        let Some(links) = self.links.get(&id) else {
            return;
        };
        if links.work != key {
            return;
        }
        self.links.remove(&id);
        self.jobs_compute_gone(id);
        let now_ms = self.clock.ms(Instant::now());
        let written = self.store.compute_left(ComputeId(id), now_ms);
        self.persist(written);
        match self.scheduler.leave(ComputeId(id), now_ms) {
            Ok(released) => {
                for lease in &released {
                    let written = self.store.lease_ended(lease.id);
                    self.persist(written);
                }
                let back: Vec<String> = released
                    .iter()
                    .map(|l| format!("[{}, {})", l.lo, l.hi))
                    .collect();
                if back.is_empty() {
                    log::info!("compute {id} left ({why})");
                } else {
                    log::info!(
                        "compute {id} left ({why}); back to the pool: {}",
                        back.join(" ")
                    );
                }
            }
            Err(error) => log::warn!("compute {id} left ({why}): {error}"),
        }
    }

    /// Records one job event in the log and the `jobs` table.
    fn job_event(
        &mut self,
        job: u64,
        now_ms: Millis,
        event: &str,
        compute: Option<u64>,
        detail: &str,
    ) {
        match compute {
            Some(c) => log::info!("job {job}: {event} (compute {c}) {detail}"),
            None => log::info!("job {job}: {event} {detail}"),
        }
        let written = self.store.job_event(job, now_ms, event, compute, detail);
        self.persist(written);
    }

    /// A `<run>` that passed the token gate.
    fn run(
        &mut self,
        key: usize,
        peer: SocketAddr,
        outbox: &mut Vec<u8>,
        run: Run<'_>,
        now_ms: Millis,
    ) -> After {
        if self.shutdown.is_some() {
            error_reply(ErrorCode::ShuttingDown, "manage is shutting down").encode(outbox);
            return After::Close;
        }
        let id = self.next_job;
        self.next_job += 1;
        let program = run.program;
        let mut name = String::new();
        program.name.unescape_into(&mut name);
        let detail = format!(
            "{name:?} ({}, {} ms, {} MiB, {}) from {peer}",
            program.language.as_str(),
            program.time_limit_ms,
            program.memory_limit_mb,
            run.schedule.as_str()
        );
        self.job_event(id, now_ms, "received", None, &detail);
        if program.time_limit_ms == 0
            || program.time_limit_ms > MAX_JOB_TIME_MS
            || program.memory_limit_mb == 0
            || program.memory_limit_mb > MAX_JOB_MEMORY_MB
        {
            let why = format!(
                "limits out of range: time 1 to {MAX_JOB_TIME_MS} ms, memory 1 to {MAX_JOB_MEMORY_MB} MiB"
            );
            self.job_event(id, now_ms, "rejected", None, &why);
            Message::JobResult(failed_result(id, JobStatus::Rejected, &why)).encode(outbox);
            return After::Close;
        }
        let mut message = Vec::new();
        Message::Job(Job { id, program }).encode(&mut message);
        let policy = match run.schedule {
            Schedule::Random => Policy::Random,
            Schedule::RoundRobin => Policy::RoundRobin,
            Schedule::LeastLoaded => Policy::LeastLoaded,
        };
        let budget = program.time_limit_ms.saturating_add(JOB_MARGIN_MS);
        match self.jobs.submit(id, key as u64, policy, budget, now_ms) {
            Submitted::Send(compute) => {
                self.job_messages.insert(id, message);
                self.apply(
                    vec![Action::Send {
                        job: id,
                        compute,
                        failover: false,
                    }],
                    now_ms,
                );
                After::Continue
            }
            Submitted::Queued => {
                self.job_messages.insert(id, message);
                let queued = self.jobs.queued();
                self.job_event(id, now_ms, "queued", None, &format!("({queued} waiting)"));
                After::Continue
            }
            Submitted::Busy(why) => {
                self.job_event(id, now_ms, "rejected", None, why);
                error_reply(ErrorCode::Busy, why).encode(outbox);
                After::Close
            }
        }
    }

    /// Carries out what the job router decided: sends, and failures told to their reports.
    fn apply(&mut self, actions: Vec<Action>, now_ms: Millis) {
        let mut work = actions;
        while let Some(action) = work.pop() {
            match action {
                Action::Send {
                    job,
                    compute,
                    failover,
                } => {
                    let control = self.links.get(&compute).and_then(|l| l.control);
                    match (control, self.job_messages.get(&job)) {
                        (Some(key), Some(bytes)) => {
                            self.outgoing.push(Outgoing {
                                key,
                                bytes: bytes.clone(),
                                close: false,
                            });
                            let event = if failover { "failed-over" } else { "sent" };
                            self.job_event(job, now_ms, event, Some(compute), "");
                        }
                        _ => {
                            self.job_event(
                                job,
                                now_ms,
                                "send-failed",
                                Some(compute),
                                "no control connection",
                            );
                            work.extend(self.jobs.send_failed(compute, now_ms));
                        }
                    }
                }
                Action::Fail { job, owner, why } => {
                    self.job_messages.remove(&job);
                    self.job_event(job, now_ms, "failed", None, &why);
                    match owner {
                        Some(owner) => {
                            let mut bytes = Vec::new();
                            Message::JobResult(failed_result(job, JobStatus::InternalError, &why))
                                .encode(&mut bytes);
                            self.outgoing.push(Outgoing {
                                key: owner as usize,
                                bytes,
                                close: true,
                            });
                        }
                        None => log::info!("job {job}: its report is gone; nothing to tell"),
                    }
                }
            }
        }
    }

    /// A compute that ran jobs went away (its control or work connection closed).
    fn jobs_compute_gone(&mut self, id: u64) {
        let now_ms = self.clock.ms(Instant::now());
        let actions = self.jobs.remove_compute(id, now_ms);
        self.apply(actions, now_ms);
    }

    /// A report connection closed: its jobs' results will be dropped.
    fn report_gone(&mut self, key: usize) {
        let orphaned = self.jobs.owner_gone(key as u64);
        let now_ms = self.clock.ms(Instant::now());
        for job in orphaned {
            if self.jobs.contains(job) {
                self.job_event(
                    job,
                    now_ms,
                    "orphaned",
                    None,
                    "its report left; the result will be dropped",
                );
            } else {
                self.job_messages.remove(&job);
                self.job_event(
                    job,
                    now_ms,
                    "dropped",
                    None,
                    "its report left while it was queued",
                );
            }
        }
    }

    /// A `<job-result>` on compute `id`'s control connection.
    fn job_result(&mut self, id: u64, result: JobResult<'_>, now_ms: Millis) {
        let Some(done) = self.jobs.finished(id, result.id) else {
            log::warn!(
                "compute {id} sent the result of job {}, which it does not run (late or unknown): ignored",
                result.id
            );
            return;
        };
        self.job_messages.remove(&result.id);
        let detail = match (result.exit_code, result.signal) {
            (Some(code), _) => format!("{} exit {code}", result.status.as_str()),
            (None, Some(signal)) => format!("{} signal {signal}", result.status.as_str()),
            _ => result.status.as_str().to_string(),
        };
        self.job_event(result.id, now_ms, "finished", Some(id), &detail);
        match done.owner {
            Some(owner) => {
                let host = self
                    .scheduler
                    .registry()
                    .get(ComputeId(id))
                    .map(|r| r.info.identity.host.clone())
                    .unwrap_or_default();
                let forwarded = JobResult {
                    compute_id: Some(id),
                    host: Some(XmlStr::Plain(&host)),
                    ..result
                };
                let mut bytes = Vec::new();
                Message::JobResult(forwarded).encode(&mut bytes);
                self.outgoing.push(Outgoing {
                    key: owner as usize,
                    bytes,
                    close: true,
                });
            }
            None => log::info!("job {}: its report left; the result is dropped", result.id),
        }
        let actions = self.jobs.pump(now_ms);
        self.apply(actions, now_ms);
    }

    fn status(&self, now_ms: Millis) -> StatusDocument {
        let mut view = self.scheduler.status(now_ms);
        // Done means the answer is final: every number tested, and every perfect number
        // claimed in the results verified (the verifier thread takes a moment; until then the
        // list of perfect numbers may still grow).
        view.done &= self.verifier.outstanding == 0;
        StatusDocument { view }
    }
}

/// The scheduler's status view, ready to be written as a `<status>` message.
struct StatusDocument {
    view: manage::scheduler::StatusView<sigma_kernel::Algorithm>,
}

impl StatusDocument {
    fn encode_status(&self, outbox: &mut Vec<u8>) {
        let view = &self.view;
        let reasons: Vec<String> = view
            .flagged
            .iter()
            .map(|f| match f.last {
                manage::flags::Offence::FalseClaim { n } => format!("claimed {n} is perfect"),
                manage::flags::Offence::LostCheck { lo, hi } => {
                    format!("checksum of [{lo}, {hi}) lost a double-check")
                }
            })
            .collect();
        let status = Status {
            checks_passed: view.checks.passed,
            mismatches: view.checks.mismatches,
            flagged: view
                .flagged
                .iter()
                .zip(&reasons)
                .map(|(f, reason)| FlaggedCompute {
                    host: XmlStr::Plain(&f.host),
                    pid: u64::from(f.pid),
                    offences: u64::from(f.flags),
                    refused: f.refused,
                    reason: XmlStr::Plain(reason),
                })
                .collect(),
            tested: view.tested,
            frontier: view.frontier,
            start: view.start,
            until: view.until,
            rate: view.numbers_per_sec as u64,
            done: view.done,
            now_ms: view.now_ms,
            perfect: view
                .perfect
                .iter()
                .map(|p| FoundPerfect {
                    n: p.n,
                    host: XmlStr::Plain(&p.host),
                    compute_id: p.compute.0,
                    found_ms: p.found_ms,
                })
                .collect(),
            computes: view
                .computes
                .iter()
                .map(|c| ComputeStatus {
                    id: c.id.0,
                    host: XmlStr::Plain(&c.host),
                    address: XmlStr::Plain(&c.peer),
                    pid: u64::from(c.pid),
                    threads: u64::from(c.threads),
                    algorithm: wire_algorithm(c.algorithm),
                    rate: c.numbers_per_sec as u64,
                    lease: c.lease.as_ref().map(|l| LeaseStatus {
                        lo: l.lo,
                        hi: l.hi,
                        done: l.done,
                    }),
                    tested: c.tested,
                    since_ms: c.since_ms,
                })
                .collect(),
        };
        Message::Status(status).encode(outbox);
    }
}

/// `random_hex` always yields 32 lowercase hex digits, which `Hex::new` accepts.
fn unreachable_hex<'a>() -> Hex<'a> {
    Hex::new("00").expect("a constant valid hex token")
}

/// Compares secrets in time independent of where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
