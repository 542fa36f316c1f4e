//! Runs one script to its end on the thread that owns its Lua state.

use super::convert::{lua_to_arg, lua_to_reply, reply_to_lua};
use super::libs;
use crate::resp::reply::Reply;
use bytes::Bytes;
use mlua::{Function, HookTriggers, Lua, LuaOptions, MultiValue, StdLib, Value, VmState};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};

/// A script's Lua heap may not outgrow this: a runaway script fails with
/// an error instead of taking the node's memory.
const MEMORY_LIMIT: usize = 512 << 20;

/// How many VM instructions run between checks for SCRIPT KILL.
const KILL_CHECK_EVERY: u32 = 10_000;

/// `redis.call` is `redis.pcall` that raises the error reply it got
/// (keeping the line it was called from for the final error), and the
/// globals are closed so a script cannot leak state into the next one or
/// mistype a variable silently.
const PRELUDE: &str = r#"
local caller_line = ...
local raw_pcall = redis.pcall
redis.call = function(...)
  local reply = raw_pcall(...)
  if type(reply) == 'table' and reply.err ~= nil then
    error({err = reply.err, line = caller_line()}, 0)
  end
  return reply
end
setmetatable(_G, {
  __newindex = function(_, name)
    error("Attempt to modify a readonly table", 2)
  end,
  __index = function(_, name)
    error("Script attempted to access nonexistent global variable '" .. tostring(name) .. "'", 2)
  end,
})
"#;

const RUNNER: &str = "return function(f) return pcall(f) end";

/// A script in progress, as SCRIPT KILL sees it.
#[derive(Debug)]
pub struct RunningScript {
    killed: AtomicBool,
    wrote: AtomicBool,
    started: Instant,
}

impl Default for RunningScript {
    fn default() -> Self {
        RunningScript {
            killed: AtomicBool::new(false),
            wrote: AtomicBool::new(false),
            started: Instant::now(),
        }
    }
}

impl RunningScript {
    /// Asks the script to stop at its next check.
    pub fn kill(&self) {
        self.killed.store(true, Ordering::Relaxed);
    }

    /// Whether SCRIPT KILL (or its client going away) stopped it.
    pub fn is_killed(&self) -> bool {
        self.killed.load(Ordering::Relaxed)
    }

    /// Records that it has written (it can no longer be killed: its
    /// effects would be half applied).
    pub fn mark_wrote(&self) {
        self.wrote.store(true, Ordering::Relaxed);
    }

    /// Whether it has run a write command.
    pub fn has_written(&self) -> bool {
        self.wrote.load(Ordering::Relaxed)
    }

    /// How long it has been running.
    pub fn elapsed_ms(&self) -> u128 {
        self.started.elapsed().as_millis()
    }
}

/// One `redis.call` on its way to the connection that runs the script.
#[derive(Debug)]
pub struct ScriptCall {
    /// The command and its arguments.
    pub args: Vec<Bytes>,
    /// Where its reply goes.
    pub reply: oneshot::Sender<Reply>,
}

/// Everything a script run needs.
#[derive(Debug)]
pub struct ScriptJob {
    /// Its digest (named in error replies).
    pub sha: String,
    /// Its source, shebang removed.
    pub body: Vec<u8>,
    /// KEYS.
    pub keys: Vec<Bytes>,
    /// ARGV.
    pub argv: Vec<Bytes>,
    /// Its SCRIPT KILL handle.
    pub running: Arc<RunningScript>,
}

/// Whether `body` compiles (SCRIPT LOAD refuses scripts that do not).
pub fn check_compiles(body: &[u8]) -> Result<(), Reply> {
    let lua = Lua::new_with(StdLib::NONE, LuaOptions::default())
        .map_err(|e| Reply::err(format!("Error creating the script engine: {e}")))?;
    lua.load(body)
        .set_name("@user_script")
        .into_function()
        .map(|_| ())
        .map_err(|e| compile_error(&e))
}

fn compile_error(e: &mlua::Error) -> Reply {
    Reply::err(format!(
        "Error compiling script (new function): {}",
        message_of(e)
    ))
}

fn message_of(e: &mlua::Error) -> String {
    match e {
        mlua::Error::SyntaxError { message, .. } => message.clone(),
        mlua::Error::RuntimeError(message) => message.clone(),
        mlua::Error::MemoryError(message) => message.clone(),
        mlua::Error::CallbackError { cause, .. } => message_of(cause),
        other => other.to_string(),
    }
}

/// Runs `job`, sending each `redis.call` down `calls`; returns the
/// script's reply (an error reply if it failed). Blocks: call it from a
/// blocking thread.
pub fn run(job: ScriptJob, calls: mpsc::Sender<ScriptCall>) -> Reply {
    let running = job.running.clone();
    let reply = match run_in_lua(job, calls) {
        Ok(reply) => reply,
        Err(e) => Reply::err(format!("Error running script: {}", message_of(&e))),
    };
    if running.is_killed() {
        return Reply::err("Script killed by user with SCRIPT KILL...");
    }
    reply
}

fn run_in_lua(job: ScriptJob, calls: mpsc::Sender<ScriptCall>) -> mlua::Result<Reply> {
    let lua = Lua::new_with(
        StdLib::TABLE | StdLib::STRING | StdLib::MATH,
        LuaOptions::default(),
    )?;
    lua.set_memory_limit(MEMORY_LIMIT)?;
    let globals = lua.globals();
    for unsafe_global in ["loadfile", "dofile", "print"] {
        globals.set(unsafe_global, Value::Nil)?;
    }
    let redis = lua.create_table()?;
    libs::install_redis_helpers(&lua, &redis)?;
    redis.set("pcall", call_function(&lua, calls)?)?;
    globals.set("redis", redis)?;
    libs::install_cjson(&lua)?;
    libs::install_bit(&lua)?;
    globals.set("KEYS", string_table(&lua, &job.keys)?)?;
    globals.set("ARGV", string_table(&lua, &job.argv)?)?;
    // The innermost frame of the user's script: the line that called.
    let caller_line = lua.create_function(|lua, ()| {
        Ok((1..16).find_map(|level| {
            lua.inspect_stack(level, |frame| {
                (frame.source().source.as_deref() == Some("@user_script"))
                    .then(|| frame.current_line())
                    .flatten()
            })
            .flatten()
        }))
    })?;
    lua.load(PRELUDE)
        .set_name("=prelude")
        .call::<()>(caller_line)?;
    let runner: Function = lua.load(RUNNER).set_name("=runner").eval()?;
    let running = job.running.clone();
    lua.set_hook(
        HookTriggers::new().every_nth_instruction(KILL_CHECK_EVERY),
        move |_, _| {
            if running.is_killed() {
                Err(mlua::Error::runtime(
                    "Script killed by user with SCRIPT KILL...",
                ))
            } else {
                Ok(VmState::Continue)
            }
        },
    )?;
    let script = match lua.load(&job.body).set_name("@user_script").into_function() {
        Ok(f) => f,
        Err(e) => return Ok(compile_error(&e)),
    };
    let (ok, value): (bool, Value) = runner.call(script)?;
    if ok {
        return Ok(lua_to_reply(&value));
    }
    Ok(raised_error(&job.sha, &value))
}

/// `redis.pcall`: the command goes to the connection's task, which runs it
/// and answers on a one-shot channel; this thread waits for the answer.
fn call_function(lua: &Lua, calls: mpsc::Sender<ScriptCall>) -> mlua::Result<Function> {
    lua.create_function(move |lua, args: MultiValue| {
        if args.is_empty() {
            return Err(mlua::Error::runtime(
                "Please specify at least one argument for this redis lib call",
            ));
        }
        let args: Vec<Bytes> = args
            .iter()
            .map(lua_to_arg)
            .collect::<Option<_>>()
            .ok_or_else(|| {
                mlua::Error::runtime("Lua redis lib command arguments must be strings or integers")
            })?;
        let (reply_tx, reply_rx) = oneshot::channel();
        calls
            .blocking_send(ScriptCall {
                args,
                reply: reply_tx,
            })
            .map_err(|_| mlua::Error::runtime("the script's client went away"))?;
        let reply = reply_rx
            .blocking_recv()
            .map_err(|_| mlua::Error::runtime("the script's client went away"))?;
        reply_to_lua(lua, reply)
    })
}

fn string_table(lua: &Lua, items: &[Bytes]) -> mlua::Result<mlua::Table> {
    let table = lua.create_table_with_capacity(items.len(), 0)?;
    for item in items {
        table.raw_push(lua.create_string(item)?)?;
    }
    Ok(table)
}

/// The error reply for an error the script raised and did not catch, in
/// Redis 7's words: the message, then which script and line raised it.
fn raised_error(sha: &str, value: &Value) -> Reply {
    match value {
        Value::Table(t) => {
            let err = t
                .raw_get::<mlua::LuaString>("err")
                .map(|s| s.to_string_lossy())
                .unwrap_or_else(|_| "ERR unknown error".into());
            let line = t
                .raw_get::<i64>("line")
                .map(|l| l.to_string())
                .unwrap_or_else(|_| "?".into());
            Reply::Error(format!("{err} script: {sha}, on @user_script:{line}."))
        }
        Value::String(s) => {
            let message = s.to_string_lossy();
            let line = message
                .strip_prefix("user_script:")
                .and_then(|rest| rest.split(':').next())
                .unwrap_or("?")
                .to_owned();
            Reply::err(format!("{message} script: {sha}, on @user_script:{line}."))
        }
        Value::Error(e) => Reply::err(format!("Error running script: {}", message_of(e))),
        _ => Reply::err(format!("Error running script {sha}: unknown error")),
    }
}
