//! The status document: the scheduler's view, encoded as a `<status>` message.

use manage::Millis;
use xmlwire::protocol::{
    ComputeStatus, FlaggedCompute, FoundPerfect, LeaseStatus, Message, Status,
};
use xmlwire::XmlStr;

use super::Core;

impl Core {
    pub(super) fn status(&self, now_ms: Millis) -> StatusDocument {
        let mut view = self.scheduler.status(now_ms);
        // Done means the answer is final: every number tested, and every perfect number
        // claimed in the results verified (the verifier thread takes a moment; until then the
        // list of perfect numbers may still grow).
        view.done &= self.verifier.outstanding == 0;
        StatusDocument { view }
    }
}

/// The scheduler's status view, ready to be written as a `<status>` message.
pub(super) struct StatusDocument {
    view: manage::scheduler::StatusView<sigma_kernel::Algorithm>,
}

impl StatusDocument {
    pub(super) fn encode_status(&self, outbox: &mut Vec<u8>) {
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
            eta_until: Some(view.progress.goal),
            done_ppm: Some(view.progress.done_ppm),
            eta_ms: view.progress.eta_ms,
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
                    algorithm: c.algorithm,
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
