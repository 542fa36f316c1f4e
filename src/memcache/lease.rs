//! mg's recache wins: vivify on miss (`N`), win when the TTL runs low
//! (`R`), and the win a stale item hands out. Who wins is stored with the
//! item, and decided in one read-modify-write at the key's serialising
//! node, so one client in the whole cluster gets `W` and the others `Z`.

use super::exptime::expires_at;
use super::meta::Flags;
use crate::core::{ItemCas, ItemMeta};
use crate::kv::{Change, Kv, KvError, LiveValue};
use bytes::Bytes;

/// What an mg does to the item, in request order (memcached applies its
/// flags in that order: a `T` after `N` overrides the vivified TTL).
#[derive(Clone, Copy, Debug)]
enum Step {
    Touch(i64),
    Vivify(i64),
    Recache(i64),
}

/// The item-changing flags of one mg.
#[derive(Clone, Debug, Default)]
pub struct Lease {
    steps: Vec<Step>,
    /// `E`: the cas of an item `N` creates.
    chosen_cas: Option<u64>,
}

impl Lease {
    /// Reads `T`, `N`, `R` and `E` from `flags`.
    pub fn of(flags: &Flags) -> Result<Lease, &'static str> {
        let mut steps = Vec::new();
        for f in &flags.0 {
            let step: fn(i64) -> Step = match f.letter {
                b'T' => Step::Touch,
                b'N' => Step::Vivify,
                b'R' => Step::Recache,
                _ => continue,
            };
            steps.push(step(flags.number(f.letter)?.unwrap_or(0)));
        }
        let chosen_cas = flags.number(b'E')?;
        Ok(Lease { steps, chosen_cas })
    }

    fn vivifies(&self) -> bool {
        self.steps.iter().any(|s| matches!(s, Step::Vivify(_)))
    }

    /// Whether what a plain read found may hand out a win, so the mg must
    /// be decided at the serialising node.
    pub fn needs_decision(&self, found: Option<&LiveValue>, now_ms: u64) -> bool {
        match found {
            None => self.vivifies(),
            Some(v) if v.meta.win_sent => false,
            Some(v) => {
                v.meta.stale
                    || self.steps.iter().any(|s| match s {
                        Step::Recache(secs) => runs_low(v.expires_at_ms, *secs, now_ms),
                        _ => false,
                    })
            }
        }
    }
}

/// memcached's `R` test: an expiring item with less than `secs` left.
fn runs_low(expires_at_ms: Option<u64>, secs: i64, now_ms: u64) -> bool {
    expires_at_ms.is_some_and(|at| i128::from(at - at.min(now_ms)) < i128::from(secs) * 1000)
}

/// The item an mg answers with, and the flags it earned.
#[derive(Debug, Default)]
pub struct Decided {
    /// The item after the mg (None: a miss).
    pub value: Option<LiveValue>,
    /// `Z`: a win was handed out before.
    pub win_sent: bool,
    /// `W`: this mg won.
    pub won: bool,
    /// The item was created here without a chosen cas: its cas is known
    /// only by reading it back.
    pub cas_unknown: bool,
}

impl Decided {
    /// What a plain read found, nothing decided.
    pub fn read(value: Option<LiveValue>) -> Self {
        Decided {
            win_sent: value.as_ref().is_some_and(|v| v.meta.win_sent),
            value,
            ..Decided::default()
        }
    }
}

/// Runs the mg's `T`, `N`, `R` and the stale win under the key's lock.
pub async fn decide<K: Kv>(kv: &K, stored: Bytes, lease: Lease) -> Result<Decided, KvError> {
    kv.modify(stored, move |cur, now| {
        let cur = cur.filter(LiveValue::is_string);
        let created = cur.is_none();
        let mut v = match cur {
            Some(v) => v,
            None if lease.vivifies() => LiveValue {
                data: Bytes::new(),
                expires_at_ms: None,
                typed: None,
                flags: 0,
                cas: lease.chosen_cas.unwrap_or(0),
                meta: ItemMeta {
                    cas: lease.chosen_cas.map(ItemCas::Chosen),
                    ..ItemMeta::default()
                },
            },
            None => return (Change::Keep, Decided::default()),
        };
        let win_sent = v.meta.win_sent;
        let mut won = false;
        let mut changed = created;
        for step in &lease.steps {
            match *step {
                Step::Touch(t) => {
                    v.expires_at_ms = expires_at(t, now);
                    changed = true;
                }
                Step::Vivify(t) if created => {
                    v.expires_at_ms = expires_at(t, now);
                    won = true;
                }
                Step::Recache(secs) if !created && !win_sent => {
                    won |= runs_low(v.expires_at_ms, secs, now);
                }
                _ => {}
            }
        }
        won |= v.meta.stale && !win_sent;
        if !(changed || won) {
            return (Change::Keep, Decided::read(Some(v)));
        }
        // Handing out a win or a touch is no modification to memcached:
        // the cas a client holds stays valid.
        v.meta.cas = match v.meta.cas {
            Some(ItemCas::Chosen(c)) => Some(ItemCas::Chosen(c)),
            _ if created => None,
            _ => Some(ItemCas::Kept(v.cas)),
        };
        v.meta.win_sent = win_sent || won;
        let change = Change::WriteItem {
            data: v.data.clone(),
            expires_at_ms: v.expires_at_ms,
            flags: v.flags,
            meta: v.meta,
        };
        let decided = Decided {
            cas_unknown: created && lease.chosen_cas.is_none(),
            value: Some(v),
            win_sent,
            won,
        };
        (change, decided)
    })
    .await
}
