//! manage's I/O-free core: everything the reactor decides, as plain state machines.
//!
//! Nothing here touches a socket, a file or a clock: the reactor passes the time in as
//! [`Millis`] and moves bytes. The core must not panic on any input a peer can send; a bad
//! message becomes a [`scheduler::SchedError`] that the reactor turns into an `<error>` reply.
//!
//! * [`ranges`]: merged half-open interval sets over u64.
//! * [`pool`]: which numbers are done, leased, given back, or still fresh.
//! * [`leases`]: the live leases, their progress and deadlines, and recently ended ones.
//! * [`sizing`]: each compute's rate estimate, and range lengths that take the target time.
//! * [`registry`]: the connected computes.
//! * [`checks`]: double-checking a share of the results on another compute.
//! * [`flags`]: offences per host and pid, and refusal after too many.
//! * [`jobs`]: routing submitted programs to the computes that run jobs.
//! * [`scheduler`]: all of the above together; the one type the reactor calls.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod checks;
pub mod flags;
pub mod jobs;
pub mod leases;
pub mod pool;
pub mod ranges;
pub mod registry;
pub mod scheduler;
pub mod sizing;

/// Milliseconds on the reactor's clock. The core only compares and subtracts them (saturating),
/// so any origin works; the reactor should pass `unix_ms_at_start + monotonic_elapsed_ms`,
/// which never goes backwards and still reads as a Unix time in the status document.
pub type Millis = u64;

/// A compute as the scheduler knows it: one per `hello`, never reused within a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ComputeId(pub u64);

/// A lease: one range handed to one compute. Increasing, never reused within a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LeaseId(pub u64);

impl std::fmt::Display for ComputeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "compute {}", self.0)
    }
}

impl std::fmt::Display for LeaseId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "lease {}", self.0)
    }
}
