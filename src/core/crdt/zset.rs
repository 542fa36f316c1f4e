//! The sorted set: add-wins membership ([`DotMap`]) and, per member, a
//! score that is a [`Counter`]: ZADD resets it, ZINCRBY adds to it, so
//! concurrent ZINCRBYs sum and concurrent ZADDs pick one winner.

use super::Authority;
use super::counter::{Amount, Counter, Owned};
use super::dotmap::DotMap;
use crate::core::version::{Dot, VersionVector};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The replicated sorted set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZSet {
    members: DotMap<()>,
    scores: BTreeMap<Bytes, Counter>,
}

impl ZSet {
    /// An empty sorted set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The score of `member`, if present.
    pub fn score(&self, member: &[u8]) -> Option<f64> {
        if !self.members.contains(member) {
            return None;
        }
        Some(self.scores.get(member).map_or(0.0, Counter::value_f64))
    }

    /// Sets `member`'s score (ZADD). Returns whether it was new.
    pub fn set(&mut self, member: Bytes, score: f64) -> bool {
        let fresh = self.members.insert(member.clone(), ());
        self.scores
            .entry(member)
            .or_default()
            .set(Amount::float(score));
        fresh
    }

    /// Adds `by` to `member`'s score (ZINCRBY); a new member starts at 0.
    /// Returns the new score.
    pub fn incr(&mut self, member: Bytes, by: f64) -> f64 {
        self.members.insert(member.clone(), ());
        let score = self.scores.entry(member).or_default();
        score.add(Amount::float(by));
        score.value_f64()
    }

    /// Removes `member` as observed. Returns whether it was present.
    pub fn remove(&mut self, member: &[u8]) -> bool {
        self.scores.remove(member);
        self.members.remove(member)
    }

    /// Removes every member (observed removes).
    pub fn clear(&mut self) {
        self.scores.clear();
        self.members.clear();
    }

    /// Members with scores, in Redis order (score, then member bytes).
    pub fn sorted(&self) -> Vec<(f64, Bytes)> {
        let mut all: Vec<(f64, Bytes)> = self
            .members
            .keys()
            .map(|m| {
                (
                    self.scores.get(m).map_or(0.0, Counter::value_f64),
                    m.clone(),
                )
            })
            .collect();
        all.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
        all
    }

    /// Joins another replica's state.
    pub fn merge(&mut self, other: &ZSet) {
        self.members.merge(&other.members);
        for (m, theirs) in &other.scores {
            self.scores.entry(m.clone()).or_default().merge(theirs);
        }
        let members = &self.members;
        self.scores.retain(|m, _| members.contains(m));
    }

    /// Names the write (see [`DotMap::stamp`] and [`Counter::stamp`]).
    pub fn stamp(
        &mut self,
        dot: &Dot,
        observed: &VersionVector,
        now_ms: u64,
        authority: Authority,
        stored: &[&ZSet],
    ) {
        self.members.stamp(dot, observed, now_ms);
        for (m, score) in self.scores.iter_mut() {
            let own: Owned =
                Counter::own_entry(stored.iter().filter_map(|z| z.scores.get(m)), &dot.node);
            score.stamp(dot, now_ms, authority, own);
        }
    }

    /// Rough stored size in bytes.
    pub fn approx_len(&self) -> usize {
        self.members
            .iter()
            .map(|(m, tags)| m.len() + tags.len() * 24)
            .sum::<usize>()
            + self.scores.values().map(Counter::approx_len).sum::<usize>()
    }
}
