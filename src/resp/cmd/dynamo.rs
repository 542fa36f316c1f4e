//! Dynamo commands: DYN.GET / DYN.PUT / DYN.DEL (versions and contexts made
//! visible) and the admin commands (DYN.MEMBERS, DYN.RING, DYN.JOIN,
//! DYN.LEAVE, DYN.HINTS, DYN.DEBUG).

use super::{CmdResult, is, kv_error, parse_i64, syntax_error};
use crate::core::{DerivedKey, Payload, decode_context, encode_context};
use crate::kv::{AdminCommand, AdminValue, Kv, ReadOptions, WriteOptions};
use crate::resp::reply::Reply;
use bytes::Bytes;

/// Runs a DYN.* command; `context_key` signs and checks context tokens.
pub async fn run<K: Kv>(kv: &K, context_key: &DerivedKey, name: &str, args: &[Bytes]) -> CmdResult {
    match name {
        "dyn.get" => {
            let r = quorum_option(&args[2..], "R")?;
            let obj = kv
                .get(args[1].clone(), ReadOptions { r })
                .await
                .map_err(kv_error)?;
            let now = kv.now_ms();
            let values = obj
                .siblings
                .iter()
                .map(|s| match &s.payload {
                    Payload::Value { .. } | Payload::Flagged { .. } | Payload::Item { .. } => {
                        Reply::bulk_or_null(s.payload.live_data(now).cloned())
                    }
                    Payload::Tombstone => Reply::Null,
                    // A data type has no one string form: DYN.GET shows
                    // its type, and the type's own commands show the value.
                    Payload::Typed { value, .. } if s.payload.is_live(now) => {
                        Reply::bulk(format!("<{}>", value.kind().redis_name()))
                    }
                    Payload::Typed { .. } => Reply::Null,
                })
                .collect();
            Ok(Reply::Array(vec![
                Reply::bulk(encode_context(&obj.context, context_key)),
                Reply::Array(values),
            ]))
        }
        "dyn.put" | "dyn.del" => {
            let (payload, rest) = if name == "dyn.put" {
                (Payload::value(args[3].clone()), &args[4..])
            } else {
                (Payload::Tombstone, &args[3..])
            };
            // A token is client input: only one this cluster signed is used.
            let context = decode_context(&args[2], context_key).map_err(Reply::err)?;
            let w = quorum_option(rest, "W")?;
            kv.put(args[1].clone(), context, payload, WriteOptions { w })
                .await
                .map_err(kv_error)?;
            Ok(Reply::ok())
        }
        "dyn.members" => admin(kv, AdminCommand::Members).await,
        "dyn.ring" => admin(kv, AdminCommand::Ring).await,
        "dyn.hints" => admin(kv, AdminCommand::Hints).await,
        "dyn.join" => {
            let target = String::from_utf8_lossy(&args[1]).into_owned();
            admin(kv, AdminCommand::Join(target)).await
        }
        "dyn.leave" => match &args[1..] {
            [] => admin(kv, AdminCommand::Leave(None)).await,
            [node] => {
                let node = String::from_utf8_lossy(node).into_owned();
                admin(kv, AdminCommand::Leave(Some(node))).await
            }
            _ => Err(syntax_error()),
        },
        "dyn.debug" => {
            let sub = &args[1];
            if is(sub, "LOCAL") && args.len() == 3 {
                admin_with_key(
                    kv,
                    AdminCommand::LocalGet(args[2].clone()),
                    Some(context_key),
                )
                .await
            } else if is(sub, "PARTITION") {
                admin(kv, AdminCommand::Partition(args[2..].to_vec())).await
            } else if is(sub, "MERKLE") && args.len() == 3 {
                let which = String::from_utf8_lossy(&args[2]).into_owned();
                admin(kv, AdminCommand::Merkle(which)).await
            } else {
                Err(Reply::err(
                    "DYN.DEBUG subcommands: LOCAL <key> | PARTITION <args...> | MERKLE <partition>|ALL",
                ))
            }
        }
        _ => Err(Reply::err(format!("'{name}' is not a dynamo command"))),
    }
}

/// Parses an optional trailing `R n` / `W n`.
fn quorum_option(rest: &[Bytes], letter: &str) -> Result<Option<usize>, Reply> {
    match rest {
        [] => Ok(None),
        [opt, value] if is(opt, letter) => {
            let n = parse_i64(value)?;
            usize::try_from(n)
                .ok()
                .filter(|&n| n >= 1)
                .map(Some)
                .ok_or_else(|| Reply::err(format!("{letter} must be at least 1")))
        }
        _ => Err(syntax_error()),
    }
}

async fn admin<K: Kv>(kv: &K, cmd: AdminCommand) -> CmdResult {
    admin_with_key(kv, cmd, None).await
}

async fn admin_with_key<K: Kv>(
    kv: &K,
    cmd: AdminCommand,
    context_key: Option<&DerivedKey>,
) -> CmdResult {
    let value = kv.admin(cmd).await.map_err(kv_error)?;
    Ok(render(value, context_key))
}

fn render(value: AdminValue, context_key: Option<&DerivedKey>) -> Reply {
    match value {
        AdminValue::Status(s) => Reply::Simple(s),
        AdminValue::Int(i) => Reply::Int(i),
        AdminValue::Bulk(b) => Reply::Bulk(b),
        AdminValue::Null => Reply::Null,
        AdminValue::Context(vv) => match context_key {
            Some(key) => Reply::bulk(encode_context(&vv, key)),
            None => Reply::Null,
        },
        AdminValue::Array(items) => {
            Reply::Array(items.into_iter().map(|v| render(v, context_key)).collect())
        }
    }
}
