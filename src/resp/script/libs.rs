//! The libraries Redis gives scripts besides `redis.call`: the helpers of
//! the `redis` table, `cjson` and `bit`.

use super::cache::sha1_hex;
use mlua::{Lua, LuaSerdeExt, Table, Value};

/// Fills `redis` with its helper functions and constants.
pub fn install_redis_helpers(lua: &Lua, redis: &Table) -> mlua::Result<()> {
    redis.set(
        "sha1hex",
        lua.create_function(|_, s: mlua::LuaString| Ok(sha1_hex(&s.as_bytes())))?,
    )?;
    // `{err = s}` and `{ok = s}`: what an error or status reply is in Lua.
    for (name, field) in [("error_reply", "err"), ("status_reply", "ok")] {
        redis.set(
            name,
            lua.create_function(move |lua, s: mlua::LuaString| {
                let t = lua.create_table()?;
                t.set(field, s)?;
                Ok(t)
            })?,
        )?;
    }
    redis.set(
        "log",
        lua.create_function(|_, (level, message): (i64, mlua::LuaString)| {
            tracing::info!(level, message = %message.to_string_lossy(), "script log");
            Ok(())
        })?,
    )?;
    redis.set(
        "setresp",
        lua.create_function(|_, version: i64| match version {
            2 | 3 => Ok(()),
            _ => Err(mlua::Error::runtime("RESP version must be 2 or 3.")),
        })?,
    )?;
    // Replication is by effects already (each write is a versioned write).
    redis.set("replicate_commands", lua.create_function(|_, ()| Ok(true))?)?;
    redis.set("set_repl", lua.create_function(|_, _: i64| Ok(()))?)?;
    for (name, value) in [
        ("LOG_DEBUG", 0),
        ("LOG_VERBOSE", 1),
        ("LOG_NOTICE", 2),
        ("LOG_WARNING", 3),
        ("REPL_NONE", 0),
        ("REPL_AOF", 1),
        ("REPL_SLAVE", 2),
        ("REPL_REPLICA", 2),
        ("REPL_ALL", 3),
    ] {
        redis.set(name, value)?;
    }
    Ok(())
}

/// `cjson.encode` / `cjson.decode` / `cjson.null`.
pub fn install_cjson(lua: &Lua) -> mlua::Result<()> {
    let cjson = lua.create_table()?;
    cjson.set(
        "encode",
        lua.create_function(|lua, value: Value| {
            let json: serde_json::Value = lua
                .from_value(value)
                .map_err(|e| mlua::Error::runtime(format!("Cannot serialise: {e}")))?;
            serde_json::to_string(&json).map_err(mlua::Error::runtime)
        })?,
    )?;
    cjson.set(
        "decode",
        lua.create_function(|lua, text: mlua::LuaString| {
            let json: serde_json::Value =
                serde_json::from_slice(&text.as_bytes()).map_err(|e| {
                    mlua::Error::runtime(format!("Expected value but found invalid token: {e}"))
                })?;
            lua.to_value(&json)
        })?,
    )?;
    cjson.set("null", lua.null())?;
    lua.globals().set("cjson", cjson)
}

/// The LuaBitOp `bit` library on 32-bit integers, as Redis ships it.
pub fn install_bit(lua: &Lua) -> mlua::Result<()> {
    fn tobit(n: f64) -> i32 {
        // LuaBitOp wraps modulo 2^32.
        (n as i64) as i32
    }
    let bit = lua.create_table()?;
    bit.set("tobit", lua.create_function(|_, n: f64| Ok(tobit(n)))?)?;
    bit.set("bnot", lua.create_function(|_, n: f64| Ok(!tobit(n)))?)?;
    type Fold = fn(i32, i32) -> i32;
    for (name, fold) in [
        ("band", (|a, b| a & b) as Fold),
        ("bor", |a, b| a | b),
        ("bxor", |a, b| a ^ b),
    ] {
        bit.set(
            name,
            lua.create_function(move |_, ns: mlua::Variadic<f64>| {
                let mut it = ns.iter().map(|&n| tobit(n));
                let first = it.next().unwrap_or(0);
                Ok(it.fold(first, fold))
            })?,
        )?;
    }
    type Shift = fn(i32, u32) -> i32;
    for (name, shift) in [
        ("lshift", (|a: i32, s| a.wrapping_shl(s)) as Shift),
        ("rshift", |a, s| ((a as u32).wrapping_shr(s)) as i32),
        ("arshift", |a, s| a.wrapping_shr(s)),
        ("rol", |a, s| a.rotate_left(s)),
        ("ror", |a, s| a.rotate_right(s)),
    ] {
        bit.set(
            name,
            lua.create_function(move |_, (n, s): (f64, f64)| {
                Ok(shift(tobit(n), (tobit(s) & 31) as u32))
            })?,
        )?;
    }
    bit.set(
        "tohex",
        lua.create_function(|_, (n, digits): (f64, Option<i64>)| {
            let digits = digits.unwrap_or(8);
            let width = digits.unsigned_abs().clamp(1, 8) as usize;
            let v = tobit(n) as u32;
            let masked = if width == 8 {
                v
            } else {
                v & ((1u32 << (4 * width)) - 1)
            };
            Ok(if digits < 0 {
                format!("{masked:0width$X}")
            } else {
                format!("{masked:0width$x}")
            })
        })?,
    )?;
    lua.globals().set("bit", bit)
}
