//! What a node does with requests: coordinating PUTs and GETs with the
//! pure core (`plan`, `PutCore`, `GetCore`, `Object::update`), serving
//! replica requests, read repair, failure detection and hinted handoff.

use crate::sim::check::{show, show_payload};
use crate::sim::node::{Ix, Key, Origin, PendingGet, PendingPut};
use crate::sim::proto::{ClientReq, Msg, PutCtx, Reply};
use crate::sim::world::{Event, World, WriteRec};
use dynkv::core::{GetCore, Payload, PutCore, QuorumStatus, plan};
use std::collections::BTreeSet;

impl World {
    // ------------------------------------------------------- coordination

    pub(crate) fn on_client_req(&mut self, me: Ix, req: ClientReq) {
        match req {
            ClientReq::Put {
                client,
                req,
                key,
                ctx,
                payload,
            } => self.forward_put(me, client, req, key, ctx, payload),
            ClientReq::Get { origin, key } => self.coordinate_get(me, origin, key),
        }
    }

    /// A PUT is coordinated by a preference-list node. The coordinator's
    /// copy must contain every write it coordinated before for the key:
    /// `Object::update` numbers the new dot from that copy, so a node that
    /// does not keep the key (or keeps it only as a hint that handoff later
    /// deletes) would hand out the same dot twice and one write would be
    /// silently dropped by merge (see
    /// `dot_numbering_needs_the_coordinators_full_history`).
    fn forward_put(
        &mut self,
        me: Ix,
        client: usize,
        req: u64,
        key: Key,
        ctx: PutCtx,
        payload: Payload,
    ) {
        let prefs = self.preference_list(&key);
        if prefs.contains(&me) {
            return self.coordinate_put(me, client, req, key, ctx, payload);
        }
        match prefs.iter().find(|&&p| self.nodes[me].up[p]) {
            Some(&coordinator) => {
                self.stats.forwards += 1;
                self.send(
                    me,
                    coordinator,
                    Msg::ForwardPut {
                        client,
                        req,
                        key,
                        ctx,
                        payload,
                    },
                );
            }
            None => self.reply(client, req, Reply::PutFailed),
        }
    }

    /// `plan()` over `me`'s failure-detector view (a node always counts
    /// itself up), as (target, owner it stands in for) pairs plus the
    /// owners left for local hints.
    fn plan_for(&self, me: Ix, key: &Key) -> (Vec<(Ix, Option<Ix>)>, Vec<Ix>) {
        let node = &self.nodes[me];
        let plan = plan(&self.walk(key), self.p.n, |id| {
            let i = self.ix[id];
            i == me || node.up[i]
        });
        let targets = plan
            .targets
            .iter()
            .map(|t| (self.ix[&t.node], t.hint_for.as_ref().map(|h| self.ix[h])))
            .collect();
        let local = plan.local_hints.iter().map(|h| self.ix[h]).collect();
        (targets, local)
    }

    /// Coordinates a PUT as a primary: the new version is made from, and
    /// stored in, this node's own copy before anything is sent, then the
    /// whole object goes to the other targets; the client hears back at W
    /// acks (the coordinator's own store counts as one).
    fn coordinate_put(
        &mut self,
        me: Ix,
        client: usize,
        req: u64,
        key: Key,
        ctx: PutCtx,
        payload: Payload,
    ) {
        let (targets, local_hints) = self.plan_for(me, &key);
        let now = self.q.now();
        let mut obj = self.nodes[me].store.get(&key).cloned().unwrap_or_default();
        let ctx = match ctx {
            PutCtx::Given(vv) => vv,
            PutCtx::Blind => obj.context.clone(),
        };
        let before = if self.trace {
            show(&obj)
        } else {
            String::new()
        };
        let dot = obj.update(&ctx, &self.ids[me], payload.clone(), now);
        self.nodes[me].store.insert(key.clone(), obj.clone());
        let write = self.writes.len();
        self.log_event(format!(
            "write #{write} {key:?} coordinated by {} from copy {before}: dot {}:{} = {}",
            self.ids[me],
            dot.node,
            dot.counter,
            show_payload(&payload)
        ));
        self.writes.push(WriteRec {
            key: key.clone(),
            dot,
            payload,
            ctx,
            acked: false,
        });

        let op = self.nodes[me].op_id();
        let mut core = PutCore::new(targets.len(), self.p.w);
        let mut waiting = BTreeSet::new();
        let mut self_target = false;
        for &(to, hint_for) in &targets {
            if to == me {
                assert!(
                    hint_for.is_none(),
                    "a primary coordinator is a primary target"
                );
                self_target = true;
                core.on_ack(self.ids[me].clone());
                continue;
            }
            if hint_for.is_some() {
                self.stats.hinted_puts += 1;
            }
            waiting.insert(to);
            let msg = Msg::ReplicaPut {
                op,
                key: key.clone(),
                obj: obj.clone(),
                hint_for,
            };
            self.send(me, to, msg);
        }
        assert!(
            self_target,
            "seed {}: coordinator not a target",
            self.p.seed
        );
        for owner in local_hints {
            self.nodes[me].apply(&key, &obj, Some(owner));
        }
        let mut pending = PendingPut {
            client,
            req,
            write,
            core,
            waiting,
            replied: false,
        };
        self.put_progress(&mut pending);
        if !pending.waiting.is_empty() {
            self.nodes[me].puts.insert(op, pending);
            let incarnation = self.nodes[me].incarnation;
            self.q.after(
                self.p.op_timeout_ms,
                Event::OpTimeout {
                    node: me,
                    incarnation,
                    op,
                },
            );
        }
    }

    /// Answers the client once the PUT quorum is decided.
    fn put_progress(&mut self, p: &mut PendingPut) {
        if p.replied {
            return;
        }
        let reply = match p.core.status() {
            QuorumStatus::Pending => return,
            QuorumStatus::Reached => Reply::PutOk { write: p.write },
            QuorumStatus::Failed { .. } => Reply::PutFailed,
        };
        p.replied = true;
        self.reply(p.client, p.req, reply);
    }

    fn coordinate_get(&mut self, me: Ix, origin: Origin, key: Key) {
        let (targets, _local_hints) = self.plan_for(me, &key);
        let op = self.nodes[me].op_id();
        let mut core = GetCore::new(targets.len(), self.p.r);
        let mut waiting = BTreeSet::new();
        for &(to, hint_for) in &targets {
            if to == me {
                let obj = self.nodes[me].read(&key, hint_for.is_some());
                core.on_reply(self.ids[me].clone(), obj);
            } else {
                waiting.insert(to);
                let msg = Msg::ReplicaGet {
                    op,
                    key: key.clone(),
                    as_fallback: hint_for.is_some(),
                };
                self.send(me, to, msg);
            }
        }
        let mut pending = PendingGet {
            origin,
            key,
            core,
            targets,
            waiting,
            replied: false,
        };
        self.get_progress(me, &mut pending, false);
        if pending.waiting.is_empty() {
            self.get_finish(me, pending);
        } else {
            self.nodes[me].gets.insert(op, pending);
            let incarnation = self.nodes[me].incarnation;
            self.q.after(
                self.p.op_timeout_ms,
                Event::OpTimeout {
                    node: me,
                    incarnation,
                    op,
                },
            );
        }
    }

    /// Answers the GET's origin once the read quorum is decided (or, with
    /// `final_call`, when time is up).
    fn get_progress(&mut self, me: Ix, g: &mut PendingGet, final_call: bool) {
        if g.replied {
            return;
        }
        let status = if final_call {
            g.core.timed_out()
        } else {
            g.core.status()
        };
        let ok = match status {
            QuorumStatus::Pending => return,
            QuorumStatus::Reached => true,
            QuorumStatus::Failed { .. } => false,
        };
        g.replied = true;
        let merged = g.core.merged();
        if ok {
            self.stats.max_siblings = self.stats.max_siblings.max(merged.siblings.len());
        }
        match g.origin {
            Origin::Client { client, req } => {
                let reply = if ok {
                    Reply::GetOk {
                        key: g.key.clone(),
                        obj: merged.clone(),
                    }
                } else {
                    Reply::GetFailed
                };
                self.reply(client, req, reply);
            }
            Origin::Sweep => {}
            Origin::Probe => {
                // A failed probe records nothing; the check counts answers.
                if ok {
                    let winner = merged.winner().cloned();
                    self.probes
                        .entry(g.key.clone())
                        .or_default()
                        .push((me, winner));
                }
            }
        }
    }

    /// Read repair: every replica that answered with less than the merged
    /// object gets the merged object.
    fn get_finish(&mut self, me: Ix, mut g: PendingGet) {
        self.get_progress(me, &mut g, true);
        let merged = g.core.merged().clone();
        for stale in g.core.stale_replicas() {
            let s = self.ix[&stale];
            let hint_for = g
                .targets
                .iter()
                .find(|(t, _)| *t == s)
                .and_then(|(_, h)| *h);
            self.stats.repairs += 1;
            if s == me {
                self.nodes[me].apply(&g.key, &merged, hint_for);
            } else {
                let msg = Msg::Repair {
                    key: g.key.clone(),
                    obj: merged.clone(),
                    hint_for,
                };
                self.send(me, s, msg);
            }
        }
    }

    pub(crate) fn on_timeout(&mut self, me: Ix, op: u64) {
        if let Some(mut p) = self.nodes[me].puts.remove(&op) {
            for peer in std::mem::take(&mut p.waiting) {
                // Failure detection: no answer in time means down.
                self.nodes[me].up[peer] = false;
                p.core.on_failure(self.ids[peer].clone());
            }
            if !p.replied {
                p.replied = true;
                let reply = match p.core.timed_out() {
                    QuorumStatus::Reached => Reply::PutOk { write: p.write },
                    _ => Reply::PutFailed,
                };
                self.reply(p.client, p.req, reply);
            }
        }
        if let Some(mut g) = self.nodes[me].gets.remove(&op) {
            for peer in std::mem::take(&mut g.waiting) {
                self.nodes[me].up[peer] = false;
                g.core.on_failure(self.ids[peer].clone());
            }
            self.get_finish(me, g);
        }
    }

    // ------------------------------------------------------------ replica

    pub(crate) fn on_msg(&mut self, me: Ix, from: Ix, msg: Msg) {
        match msg {
            Msg::ForwardPut {
                client,
                req,
                key,
                ctx,
                payload,
            } => self.coordinate_put(me, client, req, key, ctx, payload),
            Msg::ReplicaPut {
                op,
                key,
                obj,
                hint_for,
            } => {
                self.nodes[me].apply(&key, &obj, hint_for);
                self.send(me, from, Msg::PutAck { op });
            }
            Msg::PutAck { op } => {
                if let Some(mut p) = self.nodes[me].puts.remove(&op) {
                    p.waiting.remove(&from);
                    p.core.on_ack(self.ids[from].clone());
                    self.put_progress(&mut p);
                    if !p.waiting.is_empty() {
                        self.nodes[me].puts.insert(op, p);
                    }
                }
            }
            Msg::ReplicaGet {
                op,
                key,
                as_fallback,
            } => {
                let obj = self.nodes[me].read(&key, as_fallback);
                self.send(me, from, Msg::GetReply { op, obj });
            }
            Msg::GetReply { op, obj } => {
                if let Some(mut g) = self.nodes[me].gets.remove(&op) {
                    g.waiting.remove(&from);
                    g.core.on_reply(self.ids[from].clone(), obj);
                    self.get_progress(me, &mut g, false);
                    if g.waiting.is_empty() {
                        self.get_finish(me, g);
                    } else {
                        self.nodes[me].gets.insert(op, g);
                    }
                }
            }
            Msg::Repair { key, obj, hint_for } => self.nodes[me].apply(&key, &obj, hint_for),
            Msg::Handoff { key, obj } => {
                self.nodes[me].apply(&key, &obj, None);
                self.send(me, from, Msg::HandoffAck { key, obj });
            }
            Msg::HandoffAck { key, obj } => {
                // Delete only if the owner now has everything the hint
                // holds: the hint may have grown since this copy was sent.
                let node = &mut self.nodes[me];
                if let Some(held) = node.hints.get_mut(&from) {
                    if held.get(&key).is_some_and(|h| obj.descends(h)) {
                        held.remove(&key);
                        self.stats.handoffs_done += 1;
                    }
                    if held.is_empty() {
                        node.hints.remove(&from);
                    }
                }
            }
            Msg::Ping => self.send(me, from, Msg::Pong),
            Msg::Pong => {}
        }
    }

    pub(crate) fn on_tick(&mut self, me: Ix) {
        let incarnation = self.nodes[me].incarnation;
        self.q.after(
            self.p.tick_ms,
            Event::Tick {
                node: me,
                incarnation,
            },
        );
        let node = &mut self.nodes[me];
        node.ticks += 1;
        if node.ticks.is_multiple_of(10) {
            node.sync();
        }
        let down: Vec<Ix> = (0..self.p.nodes)
            .filter(|&p| p != me && !node.up[p])
            .collect();
        let mut handoffs = Vec::new();
        if node.ticks.is_multiple_of(3) {
            for (&owner, keys) in &node.hints {
                if node.up[owner] {
                    for (key, obj) in keys {
                        handoffs.push((owner, key.clone(), obj.clone()));
                    }
                }
            }
        }
        for peer in down {
            self.send(me, peer, Msg::Ping);
        }
        for (owner, key, obj) in handoffs {
            self.send(me, owner, Msg::Handoff { key, obj });
        }
    }
}
