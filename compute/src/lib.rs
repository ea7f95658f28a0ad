//! compute: the worker that takes ranges from manage (`client`) and the job sandbox that runs
//! the programs manage sends (`sandbox`). The search itself (algorithms, scan, cost model,
//! bench figures) is the `sigma-kernel` crate, nested in compute/kernel.

#![warn(missing_docs)]

pub mod client;
pub mod sandbox;
