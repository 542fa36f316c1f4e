//! Pub/Sub on one node: who is subscribed to what, and delivery of a
//! published message to them. PUBLISH reaches the other nodes' subscribers
//! by being handed to each of them (see `cmd::pubsub`); this registry only
//! knows the local connections.

use super::glob::glob_match;
use super::reply::Reply;
use bytes::Bytes;
use dashmap::DashMap;
use std::collections::{BTreeSet, HashMap};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Messages a subscriber may have waiting before it counts as too slow and
/// is disconnected (Redis's `client-output-buffer-limit pubsub`).
pub const SUBSCRIBER_BACKLOG: usize = 100_000;

/// Which kind of subscription a message matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// SUBSCRIBE.
    Channel,
    /// PSUBSCRIBE.
    Pattern,
    /// SSUBSCRIBE.
    Shard,
}

/// A message on its way to one subscriber: the push frame it receives.
pub type Delivery = Reply;

/// A connection's side of its subscriptions.
#[derive(Debug)]
pub struct Subscriber {
    /// What the registry delivers to.
    pub tx: mpsc::Sender<Delivery>,
    /// Where the connection reads its deliveries.
    pub rx: mpsc::Receiver<Delivery>,
    /// SUBSCRIBE'd channels.
    pub channels: BTreeSet<Bytes>,
    /// PSUBSCRIBE'd patterns.
    pub patterns: BTreeSet<Bytes>,
    /// SSUBSCRIBE'd shard channels.
    pub shard_channels: BTreeSet<Bytes>,
    /// Cancelled when the subscriber fell too far behind: the connection
    /// closes, as Redis closes it.
    pub evicted: CancellationToken,
}

impl Default for Subscriber {
    fn default() -> Self {
        let (tx, rx) = mpsc::channel(SUBSCRIBER_BACKLOG);
        Subscriber {
            tx,
            rx,
            channels: BTreeSet::new(),
            patterns: BTreeSet::new(),
            shard_channels: BTreeSet::new(),
            evicted: CancellationToken::new(),
        }
    }
}

impl Subscriber {
    /// Subscriptions of every kind (what (UN)SUBSCRIBE replies count).
    pub fn count(&self) -> usize {
        self.channels.len() + self.patterns.len() + self.shard_channels.len()
    }

    /// The set of one kind.
    pub fn of(&mut self, kind: Kind) -> &mut BTreeSet<Bytes> {
        match kind {
            Kind::Channel => &mut self.channels,
            Kind::Pattern => &mut self.patterns,
            Kind::Shard => &mut self.shard_channels,
        }
    }
}

/// Where one subscriber's deliveries go, and how to evict it.
#[derive(Debug, Clone)]
pub struct Inbox {
    tx: mpsc::Sender<Delivery>,
    evicted: CancellationToken,
}

impl Subscriber {
    /// The handle the registry delivers through.
    pub fn inbox(&self) -> Inbox {
        Inbox {
            tx: self.tx.clone(),
            evicted: self.evicted.clone(),
        }
    }
}

type Subscribers = HashMap<u64, Inbox>;

/// Every subscription of this node's connections.
#[derive(Debug, Default)]
pub struct PubSub {
    channels: DashMap<Bytes, Subscribers>,
    patterns: DashMap<Bytes, Subscribers>,
    shard_channels: DashMap<Bytes, Subscribers>,
}

impl PubSub {
    fn table(&self, kind: Kind) -> &DashMap<Bytes, Subscribers> {
        match kind {
            Kind::Channel => &self.channels,
            Kind::Pattern => &self.patterns,
            Kind::Shard => &self.shard_channels,
        }
    }

    /// Subscribes client `id` to `name`.
    pub fn subscribe(&self, kind: Kind, name: Bytes, id: u64, inbox: Inbox) {
        self.table(kind).entry(name).or_default().insert(id, inbox);
    }

    /// Drops client `id`'s subscription to `name`.
    pub fn unsubscribe(&self, kind: Kind, name: &Bytes, id: u64) {
        let table = self.table(kind);
        if let Some(mut subs) = table.get_mut(name) {
            subs.remove(&id);
        }
        table.remove_if(name, |_, subs| subs.is_empty());
    }

    /// Delivers `message` to this node's subscribers of `channel` (and of
    /// patterns matching it); returns how many received it. A subscriber
    /// too far behind loses its subscription instead of stalling the
    /// publisher: its connection sees its delivery channel close.
    pub fn publish(&self, shard: bool, channel: &Bytes, message: &Bytes) -> usize {
        let mut received = 0;
        let mut too_slow = Vec::new();
        let mut deliver = |inbox: &Inbox, id: u64, frame: Reply| match inbox.tx.try_send(frame) {
            Ok(()) => received += 1,
            Err(mpsc::error::TrySendError::Full(_)) => {
                inbox.evicted.cancel();
                too_slow.push(id);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        };
        let kind = if shard { Kind::Shard } else { Kind::Channel };
        let word = if shard { "smessage" } else { "message" };
        if let Some(subs) = self.table(kind).get(channel) {
            for (id, tx) in subs.iter() {
                let frame = Reply::Push(vec![
                    Reply::bulk(word),
                    Reply::Bulk(channel.clone()),
                    Reply::Bulk(message.clone()),
                ]);
                deliver(tx, *id, frame);
            }
        }
        if !shard {
            for entry in self.patterns.iter() {
                if !glob_match(entry.key(), channel) {
                    continue;
                }
                for (id, tx) in entry.value().iter() {
                    let frame = Reply::Push(vec![
                        Reply::bulk("pmessage"),
                        Reply::Bulk(entry.key().clone()),
                        Reply::Bulk(channel.clone()),
                        Reply::Bulk(message.clone()),
                    ]);
                    deliver(tx, *id, frame);
                }
            }
        }
        for id in too_slow {
            self.drop_client(id);
        }
        received
    }

    /// Forgets every subscription of client `id`.
    pub fn drop_client(&self, id: u64) {
        for table in [&self.channels, &self.patterns, &self.shard_channels] {
            table.retain(|_, subs| {
                subs.remove(&id);
                !subs.is_empty()
            });
        }
    }

    /// Channels (or shard channels) with subscribers, matching `pattern`.
    pub fn active(&self, shard: bool, pattern: Option<&[u8]>) -> Vec<Bytes> {
        let table = self.table(if shard { Kind::Shard } else { Kind::Channel });
        let mut names: Vec<Bytes> = table
            .iter()
            .map(|e| e.key().clone())
            .filter(|name| pattern.is_none_or(|p| glob_match(p, name)))
            .collect();
        names.sort();
        names
    }

    /// Subscribers of `channel`.
    pub fn subscribers(&self, shard: bool, channel: &Bytes) -> usize {
        let table = self.table(if shard { Kind::Shard } else { Kind::Channel });
        table.get(channel).map_or(0, |subs| subs.len())
    }

    /// Patterns subscribed to (by anyone).
    pub fn pattern_count(&self) -> usize {
        self.patterns.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_reaches_channel_and_pattern_subscribers_once_each() {
        let pubsub = PubSub::default();
        let mut a = Subscriber::default();
        let mut b = Subscriber::default();
        pubsub.subscribe(Kind::Channel, Bytes::from("news"), 1, a.inbox());
        pubsub.subscribe(Kind::Pattern, Bytes::from("n*"), 2, b.inbox());
        pubsub.subscribe(Kind::Pattern, Bytes::from("x*"), 2, b.inbox());
        assert_eq!(
            pubsub.publish(false, &Bytes::from("news"), &Bytes::from("hi")),
            2
        );
        assert!(matches!(a.rx.try_recv(), Ok(Reply::Push(f)) if f.len() == 3));
        assert!(matches!(b.rx.try_recv(), Ok(Reply::Push(f)) if f.len() == 4));
        assert!(b.rx.try_recv().is_err(), "x* does not match");
        // Shard channels are their own namespace.
        assert_eq!(
            pubsub.publish(true, &Bytes::from("news"), &Bytes::from("hi")),
            0
        );
        pubsub.unsubscribe(Kind::Channel, &Bytes::from("news"), 1);
        assert_eq!(pubsub.active(false, None), Vec::<Bytes>::new());
        assert_eq!(pubsub.pattern_count(), 2);
        pubsub.drop_client(2);
        assert_eq!(pubsub.pattern_count(), 0);
    }
}
