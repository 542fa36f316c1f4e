//! Redis's conversions between command replies and Lua values, both ways.
//!
//! Replies reach Lua as RESP2 would carry them (maps and pairs flat, doubles
//! as strings), which is what scripts written for Redis expect.

use crate::resp::reply::Reply;
use bytes::Bytes;
use mlua::{Lua, Table, Value};

/// A command reply as the script sees it.
pub fn reply_to_lua(lua: &Lua, reply: Reply) -> mlua::Result<Value> {
    Ok(match reply {
        Reply::Simple(s) => Value::Table(tagged(lua, "ok", s.as_bytes())?),
        Reply::Error(s) => Value::Table(tagged(lua, "err", s.as_bytes())?),
        Reply::Int(n) => Value::Number(n as f64),
        Reply::Bulk(b) => Value::String(lua.create_string(&b)?),
        Reply::Verbatim(s) => Value::String(lua.create_string(&s)?),
        Reply::Double(d) => {
            Value::String(lua.create_string(crate::core::crdt::counter::format_double(d))?)
        }
        Reply::Null | Reply::NullArray => Value::Boolean(false),
        Reply::Array(items) | Reply::Set(items) | Reply::Push(items) | Reply::Several(items) => {
            let table = lua.create_table_with_capacity(items.len(), 0)?;
            for item in items {
                table.raw_push(reply_to_lua(lua, item)?)?;
            }
            Value::Table(table)
        }
        Reply::Map(pairs) | Reply::Pairs(pairs) => {
            let table = lua.create_table_with_capacity(pairs.len() * 2, 0)?;
            for (k, v) in pairs {
                table.raw_push(reply_to_lua(lua, k)?)?;
                table.raw_push(reply_to_lua(lua, v)?)?;
            }
            Value::Table(table)
        }
    })
}

fn tagged(lua: &Lua, field: &str, text: &[u8]) -> mlua::Result<Table> {
    let table = lua.create_table()?;
    table.raw_set(field, lua.create_string(text)?)?;
    Ok(table)
}

/// What a script returned, as the reply the client gets.
pub fn lua_to_reply(value: &Value) -> Reply {
    match value {
        Value::Nil => Reply::Null,
        Value::Boolean(true) => Reply::Int(1),
        Value::Boolean(false) => Reply::Null,
        // Redis truncates numbers to integers; a script wanting a float
        // returns it as a string.
        Value::Integer(n) => Reply::Int(*n),
        Value::Number(f) => Reply::Int(*f as i64),
        Value::String(s) => Reply::Bulk(Bytes::copy_from_slice(&s.as_bytes())),
        Value::Table(t) => table_to_reply(t),
        _ => Reply::Null,
    }
}

fn table_to_reply(table: &Table) -> Reply {
    if let Ok(Value::String(err)) = table.raw_get::<Value>("err") {
        return Reply::Error(err.to_string_lossy());
    }
    if let Ok(Value::String(ok)) = table.raw_get::<Value>("ok") {
        return Reply::Simple(ok.to_string_lossy());
    }
    // An array ends at its first nil, as Redis reads it.
    let mut items = Vec::new();
    for i in 1.. {
        match table.raw_get::<Value>(i) {
            Ok(Value::Nil) | Err(_) => break,
            Ok(v) => items.push(lua_to_reply(&v)),
        }
    }
    Reply::Array(items)
}

/// A `redis.call` argument as a command argument: strings as they are,
/// numbers spelled as Lua spells them.
pub fn lua_to_arg(value: &Value) -> Option<Bytes> {
    match value {
        Value::String(s) => Some(Bytes::copy_from_slice(&s.as_bytes())),
        Value::Integer(n) => Some(Bytes::from(n.to_string())),
        Value::Number(f) => Some(Bytes::from(number_text(*f))),
        _ => None,
    }
}

/// `%.17g` for numbers, as Lua and Redis print them; integers without a
/// fraction.
fn number_text(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e17 {
        format!("{}", f as i64)
    } else {
        format!("{f}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_round_trip_as_redis_converts_them() {
        let lua = Lua::new();
        let reply = Reply::Array(vec![
            Reply::Int(3),
            Reply::bulk("x"),
            Reply::Null,
            Reply::Simple("OK".into()),
        ]);
        let value = reply_to_lua(&lua, reply).expect("converts");
        // The nil (false) ends nothing: false is a value. The status comes
        // back as a status.
        assert_eq!(
            lua_to_reply(&value),
            Reply::Array(vec![
                Reply::Int(3),
                Reply::bulk("x"),
                Reply::Null,
                Reply::Simple("OK".into()),
            ])
        );
        let err = reply_to_lua(&lua, Reply::Error("WRONGTYPE no".into())).expect("converts");
        assert_eq!(lua_to_reply(&err), Reply::Error("WRONGTYPE no".into()));
        assert_eq!(lua_to_reply(&Value::Number(3.99)), Reply::Int(3));
        assert_eq!(lua_to_reply(&Value::Boolean(true)), Reply::Int(1));
    }

    #[test]
    fn numbers_are_spelled_like_lua() {
        assert_eq!(lua_to_arg(&Value::Number(10.0)).expect("a number"), "10");
        assert_eq!(lua_to_arg(&Value::Number(1.5)).expect("a number"), "1.5");
        assert!(lua_to_arg(&Value::Boolean(true)).is_none());
    }
}
