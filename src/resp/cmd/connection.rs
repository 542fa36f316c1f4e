//! Connection commands: PING, ECHO, HELLO, AUTH, QUIT, RESET, CLIENT
//! (SELECT is with the other database commands).

use super::{CmdResult, is, parse_i64, syntax_error, wrong_arity};
use crate::kv::Kv;
use crate::logging::RateLimit;
use crate::resp::auth_limit::Admission;
use crate::resp::reply::Reply;
use crate::resp::session::{ConnectionHandle, ServerState, Session};
use bytes::Bytes;
use std::sync::atomic::Ordering;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

/// The Redis version dynkv reports, so clients enable the features it has.
pub const REDIS_VERSION: &str = "7.2.4";

/// Runs a connection command.
pub async fn run<K: Kv>(
    kv: &K,
    server: &ServerState,
    session: &mut Session,
    name: &str,
    args: &[Bytes],
) -> CmdResult {
    match name {
        // A RESP2 subscriber's PING is answered in its message format.
        "ping" if session.subscriber.is_some() && !session.resp3 => match args.len() {
            1 => Ok(Reply::Array(vec![Reply::bulk("pong"), Reply::bulk("")])),
            2 => Ok(Reply::Array(vec![
                Reply::bulk("pong"),
                Reply::Bulk(args[1].clone()),
            ])),
            _ => Err(wrong_arity("ping")),
        },
        "ping" => match args.len() {
            1 => Ok(Reply::Simple("PONG".into())),
            2 => Ok(Reply::Bulk(args[1].clone())),
            _ => Err(wrong_arity("ping")),
        },
        "echo" => Ok(Reply::Bulk(args[1].clone())),
        "hello" => hello(kv, server, session, args).await,
        "auth" => {
            let (user, pass) = match args.len() {
                2 => (None, &args[1]),
                3 => (Some(&args[1]), &args[2]),
                _ => return Err(syntax_error()),
            };
            if server.requirepass.is_none() && user.is_none() {
                return Err(Reply::err(
                    "AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
                ));
            }
            authenticate(server, session, user, pass).await?;
            Ok(Reply::ok())
        }
        "quit" => {
            session.quit = true;
            Ok(Reply::ok())
        }
        "reset" => {
            session.resp3 = false;
            session.name = None;
            session.authenticated = server.requirepass.is_none();
            session.db = 0;
            session.multi = None;
            session.watched.clear();
            session.subscriber = None;
            session.readonly = false;
            server.pubsub.drop_client(session.id);
            Ok(Reply::Simple("RESET".into()))
        }
        "client" => client(server, session, args),
        _ => Err(Reply::err(format!("'{name}' is not a connection command"))),
    }
}

/// Wrong passwords are logged once per quiet window, not each.
static WRONG_PASSWORD: RateLimit = RateLimit::new();

/// Checks a password, unless its address is locked after a recent wrong
/// one (see [`crate::resp::auth_limit`]).
async fn authenticate(
    server: &ServerState,
    session: &mut Session,
    user: Option<&Bytes>,
    pass: &[u8],
) -> Result<(), Reply> {
    let ip = session.addr.ip();
    match server.auth_limiter.admit(ip, Instant::now()) {
        Admission::Now => {}
        Admission::Refused(retry_in) => {
            server
                .stats
                .auth_rate_limited
                .fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(retry_in).await;
            return Err(Reply::err(
                "too many failed AUTH attempts from this address; try again later",
            ));
        }
    }
    let user_ok = user.is_none_or(|u| u.as_ref() == b"default");
    let pass_ok = match &server.requirepass {
        Some(expected) => expected.as_bytes() == pass,
        None => true,
    };
    if user_ok && pass_ok {
        server.auth_limiter.succeeded(ip);
        session.authenticated = true;
        Ok(())
    } else {
        let hold = server.auth_limiter.failed(ip, Instant::now());
        server.stats.auth_failures.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("dynkv_auth_failures_total").increment(1);
        if let Some(more) = WRONG_PASSWORD.check() {
            tracing::warn!("wrong password from {}{more}", session.addr);
        }
        // Answered when the address's lock ends, so a client that waits
        // for each reply is paced rather than refused.
        tokio::time::sleep(hold).await;
        Err(Reply::Error(
            "WRONGPASS invalid username-password pair or user is disabled.".into(),
        ))
    }
}

async fn hello<K: Kv>(
    kv: &K,
    server: &ServerState,
    session: &mut Session,
    args: &[Bytes],
) -> CmdResult {
    let mut resp3 = session.resp3;
    if let Some(ver) = args.get(1) {
        let ver = parse_i64(ver)
            .map_err(|_| Reply::err("Protocol version is not an integer or out of range"))?;
        resp3 = match ver {
            2 => false,
            3 => true,
            _ => return Err(Reply::Error("NOPROTO unsupported protocol version".into())),
        };
    }
    let mut i = 2;
    let mut setname = None;
    while i < args.len() {
        if is(&args[i], "AUTH") && i + 2 < args.len() {
            authenticate(server, session, Some(&args[i + 1]), &args[i + 2]).await?;
            i += 3;
        } else if is(&args[i], "SETNAME") && i + 1 < args.len() {
            setname = Some(valid_client_name(&args[i + 1])?);
            i += 2;
        } else {
            return Err(Reply::err(format!(
                "Syntax error in HELLO option '{}'",
                String::from_utf8_lossy(&args[i])
            )));
        }
    }
    if !session.authenticated {
        return Err(Reply::Error(
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time".into(),
        ));
    }
    if let Some(name) = setname {
        session.name = name;
    }
    session.resp3 = resp3;
    let _ = kv;
    Ok(Reply::Map(vec![
        (Reply::bulk("server"), Reply::bulk("redis")),
        (Reply::bulk("version"), Reply::bulk(REDIS_VERSION)),
        (Reply::bulk("proto"), Reply::Int(if resp3 { 3 } else { 2 })),
        (Reply::bulk("id"), Reply::Int(session.id as i64)),
        (Reply::bulk("mode"), Reply::bulk("standalone")),
        (Reply::bulk("role"), Reply::bulk("master")),
        (Reply::bulk("modules"), Reply::Array(Vec::new())),
    ]))
}

/// One CLIENT KILL filter: does it match this connection (id, handle)?
type KillFilter = Box<dyn Fn(&u64, &ConnectionHandle) -> bool>;

/// CLIENT KILL, old form (`ip:port`: OK or an error) and new form (filters:
/// the number of connections closed).
fn client_kill(server: &ServerState, session: &Session, filters: &[Bytes]) -> CmdResult {
    if let [addr] = filters {
        let addr = String::from_utf8_lossy(addr);
        let found: Vec<_> = server
            .connections
            .iter()
            .filter(|c| c.addr.to_string() == addr)
            .map(|c| c.kill.clone())
            .collect();
        if found.is_empty() {
            return Err(Reply::err("No such client"));
        }
        found.iter().for_each(CancellationToken::cancel);
        return Ok(Reply::ok());
    }
    if filters.is_empty() || !filters.len().is_multiple_of(2) {
        return Err(syntax_error());
    }
    let mut skip_me = true;
    let mut tests: Vec<KillFilter> = Vec::new();
    for pair in filters.chunks(2) {
        let (option, value) = (&pair[0], String::from_utf8_lossy(&pair[1]).into_owned());
        if is(option, "ID") {
            let id: u64 = value
                .parse()
                .map_err(|_| Reply::err("client-id should be greater than 0"))?;
            tests.push(Box::new(move |cid, _| *cid == id));
        } else if is(option, "ADDR") {
            tests.push(Box::new(move |_, c| c.addr.to_string() == value));
        } else if is(option, "LADDR") {
            tests.push(Box::new(move |_, c| c.local_addr.to_string() == value));
        } else if is(option, "USER") {
            // Only the default user exists.
            tests.push(Box::new(move |_, _| value == "default"));
        } else if is(option, "SKIPME") {
            skip_me = match value.to_ascii_lowercase().as_str() {
                "yes" => true,
                "no" => false,
                _ => return Err(syntax_error()),
            };
        } else if is(option, "MAXAGE") || is(option, "TYPE") {
            // Accepted for compatibility; every connection passes.
        } else {
            return Err(syntax_error());
        }
    }
    let mut killed = 0;
    for entry in server.connections.iter() {
        let (id, handle) = (entry.key(), entry.value());
        if (skip_me && *id == session.id) || !tests.iter().all(|t| t(id, handle)) {
            continue;
        }
        handle.kill.cancel();
        killed += 1;
    }
    Ok(Reply::Int(killed))
}

/// Client names may not contain spaces or control characters (Redis's rule);
/// an empty name clears it.
fn valid_client_name(name: &[u8]) -> Result<Option<String>, Reply> {
    if name.iter().any(|&b| !(b'!'..=b'~').contains(&b)) {
        return Err(Reply::err(
            "Client names cannot contain spaces, newlines or special characters.",
        ));
    }
    Ok((!name.is_empty()).then(|| String::from_utf8_lossy(name).into_owned()))
}

fn on_off(arg: &[u8]) -> Result<(), Reply> {
    if is(arg, "ON") || is(arg, "OFF") {
        Ok(())
    } else {
        Err(syntax_error())
    }
}

fn client(server: &ServerState, session: &mut Session, args: &[Bytes]) -> CmdResult {
    let sub = String::from_utf8_lossy(&args[1]).to_ascii_lowercase();
    let arity = |n: usize| {
        if args.len() == n {
            Ok(())
        } else {
            Err(wrong_arity(&format!("client|{sub}")))
        }
    };
    match sub.as_str() {
        "id" => {
            arity(2)?;
            Ok(Reply::Int(session.id as i64))
        }
        "setname" => {
            arity(3)?;
            session.name = valid_client_name(&args[2])?;
            Ok(Reply::ok())
        }
        "getname" => {
            arity(2)?;
            Ok(Reply::bulk_or_null(session.name.clone().map(Bytes::from)))
        }
        "setinfo" => {
            arity(4)?;
            let value = String::from_utf8_lossy(&args[3]).into_owned();
            if value.contains(|c: char| !('!'..='~').contains(&c)) {
                return Err(Reply::err(format!(
                    "{} cannot contain spaces, newlines or special characters.",
                    String::from_utf8_lossy(&args[2]).to_ascii_lowercase()
                )));
            }
            if is(&args[2], "LIB-NAME") {
                session.lib_name = Some(value);
            } else if is(&args[2], "LIB-VER") {
                session.lib_ver = Some(value);
            } else {
                return Err(Reply::err(format!(
                    "Unrecognized option '{}'",
                    String::from_utf8_lossy(&args[2])
                )));
            }
            Ok(Reply::ok())
        }
        "list" => {
            server.clients.insert(session.id, session.describe());
            let mut lines: Vec<(u64, String)> = server
                .clients
                .iter()
                .map(|e| (*e.key(), e.value().clone()))
                .collect();
            lines.sort();
            let text: String = lines.into_iter().map(|(_, l)| l + "\n").collect();
            Ok(Reply::Verbatim(text))
        }
        "info" => {
            arity(2)?;
            Ok(Reply::Verbatim(session.describe() + "\n"))
        }
        "no-evict" | "no-touch" => {
            arity(3)?;
            on_off(&args[2])?;
            Ok(Reply::ok())
        }
        "kill" => client_kill(server, session, &args[2..]),
        "pause" => {
            if !(3..=4).contains(&args.len()) {
                return Err(wrong_arity("client|pause"));
            }
            let ms = super::parse_i64(&args[2])
                .ok()
                .filter(|ms| *ms >= 0)
                .ok_or_else(|| Reply::err("timeout is not an integer or out of range"))?;
            let writes_only = match args.get(3) {
                None => false,
                Some(mode) if is(mode, "ALL") => false,
                Some(mode) if is(mode, "WRITE") => true,
                Some(_) => return Err(syntax_error()),
            };
            server.set_pause(Some(crate::resp::session::Pause {
                until: std::time::Instant::now() + std::time::Duration::from_millis(ms as u64),
                writes_only,
            }));
            Ok(Reply::ok())
        }
        "unpause" => {
            arity(2)?;
            server.set_pause(None);
            Ok(Reply::ok())
        }
        "help" => Ok(Reply::Array(
            [
                "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "KILL <ip:port>",
                "KILL <option> <value> [<option> <value> [...]]: ID, ADDR, LADDR, USER, SKIPME, MAXAGE",
                "PAUSE <timeout> [WRITE|ALL]",
                "UNPAUSE",
                "ID",
                "SETNAME <name>",
                "GETNAME",
                "SETINFO <LIB-NAME|LIB-VER> <value>",
                "LIST",
                "INFO",
                "NO-EVICT (ON|OFF)",
                "NO-TOUCH (ON|OFF)",
                "HELP",
            ]
            .iter()
            .map(|s| Reply::Simple((*s).into()))
            .collect(),
        )),
        _ => Err(Reply::err(format!(
            "unknown subcommand '{}'. Try CLIENT HELP.",
            String::from_utf8_lossy(&args[1])
        ))),
    }
}
