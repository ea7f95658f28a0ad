//! compute: the worker that takes ranges from manage (`client`), the priority its search runs at
//! (`priority`), its tie to a parent manage (`stdin_watch`) and the job sandbox that runs the
//! programs manage sends (`sandbox`). The search itself (algorithms, scan, cost model,
//! bench figures) is the `sigma-kernel` crate, nested in compute/kernel.

#![warn(missing_docs)]

pub mod client;
pub mod priority;
pub mod sandbox;
pub mod stdin_watch;
