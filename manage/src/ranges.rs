//! A set of u64 numbers stored as merged half-open spans `[lo, hi)`.
//!
//! Every span is non-empty, and no two spans overlap or touch (`[1, 5)` and `[5, 9)` are kept as
//! `[1, 9)`), so each set has exactly one representation and equality is structural.
//!
//! Sizes are u64: the spans lie inside `[0, u64::MAX)` (an exclusive end cannot exceed u64::MAX)
//! and are disjoint, so their total is at most u64::MAX and can never overflow.

use std::collections::btree_map;
use std::collections::BTreeMap;
use std::ops::Bound;

/// A set of numbers as merged half-open spans. Empty or inverted inputs (`lo >= hi`) are no-ops.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RangeSet {
    /// lo -> hi of every span.
    spans: BTreeMap<u64, u64>,
    /// Total count of numbers, kept up to date so `len` is O(1).
    total: u64,
}

impl RangeSet {
    /// The empty set.
    pub fn new() -> RangeSet {
        RangeSet::default()
    }

    /// True when the set holds no number.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// How many numbers the set holds.
    pub fn len(&self) -> u64 {
        self.total
    }

    /// How many separate spans the set is made of.
    pub fn span_count(&self) -> usize {
        self.spans.len()
    }

    /// The spans, lowest first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (u64, u64)> + '_ {
        self.spans.iter().map(|(&lo, &hi)| (lo, hi))
    }

    /// The lowest span.
    pub fn first(&self) -> Option<(u64, u64)> {
        self.spans.first_key_value().map(|(&lo, &hi)| (lo, hi))
    }

    /// The highest span.
    pub fn last(&self) -> Option<(u64, u64)> {
        self.spans.last_key_value().map(|(&lo, &hi)| (lo, hi))
    }

    /// The span holding `n`, if any.
    fn span_holding(&self, n: u64) -> Option<(u64, u64)> {
        self.spans
            .range(..=n)
            .next_back()
            .filter(|(_, &hi)| hi > n)
            .map(|(&lo, &hi)| (lo, hi))
    }

    /// True when `n` is in the set.
    pub fn contains(&self, n: u64) -> bool {
        self.span_holding(n).is_some()
    }

    /// True when every number of `[lo, hi)` is in the set (vacuously true when it is empty).
    pub fn contains_range(&self, lo: u64, hi: u64) -> bool {
        if lo >= hi {
            return true;
        }
        self.span_holding(lo).is_some_and(|(_, end)| end >= hi)
    }

    /// True when some number of `[lo, hi)` is in the set.
    pub fn overlaps(&self, lo: u64, hi: u64) -> bool {
        self.intersection(lo, hi).next().is_some()
    }

    /// How many numbers of `[lo, hi)` are in the set.
    pub fn covered_len(&self, lo: u64, hi: u64) -> u64 {
        self.intersection(lo, hi).map(|(a, b)| b - a).sum()
    }

    /// The smallest number `>= from` that is not in the set. Always exists: u64::MAX can never
    /// be in a set of half-open u64 spans.
    pub fn first_gap(&self, from: u64) -> u64 {
        match self.span_holding(from) {
            Some((_, hi)) => hi,
            None => from,
        }
    }

    /// The lowest span that starts strictly after `n`.
    pub fn next_span_after(&self, n: u64) -> Option<(u64, u64)> {
        self.spans
            .range((Bound::Excluded(n), Bound::Unbounded))
            .next()
            .map(|(&lo, &hi)| (lo, hi))
    }

    /// The parts of `[lo, hi)` that are in the set, lowest first, clipped to `[lo, hi)`.
    pub fn intersection(&self, lo: u64, hi: u64) -> Intersection<'_> {
        // A span starting before lo may still reach into [lo, hi): start the walk there.
        let first = self
            .spans
            .range(..lo)
            .next_back()
            .map_or(lo, |(&start, &end)| if end > lo { start } else { lo });
        Intersection {
            spans: self.spans.range(first..),
            lo,
            hi,
        }
    }

    /// The parts of `[lo, hi)` that are not in the set, lowest first.
    pub fn gaps(&self, lo: u64, hi: u64) -> Gaps<'_> {
        Gaps {
            covered: self.intersection(lo, hi),
            cursor: lo,
            hi,
        }
    }

    /// Adds `[lo, hi)`, merging with the spans it overlaps or touches.
    pub fn insert(&mut self, lo: u64, hi: u64) {
        if lo >= hi {
            return;
        }
        let (mut new_lo, mut new_hi) = (lo, hi);
        if let Some((&start, &end)) = self.spans.range(..=lo).next_back() {
            if end >= lo {
                new_lo = start;
                new_hi = new_hi.max(end);
                self.spans.remove(&start);
                self.total -= end - start;
            }
        }
        while let Some((&start, &end)) = self.spans.range(new_lo..=new_hi).next() {
            self.spans.remove(&start);
            self.total -= end - start;
            new_hi = new_hi.max(end);
        }
        self.spans.insert(new_lo, new_hi);
        self.total += new_hi - new_lo;
    }

    /// Removes `[lo, hi)`, splitting the spans that straddle its ends.
    pub fn remove(&mut self, lo: u64, hi: u64) {
        if lo >= hi {
            return;
        }
        if let Some((&start, &end)) = self.spans.range(..lo).next_back() {
            if end > lo {
                self.spans.insert(start, lo);
                self.total -= end - lo;
                if end > hi {
                    self.spans.insert(hi, end);
                    self.total += end - hi;
                    return;
                }
            }
        }
        while let Some((&start, &end)) = self.spans.range(lo..hi).next() {
            self.spans.remove(&start);
            self.total -= end - start;
            if end > hi {
                self.spans.insert(hi, end);
                self.total += end - hi;
                break;
            }
        }
    }

    /// Removes and returns the lowest `min(max_len, first span's length)` numbers, as one span.
    pub fn pop_front(&mut self, max_len: u64) -> Option<(u64, u64)> {
        if max_len == 0 {
            return None;
        }
        let (lo, hi) = self.first()?;
        let end = hi.min(lo.saturating_add(max_len));
        self.remove(lo, end);
        Some((lo, end))
    }
}

/// The parts of a range that are in a [`RangeSet`]; see [`RangeSet::intersection`].
pub struct Intersection<'a> {
    spans: btree_map::Range<'a, u64, u64>,
    lo: u64,
    hi: u64,
}

impl Iterator for Intersection<'_> {
    type Item = (u64, u64);

    fn next(&mut self) -> Option<(u64, u64)> {
        let (&start, &end) = self.spans.next()?;
        if start >= self.hi {
            return None;
        }
        let clipped = (start.max(self.lo), end.min(self.hi));
        (clipped.0 < clipped.1).then_some(clipped)
    }
}

/// The parts of a range that are not in a [`RangeSet`]; see [`RangeSet::gaps`].
pub struct Gaps<'a> {
    covered: Intersection<'a>,
    cursor: u64,
    hi: u64,
}

impl Iterator for Gaps<'_> {
    type Item = (u64, u64);

    fn next(&mut self) -> Option<(u64, u64)> {
        while self.cursor < self.hi {
            match self.covered.next() {
                Some((start, end)) => {
                    let gap = (self.cursor, start);
                    self.cursor = end;
                    if gap.0 < gap.1 {
                        return Some(gap);
                    }
                }
                None => {
                    let gap = (self.cursor, self.hi);
                    self.cursor = self.hi;
                    return Some(gap);
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn set_of(spans: &[(u64, u64)]) -> RangeSet {
        let mut set = RangeSet::new();
        for &(lo, hi) in spans {
            set.insert(lo, hi);
        }
        set
    }

    #[test]
    fn touching_spans_merge_and_removal_splits() {
        let mut set = set_of(&[(1, 5), (5, 9), (20, 30)]);
        assert_eq!(set.iter().collect::<Vec<_>>(), [(1, 9), (20, 30)]);
        assert_eq!(set.len(), 18);
        set.remove(3, 25);
        assert_eq!(set.iter().collect::<Vec<_>>(), [(1, 3), (25, 30)]);
        assert_eq!(set.len(), 7);
        set.remove(26, 27);
        assert_eq!(set.iter().collect::<Vec<_>>(), [(1, 3), (25, 26), (27, 30)]);
    }

    #[test]
    fn queries() {
        let set = set_of(&[(10, 20), (30, 40)]);
        assert!(set.contains_range(12, 20));
        assert!(!set.contains_range(12, 21));
        assert!(set.contains_range(5, 5));
        assert!(set.overlaps(19, 31));
        assert!(!set.overlaps(20, 30));
        assert_eq!(set.covered_len(15, 35), 10);
        assert_eq!(set.first_gap(10), 20);
        assert_eq!(set.first_gap(25), 25);
        assert_eq!(set.next_span_after(10), Some((30, 40)));
        assert_eq!(
            set.gaps(5, 45).collect::<Vec<_>>(),
            [(5, 10), (20, 30), (40, 45)]
        );
        assert_eq!(set.gaps(10, 20).count(), 0);
        assert_eq!(
            set.intersection(15, 35).collect::<Vec<_>>(),
            [(15, 20), (30, 35)]
        );
    }

    #[test]
    fn the_top_of_u64() {
        let mut set = set_of(&[(u64::MAX - 3, u64::MAX)]);
        assert_eq!(set.len(), 3);
        assert_eq!(set.first_gap(u64::MAX - 2), u64::MAX);
        set.insert(1, u64::MAX);
        assert_eq!(set.len(), u64::MAX - 1);
        assert_eq!(set.pop_front(u64::MAX), Some((1, u64::MAX)));
        assert!(set.is_empty());
    }

    #[test]
    fn inverted_and_empty_inputs_do_nothing() {
        let mut set = set_of(&[(5, 9)]);
        set.insert(7, 3);
        set.remove(8, 6);
        set.insert(4, 4);
        assert_eq!(set.iter().collect::<Vec<_>>(), [(5, 9)]);
        assert_eq!(set.pop_front(0), None);
        assert_eq!(set.gaps(9, 3).count(), 0);
        assert_eq!(set.covered_len(9, 3), 0);
    }

    #[derive(Clone, Debug)]
    enum Op {
        Insert(u64, u64),
        Remove(u64, u64),
        PopFront(u64),
    }

    const SPAN: u64 = 48;

    fn op() -> impl Strategy<Value = Op> {
        let bounds = (0..SPAN, 0..SPAN);
        prop_oneof![
            bounds.clone().prop_map(|(a, b)| Op::Insert(a, b)),
            bounds.prop_map(|(a, b)| Op::Remove(a, b)),
            (0..10u64).prop_map(Op::PopFront),
        ]
    }

    /// The spans of a naive set of numbers.
    fn spans_of(model: &BTreeSet<u64>) -> Vec<(u64, u64)> {
        let mut spans: Vec<(u64, u64)> = Vec::new();
        for &n in model {
            match spans.last_mut() {
                Some(last) if last.1 == n => last.1 = n + 1,
                _ => spans.push((n, n + 1)),
            }
        }
        spans
    }

    proptest! {
        /// Every operation and query agrees with a plain set of numbers, near 0 and near
        /// u64::MAX (where `base + offset` must never overflow the exclusive end).
        #[test]
        fn agrees_with_a_naive_set(ops in prop::collection::vec(op(), 0..40), high in any::<bool>()) {
            let base = if high { u64::MAX - SPAN } else { 0 };
            let mut set = RangeSet::new();
            let mut model = BTreeSet::new();
            for op in ops {
                match op {
                    Op::Insert(a, b) => {
                        set.insert(base + a, base + b);
                        model.extend(a..b);
                    }
                    Op::Remove(a, b) => {
                        set.remove(base + a, base + b);
                        for n in a..b {
                            model.remove(&n);
                        }
                    }
                    Op::PopFront(max) => {
                        let popped = set.pop_front(max);
                        let expected = spans_of(&model).first().copied().filter(|_| max > 0).map(|(lo, hi)| (lo, hi.min(lo + max)));
                        prop_assert_eq!(popped, expected.map(|(lo, hi)| (base + lo, base + hi)));
                        if let Some((lo, hi)) = expected {
                            for n in lo..hi {
                                model.remove(&n);
                            }
                        }
                    }
                }
                let expected: Vec<_> = spans_of(&model).into_iter().map(|(lo, hi)| (base + lo, base + hi)).collect();
                prop_assert_eq!(set.iter().collect::<Vec<_>>(), expected);
                prop_assert_eq!(set.len(), model.len() as u64);
                prop_assert_eq!(set.span_count(), spans_of(&model).len());
            }
            for a in 0..SPAN {
                prop_assert_eq!(set.contains(base + a), model.contains(&a));
                let gap = (a..=SPAN).find(|n| !model.contains(n)).unwrap();
                prop_assert_eq!(set.first_gap(base + a), base + gap);
                for b in a..SPAN {
                    let inside = model.range(a..b).count() as u64;
                    prop_assert_eq!(set.covered_len(base + a, base + b), inside);
                    prop_assert_eq!(set.contains_range(base + a, base + b), inside == b - a);
                    prop_assert_eq!(set.overlaps(base + a, base + b), inside > 0);
                    let gaps: u64 = set.gaps(base + a, base + b).map(|(x, y)| y - x).sum();
                    prop_assert_eq!(gaps, b - a - inside);
                    for (x, y) in set.gaps(base + a, base + b) {
                        prop_assert!(x < y && base + a <= x && y <= base + b);
                        prop_assert!(!set.overlaps(x, y));
                    }
                }
            }
        }
    }
}
