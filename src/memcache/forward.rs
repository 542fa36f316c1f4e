//! Conditional memcached commands run at the key's serialising node.
//!
//! They travel over the same node-to-node command channel the RESP front
//! end uses for SET NX. Both front ends' requests share one runner per
//! node: a memcached request starts with [`TAG`], which no RESP request
//! does (those start with a postcard enum index, a single byte below 0x80).

use super::command::Command;
use super::ops::{self, Session, server_error};
use super::state::MemcacheState;
use crate::kv::{CommandRunner, Kv, KvError};
use bytes::{Bytes, BytesMut};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};

/// First byte of a forwarded memcached request.
pub const TAG: u8 = 0xFE;

/// Runs `cmd` at `stored`'s serialising node and returns its reply lines;
/// `None` when that node is this one or surely did not get it (the caller
/// then runs it here, keeping the key writable through a partition).
pub async fn to_serialising_node<K: Kv>(kv: &K, stored: &Bytes, cmd: &Command) -> Option<Bytes> {
    let node = kv.serialising_node(stored)?;
    let payload = match postcard::to_extend(cmd, vec![TAG]) {
        Ok(p) => Bytes::from(p),
        Err(e) => return Some(Bytes::from(format!("SERVER_ERROR cannot forward: {e}\r\n"))),
    };
    match kv.forward_command(node, payload).await {
        Ok(reply) => Some(reply),
        Err(KvError::NotDelivered(_)) => None,
        Err(e) => Some(Bytes::from(format!("{}\r\n", server_error(&e)))),
    }
}

/// The node's one command runner: memcached requests run here, anything
/// else goes to the RESP front end's runner.
pub struct Runner<K> {
    resp: Arc<dyn CommandRunner>,
    kv: Weak<K>,
    state: Arc<MemcacheState>,
}

impl<K> Runner<K> {
    /// A runner in front of `resp` (the store held weakly: the node holds
    /// the runner).
    pub fn new(resp: Arc<dyn CommandRunner>, kv: Weak<K>, state: Arc<MemcacheState>) -> Self {
        Self { resp, kv, state }
    }
}

impl<K: Kv + 'static> CommandRunner for Runner<K> {
    fn run(&self, payload: Bytes) -> Pin<Box<dyn Future<Output = Bytes> + Send>> {
        if payload.first() != Some(&TAG) {
            return self.resp.run(payload);
        }
        let kv = self.kv.upgrade();
        let state = self.state.clone();
        Box::pin(async move {
            let Some(kv) = kv else {
                return Bytes::from_static(b"SERVER_ERROR node is shutting down\r\n");
            };
            let cmd = match postcard::from_bytes::<Command>(&payload[1..]) {
                Ok(cmd) => cmd,
                Err(e) => {
                    return Bytes::from(format!(
                        "SERVER_ERROR unreadable forwarded command: {e}\r\n"
                    ));
                }
            };
            let mut session = Session {
                authenticated: true,
                forwarded: true,
            };
            let mut out = BytesMut::new();
            ops::run(&kv, &state, &mut session, cmd, &mut out).await;
            out.freeze()
        })
    }
}
