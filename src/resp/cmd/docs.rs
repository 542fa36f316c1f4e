//! Argument docs for COMMAND DOCS (what redis-cli turns into its argument
//! hints), one line per command in Redis's own notation:
//!
//! - `key` is a key, `name:type` an argument of that type (default
//!   `string`; `integer`, `double`, `pattern`, `unix-time`, `key`);
//! - an UPPER-CASE word is a literal token; followed by an argument it
//!   becomes that argument's token (`EX seconds:integer`);
//! - `[...]` is optional, `(...)` a block, `a|b` one of, `...` repeats.
//!
//! Adding a command means adding its one line here; a test checks every
//! command in [`super::COMMANDS`] has one and that each line parses.

use crate::resp::reply::Reply;

/// `(command, arguments)` for every command in the table.
#[rustfmt::skip]
pub static ARGS: &[(&str, &str)] = &[
    ("get", "key"),
    ("set", "key value [NX|XX] [GET] [EX seconds:integer|PX milliseconds:integer|EXAT unix-time-seconds:unix-time|PXAT unix-time-milliseconds:unix-time|KEEPTTL]"),
    ("setnx", "key value"),
    ("setex", "key seconds:integer value"),
    ("psetex", "key milliseconds:integer value"),
    ("getset", "key value"),
    ("getdel", "key"),
    ("getex", "key [EX seconds:integer|PX milliseconds:integer|EXAT unix-time-seconds:unix-time|PXAT unix-time-milliseconds:unix-time|PERSIST]"),
    ("mget", "key..."),
    ("mset", "(key value)..."),
    ("msetnx", "(key value)..."),
    ("strlen", "key"),
    ("append", "key value"),
    ("incr", "key"),
    ("decr", "key"),
    ("incrby", "key increment:integer"),
    ("decrby", "key decrement:integer"),
    ("incrbyfloat", "key increment:double"),
    ("setrange", "key offset:integer value"),
    ("getrange", "key start:integer end:integer"),
    ("substr", "key start:integer end:integer"),
    ("setbit", "key offset:integer value:integer"),
    ("getbit", "key offset:integer"),
    ("bitcount", "key [start:integer end:integer [BYTE|BIT]]"),
    ("bitpos", "key bit:integer [start:integer [end:integer [BYTE|BIT]]]"),
    ("bitop", "AND|OR|XOR|NOT destkey:key key..."),
    ("hset", "key (field value)..."),
    ("hsetnx", "key field value"),
    ("hget", "key field"),
    ("hmget", "key field..."),
    ("hmset", "key (field value)..."),
    ("hdel", "key field..."),
    ("hexists", "key field"),
    ("hlen", "key"),
    ("hstrlen", "key field"),
    ("hkeys", "key"),
    ("hvals", "key"),
    ("hgetall", "key"),
    ("hincrby", "key field increment:integer"),
    ("hincrbyfloat", "key field increment:double"),
    ("hrandfield", "key [count:integer [WITHVALUES]]"),
    ("hscan", "key cursor:integer [MATCH pattern:pattern] [COUNT count:integer]"),
    ("sadd", "key member..."),
    ("srem", "key member..."),
    ("smembers", "key"),
    ("sismember", "key member"),
    ("smismember", "key member..."),
    ("scard", "key"),
    ("spop", "key [count:integer]"),
    ("srandmember", "key [count:integer]"),
    ("smove", "source:key destination:key member"),
    ("sinter", "key..."),
    ("sintercard", "numkeys:integer key... [LIMIT limit:integer]"),
    ("sinterstore", "destination:key key..."),
    ("sunion", "key..."),
    ("sunionstore", "destination:key key..."),
    ("sdiff", "key..."),
    ("sdiffstore", "destination:key key..."),
    ("sscan", "key cursor:integer [MATCH pattern:pattern] [COUNT count:integer]"),
    ("zadd", "key [NX|XX] [GT|LT] [CH] [INCR] (score:double member)..."),
    ("zincrby", "key increment:double member"),
    ("zrem", "key member..."),
    ("zscore", "key member"),
    ("zmscore", "key member..."),
    ("zcard", "key"),
    ("zcount", "key min:double max:double"),
    ("zlexcount", "key min max"),
    ("zrange", "key start stop [BYSCORE|BYLEX] [REV] [LIMIT offset:integer count:integer] [WITHSCORES]"),
    ("zrangestore", "dst:key src:key min max [BYSCORE|BYLEX] [REV] [LIMIT offset:integer count:integer]"),
    ("zrangebyscore", "key min:double max:double [WITHSCORES] [LIMIT offset:integer count:integer]"),
    ("zrevrange", "key start:integer stop:integer [WITHSCORES]"),
    ("zrevrangebyscore", "key max:double min:double [WITHSCORES] [LIMIT offset:integer count:integer]"),
    ("zrangebylex", "key min max [LIMIT offset:integer count:integer]"),
    ("zrevrangebylex", "key max min [LIMIT offset:integer count:integer]"),
    ("zrank", "key member [WITHSCORE]"),
    ("zrevrank", "key member [WITHSCORE]"),
    ("zpopmin", "key [count:integer]"),
    ("zpopmax", "key [count:integer]"),
    ("zrandmember", "key [count:integer [WITHSCORES]]"),
    ("zremrangebyscore", "key min:double max:double"),
    ("zremrangebyrank", "key start:integer stop:integer"),
    ("zremrangebylex", "key min max"),
    ("zunionstore", "destination:key numkeys:integer key... [WEIGHTS weight:integer...] [AGGREGATE SUM|MIN|MAX]"),
    ("zinterstore", "destination:key numkeys:integer key... [WEIGHTS weight:integer...] [AGGREGATE SUM|MIN|MAX]"),
    ("zdiffstore", "destination:key numkeys:integer key..."),
    ("zunion", "numkeys:integer key... [WEIGHTS weight:integer...] [AGGREGATE SUM|MIN|MAX] [WITHSCORES]"),
    ("zinter", "numkeys:integer key... [WEIGHTS weight:integer...] [AGGREGATE SUM|MIN|MAX] [WITHSCORES]"),
    ("zdiff", "numkeys:integer key... [WITHSCORES]"),
    ("zscan", "key cursor:integer [MATCH pattern:pattern] [COUNT count:integer]"),
    ("lpush", "key element..."),
    ("rpush", "key element..."),
    ("lpushx", "key element..."),
    ("rpushx", "key element..."),
    ("lpop", "key [count:integer]"),
    ("rpop", "key [count:integer]"),
    ("llen", "key"),
    ("lrange", "key start:integer stop:integer"),
    ("lindex", "key index:integer"),
    ("lset", "key index:integer element"),
    ("linsert", "key BEFORE|AFTER pivot element"),
    ("lrem", "key count:integer element"),
    ("ltrim", "key start:integer stop:integer"),
    ("lpos", "key element [RANK rank:integer] [COUNT num-matches:integer] [MAXLEN len:integer]"),
    ("lmove", "source:key destination:key LEFT|RIGHT LEFT|RIGHT"),
    ("rpoplpush", "source:key destination:key"),
    ("lmpop", "numkeys:integer key... LEFT|RIGHT [COUNT count:integer]"),
    ("blpop", "key... timeout:double"),
    ("brpop", "key... timeout:double"),
    ("blmove", "source:key destination:key LEFT|RIGHT LEFT|RIGHT timeout:double"),
    ("brpoplpush", "source:key destination:key timeout:double"),
    ("blmpop", "timeout:double numkeys:integer key... LEFT|RIGHT [COUNT count:integer]"),
    ("del", "key..."),
    ("unlink", "key..."),
    ("exists", "key..."),
    ("type", "key"),
    ("expire", "key seconds:integer [NX|XX|GT|LT]"),
    ("pexpire", "key milliseconds:integer [NX|XX|GT|LT]"),
    ("expireat", "key unix-time-seconds:unix-time [NX|XX|GT|LT]"),
    ("pexpireat", "key unix-time-milliseconds:unix-time [NX|XX|GT|LT]"),
    ("ttl", "key"),
    ("pttl", "key"),
    ("persist", "key"),
    ("scan", "cursor:integer [MATCH pattern:pattern] [COUNT count:integer] [TYPE type]"),
    ("keys", "pattern:pattern"),
    ("dbsize", ""),
    ("flushdb", "[ASYNC|SYNC]"),
    ("flushall", "[ASYNC|SYNC]"),
    ("randomkey", ""),
    ("ping", "[message]"),
    ("echo", "message"),
    ("hello", "[protover:integer [AUTH username password] [SETNAME clientname]]"),
    ("auth", "[username] password"),
    ("select", "index:integer"),
    ("eval", "script numkeys:integer [key...] [arg...]"),
    ("evalsha", "sha1 numkeys:integer [key...] [arg...]"),
    ("eval_ro", "script numkeys:integer [key...] [arg...]"),
    ("evalsha_ro", "sha1 numkeys:integer [key...] [arg...]"),
    ("script", "subcommand [arg...]"),
    ("function", "subcommand [arg...]"),
    ("subscribe", "channel..."),
    ("unsubscribe", "[channel...]"),
    ("psubscribe", "pattern:pattern..."),
    ("punsubscribe", "[pattern:pattern...]"),
    ("ssubscribe", "shardchannel..."),
    ("sunsubscribe", "[shardchannel...]"),
    ("publish", "channel message"),
    ("spublish", "shardchannel message"),
    ("pubsub", "subcommand [arg...]"),
    ("multi", ""),
    ("exec", ""),
    ("discard", ""),
    ("watch", "key..."),
    ("unwatch", ""),
    ("rename", "key newkey:key"),
    ("renamenx", "key newkey:key"),
    ("copy", "source:key destination:key [DB destination-db:integer] [REPLACE]"),
    ("move", "key db:integer"),
    ("expiretime", "key"),
    ("pexpiretime", "key"),
    ("touch", "key..."),
    ("object", "subcommand [key]"),
    ("quit", ""),
    ("reset", ""),
    ("client", ""),
    ("command", ""),
    ("config", ""),
    ("acl", ""),
    ("info", "[section...]"),
    ("time", ""),
    ("lastsave", ""),
    ("save", ""),
    ("bgsave", "[SCHEDULE]"),
    ("shutdown", "[NOSAVE|SAVE] [NOW] [FORCE] [ABORT]"),
    ("slowlog", ""),
    ("latency", ""),
    ("memory", ""),
    ("monitor", ""),
    ("wait", "numreplicas:integer timeout:integer"),
    ("cluster", ""),
    ("readonly", ""),
    ("readwrite", ""),
    ("asking", ""),
    ("dyn.get", "key [R r:integer]"),
    ("dyn.put", "key context value [W w:integer]"),
    ("dyn.del", "key context [W w:integer]"),
    ("dyn.members", ""),
    ("dyn.ring", ""),
    ("dyn.join", "host:port"),
    ("dyn.leave", "[node]"),
    ("dyn.hints", ""),
    ("dyn.debug", "LOCAL key|PARTITION arg...|MERKLE partition|ALL"),
];

/// `(container|subcommand, summary, arguments)`: COMMAND DOCS lists these
/// under their container's `subcommands`, and redis-cli hints each one
/// after its two words (`memory usage` → `key [SAMPLES count]`).
#[rustfmt::skip]
pub static SUBCOMMANDS: &[(&str, &str, &str)] = &[
    ("client|id", "Returns the unique client ID of the connection.", ""),
    ("client|info", "Returns information about the connection.", ""),
    ("client|list", "Lists open connections.", "[TYPE (NORMAL|MASTER|REPLICA|PUBSUB)] [ID client-id:integer...]"),
    ("client|getname", "Returns the name of the connection.", ""),
    ("client|setname", "Sets the connection name.", "connection-name"),
    ("client|setinfo", "Sets information specific to the client or connection.", "LIB-NAME libname|LIB-VER libver"),
    ("client|kill", "Terminates open connections.", "ip:port"),
    ("client|no-evict", "Sets the client eviction mode of the connection.", "ON|OFF"),
    ("client|no-touch", "Controls whether commands sent by the client affect the LRU/LFU of accessed keys.", "ON|OFF"),
    ("client|reply", "Instructs the server whether to reply to commands.", "ON|OFF|SKIP"),
    ("client|help", "Returns helpful text about the different subcommands.", ""),
    ("command|count", "Returns a count of commands.", ""),
    ("command|list", "Returns a list of command names.", ""),
    ("command|info", "Returns information about one, multiple or all commands.", "[command-name...]"),
    ("command|docs", "Returns documentary information about one, multiple or all commands.", "[command-name...]"),
    ("config|get", "Returns the effective values of configuration parameters.", "parameter..."),
    ("config|set", "Sets configuration parameters in-flight.", "(parameter value)..."),
    ("config|resetstat", "Resets the server's statistics.", ""),
    ("config|rewrite", "Persists the effective configuration to file (not supported).", ""),
    ("acl|whoami", "Returns the authenticated username of the current connection.", ""),
    ("acl|list", "Dumps the effective rules in ACL file format.", ""),
    ("acl|users", "Lists all ACL users.", ""),
    ("acl|help", "Returns helpful text about the different subcommands.", ""),
    ("slowlog|get", "Returns the slow log's entries.", "[count:integer]"),
    ("slowlog|len", "Returns the number of entries in the slow log.", ""),
    ("slowlog|reset", "Clears all entries from the slow log.", ""),
    ("slowlog|help", "Shows helpful text about the different subcommands.", ""),
    ("latency|latest", "Returns the latest latency samples for all events.", ""),
    ("latency|history", "Returns timestamp-latency samples for an event.", "event"),
    ("latency|reset", "Resets the latency data for one or more events.", "[event...]"),
    ("latency|doctor", "Returns a human-readable latency analysis report.", ""),
    ("latency|help", "Returns helpful text about the different subcommands.", ""),
    ("memory|usage", "Estimates the memory usage of a key (all its stored versions).", "key [SAMPLES count:integer]"),
    ("memory|stats", "Returns details about memory usage.", ""),
    ("memory|doctor", "Outputs a memory problems report.", ""),
    ("memory|help", "Returns helpful text about the different subcommands.", ""),
    ("cluster|keyslot", "Returns the hash slot for a key.", "key"),
    ("cluster|slots", "Returns the mapping of cluster slots to nodes (each range's preference list, first healthy owner as master).", ""),
    ("cluster|shards", "Returns the mapping of cluster slots to shards (one shard per distinct preference list).", ""),
    ("cluster|nodes", "Returns the cluster configuration for a node.", ""),
    ("cluster|info", "Returns information about the state of a node.", ""),
    ("cluster|myid", "Returns the ID of a node.", ""),
    ("cluster|myshardid", "Returns the shard ID of a node.", ""),
    ("cluster|countkeysinslot", "Returns the number of keys in a hash slot stored on this node.", "slot:integer"),
    ("cluster|getkeysinslot", "Returns the key names in a hash slot stored on this node.", "slot:integer count:integer"),
    ("cluster|help", "Returns helpful text about the different subcommands.", ""),
];

/// COMMAND DOCS `subcommands` of `command`: (full name, summary, arguments).
pub fn subcommands(command: &str) -> Vec<(&'static str, &'static str, Vec<Reply>)> {
    SUBCOMMANDS
        .iter()
        .filter(|(full, _, _)| full.split('|').next() == Some(command))
        .map(|(full, summary, spec)| {
            let args = parse(spec).unwrap_or_default();
            (*full, *summary, args.iter().map(to_reply).collect())
        })
        .collect()
}

/// One argument as COMMAND DOCS describes it.
#[derive(Clone, Debug, PartialEq)]
pub struct Arg {
    /// Name (shown by redis-cli for typed arguments).
    pub name: String,
    /// `key`, `string`, `integer`, `double`, `pattern`, `unix-time`,
    /// `pure-token`, `block`, `oneof`.
    pub kind: String,
    /// Literal that precedes the value.
    pub token: Option<String>,
    /// `[...]`.
    pub optional: bool,
    /// `...`.
    pub multiple: bool,
    /// Members of a block or oneof.
    pub args: Vec<Arg>,
}

impl Arg {
    fn leaf(name: &str, kind: &str) -> Self {
        Arg {
            name: name.into(),
            kind: kind.into(),
            token: None,
            optional: false,
            multiple: false,
            args: Vec::new(),
        }
    }

    fn group(kind: &str, args: Vec<Arg>) -> Self {
        let name = args
            .iter()
            .map(|a| a.name.as_str())
            .collect::<Vec<_>>()
            .join("-");
        Arg {
            args,
            ..Arg::leaf(&name, kind)
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Open(char),
    Close(char),
    Bar,
    Dots,
    Word(String),
}

fn tokenize(s: &str) -> Vec<Tok> {
    let mut out = Vec::new();
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut Vec<Tok>| {
        if !word.is_empty() {
            out.push(Tok::Word(std::mem::take(word)));
        }
    };
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '[' | '(' => {
                flush(&mut word, &mut out);
                out.push(Tok::Open(c));
            }
            ']' | ')' => {
                flush(&mut word, &mut out);
                out.push(Tok::Close(c));
            }
            '|' => {
                flush(&mut word, &mut out);
                out.push(Tok::Bar);
            }
            '.' if chars.peek() == Some(&'.') => {
                flush(&mut word, &mut out);
                while chars.peek() == Some(&'.') {
                    chars.next();
                }
                out.push(Tok::Dots);
            }
            ' ' => flush(&mut word, &mut out),
            c => word.push(c),
        }
    }
    flush(&mut word, &mut out);
    out
}

fn word_arg(w: &str) -> Arg {
    if w.starts_with(|c: char| c.is_ascii_uppercase()) {
        let mut a = Arg::leaf(&w.to_ascii_lowercase(), "pure-token");
        a.token = Some(w.into());
        return a;
    }
    match w.split_once(':') {
        // `host:port` style names keep their colon when the part after it
        // is not a type.
        Some((name, kind))
            if ["string", "integer", "double", "pattern", "unix-time", "key"].contains(&kind) =>
        {
            Arg::leaf(name, kind)
        }
        _ if w == "key" => Arg::leaf("key", "key"),
        _ => Arg::leaf(w, "string"),
    }
}

/// Parses alternatives up to `close` (or the end).
fn parse_alts(toks: &[Tok], pos: &mut usize, close: Option<char>) -> Result<Vec<Vec<Arg>>, String> {
    let mut alts = vec![Vec::new()];
    while *pos < toks.len() {
        let tok = toks[*pos].clone();
        *pos += 1;
        let item = match tok {
            Tok::Close(c) if Some(c) == close => return Ok(alts),
            Tok::Close(c) => return Err(format!("unexpected '{c}'")),
            Tok::Bar => {
                alts.push(Vec::new());
                continue;
            }
            Tok::Dots => {
                let last = alts
                    .last_mut()
                    .and_then(|a| a.last_mut())
                    .ok_or("'...' with nothing before it")?;
                last.multiple = true;
                continue;
            }
            Tok::Word(w) => word_arg(&w),
            Tok::Open(c) => {
                let inner = parse_alts(toks, pos, Some(if c == '[' { ']' } else { ')' }))?;
                let mut arg = collapse(inner);
                if c == '[' {
                    arg.optional = true;
                }
                arg
            }
        };
        let seq = alts.last_mut().ok_or("empty")?;
        // `TOKEN value` is one argument with a token.
        match seq.last_mut() {
            Some(prev)
                if prev.kind == "pure-token"
                    && !prev.optional
                    && !prev.multiple
                    && item.token.is_none()
                    && item.args.is_empty()
                    && !item.optional =>
            {
                let token = prev.token.take();
                *prev = Arg { token, ..item };
            }
            _ => seq.push(item),
        }
    }
    match close {
        Some(c) => Err(format!("missing '{c}'")),
        None => Ok(alts),
    }
}

/// Alternatives → one argument: a oneof, a block, or the single member.
fn collapse(mut alts: Vec<Vec<Arg>>) -> Arg {
    let seq_arg = |mut seq: Vec<Arg>| {
        if seq.len() == 1 {
            seq.remove(0)
        } else {
            Arg::group("block", seq)
        }
    };
    if alts.len() == 1 {
        seq_arg(alts.remove(0))
    } else {
        Arg::group("oneof", alts.into_iter().map(seq_arg).collect())
    }
}

/// Parses one line of [`ARGS`].
pub fn parse(spec: &str) -> Result<Vec<Arg>, String> {
    let toks = tokenize(spec);
    let mut pos = 0;
    let mut alts = parse_alts(&toks, &mut pos, None)?;
    Ok(if alts.len() == 1 {
        alts.remove(0)
    } else {
        vec![collapse(alts)]
    })
}

/// COMMAND DOCS `arguments` for `command` (empty when it takes none).
pub fn arguments(command: &str) -> Vec<Reply> {
    ARGS.iter()
        .find(|(name, _)| *name == command)
        .and_then(|(_, spec)| parse(spec).ok())
        .unwrap_or_default()
        .iter()
        .map(to_reply)
        .collect()
}

fn to_reply(arg: &Arg) -> Reply {
    let mut fields = vec![
        (Reply::bulk("name"), Reply::bulk(arg.name.clone())),
        (Reply::bulk("type"), Reply::bulk(arg.kind.clone())),
    ];
    if arg.kind == "key" {
        fields.push((Reply::bulk("key_spec_index"), Reply::Int(0)));
    }
    if let Some(token) = &arg.token {
        fields.push((Reply::bulk("token"), Reply::bulk(token.clone())));
    }
    let mut flags = Vec::new();
    if arg.optional {
        flags.push(Reply::Simple("optional".into()));
    }
    if arg.multiple {
        flags.push(Reply::Simple("multiple".into()));
    }
    if !flags.is_empty() {
        fields.push((Reply::bulk("flags"), Reply::Set(flags)));
    }
    if !arg.args.is_empty() {
        fields.push((
            Reply::bulk("arguments"),
            Reply::Array(arg.args.iter().map(to_reply).collect()),
        ));
    }
    Reply::Map(fields)
}

/// redis-cli's rendering of arguments (its hint text), for tests.
pub fn render(args: &[Arg]) -> String {
    args.iter().map(render_one).collect::<Vec<_>>().join(" ")
}

fn render_one(arg: &Arg) -> String {
    let mut s = String::new();
    if let Some(t) = &arg.token
        && arg.kind != "pure-token"
    {
        s.push_str(t);
        s.push(' ');
    }
    let body = match arg.kind.as_str() {
        "pure-token" => arg.token.clone().unwrap_or_default(),
        "oneof" => arg
            .args
            .iter()
            .map(render_one)
            .collect::<Vec<_>>()
            .join("|"),
        "block" => render(&arg.args),
        _ => arg.name.clone(),
    };
    s.push_str(&body);
    if arg.multiple {
        s = format!("{s} [{s} ...]");
    }
    if arg.optional {
        s = format!("[{s}]");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resp::cmd::COMMANDS;

    #[test]
    fn every_command_has_parseable_docs() {
        for c in COMMANDS {
            let line = ARGS
                .iter()
                .find(|(n, _)| *n == c.name)
                .unwrap_or_else(|| panic!("no argument docs for '{}' in docs::ARGS", c.name));
            parse(line.1).unwrap_or_else(|e| panic!("docs for '{}': {e}", c.name));
        }
        for (full, _, spec) in SUBCOMMANDS {
            let container = full.split('|').next().unwrap_or_default();
            assert!(COMMANDS.iter().any(|c| c.name == container), "{full}");
            parse(spec).unwrap_or_else(|e| panic!("docs for '{full}': {e}"));
        }
        for (name, _) in ARGS {
            assert!(
                COMMANDS.iter().any(|c| c.name == *name),
                "docs for '{name}', which is not in the command table"
            );
        }
    }

    #[test]
    fn set_renders_like_redis() {
        let set = parse(ARGS[1].1).expect("parses");
        assert_eq!(
            render(&set),
            "key value [NX|XX] [GET] [EX seconds|PX milliseconds|EXAT unix-time-seconds|PXAT unix-time-milliseconds|KEEPTTL]"
        );
        assert_eq!(set[4].args[0].token.as_deref(), Some("EX"));
        assert_eq!(set[4].args[0].kind, "integer");
        assert_eq!(
            render(&parse("(key value)...").expect("parses")),
            "key value [key value ...]"
        );
        assert_eq!(
            render(
                &parse("cursor:integer [MATCH pattern:pattern] [COUNT count:integer]")
                    .expect("parses")
            ),
            "cursor [MATCH pattern] [COUNT count]"
        );
        assert!(parse("[a").is_err());
        assert!(parse("a]").is_err());
    }
}
