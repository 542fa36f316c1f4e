//! The replicated list: a sequence whose elements sit at dense, totally
//! ordered positions (Logoot-style), held in an add-wins observed-remove
//! map from position to value.
//!
//! A push or insert takes a fresh position between its neighbours, so
//! pushes through different nodes never collide: two RPUSHes that saw the
//! same last element both land after it, ordered by their random
//! tie-breakers, in the same order on every replica. A pop or LREM removes
//! the positions it observed (a concurrent push stays); LSET rewrites one
//! position's value, and concurrent LSETs keep the latest, like a hash
//! field.
//!
//! A position is a sequence of components `(digit, tie)`, each encoded as
//! 16 big-endian bytes, so comparing the encoded bytes compares positions
//! component by component (a prefix sorts first) and the map's own key
//! order is the list order.

use super::dotmap::DotMap;
use super::typed::HashField;
use crate::core::version::{Dot, VersionVector};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// Bytes per position component.
const COMPONENT: usize = 16;
/// Where the first element of a list goes.
const FIRST_DIGIT: u64 = 1 << 63;
/// Room left between pushes at one end; 2^31 pushes fit before a position
/// grows a component.
const PUSH_STEP: u64 = 1 << 32;

/// The replicated list.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct List {
    items: DotMap<HashField>,
}

impl List {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The elements, head first.
    pub fn values(&self) -> impl DoubleEndedIterator<Item = Bytes> + ExactSizeIterator + '_ {
        self.items.iter().map(|(_, tags)| latest(tags))
    }

    /// The element at `index` (from the head).
    pub fn get(&self, index: usize) -> Option<Bytes> {
        self.items.iter().nth(index).map(|(_, tags)| latest(tags))
    }

    /// Adds `value` at the head. Returns the new length.
    pub fn push_front(&mut self, value: Bytes) -> usize {
        let first = self.items.keys().next().cloned();
        let at = between(None, first.as_deref(), fresh_tie());
        self.items.insert(at, HashField::new(value));
        self.len()
    }

    /// Adds `value` at the tail. Returns the new length.
    pub fn push_back(&mut self, value: Bytes) -> usize {
        let last = self.items.keys().next_back().cloned();
        let at = between(last.as_deref(), None, fresh_tie());
        self.items.insert(at, HashField::new(value));
        self.len()
    }

    /// Inserts `value` so that it becomes the element at `index`
    /// (`index == len` appends).
    pub fn insert_at(&mut self, index: usize, value: Bytes) {
        let (before, after) = {
            let mut keys = self.items.keys().skip(index.saturating_sub(1));
            if index == 0 {
                (None, keys.next().cloned())
            } else {
                (keys.next().cloned(), keys.next().cloned())
            }
        };
        let at = between(before.as_deref(), after.as_deref(), fresh_tie());
        self.items.insert(at, HashField::new(value));
    }

    /// Removes and returns the head.
    pub fn pop_front(&mut self) -> Option<Bytes> {
        let (at, tags) = self.items.iter().next()?;
        let (at, value) = (at.clone(), latest(tags));
        self.items.remove(&at);
        Some(value)
    }

    /// Removes and returns the tail.
    pub fn pop_back(&mut self) -> Option<Bytes> {
        let (at, tags) = self.items.iter().next_back()?;
        let (at, value) = (at.clone(), latest(tags));
        self.items.remove(&at);
        Some(value)
    }

    /// Replaces the element at `index`. Returns whether it exists.
    pub fn set(&mut self, index: usize, value: Bytes) -> bool {
        let Some(at) = self.items.keys().nth(index).cloned() else {
            return false;
        };
        self.items.insert(at, HashField::new(value));
        true
    }

    /// Removes the elements whose indexes `remove` picks.
    pub fn remove_where(&mut self, mut remove: impl FnMut(usize, &Bytes) -> bool) -> usize {
        let doomed: Vec<Bytes> = self
            .items
            .iter()
            .enumerate()
            .filter(|(i, (_, tags))| remove(*i, &latest(tags)))
            .map(|(_, (at, _))| at.clone())
            .collect();
        for at in &doomed {
            self.items.remove(at);
        }
        doomed.len()
    }

    /// Removes every element (the observed ones).
    pub fn clear(&mut self) {
        self.items.clear();
    }

    /// Joins another replica's state (commutative, associative, idempotent).
    pub fn merge(&mut self, other: &List) {
        self.items.merge(&other.items);
    }

    /// Names the write `dot` (see [`DotMap::stamp`]).
    pub fn stamp(&mut self, dot: &Dot, observed: &VersionVector, now_ms: u64) {
        self.items.stamp(dot, observed, now_ms);
    }

    /// Rough stored size in bytes.
    pub fn approx_len(&self) -> usize {
        self.items
            .iter()
            .map(|(at, tags)| at.len() + tags.values().map(|f| f.value.len() + 32).sum::<usize>())
            .sum()
    }
}

/// A position's value: the latest of its concurrent LSETs.
fn latest(tags: &std::collections::BTreeMap<Dot, HashField>) -> Bytes {
    HashField::latest(tags).cloned().unwrap_or_default()
}

/// A tie-breaker no other element will draw (never 0, which the
/// allocation below relies on).
fn fresh_tie() -> u64 {
    rand::random_range(1..=u64::MAX)
}

fn components(at: Option<&[u8]>) -> Vec<(u64, u64)> {
    at.map_or_else(Vec::new, |at| {
        at.chunks_exact(COMPONENT)
            .map(|c| {
                let (digit, tie) = c.split_at(8);
                (
                    u64::from_be_bytes(digit.try_into().unwrap_or_default()),
                    u64::from_be_bytes(tie.try_into().unwrap_or_default()),
                )
            })
            .collect()
    })
}

fn encode(parts: &[(u64, u64)]) -> Bytes {
    let mut out = Vec::with_capacity(parts.len() * COMPONENT);
    for (digit, tie) in parts {
        out.extend_from_slice(&digit.to_be_bytes());
        out.extend_from_slice(&tie.to_be_bytes());
    }
    Bytes::from(out)
}

/// A position strictly between `lower` and `upper` (`None` = the list's
/// end on that side) whose last component carries `tie`.
///
/// Walks down the components: where a free digit lies between the bounds
/// it takes one; otherwise it copies the lower bound's component (or one
/// just below the upper bound's) and goes one level deeper. Digits are
/// never 0 and the last component of every position has a non-zero tie,
/// so there is always room below an upper bound.
pub fn between(lower: Option<&[u8]>, upper: Option<&[u8]>, tie: u64) -> Bytes {
    let lo = components(lower);
    let hi = components(upper);
    let mut lo_tight = lower.is_some();
    let mut hi_tight = upper.is_some();
    let mut out = Vec::new();
    for level in 0.. {
        let l = if lo_tight {
            lo.get(level).copied()
        } else {
            None
        };
        // The lower bound is a prefix of what is built so far: anything
        // longer sorts after it.
        lo_tight = lo_tight && l.is_some();
        let h = if hi_tight {
            hi.get(level).copied()
        } else {
            None
        };
        hi_tight = hi_tight && h.is_some();
        let min = match l {
            Some((d, _)) => d.checked_add(1),
            None => Some(1),
        };
        let max = match h {
            Some((d, _)) => d.checked_sub(1),
            None => Some(u64::MAX),
        };
        if let (Some(min), Some(max)) = (min, max)
            && min <= max
        {
            let digit = match (l, h) {
                (None, None) => FIRST_DIGIT,
                (Some((d, _)), None) => d.saturating_add(PUSH_STEP.min((u64::MAX - d) / 2)),
                (None, Some((d, _))) => d - PUSH_STEP.min(d / 2),
                (Some((a, _)), Some((b, _))) => a + (b - a) / 2,
            }
            .clamp(min, max);
            out.push((digit, tie));
            return encode(&out);
        }
        match (l, h) {
            (Some(lc), _) => {
                out.push(lc);
                if h.is_some_and(|hc| lc < hc) {
                    hi_tight = false;
                }
            }
            (None, Some((digit, hi_tie))) => {
                if hi_tie > 0 {
                    out.push((digit, hi_tie - 1));
                    hi_tight = false;
                } else {
                    out.push((digit, hi_tie));
                }
            }
            // Both bounds loose always leaves room above.
            (None, None) => {
                out.push((FIRST_DIGIT, tie));
                return encode(&out);
            }
        }
    }
    unreachable!("the loop returns")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::NodeId;
    use proptest::prelude::*;

    fn dot(n: &str, c: u64) -> Dot {
        Dot {
            node: NodeId::new(n),
            counter: c,
        }
    }

    fn write(base: &List, f: impl FnOnce(&mut List), d: Dot) -> List {
        let mut l = base.clone();
        let seen = l.items.seen().clone();
        f(&mut l);
        l.stamp(&d, &seen, d.counter);
        l
    }

    fn values(l: &List) -> Vec<Bytes> {
        l.values().collect()
    }

    #[test]
    fn pushes_land_at_their_ends() {
        let mut l = List::new();
        l.push_back("b".into());
        l.push_back("c".into());
        l.push_front("a".into());
        l.insert_at(1, "ab".into());
        l.insert_at(4, "d".into());
        assert_eq!(values(&l), ["a", "ab", "b", "c", "d"]);
        assert_eq!(l.pop_front().as_deref(), Some(&b"a"[..]));
        assert_eq!(l.pop_back().as_deref(), Some(&b"d"[..]));
        assert!(l.set(1, "B".into()));
        assert_eq!(values(&l), ["ab", "B", "c"]);
    }

    #[test]
    fn concurrent_pushes_all_survive_in_one_order() {
        let base = write(
            &List::new(),
            |l| {
                l.push_back("x".into());
            },
            dot("a", 1),
        );
        let left = write(
            &base,
            |l| {
                l.push_back("from-b".into());
            },
            dot("b", 2),
        );
        let right = write(
            &base,
            |l| {
                l.push_back("from-c".into());
            },
            dot("c", 2),
        );
        let mut lr = left.clone();
        lr.merge(&right);
        let mut rl = right.clone();
        rl.merge(&left);
        assert_eq!(values(&lr), values(&rl));
        assert_eq!(lr.len(), 3);
        assert_eq!(values(&lr)[0], "x");
    }

    #[test]
    fn a_pop_removes_only_what_it_observed() {
        let base = write(
            &List::new(),
            |l| {
                l.push_back("x".into());
            },
            dot("a", 1),
        );
        let popped = write(
            &base,
            |l| {
                l.pop_front();
            },
            dot("b", 2),
        );
        let pushed = write(
            &base,
            |l| {
                l.push_front("y".into());
            },
            dot("c", 2),
        );
        let mut m = popped.clone();
        m.merge(&pushed);
        assert_eq!(values(&m), ["y"]);
    }

    proptest! {
        /// Any sequence of inserts keeps positions unique and in the
        /// order the inserts asked for.
        #[test]
        fn positions_keep_the_asked_order(picks in proptest::collection::vec((0usize..1000, any::<u64>()), 1..300)) {
            let mut model: Vec<u64> = Vec::new();
            let mut l = List::new();
            for (i, (pick, v)) in picks.iter().enumerate() {
                let at = pick % (model.len() + 1);
                model.insert(at, *v);
                l.insert_at(at, Bytes::from(v.to_be_bytes().to_vec()));
                prop_assert_eq!(l.len(), i + 1);
            }
            let got: Vec<u64> = l.values().map(|b| u64::from_be_bytes(b[..].try_into().unwrap_or_default())).collect();
            prop_assert_eq!(got, model);
        }

        /// Merging replicas that pushed concurrently is commutative,
        /// associative and idempotent, and keeps every push.
        #[test]
        fn merge_is_a_join(a in 0usize..5, b in 0usize..5, c in 0usize..5) {
            let base = write(&List::new(), |l| { l.push_back("base".into()); }, dot("z", 1));
            let grow = |n: usize, node: &str| write(&base, |l| for i in 0..n {
                if i % 2 == 0 { l.push_back(format!("{node}{i}").into()); } else { l.push_front(format!("{node}{i}").into()); }
            }, dot(node, 2));
            let (x, y, z) = (grow(a, "a"), grow(b, "b"), grow(c, "c"));
            let mut xy_z = x.clone(); xy_z.merge(&y); xy_z.merge(&z);
            let mut x_yz = y.clone(); x_yz.merge(&z); let mut t = x.clone(); t.merge(&x_yz);
            let mut zyx = z.clone(); zyx.merge(&y); zyx.merge(&x);
            prop_assert_eq!(values(&xy_z), values(&t));
            prop_assert_eq!(values(&xy_z), values(&zyx));
            let mut again = xy_z.clone(); again.merge(&xy_z);
            prop_assert_eq!(values(&again), values(&xy_z));
            prop_assert_eq!(xy_z.len(), 1 + a + b + c);
        }
    }
}
