//! sigma's search kernel: the three algorithms (naive, trial, sieve), the multi-threaded scan,
//! the cost model the scheduler sizes leases with, and the measurements behind `compute bench`.
//! It has no dependencies, so manage and xmlwire link it without the worker's client.
//!
//! Definitions used everywhere: s(n) is the sum of the proper divisors of n (s(1) = 0); n is
//! perfect when n >= 2 and s(n) = n. A range is half-open `[lo, hi)` with `1 <= lo <= hi`.
//! The checksum of a range is the wrapping u64 sum of (s(n) mod 2^64) over it.
//!
//! Every range of u64 can be scanned exactly: sums that could pass 2^64 are kept in u128, so a
//! wrapped sum never makes a false perfect number. The library must not panic on any input; a
//! panic is a critical bug.
//!
//! Modules depend one way: `divisors` and `tally` on nothing, `sieve` on them, `plan` on the
//! sieve, `scan` on all of these, `cost` and `bench` on the scan.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod algorithm;
pub mod bench;
pub mod cost;
mod divisors;
mod plan;
mod scan;
mod sieve;
mod tally;

pub use algorithm::{Algorithm, UnknownAlgorithm};
pub use divisors::{isqrt, proper_divisor_sum};
pub use scan::{scan, ScanError, ScanOutcome};
