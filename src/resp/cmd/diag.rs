//! Diagnostics: SLOWLOG, LATENCY, MEMORY, MONITOR, shaped as Redis
//! answers them so redis-cli and dashboards read them unchanged.

use super::{CmdResult, is, kv_error, parse_i64};
use crate::kv::{Kv, LiveValue, ReadOptions};
use crate::resp::reply::Reply;
use crate::resp::session::{ServerState, Session};
use bytes::Bytes;

/// Runs a diagnostics command.
pub async fn run<K: Kv>(
    kv: &K,
    server: &ServerState,
    session: &mut Session,
    name: &str,
    args: &[Bytes],
) -> CmdResult {
    match name {
        "slowlog" => slowlog(server, args),
        "latency" => latency(server, args),
        "memory" => memory(kv, server, args).await,
        "monitor" => {
            // The connection switches to streaming after this reply.
            session.monitor = true;
            Ok(Reply::ok())
        }
        _ => Err(Reply::err(format!("'{name}' is not a diagnostics command"))),
    }
}

fn unknown_sub(cmd: &str, sub: &[u8]) -> Reply {
    Reply::err(format!(
        "unknown subcommand or wrong number of arguments for '{}'. Try {cmd} HELP.",
        String::from_utf8_lossy(sub)
    ))
}

fn help(lines: &[&str]) -> CmdResult {
    Ok(Reply::Array(
        lines.iter().map(|l| Reply::Simple((*l).into())).collect(),
    ))
}

fn slowlog(server: &ServerState, args: &[Bytes]) -> CmdResult {
    let log = &server.obs.slowlog;
    let sub = &args[1];
    match &args[2..] {
        [] if is(sub, "LEN") => Ok(Reply::Int(log.len() as i64)),
        [] if is(sub, "RESET") => {
            log.reset();
            Ok(Reply::ok())
        }
        [] | [_] if is(sub, "GET") => {
            let count = match args.get(2) {
                None => Some(10),
                Some(n) => match parse_i64(n)? {
                    -1 => None,
                    n if n < 0 => {
                        return Err(Reply::err("count should be greater than or equal to -1"));
                    }
                    n => Some(n as usize),
                },
            };
            Ok(Reply::Array(
                log.get(count)
                    .into_iter()
                    .map(|e| {
                        Reply::Array(vec![
                            Reply::Int(e.id as i64),
                            Reply::Int(e.timestamp as i64),
                            Reply::Int(e.duration_us as i64),
                            Reply::Array(e.args.into_iter().map(Reply::Bulk).collect()),
                            Reply::bulk(e.client_addr),
                            Reply::bulk(e.client_name),
                        ])
                    })
                    .collect(),
            ))
        }
        [] if is(sub, "HELP") => help(&[
            "SLOWLOG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "GET [<count>]",
            "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
            "LEN",
            "    Return the length of the slowlog.",
            "RESET",
            "    Reset the slowlog.",
        ]),
        _ => Err(unknown_sub("SLOWLOG", sub)),
    }
}

fn latency(server: &ServerState, args: &[Bytes]) -> CmdResult {
    let mon = &server.obs.latency;
    let sub = &args[1];
    let rest = &args[2..];
    if is(sub, "LATEST") && rest.is_empty() {
        Ok(Reply::Array(
            mon.latest()
                .into_iter()
                .map(|(event, t, latest, max)| {
                    Reply::Array(vec![
                        Reply::bulk(event),
                        Reply::Int(t as i64),
                        Reply::Int(latest as i64),
                        Reply::Int(max as i64),
                    ])
                })
                .collect(),
        ))
    } else if is(sub, "HISTORY") && rest.len() == 1 {
        let event = String::from_utf8_lossy(&rest[0]);
        Ok(Reply::Array(
            mon.history(&event)
                .into_iter()
                .map(|(t, ms)| Reply::Array(vec![Reply::Int(t as i64), Reply::Int(ms as i64)]))
                .collect(),
        ))
    } else if is(sub, "RESET") {
        let events: Vec<String> = rest
            .iter()
            .map(|e| String::from_utf8_lossy(e).into_owned())
            .collect();
        Ok(Reply::Int(mon.reset(&events) as i64))
    } else if is(sub, "DOCTOR") && rest.is_empty() {
        Ok(Reply::Verbatim(latency_doctor(server)))
    } else if is(sub, "HELP") && rest.is_empty() {
        help(&[
            "LATENCY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "DOCTOR",
            "    Return a human readable latency analysis report.",
            "HISTORY <event>",
            "    Return time-latency samples for the <event> class.",
            "LATEST",
            "    Return the latest latency samples for all events.",
            "RESET [<event> ...]",
            "    Reset latency data of one or more <event> classes.",
            "    (default: reset all data for all event classes)",
        ])
    } else {
        Err(unknown_sub("LATENCY", sub))
    }
}

fn latency_doctor(server: &ServerState) -> String {
    let mon = &server.obs.latency;
    if mon.threshold_ms() == 0 {
        return "I'm sorry, Dave, I can't do that. Latency monitoring is disabled in this dynkv instance. You may use \"CONFIG SET latency-monitor-threshold <milliseconds>.\" in order to enable it.\n".into();
    }
    let latest = mon.latest();
    if latest.is_empty() {
        return "Dave, no latency spike was observed during the lifetime of this dynkv instance, not in the slightest bit. I honestly think you ought to sleep tonight.\n".into();
    }
    let mut out = String::from("Latency spikes observed (event: latest ms, worst ms):\n");
    for (event, _, latest, max) in latest {
        out.push_str(&format!("- {event}: {latest} ms, worst {max} ms\n"));
    }
    out.push_str("Check SLOWLOG GET for the commands involved, INFO commandstats for their mean time, and dynkv_rpc_duration_seconds for slow replicas.\n");
    out
}

/// Approximate bytes a stored object costs beyond its key and values: the
/// record header, and per version its dot, timestamp and bookkeeping.
const OBJECT_OVERHEAD: usize = 48;
const SIBLING_OVERHEAD: usize = 40;

async fn memory<K: Kv>(kv: &K, server: &ServerState, args: &[Bytes]) -> CmdResult {
    let sub = &args[1];
    let rest = &args[2..];
    if is(sub, "USAGE") && !rest.is_empty() {
        match &rest[1..] {
            [] => {}
            [opt, n] if is(opt, "SAMPLES") => {
                parse_i64(n)?;
            }
            _ => return Err(super::syntax_error()),
        }
        let key = rest[0].clone();
        let obj = kv
            .get(key.clone(), ReadOptions::default())
            .await
            .map_err(kv_error)?;
        if LiveValue::of(&obj, kv.now_ms()).is_none() {
            return Ok(Reply::Null);
        }
        // Every version a GET would merge is stored, siblings and
        // tombstones included, with the object's causal context.
        let encoded = postcard::to_allocvec(&obj).map_or(0, |v| v.len());
        let bytes = key.len() + encoded + OBJECT_OVERHEAD + SIBLING_OVERHEAD * obj.siblings.len();
        Ok(Reply::Int(bytes as i64))
    } else if is(sub, "STATS") && rest.is_empty() {
        let (rss, peak) = server.obs.memory_now();
        let keys = kv.key_count();
        Ok(Reply::Map(vec![
            (Reply::bulk("peak.allocated"), Reply::Int(peak as i64)),
            (Reply::bulk("total.allocated"), Reply::Int(rss as i64)),
            (
                Reply::bulk("clients.normal"),
                Reply::Int(server.clients.len() as i64),
            ),
            (Reply::bulk("keys.count"), Reply::Int(keys as i64)),
            (
                Reply::bulk("keys.bytes-per-key"),
                Reply::Int(rss.checked_div(keys).unwrap_or(0) as i64),
            ),
        ]))
    } else if is(sub, "DOCTOR") && rest.is_empty() {
        Ok(Reply::Verbatim(
            "Hi Sam, I can't find any memory issue in your instance. I can only account for what occurs on this base.\n".into(),
        ))
    } else if is(sub, "HELP") && rest.is_empty() {
        help(&[
            "MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "DOCTOR",
            "    Return memory problems reports.",
            "STATS",
            "    Return information about the memory usage of the server.",
            "USAGE <key> [SAMPLES <count>]",
            "    Return memory in bytes used by <key> and its value (all stored versions).",
        ])
    } else {
        Err(unknown_sub("MEMORY", sub))
    }
}
