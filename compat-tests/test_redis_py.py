"""redis-py compatibility suite for dynkv.

Runs against the node at $DYNKV_HOST:$DYNKV_PORT (default 127.0.0.1:6379) with the
latest `redis` package from PyPI. Checks reply VALUES for: str vs bytes replies
(decode_responses True/False), a 1000-command pipeline, RESP3 (protocol=3),
expiry, counters, multi-key commands, SCAN/KEYS/DBSIZE/FLUSHDB, error replies,
binary-safe keys/values, connection handshake commands, and the DYN.* commands.

Set DYNKV_TARGET=redis to validate the suite against a real redis-server: the
DYN.* and INFO-dynamo tests are then skipped.
"""

import os
import threading
import time
import uuid

import pytest
import redis

HOST = os.environ.get("DYNKV_HOST", "127.0.0.1")
PORT = int(os.environ.get("DYNKV_PORT", "6379"))
PASSWORD = os.environ.get("DYNKV_PASSWORD") or None
IS_REDIS = os.environ.get("DYNKV_TARGET", "dynkv") == "redis"

dynkv_only = pytest.mark.skipif(IS_REDIS, reason="dynkv-specific (DYNKV_TARGET=redis)")


def make_client(decode=True, protocol=2, **kw):
    return redis.Redis(
        host=HOST,
        port=PORT,
        password=PASSWORD,
        decode_responses=decode,
        protocol=protocol,
        socket_timeout=30,
        **kw,
    )


@pytest.fixture
def r():
    c = make_client(decode=True)
    yield c
    c.close()


@pytest.fixture
def rb():
    c = make_client(decode=False)
    yield c
    c.close()


@pytest.fixture(params=[True, False], ids=["str", "bytes"])
def rx(request):
    """Client parametrized over decode_responses; returns (client, conv)."""
    c = make_client(decode=request.param)
    conv = (lambda s: s) if request.param else (lambda s: s.encode() if isinstance(s, str) else s)
    yield c, conv
    c.close()


@pytest.fixture
def p():
    """Unique key prefix per test."""
    return "py:%s:" % uuid.uuid4().hex[:10]


def dyn_live(values):
    return [v for v in values if v is not None]


# ---------------------------------------------------------------- basics


def test_ping_echo(rx):
    c, conv = rx
    assert c.ping() is True
    assert c.echo("hello") == conv("hello")


def test_set_get_types(rx, p):
    c, conv = rx
    assert c.set(p + "foo", "bar") is True
    got = c.get(p + "foo")
    assert got == conv("bar")
    assert isinstance(got, str if conv("x") == "x" else bytes)
    assert c.get(p + "missing") is None
    assert c.set(p + "n", 42) is True
    assert c.get(p + "n") == conv("42")
    assert c.set(p + "e", "") is True
    assert c.get(p + "e") == conv("")


def test_set_options(r, p):
    k = p + "k"
    assert r.set(k, "a", nx=True) is True
    assert r.set(k, "b", nx=True) is None
    assert r.get(k) == "a"
    assert r.set(k, "c", xx=True) is True
    assert r.set(p + "nope", "x", xx=True) is None
    assert r.get(p + "nope") is None
    assert r.set(k, "d", get=True) == "c"
    assert r.get(k) == "d"
    assert r.setnx(k, "e") is False
    assert r.setnx(p + "k2", "e") is True
    assert r.getset(k, "f") == "d"
    assert r.getdel(k) == "f"
    assert r.get(k) is None
    assert r.getdel(k) is None


def test_strings_misc(rx, p):
    c, conv = rx
    k = p + "s"
    assert c.append(k, "foo") == 3
    assert c.append(k, "bar") == 6
    assert c.get(k) == conv("foobar")
    assert c.strlen(k) == 6
    assert c.strlen(p + "missing") == 0
    assert c.type(k) == conv("string")
    assert c.type(p + "missing") == conv("none")
    assert c.exists(k) == 1
    assert c.exists(k, k, p + "missing") == 2
    assert c.delete(k, p + "missing") == 1
    assert c.exists(k) == 0
    c.set(k, "x")
    assert c.unlink(k) == 1
    assert c.get(k) is None


# ---------------------------------------------------------------- counters


def test_incr_family(r, p):
    k = p + "ctr"
    assert r.incr(k) == 1
    assert r.incr(k) == 2
    assert r.incrby(k, 10) == 12
    assert r.decr(k) == 11
    assert r.decrby(k, 20) == -9
    assert r.get(k) == "-9"
    f = p + "flt"
    assert r.incrbyfloat(f, 1.5) == pytest.approx(1.5)
    assert r.incrbyfloat(f, 2.25) == pytest.approx(3.75)
    assert r.get(f) == "3.75"
    assert r.incrbyfloat(f, -0.75) == pytest.approx(3.0)
    assert r.get(f) == "3"
    r.set(p + "i", "10")
    assert r.incrbyfloat(p + "i", 0.5) == pytest.approx(10.5)


def test_concurrent_incr(p):
    """8 threads x 250 INCR on one key from a shared pool must sum exactly."""
    c = make_client()
    k = p + "conc"
    errors = []

    def worker():
        try:
            for _ in range(250):
                c.incr(k)
        except Exception as e:  # pragma: no cover
            errors.append(e)

    ts = [threading.Thread(target=worker) for _ in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors
    assert c.get(k) == b"2000" or c.get(k) == "2000"
    c.close()


# ---------------------------------------------------------------- expiry


def test_expiry(r, p):
    k = p + "ex"
    assert r.set(k, "v", ex=100) is True
    assert 98 <= r.ttl(k) <= 100
    assert 97000 <= r.pttl(k) <= 100000
    assert r.set(k, "v", px=5000) is True
    assert 0 < r.pttl(k) <= 5000
    assert r.ttl(k) in (4, 5)
    assert r.persist(k) is True
    assert r.ttl(k) == -1
    assert r.ttl(p + "missing") == -2
    assert r.pttl(p + "missing") == -2
    assert r.expire(k, 60) is True
    assert 58 <= r.ttl(k) <= 60
    assert r.pexpire(k, 60000) is True
    assert 58000 <= r.pttl(k) <= 60000
    assert r.expire(p + "missing", 10) is False
    now = int(time.time())
    assert r.expireat(k, now + 200) is True
    assert 197 <= r.ttl(k) <= 200
    assert r.pexpireat(k, (now + 300) * 1000) is True
    assert 297 <= r.ttl(k) <= 300
    r.set(k, "v2", keepttl=True)
    assert 297 <= r.ttl(k) <= 300
    r.set(k, "v3")
    assert r.ttl(k) == -1
    assert r.execute_command("SETEX", k, 30, "v4") in (True, "OK")
    assert 28 <= r.ttl(k) <= 30
    assert r.execute_command("PSETEX", k, 30000, "v5") in (True, "OK")
    assert 28000 <= r.pttl(k) <= 30000
    assert r.set(k, "v6", exat=now + 400) is True
    assert 397 <= r.ttl(k) <= 400
    assert r.set(k, "v7", pxat=(now + 500) * 1000) is True
    assert 497 <= r.ttl(k) <= 500
    # GETEX
    assert r.getex(k, ex=50) == "v7"
    assert 48 <= r.ttl(k) <= 50
    assert r.getex(k, persist=True) == "v7"
    assert r.ttl(k) == -1


def test_expiry_actually_expires(r, p):
    k = p + "short"
    r.set(k, "v", px=200)
    r.set(p + "short2", "v", ex=1)
    assert r.get(k) == "v"
    time.sleep(1.2)
    assert r.get(k) is None
    assert r.exists(k) == 0
    assert r.get(p + "short2") is None
    assert r.ttl(k) == -2
    # expire in the past deletes
    r.set(k, "v")
    r.expireat(k, int(time.time()) - 10)
    assert r.get(k) is None


# ---------------------------------------------------------------- multi-key


def test_mset_mget(rx, p):
    c, conv = rx
    m = {p + "a": "1", p + "b": "2", p + "c": "3"}
    assert c.mset(m) is True
    assert c.mget([p + "a", p + "b", p + "x", p + "c"]) == [conv("1"), conv("2"), None, conv("3")]
    assert c.msetnx({p + "a": "9", p + "new": "9"}) is False
    assert c.get(p + "new") is None
    assert c.get(p + "a") == conv("1")
    assert c.msetnx({p + "n1": "x", p + "n2": "y"}) is True
    assert c.mget(p + "n1", p + "n2") == [conv("x"), conv("y")]


def test_pipeline_1000(rx, p):
    c, conv = rx
    pipe = c.pipeline(transaction=False)
    expected = []
    for i in range(250):
        pipe.set(p + "pl:%d" % i, "val%d" % i)
        expected.append(True)
        pipe.get(p + "pl:%d" % i)
        expected.append(conv("val%d" % i))
        pipe.incr(p + "plctr")
        expected.append(i + 1)
        pipe.exists(p + "pl:%d" % i, p + "nope")
        expected.append(1)
    res = pipe.execute()
    assert len(res) == 1000
    assert res == expected
    # pipelined reads of what the pipeline wrote
    pipe = c.pipeline(transaction=False)
    for i in range(1000):
        pipe.get(p + "pl:%d" % (i % 250))
    res = pipe.execute()
    assert res == [conv("val%d" % (i % 250)) for i in range(1000)]
    assert c.get(p + "plctr") == conv("250")


def test_pipeline_error_in_middle(r, p):
    r.set(p + "str", "abc")
    pipe = r.pipeline(transaction=False)
    pipe.set(p + "x", "1")
    pipe.incr(p + "str")
    pipe.get(p + "x")
    res = pipe.execute(raise_on_error=False)
    assert res[0] is True
    assert isinstance(res[1], redis.ResponseError)
    assert res[2] == "1"


def test_scan_keys(r, p):
    want = {p + "sc:%d" % i for i in range(50)}
    for k in want:
        r.set(k, "v")
    r.set(p + "other", "v")
    assert set(r.scan_iter(match=p + "sc:*", count=7)) == want
    assert set(r.scan_iter(match=p + "sc:*")) == want
    assert set(r.keys(p + "sc:*")) == want
    assert set(r.keys(p + "sc:1?")) == {p + "sc:%d" % i for i in range(10, 20)}
    # raw SCAN reply shape: (cursor:int, [keys])
    cur, keys = r.scan(0, match=p + "*", count=1000)
    assert isinstance(cur, int)
    assert all(isinstance(k, str) for k in keys)
    assert r.dbsize() >= 51
    rk = r.randomkey()
    assert isinstance(rk, str) and rk != ""


def test_binary_safe(rb, p):
    key = p.encode() + b"bin\x00\xff\r\n key"
    val = bytes(range(256)) * 3 + b"\x00\xff"
    assert rb.set(key, val) is True
    assert rb.get(key) == val
    assert rb.strlen(key) == len(val)
    assert rb.exists(key) == 1
    assert rb.append(key, b"\x00\x00") == len(val) + 2
    assert rb.get(key) == val + b"\x00\x00"
    k2 = p.encode() + b"\xff\xfe"
    rb.mset({k2: b"\x00", key: b"\xff"})
    assert rb.mget([k2, key]) == [b"\x00", b"\xff"]
    assert key in set(rb.scan_iter(match=p.encode() + b"bin*"))
    assert rb.delete(key, k2) == 2
    assert rb.get(key) is None


def test_large_value(rb, p):
    val = os.urandom(1024 * 1024)
    assert rb.set(p + "big", val) is True
    assert rb.get(p + "big") == val


def test_deleted_and_expired_keys_are_invisible(r, p):
    """Tombstones and expired keys must not show up in KEYS/SCAN/EXISTS/MGET."""
    r.mset({p + "a": "1", p + "b": "2", p + "c": "3"})
    assert r.delete(p + "a", p + "b") == 2
    assert r.delete(p + "a") == 0
    r.set(p + "e", "v", px=100)
    time.sleep(0.3)
    assert sorted(r.keys(p + "*")) == [p + "c"]
    assert sorted(r.scan_iter(match=p + "*")) == [p + "c"]
    assert r.exists(p + "a", p + "b", p + "c", p + "e") == 1
    assert r.mget(p + "a", p + "b", p + "c", p + "e") == [None, None, "3", None]
    assert r.type(p + "a") == "none"
    assert r.strlen(p + "a") == 0
    # re-create after delete
    assert r.set(p + "a", "again") is True
    assert r.get(p + "a") == "again"
    assert r.incr(p + "b") == 1


def test_dbsize_counts_live_keys(r, p):
    before = r.dbsize()
    r.mset({p + "x": "1", p + "y": "2", p + "z": "3"})
    assert r.dbsize() == before + 3
    r.delete(p + "x", p + "y")
    assert r.dbsize() == before + 1
    r.set(p + "z", "overwrite")
    assert r.dbsize() == before + 1


def test_incrbyfloat_formatting(r, p):
    k = p + "f"
    r.set(k, "5.0e3")
    assert r.incrbyfloat(k, 2.0e2) == pytest.approx(5200)
    assert r.get(k) == "5200"
    r.set(k, "10.5")
    r.incrbyfloat(k, 0.1)
    assert r.get(k) == "10.6"
    r.set(k, "0")
    r.incrbyfloat(k, -1.5)
    assert r.get(k) == "-1.5"
    # Redis computes in long double and prints with 17 digits, trailing zeros
    # trimmed: 0.1 + 0.2 is "0.3", not the f64 "0.30000000000000004"
    r.set(k, "0.1")
    r.incrbyfloat(k, 0.2)
    assert r.get(k) == "0.3"
    r.set(k, "1.1")
    r.incrbyfloat(k, 2.2)
    assert r.get(k) == "3.3"


def test_counter_limits(r, p):
    k = p + "lim"
    r.set(k, str(-(2**63)))
    with pytest.raises(redis.ResponseError, match="overflow|out of range"):
        r.decr(k)
    assert r.get(k) == str(-(2**63))
    r.set(k, " 1")
    with pytest.raises(redis.ResponseError, match="not an integer"):
        r.incr(k)
    r.set(k, "007")
    with pytest.raises(redis.ResponseError, match="not an integer"):
        r.incr(k)
    r.set(k, "-0")
    with pytest.raises(redis.ResponseError, match="not an integer"):
        r.incr(k)
    r.set(k, "12")
    assert r.incrby(k, 9223372036854775807 - 12) == 9223372036854775807


def test_set_expire_errors(r, p):
    with pytest.raises(redis.ResponseError, match="invalid expire time"):
        r.set(p + "k", "v", ex=0)
    with pytest.raises(redis.ResponseError, match="invalid expire time"):
        r.execute_command("SET", p + "k", "v", "EX", -5)
    with pytest.raises(redis.ResponseError, match="invalid expire time"):
        r.execute_command("SETEX", p + "k", 0, "v")
    with pytest.raises(redis.ResponseError, match="(?i)syntax error"):
        r.execute_command("SET", p + "k", "v", "NX", "XX")
    with pytest.raises(redis.ResponseError, match="(?i)syntax error"):
        r.execute_command("SET", p + "k", "v", "EX", 10, "PX", 100)
    with pytest.raises(redis.ResponseError, match="(?i)wrong number of arguments"):
        r.execute_command("MSET", p + "a", "1", p + "b")
    assert r.get(p + "k") is None


def test_many_connections(p):
    """100 concurrent connections, each doing a few commands."""
    clients = [make_client() for _ in range(100)]
    for i, c in enumerate(clients):
        assert c.set(p + str(i), str(i)) is True
    for i, c in enumerate(clients):
        assert c.get(p + str(i)) == str(i)
    for c in clients:
        c.close()


# ---------------------------------------------------------------- errors


def test_errors(r, p):
    r.set(p + "s", "not-a-number")
    with pytest.raises(redis.ResponseError, match="value is not an integer or out of range"):
        r.incr(p + "s")
    with pytest.raises(redis.ResponseError, match="value is not an integer or out of range"):
        r.incrby(p + "s", 5)
    with pytest.raises(redis.ResponseError, match="not a valid float"):
        r.incrbyfloat(p + "s", 1.0)
    with pytest.raises(redis.ResponseError, match="(?i)unknown command"):
        r.execute_command("NOSUCHCOMMAND", "x")
    with pytest.raises(redis.ResponseError, match="(?i)wrong number of arguments"):
        r.execute_command("GET")
    with pytest.raises(redis.ResponseError, match="(?i)syntax error"):
        r.execute_command("SET", p + "k", "v", "BOGUSOPT")
    with pytest.raises(redis.ResponseError):
        r.execute_command("EXPIRE", p + "s", "notanint")
    r.set(p + "big", str(2**63 - 1))
    with pytest.raises(redis.ResponseError):
        r.incr(p + "big")
    # the connection is still usable after errors
    assert r.get(p + "s") == "not-a-number"


def test_line_breaks_in_echoed_arguments_cannot_desync(p):
    # An error that quotes client bytes must stay one line: a raw "\n"
    # used to end the reply early, hang redis-py's parser, and hand request
    # data back as the reply to a later command.
    # A short timeout: a desynchronised parser waits for a line that never
    # comes.
    c = redis.Redis(host=HOST, port=PORT, password=PASSWORD, decode_responses=True, socket_timeout=5)
    try:
        c.set(p + "k", "real")
        for bad in ["x\r\n+INJECTED", "a\nb", "\r", "x\n-ERR fake\r\n:1"]:
            with pytest.raises(redis.ResponseError, match="(?i)unknown command"):
                c.execute_command("NOSUCHCOMMAND", bad)
            assert c.get(p + "k") == "real"
        pipe = c.pipeline(transaction=False)
        pipe.execute_command("NOSUCHCOMMAND", "x\r\n+INJECTED")
        pipe.get(p + "k")
        pipe.get(p + "k")
        replies = pipe.execute(raise_on_error=False)
        assert isinstance(replies[0], redis.ResponseError)
        assert replies[1:] == ["real", "real"]
        assert c.ping() is True
    finally:
        c.close()


# ---------------------------------------------------------------- handshake / server


def test_server_commands(r):
    assert r.execute_command("SELECT", 0) in (True, "OK", b"OK")
    assert r.client_setname("dynkv-compat") is True
    assert r.client_getname() == "dynkv-compat"
    assert isinstance(r.client_id(), int)
    secs, usecs = r.time()
    assert abs(secs - time.time()) < 5 and 0 <= usecs < 1_000_000
    assert isinstance(r.config_get("*max*"), dict)
    info = r.info()
    assert isinstance(info, dict) and len(info) > 0
    assert isinstance(r.lastsave(), object)
    assert r.wait(0, 0) >= 0
    cmds = r.command_count()
    assert isinstance(cmds, int) and cmds > 0


def test_resp3(p):
    c = make_client(decode=True, protocol=3)
    hello = c.execute_command("HELLO", 3)
    assert isinstance(hello, dict)
    assert hello.get("proto") == 3
    assert c.ping() is True
    assert c.set(p + "k", "v", ex=100) is True
    assert c.get(p + "k") == "v"
    assert c.get(p + "missing") is None
    assert c.incr(p + "c") == 1
    assert c.incrby(p + "c", 41) == 42
    assert 98 <= c.ttl(p + "k") <= 100
    assert c.mget(p + "k", p + "missing") == ["v", None]
    assert c.incrbyfloat(p + "f", 1.25) == pytest.approx(1.25)
    assert c.exists(p + "k") == 1
    with pytest.raises(redis.ResponseError, match="value is not an integer"):
        c.incr(p + "k")
    pipe = c.pipeline(transaction=False)
    for i in range(100):
        pipe.incr(p + "pc")
    assert pipe.execute() == list(range(1, 101))
    c.close()
    cb = make_client(decode=False, protocol=3)
    assert cb.get(p + "k") == b"v"
    cb.close()


@dynkv_only
def test_resp3_dyn_get_shape(p):
    c = make_client(decode=True, protocol=3)
    k = p + "d3"
    assert c.execute_command("DYN.PUT", k, "", "a") in (True, "OK")
    res = c.execute_command("DYN.GET", k)
    assert isinstance(res, list) and len(res) == 2
    ctx, vals = res
    assert isinstance(ctx, str) and ctx.isprintable() and ctx != ""
    assert vals == ["a"]
    c.close()


# ---------------------------------------------------------------- Dynamo


@dynkv_only
def test_dyn_siblings(rx, p):
    c, conv = rx
    k = p + "dyn"
    ctx, vals = c.execute_command("DYN.GET", k)
    assert vals == []
    assert c.execute_command("DYN.PUT", k, "", "v1") in (True, conv("OK"))
    assert c.execute_command("DYN.PUT", k, "", "v2") in (True, conv("OK"))
    ctx, vals = c.execute_command("DYN.GET", k)
    assert sorted(vals) == [conv("v1"), conv("v2")]
    assert ctx not in ("", b"")
    # GET picks one deterministic winner among siblings
    g = c.get(k)
    assert g in (conv("v1"), conv("v2"))
    assert all(c.get(k) == g for _ in range(5))
    # supersede both with the context
    assert c.execute_command("DYN.PUT", k, ctx, "v3") in (True, conv("OK"))
    ctx2, vals = c.execute_command("DYN.GET", k)
    assert vals == [conv("v3")]
    assert c.get(k) == conv("v3")
    # stale context: adds a sibling next to v3 instead of replacing it
    assert c.execute_command("DYN.PUT", k, ctx, "v4") in (True, conv("OK"))
    ctx3, vals = c.execute_command("DYN.GET", k)
    assert sorted(vals) == [conv("v3"), conv("v4")]
    # versioned delete of everything seen
    assert c.execute_command("DYN.DEL", k, ctx3) in (True, conv("OK"))
    ctx4, vals = c.execute_command("DYN.GET", k)
    assert dyn_live(vals) == []
    assert c.get(k) is None
    assert c.exists(k) == 0


@dynkv_only
def test_dyn_interop_with_plain_commands(rb, p):
    k = p + "dynplain"
    rb.set(k, b"plain\x00\xff")
    ctx, vals = rb.execute_command("DYN.GET", k)
    assert vals == [b"plain\x00\xff"]
    rb.execute_command("DYN.PUT", k, ctx, b"\x00new")
    assert rb.get(k) == b"\x00new"
    # plain SET supersedes siblings
    rb.execute_command("DYN.PUT", k, b"", b"sib")
    rb.set(k, b"final")
    ctx, vals = rb.execute_command("DYN.GET", k)
    assert vals == [b"final"]
    rb.delete(k)
    ctx, vals = rb.execute_command("DYN.GET", k)
    assert dyn_live(vals) == []


@dynkv_only
def test_dyn_quorum_args(r, p):
    """DYN.GET key [R n] / DYN.PUT key ctx value [W n] / DYN.DEL key ctx [W n]."""
    k = p + "q"
    assert r.execute_command("DYN.PUT", k, "", "a", "W", 1) in (True, "OK")
    ctx, vals = r.execute_command("DYN.GET", k, "R", 1)
    assert vals == ["a"]
    assert r.execute_command("DYN.DEL", k, ctx, "W", 1) in (True, "OK")
    ctx, vals = r.execute_command("DYN.GET", k, "R", 1)
    assert dyn_live(vals) == []
    with pytest.raises(redis.ResponseError):
        r.execute_command("DYN.GET", k, "R", 0)
    with pytest.raises(redis.ResponseError):
        r.execute_command("DYN.GET", k, "R", "x")


@dynkv_only
def test_dyn_errors(r, p):
    with pytest.raises(redis.ResponseError):
        r.execute_command("DYN.PUT", p + "k")
    with pytest.raises(redis.ResponseError):
        r.execute_command("DYN.GET")
    with pytest.raises(redis.ResponseError):
        r.execute_command("DYN.PUT", p + "k", "!!!not-a-context!!!", "v")


@dynkv_only
def test_info_dynamo(r):
    info = r.info("dynamo")
    for field in ("node_name", "n", "r", "w"):
        assert field in info, "INFO dynamo lacks %s: %r" % (field, info)
    assert int(info["n"]) >= 1
    assert 1 <= int(info["r"]) <= int(info["n"])
    assert 1 <= int(info["w"]) <= int(info["n"])
    raw = r.execute_command("INFO", "dynamo")
    text = raw if isinstance(raw, str) else str(raw)
    assert "node_name" in text


# ---------------------------------------------------------------- destructive: keep last


def test_zz_flushdb_dbsize(r, p):
    r.set(p + "a", "1")
    assert r.dbsize() >= 1
    assert r.flushdb() is True
    assert r.dbsize() == 0
    assert r.get(p + "a") is None
    assert list(r.scan_iter(match="*")) == []
    r.mset({p + "x": "1", p + "y": "2", p + "z": "3"})
    assert r.dbsize() == 3
    assert sorted(r.keys("*")) == sorted([p + "x", p + "y", p + "z"])
    assert r.flushall() is True
    assert r.dbsize() == 0


# --- observability: redis-py's own parsers read INFO, SLOWLOG, LATENCY, MONITOR ---


def test_info_sections_and_stats_fields(r):
    k = "obs:" + uuid.uuid4().hex
    r.set(k, "1")
    stats = r.info("stats")
    assert r.get(k) == "1" and r.get(k + ":missing") is None
    after = r.info("stats")
    assert after["keyspace_hits"] == stats["keyspace_hits"] + 1
    assert after["keyspace_misses"] == stats["keyspace_misses"] + 1
    for field in ("instantaneous_ops_per_sec", "total_net_input_bytes", "total_net_output_bytes",
                  "expired_keys", "evicted_keys"):
        assert field in after, field
    server = r.info("server")
    assert len(server["run_id"]) == 40
    assert "used_memory_peak" in r.info("memory")
    assert "used_cpu_user" in r.info("cpu")
    cs = r.info("commandstats")
    assert cs["cmdstat_get"]["calls"] >= 2 and "usec_per_call" in cs["cmdstat_get"]
    assert "cmdstat_get" not in r.info()  # not a default section
    with pytest.raises(redis.ResponseError):
        r.execute_command("INCR", k, "extra")
    assert r.info("errorstats")["errorstat_ERR"]["count"] >= 1


def test_slowlog_through_redis_py(r):
    old = r.config_get("slowlog-log-slower-than")["slowlog-log-slower-than"]
    r.config_set("slowlog-log-slower-than", 0)
    try:
        r.client_setname("slowpy")
        r.slowlog_reset()
        r.set("slowlog:k", "v")
        def text(v):
            return v.decode() if isinstance(v, bytes) else v

        entries = r.slowlog_get(10)
        assert r.slowlog_len() >= 1
        e = next(e for e in entries if text(e["command"]).startswith("SET"))
        assert text(e["command"]) == "SET slowlog:k v"
        assert isinstance(e["id"], int) and isinstance(e["start_time"], int)
        assert isinstance(e["duration"], int)
        assert text(e["client_address"]).startswith("127.0.0.1:")
        assert text(e["client_name"]) == "slowpy"
    finally:
        r.config_set("slowlog-log-slower-than", old)
        r.slowlog_reset()


def test_monitor_through_redis_py(r):
    k = "mon:" + uuid.uuid4().hex
    with r.monitor() as m:
        time.sleep(0.1)
        r.set(k, "hello world")
        for _ in range(50):
            cmd = m.next_command()
            if k in cmd["command"]:
                break
        assert cmd["command"] == "SET %s hello world" % k
        assert cmd["db"] == 0 and cmd["client_address"] == "127.0.0.1"
        assert isinstance(cmd["time"], float)


def test_memory_usage_and_latency(r):
    k = "mem:" + uuid.uuid4().hex
    r.set(k, "x" * 1000)
    assert r.memory_usage(k) >= 1000
    assert r.memory_usage(k + ":missing") is None
    assert isinstance(r.latency_latest(), list)
