//! The connected computes: what each said in `hello`, its speed, and what it has done.

use std::collections::BTreeMap;

use crate::sizing::RateModel;
use crate::{ComputeId, LeaseId, Millis};

/// Who a compute is across connections: a compute that reconnects (new [`ComputeId`]) with the
/// same host and pid may still deliver the late result of a lease it held before.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Identity {
    /// Host name, as the compute reported it.
    pub host: String,
    /// Process id on that host.
    pub pid: u32,
}

/// What a compute says about itself in `hello`, plus where it connected from.
#[derive(Clone, Debug, PartialEq)]
pub struct ComputeInfo<A> {
    /// Host name and pid.
    pub identity: Identity,
    /// The peer address, for display.
    pub peer: String,
    /// Threads it scans with.
    pub threads: u32,
    /// The algorithm it runs.
    pub algorithm: A,
    /// Its benchmark figure, kernel operations per second, as reported (untrusted).
    pub ops_per_sec: u64,
}

/// One tracked compute.
#[derive(Clone, Debug)]
pub struct ComputeRecord<A> {
    /// Its id.
    pub id: ComputeId,
    /// What it said in `hello`.
    pub info: ComputeInfo<A>,
    /// Its speed estimate, used for sizing.
    pub rate: RateModel,
    /// Measured numbers per second (moving average over its timed results; 0 until one).
    pub numbers_per_sec: f64,
    /// Its live lease, if any.
    pub lease: Option<LeaseId>,
    /// Numbers its results newly counted (so the rows sum to the search's `tested`).
    pub tested: u64,
    /// Double-check results accepted from it (they count no numbers).
    pub checks: u64,
    /// Results accepted from it.
    pub results: u64,
    /// When it joined.
    pub connected_ms: Millis,
    /// When it last sent anything.
    pub last_heard_ms: Millis,
}

/// The computes of this run, by id.
#[derive(Clone, Debug)]
pub struct Registry<A> {
    computes: BTreeMap<ComputeId, ComputeRecord<A>>,
    next_id: u64,
}

impl<A> Default for Registry<A> {
    fn default() -> Self {
        Registry {
            computes: BTreeMap::new(),
            next_id: 1,
        }
    }
}

impl<A> Registry<A> {
    /// An empty registry; ids start at 1.
    pub fn new() -> Registry<A> {
        Registry::default()
    }

    /// An empty registry whose first id is `first` (at least 1): a resumed run continues the
    /// numbering of the previous one, so an id from before a restart never names a new compute.
    pub fn starting_at(first: ComputeId) -> Registry<A> {
        Registry {
            computes: BTreeMap::new(),
            next_id: first.0.max(1),
        }
    }

    /// The id the next compute will get.
    pub fn next_id(&self) -> ComputeId {
        ComputeId(self.next_id)
    }

    /// Adds a compute and returns its new id.
    pub fn join(&mut self, info: ComputeInfo<A>, rate: RateModel, now: Millis) -> ComputeId {
        let id = ComputeId(self.next_id);
        // 2^64 joins cannot happen; saturating keeps this panic-free regardless.
        self.next_id = self.next_id.saturating_add(1);
        self.computes.insert(
            id,
            ComputeRecord {
                id,
                info,
                rate,
                numbers_per_sec: 0.0,
                lease: None,
                tested: 0,
                checks: 0,
                results: 0,
                connected_ms: now,
                last_heard_ms: now,
            },
        );
        id
    }

    /// The compute with this id.
    pub fn get(&self, id: ComputeId) -> Option<&ComputeRecord<A>> {
        self.computes.get(&id)
    }

    /// The compute with this id, to update.
    pub fn get_mut(&mut self, id: ComputeId) -> Option<&mut ComputeRecord<A>> {
        self.computes.get_mut(&id)
    }

    /// Removes a compute.
    pub fn remove(&mut self, id: ComputeId) -> Option<ComputeRecord<A>> {
        self.computes.remove(&id)
    }

    /// Every compute, by increasing id.
    pub fn iter(&self) -> impl Iterator<Item = &ComputeRecord<A>> {
        self.computes.values()
    }

    /// How many computes are connected.
    pub fn len(&self) -> usize {
        self.computes.len()
    }

    /// True when none is.
    pub fn is_empty(&self) -> bool {
        self.computes.is_empty()
    }
}

impl<A> ComputeRecord<A> {
    /// Folds a timed result (`numbers` in `elapsed_ms`) into the displayed numbers/s.
    pub fn observe_numbers(&mut self, numbers: u64, elapsed_ms: Millis, min_elapsed_ms: Millis) {
        if numbers == 0 || elapsed_ms < min_elapsed_ms.max(1) {
            return;
        }
        let rate = numbers as f64 / (elapsed_ms as f64 / 1000.0);
        self.numbers_per_sec = if self.numbers_per_sec > 0.0 {
            (self.numbers_per_sec + rate) / 2.0
        } else {
            rate
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sizing::SizingConfig;

    fn info(host: &str) -> ComputeInfo<&'static str> {
        ComputeInfo {
            identity: Identity {
                host: host.into(),
                pid: 7,
            },
            peer: "127.0.0.1:5000".into(),
            threads: 4,
            algorithm: "sieve",
            ops_per_sec: 1_000_000,
        }
    }

    #[test]
    fn ids_are_never_reused() {
        let config = SizingConfig::default();
        let mut registry = Registry::new();
        let a = registry.join(info("a"), RateModel::from_benchmark(1, &config), 5);
        registry.remove(a);
        let b = registry.join(info("b"), RateModel::from_benchmark(1, &config), 6);
        assert!(b > a);
        assert_eq!(registry.len(), 1);
        assert_eq!(registry.get(b).unwrap().connected_ms, 6);
        assert!(registry.get(a).is_none());
        assert_eq!(registry.next_id(), ComputeId(3));
        let mut resumed = Registry::starting_at(ComputeId(40));
        let c = resumed.join(info("c"), RateModel::from_benchmark(1, &config), 7);
        assert_eq!(c, ComputeId(40));
        assert_eq!(resumed.next_id(), ComputeId(41));
        assert_eq!(
            Registry::<&str>::starting_at(ComputeId(0)).next_id(),
            ComputeId(1)
        );
    }

    #[test]
    fn numbers_per_second() {
        let config = SizingConfig::default();
        let mut registry = Registry::new();
        let id = registry.join(info("a"), RateModel::from_benchmark(1, &config), 0);
        let record = registry.get_mut(id).unwrap();
        record.observe_numbers(1000, 10, 100);
        assert_eq!(record.numbers_per_sec, 0.0);
        record.observe_numbers(1000, 1000, 100);
        assert_eq!(record.numbers_per_sec, 1000.0);
        record.observe_numbers(3000, 1000, 100);
        assert_eq!(record.numbers_per_sec, 2000.0);
    }
}
