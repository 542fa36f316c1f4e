//! Writes the seed corpus of the fuzz targets (`fuzz/corpus/<target>/`) from
//! the crate's own encoders, so the seeds are exactly what the server, its
//! peers and its disk produce:
//!
//! ```text
//! cargo run --example fuzz_seeds            # writes into fuzz/corpus
//! cargo run --example fuzz_seeds -- DIR     # writes into DIR/<target>/
//! ```
//!
//! Files are named after what they hold, so rerunning overwrites them and
//! leaves inputs the fuzzer added (named by their hash) alone.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use bytes::{Bytes, BytesMut};
use dynkv::core::ClusterSecret;
use dynkv::core::{
    ClusterState, MAX_COUNTER, Member, NodeId, Object, Payload, Request, Response, VersionVector,
    WriteContext, encode_context,
};
use dynkv::net::frame::{self, Envelope, PROTOCOL_VERSION, WireResponse};
use dynkv::store::codec::{LONG_KEY, encode_hint, encode_object, encode_record};
use tokio_util::codec::Encoder;

fn write(dir: &Path, target: &str, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = dir.join(target);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(dir.join(name), bytes).with_context(|| format!("writing {name}"))
}

fn resp(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn n(name: &str) -> NodeId {
    NodeId::new(name)
}

/// Two concurrent siblings (one expiring), a tombstone superseding nothing,
/// and a context with three nodes: the shapes a replica really stores.
fn objects() -> Vec<(&'static str, Object)> {
    let mut single = Object::new();
    single.update(
        &VersionVector::new(),
        &n("n1"),
        Payload::value("v"),
        1_700_000_000_000,
    );

    let mut siblings = single.clone();
    let ctx = single.context.clone();
    siblings.update(&ctx, &n("n1"), Payload::value("a"), 1_700_000_000_100);
    siblings.update(
        &ctx,
        &n("n2"),
        Payload::Value {
            data: Bytes::from_static(b"b\r\n\x00\xff"),
            expires_at_ms: Some(1_700_000_060_000),
        },
        1_700_000_000_200,
    );

    let mut deleted = siblings.clone();
    let ctx = siblings.context.clone();
    deleted.update(&ctx, &n("n3"), Payload::Tombstone, 1_700_000_000_300);

    vec![
        ("empty", Object::new()),
        ("single", single),
        ("siblings", siblings),
        ("tombstone", deleted),
    ]
}

fn resp_seeds(dir: &Path) -> anyhow::Result<()> {
    let t = "resp_request";
    write(dir, t, "get", &resp(&[b"GET", b"key"]))?;
    write(
        dir,
        t,
        "set-binary",
        &resp(&[b"SET", b"k\x00", b"v\r\n\xff", b"PX", b"100"]),
    )?;
    write(
        dir,
        t,
        "hello3-auth",
        &resp(&[b"HELLO", b"3", b"AUTH", b"default", b"pw"]),
    )?;
    let mut pipeline = Vec::new();
    for args in [
        &[&b"MULTI"[..]][..],
        &[b"INCR", b"counter"],
        &[b"MSET", b"a", b"1", b"b", b"2"],
        &[b"EXEC"],
        &[b"CLIENT", b"SETNAME", b"fuzz"],
    ] {
        pipeline.extend_from_slice(&resp(args));
    }
    write(dir, t, "pipeline", &pipeline)?;
    let ctx = objects()
        .pop()
        .map(|(_, o)| encode_context(&o.context, &fuzz_key()))
        .unwrap_or_default();
    write(
        dir,
        t,
        "dyn-put",
        &resp(&[b"DYN.PUT", b"k", ctx.as_bytes(), b"v"]),
    )?;
    write(
        dir,
        t,
        "inline",
        b"PING\r\nSET a \"b c\\x41\\n\" 'it\\'s'\n\r\nGET a\r\n",
    )?;
    write(
        dir,
        t,
        "inline-then-array",
        b"PING\n*1\r\n$4\r\nPING\r\n*0\r\n",
    )?;
    write(
        dir,
        t,
        "incomplete",
        b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nval",
    )?;
    write(dir, t, "not-a-bulk", b"*1\r\n+PING\r\n")?;
    write(dir, t, "unbalanced-quotes", b"SET \"abc\r\n")?;
    Ok(())
}

fn envelope<T>(id: u64, body: T) -> Envelope<T> {
    Envelope {
        protocol: PROTOCOL_VERSION,
        cluster: "c-7f3a".to_string(),
        from: n("n1"),
        id,
        body,
    }
}

/// One length-delimited frame, as it travels on the socket.
fn framed(payload: Bytes) -> anyhow::Result<Vec<u8>> {
    let mut out = BytesMut::new();
    frame::codec().encode(payload, &mut out)?;
    Ok(out.to_vec())
}

fn rpc_seeds(dir: &Path) -> anyhow::Result<()> {
    let t = "rpc_frame";
    let member = |c: &str, p: &str| Member {
        client_addr: c.to_string(),
        cluster_addr: p.to_string(),
        cluster_client_addr: None,
    };
    let state = ClusterState::founding(
        "c-7f3a".to_string(),
        n("n1"),
        member("127.0.0.1:6379", "127.0.0.1:7379"),
        8,
        3,
    )?
    .with_member(n("n2"), member("127.0.0.1:6380", "127.0.0.1:7380"))?;
    let objs = objects();
    let object = objs[2].1.clone();
    let requests = vec![
        ("ping", Request::Ping),
        (
            "get",
            Request::Get {
                key: Bytes::from_static(b"key"),
            },
        ),
        (
            "put-hint",
            Request::Put {
                key: Bytes::from_static(b"key"),
                object: object.clone(),
                hint_for: Some(n("n3")),
            },
        ),
        (
            "put-many",
            Request::PutMany {
                items: objs
                    .iter()
                    .map(|(k, o)| (Bytes::from(*k), o.clone()))
                    .collect(),
            },
        ),
        (
            "coordinate",
            Request::Coordinate {
                key: Bytes::from_static(b"key"),
                context: WriteContext::Client(object.context.clone()),
                payload: Payload::value("new"),
                w: Some(2),
                hlc_ms: 1_700_000_000_400,
            },
        ),
        (
            "coordinate-latest",
            Request::Coordinate {
                key: Bytes::from_static(b"key"),
                context: WriteContext::CoordinatorLatest,
                payload: Payload::Tombstone,
                w: None,
                hlc_ms: 1,
            },
        ),
        ("flushall", Request::FlushAll),
        (
            "join",
            Request::Join {
                node: n("n3"),
                member: member("[::1]:6381", "[::1]:7381"),
            },
        ),
        (
            "gossip",
            Request::Gossip {
                state: state.clone(),
                hlc_ms: 1_700_000_000_500,
            },
        ),
    ];
    let mut stream = Vec::new();
    for (id, (name, req)) in (1u64..).zip(requests) {
        let bytes = framed(frame::encode(&envelope(id, req))?)?;
        write(dir, t, &format!("req-{name}"), &bytes)?;
        stream.extend_from_slice(&bytes);
    }
    write(dir, t, "req-stream", &stream)?;

    let responses = vec![
        ("ack", Response::Ack),
        ("object", Response::Object(object)),
        ("state", Response::State(state.clone())),
        (
            "admitted",
            Response::Admitted {
                state: state.clone(),
                known_before: true,
            },
        ),
        (
            "gossip",
            Response::Gossip {
                state,
                physical_ms: 1_700_000_000_600,
                hlc_ms: 1_700_000_000_601,
            },
        ),
        ("rebuilding", Response::Rebuilding),
        ("refused", Response::Refused("clock is off".to_string())),
        ("error", Response::Error("disk full".to_string())),
        (
            "unavailable",
            Response::Unavailable {
                answered: 1,
                required: 2,
            },
        ),
    ];
    for (id, (name, resp)) in (100u64..).zip(responses) {
        let env = envelope(id, WireResponse::Ok(resp));
        write(
            dir,
            t,
            &format!("resp-{name}"),
            &framed(frame::encode(&env)?)?,
        )?;
    }
    let refused = envelope(
        200,
        WireResponse::<Response>::Refused("wrong cluster".into()),
    );
    write(
        dir,
        t,
        "resp-wire-refused",
        &framed(frame::encode(&refused)?)?,
    )?;
    Ok(())
}

fn store_seeds(dir: &Path) -> anyhow::Result<()> {
    let t = "store_codec";
    let short = Bytes::from_static(b"user:42");
    let long = Bytes::from(vec![b'L'; LONG_KEY + 1]);
    for (name, obj) in objects() {
        write(
            dir,
            t,
            &format!("record-{name}"),
            &encode_record(&short, &obj),
        )?;
        write(dir, t, &format!("legacy-{name}"), &encode_object(&obj))?;
    }
    let obj = objects().swap_remove(2).1;
    write(dir, t, "record-long-key", &encode_record(&long, &obj))?;
    write(
        dir,
        t,
        "hint",
        &encode_hint(&short, 1_700_000_000_000, &obj),
    )?;
    write(
        dir,
        t,
        "hint-long-key",
        &encode_hint(&long, 1_700_000_000_000, &obj),
    )?;
    Ok(())
}

/// The key the context_token target signs with (it must match the target).
fn fuzz_key() -> dynkv::core::DerivedKey {
    match ClusterSecret::new("fuzz") {
        Ok(secret) => secret.context_key(),
        Err(e) => panic!("a constant secret is valid: {e}"),
    }
}

/// Seeds of the context_token target are token *bodies* (the encoded
/// history before its MAC): the target signs each input itself, so the
/// fuzzer explores the history decoder behind the signature check.
fn context_seeds(dir: &Path) -> anyhow::Result<()> {
    let t = "context_token";
    let body = |vv: &VersionVector| postcard::to_allocvec(vv).context("encoding a history");
    for (name, obj) in objects().into_iter().skip(1) {
        write(dir, t, name, &body(&obj.context)?)?;
    }
    let big: VersionVector = [(n("n1"), MAX_COUNTER - 1), (n("ünïcode"), 1 << 40)]
        .into_iter()
        .collect();
    write(dir, t, "large-counters", &body(&big)?)?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus"));
    resp_seeds(&dir)?;
    rpc_seeds(&dir)?;
    store_seeds(&dir)?;
    context_seeds(&dir)?;
    println!("seed corpus written to {}", dir.display());
    Ok(())
}
