//! The scheduler's configuration, and the errors of one it cannot run with.

use std::fmt;

use crate::sizing::SizingConfig;
use crate::Millis;

/// The search and the tuning of the scheduler.
#[derive(Clone, Debug, PartialEq)]
pub struct SchedulerConfig {
    /// First number of the search (>= 1).
    pub start: u64,
    /// Last number of the search, inclusive (>= start, <= u64::MAX - 1).
    pub until: u64,
    /// Range sizing.
    pub sizing: SizingConfig,
    /// A lease's deadline is `deadline_factor` times its predicted time after it is issued...
    pub deadline_factor: f64,
    /// ...but never less than this, in ms...
    pub deadline_floor_ms: Millis,
    /// ...nor more than this.
    pub deadline_ceiling_ms: Millis,
    /// Longest wait told to a compute when nothing is left to lease, in ms.
    pub wait_ms: Millis,
    /// Shortest such wait, in ms.
    pub min_wait_ms: Millis,
    /// How many ended leases are remembered for late results.
    pub ended_lease_memory: usize,
    /// Share of full results computed again by another compute to compare checksums, in
    /// [0, 1]; 0 disables double-checking. See [`crate::checks`] for which ones.
    pub double_check: f64,
    /// Most double-checks open at once (waiting or in flight).
    pub check_memory: usize,
    /// How many recent checksum mismatches the status document shows.
    pub mismatch_memory: usize,
    /// Offences (refuted claims, lost checks) after which a compute is refused; 0: never.
    pub refuse_after: u32,
}

impl SchedulerConfig {
    /// The defaults for the search `[start, until]`: target 15 s, deadline 3x the prediction
    /// (at least 30 s, at most a day), waits of 0.25 to 2 s, 16384 ended leases remembered,
    /// 1% of results double-checked (at most 1024 checks open, the last 64 mismatches shown),
    /// a compute refused at its third offence.
    pub fn new(start: u64, until: u64) -> SchedulerConfig {
        SchedulerConfig {
            start,
            until,
            sizing: SizingConfig::default(),
            deadline_factor: 3.0,
            deadline_floor_ms: 30_000,
            deadline_ceiling_ms: 86_400_000,
            wait_ms: 2_000,
            min_wait_ms: 250,
            ended_lease_memory: 16_384,
            double_check: 0.01,
            check_memory: 1024,
            mismatch_memory: 64,
            refuse_after: 3,
        }
    }
}

/// A configuration the scheduler cannot run with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// `start` is 0.
    StartIsZero,
    /// `until` is below `start`.
    UntilBelowStart,
    /// `until` is u64::MAX, which no half-open u64 range can reach.
    UntilTooLarge,
    /// A snapshot is for a different search.
    SnapshotMismatch,
    /// `double_check` is not a share in [0, 1].
    DoubleCheckShare,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConfigError::StartIsZero => "the search must start at 1 or above",
            ConfigError::UntilBelowStart => "the search ends before it starts",
            ConfigError::UntilTooLarge => "the search can end at u64::MAX - 1 at most",
            ConfigError::SnapshotMismatch => "the saved state is for a different search",
            ConfigError::DoubleCheckShare => "the double-check share must be between 0 and 1",
        })
    }
}

impl std::error::Error for ConfigError {}
