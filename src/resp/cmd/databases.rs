//! SELECT, MOVE and COPY: the commands that reach across databases.
//!
//! A database is a namespace of keys (see `resp::database`); its keys are
//! replicated like any other, so every database works on every node of a
//! cluster (Redis Cluster itself only has database 0).

use super::rename::{remove, write_copy};
use super::strings::read;
use super::{CmdResult, is, parse_i64, syntax_error};
use crate::kv::Kv;
use crate::resp::database::InDb;
use crate::resp::reply::Reply;
use crate::resp::session::{ServerState, Session};
use bytes::Bytes;

/// Whether this file runs `name` (of the `generic` group).
pub fn handles(name: &str) -> bool {
    matches!(name, "move" | "copy")
}

/// A database index argument, checked against `--databases`.
fn parse_db(server: &ServerState, arg: &[u8]) -> Result<u8, Reply> {
    let db = parse_i64(arg)?;
    usize::try_from(db)
        .ok()
        .filter(|&db| db < server.databases())
        .and_then(|db| u8::try_from(db).ok())
        .ok_or_else(|| Reply::err("DB index is out of range"))
}

/// Runs SELECT, MOVE or COPY on the whole store `kv`.
pub async fn run<K: Kv>(
    kv: &K,
    server: &ServerState,
    session: &mut Session,
    name: &str,
    args: &[Bytes],
) -> CmdResult {
    match name {
        "select" => {
            session.db = parse_db(server, &args[1])?;
            Ok(Reply::ok())
        }
        "move" => {
            let target = parse_db(server, &args[2])?;
            if target == session.db {
                return Err(Reply::err("source and destination objects are the same"));
            }
            let here = InDb::new(kv, session.db);
            let Some(value) = read(&here, args[1].clone()).await? else {
                return Ok(Reply::Int(0));
            };
            let there = InDb::new(kv, target);
            if !write_copy(&there, args[1].clone(), value, true).await? {
                return Ok(Reply::Int(0));
            }
            remove(&here, args[1].clone()).await?;
            Ok(Reply::Int(1))
        }
        "copy" => {
            let mut target = session.db;
            let mut replace = false;
            let mut rest = args[3..].iter();
            while let Some(arg) = rest.next() {
                if is(arg, "REPLACE") {
                    replace = true;
                } else if is(arg, "DB") {
                    let db = rest.next().ok_or_else(syntax_error)?;
                    target = parse_db(server, db)?;
                } else {
                    return Err(syntax_error());
                }
            }
            let (src, dst) = (args[1].clone(), args[2].clone());
            if target == session.db && src == dst {
                return Err(Reply::err("source and destination objects are the same"));
            }
            let Some(value) = read(&InDb::new(kv, session.db), src).await? else {
                return Ok(Reply::Int(0));
            };
            let copied = write_copy(&InDb::new(kv, target), dst, value, !replace).await?;
            Ok(Reply::Int(copied as i64))
        }
        _ => Err(Reply::err(format!("'{name}' is not a database command"))),
    }
}
