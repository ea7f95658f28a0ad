//! Liveness of a connection across a network: the timing rules of `<heartbeat/>`, with no I/O
//! and no clock (the caller passes the time in).
//!
//! Both ends of a control connection send `<heartbeat/>` every [`HEARTBEAT_INTERVAL`] (or any
//! other message: every message counts), and each end takes a peer it has heard nothing from for
//! [`SILENCE_LIMIT`] to be gone: manage closes that compute's connections and puts its lease
//! back in the pool; a compute drops its connections to manage and reconnects. TCP keepalive
//! ([`KEEPALIVE_IDLE`], [`KEEPALIVE_INTERVAL`], [`KEEPALIVE_PROBES`]) and the TCP user timeout
//! ([`TCP_USER_TIMEOUT`]) are the backstop on every connection, the work and report ones too:
//! the kernel gives up on a peer that acknowledges nothing.

use std::time::{Duration, Instant};

/// How often each end of a control connection sends `<heartbeat/>` when it has sent nothing
/// else.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);
/// A peer heard nothing from for this long is gone (three missed heartbeats).
pub const SILENCE_LIMIT: Duration = Duration::from_secs(15);
/// TCP keepalive: the first probe after this much idle time...
pub const KEEPALIVE_IDLE: Duration = Duration::from_secs(10);
/// ...then one probe this often...
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
/// ...and the connection fails after this many probes go unanswered (10 + 3 × 5 = 25 s).
pub const KEEPALIVE_PROBES: u32 = 3;
/// Data sent and not acknowledged for this long fails the connection (Linux
/// `TCP_USER_TIMEOUT`), instead of the kernel's default of about 15 minutes of retransmissions.
pub const TCP_USER_TIMEOUT: Duration = Duration::from_secs(20);

/// When a connection last heard from its peer and last sent to it, and what follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Liveness {
    last_heard: Instant,
    last_sent: Instant,
    interval: Duration,
    limit: Duration,
}

impl Liveness {
    /// A connection opened at `now`, with the protocol's interval and limit.
    pub fn new(now: Instant) -> Liveness {
        Liveness::with(now, HEARTBEAT_INTERVAL, SILENCE_LIMIT)
    }

    /// A connection opened at `now`, sending every `interval`, with a peer gone after `limit`.
    pub fn with(now: Instant, interval: Duration, limit: Duration) -> Liveness {
        Liveness {
            last_heard: now,
            last_sent: now,
            interval,
            limit,
        }
    }

    /// Something arrived from the peer at `now` (any message counts).
    pub fn heard(&mut self, now: Instant) {
        self.last_heard = self.last_heard.max(now);
    }

    /// Something was sent to the peer at `now`.
    pub fn sent(&mut self, now: Instant) {
        self.last_sent = self.last_sent.max(now);
    }

    /// Whether a heartbeat should go out at `now` (nothing sent for an interval).
    pub fn heartbeat_due(&self, now: Instant) -> bool {
        now >= self.last_sent + self.interval
    }

    /// Whether the peer is gone at `now`: nothing heard for the limit or longer.
    pub fn silent(&self, now: Instant) -> bool {
        now >= self.last_heard + self.limit
    }

    /// How long the peer has been silent at `now`.
    pub fn silent_for(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.last_heard)
    }

    /// The next moment something is due: a heartbeat to send, or the peer's silence limit.
    pub fn next_deadline(&self) -> Instant {
        (self.last_sent + self.interval).min(self.last_heard + self.limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn heartbeats_are_due_every_interval_after_the_last_send() {
        let t0 = Instant::now();
        let mut l = Liveness::new(t0);
        assert!(!l.heartbeat_due(t0));
        assert!(!l.heartbeat_due(t0 + 4 * S));
        assert!(l.heartbeat_due(t0 + 5 * S));
        l.sent(t0 + 5 * S);
        assert!(!l.heartbeat_due(t0 + 9 * S));
        assert!(l.heartbeat_due(t0 + 10 * S));
        // Any other message sent counts as well.
        l.sent(t0 + 8 * S);
        assert!(!l.heartbeat_due(t0 + 12 * S));
        assert!(l.heartbeat_due(t0 + 13 * S));
    }

    #[test]
    fn a_peer_is_gone_after_the_limit_of_silence() {
        let t0 = Instant::now();
        let mut l = Liveness::new(t0);
        assert!(!l.silent(t0 + 14 * S));
        assert!(l.silent(t0 + 15 * S));
        l.heard(t0 + 10 * S);
        assert!(!l.silent(t0 + 24 * S));
        assert_eq!(l.silent_for(t0 + 24 * S), 14 * S);
        assert!(l.silent(t0 + 25 * S));
        // Time going backwards (an old timestamp) never shortens the wait.
        l.heard(t0 + 2 * S);
        assert!(!l.silent(t0 + 24 * S));
    }

    #[test]
    fn the_next_deadline_is_the_nearer_of_the_two() {
        let t0 = Instant::now();
        let mut l = Liveness::with(t0, 5 * S, 15 * S);
        assert_eq!(l.next_deadline(), t0 + 5 * S);
        l.sent(t0 + 12 * S);
        assert_eq!(l.next_deadline(), t0 + 15 * S);
        l.heard(t0 + 12 * S);
        assert_eq!(l.next_deadline(), t0 + 17 * S);
    }

    #[test]
    fn the_keepalive_bound_is_within_the_documented_figures() {
        let keepalive = KEEPALIVE_IDLE + KEEPALIVE_INTERVAL * KEEPALIVE_PROBES;
        assert_eq!(keepalive, 25 * S);
        assert!(SILENCE_LIMIT >= 3 * HEARTBEAT_INTERVAL);
    }
}
