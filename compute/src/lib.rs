//! compute: the brute-force search kernel, its timing loop and cost model, and (in `client`)
//! the worker that takes ranges from manage.
//!
//! Definitions used everywhere: s(n) is the sum of the proper divisors of n (s(1) = 0); n is
//! perfect when n >= 2 and s(n) = n. A range is half-open `[lo, hi)` with `1 <= lo <= hi`.
//! The checksum of a range is the wrapping u64 sum of (s(n) mod 2^64) over it.
//!
//! Every range of u64 can be scanned exactly: sums that could pass 2^64 are kept in u128, so a
//! wrapped sum never makes a false perfect number. The library must not panic on any input; a
//! panic is a critical bug. The kernel, cost and bench modules forbid unsafe code.

#![warn(missing_docs)]

pub mod bench;
pub mod client;
pub mod cost;
pub mod kernel;
pub mod net;
pub mod sandbox;
mod sieve;

pub use kernel::{scan, Algorithm, ScanError, ScanOutcome};
