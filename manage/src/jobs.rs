//! Job routing: which compute runs a submitted program, the bounded queue of jobs waiting for
//! one, failover when a compute goes away, and the deadline after which a job is given up.
//!
//! No I/O and no clock: the reactor passes the time in, sends what [`Action`]s say, and maps
//! owners (report connections) and computes to sockets. A job is identified by the id manage
//! gave it; its owner is an opaque number (the reactor's connection key).
//!
//! Rules:
//! * Only computes that said `accept-jobs="1"` get jobs ([`Jobs::add_compute`]); a compute runs
//!   at most [`JobsConfig::per_compute`] jobs at once. A job no compute can take now waits in a
//!   FIFO queue of at most [`JobsConfig::queue`] jobs; past that, or when no compute accepts jobs
//!   at all, it is refused (`busy`).
//! * `round-robin`: the computes in id order, each pick starting after the previous one;
//!   `random`: uniform over the computes with room (a xorshift generator seeded by the reactor);
//!   `least-loaded`: fewest jobs running, then lowest id (no load figure is reported).
//! * A compute that leaves (its control connection closes) gives its jobs back: each goes to
//!   another compute, or to the front of the queue; after [`JobsConfig::attempts`] computes it
//!   fails.
//! * A job has a deadline from when it was last sent (or queued): its budget (time limit plus
//!   compile time plus a margin) passed, it fails.

use std::collections::{BTreeMap, HashMap, VecDeque};

use crate::Millis;

/// How a job chooses its compute: the `<run>`'s `schedule`, the wire's own type.
pub use xmlwire::protocol::Schedule as Policy;

/// The limits of the job routing.
#[derive(Clone, Copy, Debug)]
pub struct JobsConfig {
    /// Jobs one compute runs at once.
    pub per_compute: usize,
    /// Jobs waiting for a compute, at most.
    pub queue: usize,
    /// Computes a job is sent to before it fails (the first plus failovers).
    pub attempts: u32,
}

impl Default for JobsConfig {
    fn default() -> Self {
        JobsConfig {
            per_compute: 2,
            queue: 64,
            attempts: 3,
        }
    }
}

/// What the reactor must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send job `job` to compute `compute`.
    Send {
        /// The job.
        job: u64,
        /// The compute.
        compute: u64,
        /// Whether an earlier compute lost it (a failover).
        failover: bool,
    },
    /// Job `job` failed: answer `owner` (when it is still there) with an internal error.
    Fail {
        /// The job.
        job: u64,
        /// Its owner, unless it went away.
        owner: Option<u64>,
        /// Why, for people.
        why: String,
    },
}

/// What became of a submission.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Submitted {
    /// Send it to this compute now.
    Send(u64),
    /// It waits in the queue.
    Queued,
    /// Refused, and why.
    Busy(&'static str),
}

/// A finished job: who waits for its result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Done {
    /// The owner, unless it went away.
    pub owner: Option<u64>,
}

#[derive(Clone, Debug)]
struct JobState {
    owner: Option<u64>,
    policy: Policy,
    /// The compute running it; `None` while queued.
    compute: Option<u64>,
    budget_ms: u64,
    deadline: Millis,
    attempts: u32,
}

/// The job router.
#[derive(Debug)]
pub struct Jobs {
    config: JobsConfig,
    /// Computes that accept jobs, by id, with the number of jobs each runs.
    computes: BTreeMap<u64, usize>,
    jobs: HashMap<u64, JobState>,
    queue: VecDeque<u64>,
    /// The compute the last round-robin pick chose.
    last_round_robin: Option<u64>,
    rng: u64,
}

impl Jobs {
    /// An empty router; `seed` drives the random policy (any value; 0 is replaced).
    pub fn new(config: JobsConfig, seed: u64) -> Jobs {
        Jobs {
            config,
            computes: BTreeMap::new(),
            jobs: HashMap::new(),
            queue: VecDeque::new(),
            last_round_robin: None,
            rng: seed | 1,
        }
    }

    /// Jobs known (running or queued).
    pub fn len(&self) -> usize {
        self.jobs.len()
    }

    /// Whether no job is known.
    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }

    /// Whether job `id` is known (running or queued).
    pub fn contains(&self, id: u64) -> bool {
        self.jobs.contains_key(&id)
    }

    /// Jobs running on `compute`.
    pub fn running_on(&self, compute: u64) -> usize {
        self.computes.get(&compute).copied().unwrap_or(0)
    }

    /// Jobs waiting for a compute.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// A compute that accepts jobs joined; queued jobs may go to it now.
    pub fn add_compute(&mut self, compute: u64, now: Millis) -> Vec<Action> {
        self.computes.entry(compute).or_insert(0);
        self.pump(now)
    }

    /// A compute left: its jobs go elsewhere, to the queue, or fail.
    pub fn remove_compute(&mut self, compute: u64, now: Millis) -> Vec<Action> {
        if self.computes.remove(&compute).is_none() {
            return Vec::new();
        }
        let mut lost: Vec<u64> = self
            .jobs
            .iter()
            .filter(|(_, job)| job.compute == Some(compute))
            .map(|(&id, _)| id)
            .collect();
        lost.sort_unstable();
        let mut actions = Vec::new();
        for id in lost.into_iter().rev() {
            let Some(job) = self.jobs.get_mut(&id) else {
                continue;
            };
            job.compute = None;
            if job.attempts >= self.config.attempts {
                let owner = job.owner;
                self.jobs.remove(&id);
                actions.push(Action::Fail {
                    job: id,
                    owner,
                    why: format!("compute {compute} went away while running it, and so did the computes before it"),
                });
                continue;
            }
            let policy = job.policy;
            match self.pick(policy) {
                Some(target) => {
                    self.start(id, target, now);
                    actions.push(Action::Send {
                        job: id,
                        compute: target,
                        failover: true,
                    });
                }
                None if !self.computes.is_empty() => {
                    // Given-back jobs go first (they waited longest), even past the queue's
                    // bound: they were accepted once.
                    if let Some(job) = self.jobs.get_mut(&id) {
                        job.deadline = now.saturating_add(job.budget_ms);
                    }
                    self.queue.push_front(id);
                }
                None => {
                    let owner = self.jobs.remove(&id).and_then(|j| j.owner);
                    actions.push(Action::Fail {
                        job: id,
                        owner,
                        why: format!(
                            "compute {compute} went away while running it, and no other compute accepts jobs"
                        ),
                    });
                }
            }
        }
        if self.computes.is_empty() {
            // Nobody left to run the queue: fail it rather than let reports wait for nothing.
            for id in std::mem::take(&mut self.queue) {
                let owner = self.jobs.remove(&id).and_then(|j| j.owner);
                actions.push(Action::Fail {
                    job: id,
                    owner,
                    why: "no compute that accepts jobs is left".into(),
                });
            }
        }
        actions
    }

    /// A new job from `owner`; `budget_ms` is how long it may take from when it is sent.
    pub fn submit(
        &mut self,
        id: u64,
        owner: u64,
        policy: Policy,
        budget_ms: u64,
        now: Millis,
    ) -> Submitted {
        if self.computes.is_empty() {
            return Submitted::Busy("no compute accepts jobs");
        }
        self.jobs.insert(
            id,
            JobState {
                owner: Some(owner),
                policy,
                compute: None,
                budget_ms,
                deadline: now.saturating_add(budget_ms),
                attempts: 0,
            },
        );
        if self.queue.is_empty() {
            if let Some(target) = self.pick(policy) {
                self.start(id, target, now);
                return Submitted::Send(target);
            }
        }
        if self.queue.len() >= self.config.queue {
            self.jobs.remove(&id);
            return Submitted::Busy("the job queue is full");
        }
        self.queue.push_back(id);
        Submitted::Queued
    }

    /// Sending job `id` to its compute failed: the same as that compute leaving, for this job.
    pub fn send_failed(&mut self, compute: u64, now: Millis) -> Vec<Action> {
        self.remove_compute(compute, now)
    }

    /// `compute` answered job `id`. `None`: not a job it runs (late, or unknown). Queued jobs may
    /// go out now: see [`Jobs::pump`].
    pub fn finished(&mut self, compute: u64, id: u64) -> Option<Done> {
        let job = self.jobs.get(&id)?;
        if job.compute != Some(compute) {
            return None;
        }
        let owner = job.owner;
        self.jobs.remove(&id);
        if let Some(running) = self.computes.get_mut(&compute) {
            *running = running.saturating_sub(1);
        }
        Some(Done { owner })
    }

    /// Sends queued jobs to computes with room, in queue order.
    pub fn pump(&mut self, now: Millis) -> Vec<Action> {
        let mut actions = Vec::new();
        while let Some(&id) = self.queue.front() {
            let Some(policy) = self.jobs.get(&id).map(|j| j.policy) else {
                self.queue.pop_front();
                continue;
            };
            let Some(target) = self.pick(policy) else {
                break;
            };
            self.queue.pop_front();
            let failover = self.jobs.get(&id).is_some_and(|j| j.attempts > 0);
            self.start(id, target, now);
            actions.push(Action::Send {
                job: id,
                compute: target,
                failover,
            });
        }
        actions
    }

    /// The owner went away: the job goes on, its result will be dropped.
    pub fn owner_gone(&mut self, owner: u64) -> Vec<u64> {
        let mut orphaned = Vec::new();
        for (&id, job) in &mut self.jobs {
            if job.owner == Some(owner) {
                job.owner = None;
                orphaned.push(id);
            }
        }
        // A queued job nobody waits for is not worth a compute's time.
        self.queue.retain(|id| {
            let keep = self.jobs.get(id).is_some_and(|j| j.owner.is_some());
            if !keep {
                self.jobs.remove(id);
            }
            keep
        });
        orphaned
    }

    /// Fails every job whose deadline passed.
    pub fn expire(&mut self, now: Millis) -> Vec<Action> {
        let mut expired: Vec<u64> = self
            .jobs
            .iter()
            .filter(|(_, job)| job.deadline <= now)
            .map(|(&id, _)| id)
            .collect();
        expired.sort_unstable();
        let mut actions = Vec::new();
        for id in expired {
            let Some(job) = self.jobs.remove(&id) else {
                continue;
            };
            let why = match job.compute {
                Some(compute) => {
                    if let Some(running) = self.computes.get_mut(&compute) {
                        *running = running.saturating_sub(1);
                    }
                    format!(
                        "compute {compute} did not answer within {} ms",
                        job.budget_ms
                    )
                }
                None => {
                    self.queue.retain(|&q| q != id);
                    format!("no compute was free to run it within {} ms", job.budget_ms)
                }
            };
            actions.push(Action::Fail {
                job: id,
                owner: job.owner,
                why,
            });
        }
        actions.extend(self.pump(now));
        actions
    }

    /// The nearest job deadline.
    pub fn next_deadline(&self) -> Option<Millis> {
        self.jobs.values().map(|job| job.deadline).min()
    }

    fn start(&mut self, id: u64, compute: u64, now: Millis) {
        if let Some(job) = self.jobs.get_mut(&id) {
            job.compute = Some(compute);
            job.attempts += 1;
            job.deadline = now.saturating_add(job.budget_ms);
        }
        if let Some(running) = self.computes.get_mut(&compute) {
            *running += 1;
        }
    }

    /// The compute `policy` chooses among those with room.
    fn pick(&mut self, policy: Policy) -> Option<u64> {
        let limit = self.config.per_compute;
        let free = |(&id, &running): (&u64, &usize)| (running < limit).then_some((id, running));
        match policy {
            Policy::RoundRobin => {
                let after = self
                    .last_round_robin
                    .map_or(0, |last| last.saturating_add(1));
                let pick = self
                    .computes
                    .range(after..)
                    .chain(self.computes.range(..after))
                    .find_map(free)
                    .map(|(id, _)| id)?;
                self.last_round_robin = Some(pick);
                Some(pick)
            }
            Policy::LeastLoaded => self
                .computes
                .iter()
                .filter_map(free)
                .min_by_key(|&(id, running)| (running, id))
                .map(|(id, _)| id),
            Policy::Random => {
                let candidates: Vec<u64> = self
                    .computes
                    .iter()
                    .filter_map(free)
                    .map(|(id, _)| id)
                    .collect();
                if candidates.is_empty() {
                    return None;
                }
                let index = self.next_random() % candidates.len() as u64;
                Some(candidates[index as usize])
            }
        }
    }

    /// xorshift64*: small, fast, and plenty uniform for choosing among a few computes.
    fn next_random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(computes: &[u64]) -> Jobs {
        let mut jobs = Jobs::new(JobsConfig::default(), 42);
        for &c in computes {
            assert!(jobs.add_compute(c, 0).is_empty());
        }
        jobs
    }

    fn sent(submitted: Submitted) -> u64 {
        match submitted {
            Submitted::Send(c) => c,
            other => panic!("expected a send, got {other:?}"),
        }
    }

    #[test]
    fn round_robin_alternates_exactly() {
        let mut jobs = router(&[3, 7]);
        let mut picks = Vec::new();
        for id in 0..10 {
            let c = sent(jobs.submit(id, 1, Policy::RoundRobin, 1000, 0));
            picks.push(c);
            assert!(jobs.finished(c, id).is_some());
        }
        assert_eq!(picks, [3, 7, 3, 7, 3, 7, 3, 7, 3, 7]);
    }

    #[test]
    fn round_robin_skips_full_computes() {
        let mut jobs = router(&[1, 2]);
        assert_eq!(sent(jobs.submit(1, 0, Policy::RoundRobin, 1000, 0)), 1);
        assert_eq!(sent(jobs.submit(2, 0, Policy::LeastLoaded, 1000, 0)), 2);
        assert_eq!(sent(jobs.submit(3, 0, Policy::LeastLoaded, 1000, 0)), 1);
        // compute 1 is full (2 jobs): round-robin's turn would be 2 anyway, then 2 again.
        assert_eq!(sent(jobs.submit(4, 0, Policy::RoundRobin, 1000, 0)), 2);
        assert_eq!(
            jobs.submit(5, 0, Policy::RoundRobin, 1000, 0),
            Submitted::Queued
        );
    }

    #[test]
    fn random_is_roughly_uniform() {
        let mut jobs = router(&[1, 2, 3, 4]);
        let mut counts = BTreeMap::new();
        for id in 0..40_000 {
            let c = sent(jobs.submit(id, 1, Policy::Random, 1000, 0));
            *counts.entry(c).or_insert(0u32) += 1;
            jobs.finished(c, id);
        }
        assert_eq!(counts.len(), 4);
        for (&c, &n) in &counts {
            assert!((9_000..=11_000).contains(&n), "compute {c}: {n} of 40000");
        }
    }

    #[test]
    fn least_loaded_takes_fewest_jobs_then_lowest_id() {
        let mut jobs = router(&[5, 2, 9]);
        assert_eq!(sent(jobs.submit(1, 0, Policy::LeastLoaded, 1000, 0)), 2);
        assert_eq!(sent(jobs.submit(2, 0, Policy::LeastLoaded, 1000, 0)), 5);
        assert_eq!(sent(jobs.submit(3, 0, Policy::LeastLoaded, 1000, 0)), 9);
        jobs.finished(5, 2);
        assert_eq!(sent(jobs.submit(4, 0, Policy::LeastLoaded, 1000, 0)), 5);
        assert_eq!(sent(jobs.submit(5, 0, Policy::LeastLoaded, 1000, 0)), 2);
        assert_eq!(jobs.running_on(2), 2);
    }

    #[test]
    fn no_compute_is_busy_and_a_full_queue_refuses() {
        let mut jobs = Jobs::new(JobsConfig::default(), 1);
        assert!(matches!(
            jobs.submit(1, 0, Policy::Random, 1000, 0),
            Submitted::Busy(_)
        ));
        let mut jobs = router(&[1]);
        for id in 0..2 {
            sent(jobs.submit(id, 0, Policy::Random, 1000, 0));
        }
        for id in 2..66 {
            assert_eq!(
                jobs.submit(id, 0, Policy::Random, 1000, 0),
                Submitted::Queued
            );
        }
        assert_eq!(
            jobs.submit(66, 0, Policy::Random, 1000, 0),
            Submitted::Busy("the job queue is full")
        );
        assert_eq!(jobs.queued(), 64);
        // A finished job makes room: the oldest queued one goes out.
        assert!(jobs.finished(1, 0).is_some());
        assert_eq!(
            jobs.pump(5),
            vec![Action::Send {
                job: 2,
                compute: 1,
                failover: false
            }]
        );
    }

    #[test]
    fn a_lost_compute_fails_over() {
        let mut jobs = router(&[1, 2]);
        assert_eq!(sent(jobs.submit(10, 7, Policy::LeastLoaded, 1000, 0)), 1);
        let actions = jobs.remove_compute(1, 50);
        assert_eq!(
            actions,
            vec![Action::Send {
                job: 10,
                compute: 2,
                failover: true
            }]
        );
        // Its late result from compute 1 is not taken; compute 2's is.
        assert_eq!(jobs.finished(1, 10), None);
        assert_eq!(jobs.finished(2, 10), Some(Done { owner: Some(7) }));
        assert!(jobs.is_empty());
    }

    #[test]
    fn the_last_compute_lost_fails_the_job() {
        let mut jobs = router(&[1]);
        sent(jobs.submit(10, 7, Policy::Random, 1000, 0));
        assert_eq!(
            jobs.submit(11, 8, Policy::Random, 1000, 0),
            Submitted::Send(1)
        );
        assert_eq!(
            jobs.submit(12, 9, Policy::Random, 1000, 0),
            Submitted::Queued
        );
        let actions = jobs.remove_compute(1, 5);
        assert_eq!(actions.len(), 3);
        assert!(actions
            .iter()
            .all(|a| matches!(a, Action::Fail { owner: Some(_), .. })));
        assert!(jobs.is_empty());
    }

    #[test]
    fn jobs_fail_after_too_many_computes() {
        let mut jobs = router(&[1, 2, 3, 4]);
        sent(jobs.submit(1, 0, Policy::LeastLoaded, 1000, 0));
        for c in 1..=2 {
            assert!(matches!(
                jobs.remove_compute(c, 0)[..],
                [Action::Send { failover: true, .. }]
            ));
        }
        assert!(matches!(
            jobs.remove_compute(3, 0)[..],
            [Action::Fail { owner: Some(0), .. }]
        ));
    }

    #[test]
    fn a_late_job_fails_and_frees_its_compute() {
        let mut jobs = router(&[1]);
        sent(jobs.submit(1, 0, Policy::Random, 1000, 100));
        assert_eq!(jobs.next_deadline(), Some(1100));
        assert!(jobs.expire(1099).is_empty());
        let actions = jobs.expire(1100);
        assert!(
            matches!(&actions[..], [Action::Fail { job: 1, owner: Some(0), why }] if why.contains("did not answer"))
        );
        assert_eq!(jobs.running_on(1), 0);
        assert_eq!(jobs.next_deadline(), None);
    }

    #[test]
    fn a_gone_owner_drops_queued_jobs_but_not_running_ones() {
        let mut jobs = router(&[1]);
        sent(jobs.submit(1, 5, Policy::Random, 1000, 0));
        sent(jobs.submit(2, 5, Policy::Random, 1000, 0));
        assert_eq!(
            jobs.submit(3, 5, Policy::Random, 1000, 0),
            Submitted::Queued
        );
        let mut orphaned = jobs.owner_gone(5);
        orphaned.sort_unstable();
        assert_eq!(orphaned, [1, 2, 3]);
        assert_eq!(jobs.queued(), 0);
        assert_eq!(jobs.finished(1, 1), Some(Done { owner: None }));
    }
}
