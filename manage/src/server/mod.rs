//! manage's binary side: everything that touches a socket, a file, a thread or the clock. The
//! library (`manage::*`) decides; this moves bytes and time to it and keeps what it says.
//!
//! * this file: startup and recovery ([`run`]), and [`Core`], the state every handler shares.
//! * [`reactor`]: the mio poll loop: accepting, reading, flushing, closing, timers, signals,
//!   shutdown.
//! * [`session`]: what a decoded message means, by the connection's role; the handshakes and
//!   the token gate.
//! * [`work`]: the search's messages (request, progress, result), a compute leaving, and the
//!   verifier's verdicts.
//! * [`jobs`]: a `<run>` routed to a compute's control connection and its `<job-result>` back.
//! * [`status`]: the `<status>` document.
//! * [`http`]: the dashboard, `/metrics`, `/status.xml` and `/healthz` (`--http`).
//! * [`store`]: the durable state in SQLite; [`verify`]: the claim-checking thread;
//!   [`connection`]: one connection's buffers; [`local`]: the `--local` computes;
//!   [`log_output`]: the log's stderr writer.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use manage::jobs::{Jobs, JobsConfig};
use manage::scheduler::{Scheduler, SchedulerConfig};
use manage::sizing::CostModel;
use manage::Millis;

use error::setup;
use events::{Event, EventLog};
use jobs::random_seed;
use local::LocalComputes;
use store::{Store, StoreError};
use token::load_or_create_token;
use verify::Verifier;

pub use error::ServerError;
pub use http::{HttpListen, DEFAULT_HTTP};

mod connection;
mod error;
mod events;
mod http;
mod jobs;
mod listener;
mod local;
pub mod log_output;
mod reactor;
mod session;
mod status;
mod store;
mod token;
mod verify;
mod work;

use reactor::{Server, Sockets};

/// What `main` decided from the command line.
pub struct Config {
    pub listen: SocketAddr,
    /// The listen backlog asked for; default: the connection cap.
    pub listen_backlog: Option<usize>,
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
    /// Where the event log goes (`-`: standard output); `None`: nowhere.
    pub events: Option<PathBuf>,
    /// Where the dashboard and /metrics are served (`--http`).
    pub http: HttpListen,
}

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
    /// The job-submission token: it proves the right to `<run>`, and nothing else.
    submit_token: String,
    /// The event log (`--events`).
    events: EventLog,
    /// The first store error: manage stops without sending the replies that depended on it.
    store_failure: Option<StoreError>,
    /// Job routing; job owners are report connection keys.
    jobs: Jobs,
    /// Each live job's encoded `<job>`, kept for failover.
    job_messages: HashMap<u64, Vec<u8>>,
    next_job: u64,
    /// Messages for other connections, queued by the handlers; the server delivers them.
    outgoing: Vec<Outgoing>,
}

pub fn run(config: Config) -> Result<(), ServerError> {
    let (sockets, waker) = Sockets::open(config.listen, config.listen_backlog)?;
    let address = sockets.address;
    let mut verifier = Verifier::start(waker).map_err(setup("cannot start the verifier thread"))?;
    let mut events = EventLog::open(config.events.as_deref())?;

    // A token file given on the command line is only read, and before the state is opened: a
    // bad one leaves no new state behind.
    let given_token = match &config.token_file {
        Some(path) => Some(load_or_create_token(path, false)?),
        None => None,
    };
    let (mut store, recovered) =
        Store::open(&config.state_dir, config.start, config.until, u64::MAX - 1)?;
    let token_path = config
        .token_file
        .clone()
        .unwrap_or_else(|| config.state_dir.join("token"));
    let token = match given_token {
        Some(token) => token,
        None => load_or_create_token(&token_path, true)?,
    };
    // The right to submit jobs is a token of its own, so the portal can be given without the
    // off switch; it always lives in the state folder, beside the state it guards.
    let submit_token_path = config.state_dir.join("submit-token");
    let submit_token = load_or_create_token(&submit_token_path, true)?;
    log::info!(
        "submission token (report run only) in {}",
        submit_token_path.display()
    );
    log::info!(
        "token in {}{}",
        token_path.display(),
        if config.require_token {
            "; computes must prove they hold it"
        } else {
            ""
        }
    );
    let snapshot = &recovered.snapshot;
    let mut scheduler_config = SchedulerConfig::new(snapshot.start, snapshot.until);
    scheduler_config.sizing.target_ms = config.target.as_millis().max(1) as u64;
    scheduler_config.deadline_floor_ms = config.lease_floor.as_millis().max(1) as u64;
    scheduler_config.double_check = config.double_check;
    let scheduler = Scheduler::restore(scheduler_config, KernelCost, snapshot)?;
    let clock = Clock::new();
    let started_ms = clock.ms(Instant::now());
    // Leases outstanding at the last stop go back to the pool (restore left them undone).
    for lease in &snapshot.outstanding {
        log::info!(
            "lease {} [{}, {}) of compute {} was outstanding at the last stop: back to the pool",
            lease.id.0,
            lease.lo,
            lease.hi,
            lease.compute.0
        );
        store.lease_ended(lease.id)?;
        events.record(
            started_ms,
            Event::Restored {
                lease: lease.id.0,
                compute: lease.compute.0,
                lo: lease.lo,
                hi: lease.hi,
            },
        );
    }
    store.commit()?;
    for claim in recovered.claims {
        log::info!(
            "checking claim {} again (unchecked at the last stop)",
            claim.n
        );
        verifier.submit(claim);
    }
    let status = scheduler.status(0);
    log::info!(
        "state in {}: {}; {} numbers tested, every number below {} tested, perfect numbers: {}",
        store.path().display(),
        if recovered.fresh { "new" } else { "resumed" },
        status.tested,
        status.frontier,
        perfect_list(status.perfect.iter().map(|p| p.n))
    );
    log::info!(
        "listening on {address}; searching {}..={} with ranges of {:.1} s",
        status.start,
        status.until,
        config.target.as_secs_f64()
    );
    events.record(
        started_ms,
        Event::Listening {
            address,
            start: status.start,
            until: status.until,
            resumed: !recovered.fresh,
            tested: status.tested,
        },
    );
    events.flush();
    let next_job = store.next_job_id()?;
    let http = http::Http::open(config.http, store.path())?;
    let mut local = LocalComputes::start(config.local_computes, address, &token_path)?;
    let grace = config.shutdown_grace;

    let core = Core {
        config,
        clock,
        scheduler,
        links: HashMap::new(),
        verifier,
        shutdown: None,
        store,
        events,
        token,
        submit_token,
        store_failure: None,
        jobs: Jobs::new(JobsConfig::default(), random_seed()),
        job_messages: HashMap::new(),
        next_job,
        outgoing: Vec::new(),
    };
    let mut server = Server::new(sockets, core, http);
    let outcome = server.run();
    server.close_everything();
    local.stop(grace);
    let mut core = server.into_core();
    let now_ms = core.clock.ms(Instant::now());
    let status = core.scheduler.status(now_ms);
    let perfect: Vec<u64> = status.perfect.iter().map(|p| p.n).collect();
    log::info!(
        "stopped: {} numbers tested, every number below {} tested, perfect numbers: {}",
        status.tested,
        status.frontier,
        perfect_list(perfect.iter().copied()),
    );
    core.events.record(
        now_ms,
        Event::Stopped {
            tested: status.tested,
            frontier: status.frontier,
            perfect: &perfect,
        },
    );
    core.events.flush();
    outcome
}

/// Perfect numbers for a log line: `6, 28, 496`, or `none yet`.
fn perfect_list(numbers: impl Iterator<Item = u64>) -> String {
    let list: Vec<String> = numbers.map(|n| n.to_string()).collect();
    if list.is_empty() {
        "none yet".to_owned()
    } else {
        list.join(", ")
    }
}
