//! Flags: offences counted per compute identity (host and pid), and refusal after too many.
//!
//! An offence is a claimed perfect number that verification refuted, or a double-check lost to
//! a majority. Flags are kept by identity, not by [`ComputeId`], so reconnecting does not clear
//! them; they live for the run (not saved: a restart forgives). After `refuse_after` offences
//! (0: never) the identity is refused: no more work, no more results.
//!
//! Memory: one entry per flagged identity, at most [`MAX_FLAGGED`]; beyond that the entry with
//! the fewest flags (the oldest among those) is forgotten.

use std::collections::BTreeMap;

use crate::registry::Identity;
use crate::{ComputeId, Millis};

/// Most identities whose flags are kept.
pub const MAX_FLAGGED: usize = 4096;

/// What a compute did wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Offence {
    /// It claimed `n` is perfect; verification says it is not.
    FalseClaim {
        /// The claimed number.
        n: u64,
    },
    /// Its checksum of `[lo, hi)` lost to two others that agreed.
    LostCheck {
        /// The range.
        lo: u64,
        /// Its end (exclusive).
        hi: u64,
    },
}

/// One flagged identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlagRecord {
    /// How many offences.
    pub flags: u32,
    /// The latest one.
    pub last: Offence,
    /// The compute that committed it.
    pub last_compute: ComputeId,
    /// When it was reported.
    pub last_ms: Millis,
}

/// A new offence, as returned to the reactor for its log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flagged {
    /// Who.
    pub identity: Identity,
    /// Under which compute id.
    pub compute: ComputeId,
    /// What.
    pub offence: Offence,
    /// Its flags now.
    pub flags: u32,
    /// True when this offence got it refused (or it already was).
    pub refused: bool,
}

/// The flags of this run.
#[derive(Clone, Debug)]
pub struct Flags {
    by_identity: BTreeMap<Identity, FlagRecord>,
    refuse_after: u32,
}

impl Flags {
    /// No flags yet; refuse an identity at `refuse_after` offences (0: never).
    pub fn new(refuse_after: u32) -> Flags {
        Flags {
            by_identity: BTreeMap::new(),
            refuse_after,
        }
    }

    /// Counts an offence.
    pub fn offend(
        &mut self,
        identity: Identity,
        compute: ComputeId,
        offence: Offence,
        now: Millis,
    ) -> Flagged {
        if !self.by_identity.contains_key(&identity) && self.by_identity.len() >= MAX_FLAGGED {
            let forget = self
                .by_identity
                .iter()
                .min_by_key(|(_, record)| (record.flags, record.last_ms))
                .map(|(identity, _)| identity.clone());
            if let Some(forget) = forget {
                self.by_identity.remove(&forget);
            }
        }
        let record = self
            .by_identity
            .entry(identity.clone())
            .or_insert(FlagRecord {
                flags: 0,
                last: offence,
                last_compute: compute,
                last_ms: now,
            });
        record.flags = record.flags.saturating_add(1);
        record.last = offence;
        record.last_compute = compute;
        record.last_ms = now;
        let flags = record.flags;
        Flagged {
            identity,
            compute,
            offence,
            flags,
            refused: self.refused_at(flags),
        }
    }

    fn refused_at(&self, flags: u32) -> bool {
        self.refuse_after > 0 && flags >= self.refuse_after
    }

    /// How many offences `identity` has.
    pub fn flags(&self, identity: &Identity) -> u32 {
        self.by_identity
            .get(identity)
            .map_or(0, |record| record.flags)
    }

    /// True when `identity` gets no more work.
    pub fn is_refused(&self, identity: &Identity) -> bool {
        self.refused_at(self.flags(identity))
    }

    /// Every flagged identity, ordered by host and pid.
    pub fn iter(&self) -> impl Iterator<Item = (&Identity, &FlagRecord)> {
        self.by_identity.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(pid: u32) -> Identity {
        Identity {
            host: "h".into(),
            pid,
        }
    }

    #[test]
    fn refused_at_the_limit_and_never_with_zero() {
        let mut flags = Flags::new(2);
        let claim = Offence::FalseClaim { n: 12 };
        let first = flags.offend(identity(1), ComputeId(1), claim, 5);
        assert_eq!((first.flags, first.refused), (1, false));
        assert!(!flags.is_refused(&identity(1)));
        let lost = Offence::LostCheck { lo: 1, hi: 9 };
        let second = flags.offend(identity(1), ComputeId(2), lost, 6);
        assert_eq!((second.flags, second.refused), (2, true));
        assert!(flags.is_refused(&identity(1)));
        assert!(!flags.is_refused(&identity(2)));
        let (who, record) = flags.iter().next().unwrap();
        assert_eq!(who, &identity(1));
        assert_eq!((record.last, record.last_compute), (lost, ComputeId(2)));
        let mut lenient = Flags::new(0);
        for _ in 0..10 {
            assert!(!lenient.offend(identity(1), ComputeId(1), claim, 0).refused);
        }
        assert_eq!(lenient.flags(&identity(1)), 10);
    }

    #[test]
    fn memory_is_capped() {
        let mut flags = Flags::new(3);
        let claim = Offence::FalseClaim { n: 12 };
        flags.offend(identity(0), ComputeId(0), claim, 0);
        flags.offend(identity(0), ComputeId(0), claim, 0);
        for pid in 1..=MAX_FLAGGED as u32 {
            flags.offend(identity(pid), ComputeId(1), claim, u64::from(pid));
        }
        assert_eq!(flags.iter().count(), MAX_FLAGGED);
        assert_eq!(flags.flags(&identity(0)), 2);
        assert_eq!(flags.flags(&identity(1)), 0);
    }
}
