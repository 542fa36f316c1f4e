//! CLIENT KILL (old and new forms) and CLIENT PAUSE / UNPAUSE on one real
//! node; `DYNKV_TEST_AGAINST=redis` runs the same assertions against
//! redis-server.

mod common;

use common::{Reply, Server};
use std::sync::mpsc;
use std::time::Duration;

fn client_id(conn: &mut common::RawConn) -> i64 {
    match conn.cmd_str(&["CLIENT", "ID"]) {
        Reply::Int(id) => id,
        other => panic!("CLIENT ID answered {other:?}"),
    }
}

/// `addr=` of the connection with this id, from CLIENT LIST.
fn addr_of(admin: &mut common::RawConn, id: i64) -> String {
    let list = admin.cmd_str(&["CLIENT", "LIST"]).as_str();
    list.lines()
        .find(|l| l.starts_with(&format!("id={id} ")))
        .and_then(|l| l.split(' ').find_map(|f| f.strip_prefix("addr=")))
        .unwrap_or_else(|| panic!("client {id} not in {list}"))
        .to_string()
}

#[test]
fn client_kill_closes_the_connections_it_names() {
    let s = Server::start();
    let mut admin = s.raw();
    let mut a = s.raw();
    let mut b = s.raw();
    let mut c = s.raw();
    let a_id = client_id(&mut a);
    assert_eq!(
        admin.cmd_str(&["CLIENT", "KILL", "ID", &a_id.to_string()]),
        Reply::Int(1)
    );
    assert!(a.is_closed_within(Duration::from_secs(5)), "ID");
    let b_addr = addr_of(&mut admin, client_id(&mut b));
    assert_eq!(admin.cmd_str(&["CLIENT", "KILL", &b_addr]).as_str(), "OK");
    assert!(b.is_closed_within(Duration::from_secs(5)), "old form");
    let c_addr = addr_of(&mut admin, client_id(&mut c));
    assert_eq!(
        admin.cmd_str(&["CLIENT", "KILL", "ADDR", &c_addr, "SKIPME", "yes"]),
        Reply::Int(1)
    );
    assert!(c.is_closed_within(Duration::from_secs(5)), "ADDR");
    // Nothing left to match.
    assert!(
        admin
            .cmd_str(&["CLIENT", "KILL", &b_addr])
            .as_str()
            .contains("No such client")
    );
    assert_eq!(
        admin.cmd_str(&["CLIENT", "KILL", "ID", "999999"]),
        Reply::Int(0)
    );
    // SKIPME (the default) spares the caller; the others still serve.
    let me = client_id(&mut admin).to_string();
    assert_eq!(admin.cmd_str(&["CLIENT", "KILL", "ID", &me]), Reply::Int(0));
    assert_eq!(admin.cmd_str(&["PING"]).as_str(), "PONG");
    assert!(admin.cmd_str(&["CLIENT", "KILL", "BOGUS", "x"]).is_error());
}

#[test]
fn client_pause_write_holds_writes_until_unpause() {
    let s = Server::start();
    let mut admin = s.raw();
    assert_eq!(
        admin
            .cmd_str(&["CLIENT", "PAUSE", "20000", "WRITE"])
            .as_str(),
        "OK"
    );
    let (done_tx, done) = mpsc::channel();
    let mut writer = s.raw();
    writer.set_read_timeout(Duration::from_secs(30));
    let handle = std::thread::spawn(move || {
        let reply = writer.cmd_str(&["SET", "paused", "v"]);
        done_tx.send(reply).expect("send");
    });
    // Reads go on while writes wait.
    let mut reader = s.raw();
    assert_eq!(reader.cmd_str(&["GET", "paused"]), Reply::Nil);
    assert!(
        done.recv_timeout(Duration::from_millis(300)).is_err(),
        "SET ran during CLIENT PAUSE WRITE"
    );
    assert_eq!(admin.cmd_str(&["CLIENT", "UNPAUSE"]).as_str(), "OK");
    let reply = done
        .recv_timeout(Duration::from_secs(10))
        .expect("SET after UNPAUSE");
    assert_eq!(reply.as_str(), "OK");
    handle.join().expect("writer");
    assert_eq!(reader.cmd_str(&["GET", "paused"]).as_str(), "v");
    assert!(admin.cmd_str(&["CLIENT", "PAUSE", "-1"]).is_error());
    assert!(admin.cmd_str(&["CLIENT", "PAUSE", "10", "SOME"]).is_error());
}
