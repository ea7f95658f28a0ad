//! How long a compute waits before reconnecting: doubling from the first delay to the last, each
//! delay drawn at random between its half and its whole ("equal jitter"), so that the computes
//! of a cluster do not all reconnect in the same instant after manage restarts.

use std::time::Duration;

/// The first delay.
pub const FIRST: Duration = Duration::from_millis(200);
/// The longest delay.
pub const MAX: Duration = Duration::from_secs(30);

/// Reconnection delays: each call to [`Backoff::next`] doubles the ceiling, up to [`MAX`].
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    ceiling: Duration,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff { ceiling: FIRST }
    }
}

impl Backoff {
    /// Back to the first delay (after a session that showed manage healthy).
    pub fn reset(&mut self) {
        self.ceiling = FIRST;
    }

    /// The next delay, in [ceiling / 2, ceiling] by `random`; the ceiling then doubles.
    pub fn next(&mut self, random: u64) -> Duration {
        let delay = jittered(self.ceiling, random);
        self.ceiling = (self.ceiling * 2).min(MAX);
        delay
    }

    /// The next delay with a random draw from the OS; the whole ceiling if it gives none.
    pub fn next_random(&mut self) -> Duration {
        self.next(sigma_link::random::u64().unwrap_or(u64::MAX))
    }
}

/// `ceiling / 2 + random share of ceiling / 2`: `random` 0 gives the half, u64::MAX the whole.
fn jittered(ceiling: Duration, random: u64) -> Duration {
    let half = ceiling / 2;
    let share = random as f64 / u64::MAX as f64;
    half + half.mul_f64(share)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_stay_between_half_and_whole_of_a_ceiling_that_doubles_to_the_max() {
        let mut backoff = Backoff::default();
        let mut ceiling = FIRST;
        for step in 0..12u64 {
            // The extremes and a spread of draws in between.
            for random in [0, u64::MAX, step.wrapping_mul(0x9e37_79b9_7f4a_7c15)] {
                let delay = jittered(ceiling, random);
                assert!(
                    delay >= ceiling / 2 && delay <= ceiling,
                    "{delay:?} outside [{:?}, {ceiling:?}]",
                    ceiling / 2
                );
            }
            assert_eq!(backoff.next(0), ceiling / 2);
            ceiling = (ceiling * 2).min(MAX);
        }
        assert_eq!(ceiling, MAX);
        assert_eq!(backoff.next(u64::MAX), MAX);
        backoff.reset();
        assert_eq!(backoff.next(u64::MAX), FIRST);
    }

    #[test]
    fn random_draws_spread_the_delays() {
        let mut delays: Vec<Duration> = (0..64)
            .map(|_| {
                let mut backoff = Backoff::default();
                backoff.next_random()
            })
            .collect();
        assert!(delays.iter().all(|d| *d >= FIRST / 2 && *d <= FIRST));
        delays.sort();
        delays.dedup();
        // 64 draws from 2^64 values: all equal only if the draws are not random.
        assert!(delays.len() > 32, "{delays:?}");
    }
}
