//! What goes in and out of the scheduler: assignments, results, expiries, errors, and what
//! survives a restart.

use std::fmt;

use crate::checks::CheckOutcome;
use crate::flags::Flagged;
use crate::leases::Lease;
use crate::registry::Identity;
use crate::sizing::Observation;
use crate::{ComputeId, LeaseId, Millis};

/// A message the scheduler refuses; the reactor answers it with an `<error>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SchedError {
    /// No connected compute has this id (it never said hello, or it left).
    UnknownCompute(ComputeId),
    /// No lease has this id (never issued, or ended so long ago it was forgotten).
    UnknownLease(LeaseId),
    /// The lease belongs to another compute (not this one, nor one with its host and pid).
    LeaseNotYours {
        /// The lease.
        lease: LeaseId,
        /// Who holds (or held) it.
        owner: ComputeId,
    },
    /// Progress for a lease that is no longer live (it expired, or a result ended it). Not
    /// fatal: the compute may still send its result, which is accepted as a late one.
    LeaseEnded(LeaseId),
    /// A request from a compute that still holds a live lease.
    LeaseOutstanding(LeaseId),
    /// A result whose range does not start where its lease does, or ends past it (or before
    /// its start).
    RangeOutsideLease {
        /// The lease.
        lease: LeaseId,
        /// The result's range.
        lo: u64,
        /// The result's range end.
        hi: u64,
        /// The lease's range.
        lease_lo: u64,
        /// The lease's range end.
        lease_hi: u64,
    },
    /// Progress outside `[lo, hi]` of its lease.
    ProgressOutsideLease {
        /// The lease.
        lease: LeaseId,
        /// The reported progress.
        done: u64,
    },
    /// Progress below what was reported before.
    ProgressBackwards {
        /// The lease.
        lease: LeaseId,
        /// What was reported before.
        previous: u64,
        /// What was reported now.
        done: u64,
    },
    /// A claimed perfect number outside the result's range.
    ClaimOutsideRange {
        /// The claim.
        n: u64,
    },
    /// Claimed perfect numbers not strictly increasing.
    ClaimsNotIncreasing,
    /// The compute's host and pid were flagged too often (false perfect-number claims, lost
    /// double-checks): no more work, no results taken. The reactor should close it.
    Refused {
        /// The compute.
        compute: ComputeId,
        /// Its offences.
        flags: u32,
    },
}

impl fmt::Display for SchedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SchedError::UnknownCompute(id) => write!(f, "unknown {id}"),
            SchedError::UnknownLease(id) => write!(f, "unknown {id}"),
            SchedError::LeaseNotYours { lease, owner } => write!(f, "{lease} belongs to {owner}"),
            SchedError::LeaseEnded(id) => write!(f, "{id} is no longer live"),
            SchedError::LeaseOutstanding(id) => write!(f, "{id} is still live: send its result first"),
            SchedError::RangeOutsideLease { lease, lo, hi, lease_lo, lease_hi } => write!(
                f,
                "result [{lo}, {hi}) does not fit {lease} [{lease_lo}, {lease_hi}): it must start at {lease_lo} and end by {lease_hi}"
            ),
            SchedError::ProgressOutsideLease { lease, done } => {
                write!(f, "progress {done} is outside {lease}")
            }
            SchedError::ProgressBackwards { lease, previous, done } => {
                write!(f, "progress {done} on {lease} is below the earlier {previous}")
            }
            SchedError::ClaimOutsideRange { n } => {
                write!(f, "claimed perfect number {n} is outside the result's range")
            }
            SchedError::ClaimsNotIncreasing => {
                f.write_str("claimed perfect numbers are not strictly increasing")
            }
            SchedError::Refused { compute, flags } => write!(
                f,
                "{compute} is refused: {flags} offences (false perfect numbers or lost double-checks)"
            ),
        }
    }
}

impl std::error::Error for SchedError {}

/// A range handed to a compute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Assignment {
    /// The lease to quote in progress and result.
    pub lease: LeaseId,
    /// First number.
    pub lo: u64,
    /// End (exclusive); `lo < hi`.
    pub hi: u64,
    /// When the lease expires.
    pub deadline_ms: Millis,
    /// How long it should take on this compute.
    pub predicted_ms: Millis,
    /// True for a double-check: `[lo, hi)` is done already and another compute's checksum of
    /// it will be compared. The compute need not know; the reactor may log it.
    pub check: bool,
}

/// The answer to a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestOutcome {
    /// Work.
    Assign(Assignment),
    /// Nothing unleased right now (or the search is done: check
    /// [`Scheduler::is_done`](super::Scheduler::is_done)): ask again in `ms`.
    Wait {
        /// How long to wait, in ms.
        ms: Millis,
    },
}

/// A `<result>` as the scheduler takes it: the compute's report of `[lo, hi)` of its lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResultReport<'a> {
    /// The compute that sent it.
    pub compute: ComputeId,
    /// The lease it is for.
    pub lease: LeaseId,
    /// First number scanned: the lease's start.
    pub lo: u64,
    /// One past the last number scanned: at most the lease's end (`lo` gives the lease up).
    pub hi: u64,
    /// How long the scan took, as the compute measured it.
    pub elapsed_ms: Millis,
    /// The compute's checksum of `[lo, hi)`.
    pub checksum: u64,
    /// The perfect numbers it claims in `[lo, hi)`, strictly increasing.
    pub perfect: &'a [u64],
}

/// What a taken result changes in the durable state: the reactor stores exactly this, in the
/// transaction whose commit comes before the ack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResultRecord {
    /// The compute that sent the result.
    pub compute: ComputeId,
    /// Its host.
    pub host: String,
    /// The pieces of `[lo, hi)` that were not done before, increasing: only these are stored
    /// as done, so the stored ranges stay disjoint.
    pub pieces: Vec<(u64, u64)>,
    /// The scan time the compute reported.
    pub elapsed_ms: Millis,
    /// The checksum, when `pieces` is the whole range it covers (else no stored row matches it).
    pub whole_checksum: Option<u64>,
    /// When the result was taken.
    pub finished_ms: Millis,
    /// The lease that ended with it (`None` for a late result: its lease ended before).
    pub ended_lease: Option<LeaseId>,
    /// The claimed perfect numbers not recorded yet, increasing: stored as claims until the
    /// verifier checks each off the reactor thread; then
    /// [`Scheduler::record_perfect`](super::Scheduler::record_perfect).
    pub claims: Vec<PerfectFinding>,
}

/// What an accepted result did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResultOutcome {
    /// The lease it was for.
    pub lease: LeaseId,
    /// Its range.
    pub lo: u64,
    /// Its range end.
    pub hi: u64,
    /// Numbers of `[lo, hi)` not done before: what it added to `tested`.
    pub newly_counted: u64,
    /// True when the lease was no longer live (a late result).
    pub late: bool,
    /// The compute's checksum, passed through for logs and cross-checks.
    pub checksum: u64,
    /// What to store (the new pieces, the host, the lease that ended, the claims to verify).
    pub record: ResultRecord,
    /// The unfinished rest of a live lease that went back to the pool (`None` for a full or a
    /// late result).
    pub returned: Option<(u64, u64)>,
    /// What the timing did to the compute's rate estimate (`None` when not used: a late result
    /// from a reconnected compute, or an empty result).
    pub observation: Option<Observation>,
    /// Double-checking: for an ordinary result, `Some(Selected)` when it will be checked; for a
    /// check lease's result, what the comparison found. None otherwise.
    pub check: Option<CheckOutcome>,
    /// A compute flagged by this result (the loser of a decided double-check), to log; the
    /// reactor closes it if `refused` and it is connected (its next request is refused anyway).
    pub flagged: Option<Flagged>,
}

/// A lease that expired; its unfinished numbers are back in the pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExpiredLease {
    /// The lease.
    pub lease: LeaseId,
    /// Who held it (it may still send a late result; the reactor may also tell it to stop).
    pub compute: ComputeId,
    /// Its range.
    pub lo: u64,
    /// Its range end.
    pub hi: u64,
    /// The last progress its compute reported.
    pub progress: u64,
    /// True for a double-check lease (its check waits for another compute again).
    pub check: bool,
}

/// A perfect number and who found it: claimed in a result (stored and verified off the reactor
/// thread), then, once verified, recorded with its first finder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PerfectFinding {
    /// The number.
    pub n: u64,
    /// The compute that found it.
    pub compute: ComputeId,
    /// Its host.
    pub host: String,
    /// When it was found.
    pub found_ms: Millis,
}

/// A live lease as it is stored, and read back after a restart: restored as an ended lease whose
/// result is still taken from the same host and pid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutstandingLease {
    /// The lease.
    pub id: LeaseId,
    /// The compute that held it.
    pub compute: ComputeId,
    /// That compute's host and pid.
    pub identity: Identity,
    /// First number.
    pub lo: u64,
    /// End (exclusive).
    pub hi: u64,
}

/// What survives a restart: the done numbers, the perfect numbers, the id numbering and the
/// leases live at the stop. Double-checks and flags are not kept (a restart forgets them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// First number of the search.
    pub start: u64,
    /// Last number of the search (inclusive).
    pub until: u64,
    /// The done spans, half-open, increasing, disjoint.
    pub done: Vec<(u64, u64)>,
    /// The verified perfect numbers.
    pub perfect: Vec<PerfectFinding>,
    /// The id the next lease gets.
    pub next_lease: LeaseId,
    /// The id the next compute gets.
    pub next_compute: ComputeId,
    /// The leases live when the state was saved.
    pub outstanding: Vec<OutstandingLease>,
}

impl From<&Lease> for OutstandingLease {
    fn from(lease: &Lease) -> OutstandingLease {
        OutstandingLease {
            id: lease.id,
            compute: lease.compute,
            identity: lease.identity.clone(),
            lo: lease.lo,
            hi: lease.hi,
        }
    }
}
