//! The messages of the simulated protocol. Objects always travel whole and
//! receivers merge them, so a lost, duplicated or late message can only
//! delay convergence, never undo it.

use crate::sim::node::{Ix, Key, Origin};
use dynkv::core::{Object, Payload, VersionVector};

/// How a PUT chooses the context it supersedes.
#[derive(Clone, Debug)]
pub enum PutCtx {
    /// The context of an earlier GET (read-modify-write), or empty.
    Given(VersionVector),
    /// "Blind" write (plain SET): the coordinator's own current context.
    Blind,
}

/// Node-to-node messages.
#[derive(Clone, Debug)]
pub enum Msg {
    ForwardPut {
        client: usize,
        req: u64,
        key: Key,
        ctx: PutCtx,
        payload: Payload,
    },
    ReplicaPut {
        op: u64,
        key: Key,
        obj: Object,
        hint_for: Option<Ix>,
    },
    PutAck {
        op: u64,
    },
    ReplicaGet {
        op: u64,
        key: Key,
        as_fallback: bool,
    },
    GetReply {
        op: u64,
        obj: Object,
    },
    Repair {
        key: Key,
        obj: Object,
        hint_for: Option<Ix>,
    },
    Handoff {
        key: Key,
        obj: Object,
    },
    HandoffAck {
        key: Key,
        obj: Object,
    },
    Ping,
    Pong,
}

#[derive(Clone, Debug)]
pub enum ClientReq {
    Put {
        client: usize,
        req: u64,
        key: Key,
        ctx: PutCtx,
        payload: Payload,
    },
    Get {
        origin: Origin,
        key: Key,
    },
}

#[derive(Clone, Debug)]
pub enum Reply {
    PutOk { write: usize },
    PutFailed,
    GetOk { key: Key, obj: Object },
    GetFailed,
}
