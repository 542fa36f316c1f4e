//! Dead data, decided purely: turning expired values into tombstones, and
//! which dead records may be purged when.
//!
//! A replica that drops an expired value on its own, while another replica
//! still holds the value, lets read repair or hint delivery hand the value
//! back. So in a cluster an expired value is not dropped: it becomes a
//! tombstone with the same dot, stamped with the expiry time. Every replica
//! that converts the same value gets byte-identical bytes, and on merge the
//! tombstone beats the value it replaces (see `Object::merge`). Only the
//! cluster-wide purge (`node::cluster::gc`) removes tombstones, once every
//! owner holds them and the grace period has passed.

use super::object::{Object, Payload, Sibling};

/// The tombstone that replaces `s` if it is a value expired at `now_ms`:
/// same dot, timestamp the expiry time (never before the write itself), so
/// it depends on the value alone and not on when or where it is converted.
pub fn expired_tombstone(s: &Sibling, now_ms: u64) -> Option<Sibling> {
    match s.payload.expires_at_ms() {
        Some(at) if at <= now_ms => Some(Sibling {
            dot: s.dot.clone(),
            timestamp_ms: at.max(s.timestamp_ms),
            payload: Payload::Tombstone,
        }),
        _ => None,
    }
}

/// `obj` with every value expired at `now_ms` turned into its tombstone;
/// `None` when nothing in it has expired (nothing to write).
pub fn expire(obj: &Object, now_ms: u64) -> Option<Object> {
    let mut changed = false;
    let siblings = obj
        .siblings
        .iter()
        .map(|s| match expired_tombstone(s, now_ms) {
            Some(t) => {
                changed = true;
                t
            }
            None => s.clone(),
        })
        .collect();
    changed.then(|| Object {
        context: obj.context.clone(),
        siblings,
    })
}

/// True when every version of `obj` is a deletion (and there is one): what
/// INFO counts as a tombstone held here.
pub fn all_tombstones(obj: &Object) -> bool {
    !obj.siblings.is_empty()
        && obj
            .siblings
            .iter()
            .all(|s| matches!(s.payload, Payload::Tombstone))
}

/// True when `obj` is a record the cluster may purge at `now_ms`: only
/// tombstones, each older than `grace_ms`. The grace lets hints, read
/// repairs and slow messages carrying older versions arrive first.
pub fn purgeable(obj: &Object, now_ms: u64, grace_ms: u64) -> bool {
    all_tombstones(obj)
        && obj
            .siblings
            .iter()
            .all(|s| s.timestamp_ms.saturating_add(grace_ms) <= now_ms)
}

/// True when a lone node (every replica of every key) may remove `obj` at
/// `now_ms`: every value has expired and every tombstone is older than the
/// grace. Nobody else holds a copy that could bring it back.
pub fn lone_collectible(obj: &Object, now_ms: u64, grace_ms: u64) -> bool {
    obj.is_dead(now_ms)
        && obj.siblings.iter().all(|s| match s.payload {
            Payload::Tombstone => s.timestamp_ms.saturating_add(grace_ms) <= now_ms,
            Payload::Value { .. }
            | Payload::Flagged { .. }
            | Payload::Item { .. }
            | Payload::Typed { .. } => true,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{NodeId, VersionVector};
    use bytes::Bytes;

    fn expiring(node: &str, at: u64, written: u64) -> Object {
        let mut o = Object::new();
        o.update(
            &VersionVector::new(),
            &NodeId::new(node),
            Payload::Value {
                data: Bytes::from("v"),
                expires_at_ms: Some(at),
            },
            written,
        );
        o
    }

    #[test]
    fn an_unexpired_value_is_left_alone() {
        let o = expiring("a", 100, 10);
        assert_eq!(expire(&o, 99), None);
        let mut plain = Object::new();
        plain.update(
            &VersionVector::new(),
            &NodeId::new("a"),
            Payload::value("x"),
            1,
        );
        assert_eq!(expire(&plain, u64::MAX), None);
    }

    #[test]
    fn an_expired_value_becomes_its_tombstone_at_the_expiry_time() {
        let o = expiring("a", 100, 10);
        let t = expire(&o, 150).expect("expired");
        assert_eq!(t.context, o.context);
        assert_eq!(t.siblings.len(), 1);
        assert_eq!(t.siblings[0].dot, o.siblings[0].dot);
        assert_eq!(t.siblings[0].timestamp_ms, 100);
        assert_eq!(t.siblings[0].payload, Payload::Tombstone);
        // Converted anywhere, at any later time: the same bytes.
        assert_eq!(expire(&o, 100), Some(t.clone()));
        assert_eq!(expire(&o, 10_000), Some(t.clone()));
        // Already converted: nothing more to do.
        assert_eq!(expire(&t, 10_000), None);
    }

    #[test]
    fn merge_of_an_expired_value_and_its_tombstone_is_the_tombstone() {
        let value = expiring("a", 100, 10);
        let tomb = expire(&value, 200).expect("expired");
        let mut m1 = value.clone();
        m1.merge(&tomb);
        let mut m2 = tomb.clone();
        m2.merge(&value);
        assert_eq!(m1, tomb);
        assert_eq!(m2, tomb);
        assert!(tomb.descends(&value));
        assert!(!value.descends(&tomb));
    }

    #[test]
    fn only_the_expired_sibling_of_several_is_converted() {
        let mut o = expiring("a", 100, 10);
        o.update(
            &VersionVector::new(),
            &NodeId::new("b"),
            Payload::value("live"),
            20,
        );
        let t = expire(&o, 150).expect("one expired");
        assert_eq!(t.siblings.len(), 2);
        assert!(!all_tombstones(&t));
        assert!(!purgeable(&t, u64::MAX, 0));
        let live: Vec<_> = t
            .siblings
            .iter()
            .filter_map(|s| s.payload.live_data(150))
            .collect();
        assert_eq!(live, vec![&Bytes::from("live")]);
    }

    #[test]
    fn tombstones_are_purgeable_only_after_the_grace() {
        let mut o = Object::new();
        o.update(
            &VersionVector::new(),
            &NodeId::new("a"),
            Payload::Tombstone,
            1_000,
        );
        assert!(all_tombstones(&o));
        assert!(!purgeable(&o, 1_999, 1_000));
        assert!(purgeable(&o, 2_000, 1_000));
        assert!(!purgeable(&Object::new(), u64::MAX, 0));
        // An expired but unconverted value is not a tombstone yet.
        assert!(!purgeable(&expiring("a", 5, 1), u64::MAX, 0));
    }

    #[test]
    fn a_lone_node_drops_expired_values_at_once_and_tombstones_after_the_grace() {
        let o = expiring("a", 100, 10);
        assert!(!lone_collectible(&o, 99, 1_000));
        assert!(lone_collectible(&o, 100, 1_000));
        let t = expire(&o, 100).expect("expired");
        assert!(!lone_collectible(&t, 1_099, 1_000));
        assert!(lone_collectible(&t, 1_100, 1_000));
    }
}
