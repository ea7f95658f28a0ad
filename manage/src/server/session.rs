//! What each message means: the dispatch of a decoded message by the connection's role, the
//! handshakes (hello, control, auth) and the privileged requests' gate.

use std::net::SocketAddr;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use manage::registry::{ComputeInfo, Identity};
use manage::scheduler::SchedError;
use manage::{ComputeId, Millis};
use xmlwire::protocol::{
    self, Challenge, ErrorCode, ErrorMessage, Hello, Hex, Message, Stopping, Welcome,
};
use xmlwire::{auth, XmlStr};

use super::connection::{AuthState, Right, Role};
use super::events::Event;
use super::store::{JoinedCompute, StoreError};
use super::{After, Core, Links};

pub(super) fn shutdown_message(reason: &str) -> Message<'_> {
    Message::Shutdown(protocol::Shutdown {
        reason: XmlStr::Plain(reason),
    })
}

/// Lowercase hex of 16 random bytes from the kernel.
pub(super) fn random_hex() -> String {
    sigma_link::random::hex(16).unwrap_or_else(|e| {
        // Sessions only tie a control connection to its compute, and nonces only make an
        // answer single-use; getrandom(2) does not fail on a running Linux, but if it did, a
        // clock-based value keeps the cluster up.
        log::warn!("{e}; using the clock");
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let mut text = String::with_capacity(32);
        Hex::encode_into(&nanos.to_le_bytes(), &mut text);
        text
    })
}

pub(super) fn error_reply<'a>(code: ErrorCode, text: &'a str) -> Message<'a> {
    Message::Error(ErrorMessage {
        code,
        message: XmlStr::Plain(text),
        about: None,
    })
}

/// The error code a scheduling error is answered with.
pub(super) fn sched_error_code(error: &SchedError) -> ErrorCode {
    match error {
        SchedError::UnknownLease(_) | SchedError::LeaseEnded(_) => ErrorCode::UnknownLease,
        SchedError::LeaseNotYours { .. } => ErrorCode::UnknownLease,
        SchedError::LeaseOutstanding(_) => ErrorCode::OutOfOrder,
        SchedError::Refused { .. } => ErrorCode::Unauthorized,
        SchedError::UnknownCompute(_) => ErrorCode::OutOfOrder,
        _ => ErrorCode::BadMessage,
    }
}

/// The connection a message came from, in parts: its reader is borrowed by the message.
pub(super) struct Sender<'c> {
    /// Its slab key.
    pub key: usize,
    /// Its peer's address.
    pub peer: SocketAddr,
    /// What it is, as far as its messages told.
    pub role: &'c mut Role,
    /// Its authentication state.
    pub auth: &'c mut AuthState,
    /// Its replies.
    pub outbox: &'c mut Vec<u8>,
}

impl Core {
    /// Keeps the first store error; the loop stops on it before sending any reply.
    pub(super) fn persist(&mut self, written: Result<(), StoreError>) {
        if let Err(error) = written {
            log::error!("{error}");
            self.store_failure.get_or_insert(error);
        }
    }

    /// Handles one decoded message from a connection, writing any reply to its outbox.
    pub(super) fn handle(&mut self, from: Sender<'_>, message: Message<'_>, now: Instant) -> After {
        let Sender {
            key,
            peer,
            role,
            auth,
            outbox,
        } = from;
        let now_ms = self.clock.ms(now);
        let compute_unproven = matches!(role, Role::Compute(_)) && !auth.authorized;
        match (*role, message) {
            (Role::Unknown, Message::Hello(hello)) => {
                let from = Sender {
                    key,
                    peer,
                    role,
                    auth,
                    outbox,
                };
                self.hello(from, hello, now_ms)
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
            (Role::Unknown | Role::Report, Message::ChallengeRequest) => {
                *role = Role::Report;
                self.challenge(auth, outbox);
                After::Continue
            }
            (Role::Unknown | Role::Report, Message::Auth(answer)) => {
                *role = Role::Report;
                if self.prove_report(auth, Some(answer.mac)) {
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
                    self.events
                        .record(now_ms, Event::AcceptsJobs { compute: id });
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
                self.progress(id, outbox, progress, now_ms)
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
                if let Some(refusal) = self.privileged(auth, kill.mac, outbox, peer, Right::Cluster)
                {
                    return refusal;
                }
                let computes = self.links.len() as u64;
                log::info!(
                    "report at {peer} asks to shut the cluster down ({computes} compute{})",
                    if computes == 1 { "" } else { "s" }
                );
                Message::Stopping(Stopping { computes }).encode(outbox);
                After::SignalSelf
            }
            (Role::Unknown | Role::Report, Message::Run(run)) => {
                *role = Role::Report;
                if let Some(refusal) = self.privileged(auth, run.mac, outbox, peer, Right::Submit) {
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
    pub(super) fn check_answer(&self, auth: &mut AuthState, mac: Option<Hex<'_>>) -> bool {
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

    /// Whether a report's `mac` answers the nonce pending on its connection (which it uses
    /// up) with the cluster token (every right) or the submission token (submitting only).
    fn prove_report(&self, auth: &mut AuthState, mac: Option<Hex<'_>>) -> bool {
        let (Some(nonce), Some(mac)) = (auth.nonce.take(), mac) else {
            return false;
        };
        let Some(nonce) = Hex::new(&nonce) else {
            return false;
        };
        if auth::verify(&self.token, nonce, mac) {
            auth.authorized = true;
            auth.may_submit = true;
            true
        } else if auth::verify(&self.submit_token, nonce, mac) {
            auth.may_submit = true;
            true
        } else {
            false
        }
    }

    /// Queues a `<challenge>` with a fresh nonce, the one the connection must answer next.
    fn challenge(&self, auth: &mut AuthState, outbox: &mut Vec<u8>) {
        let nonce = random_hex();
        Message::Challenge(Challenge {
            nonce: Hex::new(&nonce).unwrap_or_else(unreachable_hex),
        })
        .encode(outbox);
        auth.nonce = Some(nonce);
    }

    /// The gate of a report's request that needs `right`: `None` lets it through; otherwise
    /// the reply is queued (a challenge, or a refusal) and the request goes no further.
    pub(super) fn privileged(
        &self,
        auth: &mut AuthState,
        mac: Option<Hex<'_>>,
        outbox: &mut Vec<u8>,
        peer: SocketAddr,
        right: Right,
    ) -> Option<After> {
        if auth.holds(right) {
            return None;
        }
        let proven_before = auth.may_submit;
        if mac.is_none() && !proven_before {
            self.challenge(auth, outbox);
            return Some(After::Continue);
        }
        if mac.is_some() && self.prove_report(auth, mac) && auth.holds(right) {
            return None;
        }
        let what = match right {
            Right::Submit => "run",
            Right::Cluster => "kill",
        };
        let why = if auth.may_submit {
            "the submission token gives no other right"
        } else {
            "wrong answer to the challenge"
        };
        log::warn!("{what} from {peer} refused: {why}");
        error_reply(ErrorCode::Unauthorized, why).encode(outbox);
        Some(After::Close)
    }

    pub(super) fn hello(&mut self, from: Sender<'_>, hello: Hello<'_>, now_ms: Millis) -> After {
        let Sender {
            key,
            peer,
            role,
            auth,
            outbox,
        } = from;
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
            algorithm: hello.algorithm,
            ops_per_sec: hello.ops_per_sec,
        };
        let id = self.scheduler.join(info, now_ms).0;
        let address = peer.to_string();
        let row = JoinedCompute {
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
}

/// `random_hex` always yields 32 lowercase hex digits, which `Hex::new` accepts.
pub(super) fn unreachable_hex<'a>() -> Hex<'a> {
    Hex::new("00").expect("a constant valid hex token")
}

/// Compares secrets in time independent of where they differ.
pub(super) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
