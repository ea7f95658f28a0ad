//! Divisor sums one number at a time: the trial-division algorithms, the exact check of a
//! claimed perfect number, and the integer square root everything else uses.

#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicBool, Ordering};

/// The exact sum of the proper divisors of `n` (s(1) = 0), by trial division up to the square
/// root. Independent of the sieve, so it can check a claimed perfect number; near 2^64 it takes
/// about 2^32 divisions (seconds).
pub fn proper_divisor_sum(n: u64) -> u128 {
    let never = AtomicBool::new(false);
    trial_sum(n, &never).unwrap_or(0)
}

/// The integer square root: the largest r with r * r <= n.
pub fn isqrt(n: u64) -> u64 {
    // The float estimate is off by at most a few units near 2^64; fix it up exactly in u128.
    let mut root = (n as f64).sqrt() as u64;
    while u128::from(root) * u128::from(root) > u128::from(n) {
        root -= 1;
    }
    while u128::from(root + 1) * u128::from(root + 1) <= u128::from(n) {
        root += 1;
    }
    root
}

/// How many divisions the trial-division loops run between two looks at the stop flag
/// (a few hundred microseconds of work).
const DIVISIONS_PER_STOP_CHECK: u64 = 1 << 16;

/// s(n) by trial division up to the square root, or `None` when stopped part-way.
pub(crate) fn trial_sum(n: u64, stop: &AtomicBool) -> Option<u128> {
    if n < 2 {
        return Some(0);
    }
    let root = isqrt(n);
    let mut sum: u128 = 1;
    let mut start = 2;
    while start <= root {
        let end = root.min(start + DIVISIONS_PER_STOP_CHECK - 1);
        for d in start..=end {
            // `n / d` and `n % d` compile to one division.
            if n.is_multiple_of(d) {
                sum += u128::from(d) + u128::from(n / d);
            }
        }
        start = end + 1;
        if start <= root && stop.load(Ordering::Relaxed) {
            return None;
        }
    }
    if root * root == n {
        // The pair (root, root) was counted twice.
        sum -= u128::from(root);
    }
    Some(sum)
}

/// s(n) by trial division by every d < n, or `None` when stopped part-way.
pub(crate) fn naive_sum(n: u64, stop: &AtomicBool) -> Option<u128> {
    let mut sum: u128 = 0;
    let mut start = 1;
    while start < n {
        let end = (n - 1).min(start + DIVISIONS_PER_STOP_CHECK - 1);
        for d in start..=end {
            if n.is_multiple_of(d) {
                sum += u128::from(d);
            }
        }
        start = end + 1;
        if start < n && stop.load(Ordering::Relaxed) {
            return None;
        }
    }
    Some(sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isqrt_is_exact_at_the_edges() {
        for n in [0, 1, 2, 3, 4, 15, 16, 17, 99, 100, 101] {
            let r = isqrt(n);
            assert!(r * r <= n && (r + 1) * (r + 1) > n, "{n}");
        }
        assert_eq!(isqrt(u64::MAX), u64::from(u32::MAX));
        assert_eq!(isqrt(u64::MAX - 1), u64::from(u32::MAX));
        let top_square = u64::from(u32::MAX) * u64::from(u32::MAX);
        assert_eq!(isqrt(top_square), u64::from(u32::MAX));
        assert_eq!(isqrt(top_square - 1), u64::from(u32::MAX) - 1);
        for root in [1u64 << 26, (1 << 26) + 1, 3_037_000_499, 1_000_000_000] {
            assert_eq!(isqrt(root * root), root);
            assert_eq!(isqrt(root * root - 1), root - 1);
            assert_eq!(isqrt(root * root + 2 * root), root);
        }
    }

    #[test]
    fn divisor_sums_of_small_numbers() {
        let never = AtomicBool::new(false);
        let expected = [0u128, 1, 1, 3, 1, 6, 1, 7, 4, 8, 1, 16];
        for (n, &sum) in (1u64..).zip(expected.iter()) {
            assert_eq!(trial_sum(n, &never), Some(sum), "trial {n}");
            assert_eq!(naive_sum(n, &never), Some(sum), "naive {n}");
            assert_eq!(proper_divisor_sum(n), sum);
        }
    }
}
