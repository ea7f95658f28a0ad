//! The search's messages (request, progress, result), a compute leaving, leases expiring, and
//! the verifier's verdicts: each asks the scheduler, stores what it says, and logs it.

use std::time::Instant;

use manage::checks::CheckOutcome;
use manage::scheduler::{RequestOutcome, ResultReport, SchedError};
use manage::{ComputeId, LeaseId, Millis};
use xmlwire::protocol::{self, Ack, ErrorCode, Message, Progress, Wait, WorkResult};

use super::events::Event;
use super::session::{error_reply, sched_error_code};
use super::{After, Core};

impl Core {
    pub(super) fn request(&mut self, id: u64, outbox: &mut Vec<u8>, now_ms: Millis) -> After {
        if self.shutdown.is_some() {
            error_reply(ErrorCode::ShuttingDown, "manage is shutting down").encode(outbox);
            return After::Continue;
        }
        match self.scheduler.request(ComputeId(id), now_ms) {
            Ok(RequestOutcome::Assign(assignment)) => {
                if let Some(lease) = self.scheduler.outstanding(assignment.lease) {
                    let written = self
                        .store
                        .lease_issued(&lease, now_ms, assignment.deadline_ms);
                    self.persist(written);
                }
                log::info!(
                    "assign {} {} [{}, {}) ({} numbers) to compute {id}, predicted {:.1} s",
                    if assignment.check {
                        "double-check lease"
                    } else {
                        "lease"
                    },
                    assignment.lease.0,
                    assignment.lo,
                    assignment.hi,
                    assignment.hi - assignment.lo,
                    assignment.predicted_ms as f64 / 1000.0
                );
                self.events.record(
                    now_ms,
                    Event::Assign {
                        lease: assignment.lease.0,
                        compute: id,
                        lo: assignment.lo,
                        hi: assignment.hi,
                        predicted_ms: assignment.predicted_ms,
                        check: assignment.check,
                    },
                );
                Message::Assign(protocol::Assign {
                    lease: assignment.lease.0,
                    lo: assignment.lo,
                    hi: assignment.hi,
                    deadline_ms: assignment.deadline_ms.saturating_sub(now_ms),
                })
                .encode(outbox);
                After::Continue
            }
            Ok(RequestOutcome::Wait { ms }) => {
                Message::Wait(Wait { ms }).encode(outbox);
                After::Continue
            }
            Err(error) => refuse(id, "request refused", &error, outbox),
        }
    }

    pub(super) fn progress(
        &mut self,
        id: u64,
        outbox: &mut Vec<u8>,
        progress: Progress,
        now_ms: Millis,
    ) -> After {
        match self.scheduler.progress(
            ComputeId(id),
            LeaseId(progress.lease),
            progress.done,
            now_ms,
        ) {
            Ok(()) => After::Continue,
            // A compute whose lease expired keeps going until it hears; not an offence.
            Err(SchedError::LeaseEnded(_)) => After::Continue,
            Err(error) => refuse(id, "bad progress", &error, outbox),
        }
    }

    pub(super) fn result(
        &mut self,
        id: u64,
        outbox: &mut Vec<u8>,
        result: WorkResult,
        now_ms: Millis,
    ) -> After {
        let report = ResultReport {
            compute: ComputeId(id),
            lease: LeaseId(result.lease),
            lo: result.lo,
            hi: result.hi,
            elapsed_ms: result.elapsed_ms,
            checksum: result.checksum,
            perfect: result.perfect.as_slice(),
        };
        let outcome = match self.scheduler.result(&report, now_ms) {
            Ok(outcome) => outcome,
            Err(error @ (SchedError::UnknownLease(_) | SchedError::LeaseEnded(_))) => {
                // Not an offence: the compute drops the result and carries on.
                log::warn!("compute {id}: result not taken: {error}");
                let text = error.to_string();
                error_reply(ErrorCode::UnknownLease, &text).encode(outbox);
                return After::Continue;
            }
            Err(error) => return refuse(id, "bad result", &error, outbox),
        };
        let written = self.store.result_taken(&outcome.record);
        self.persist(written);
        // Sent after the batch's commit, like every reply.
        Message::Ack(Ack {
            lease: result.lease,
        })
        .encode(outbox);
        let seconds = result.elapsed_ms as f64 / 1000.0;
        let numbers = result.hi - result.lo;
        log::info!(
            "result of lease {} from compute {id}: [{}, {}), {numbers} numbers in {seconds:.2} s ({:.0}/s){}{}, checksum {}",
            result.lease,
            result.lo,
            result.hi,
            numbers as f64 / seconds.max(0.001),
            if outcome.late { ", late" } else { "" },
            if outcome.newly_counted < numbers {
                format!(", {} new", outcome.newly_counted)
            } else {
                String::new()
            },
            result.checksum
        );
        self.events.record(
            now_ms,
            Event::Result {
                lease: result.lease,
                compute: id,
                lo: result.lo,
                hi: result.hi,
                elapsed_ms: result.elapsed_ms,
                checksum: result.checksum,
                new: outcome.newly_counted,
                late: outcome.late,
            },
        );
        if let Some(check) = &outcome.check {
            log_check(id, result.lo, result.hi, check);
        }
        if let Some(flagged) = &outcome.flagged {
            log_flagged(flagged);
        }
        for claim in outcome.record.claims {
            self.verifier.submit(claim);
        }
        if self.config.exit_when_done && self.scheduler.is_done() {
            return After::Shutdown("every number of the search is tested".into());
        }
        After::Continue
    }

    /// A compute's work connection closed: its lease goes back to the pool.
    pub(super) fn compute_left(&mut self, id: u64, key: usize, why: &str) {
        let Some(links) = self.links.get(&id) else {
            return;
        };
        if links.work != key {
            return;
        }
        self.links.remove(&id);
        self.jobs_compute_gone(id);
        let now_ms = self.clock.ms(Instant::now());
        let written = self.store.compute_left(ComputeId(id), now_ms);
        self.persist(written);
        match self.scheduler.leave(ComputeId(id), now_ms) {
            Ok(released) => {
                for lease in &released {
                    let written = self.store.lease_ended(lease.id);
                    self.persist(written);
                }
                let back: Vec<String> = released
                    .iter()
                    .map(|l| format!("[{}, {})", l.lo, l.hi))
                    .collect();
                if back.is_empty() {
                    log::info!("compute {id} left ({why})");
                } else {
                    log::info!(
                        "compute {id} left ({why}); back to the pool: {}",
                        back.join(" ")
                    );
                }
                self.events.record(now_ms, Event::Left { compute: id });
            }
            Err(error) => log::warn!("compute {id} left ({why}): {error}"),
        }
    }

    /// The leases whose deadline passed: their ranges go back to the pool.
    pub(super) fn expire_leases(&mut self, now_ms: Millis) {
        for expired in self.scheduler.expire(now_ms) {
            let written = self.store.lease_ended(expired.lease);
            self.persist(written);
            log::warn!(
                "lease {} of compute {} expired: [{}, {}) goes back to the pool",
                expired.lease.0,
                expired.compute.0,
                expired.lo,
                expired.hi
            );
            self.events.record(
                now_ms,
                Event::Expired {
                    lease: expired.lease.0,
                    compute: expired.compute.0,
                    lo: expired.lo,
                    hi: expired.hi,
                },
            );
        }
    }

    /// The verifier's verdicts on claimed perfect numbers: a true one is recorded, a false one
    /// flags the compute that claimed it.
    pub(super) fn collect_verdicts(&mut self) {
        for verdict in self.verifier.ready() {
            let claim = verdict.claim;
            let written = self.store.claim_checked(&claim, verdict.perfect);
            self.persist(written);
            let now_ms = self.clock.ms(Instant::now());
            if !verdict.perfect {
                log::warn!(
                    "compute {} on {} claimed {}, which is not perfect: not recorded",
                    claim.compute.0,
                    claim.host,
                    claim.n
                );
                if let Some(flagged) = self.scheduler.claim_refuted(claim.compute, claim.n, now_ms)
                {
                    log_flagged(&flagged);
                }
                continue;
            }
            let (n, compute) = (claim.n, claim.compute.0);
            let message = format!(
                "perfect number {n} found by compute {compute} on {}",
                claim.host
            );
            if self.scheduler.record_perfect(claim) {
                log::info!("{message}");
                self.events.record(now_ms, Event::Perfect { n, compute });
            }
        }
    }
}

/// Answers a message the scheduler refused with its error, and closes the connection.
fn refuse(id: u64, what: &str, error: &SchedError, outbox: &mut Vec<u8>) -> After {
    log::warn!("compute {id}: {what}: {error}");
    let text = error.to_string();
    error_reply(sched_error_code(error), &text).encode(outbox);
    After::Close
}

pub(super) fn log_flagged(flagged: &manage::flags::Flagged) {
    let offence = match flagged.offence {
        manage::flags::Offence::FalseClaim { n } => format!("claimed {n} is perfect"),
        manage::flags::Offence::LostCheck { lo, hi } => {
            format!("its checksum of [{lo}, {hi}) lost a double-check")
        }
    };
    log::warn!(
        "compute {} ({} pid {}) flagged: {offence}; {} offences{}",
        flagged.compute.0,
        flagged.identity.host,
        flagged.identity.pid,
        flagged.flags,
        if flagged.refused {
            ", refused from now on"
        } else {
            ""
        }
    );
}

pub(super) fn log_check(id: u64, lo: u64, hi: u64, check: &CheckOutcome) {
    match check {
        CheckOutcome::Selected { dropped } => {
            log::debug!("[{lo}, {hi}) from compute {id} will be double-checked");
            if let Some((a, b)) = dropped {
                log::warn!("too many open double-checks: [{a}, {b}) will not be checked");
            }
        }
        CheckOutcome::Passed { first } => log::info!(
            "double-check of [{lo}, {hi}) by compute {id} agrees with compute {}",
            first.0
        ),
        CheckOutcome::Mismatch { first } => log::warn!(
            "double-check of [{lo}, {hi}): compute {id} disagrees with compute {} ({} pid {}); a third compute decides",
            first.compute.0,
            first.identity.host,
            first.identity.pid
        ),
        CheckOutcome::Decided { wrong, right } => log::warn!(
            "third computation of [{lo}, {hi}) agrees with compute {}: compute {} ({} pid {}) was wrong",
            right.compute.0,
            wrong.compute.0,
            wrong.identity.host,
            wrong.identity.pid
        ),
        CheckOutcome::NoMajority => log::warn!(
            "third computation of [{lo}, {hi}) by compute {id} agrees with neither: no majority, nobody flagged"
        ),
        CheckOutcome::Requeued => log::info!(
            "double-check of [{lo}, {hi}) by compute {id} came back partial: it waits for another compute"
        ),
        CheckOutcome::Ignored => log::debug!(
            "late result of a double-check of [{lo}, {hi}) by compute {id}: ignored"
        ),
    }
}
