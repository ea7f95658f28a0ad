//! The dashboard's HTTP side, served by the same reactor as the protocol: read-only (GET and
//! HEAD, nothing on it can change the cluster), and capped like every other connection: a
//! request head must arrive whole within [`HEAD_TIMEOUT`] and fit in [`MAX_HEAD_BYTES`], at
//! most [`MAX_HTTP_CONNECTIONS`] at once (beyond it, the one that waited longest for a request
//! is closed), one response in flight per connection. Request heads are parsed by httparse.
//!
//! * this file: the listener, the connections, the routes;
//! * [`page`]: the HTML and its SVG charts; [`metrics`]: `/metrics` and what the reactor counts
//!   for it; [`history`]: the sampled history the charts draw; [`history_store`]: that history
//!   in the state database.

mod history;
mod history_store;
mod metrics;
mod page;

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use mio::event::Event;
use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};
use slab::Slab;

use super::error::ServerError;
use super::Core;
use history::{History, Sample, SAMPLE_INTERVAL_MS};
use history_store::{HistoryStore, JobRow};
pub use metrics::Telemetry;

/// Where the dashboard listens, from `--http`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpListen {
    /// `--http off`.
    Off,
    /// No `--http`: this address, and if it is taken (another manage on this host) manage runs
    /// without a dashboard and says so.
    Default(SocketAddr),
    /// `--http ADDR`: a busy address is an error, as for `--listen`.
    Given(SocketAddr),
}

/// The dashboard's default address: this host only; `--http 0.0.0.0:8129` shares it.
pub const DEFAULT_HTTP: &str = "127.0.0.1:8129";

impl HttpListen {
    /// Parses `--http`'s value: `off` or an address.
    pub fn parse(text: &str) -> Result<HttpListen, String> {
        if text == "off" {
            return Ok(HttpListen::Off);
        }
        text.parse().map(HttpListen::Given).map_err(|_| {
            format!("{text:?} is neither an ADDR:PORT such as {DEFAULT_HTTP} nor \"off\"")
        })
    }
}

/// A request head (request line and headers) must fit in this (browsers send well under it).
const MAX_HEAD_BYTES: usize = 8 * 1024;
/// And must arrive whole within this, from the connection's start or its previous response
/// (slow senders hold no slot long; this is also the keep-alive idle limit).
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// HTTP connections at once. A browser opens a handful, so this serves dozens of viewers; a
/// descriptor and a slab entry each while idle, 8 KiB more while a request head arrives.
const MAX_HTTP_CONNECTIONS: usize = 1_024;
/// Headers httparse may return.
const MAX_HEADERS: usize = 48;
/// How often deadlines are checked.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

const LISTENER: Token = Token(usize::MAX - 16);
/// Connection tokens are this plus the slab key: far above the protocol connections' keys
/// (at most 65,536) and below the reactor's reserved tokens.
const TOKEN_BASE: usize = usize::MAX / 2;

struct HttpConnection {
    stream: TcpStream,
    peer: SocketAddr,
    /// The request head read so far: `head[..filled]`.
    head: Vec<u8>,
    filled: usize,
    outbox: Vec<u8>,
    sent: usize,
    wants_writable: bool,
    /// The current request's head must be complete by then.
    deadline: Instant,
    /// Close once the outbox is flushed.
    closing: bool,
    closed: bool,
}

/// The dashboard server: listener, connections, history and what the reactor counts.
pub struct Http {
    listener: Option<TcpListener>,
    accepting: bool,
    connections: Slab<HttpConnection>,
    closed: Vec<usize>,
    /// Connections closed to make room for new ones.
    evicted: u64,
    next_sweep: Instant,
    history: History,
    history_store: Option<HistoryStore>,
    next_sample: Instant,
    /// From the job log at the last sample: the recent jobs and how many ended each way.
    recent_jobs: Vec<JobRow>,
    jobs_ended: Vec<(String, u64)>,
    pub telemetry: Telemetry,
}

/// What a request asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    Page,
    Fragment,
    Metrics,
    StatusXml,
    Health,
}

fn route(path: &str) -> Option<Route> {
    // The query string plays no part (a cache-busting `?t=` is fine).
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    match path {
        "/" | "/index.html" => Some(Route::Page),
        "/fragment" => Some(Route::Fragment),
        "/metrics" => Some(Route::Metrics),
        "/status.xml" => Some(Route::StatusXml),
        "/healthz" => Some(Route::Health),
        _ => None,
    }
}

/// What parsing the head gave.
#[derive(Debug, PartialEq, Eq)]
enum Parsed {
    /// More bytes are needed.
    Partial,
    /// A complete head of `len` bytes.
    Request {
        len: usize,
        head_only: bool,
        route: Option<Route>,
        keep_alive: bool,
    },
    /// Answer with this status and close.
    Refuse(u16, &'static str),
}

/// Parses a request head with httparse and decides what to do with it. I/O-free.
fn parse_head(bytes: &[u8]) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let len = match request.parse(bytes) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(httparse::Error::TooManyHeaders) => {
            return Parsed::Refuse(431, "too many header fields")
        }
        Err(_) => return Parsed::Refuse(400, "malformed request"),
    };
    let head_only = match request.method {
        Some("GET") => false,
        Some("HEAD") => true,
        _ => return Parsed::Refuse(405, "only GET and HEAD: this server is read-only"),
    };
    // No bodies: a request that announces one is refused rather than read.
    for header in request.headers.iter() {
        let announces_body = header.name.eq_ignore_ascii_case("transfer-encoding")
            || (header.name.eq_ignore_ascii_case("content-length")
                && header.value.iter().any(|&b| b != b'0'));
        if announces_body {
            return Parsed::Refuse(400, "a request body is not accepted");
        }
    }
    let close_asked = request.headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case("connection")
            && String::from_utf8_lossy(h.value)
                .to_ascii_lowercase()
                .contains("close")
    });
    let keep_alive = request.version == Some(1) && !close_asked;
    Parsed::Request {
        len,
        head_only,
        route: request.path.and_then(route),
        keep_alive,
    }
}

fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

/// Writes a whole response into `out`.
fn respond(
    out: &mut Vec<u8>,
    code: u16,
    content_type: &str,
    body: &[u8],
    head_only: bool,
    keep_alive: bool,
) {
    let _ = write!(
        out,
        "HTTP/1.1 {code} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n\
         Content-Security-Policy: default-src 'none'; style-src 'unsafe-inline'; \
         script-src 'unsafe-inline'; connect-src 'self'\r\n{}{}\r\n",
        reason(code),
        body.len(),
        if code == 405 {
            "Allow: GET, HEAD\r\n"
        } else {
            ""
        },
        if keep_alive {
            ""
        } else {
            "Connection: close\r\n"
        },
    );
    if !head_only {
        out.extend_from_slice(body);
    }
}

impl Http {
    /// Binds the dashboard's listener (not yet registered) and reads its history back from the
    /// state database at `database`. A history that cannot be read is logged, not fatal: the
    /// charts start empty.
    pub fn open(listen: HttpListen, database: &Path) -> Result<Http, ServerError> {
        let listener = match listen {
            HttpListen::Off => None,
            HttpListen::Given(address) => Some(
                TcpListener::bind(address)
                    .map_err(|source| ServerError::Listen { address, source })?,
            ),
            HttpListen::Default(address) => match TcpListener::bind(address) {
                Ok(listener) => Some(listener),
                Err(e) => {
                    log::warn!(
                        "no dashboard: cannot use {address} ({e}); give --http another address"
                    );
                    None
                }
            },
        };
        let (history_store, history) = if listener.is_some() {
            match HistoryStore::open(database) {
                Ok((store, history)) => {
                    log::debug!("dashboard history: {} samples kept", history.len());
                    (Some(store), history)
                }
                Err(e) => {
                    log::warn!("dashboard history unavailable: {e}");
                    (None, History::new())
                }
            }
        } else {
            (None, History::new())
        };
        let now = Instant::now();
        Ok(Http {
            listener,
            accepting: false,
            connections: Slab::new(),
            closed: Vec::new(),
            evicted: 0,
            next_sweep: now + SWEEP_INTERVAL,
            history,
            history_store,
            next_sample: now,
            recent_jobs: Vec::new(),
            jobs_ended: Vec::new(),
            telemetry: Telemetry::default(),
        })
    }

    /// Registers the listener with the reactor's poll and logs where the dashboard is.
    pub fn register(&mut self, registry: &Registry) {
        let Some(listener) = &mut self.listener else {
            return;
        };
        match registry.register(listener, LISTENER, Interest::READABLE) {
            Ok(()) => {
                self.accepting = true;
                if let Ok(address) = listener.local_addr() {
                    log::info!("dashboard on http://{address}/ (metrics at /metrics)");
                }
            }
            Err(e) => {
                log::warn!("no dashboard: cannot register its listener: {e}");
                self.listener = None;
            }
        }
    }

    /// Whether an event's token is the dashboard's.
    pub fn owns(&self, token: Token) -> bool {
        token == LISTENER || (TOKEN_BASE..TOKEN_BASE + (1 << 20)).contains(&token.0)
    }

    /// Handles one of the dashboard's events.
    pub fn event(
        &mut self,
        registry: &Registry,
        event: &Event,
        core: &Core,
        protocol_connections: usize,
    ) {
        if event.token() == LISTENER {
            self.accept(registry);
            return;
        }
        let key = event.token().0 - TOKEN_BASE;
        let Some(connection) = self.connections.get_mut(key) else {
            return; // spurious: already removed
        };
        if connection.closed {
            return;
        }
        if event.is_writable() {
            self.flush(registry, key);
        }
        self.pump(registry, key, core, protocol_connections);
    }

    fn accept(&mut self, registry: &Registry) {
        while self.accepting {
            if self.connections.len() - self.closed.len() >= MAX_HTTP_CONNECTIONS {
                // Full: the connection that has waited longest for a request gives its slot
                // up, so idle or slow connections cannot lock viewers out. Only if every one
                // is busy with a response does accepting pause.
                match self.longest_waiting() {
                    Some(key) => {
                        self.evicted += 1;
                        if self.evicted.is_power_of_two() {
                            log::warn!(
                                "{MAX_HTTP_CONNECTIONS} HTTP connections: closing the ones that \
                                 waited longest for a request ({} so far)",
                                self.evicted
                            );
                        }
                        self.close(key);
                    }
                    None => {
                        self.pause_accepting(registry);
                        return;
                    }
                }
            }
            let Some(listener) = &self.listener else {
                return;
            };
            match listener.accept() {
                Ok((mut stream, peer)) => {
                    let entry = self.connections.vacant_entry();
                    let token = Token(TOKEN_BASE + entry.key());
                    if let Err(e) = registry.register(&mut stream, token, Interest::READABLE) {
                        log::warn!("cannot register an HTTP connection from {peer}: {e}");
                        continue;
                    }
                    entry.insert(HttpConnection {
                        stream,
                        peer,
                        head: Vec::new(),
                        filled: 0,
                        outbox: Vec::new(),
                        sent: 0,
                        wants_writable: false,
                        deadline: Instant::now() + HEAD_TIMEOUT,
                        closing: false,
                        closed: false,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::warn!("HTTP accept failed: {e}");
                    self.pause_accepting(registry);
                    return;
                }
            }
        }
    }

    /// The open connection with the earliest head deadline that has no response in flight.
    fn longest_waiting(&self) -> Option<usize> {
        self.connections
            .iter()
            .filter(|(_, c)| !c.closed && !c.closing && c.outbox.is_empty())
            .min_by_key(|(_, c)| c.deadline)
            .map(|(key, _)| key)
    }

    fn pause_accepting(&mut self, registry: &Registry) {
        if let (true, Some(listener)) = (self.accepting, &mut self.listener) {
            let _ = registry.deregister(listener);
            self.accepting = false;
        }
    }

    fn resume_accepting(&mut self, registry: &Registry) {
        if let (false, Some(listener)) = (self.accepting, &mut self.listener) {
            if registry
                .register(listener, LISTENER, Interest::READABLE)
                .is_ok()
            {
                self.accepting = true;
            }
        }
    }

    /// Reads and answers requests until the socket is drained, a response is still being
    /// written (the next request waits for it), or the connection ends.
    fn pump(&mut self, registry: &Registry, key: usize, core: &Core, protocol_connections: usize) {
        loop {
            let Some(connection) = self.connections.get_mut(key) else {
                return;
            };
            if connection.closed || connection.closing || connection.sent < connection.outbox.len()
            {
                return;
            }
            if connection.head.len() < MAX_HEAD_BYTES {
                connection.head.resize(MAX_HEAD_BYTES, 0);
            }
            let mut peer_closed = false;
            let mut drained = false;
            while connection.filled < MAX_HEAD_BYTES {
                match connection
                    .stream
                    .read(&mut connection.head[connection.filled..])
                {
                    Ok(0) => {
                        peer_closed = true;
                        break;
                    }
                    Ok(n) => {
                        connection.filled += n;
                        self.telemetry.http_received_bytes += n as u64;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        drained = true;
                        break;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => {
                        peer_closed = true;
                        break;
                    }
                }
            }
            let parsed = parse_head(&connection.head[..connection.filled]);
            match parsed {
                Parsed::Partial if connection.filled >= MAX_HEAD_BYTES => {
                    self.refuse(registry, key, 431, "request head too large");
                    return;
                }
                Parsed::Partial => {
                    if peer_closed {
                        self.close(key);
                    }
                    if peer_closed || drained {
                        return;
                    }
                }
                Parsed::Refuse(code, why) => {
                    self.refuse(registry, key, code, why);
                    return;
                }
                Parsed::Request {
                    len,
                    head_only,
                    route,
                    keep_alive,
                } => {
                    let keep_alive = keep_alive && !peer_closed;
                    connection.head.copy_within(len..connection.filled, 0);
                    connection.filled -= len;
                    connection.deadline = Instant::now() + HEAD_TIMEOUT;
                    self.answer(
                        key,
                        route,
                        head_only,
                        keep_alive,
                        core,
                        protocol_connections,
                    );
                    self.flush(registry, key);
                }
            }
        }
    }

    /// Queues a 4xx response and closes after it.
    fn refuse(&mut self, registry: &Registry, key: usize, code: u16, why: &str) {
        let Some(connection) = self.connections.get_mut(key) else {
            return;
        };
        log::debug!(
            "HTTP request from {} refused: {code} ({why})",
            connection.peer
        );
        let body = format!("{code} {}: {why}\n", reason(code));
        respond(
            &mut connection.outbox,
            code,
            "text/plain; charset=utf-8",
            body.as_bytes(),
            false,
            false,
        );
        connection.closing = true;
        self.telemetry.responded(code);
        self.flush(registry, key);
    }

    fn answer(
        &mut self,
        key: usize,
        route: Option<Route>,
        head_only: bool,
        keep_alive: bool,
        core: &Core,
        protocol_connections: usize,
    ) {
        let started = Instant::now();
        let now_ms = core.clock.ms(started);
        let (code, content_type, body, page): (u16, &str, Vec<u8>, &'static str) = match route {
            None => (
                404,
                "text/plain; charset=utf-8",
                b"404 Not Found: try / /metrics /status.xml /healthz\n".to_vec(),
                "",
            ),
            Some(Route::Health) => (200, "text/plain; charset=utf-8", b"ok\n".to_vec(), ""),
            Some(Route::StatusXml) => {
                let mut body = Vec::with_capacity(4096);
                core.status(now_ms).encode_status(&mut body);
                (200, "application/xml", body, "status.xml")
            }
            Some(Route::Metrics) => {
                let view = status_view(core, now_ms);
                let queued = core.jobs.queued();
                let input = metrics::MetricsInput {
                    view: &view,
                    jobs_queued: queued,
                    jobs_running: core.jobs.len().saturating_sub(queued),
                    jobs_ended: &self.jobs_ended,
                    protocol_connections,
                    http_connections: self.connections.len(),
                    telemetry: &self.telemetry,
                };
                (
                    200,
                    "text/plain; version=0.0.4; charset=utf-8",
                    metrics::render(&input).into_bytes(),
                    "metrics",
                )
            }
            Some(route @ (Route::Page | Route::Fragment)) => {
                let view = status_view(core, now_ms);
                let history = self.history.series();
                let input = page::PageInput {
                    view: &view,
                    history: &history,
                    jobs: &self.recent_jobs,
                };
                let (html, page) = if route == Route::Page {
                    (page::page(&input), "page")
                } else {
                    (page::fragment(&input), "fragment")
                };
                (200, "text/html; charset=utf-8", html.into_bytes(), page)
            }
        };
        if !page.is_empty() {
            self.telemetry.rendered(page, started.elapsed());
        }
        self.telemetry.responded(code);
        if let Some(connection) = self.connections.get_mut(key) {
            respond(
                &mut connection.outbox,
                code,
                content_type,
                &body,
                head_only,
                keep_alive,
            );
            connection.closing = !keep_alive;
        }
    }

    fn flush(&mut self, registry: &Registry, key: usize) {
        let Some(connection) = self.connections.get_mut(key) else {
            return;
        };
        let mut failed = false;
        while connection.sent < connection.outbox.len() {
            match connection
                .stream
                .write(&connection.outbox[connection.sent..])
            {
                Ok(0) => {
                    failed = true;
                    break;
                }
                Ok(n) => {
                    connection.sent += n;
                    self.telemetry.http_sent_bytes += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
        let done = connection.sent == connection.outbox.len();
        if done {
            connection.outbox.clear();
            connection.sent = 0;
        }
        if failed || (done && connection.closing) {
            self.close(key);
            return;
        }
        let want_writable = !done;
        if want_writable != connection.wants_writable {
            let interest = if want_writable {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            let token = Token(TOKEN_BASE + key);
            if registry
                .reregister(&mut connection.stream, token, interest)
                .is_err()
            {
                self.close(key);
                return;
            }
            connection.wants_writable = want_writable;
        }
    }

    /// Marks a connection closed; it is removed in [`Http::tick`], after the event batch.
    fn close(&mut self, key: usize) {
        if let Some(connection) = self.connections.get_mut(key) {
            if !connection.closed {
                connection.closed = true;
                let _ = connection.stream.shutdown(Shutdown::Both);
                self.closed.push(key);
            }
        }
    }

    /// Once per turn of the reactor, after the event batch: removes closed connections, cuts
    /// off the ones whose request head is late, and samples the history when it is time.
    pub fn tick(&mut self, registry: &Registry, core: &Core) {
        let now = Instant::now();
        if now >= self.next_sweep {
            self.next_sweep = now + SWEEP_INTERVAL;
            let late: Vec<usize> = self
                .connections
                .iter()
                .filter(|(_, c)| !c.closed && now >= c.deadline)
                .map(|(key, _)| key)
                .collect();
            for key in late {
                let in_request = self.connections.get(key).is_some_and(|c| c.filled > 0);
                if in_request {
                    self.refuse(registry, key, 408, "request head not complete in time");
                }
                // An idle keep-alive connection just ends; so does one that would not take
                // its 408.
                self.close(key);
            }
        }
        for key in self.closed.drain(..) {
            if let Some(mut connection) = self.connections.try_remove(key) {
                let _ = registry.deregister(&mut connection.stream);
            }
        }
        if self.connections.len() < MAX_HTTP_CONNECTIONS / 10 * 9 {
            self.resume_accepting(registry);
        }
        if self.listener.is_some() && now >= self.next_sample {
            self.next_sample = now + Duration::from_millis(SAMPLE_INTERVAL_MS);
            self.sample(core, now);
        }
    }

    fn sample(&mut self, core: &Core, now: Instant) {
        let view = status_view(core, core.clock.ms(now));
        let sample = Sample {
            at_ms: view.now_ms,
            tested: view.tested,
            frontier: view.frontier.min(view.until),
            rate: view.numbers_per_sec,
            computes: view.computes.len() as u64,
        };
        let taken = self.history.record(sample);
        let Some(store) = &mut self.history_store else {
            return;
        };
        if let Err(e) = store.save(&sample, &taken) {
            log::warn!("cannot save the dashboard's history: {e}");
        }
        match store.recent_jobs() {
            Ok(jobs) => self.recent_jobs = jobs,
            Err(e) => log::debug!("cannot read recent jobs: {e}"),
        }
        match store.finished_jobs() {
            Ok(ended) => self.jobs_ended = ended,
            Err(e) => log::debug!("cannot count ended jobs: {e}"),
        }
    }
}

/// The scheduler's view as the status document gives it: done only once every claim is
/// checked.
fn status_view(
    core: &Core,
    now_ms: manage::Millis,
) -> manage::scheduler::StatusView<sigma_kernel::Algorithm> {
    let mut view = core.scheduler.status(now_ms);
    view.done &= core.verifier.outstanding == 0;
    view
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(head: &str) -> Parsed {
        parse_head(head.as_bytes())
    }

    #[test]
    fn get_and_head_are_served_and_everything_else_refused() {
        assert_eq!(
            request("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Parsed::Request {
                len: 34,
                head_only: false,
                route: Some(Route::Metrics),
                keep_alive: true
            }
        );
        assert!(matches!(
            request("HEAD / HTTP/1.0\r\n\r\n"),
            Parsed::Request {
                head_only: true,
                route: Some(Route::Page),
                keep_alive: false,
                ..
            }
        ));
        assert_eq!(
            request("POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"),
            Parsed::Refuse(405, "only GET and HEAD: this server is read-only")
        );
        assert!(matches!(
            request("GET / HTTP/1.1\r\nContent-Length: 5\r\n\r\n"),
            Parsed::Refuse(400, _)
        ));
        assert!(matches!(
            request("\x16\x03\x01garbage\r\n\r\n"),
            Parsed::Refuse(400, _)
        ));
    }

    #[test]
    fn every_prefix_of_a_request_is_partial() {
        let whole = "GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
        for end in 0..whole.len() {
            assert_eq!(request(&whole[..end]), Parsed::Partial, "prefix {end}");
        }
        assert!(matches!(
            request(whole),
            Parsed::Request {
                route: Some(Route::Health),
                keep_alive: false,
                ..
            }
        ));
    }

    #[test]
    fn only_the_known_paths_route() {
        assert_eq!(route("/fragment?t=1"), Some(Route::Fragment));
        assert_eq!(route("/status.xml"), Some(Route::StatusXml));
        assert_eq!(route("/../../etc/passwd"), None);
        assert_eq!(route("/%2e%2e/sigma.db"), None);
        assert_eq!(route("//metrics"), None);
    }

    #[test]
    fn the_http_flag_takes_off_or_an_address() {
        assert_eq!(HttpListen::parse("off"), Ok(HttpListen::Off));
        assert_eq!(
            HttpListen::parse("0.0.0.0:80"),
            Ok(HttpListen::Given("0.0.0.0:80".parse().unwrap()))
        );
        assert!(HttpListen::parse("localhost").is_err());
    }
}
