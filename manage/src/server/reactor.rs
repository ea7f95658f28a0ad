//! The reactor: the poll loop, connections, timers, signals and shutdown.

use std::io;
use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::event::Event;
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};
use signal_hook_mio::v1_0::Signals;
use slab::Slab;
use xmlwire::liveness::{Liveness, SILENCE_LIMIT};
use xmlwire::protocol::{self, ErrorCode, ErrorMessage, Message};
use xmlwire::{Limits, XmlStr};

use super::connection::{Connection, ReadOutcome, Role};
use super::error::{setup, ServerError};
use super::http::Http;
use super::listener::Listener;
use super::session::{shutdown_message, Sender};
use super::{After, Core};

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

/// The listener, the signals and the poll they are registered with: what `run` opens before it
/// reads the state, so a busy port fails fast.
pub(super) struct Sockets {
    poll: Poll,
    listener: TcpListener,
    signals: Signals,
    /// Where the listener listens (the port the kernel chose, for port 0).
    pub(super) address: SocketAddr,
    /// At most this many connections at once (from [`connection_cap`]).
    max_connections: usize,
    /// The accept queue the kernel gives, and why it is shorter than asked, if it is.
    backlog: usize,
    backlog_shortfall: Option<String>,
    /// The operator asked for the backlog (`--listen-backlog`), rather than taking the default.
    backlog_asked: bool,
}

impl Sockets {
    /// Listens on `listen` with an accept queue of `backlog` (default: the connection cap),
    /// installs the signal handlers, and returns the waker the verifier thread wakes the poll
    /// with.
    pub(super) fn open(
        listen: SocketAddr,
        backlog: Option<usize>,
    ) -> Result<(Sockets, Arc<Waker>), ServerError> {
        let poll = Poll::new().map_err(setup("cannot create the poll"))?;
        let max_connections = connection_cap();
        let bound =
            Listener::bind(listen, backlog.unwrap_or(max_connections)).map_err(|source| {
                ServerError::Listen {
                    address: listen,
                    source,
                }
            })?;
        let backlog_shortfall = bound.shortfall();
        let backlog_asked = backlog.is_some();
        let backlog = bound.backlog();
        let mut listener = bound.socket;
        let address = listener
            .local_addr()
            .map_err(setup("cannot read the listening address"))?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)
            .map_err(setup("cannot register the listener"))?;
        let mut signals = Signals::new([SIGINT, SIGQUIT, SIGHUP, SIGTERM])
            .map_err(setup("cannot install signal handlers"))?;
        poll.registry()
            .register(&mut signals, SIGNALS, Interest::READABLE)
            .map_err(setup("cannot register signals"))?;
        let waker = Waker::new(poll.registry(), WAKER).map_err(setup("cannot create a waker"))?;
        let sockets = Sockets {
            poll,
            listener,
            signals,
            address,
            max_connections,
            backlog,
            backlog_shortfall,
            backlog_asked,
        };
        Ok((sockets, Arc::new(waker)))
    }
}

pub(super) struct Server {
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
    /// The dashboard and /metrics (`--http`).
    http: Http,
}

impl Server {
    pub(super) fn new(sockets: Sockets, core: Core, mut http: Http) -> Server {
        // Logged once the state is open, so a start that fails says only why.
        let max_connections = sockets.max_connections;
        log::info!(
            "up to {max_connections} connections at once, {} waiting to be accepted",
            sockets.backlog
        );
        if let Some(shortfall) = sockets.backlog_shortfall {
            // Only a backlog the operator asked for is worth a warning; the default is the
            // connection cap, which most kernels' ceiling (4096 since Linux 5.4) lowers.
            if sockets.backlog_asked {
                log::warn!("{shortfall}");
            } else {
                log::info!("{shortfall}");
            }
        }
        http.register(sockets.poll.registry());
        Server {
            poll: sockets.poll,
            listener: sockets.listener,
            accepting: true,
            max_connections,
            signals: sockets.signals,
            connections: Slab::new(),
            closed: Vec::new(),
            dirty: Vec::new(),
            next_sweep: Instant::now() + SWEEP_INTERVAL,
            core,
            http,
        }
    }

    /// Everything but the connections, once the loop is over (for the last status).
    pub(super) fn into_core(self) -> Core {
        self.core
    }

    pub(super) fn run(&mut self) -> Result<(), ServerError> {
        let mut events = Events::with_capacity(1024);
        loop {
            let timeout = self.poll_timeout();
            super::log_output::flush();
            self.core.events.flush();
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(ServerError::Poll(e));
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(),
                    SIGNALS => self.drain_signals(),
                    WAKER => self.core.collect_verdicts(),
                    token if self.http.owns(token) => self.http.event(
                        self.poll.registry(),
                        event,
                        &self.core,
                        self.connections.len(),
                    ),
                    Token(key) => self.connection_event(key, event),
                }
            }
            self.on_timers();
            if let Err(error) = self.commit_and_flush() {
                self.core.events.discard();
                return Err(error);
            }
            self.remove_closed();
            self.http.tick(self.poll.registry(), &self.core);
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

    fn connection_event(&mut self, key: usize, event: &Event) {
        let Some(connection) = self.connections.get_mut(key) else {
            return; // spurious: already removed
        };
        if connection.closed {
            return;
        }
        if event.is_writable() {
            let pending = connection.pending_output();
            let flushed = connection.flush(self.poll.registry(), Token(key));
            self.http.telemetry.protocol_sent_bytes +=
                pending.saturating_sub(connection.pending_output()) as u64;
            if !flushed {
                self.close(key, "write failed");
                return;
            }
        }
        if !(event.is_readable() || event.is_read_closed() || event.is_error()) {
            return;
        }
        let peer_closed = event.is_read_closed() || event.is_error();
        loop {
            let outcome = match self.connections.get_mut(key) {
                Some(connection) => {
                    let before = connection.reader.stream_len();
                    let outcome = connection.read_available(peer_closed);
                    self.http.telemetry.protocol_received_bytes +=
                        connection.reader.stream_len() - before;
                    outcome
                }
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
                        Ok(message) => {
                            let from = Sender {
                                key,
                                peer,
                                role: &mut connection.role,
                                auth: &mut connection.auth,
                                outbox: &mut connection.outbox,
                            };
                            self.core.handle(from, message, now)
                        }
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
    fn commit_and_flush(&mut self) -> Result<(), ServerError> {
        if let Some(failure) = self.core.store_failure.take() {
            return Err(failure.into());
        }
        // Closing a connection can queue messages for others (a job given back goes to another
        // compute, or its report is told): loop until nothing is left to flush.
        loop {
            let writes = self.core.store.has_changes();
            let started = Instant::now();
            self.core.store.commit()?;
            if writes {
                self.http.telemetry.commit_took(started.elapsed());
            }
            // Events go out before the replies that depend on them: a test that saw an ack
            // finds its result in the event log.
            self.core.events.flush();
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
                return Err(failure.into());
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
        let pending = connection.pending_output();
        let flushed = connection.flush(self.poll.registry(), Token(key));
        self.http.telemetry.protocol_sent_bytes +=
            pending.saturating_sub(connection.pending_output()) as u64;
        if !flushed {
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
        self.core.expire_leases(now_ms);
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

    pub(super) fn close_everything(&mut self) {
        let keys: Vec<usize> = self.connections.iter().map(|(key, _)| key).collect();
        for key in keys {
            self.flush(key);
            self.close(key, "manage is stopping");
        }
        self.remove_closed();
        // Verdicts that arrived in the last moments still count.
        self.core.collect_verdicts();
    }
}
