//! Job routing glue: `<run>` from a report to a compute's control connection and the
//! `<job-result>` back, with each step in the log and the `jobs` table.

use std::net::SocketAddr;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use manage::jobs::{Action, Submitted};
use manage::{ComputeId, Millis};
use xmlwire::protocol::{ErrorCode, Job, JobResult, JobStatus, Message, Output, Run};
use xmlwire::XmlStr;

use super::events::Event;
use super::session::error_reply;
use super::{After, Core, Outgoing};

/// How long a job may take past its own time limit before manage gives up on it: the compute's
/// compile stage (60 s wall at most), the sandbox's own margins (~8 s), and the network.
const JOB_MARGIN_MS: u64 = 90_000;
/// The largest limits a `<run>` may ask for; over them it is rejected.
const MAX_JOB_TIME_MS: u64 = 600_000;
const MAX_JOB_MEMORY_MB: u64 = 16_384;

/// A step of a job's life, as the log, the `jobs` table and the event log name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum JobStep {
    /// A `<run>` came in.
    Received,
    /// No compute had room: it waits in the queue.
    Queued,
    /// Refused: limits over the maximum, or no room at all (`busy`).
    Rejected,
    /// Sent to a compute.
    Sent,
    /// Its compute has no control connection: it goes elsewhere.
    SendFailed,
    /// Sent to another compute after its first went away.
    FailedOver,
    /// Its `<job-result>` came back.
    Finished,
    /// Given up (no compute left to try, or past its deadline).
    Failed,
    /// Its report left while it ran: the result will be dropped.
    Orphaned,
    /// Its report left while it was queued: it never runs.
    Dropped,
}

impl JobStep {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            JobStep::Received => "received",
            JobStep::Queued => "queued",
            JobStep::Rejected => "rejected",
            JobStep::Sent => "sent",
            JobStep::SendFailed => "send-failed",
            JobStep::FailedOver => "failed-over",
            JobStep::Finished => "finished",
            JobStep::Failed => "failed",
            JobStep::Orphaned => "orphaned",
            JobStep::Dropped => "dropped",
        }
    }
}

impl Core {
    /// Records one step of a job in the log, the `jobs` table and the event log.
    pub(super) fn job_event(
        &mut self,
        job: u64,
        now_ms: Millis,
        step: JobStep,
        compute: Option<u64>,
        detail: &str,
    ) {
        let name = step.as_str();
        match compute {
            Some(c) => log::info!("job {job}: {name} (compute {c}) {detail}"),
            None => log::info!("job {job}: {name} {detail}"),
        }
        let written = self.store.job_event(job, now_ms, name, compute, detail);
        self.persist(written);
        self.events.record(
            now_ms,
            Event::Job {
                job,
                step: name,
                compute,
            },
        );
    }

    /// A `<run>` that passed the token gate.
    pub(super) fn run(
        &mut self,
        key: usize,
        peer: SocketAddr,
        outbox: &mut Vec<u8>,
        run: Run<'_>,
        now_ms: Millis,
    ) -> After {
        if self.shutdown.is_some() {
            error_reply(ErrorCode::ShuttingDown, "manage is shutting down").encode(outbox);
            return After::Close;
        }
        let id = self.next_job;
        self.next_job += 1;
        let program = run.program;
        let mut name = String::new();
        program.name.unescape_into(&mut name);
        let detail = format!(
            "{name:?} ({}, {} ms, {} MiB, {}) from {peer}",
            program.language.as_str(),
            program.time_limit_ms,
            program.memory_limit_mb,
            run.schedule.as_str()
        );
        self.job_event(id, now_ms, JobStep::Received, None, &detail);
        if program.time_limit_ms == 0
            || program.time_limit_ms > MAX_JOB_TIME_MS
            || program.memory_limit_mb == 0
            || program.memory_limit_mb > MAX_JOB_MEMORY_MB
        {
            let why = format!(
                "limits out of range: time 1 to {MAX_JOB_TIME_MS} ms, memory 1 to {MAX_JOB_MEMORY_MB} MiB"
            );
            self.job_event(id, now_ms, JobStep::Rejected, None, &why);
            Message::JobResult(failed_result(id, JobStatus::Rejected, &why)).encode(outbox);
            return After::Close;
        }
        let mut message = Vec::new();
        Message::Job(Job { id, program }).encode(&mut message);
        let budget = program.time_limit_ms.saturating_add(JOB_MARGIN_MS);
        match self
            .jobs
            .submit(id, key as u64, run.schedule, budget, now_ms)
        {
            Submitted::Send(compute) => {
                self.job_messages.insert(id, message);
                self.apply(
                    vec![Action::Send {
                        job: id,
                        compute,
                        failover: false,
                    }],
                    now_ms,
                );
                After::Continue
            }
            Submitted::Queued => {
                self.job_messages.insert(id, message);
                let queued = self.jobs.queued();
                self.job_event(
                    id,
                    now_ms,
                    JobStep::Queued,
                    None,
                    &format!("({queued} waiting)"),
                );
                After::Continue
            }
            Submitted::Busy(why) => {
                self.job_event(id, now_ms, JobStep::Rejected, None, why);
                error_reply(ErrorCode::Busy, why).encode(outbox);
                After::Close
            }
        }
    }

    /// Carries out what the job router decided: sends, and failures told to their reports.
    pub(super) fn apply(&mut self, actions: Vec<Action>, now_ms: Millis) {
        let mut work = actions;
        while let Some(action) = work.pop() {
            match action {
                Action::Send {
                    job,
                    compute,
                    failover,
                } => {
                    let control = self.links.get(&compute).and_then(|l| l.control);
                    match (control, self.job_messages.get(&job)) {
                        (Some(key), Some(bytes)) => {
                            self.outgoing.push(Outgoing {
                                key,
                                bytes: bytes.clone(),
                                close: false,
                            });
                            let event = if failover {
                                JobStep::FailedOver
                            } else {
                                JobStep::Sent
                            };
                            self.job_event(job, now_ms, event, Some(compute), "");
                        }
                        _ => {
                            self.job_event(
                                job,
                                now_ms,
                                JobStep::SendFailed,
                                Some(compute),
                                "no control connection",
                            );
                            work.extend(self.jobs.send_failed(compute, now_ms));
                        }
                    }
                }
                Action::Fail { job, owner, why } => {
                    self.job_messages.remove(&job);
                    self.job_event(job, now_ms, JobStep::Failed, None, &why);
                    match owner {
                        Some(owner) => {
                            let mut bytes = Vec::new();
                            Message::JobResult(failed_result(job, JobStatus::InternalError, &why))
                                .encode(&mut bytes);
                            self.outgoing.push(Outgoing {
                                key: owner as usize,
                                bytes,
                                close: true,
                            });
                        }
                        None => log::info!("job {job}: its report is gone; nothing to tell"),
                    }
                }
            }
        }
    }

    /// A compute that ran jobs went away (its control or work connection closed).
    pub(super) fn jobs_compute_gone(&mut self, id: u64) {
        let now_ms = self.clock.ms(Instant::now());
        let actions = self.jobs.remove_compute(id, now_ms);
        self.apply(actions, now_ms);
    }

    /// A report connection closed: its jobs' results will be dropped.
    pub(super) fn report_gone(&mut self, key: usize) {
        let orphaned = self.jobs.owner_gone(key as u64);
        let now_ms = self.clock.ms(Instant::now());
        for job in orphaned {
            if self.jobs.contains(job) {
                self.job_event(
                    job,
                    now_ms,
                    JobStep::Orphaned,
                    None,
                    "its report left; the result will be dropped",
                );
            } else {
                self.job_messages.remove(&job);
                self.job_event(
                    job,
                    now_ms,
                    JobStep::Dropped,
                    None,
                    "its report left while it was queued",
                );
            }
        }
    }

    /// A `<job-result>` on compute `id`'s control connection.
    pub(super) fn job_result(&mut self, id: u64, result: JobResult<'_>, now_ms: Millis) {
        let Some(done) = self.jobs.finished(id, result.id) else {
            log::warn!(
                "compute {id} sent the result of job {}, which it does not run (late or unknown): ignored",
                result.id
            );
            return;
        };
        self.job_messages.remove(&result.id);
        let detail = match (result.exit_code, result.signal) {
            (Some(code), _) => format!("{} exit {code}", result.status.as_str()),
            (None, Some(signal)) => format!("{} signal {signal}", result.status.as_str()),
            _ => result.status.as_str().to_string(),
        };
        self.job_event(result.id, now_ms, JobStep::Finished, Some(id), &detail);
        match done.owner {
            Some(owner) => {
                let host = self
                    .scheduler
                    .registry()
                    .get(ComputeId(id))
                    .map(|r| r.info.identity.host.clone())
                    .unwrap_or_default();
                let forwarded = JobResult {
                    compute_id: Some(id),
                    host: Some(XmlStr::Plain(&host)),
                    ..result
                };
                let mut bytes = Vec::new();
                Message::JobResult(forwarded).encode(&mut bytes);
                self.outgoing.push(Outgoing {
                    key: owner as usize,
                    bytes,
                    close: true,
                });
            }
            None => log::info!("job {}: its report left; the result is dropped", result.id),
        }
        let actions = self.jobs.pump(now_ms);
        self.apply(actions, now_ms);
    }
}

/// A `<job-result>` for a job no program ran to the end of.
pub(super) fn failed_result(id: u64, status: JobStatus, why: &str) -> JobResult<'_> {
    JobResult {
        id,
        status,
        exit_code: None,
        signal: None,
        cpu_ms: 0,
        wall_ms: 0,
        peak_kb: 0,
        compute_id: None,
        host: None,
        message: Some(XmlStr::Plain(why)),
        stdout: Output::default(),
        stderr: Output::default(),
        compiler_output: Output::default(),
    }
}

/// A seed for the random job schedule, from the kernel (the clock if that fails).
pub(super) fn random_seed() -> u64 {
    sigma_link::random::u64().unwrap_or_else(|_| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    })
}
