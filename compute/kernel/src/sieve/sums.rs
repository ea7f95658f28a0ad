//! The per-number sums a segment holds (u32, u64 or u128) and where a divisor first hits a
//! segment.

#![forbid(unsafe_code)]

use super::blocks::SieveWorkspace;
use super::small::{Cofactor, SmallDivisors};
use super::wheel::WheelFill;

/// A per-number divisor sum: u64 where that is exact (wrapping never happens), else u128.
pub(crate) trait Accumulator: Copy + Default + 'static {
    const ONE: Self;
    fn add(&mut self, value: u64);
    fn subtract(&mut self, value: u64);
    /// s(n) mod 2^64.
    fn low_bits(self) -> u64;
    /// Whether the sum is exactly n (for [`Accumulator::EXACT`] sums), or a candidate for it
    /// (the sum is n mod 2^32, for u32 sums).
    fn is(self, n: u64) -> bool;
    /// Whether the sum is s(n) itself, not s(n) mod 2^32.
    const EXACT: bool = true;
    /// Whether blocks with these sums sieve the wheel's divisors by its tables (see
    /// [`Wheel`]): not u128 ones, where the tables' values could pass u64.
    const WHEEL: bool = true;
    /// `value` as a sum (mod 2^32 for u32 sums).
    #[inline(always)]
    fn of(value: u64) -> Self {
        let mut sum = Self::default();
        sum.add(value);
        sum
    }
    /// How the small band (past the tiny one) stores its cofactors with these sums.
    type Cofactor: Cofactor;
    /// The small band's state for these sums.
    fn small_band(workspace: &mut SieveWorkspace) -> &mut SmallDivisors<Self::Cofactor>;
    /// The wheel's per-block state for these sums.
    fn wheel_fill(workspace: &mut SieveWorkspace) -> &mut WheelFill<Self>;
    /// The window band's state for these sums.
    fn window_band(workspace: &mut SieveWorkspace) -> &mut SmallDivisors<Self::Cofactor>;
}

/// s(n) mod 2^32, for blocks ending at or below [`COMPACT_SUMS_UP_TO`]: `low_bits` is only
/// s(n) mod 2^32 and `is` only finds candidates, confirmed by [`confirmed_perfect`]; the block's
/// checksum comes from [`checksum_in_closed_form`].
impl Accumulator for u32 {
    const ONE: u32 = 1;
    #[inline(always)]
    fn window_band(workspace: &mut SieveWorkspace) -> &mut SmallDivisors<u32> {
        &mut workspace.window_compact
    }
    #[inline(always)]
    fn wheel_fill(workspace: &mut SieveWorkspace) -> &mut WheelFill<u32> {
        &mut workspace.wheel_compact
    }
    type Cofactor = u32;
    #[inline(always)]
    fn small_band(workspace: &mut SieveWorkspace) -> &mut SmallDivisors<u32> {
        &mut workspace.small_compact
    }
    const EXACT: bool = false;
    #[inline(always)]
    fn add(&mut self, value: u64) {
        *self = self.wrapping_add(value as u32);
    }
    #[inline(always)]
    fn subtract(&mut self, value: u64) {
        *self = self.wrapping_sub(value as u32);
    }
    #[inline(always)]
    fn low_bits(self) -> u64 {
        u64::from(self)
    }
    #[inline(always)]
    fn is(self, n: u64) -> bool {
        self == n as u32
    }
}

impl Accumulator for u64 {
    const ONE: u64 = 1;
    #[inline(always)]
    fn window_band(workspace: &mut SieveWorkspace) -> &mut SmallDivisors<u64> {
        &mut workspace.window_wide
    }
    #[inline(always)]
    fn wheel_fill(workspace: &mut SieveWorkspace) -> &mut WheelFill<u64> {
        &mut workspace.wheel_narrow
    }
    type Cofactor = u64;
    #[inline(always)]
    fn small_band(workspace: &mut SieveWorkspace) -> &mut SmallDivisors<u64> {
        &mut workspace.small
    }
    #[inline(always)]
    fn add(&mut self, value: u64) {
        *self = self.wrapping_add(value);
    }
    #[inline(always)]
    fn subtract(&mut self, value: u64) {
        *self = self.wrapping_sub(value);
    }
    #[inline(always)]
    fn low_bits(self) -> u64 {
        self
    }
    #[inline(always)]
    fn is(self, n: u64) -> bool {
        self == n
    }
}

impl Accumulator for u128 {
    const ONE: u128 = 1;
    #[inline(always)]
    fn window_band(workspace: &mut SieveWorkspace) -> &mut SmallDivisors<u64> {
        &mut workspace.window_wide
    }
    #[inline(always)]
    fn wheel_fill(workspace: &mut SieveWorkspace) -> &mut WheelFill<u128> {
        &mut workspace.wheel_wide
    }
    const WHEEL: bool = false;
    type Cofactor = u64;
    #[inline(always)]
    fn small_band(workspace: &mut SieveWorkspace) -> &mut SmallDivisors<u64> {
        &mut workspace.small
    }
    #[inline(always)]
    fn add(&mut self, value: u64) {
        *self += u128::from(value);
    }
    #[inline(always)]
    fn subtract(&mut self, value: u64) {
        *self -= u128::from(value);
    }
    #[inline(always)]
    fn low_bits(self) -> u64 {
        self as u64
    }
    #[inline(always)]
    fn is(self, n: u64) -> bool {
        self == u128::from(n)
    }
}

/// Where divisor d first hits `[first, ...)`: the offset of its first multiple n >= max(first,
/// d * d) and the value d + n / d to add there.
#[inline]
pub(super) fn first_hit(first: u64, d: u64) -> (u64, u64) {
    let square = d * d;
    if square >= first {
        (square - first, 2 * d)
    } else {
        let quotient = first / d;
        match first % d {
            0 => (0, d + quotient),
            remainder => (d - remainder, d + quotient + 1),
        }
    }
}
