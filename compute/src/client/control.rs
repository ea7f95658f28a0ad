//! The control connection and the thread that watches it: `<shutdown>` becomes this process's
//! own SIGINT, heartbeats go both ways, and (with `--accept-jobs`) each `<job>` runs on a thread
//! of its own in the sandbox, its `<job-result>` coming back through a channel and a mio
//! `Waker`; only the control thread touches the socket.

use std::fmt;
use std::io::{self, Write};
use std::net::{Shutdown as SocketShutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use xmlwire::liveness::Liveness;
use xmlwire::protocol::{self, Message};
use xmlwire::{Limits, Reader, XmlStr};

use super::CONNECT_TIMEOUT;
use crate::sandbox::{run_job, JobOutcome, JobRequest, SandboxConfig};

/// The control connection could not be set up.
#[derive(Debug)]
pub(super) enum ControlError {
    /// A step on the socket failed: which one, and why.
    Socket(&'static str, io::Error),
    /// manage's welcome carried a session that is not hex.
    SessionNotHex,
}

impl fmt::Display for ControlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ControlError::Socket(doing, e) => write!(f, "{doing}: {e}"),
            ControlError::SessionNotHex => f.write_str("manage sent a session that is not hex"),
        }
    }
}

/// The control connection and the thread that watches it.
pub(super) struct Control {
    /// A handle on the same socket, to wake the thread by shutting the socket down.
    socket: TcpStream,
    watcher: JoinHandle<()>,
    /// Set by the thread when manage fell silent.
    pub silent: Arc<AtomicBool>,
}

impl Control {
    /// Opens the control connection of compute `compute_id` (with the welcome's `session`)
    /// and starts its thread; `work` is a handle on the work socket, shut down to wake the
    /// work thread when manage falls silent.
    pub fn open(
        address: SocketAddr,
        compute_id: u64,
        session: &str,
        sandbox: Option<Arc<SandboxConfig>>,
        work: TcpStream,
    ) -> Result<Control, ControlError> {
        let socket_error = |doing| move |e| ControlError::Socket(doing, e);
        let stream = TcpStream::connect_timeout(&address, CONNECT_TIMEOUT)
            .map_err(socket_error("opening the control connection"))?;
        if let Err(e) = sigma_link::keep_alive(&stream) {
            log::warn!("cannot turn TCP keepalive on: {e}");
        }
        let hex = protocol::Hex::new(session).ok_or(ControlError::SessionNotHex)?;
        let mut out = Vec::new();
        Message::Control(protocol::Control {
            compute_id,
            session: hex,
            accept_jobs: sandbox.is_some(),
        })
        .encode(&mut out);
        (&stream)
            .write_all(&out)
            .map_err(socket_error("sending control"))?;
        let socket = stream
            .try_clone()
            .map_err(socket_error("cloning the control socket"))?;
        stream
            .set_nonblocking(true)
            .map_err(socket_error("control socket"))?;
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
            .map_err(socket_error("cannot start the control thread"))?;
        Ok(Control {
            socket,
            watcher,
            silent,
        })
    }

    /// Closes the connection and waits for the thread.
    pub fn close(self) {
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
                "job {id}: {} ({}, {} ms CPU, {} ms wall, {} KiB)",
                outcome.status.as_str(),
                match (outcome.exit_code, outcome.signal) {
                    (Some(code), _) => format!("exit {code}"),
                    (None, Some(signal)) => format!("signal {signal}"),
                    (None, None) => "no exit status".to_owned(),
                },
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
