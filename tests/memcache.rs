//! The memcached front end, with real `dynkv` processes on loopback: the
//! text protocol's replies, the shared keyspace with Redis clients, `cas`
//! as the Dynamo context (one winner when two clients race, through one
//! node and through two nodes of a cluster), writes and reads through a
//! SIGKILLed node's peers, hostile input, text-protocol authentication, and
//! the meta protocol's stale items, recache wins and chosen cas values
//! (one winner through two nodes of a cluster).
//!
//! ```text
//! cargo test --release --test memcache -- --nocapture
//! ```
//!
//! The round counts are `MEMCACHE_CAS_ROUNDS` (default 200).

mod common;

use common::cluster::{Cluster, wait_for};
use common::{Reply, Server, is_real_redis, q};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Barrier;
use std::time::Duration;

fn rounds() -> usize {
    std::env::var("MEMCACHE_CAS_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
}

/// A memcached text-protocol connection.
struct Mc {
    r: BufReader<TcpStream>,
}

/// One `VALUE` of a get reply.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Item {
    flags: u32,
    data: Vec<u8>,
    cas: Option<u64>,
}

impl Mc {
    fn connect(addr: SocketAddr) -> Mc {
        let s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        Mc {
            r: BufReader::new(s),
        }
    }

    fn send(&mut self, raw: &[u8]) {
        self.r.get_mut().write_all(raw).expect("send");
    }

    fn line(&mut self) -> String {
        let mut l = String::new();
        self.r.read_line(&mut l).expect("read line");
        l.trim_end_matches(['\r', '\n']).to_string()
    }

    /// Sends `raw` and returns the one reply line.
    fn one(&mut self, raw: &str) -> String {
        self.send(raw.as_bytes());
        self.line()
    }

    fn store(&mut self, cmd: &str, key: &str, flags: u32, exptime: i64, data: &str) -> String {
        self.one(&format!(
            "{cmd} {key} {flags} {exptime} {}\r\n{data}\r\n",
            data.len()
        ))
    }

    fn cas(&mut self, key: &str, data: &str, unique: u64) -> String {
        self.one(&format!(
            "cas {key} 0 0 {} {unique}\r\n{data}\r\n",
            data.len()
        ))
    }

    /// Sends a meta command line (`\r\n` added) and returns its reply as
    /// memcached sends it, without the last line ending: a `VA` line with
    /// its data block.
    fn meta(&mut self, cmd: &str) -> String {
        self.send(format!("{cmd}\r\n").as_bytes());
        let head = self.line();
        let Some(len) = head.strip_prefix("VA ") else {
            return head;
        };
        let len: usize = len
            .split(' ')
            .next()
            .and_then(|l| l.parse().ok())
            .expect("VA size");
        let mut data = vec![0u8; len + 2];
        self.r.read_exact(&mut data).expect("data block");
        format!("{head}\r\n{}", String::from_utf8_lossy(&data[..len]))
    }

    /// get/gets of one key.
    fn get(&mut self, verb: &str, key: &str) -> Option<Item> {
        self.send(format!("{verb} {key}\r\n").as_bytes());
        let mut items = self.values();
        assert!(items.len() <= 1, "{items:?}");
        items.pop().map(|(_, item)| item)
    }

    /// Reads `VALUE` blocks up to `END`.
    fn values(&mut self) -> Vec<(String, Item)> {
        let mut out = Vec::new();
        loop {
            let header = self.line();
            if header == "END" {
                return out;
            }
            let parts: Vec<&str> = header.split(' ').collect();
            assert!(
                parts[0] == "VALUE" && (parts.len() == 4 || parts.len() == 5),
                "unexpected reply line {header:?}"
            );
            let len: usize = parts[3].parse().expect("length");
            let mut data = vec![0u8; len + 2];
            self.r.read_exact(&mut data).expect("data block");
            assert_eq!(&data[len..], b"\r\n");
            data.truncate(len);
            out.push((
                parts[1].to_string(),
                Item {
                    flags: parts[2].parse().expect("flags"),
                    data,
                    cas: parts.get(4).map(|c| c.parse().expect("cas")),
                },
            ));
        }
    }
}

fn bulk(s: &str) -> Reply {
    Reply::Bulk(s.as_bytes().to_vec())
}

/// GET through redis-rs.
fn redis_get(c: &mut redis::Connection, key: &str) -> Option<String> {
    q(c, &["GET", key])
}

/// An integer reply through redis-rs.
fn redis_int(c: &mut redis::Connection, args: &[&str]) -> i64 {
    q(c, args)
}

#[test]
fn text_protocol_replies_and_the_keyspace_shared_with_redis() {
    if is_real_redis() {
        return;
    }
    let s = Server::start();
    let mut mc = Mc::connect(s.memcache_addr());
    let mut redis = s.conn();

    assert_eq!(mc.store("set", "greeting", 42, 0, "hello"), "STORED");
    // Redis sees the bytes; memcached gets its flags back.
    assert_eq!(redis_get(&mut redis, "greeting").as_deref(), Some("hello"));
    let item = mc.get("get", "greeting").expect("present");
    assert_eq!((item.flags, item.data.as_slice()), (42, &b"hello"[..]));
    // An EXPIRE through Redis keeps the flags.
    assert_eq!(redis_int(&mut redis, &["EXPIRE", "greeting", "100"]), 1);
    assert_eq!(mc.get("get", "greeting").map(|i| i.flags), Some(42));
    // A Redis SET is a memcached value without flags.
    let _: () = q(&mut redis, &["SET", "from-redis", "r"]);
    let item = mc.get("get", "from-redis").expect("present");
    assert_eq!((item.flags, item.data), (0, b"r".to_vec()));

    // Conditions.
    assert_eq!(mc.store("add", "greeting", 0, 0, "x"), "NOT_STORED");
    assert_eq!(mc.store("replace", "nothing", 0, 0, "x"), "NOT_STORED");
    assert_eq!(mc.store("append", "greeting", 0, 0, "!"), "STORED");
    assert_eq!(mc.store("prepend", "greeting", 0, 0, "> "), "STORED");
    assert_eq!(
        redis_get(&mut redis, "greeting").as_deref(),
        Some("> hello!")
    );
    assert_eq!(mc.store("append", "nothing", 0, 0, "x"), "NOT_STORED");
    assert_eq!(mc.one("delete greeting\r\n"), "DELETED");
    assert_eq!(mc.one("delete greeting\r\n"), "NOT_FOUND");
    assert_eq!(redis_int(&mut redis, &["EXISTS", "greeting"]), 0);

    // incr through memcached and INCR through Redis add up on one counter.
    assert_eq!(mc.one("incr hits 1\r\n"), "NOT_FOUND");
    assert_eq!(mc.store("set", "hits", 0, 0, "10"), "STORED");
    assert_eq!(mc.one("incr hits 5\r\n"), "15");
    assert_eq!(redis_int(&mut redis, &["INCRBY", "hits", "7"]), 22);
    assert_eq!(mc.one("decr hits 2\r\n"), "20");
    assert_eq!(mc.one("decr hits 100\r\n"), "0");
    assert_eq!(redis_get(&mut redis, "hits").as_deref(), Some("0"));
    assert_eq!(
        mc.one("incr from-redis 1\r\n"),
        "CLIENT_ERROR cannot increment or decrement non-numeric value"
    );

    // exptime: negative is gone at once, touch and gat move it.
    assert_eq!(mc.store("set", "gone", 0, -1, "x"), "STORED");
    assert_eq!(mc.get("get", "gone"), None);
    assert_eq!(mc.store("set", "ttl", 0, 100, "x"), "STORED");
    let ttl = |redis: &mut redis::Connection| redis_int(redis, &["TTL", "ttl"]);
    assert!((90..=100).contains(&ttl(&mut redis)));
    assert_eq!(mc.one("touch ttl 1000\r\n"), "TOUCHED");
    assert!((990..=1000).contains(&ttl(&mut redis)));
    assert_eq!(mc.one("touch nothing 10\r\n"), "NOT_FOUND");
    mc.send(b"gats 0 ttl\r\n");
    let touched = mc.values();
    assert_eq!(touched.len(), 1);
    assert_eq!(ttl(&mut redis), -1);
    // The cas gats hands out is the one after its touch.
    let unique = touched[0].1.cas.expect("gats has a cas");
    assert_eq!(mc.cas("ttl", "y", unique), "STORED");

    // Multi-get skips misses and keeps order.
    mc.store("set", "a", 1, 0, "A");
    mc.store("set", "b", 2, 0, "B");
    mc.send(b"get a missing b\r\n");
    let got: Vec<(String, u32)> = mc.values().into_iter().map(|(k, i)| (k, i.flags)).collect();
    assert_eq!(got, vec![("a".into(), 1), ("b".into(), 2)]);

    // noreply: nothing comes back, and the next reply is the next command's.
    mc.send(b"set quiet 0 0 1 noreply\r\nq\r\nincr hits 1 noreply\r\ndelete a noreply\r\n");
    assert_eq!(mc.one("version\r\n").split(' ').next(), Some("VERSION"));
    assert_eq!(redis_get(&mut redis, "quiet").as_deref(), Some("q"));
    assert_eq!(redis_get(&mut redis, "hits").as_deref(), Some("1"));
    assert_eq!(redis_int(&mut redis, &["EXISTS", "a"]), 0);

    // flush_all empties the keyspace of both protocols.
    assert_eq!(mc.one("flush_all\r\n"), "OK");
    assert_eq!(redis_int(&mut redis, &["DBSIZE"]), 0);

    // stats answers in memcached's shape.
    mc.send(b"stats\r\n");
    let mut fields = Vec::new();
    loop {
        let l = mc.line();
        if l == "END" {
            break;
        }
        assert!(l.starts_with("STAT "), "{l}");
        fields.push(l);
    }
    assert!(fields.iter().any(|f| f.starts_with("STAT cmd_get ")));
    assert!(fields.iter().any(|f| f.starts_with("STAT get_hits ")));
    assert_eq!(mc.one("quit\r\n"), "");
}

#[test]
fn cas_through_one_node_has_exactly_one_winner() {
    if is_real_redis() {
        return;
    }
    let s = Server::start();
    let addr = s.memcache_addr();
    race_cas(&[addr, addr], rounds());
}

#[test]
fn cas_through_two_nodes_of_a_cluster_has_exactly_one_winner() {
    if is_real_redis() {
        return;
    }
    let c = Cluster::start(3);
    // A value set through node 1 reads through node 2, both protocols.
    let mut one = Mc::connect(c.nodes[0].memcache_addr());
    let mut two = Mc::connect(c.nodes[1].memcache_addr());
    assert_eq!(one.store("set", "shared", 7, 0, "from-n1"), "STORED");
    assert_eq!(c.q(1, &["GET", "shared"]), bulk("from-n1"));
    // ... and with redis-cli itself.
    let cli = std::process::Command::new("redis-cli")
        .args(["-p", &c.nodes[1].port().to_string(), "GET", "shared"])
        .output()
        .expect("run redis-cli");
    assert_eq!(String::from_utf8_lossy(&cli.stdout).trim(), "from-n1");
    assert_eq!(
        two.get("get", "shared").map(|i| (i.flags, i.data)),
        Some((7, b"from-n1".to_vec()))
    );
    c.q(1, &["SET", "other", "from-n2"]);
    assert_eq!(
        one.get("get", "other").map(|i| i.data),
        Some(b"from-n2".to_vec())
    );
    // incr and INCR through different nodes sum.
    assert_eq!(one.store("set", "count", 0, 0, "0"), "STORED");
    for _ in 0..10 {
        one.one("incr count 1\r\n");
        c.q(2, &["INCR", "count"]);
    }
    assert_eq!(two.one("incr count 0\r\n"), "20");

    race_cas(
        &[c.nodes[0].memcache_addr(), c.nodes[1].memcache_addr()],
        rounds(),
    );
    race_meta_cas(
        &[c.nodes[0].memcache_addr(), c.nodes[1].memcache_addr()],
        rounds() / 4,
    );
}

/// Runs `each` for every client on its own thread, all released at once
/// by a barrier, and returns their replies in client order.
fn at_once(clients: &mut [Mc], each: impl Fn(usize, &mut Mc) -> String + Sync) -> Vec<String> {
    let barrier = Barrier::new(clients.len());
    std::thread::scope(|s| {
        let handles: Vec<_> = clients
            .iter_mut()
            .enumerate()
            .map(|(i, c)| {
                let (barrier, each) = (&barrier, &each);
                s.spawn(move || {
                    barrier.wait();
                    each(i, c)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("racer"))
            .collect()
    })
}

/// The meta protocol's compare-and-set (`mg k c`, then `ms k .. C<token>`)
/// through two nodes: one HD, one EX, every round.
fn race_meta_cas(addrs: &[SocketAddr; 2], rounds: usize) {
    let mut clients: Vec<Mc> = addrs.iter().map(|&a| Mc::connect(a)).collect();
    for round in 0..rounds {
        let key = format!("meta-race:{round}");
        assert_eq!(clients[0].one(&format!("ms {key} 5\r\nstart\r\n")), "HD");
        let tokens: Vec<String> = clients
            .iter_mut()
            .map(|c| {
                let header = c.one(&format!("mg {key} c\r\n"));
                header
                    .strip_prefix("HD c")
                    .unwrap_or_else(|| panic!("mg reply {header:?}"))
                    .to_string()
            })
            .collect();
        let replies = at_once(&mut clients, |i, c| {
            c.one(&format!("ms {key} 1 C{}\r\nx\r\n", tokens[i]))
        });
        let mut sorted = replies.clone();
        sorted.sort();
        assert_eq!(sorted, ["EX", "HD"], "round {round}: {replies:?}");
    }
    eprintln!("{rounds} meta cas races: one winner each");
}

/// Two clients `gets` the same key, then both `cas` at once: one STORED,
/// one EXISTS, every round.
fn race_cas(addrs: &[SocketAddr; 2], rounds: usize) {
    let mut setup = Mc::connect(addrs[0]);
    let mut clients: Vec<Mc> = addrs.iter().map(|&a| Mc::connect(a)).collect();
    let mut both_won = 0;
    let mut none_won = 0;
    for round in 0..rounds {
        let key = format!("race:{round}");
        assert_eq!(setup.store("set", &key, 0, 0, "start"), "STORED");
        // Both read before either writes.
        let uniques: Vec<u64> = clients
            .iter_mut()
            .map(|c| {
                // W + R > N: the set's acknowledgement means every
                // coordinator's quorum read sees it.
                let item = c.get("gets", &key).expect("the start value");
                assert_eq!(item.data, b"start");
                item.cas.expect("gets has a cas")
            })
            .collect();
        let replies = at_once(&mut clients, |i, c| {
            c.cas(&key, &format!("client{i}"), uniques[i])
        });
        let stored = replies.iter().filter(|r| *r == "STORED").count();
        let exists = replies.iter().filter(|r| *r == "EXISTS").count();
        match (stored, exists) {
            (1, 1) => {}
            (2, _) => both_won += 1,
            _ => none_won += 1,
        }
        assert!(
            stored == 1 && exists == 1,
            "round {round}: replies {replies:?}"
        );
    }
    eprintln!("{rounds} cas races: one winner each (both won {both_won}, none won {none_won})");
}

#[test]
fn memcached_clients_carry_on_through_a_sigkilled_node() {
    if is_real_redis() {
        return;
    }
    let mut c = Cluster::start(3);
    let keys = 300;
    let mut one = Mc::connect(c.nodes[0].memcache_addr());
    for k in 0..keys / 3 {
        assert_eq!(
            one.store("set", &format!("k{k}"), 0, 0, &format!("v{k}")),
            "STORED"
        );
    }
    c.kill9(2);
    let mut live = [
        Mc::connect(c.nodes[0].memcache_addr()),
        Mc::connect(c.nodes[1].memcache_addr()),
    ];
    for k in keys / 3..keys {
        let mc = &mut live[k % 2];
        assert_eq!(
            mc.store("set", &format!("k{k}"), 0, 0, &format!("v{k}")),
            "STORED",
            "set k{k} with n3 down"
        );
    }
    for k in 0..keys {
        let mc = &mut live[(k + 1) % 2];
        assert_eq!(
            mc.get("get", &format!("k{k}")).map(|i| i.data),
            Some(format!("v{k}").into_bytes()),
            "get k{k} with n3 down"
        );
    }
    c.restart(2);
    // Hinted handoff (and anti-entropy) bring every key to the restarted
    // node's own store.
    wait_for(
        Duration::from_secs(60),
        "every key on the restarted node",
        || {
            let missing: Vec<usize> = (0..keys)
                .filter(|k| {
                    let v = c.local(2, &format!("k{k}"));
                    v.values != vec![Some(format!("v{k}"))]
                })
                .collect();
            if missing.is_empty() {
                Ok(())
            } else {
                Err(format!("{} missing, e.g. k{}", missing.len(), missing[0]))
            }
        },
    );

    // With two of three nodes gone no quorum can answer: memcached clients
    // are told so, never handed a silent miss or a lost write.
    c.kill9(1);
    c.kill9(2);
    let mut alone = Mc::connect(c.nodes[0].memcache_addr());
    let set = alone.store("set", "k0", 0, 0, "lost?");
    assert!(
        set.starts_with("SERVER_ERROR unavailable"),
        "set without a quorum: {set:?}"
    );
    let get = alone.one("get k0\r\n");
    assert!(
        get.starts_with("SERVER_ERROR unavailable"),
        "get without a quorum: {get:?}"
    );
}

#[test]
fn hostile_input_gets_memcached_errors_and_the_node_keeps_serving() {
    if is_real_redis() {
        return;
    }
    let s = Server::start_with(&["--memcache-max-item-size", "4kb"]);
    let mut mc = Mc::connect(s.memcache_addr());
    let long_key = "k".repeat(251);
    assert_eq!(
        mc.store("set", &long_key, 0, 0, "x"),
        "CLIENT_ERROR bad command line format"
    );
    // The data line of the refused set is read as a command.
    assert_eq!(mc.line(), "ERROR");
    assert_eq!(
        mc.one(&format!("get {long_key}\r\n")),
        "CLIENT_ERROR bad command line format"
    );
    assert_eq!(
        mc.one("set a 0 0 -1\r\n"),
        "CLIENT_ERROR bad command line format"
    );
    assert_eq!(
        mc.one("set a 0 0 3\r\nabcd\r\n"),
        "CLIENT_ERROR bad data chunk"
    );
    assert_eq!(mc.line(), "ERROR");
    let big = "x".repeat(5000);
    assert_eq!(
        mc.store("set", "big", 0, 0, &big),
        "SERVER_ERROR object too large for cache"
    );
    assert_eq!(mc.get("get", "big"), None);
    // Appending past the limit is refused too.
    assert_eq!(mc.store("set", "grow", 0, 0, &"y".repeat(4000)), "STORED");
    assert_eq!(
        mc.store("append", "grow", 0, 0, &"y".repeat(200)),
        "SERVER_ERROR out of memory storing object"
    );
    // A binary-protocol request and junk are unknown commands.
    mc.send(b"\x80\x01\x00\x05\x00\x00\x00\x00\r\n");
    assert_eq!(mc.line(), "ERROR");
    mc.send(b"\x00\xff\xfe garbage \x01\r\n");
    assert_eq!(mc.line(), "ERROR");
    assert_eq!(
        mc.one("incr a notanumber\r\n"),
        "CLIENT_ERROR invalid numeric delta argument"
    );
    assert_eq!(mc.store("set", "after", 0, 0, "fine"), "STORED");
    assert_eq!(
        mc.get("get", "after").map(|i| i.data),
        Some(b"fine".to_vec())
    );

    // A line no command could be closes only that connection.
    let mut endless = Mc::connect(s.memcache_addr());
    let chunk = vec![b'z'; 1 << 20];
    for _ in 0..3 {
        if endless.r.get_mut().write_all(&chunk).is_err() {
            break;
        }
    }
    assert_eq!(endless.line(), "CLIENT_ERROR line too long");
    let mut fresh = Mc::connect(s.memcache_addr());
    assert_eq!(
        fresh.get("get", "after").map(|i| i.data),
        Some(b"fine".to_vec())
    );
    let pong: String = q(&mut s.conn(), &["PING"]);
    assert_eq!(pong, "PONG");
}

#[test]
fn a_password_protected_node_asks_memcached_clients_to_authenticate() {
    if is_real_redis() {
        return;
    }
    let s = Server::start_with(&["--requirepass", "sesame"]);
    let mut mc = Mc::connect(s.memcache_addr());
    assert_eq!(mc.one("get x\r\n"), "CLIENT_ERROR unauthenticated");
    assert_eq!(
        mc.store("set", "auth", 0, 0, "user wrong"),
        "CLIENT_ERROR authentication failure"
    );
    assert_eq!(mc.one("get x\r\n"), "CLIENT_ERROR unauthenticated");
    assert_eq!(mc.store("set", "auth", 0, 0, "user sesame"), "STORED");
    assert_eq!(mc.store("set", "x", 0, 0, "1"), "STORED");
    assert_eq!(mc.get("get", "x").map(|i| i.data), Some(b"1".to_vec()));
}

/// The `c` token of a meta reply line.
fn cas_token(reply: &str) -> String {
    reply
        .split(' ')
        .find_map(|f| f.strip_prefix('c'))
        .unwrap_or_else(|| panic!("no cas in {reply:?}"))
        .to_string()
}

#[test]
fn meta_stale_items_recache_wins_and_chosen_cas() {
    if is_real_redis() {
        return;
    }
    let s = Server::start();
    let mut mc = Mc::connect(s.memcache_addr());
    let mut other = Mc::connect(s.memcache_addr());

    // N: a miss creates an empty item; its creator wins, the rest see Z
    // until a set replaces it.
    assert_eq!(mc.meta("mg viv v N30 t"), "VA 0 t30 W\r\n");
    assert_eq!(other.meta("mg viv v N30 s"), "VA 0 s0 Z\r\n");
    assert_eq!(other.meta("mg viv s k Oq"), "HD s0 kviv Oq Z");
    assert_eq!(mc.meta("ms viv 3 T60\r\nnew"), "HD");
    assert_eq!(mc.meta("mg viv v N30"), "VA 3\r\nnew");
    // R: less TTL left than the token wins once; no expiry never wins.
    assert_eq!(mc.meta("mg viv v R30"), "VA 3\r\nnew");
    assert_eq!(mc.meta("mg viv v R100"), "VA 3 W\r\nnew");
    assert_eq!(other.meta("mg viv v R100"), "VA 3 Z\r\nnew");
    assert_eq!(mc.meta("ms forever 2 T0\r\nhi"), "HD");
    assert_eq!(mc.meta("mg forever v R30"), "VA 2\r\nhi");

    // md I: the item stays, stale; the first mg after it wins.
    assert_eq!(mc.meta("md forever I T30"), "HD");
    assert_eq!(mc.meta("mg forever v t"), "VA 2 t30 X W\r\nhi");
    assert_eq!(other.meta("mg forever v"), "VA 2 Z X\r\nhi");
    assert_eq!(other.one("get forever\r\n"), "VALUE forever 0 2");
    assert_eq!(other.line(), "hi");
    assert_eq!(other.line(), "END");
    // Invalidating again hands out a new win.
    assert_eq!(mc.meta("md forever I q\r\nmn"), "MN");
    assert_eq!(other.meta("mg forever v"), "VA 2 X W\r\nhi");
    assert_eq!(mc.meta("md ghost I"), "NF");
    // A set makes it fresh again.
    assert_eq!(mc.meta("ms forever 3\r\nnew"), "HD");
    assert_eq!(mc.meta("mg forever v t"), "VA 3 t-1\r\nnew");

    // E: the client's cas is the item's until something modifies it; C
    // compares with what c reported (text gets shows it too).
    assert_eq!(mc.meta("ms e 2 E500\r\nhi"), "HD");
    assert_eq!(mc.meta("mg e c"), "HD c500");
    assert_eq!(mc.get("gets", "e").and_then(|i| i.cas), Some(500));
    assert_eq!(mc.meta("ms e 2 C499 E600\r\nho"), "EX");
    assert_eq!(mc.meta("ms e 2 C500 E600 c\r\nho"), "HD c600");
    assert_eq!(mc.meta("mg e v c"), "VA 2 c600\r\nho");
    assert_eq!(mc.meta("ms e 1 MA E601 c\r\n!"), "HD c601");
    assert_eq!(
        mc.meta("ms e 1 MA c\r\n!"),
        "HD c".to_string() + &cas_token(&mc.meta("mg e c"))
    );
    assert_ne!(cas_token(&mc.meta("mg e c")), "601");
    assert_eq!(mc.meta("ms n 1 E7\r\n5"), "HD");
    assert_eq!(mc.meta("ma n E99 c v"), "VA 1 c99\r\n6");
    assert_eq!(mc.meta("mg n v c"), "VA 1 c99\r\n6");
    assert_ne!(cas_token(&mc.meta("ma n c v")), "99");
    assert_eq!(mc.meta("mg viv2 v N30 E1234 c"), "VA 0 c1234 W\r\n");

    // ms I: a cas older than the item's still stores, but stale, keeping
    // the item's TTL and its win; a newer (mismatching) one is EX.
    assert_eq!(mc.meta("ms st 2 T100 E100\r\nv1"), "HD");
    assert_eq!(mc.meta("md st I E200"), "HD");
    assert_eq!(mc.meta("mg st v c"), "VA 2 c200 X W\r\nv1");
    assert_eq!(mc.meta("ms st 2 C100 I E150 T5 c\r\nv2"), "HD c150");
    assert_eq!(mc.meta("mg st v c t"), "VA 2 c150 t100 Z X\r\nv2");
    assert_eq!(mc.meta("ms st 2 C999 I\r\nv3"), "EX");
    assert_eq!(mc.meta("ms st 2 MA C1 I\r\nv3"), "EX");
    assert_eq!(mc.meta("ms st 2 C150 I\r\nv4"), "HD");
    assert_eq!(mc.meta("mg st v"), "VA 2\r\nv4");
    assert_eq!(mc.meta("ms none 2 C1 I\r\nv1"), "NF");

    // Handing out a win is no modification: a cas taken before it holds.
    assert_eq!(mc.meta("ms w 2 T100\r\nhi"), "HD");
    let before = cas_token(&mc.meta("mg w c"));
    assert_eq!(mc.meta("mg w c R1000"), format!("HD c{before} W"));
    assert_eq!(mc.meta(&format!("ms w 2 T100 C{before}\r\nho")), "HD");
    assert_eq!(mc.meta("mg w v R1000"), "VA 2 W\r\nho");

    // ms N: an append to a miss creates the item with N's TTL.
    assert_eq!(mc.meta("ms ap 2 MA\r\nv1"), "NS");
    assert_eq!(mc.meta("ms ap 2 MA N30\r\nv1"), "HD");
    assert_eq!(mc.meta("mg ap v t"), "VA 2 t30\r\nv1");

    // Response-only flags and bad tokens are refused, the node goes on.
    assert_eq!(mc.meta("mg viv W"), "CLIENT_ERROR invalid flag");
    assert_eq!(mc.meta("ms viv 1 Q\r\nx"), "CLIENT_ERROR invalid flag");
    assert_eq!(
        mc.meta("mg viv Nx"),
        "CLIENT_ERROR bad token in command line format"
    );
    assert_eq!(
        mc.meta("md viv I Tx"),
        "CLIENT_ERROR invalid or duplicate flag"
    );
    assert_eq!(mc.meta("mn"), "MN");
}

#[test]
fn one_recache_winner_through_two_nodes_of_a_cluster() {
    if is_real_redis() {
        return;
    }
    let c = Cluster::start(3);
    let addrs: Vec<SocketAddr> = c.nodes.iter().map(|n| n.memcache_addr()).collect();
    let mut clients: Vec<Mc> = addrs[..2].iter().map(|&a| Mc::connect(a)).collect();
    let rounds = (rounds() / 10).max(5);
    for round in 0..rounds {
        let key = format!("lease:{round}");
        let replies = at_once(&mut clients, |_, c| c.meta(&format!("mg {key} v N30")));
        let mut sorted = replies.clone();
        sorted.sort();
        assert_eq!(sorted, ["VA 0 W\r\n", "VA 0 Z\r\n"], "round {round}");
    }
    // The stale marker and the win are the item's, on every node.
    let mut third = Mc::connect(addrs[2]);
    assert_eq!(clients[0].meta("ms shared 2\r\nhi"), "HD");
    assert_eq!(third.meta("md shared I"), "HD");
    assert_eq!(clients[1].meta("mg shared v"), "VA 2 X W\r\nhi");
    assert_eq!(clients[0].meta("mg shared v"), "VA 2 Z X\r\nhi");
    assert_eq!(third.meta("mg shared v"), "VA 2 Z X\r\nhi");
    assert_eq!(third.meta("ms shared 2\r\nho"), "HD");
    assert_eq!(clients[1].meta("mg shared v"), "VA 2\r\nho");
    eprintln!("{rounds} vivify races through two nodes: one W each");
}
