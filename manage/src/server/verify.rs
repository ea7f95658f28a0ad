//! Checking claimed perfect numbers off the reactor thread: a number near 10^18 takes seconds of
//! trial division, and the reactor must never stall that long.

use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::{self, JoinHandle};

use manage::scheduler::PerfectFinding;
use mio::Waker;
use sigma_kernel::Algorithm;

/// A checked claim.
#[derive(Debug)]
pub struct Verdict {
    /// The claim, as the result made it: recorded as found when `perfect`.
    pub claim: PerfectFinding,
    pub perfect: bool,
}

/// The checking thread: claims in, verdicts out, and a wake-up of the reactor per verdict.
pub struct Verifier {
    claims: Option<Sender<PerfectFinding>>,
    verdicts: Receiver<Verdict>,
    thread: Option<JoinHandle<()>>,
    /// Claims sent and not yet answered: shutdown waits for them.
    pub outstanding: usize,
}

impl Verifier {
    pub fn start(waker: Arc<Waker>) -> std::io::Result<Verifier> {
        let (claims, claim_queue) = mpsc::channel::<PerfectFinding>();
        let (verdict_queue, verdicts) = mpsc::channel();
        let thread = thread::Builder::new()
            .name("verify".into())
            .spawn(move || {
                let never_stop = AtomicBool::new(false);
                for claim in claim_queue {
                    // Trial division of this one number, independent of the compute's kernel.
                    let perfect = claim.n < u64::MAX
                        && sigma_kernel::scan(
                            Algorithm::Trial,
                            claim.n,
                            claim.n + 1,
                            1,
                            &never_stop,
                            None,
                        )
                        .map(|outcome| outcome.perfect == [claim.n])
                        .unwrap_or(false);
                    if verdict_queue.send(Verdict { claim, perfect }).is_err() {
                        break;
                    }
                    // A failed wake only delays the verdict to the next poll timeout.
                    let _ = waker.wake();
                }
            })?;
        Ok(Verifier {
            claims: Some(claims),
            verdicts,
            thread: Some(thread),
            outstanding: 0,
        })
    }

    pub fn submit(&mut self, claim: PerfectFinding) {
        if let Some(claims) = &self.claims {
            if claims.send(claim).is_ok() {
                self.outstanding += 1;
            }
        }
    }

    /// Verdicts ready now.
    pub fn ready(&mut self) -> Vec<Verdict> {
        let verdicts: Vec<Verdict> = self.verdicts.try_iter().collect();
        self.outstanding -= verdicts.len().min(self.outstanding);
        verdicts
    }
}

impl Drop for Verifier {
    fn drop(&mut self) {
        // Closing the channel ends the thread's loop once it finishes the claim in hand.
        self.claims = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
