//! The search's messages: requests, results, and a compute leaving.

use std::time::Instant;

use manage::checks::CheckOutcome;
use manage::scheduler::{PerfectFinding, RequestOutcome, SchedError};
use manage::{ComputeId, LeaseId, Millis};
use xmlwire::protocol::{self, Ack, ErrorCode, Message, Wait, WorkResult};

use super::session::{error_reply, sched_error_code};
use super::store::StoredLease;
use super::verify::Claim;
use super::{After, Core};

impl Core {
    pub(super) fn request(&mut self, id: u64, outbox: &mut Vec<u8>, now_ms: Millis) -> After {
        if self.shutdown.is_some() {
            error_reply(ErrorCode::ShuttingDown, "manage is shutting down").encode(outbox);
            return After::Continue;
        }
        match self.scheduler.request(ComputeId(id), now_ms) {
            Ok(RequestOutcome::Assign(assignment)) => {
                let (host, pid) = self
                    .scheduler
                    .registry()
                    .get(ComputeId(id))
                    .map(|r| (r.info.identity.host.clone(), r.info.identity.pid))
                    .unwrap_or_default();
                let lease = StoredLease {
                    id: assignment.lease,
                    compute: ComputeId(id),
                    host,
                    pid,
                    lo: assignment.lo,
                    hi: assignment.hi,
                };
                let written = self
                    .store
                    .lease_issued(&lease, now_ms, assignment.deadline_ms);
                self.persist(written);
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
            Err(error) => {
                log::warn!("compute {id}: request refused: {error}");
                let text = error.to_string();
                error_reply(sched_error_code(&error), &text).encode(outbox);
                After::Close
            }
        }
    }

    pub(super) fn result(
        &mut self,
        id: u64,
        outbox: &mut Vec<u8>,
        result: WorkResult,
        now_ms: Millis,
    ) -> After {
        // What this result adds, before the scheduler counts it: only these pieces are stored,
        // so the stored ranges stay disjoint.
        let pieces: Vec<(u64, u64)> = self
            .scheduler
            .pool()
            .done()
            .gaps(result.lo, result.hi)
            .collect();
        let outcome = self.scheduler.result(
            ComputeId(id),
            LeaseId(result.lease),
            result.lo,
            result.hi,
            result.elapsed_ms,
            result.checksum,
            result.perfect.as_slice(),
            now_ms,
        );
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(error @ (SchedError::UnknownLease(_) | SchedError::LeaseEnded(_))) => {
                // Not an offence: the compute drops the result and carries on.
                log::warn!("compute {id}: result not taken: {error}");
                let text = error.to_string();
                error_reply(ErrorCode::UnknownLease, &text).encode(outbox);
                return After::Continue;
            }
            Err(error) => {
                log::warn!("compute {id}: bad result: {error}");
                let text = error.to_string();
                error_reply(sched_error_code(&error), &text).encode(outbox);
                return After::Close;
            }
        };
        let host = self
            .scheduler
            .registry()
            .get(ComputeId(id))
            .map(|r| r.info.identity.host.clone())
            .unwrap_or_default();
        let whole = pieces == [(result.lo, result.hi)];
        let mut written = self.store.ranges_done(
            &pieces,
            ComputeId(id),
            &host,
            result.elapsed_ms,
            whole.then_some(result.checksum),
            now_ms,
        );
        if written.is_ok() && !outcome.late {
            written = self.store.lease_ended(LeaseId(result.lease));
        }
        for &n in &outcome.claims {
            if written.is_ok() {
                written = self.store.claim(&PerfectFinding {
                    n,
                    compute: ComputeId(id),
                    host: host.clone(),
                    found_ms: now_ms,
                });
            }
        }
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
        if let Some(check) = &outcome.check {
            log_check(id, result.lo, result.hi, check);
        }
        if let Some(flagged) = &outcome.flagged {
            log_flagged(flagged);
        }
        for n in outcome.claims {
            self.verifier.submit(Claim {
                n,
                compute: id,
                host: host.clone(),
                found_ms: now_ms,
            });
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
            }
            Err(error) => log::warn!("compute {id} left ({why}): {error}"),
        }
    }
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
        other => log::warn!("double-check of [{lo}, {hi}) by compute {id}: {other:?}"),
    }
}
