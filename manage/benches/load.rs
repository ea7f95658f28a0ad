//! Load generator: N simulated computes against a real manage over loopback.
//!
//! `cargo bench -p manage --bench load` starts the release manage (a temporary state folder,
//! `--start 10^12` so no range holds a perfect number, `--double-check 0` unless a scenario says
//! otherwise) and plays computes that never scan: each answers its assign at once with a result
//! for the whole range (a checksum derived from the range, so double-checks agree; elapsed-ms the
//! real time since the assign) and asks again. Every compute says hello and opens its control
//! connection, as the real one does. The computes are multiplexed on a few mio threads.
//!
//! It prints, per scenario: round trips per second (request → assign → result → ack), latency
//! percentiles of request → assign and of result → ack (the ack waits for the durable commit),
//! manage's CPU (utime + stime over the window) and VmRSS, the generator's own CPU, the load
//! average, and how many bytes manage logged. Then a memory figure for idle computes.
//!
//! Scenarios: `1`, `100`, `1000` computes in a closed loop (each asks again as soon as its ack
//! comes); `1000-warn` (manage logging warnings only); `1000-check` (1% double-checks);
//! `1000-pipelined` (each result and the next request in one write, as the real compute sends
//! them); `1000@RATE` (paced: the computes start RATE trips a second in all, so the latencies
//! are those at that load, not at saturation); `baseline-1000` and `baseline-1000-pipelined`:
//! the same generator against a server that only answers (no state, disk or log; see
//! `baseline_server`), which is what this machine's loopback and the generator allow; `fsync`:
//! the latency of the disk's fsync, which every durable commit waits for (its tail bounds the
//! p99 any durable server can reach here); `burst-128` and `burst`: `LOAD_BURST` connections
//! (default 10,000) opened back to back against manage with a listen backlog of 128 (std's and
//! mio's) and with its default (the connection cap, within the kernel's somaxconn): the time and
//! the connects slower than 500 ms (each waited for a SYN retransmission).
//!
//! Environment: `LOAD_SECONDS` (measured window per scenario, default 6), `LOAD_SCENARIOS` (comma
//! list of the scenarios above and `idle`; default all), `LOAD_THREADS`
//! (generator threads, default 2), `LOAD_IDLE` (idle computes, default 10000). A scenario prints
//! `manage pid …` when its load starts, so `perf record -p` can be attached from outside.
//!
//! Goals (issue, reported against, not asserted): ≥ 100,000 round trips/s with 1,000 clients and
//! durable commits; p99 < 2 ms; 10,000 idle computes in < 100 MiB.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use xmlwire::protocol::{
    self, Algorithm, Control, Hello, Hex, Message, PerfectList, WorkResult, PROTOCOL_VERSION,
};
use xmlwire::{Limits, Reader, XmlStr};

/// Linux reports CPU times in /proc in USER_HZ ticks, 100 a second on every common architecture.
const TICKS_PER_SECOND: f64 = 100.0;
/// Load starts this long before the measured window, so connections and caches are warm.
const WARMUP: Duration = Duration::from_secs(1);
/// How many hellos are in flight at once while computes join (manage commits them in groups):
/// enough to keep manage busy, few enough that joining does not measure the accept queue (the
/// `burst` scenarios do that).
const JOIN_BATCH: usize = 64;
/// Descriptors the generator and manage need beside the computes' connections.
const SPARE_DESCRIPTORS: u64 = 256;

/// Raises this process's open-files limit (soft, and hard too when it may: as root) to
/// `wanted`, so that manage, started afterwards, inherits it; returns the soft limit in force.
fn raise_open_files(wanted: u64) -> u64 {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return 0;
    };
    if soft >= wanted {
        return soft;
    }
    if setrlimit(Resource::RLIMIT_NOFILE, wanted, hard.max(wanted)).is_ok() {
        return wanted;
    }
    let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    getrlimit(Resource::RLIMIT_NOFILE).map_or(soft, |(soft, _)| soft)
}

/// A manage process with its own temporary state; killed and reaped when dropped (also when the
/// bench panics).
struct Manage {
    child: Child,
    address: SocketAddr,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Manage {
    /// Starts manage with `extra` arguments and `RUST_LOG=level`.
    fn start(extra: &[&str], level: &str) -> Manage {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let state = dir.path().join("state");
        // manage logs "listening on ADDR" at info; at a quieter level the port is picked here
        // (bound, then freed) and manage is given it.
        let verbose = level.starts_with("info") || level.starts_with("debug");
        let listen = if verbose {
            "127.0.0.1:0".to_string()
        } else {
            let probe = TcpListener::bind("127.0.0.1:0").expect("a free port");
            probe.local_addr().expect("its address").to_string()
        };
        let mut command = Command::new(env!("CARGO_BIN_EXE_manage"));
        command
            .args(["--listen", &listen, "--state"])
            .arg(&state)
            .args(["--start", "1000000000000"])
            .args(extra)
            .env("RUST_LOG", level);
        let known = if verbose { None } else { Some(listen) };
        Manage::spawn(command, dir, known)
    }

    /// Starts the baseline server (this bench's own executable, see [`baseline_server`]).
    fn baseline() -> Manage {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let mut command = Command::new(std::env::current_exe().expect("the bench's path"));
        command.env(BASELINE_ENV, "1");
        Manage::spawn(command, dir, None)
    }

    /// Spawns `command` with its log in `dir`; waits until it listens: at `listen` if given,
    /// else where its log says "listening on ADDR".
    fn spawn(mut command: Command, dir: tempfile::TempDir, listen: Option<String>) -> Manage {
        let log = dir.path().join("manage.log");
        let stderr = File::create(&log).expect("a log file");
        // Logs go to a file, not a pipe: reading 100,000 lines a second would load the generator,
        // and a full pipe would stall manage.
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("the server starts");
        let mut manage = Manage {
            child,
            address: listen
                .as_deref()
                .unwrap_or("127.0.0.1:0")
                .parse()
                .expect("an address"),
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = manage.child.try_wait() {
                panic!(
                    "the server exited at start ({status}):\n{}",
                    std::fs::read_to_string(&manage.log).unwrap_or_default()
                );
            }
            if listen.is_none() {
                let text = std::fs::read_to_string(&manage.log).unwrap_or_default();
                let found = text.lines().find_map(|line| {
                    let rest = &line[line.find("listening on ")? + "listening on ".len()..];
                    rest.split(';').next()?.trim().parse().ok()
                });
                if let Some(address) = found {
                    manage.address = address;
                    return manage;
                }
            } else if std::net::TcpStream::connect(manage.address).is_ok() {
                return manage;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not start listening"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log_bytes(&self) -> u64 {
        std::fs::metadata(&self.log).map_or(0, |m| m.len())
    }
}

impl Drop for Manage {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// utime + stime of a process (`"self"` or a pid), in seconds.
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name, in parentheses, may hold spaces: count fields after its last ')'.
    let after = stat.rfind(')').map_or("", |i| &stat[i + 1..]);
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of the whole line are the 12th and 13th after the name.
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (ticks(11) + ticks(12)) as f64 / TICKS_PER_SECOND
}

/// A line of /proc/PID/status (`VmRSS`, `VmHWM`), in KiB.
fn status_kib(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// The main thread's time on a CPU and waiting for one (run queue), in seconds, from
/// /proc/PID/schedstat. manage's reactor is its main thread; on a busy machine the second figure
/// says how much of the run manage was ready but not running.
fn schedstat_seconds(pid: u32) -> (f64, f64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/schedstat")).unwrap_or_default();
    let mut fields = text
        .split_whitespace()
        .map(|f| f.parse::<u64>().unwrap_or(0) as f64 / 1e9);
    (fields.next().unwrap_or(0.0), fields.next().unwrap_or(0.0))
}

fn loadavg() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The checksum a simulated compute reports: any function of the range will do, as long as two
/// computes agree on it (double-checks then pass).
fn fake_checksum(lo: u64, hi: u64) -> u64 {
    lo.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ hi
}

/// A compute that has been welcomed: its work connection (with the reader that holds any bytes
/// read past the welcome) and, if opened, its control connection.
struct Joined {
    work: std::net::TcpStream,
    reader: Reader,
    control: Option<std::net::TcpStream>,
}

/// Reads one message from a blocking stream into `reader` and hands it to `take`.
fn read_one<T>(
    stream: &mut std::net::TcpStream,
    reader: &mut Reader,
    take: impl Fn(Message<'_>) -> T,
) -> T {
    loop {
        if let Some(frame) = reader.next_message().expect("well-formed XML from manage") {
            let message = protocol::decode(&frame).expect("a valid message from manage");
            return take(message);
        }
        match reader.read_from(stream) {
            Ok(0) => panic!("manage closed a connection while a compute joined"),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => panic!("reading a welcome: {e}"),
        }
    }
}

/// Joins `count` computes (numbered from `first`), `JOIN_BATCH` hellos in flight at a time, each
/// opening its control connection when `control` says so.
fn join(
    address: SocketAddr,
    first: usize,
    count: usize,
    control: impl Fn(usize) -> bool,
) -> Vec<Joined> {
    let mut joined: Vec<Joined> = Vec::with_capacity(count);
    let mut buf = Vec::new();
    let mut start = first;
    let mut next_heartbeat = Instant::now() + xmlwire::liveness::HEARTBEAT_INTERVAL;
    while start < first + count {
        // Joining thousands takes longer than manage's silence limit: keep the early ones alive.
        if Instant::now() >= next_heartbeat {
            next_heartbeat = Instant::now() + xmlwire::liveness::HEARTBEAT_INTERVAL;
            heartbeat_all(&mut joined);
        }
        let end = (start + JOIN_BATCH).min(first + count);
        let mut batch = Vec::with_capacity(end - start);
        for i in start..end {
            let mut work = std::net::TcpStream::connect(address).expect("connect");
            work.set_nodelay(true).expect("nodelay");
            work.set_read_timeout(Some(Duration::from_secs(60)))
                .expect("a read timeout");
            let host = format!("load-{}", i % 8);
            buf.clear();
            Message::Hello(Hello {
                version: PROTOCOL_VERSION,
                host: XmlStr::Plain(&host),
                pid: 100_000 + i as u64,
                threads: 1,
                algorithm: Algorithm::Sieve,
                ops_per_sec: 812_345_678,
            })
            .encode(&mut buf);
            work.write_all(&buf).expect("send hello");
            batch.push((i, work));
        }
        for (i, mut work) in batch {
            let mut reader = Reader::new(Limits::DEFAULT);
            let (id, session) = read_one(&mut work, &mut reader, |m| match m {
                Message::Welcome(w) => (w.compute_id, w.session.as_str().to_string()),
                other => panic!("expected a welcome, got {other:?}"),
            });
            let control = control(i).then(|| {
                let mut stream = std::net::TcpStream::connect(address).expect("connect control");
                buf.clear();
                Message::Control(Control {
                    compute_id: id,
                    session: Hex::new(&session).expect("manage's session is hex"),
                    accept_jobs: false,
                })
                .encode(&mut buf);
                stream.write_all(&buf).expect("send control");
                stream
            });
            joined.push(Joined {
                work,
                reader,
                control,
            });
        }
        start = end;
    }
    joined
}

/// A heartbeat on every control connection, as a real compute sends every few seconds.
fn heartbeat_all(joined: &mut [Joined]) {
    for control in joined.iter_mut().filter_map(|j| j.control.as_mut()) {
        let _ = control.write_all(b"<heartbeat/>");
    }
}

/// Where a simulated compute is in its loop.
enum Step {
    /// Sent a request at this moment.
    Requested(Instant),
    /// Sent a result at this moment.
    Reported(Instant),
    /// Told to wait; asks again at this moment.
    Waiting(Instant),
    /// Its connection failed or manage refused it.
    Dead,
}

/// How a simulated compute sends.
#[derive(Clone, Copy, Debug)]
enum Pattern {
    /// Request, wait for the assign, result, wait for the ack, again at once (closed loop).
    Closed,
    /// As `Closed`, but each result and the next request go in one write.
    Pipelined,
    /// Closed-loop trips, each compute starting one every `computes / rate` seconds: the
    /// generator offers `rate` trips/s in all, and the latencies are those at that rate
    /// rather than at saturation.
    Paced { rate: f64 },
}

struct Client {
    work: TcpStream,
    reader: Reader,
    control: Option<TcpStream>,
    out: Vec<u8>,
    sent: usize,
    writable: bool,
    step: Step,
    pattern: Pattern,
    /// When paced: the time between two trips' starts, and the next start.
    period: Duration,
    next_start: Instant,
}

/// What one reply asked of a client (copied out of the reader's frame).
enum Reply {
    Assign { lease: u64, lo: u64, hi: u64 },
    Ack,
    Wait(u64),
    Other(String),
}

/// The measured window, the same for every thread.
#[derive(Clone, Copy)]
struct Window {
    start: Instant,
    end: Instant,
}

impl Window {
    fn holds(&self, t: Instant) -> bool {
        t >= self.start && t < self.end
    }
}

/// What one generator thread saw inside the window.
#[derive(Default)]
struct Tally {
    /// request → assign, microseconds.
    assign_us: Vec<u32>,
    /// result → ack, microseconds.
    ack_us: Vec<u32>,
    waits: u64,
    dead: u64,
    problems: Vec<String>,
}

fn micros(d: Duration) -> u32 {
    d.as_micros().min(u128::from(u32::MAX)) as u32
}

impl Client {
    /// Queues `message` and writes what the socket takes.
    fn send(&mut self, message: Message<'_>, registry: &mio::Registry, token: Token) {
        message.encode(&mut self.out);
        self.flush(registry, token);
    }

    fn flush(&mut self, registry: &mio::Registry, token: Token) {
        while self.sent < self.out.len() {
            match self.work.write(&self.out[self.sent..]) {
                Ok(n) if n > 0 => self.sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                _ => {
                    self.step = Step::Dead;
                    return;
                }
            }
        }
        if self.sent == self.out.len() {
            self.out.clear();
            self.sent = 0;
        }
        let want = !self.out.is_empty();
        if want != self.writable {
            let interest = if want {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            registry
                .reregister(&mut self.work, token, interest)
                .expect("reregister");
            self.writable = want;
        }
    }

    fn request(&mut self, registry: &mio::Registry, token: Token) {
        self.step = Step::Requested(Instant::now());
        self.send(Message::Request, registry, token);
    }

    /// Reads what manage sent and answers every complete reply.
    fn readable(
        &mut self,
        registry: &mio::Registry,
        token: Token,
        window: Window,
        tally: &mut Tally,
    ) {
        loop {
            match self.reader.read_from(&mut self.work) {
                Ok(0) => {
                    self.step = Step::Dead;
                    return;
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    tally.problems.push(format!("read: {e}"));
                    self.step = Step::Dead;
                    return;
                }
            }
            while let Some(reply) = self.next_reply() {
                self.answer(reply, registry, token, window, tally);
                if matches!(self.step, Step::Dead) {
                    return;
                }
            }
            // As manage reads: a short read drained the socket (see `read_available`).
            if self.reader.last_read_was_short() {
                return;
            }
        }
    }

    fn next_reply(&mut self) -> Option<Reply> {
        let frame = match self.reader.next_message() {
            Ok(frame) => frame?,
            Err(e) => return Some(Reply::Other(format!("bad XML: {e}"))),
        };
        Some(match protocol::decode(&frame) {
            Ok(Message::Assign(a)) => Reply::Assign {
                lease: a.lease,
                lo: a.lo,
                hi: a.hi,
            },
            Ok(Message::Ack(_)) => Reply::Ack,
            Ok(Message::Wait(w)) => Reply::Wait(w.ms),
            Ok(other) => Reply::Other(format!("{other:?}")),
            Err(e) => Reply::Other(format!("undecodable: {e:?}")),
        })
    }

    fn answer(
        &mut self,
        reply: Reply,
        registry: &mio::Registry,
        token: Token,
        window: Window,
        tally: &mut Tally,
    ) {
        let now = Instant::now();
        match (reply, &self.step) {
            (Reply::Assign { lease, lo, hi }, &Step::Requested(asked)) => {
                if window.holds(now) {
                    tally.assign_us.push(micros(now - asked));
                }
                let result = WorkResult {
                    lease,
                    lo,
                    hi,
                    elapsed_ms: now.elapsed().as_millis() as u64,
                    checksum: fake_checksum(lo, hi),
                    perfect: PerfectList::new(),
                };
                self.step = Step::Reported(Instant::now());
                if matches!(self.pattern, Pattern::Pipelined) {
                    // The next request goes with the result, in one write; manage answers both
                    // in the same batch (ack, then assign), in one write too.
                    Message::Result(result).encode(&mut self.out);
                    self.send(Message::Request, registry, token);
                } else {
                    self.send(Message::Result(result), registry, token);
                }
            }
            (Reply::Ack, &Step::Reported(sent)) => {
                if window.holds(now) {
                    tally.ack_us.push(micros(now - sent));
                }
                match self.pattern {
                    // The request went with the result: its assign is timed from then.
                    Pattern::Pipelined => self.step = Step::Requested(sent),
                    Pattern::Closed => self.request(registry, token),
                    // A start already past (the server fell behind) is due at once.
                    Pattern::Paced { .. } => {
                        self.next_start += self.period;
                        self.step = Step::Waiting(self.next_start);
                    }
                }
            }
            (Reply::Wait(ms), &Step::Requested(_)) => {
                if window.holds(now) {
                    tally.waits += 1;
                }
                self.step = Step::Waiting(now + Duration::from_millis(ms));
            }
            (Reply::Other(text), _) => {
                tally.problems.push(text);
                self.step = Step::Dead;
            }
            _ => {
                tally.problems.push("a reply out of order".into());
                self.step = Step::Dead;
            }
        }
    }
}

/// Runs `joined` computes until the window ends; returns what was seen inside it.
fn drive(
    joined: Vec<Joined>,
    pattern: Pattern,
    computes: usize,
    ready: mpsc::Sender<()>,
    go: mpsc::Receiver<Window>,
) -> Tally {
    let mut poll = Poll::new().expect("a poll");
    let mut clients: Vec<Client> = joined
        .into_iter()
        .map(|j| {
            j.work.set_nonblocking(true).expect("nonblocking");
            let control = j.control.map(|c| {
                c.set_nonblocking(true).expect("nonblocking");
                TcpStream::from_std(c)
            });
            Client {
                work: TcpStream::from_std(j.work),
                reader: j.reader,
                control,
                out: Vec::with_capacity(256),
                sent: 0,
                writable: false,
                step: Step::Dead,
                pattern,
                period: match pattern {
                    Pattern::Paced { rate } => Duration::from_secs_f64(computes as f64 / rate),
                    _ => Duration::ZERO,
                },
                next_start: Instant::now(),
            }
        })
        .collect();
    for (i, client) in clients.iter_mut().enumerate() {
        poll.registry()
            .register(&mut client.work, Token(2 * i), Interest::READABLE)
            .expect("register");
        if let Some(control) = &mut client.control {
            poll.registry()
                .register(control, Token(2 * i + 1), Interest::READABLE)
                .expect("register");
        }
    }
    let _ = ready.send(());
    let window = go.recv().expect("the window");
    let mut tally = Tally::default();
    let mut waiting: BinaryHeap<Reverse<(Instant, usize)>> = BinaryHeap::new();
    let first_start = Instant::now();
    let count = clients.len();
    for (i, client) in clients.iter_mut().enumerate() {
        if let Pattern::Paced { .. } = pattern {
            // Starts spread evenly over one period.
            client.next_start = first_start + client.period.mul_f64(i as f64 / count as f64);
            client.step = Step::Waiting(client.next_start);
            waiting.push(Reverse((client.next_start, i)));
        } else {
            client.request(poll.registry(), Token(2 * i));
        }
    }
    let mut events = Events::with_capacity(1024);
    let mut scratch = [0u8; 4096];
    // manage gives up a compute whose control connection is silent for 15 s.
    let mut next_heartbeat = Instant::now() + xmlwire::liveness::HEARTBEAT_INTERVAL;
    loop {
        let now = Instant::now();
        if now >= window.end {
            break;
        }
        if now >= next_heartbeat {
            next_heartbeat = now + xmlwire::liveness::HEARTBEAT_INTERVAL;
            for client in clients.iter_mut() {
                if let Some(control) = &mut client.control {
                    // 12 bytes into an idle socket: a short write cannot happen in practice.
                    let _ = control.write(b"<heartbeat/>");
                }
            }
        }
        while let Some(&Reverse((at, i))) = waiting.peek() {
            if at > now {
                break;
            }
            waiting.pop();
            clients[i].request(poll.registry(), Token(2 * i));
        }
        let mut timeout = (window.end - now).min(next_heartbeat.saturating_duration_since(now));
        if let Some(&Reverse((at, _))) = waiting.peek() {
            timeout = timeout.min(at.saturating_duration_since(now));
        }
        match poll.poll(&mut events, Some(timeout)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => panic!("poll: {e}"),
        }
        for event in events.iter() {
            let i = event.token().0 / 2;
            let client = &mut clients[i];
            if matches!(client.step, Step::Dead) {
                continue;
            }
            if event.token().0 % 2 == 1 {
                // Control connection: nothing is expected during the run; drain and ignore.
                if let Some(control) = &mut client.control {
                    loop {
                        match control.read(&mut scratch) {
                            Ok(0) => {
                                tally.problems.push("control connection closed".into());
                                client.step = Step::Dead;
                                break;
                            }
                            Ok(_) => {}
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                            Err(_) => break,
                        }
                    }
                }
                continue;
            }
            let token = Token(2 * i);
            if event.is_writable() {
                client.flush(poll.registry(), token);
            }
            if event.is_readable() || event.is_read_closed() || event.is_error() {
                client.readable(poll.registry(), token, window, &mut tally);
            }
            if let Step::Waiting(at) = client.step {
                waiting.push(Reverse((at, i)));
            }
        }
    }
    tally.dead = clients
        .iter()
        .filter(|c| matches!(c.step, Step::Dead))
        .count() as u64;
    tally
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    f64::from(sorted[i]) / 1000.0
}

/// What a load scenario runs against.
#[derive(Clone, Copy)]
enum Server<'a> {
    /// manage, with these arguments, at this log level.
    Manage(&'a [&'a str], &'a str),
    /// The baseline server ([`baseline_server`]).
    Baseline,
}

/// One load scenario: `clients` computes against `server`, sending as `pattern` says.
fn load(
    name: &str,
    clients: usize,
    server: Server<'_>,
    pattern: Pattern,
    seconds: u64,
    threads: usize,
) {
    let manage = match server {
        Server::Manage(extra, level) => Manage::start(extra, level),
        Server::Baseline => Manage::baseline(),
    };
    let pid = manage.pid();
    let threads = threads.clamp(1, clients);
    let (ready_tx, ready_rx) = mpsc::channel();
    let mut starters = Vec::new();
    let mut handles = Vec::new();
    let joining = Instant::now();
    for t in 0..threads {
        let first = clients * t / threads;
        let count = clients * (t + 1) / threads - first;
        let ready = ready_tx.clone();
        let (go_tx, go_rx) = mpsc::channel();
        starters.push(go_tx);
        let address = manage.address;
        handles.push(thread::spawn(move || {
            let joined = join(address, first, count, |_| true);
            drive(joined, pattern, clients, ready, go_rx)
        }));
    }
    for _ in 0..threads {
        ready_rx.recv().expect("a generator thread is ready");
    }
    let joined_in = joining.elapsed();
    let start = Instant::now() + WARMUP;
    let window = Window {
        start,
        end: start + Duration::from_secs(seconds),
    };
    for go in &starters {
        go.send(window).expect("a generator thread waits");
    }
    println!(
        "  [{name}] manage pid {pid}: {clients} computes joined in {joined_in:.2?}, load running"
    );
    thread::sleep(window.start.saturating_duration_since(Instant::now()));
    let sched0 = schedstat_seconds(pid);
    let (manage_cpu0, own_cpu0, log0) = (
        cpu_seconds(&pid.to_string()),
        cpu_seconds("self"),
        manage.log_bytes(),
    );
    thread::sleep(window.end.saturating_duration_since(Instant::now()));
    let (manage_cpu1, own_cpu1, log1) = (
        cpu_seconds(&pid.to_string()),
        cpu_seconds("self"),
        manage.log_bytes(),
    );
    let sched1 = schedstat_seconds(pid);
    let rss = status_kib(pid, "VmRSS");
    let hwm = status_kib(pid, "VmHWM");
    let load = loadavg();
    let mut tally = Tally::default();
    for handle in handles {
        let part = handle.join().expect("a generator thread");
        tally.assign_us.extend(part.assign_us);
        tally.ack_us.extend(part.ack_us);
        tally.waits += part.waits;
        tally.dead += part.dead;
        tally.problems.extend(part.problems);
    }
    drop(manage);
    let span = seconds as f64;
    tally.assign_us.sort_unstable();
    tally.ack_us.sort_unstable();
    let (a, k) = (&tally.assign_us, &tally.ack_us);
    println!(
        "{name:<11} {clients:>5} {:>9.0} | {:>6.2} {:>6.2} {:>7.1} | {:>6.2} {:>6.2} {:>7.1} | {:>5.0}% {:>5.0}% {:>7.1} {:>7.1} | {:>5.0}% | {:>6.1} | {load}",
        k.len() as f64 / span,
        percentile(a, 0.5),
        percentile(a, 0.99),
        percentile(a, 1.0),
        percentile(k, 0.5),
        percentile(k, 0.99),
        percentile(k, 1.0),
        (manage_cpu1 - manage_cpu0) / span * 100.0,
        (sched1.1 - sched0.1) / span * 100.0,
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0,
        (own_cpu1 - own_cpu0) / span * 100.0,
        (log1 - log0) as f64 / span / 1e6,
    );
    if tally.waits > 0 || tally.dead > 0 || !tally.problems.is_empty() {
        println!(
            "    {} waits, {} computes dead, problems: {:?}",
            tally.waits,
            tally.dead,
            tally.problems.iter().take(3).collect::<Vec<_>>()
        );
    }
}

/// Connects `computes` idle computes (hello, then the control connection, as many as the
/// open-files limit allows: all of them where this process may raise it) and reports manage's
/// memory, then how long one status request takes. Where not every compute could open its
/// control connection, the full figure is extrapolated from the memory per connection.
fn idle(computes: usize) {
    // The generator holds one end of each connection and manage the other.
    let limit = raise_open_files(2 * computes as u64 + SPARE_DESCRIPTORS);
    let controls =
        (limit.saturating_sub(computes as u64 + SPARE_DESCRIPTORS) as usize).min(computes);
    let manage = Manage::start(&["--double-check", "0"], "info");
    let pid = manage.pid();
    thread::sleep(Duration::from_millis(200));
    let before = status_kib(pid, "VmRSS");
    let started = Instant::now();
    let mut work_only = join(manage.address, 0, computes, |i| i < controls);
    heartbeat_all(&mut work_only);
    let joined_in = started.elapsed();
    // A status request behind them is answered once manage has taken them all in (its answer
    // lists every compute: it is also the O(computes) document).
    let asked = Instant::now();
    let mut report = std::net::TcpStream::connect(manage.address).expect("connect report");
    report
        .write_all(b"<status-request/>")
        .expect("send status request");
    report
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("a read timeout");
    // Beyond the protocol's own limits (1 MiB, 100,000 tokens): with thousands of computes the
    // status document is larger, and this figure should still come out.
    let mut reader = Reader::new(Limits {
        max_message_bytes: 256 << 20,
        max_tokens: usize::MAX,
        ..Limits::DEFAULT
    });
    let (listed, status_bytes, status_tokens) = loop {
        if let Some(frame) = reader.next_message().expect("well-formed XML from manage") {
            let size = (frame.bytes.len(), frame.tokens.len());
            match protocol::decode(&frame).expect("a valid status") {
                Message::Status(s) => break (s.computes.len(), size.0, size.1),
                other => panic!("expected a status, got {other:?}"),
            }
        }
        match reader.read_from(&mut report) {
            Ok(0) => panic!("manage closed the report connection"),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => panic!("reading the status: {e}"),
        }
    };
    let status_took = asked.elapsed();
    assert_eq!(listed, computes, "manage lists every idle compute");
    // manage's sweep (every second) frees the buffers of connections quiet for a second.
    thread::sleep(Duration::from_millis(2500));
    let rss = status_kib(pid, "VmRSS");
    let connections = computes + controls;
    let per_connection = (rss.saturating_sub(before)) as f64 / connections as f64;
    let full = before as f64 + per_connection * (2 * computes) as f64;
    println!(
        "idle: {computes} computes ({controls} with a control connection, {connections} connections) joined in {joined_in:.2?}; \
         VmRSS {:.1} MiB before, {:.1} MiB with them ({per_connection:.1} KiB a connection); \
         status listing {listed} computes took {status_took:.2?} ({status_bytes} bytes, {status_tokens} tokens)",
        before as f64 / 1024.0,
        rss as f64 / 1024.0,
    );
    if controls < computes {
        println!(
            "      extrapolated (open files limited to {limit}): {computes} computes each with its control connection ({} connections) ≈ {:.0} MiB (goal < 100 MiB)",
            2 * computes,
            full / 1024.0
        );
    } else {
        println!(
            "      measured: {computes} computes with both connections held in {:.1} MiB (goal < 100 MiB)",
            rss as f64 / 1024.0
        );
    }
    drop(work_only);
}

/// Opens `count` connections back to back, as the computes of a large cluster do when manage
/// restarts, against a manage whose listen backlog is `backlog` (its default when `None`), and
/// prints how long the burst took and how many connects waited for a SYN retransmission (over
/// 500 ms: the first retry comes after 1 s). Nothing is sent: manage's accept queue alone is
/// measured.
fn burst(label: &str, count: usize, backlog: Option<u32>) {
    raise_open_files(2 * count as u64 + SPARE_DESCRIPTORS);
    let backlog_arg = backlog.map(|b| b.to_string());
    let mut args = vec!["--double-check", "0"];
    if let Some(backlog) = &backlog_arg {
        args.extend(["--listen-backlog", backlog.as_str()]);
    }
    let manage = Manage::start(&args, "info");
    let granted = std::fs::read_to_string(&manage.log)
        .unwrap_or_default()
        .lines()
        .find_map(|line| {
            let before = &line[..line.find(" waiting to be accepted")?];
            before.rsplit(' ').next()?.parse::<u64>().ok()
        })
        .map_or("?".to_string(), |b| b.to_string());
    let slow_after = Duration::from_millis(500);
    let (mut slow, mut failed, mut slowest) = (0, 0, Duration::ZERO);
    let mut held = Vec::with_capacity(count);
    let started = Instant::now();
    for _ in 0..count {
        let connect_started = Instant::now();
        match std::net::TcpStream::connect_timeout(&manage.address, Duration::from_secs(10)) {
            Ok(stream) => held.push(stream),
            Err(_) => failed += 1,
        }
        let took = connect_started.elapsed();
        slowest = slowest.max(took);
        if took > slow_after {
            slow += 1;
        }
    }
    let took = started.elapsed();
    println!(
        "{label}: {count} connections back to back in {took:.2?} (listen backlog {granted}): \
         {slow} connects over {slow_after:?}, slowest {slowest:.2?}, {failed} failed"
    );
}

/// The disk's part of a durable commit: `seconds` of 4 KiB writes each followed by an fsync, in
/// a temporary folder beside where manage's states go, back to back (0.5 ms apart). No reply
/// that waits for a commit can beat these times, and one slow fsync holds back every reply of
/// its batch: the tail of this distribution is a floor under the load scenarios' p99 and max.
fn fsync_floor(seconds: u64) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let path = dir.path().join("probe");
    let mut file = File::create(&path).expect("a probe file");
    let mut times = Vec::new();
    let end = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < end {
        file.write_all(&[b'x'; 4096]).expect("a probe write");
        let started = Instant::now();
        file.sync_data().expect("fsync");
        times.push(micros(started.elapsed()));
        thread::sleep(Duration::from_micros(500));
    }
    times.sort_unstable();
    let over = |ms: u32| times.iter().filter(|&&t| t > ms * 1000).count();
    println!(
        "fsync floor: {} fsyncs of 4 KiB in {seconds} s: p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.1} ms; {} over 10 ms, {} over 50 ms",
        times.len(),
        percentile(&times, 0.5),
        percentile(&times, 0.99),
        percentile(&times, 0.999),
        percentile(&times, 1.0),
        over(10),
        over(50),
    );
}

/// Set in the environment of this bench's own executable to make it the baseline server.
const BASELINE_ENV: &str = "SIGMA_LOAD_BASELINE_SERVER";

/// The baseline: one mio thread that answers the computes' messages with the least work a valid
/// reply needs (frame and decode with xmlwire, encode the reply), and nothing else: no state, no
/// disk, no log. With the same generator, its trips/s is what this machine's loopback and the
/// generator allow for the message pattern; manage's ratio to it is what manage's own work costs.
/// It reads as manage does (until the socket is drained, see `Connection::read_available`) and
/// writes each connection's replies once per event.
fn baseline_server() {
    use mio::net::TcpListener as MioListener;
    use xmlwire::protocol::{Ack, Assign, Welcome};

    struct Peer {
        stream: TcpStream,
        reader: Reader,
        out: Vec<u8>,
        sent: usize,
    }
    const LISTENER: Token = Token(usize::MAX);
    let mut listener =
        MioListener::bind("127.0.0.1:0".parse().expect("an address")).expect("bind loopback");
    eprintln!(
        "baseline server listening on {}",
        listener.local_addr().expect("its address")
    );
    let mut poll = Poll::new().expect("a poll");
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)
        .expect("register the listener");
    let mut peers: slab::Slab<Peer> = slab::Slab::new();
    let mut events = Events::with_capacity(1024);
    let (mut next_id, mut next_lo) = (1u64, 1_000_000_000_000u64);
    loop {
        match poll.poll(&mut events, None) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => panic!("poll: {e}"),
        }
        for event in events.iter() {
            if event.token() == LISTENER {
                while let Ok((mut stream, _)) = listener.accept() {
                    let _ = stream.set_nodelay(true);
                    let entry = peers.vacant_entry();
                    poll.registry()
                        .register(&mut stream, Token(entry.key()), Interest::READABLE)
                        .expect("register a connection");
                    entry.insert(Peer {
                        stream,
                        reader: Reader::new(Limits::DEFAULT),
                        out: Vec::new(),
                        sent: 0,
                    });
                }
                continue;
            }
            let key = event.token().0;
            let Some(peer) = peers.get_mut(key) else {
                continue;
            };
            let mut closed = false;
            loop {
                let mut drained = false;
                match peer.reader.read_from(&mut peer.stream) {
                    Ok(0) => closed = true,
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => drained = true,
                    Err(_) => closed = true,
                }
                while let Ok(Some(frame)) = peer.reader.next_message() {
                    let reply = match protocol::decode(&frame) {
                        Ok(Message::Hello(_)) => {
                            next_id += 1;
                            Some(Message::Welcome(Welcome {
                                compute_id: next_id,
                                target_ms: 1000,
                                session: Hex::new("00").expect("hex"),
                                nonce: Hex::new("00").expect("hex"),
                            }))
                        }
                        Ok(Message::Request) => {
                            next_id += 1;
                            next_lo += 1000;
                            Some(Message::Assign(Assign {
                                lease: next_id,
                                lo: next_lo,
                                hi: next_lo + 1000,
                                deadline_ms: 60_000,
                            }))
                        }
                        Ok(Message::Result(result)) => Some(Message::Ack(Ack {
                            lease: result.lease,
                        })),
                        _ => None,
                    };
                    if let Some(reply) = reply {
                        reply.encode(&mut peer.out);
                    }
                }
                // The same rule as manage's: a short read drained the socket, unless the peer
                // also closed (then read on to the end of stream).
                let short = peer.reader.last_read_was_short() && !event.is_read_closed();
                if closed || drained || short {
                    break;
                }
            }
            while peer.sent < peer.out.len() {
                match peer.stream.write(&peer.out[peer.sent..]) {
                    Ok(n) if n > 0 => peer.sent += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        // Rare (the generator reads at once): finish on the writable event.
                        let _ = poll.registry().reregister(
                            &mut peer.stream,
                            Token(key),
                            Interest::READABLE | Interest::WRITABLE,
                        );
                        break;
                    }
                    _ => {
                        closed = true;
                        break;
                    }
                }
            }
            if peer.sent == peer.out.len() {
                peer.out.clear();
                peer.sent = 0;
            }
            if closed {
                let mut peer = peers.remove(key);
                let _ = poll.registry().deregister(&mut peer.stream);
            }
        }
    }
}

fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    if std::env::var_os(BASELINE_ENV).is_some() {
        baseline_server();
        return;
    }
    // `cargo bench` passes --bench; run any other way (cargo test --benches), only a smoke test.
    let benching = std::env::args().any(|a| a == "--bench");
    let seconds: u64 = env_or("LOAD_SECONDS", if benching { 6 } else { 1 });
    let threads: usize = env_or("LOAD_THREADS", 2);
    let idle_computes: usize = env_or("LOAD_IDLE", 10_000);
    let burst_connections: usize = env_or("LOAD_BURST", 10_000);
    let default_scenarios = if benching {
        "1,100,1000,1000-warn,1000-check,1000-pipelined,baseline-1000,baseline-1000-pipelined,1000@5000,1000@10000,1000@20000,fsync,idle,burst-128,burst"
    } else {
        "100"
    };
    let scenarios = std::env::var("LOAD_SCENARIOS").unwrap_or_else(|_| default_scenarios.into());
    println!(
        "load: manage {} on 127.0.0.1, {} cores, {seconds} s windows after {WARMUP:?} of warm-up, {threads} generator threads",
        env!("CARGO_BIN_EXE_manage"),
        thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "scenario    comps  trips/s | assign ms p50 p99 max  | ack ms p50 p99 max      | manage CPU, runq, RSS MiB, peak | gen CPU | log MB/s | loadavg"
    );
    let no_check = ["--double-check", "0", "--target-seconds", "1"];
    let check = ["--target-seconds", "1"];
    let (manage, manage_warn, manage_check) = (
        Server::Manage(&no_check, "info"),
        Server::Manage(&no_check, "warn"),
        Server::Manage(&check, "info"),
    );
    for scenario in scenarios.split(',').map(str::trim) {
        let run =
            |name, clients, server, pattern| load(name, clients, server, pattern, seconds, threads);
        let (closed, pipelined) = (Pattern::Closed, Pattern::Pipelined);
        match scenario {
            "1" => run("info", 1, manage, closed),
            "100" => run("info", 100, manage, closed),
            "1000" => run("info", 1000, manage, closed),
            "1000-warn" => run("warn", 1000, manage_warn, closed),
            "1000-check" => run("info+check", 1000, manage_check, closed),
            "1000-pipelined" => run("info+pipe", 1000, manage, pipelined),
            "baseline-1000" => run("baseline", 1000, Server::Baseline, closed),
            "baseline-1000-pipelined" => run("base+pipe", 1000, Server::Baseline, pipelined),
            paced if paced.starts_with("1000@") => match paced["1000@".len()..].parse() {
                Ok(rate) => run(paced, 1000, manage, Pattern::Paced { rate }),
                Err(_) => eprintln!("load: bad paced scenario {paced:?} (1000@RATE)"),
            },
            "idle" => idle(idle_computes),
            "burst-128" => burst(scenario, burst_connections, Some(128)),
            "burst" => burst(scenario, burst_connections, None),
            "fsync" => fsync_floor(seconds),
            "" => {}
            other => eprintln!("load: unknown scenario {other:?}"),
        }
    }
    println!("goals: >= 100,000 trips/s with 1,000 computes (durable commits), p99 < 2 ms, 10,000 idle computes < 100 MiB");
}
