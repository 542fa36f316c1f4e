//! Blocking list pops (BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP).
//!
//! A blocked client does not hold anything while it waits: it tries its
//! command once (as the non-blocking pop would, serialised at the key's
//! first healthy preference-list node), and when every key was empty it
//! waits to be woken and tries again. A push on this node wakes it at
//! once; a push on another node reaches it through that node's
//! announcement of the keys it pushed to (see [`announce_ready_keys`]).
//! Between wake-ups it retries every [`POLL`] anyway, so a push that came
//! in by hinted handoff, anti-entropy or during a partition is found too.
//! Waiters are woken together and race for the element: one wins, the
//! others wait again (Redis serves them first come, first served; dynkv
//! does not promise an order).

use super::cmd::{CommandSpec, parse_timeout, run_once};
use super::forward;
use super::reply::Reply;
use super::session::{ServerState, Session};
use crate::kv::Kv;
use bytes::Bytes;
use dashmap::DashMap;
use parking_lot::Mutex;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// How often a blocked client retries without being woken.
const POLL: Duration = Duration::from_millis(1000);

/// The commands that block.
pub fn is_blocking(name: &str) -> bool {
    matches!(name, "blpop" | "brpop" | "blmove" | "brpoplpush" | "blmpop")
}

/// Keys clients wait on, and the keys pushed to that other nodes have not
/// been told about yet.
#[derive(Default)]
pub struct KeyWaiters {
    waiting: DashMap<(u8, Bytes), Arc<Notify>>,
    blocked: AtomicUsize,
    unannounced: Mutex<HashSet<(u8, Bytes)>>,
    announce: Notify,
}

impl std::fmt::Debug for KeyWaiters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyWaiters")
            .field("keys", &self.waiting.len())
            .field("blocked", &self.blocked_clients())
            .finish()
    }
}

impl KeyWaiters {
    /// Clients blocked now (INFO `blocked_clients`).
    pub fn blocked_clients(&self) -> usize {
        self.blocked.load(Ordering::Relaxed)
    }

    /// Something was pushed to `key` of `db` through this node: wakes the
    /// clients here that wait on it and queues it for the other nodes.
    pub fn pushed(&self, db: u8, key: &Bytes) {
        self.wake(db, key);
        let fresh = self.unannounced.lock().insert((db, key.clone()));
        if fresh {
            self.announce.notify_one();
        }
    }

    /// Wakes the clients here that wait on `key` of `db`.
    pub fn wake(&self, db: u8, key: &[u8]) {
        if self.waiting.is_empty() {
            return;
        }
        if let Some(notify) = self.waiting.get(&(db, Bytes::copy_from_slice(key))) {
            notify.notify_waiters();
        }
    }

    fn watch(&self, db: u8, keys: &[Bytes]) -> Vec<Arc<Notify>> {
        keys.iter()
            .map(|k| self.waiting.entry((db, k.clone())).or_default().clone())
            .collect()
    }

    fn forget(&self, db: u8, keys: &[Bytes]) {
        for key in keys {
            // Only the map's own handle left: nobody waits on this key.
            self.waiting
                .remove_if(&(db, key.clone()), |_, n| Arc::strong_count(n) == 1);
        }
    }
}

/// Tells the other members, in batches, which keys were pushed to here,
/// so their blocked clients try again at once.
pub async fn announce_ready_keys<K: Kv + 'static>(
    kv: Arc<K>,
    server: Arc<ServerState>,
    stop: CancellationToken,
) {
    let waiters = &server.key_waiters;
    loop {
        tokio::select! {
            _ = waiters.announce.notified() => {}
            _ = stop.cancelled() => return,
        }
        let keys: Vec<(u8, Bytes)> = std::mem::take(&mut *waiters.unannounced.lock())
            .into_iter()
            .collect();
        if !keys.is_empty() {
            forward::announce_ready(&*kv, keys).await;
        }
    }
}

/// What a blocking command waits on, and what it answers on timeout.
struct Wait {
    keys: Vec<Bytes>,
    timeout: Option<Duration>,
    timed_out: Reply,
}

fn wait_of(spec: &CommandSpec, args: &[Bytes]) -> Result<Wait, Reply> {
    let last = args.len() - 1;
    let (keys, timeout_arg, timed_out) = match spec.name {
        "blpop" | "brpop" => (args[1..last].to_vec(), &args[last], Reply::NullArray),
        "blmove" => (vec![args[1].clone()], &args[5], Reply::Null),
        "brpoplpush" => (vec![args[1].clone()], &args[3], Reply::Null),
        // BLMPOP timeout numkeys key [key ...] LEFT|RIGHT [COUNT n]: the
        // single attempt checks the rest.
        _ => {
            let n = super::cmd::parse_i64(&args[2]).unwrap_or(0).max(0) as usize;
            let keys = args
                .get(3..3usize.saturating_add(n))
                .map(<[Bytes]>::to_vec)
                .unwrap_or_default();
            (keys, &args[1], Reply::NullArray)
        }
    };
    Ok(Wait {
        keys,
        timeout: parse_timeout(timeout_arg)?,
        timed_out,
    })
}

/// Runs a blocking command for a client connection.
pub async fn run<K: Kv>(
    kv: &K,
    server: &ServerState,
    session: &mut Session,
    spec: &'static CommandSpec,
    args: &[Bytes],
) -> Reply {
    let wait = match wait_of(spec, args) {
        Ok(wait) => wait,
        Err(e) => return e,
    };
    if wait.keys.is_empty() {
        // Nothing to wait on: the attempt answers (BLMPOP's numkeys error).
        return run_once(kv, server, session, spec, args).await;
    }
    let deadline = wait.timeout.map(|t| tokio::time::Instant::now() + t);
    let db = session.db;
    // Declared first so it is dropped last, also when the client goes
    // away and this future is dropped mid-wait.
    let mut blocked = Blocked {
        waiters: &server.key_waiters,
        db,
        keys: &wait.keys,
        counted: false,
    };
    loop {
        let watched = blocked.waiters.watch(db, &wait.keys);
        let woken = futures::future::select_all(
            watched
                .iter()
                .map(|n| Box::pin(n.notified()))
                .collect::<Vec<_>>(),
        );
        let reply = run_once(kv, server, session, spec, args).await;
        if !matches!(reply, Reply::Null | Reply::NullArray) {
            return reply;
        }
        blocked.count();
        let poll = tokio::time::Instant::now() + POLL;
        let until = deadline.map_or(poll, |d| d.min(poll));
        tokio::select! {
            _ = woken => {}
            _ = tokio::time::sleep_until(until) => {}
        }
        drop(watched);
        if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
            return wait.timed_out;
        }
    }
}

/// One blocked client: counted in INFO while it waits; its keys are
/// forgotten when it stops.
struct Blocked<'a> {
    waiters: &'a KeyWaiters,
    db: u8,
    keys: &'a [Bytes],
    counted: bool,
}

impl Blocked<'_> {
    fn count(&mut self) {
        if !self.counted {
            self.counted = true;
            self.waiters.blocked.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Drop for Blocked<'_> {
    fn drop(&mut self) {
        if self.counted {
            self.waiters.blocked.fetch_sub(1, Ordering::Relaxed);
        }
        self.waiters.forget(self.db, self.keys);
    }
}
