//! EVAL / EVALSHA / EVAL_RO / EVALSHA_RO / SCRIPT / FUNCTION.
//!
//! A script holds the node's atomic gate from its first instruction to its
//! last, so no other command of this node runs in between; its
//! `redis.call`s run here, in the script's connection, as a transaction's
//! commands do. Keys on other nodes are read and written through the
//! cluster like any command's, so a script whose keys share a hash slot
//! (and so a preference list) is as isolated as a single command; with
//! keys spread over the cluster it is atomic against this node's clients
//! only, and conditional commands inside it are not serialised at the
//! key's first preference-list node.

use super::{CmdResult, is, lookup_indexed, parse_i64, wrong_arity};
use crate::kv::Kv;
use crate::resp::reply::Reply;
use crate::resp::script::{self, RunningScript, ScriptJob};
use crate::resp::session::{ServerState, Session};
use bytes::Bytes;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// Runs a scripting command.
pub async fn run<K: Kv>(
    kv: &K,
    server: &ServerState,
    session: &mut Session,
    name: &str,
    args: &[Bytes],
) -> CmdResult {
    match name {
        "eval" | "eval_ro" => {
            let body = args[1].clone();
            let sha = server.scripts.insert(body.clone());
            eval(
                kv,
                server,
                session,
                sha,
                &body,
                &args[2..],
                name == "eval_ro",
            )
            .await
        }
        "evalsha" | "evalsha_ro" => {
            let Some(body) = server.scripts.get(&args[1]) else {
                return Err(Reply::Error(
                    "NOSCRIPT No matching script. Please use EVAL.".into(),
                ));
            };
            let sha = script::sha1_hex(&body);
            eval(
                kv,
                server,
                session,
                sha,
                &body,
                &args[2..],
                name == "evalsha_ro",
            )
            .await
        }
        "script" => script_command(server, args),
        "function" => function_command(args),
        _ => Err(Reply::err(format!("'{name}' is not a scripting command"))),
    }
}

async fn eval<K: Kv>(
    kv: &K,
    server: &ServerState,
    session: &mut Session,
    sha: String,
    body: &[u8],
    rest: &[Bytes],
    read_only_command: bool,
) -> CmdResult {
    let numkeys = parse_i64(&rest[0])?;
    if numkeys < 0 {
        return Err(Reply::err("Number of keys can't be negative"));
    }
    let numkeys = numkeys as usize;
    if numkeys > rest.len() - 1 {
        return Err(Reply::err(
            "Number of keys can't be greater than number of args",
        ));
    }
    let (flags, source) = script::parse_shebang(body).map_err(Reply::err)?;
    let read_only = read_only_command || flags.no_writes;
    let running = Arc::new(RunningScript::default());
    // Inside EXEC the transaction already holds the gate.
    let _gate = if session.holds_gate {
        None
    } else {
        Some(server.atomic_gate.write().await)
    };
    let _registered = server.running_scripts.register(running.clone());
    let job = ScriptJob {
        sha,
        body: source,
        keys: rest[1..=numkeys].to_vec(),
        argv: rest[numkeys + 1..].to_vec(),
        running: running.clone(),
    };
    let (calls_tx, mut calls) = tokio::sync::mpsc::channel(1);
    let engine = tokio::task::spawn_blocking(move || script::run(job, calls_tx));
    let caller_db = session.db;
    let held = std::mem::replace(&mut session.holds_gate, true);
    while let Some(call) = calls.recv().await {
        let reply = call_from_script(kv, server, session, call.args, read_only, &running).await;
        // The script may have died meanwhile; its thread then ignores us.
        let _ = call.reply.send(reply);
    }
    session.holds_gate = held;
    // SELECT inside a script selects for the script only.
    session.db = caller_db;
    engine
        .await
        .map_err(|e| Reply::err(format!("the script engine failed: {e}")))
}

/// One `redis.call`, refused if a script may not run it. Boxed: the
/// command may be anything, EVAL's own future included.
fn call_from_script<'a, K: Kv>(
    kv: &'a K,
    server: &'a ServerState,
    session: &'a mut Session,
    args: Vec<Bytes>,
    read_only: bool,
    running: &'a RunningScript,
) -> Pin<Box<dyn Future<Output = Reply> + Send + 'a>> {
    Box::pin(async move {
        let Some((idx, spec)) = args.first().and_then(|name| lookup_indexed(name)) else {
            return Reply::err("Unknown Redis command called from script");
        };
        let argc = args.len() as i32;
        if (spec.arity > 0 && argc != spec.arity) || (spec.arity < 0 && argc < -spec.arity) {
            return Reply::err("Wrong number of args calling Redis command from script");
        }
        if spec.flags.contains(&"noscript") {
            return Reply::err("This Redis command is not allowed from script");
        }
        if spec.flags.contains(&"write") {
            if read_only {
                return Reply::err("Write commands are not allowed from read-only scripts.");
            }
            running.mark_wrote();
        }
        super::run_queued(kv, server, session, idx, args).await
    })
}

fn script_command(server: &ServerState, args: &[Bytes]) -> CmdResult {
    let sub = &args[1];
    if is(sub, "load") {
        let [_, _, body] = args else {
            return Err(wrong_arity("script|load"));
        };
        let (_, source) = script::parse_shebang(body).map_err(Reply::err)?;
        script::check_compiles(&source)?;
        Ok(Reply::bulk(server.scripts.insert(body.clone())))
    } else if is(sub, "exists") {
        if args.len() < 3 {
            return Err(wrong_arity("script|exists"));
        }
        Ok(Reply::Array(
            args[2..]
                .iter()
                .map(|sha| Reply::Int(i64::from(server.scripts.contains(sha))))
                .collect(),
        ))
    } else if is(sub, "flush") {
        match &args[2..] {
            [] => {}
            [mode] if is(mode, "async") || is(mode, "sync") => {}
            _ => return Err(Reply::err("SCRIPT FLUSH only support SYNC|ASYNC option")),
        }
        server.scripts.clear();
        Ok(Reply::ok())
    } else if is(sub, "kill") {
        server.running_scripts.kill()
    } else if is(sub, "help") {
        Ok(help(&[
            "SCRIPT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "EXISTS <sha1> [<sha1> ...]",
            "    Return information about the existence of the scripts in the script cache.",
            "FLUSH [ASYNC|SYNC]",
            "    Flush the Lua scripts cache.",
            "KILL",
            "    Kill the currently executing Lua script.",
            "LOAD <script>",
            "    Load a script into the scripts cache without executing it.",
            "HELP",
            "    Print this help.",
        ]))
    } else {
        Err(unknown_subcommand("SCRIPT", sub))
    }
}

/// FUNCTION: enough for tools that list or reset a server's functions;
/// dynkv has no function libraries (scripts go through EVAL).
fn function_command(args: &[Bytes]) -> CmdResult {
    let sub = &args[1];
    if is(sub, "list") {
        Ok(Reply::Array(Vec::new()))
    } else if is(sub, "flush") {
        Ok(Reply::ok())
    } else if is(sub, "load") || is(sub, "restore") {
        Err(Reply::err(
            "dynkv has no function libraries; run the code with EVAL or EVALSHA",
        ))
    } else if is(sub, "help") {
        Ok(help(&[
            "FUNCTION <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "LIST",
            "    List the function libraries (dynkv has none).",
            "FLUSH [ASYNC|SYNC]",
            "    Delete all the function libraries.",
            "HELP",
            "    Print this help.",
        ]))
    } else {
        Err(unknown_subcommand("FUNCTION", sub))
    }
}

fn help(lines: &[&str]) -> Reply {
    Reply::Array(lines.iter().map(|l| Reply::Simple((*l).into())).collect())
}

fn unknown_subcommand(command: &str, sub: &[u8]) -> Reply {
    Reply::err(format!(
        "unknown subcommand '{}'. Try {command} HELP.",
        String::from_utf8_lossy(sub)
    ))
}

/// The script running on this node, if any (SCRIPT KILL's target).
#[derive(Debug, Default)]
pub struct RunningScripts {
    current: parking_lot::Mutex<Option<Arc<RunningScript>>>,
}

/// Unregisters a script when its run ends, however it ends; a script whose
/// client went away is also told to stop.
pub struct Registration<'a> {
    scripts: &'a RunningScripts,
    script: Arc<RunningScript>,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.script.kill();
        *self.scripts.current.lock() = None;
    }
}

impl RunningScripts {
    /// Makes `script` the running one until the registration drops.
    pub fn register(&self, script: Arc<RunningScript>) -> Registration<'_> {
        *self.current.lock() = Some(script.clone());
        Registration {
            scripts: self,
            script,
        }
    }

    /// SCRIPT KILL.
    pub fn kill(&self) -> CmdResult {
        let current = self.current.lock().clone();
        match current {
            None => Err(Reply::Error(
                "NOTBUSY No scripts in execution right now.".into(),
            )),
            Some(script) if script.has_written() => Err(Reply::Error(
                "UNKILLABLE Sorry the script already executed write commands against the dataset. You can either wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command.".into(),
            )),
            Some(script) => {
                script.kill();
                Ok(Reply::ok())
            }
        }
    }

    /// How long the running script has run, if one does.
    pub fn busy_ms(&self) -> Option<u128> {
        self.current.lock().as_ref().map(|s| s.elapsed_ms())
    }
}
