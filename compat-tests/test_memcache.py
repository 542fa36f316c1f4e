"""pymemcache against dynkv's memcached port (or a real memcached: the same
file, run with MC_TARGET=memcached, must pass there too).

Env: MC_HOST, MC_PORT; MC_TARGET=memcached|dynkv; for dynkv also
DYNKV_PORT (the RESP port, for the checks that cross protocols).
"""
import os
import threading

import pytest
from pymemcache.client.base import Client
from pymemcache import serde
from pymemcache.exceptions import MemcacheClientError, MemcacheServerError

HOST = os.environ.get("MC_HOST", "127.0.0.1")
PORT = int(os.environ["MC_PORT"])
TARGET = os.environ.get("MC_TARGET", "dynkv")


@pytest.fixture
def mc():
    c = Client((HOST, PORT), serde=serde.pickle_serde, connect_timeout=5, timeout=10, default_noreply=False)
    c.flush_all()
    yield c
    c.close()


@pytest.fixture
def raw():
    c = Client((HOST, PORT), connect_timeout=5, timeout=10, default_noreply=False)
    yield c
    c.close()


def test_set_get_types_round_trip(mc):
    values = {"s": "text ü", "b": b"\x00\xffbytes", "i": 42, "l": [1, {"a": 2}], "f": 1.5}
    for k, v in values.items():
        assert mc.set(k, v) is True
    for k, v in values.items():
        assert mc.get(k) == v
    assert mc.get_many(list(values) + ["missing"]) == values


def test_add_replace_append_prepend_delete(raw):
    raw.flush_all()
    assert raw.add("k", b"1", noreply=False) is True
    assert raw.add("k", b"2", noreply=False) is False
    assert raw.replace("k", b"3", noreply=False) is True
    assert raw.replace("nope", b"3", noreply=False) is False
    assert raw.append("k", b"z", noreply=False) is True
    assert raw.prepend("k", b"a", noreply=False) is True
    assert raw.get("k") == b"a3z"
    assert raw.append("nope", b"z", noreply=False) is False
    assert raw.delete("k", noreply=False) is True
    assert raw.delete("k", noreply=False) is False
    assert raw.get("k") is None


def test_incr_decr(raw):
    raw.flush_all()
    assert raw.incr("n", 1) is None
    raw.set("n", b"10")
    assert raw.incr("n", 5) == 15
    assert raw.decr("n", 20) == 0
    assert raw.incr("n", 2**64 - 1) == 2**64 - 1
    assert raw.incr("n", 1) == 0
    raw.set("t", b"text")
    with pytest.raises(MemcacheClientError):
        raw.incr("t", 1)


def test_gets_cas(raw):
    raw.flush_all()
    raw.set("c", b"v0")
    value, unique = raw.gets("c")
    assert value == b"v0"
    assert raw.cas("c", b"v1", unique, noreply=False) is True
    # The old unique no longer matches.
    assert raw.cas("c", b"v2", unique, noreply=False) is False
    value, unique2 = raw.gets("c")
    assert value == b"v1" and unique2 != unique
    assert raw.cas("missing", b"x", unique2, noreply=False) is None
    assert raw.gets_many(["c", "missing"]) == {"c": (b"v1", unique2)}


def test_two_clients_racing_cas_one_wins(raw):
    raw.flush_all()
    others = [Client((HOST, PORT), timeout=10, default_noreply=False) for _ in range(2)]
    try:
        for round_ in range(50):
            key = f"race{round_}"
            raw.set(key, b"start")
            uniques = [c.gets(key)[1] for c in others]
            results = [None, None]
            barrier = threading.Barrier(2)

            def go(i):
                barrier.wait()
                results[i] = others[i].cas(key, f"c{i}".encode(), uniques[i], noreply=False)

            threads = [threading.Thread(target=go, args=(i,)) for i in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert sorted(results) == [False, True], (round_, results)
    finally:
        for c in others:
            c.close()


def test_touch_gat_and_expiry(raw):
    raw.flush_all()
    raw.set("e", b"v", expire=100)
    assert raw.touch("e", 200, noreply=False) is True
    assert raw.touch("nope", 200, noreply=False) is False
    # pymemcache has no gat/gats call: send them as raw commands.
    assert raw.raw_command(b"gat 300 e", b"END\r\n") == b"VALUE e 0 1\r\nv\r\n"
    reply = raw.raw_command(b"gats 300 e", b"END\r\n").split(b"\r\n")
    header = reply[0].split(b" ")
    assert header[:4] == [b"VALUE", b"e", b"0", b"1"] and reply[1] == b"v"
    assert raw.cas("e", b"w", int(header[4]), noreply=False) is True
    raw.set("gone", b"v", expire=-1)
    assert raw.get("gone") is None


def test_flags_kept(raw):
    raw.flush_all()
    writer = Client((HOST, PORT), serializer=lambda key, value: (value, 12345), default_noreply=False)
    seen = {}

    def deserializer(key, value, flags):
        seen[key] = flags
        return value

    reader = Client((HOST, PORT), deserializer=deserializer, default_noreply=False)
    try:
        writer.set("f", b"v", noreply=False)
        assert reader.get("f") == b"v"
        assert seen["f"] == 12345
        # append keeps the flags the value was stored with
        raw.append("f", b"w", noreply=False)
        assert reader.get("f") == b"vw"
        assert seen["f"] == 12345
    finally:
        writer.close()
        reader.close()


def test_large_value_and_limits(raw):
    raw.flush_all()
    big = b"x" * (1024 * 1024 - 512)
    assert raw.set("big", big, noreply=False) is True
    assert raw.get("big") == big
    with pytest.raises(MemcacheServerError):
        raw.set("too-big", b"x" * (2 * 1024 * 1024), noreply=False)
    assert raw.get("too-big") is None
    with pytest.raises(MemcacheClientError):
        raw.get("k" * 251)


def test_stats_version(raw):
    stats = raw.stats()
    for field in (b"cmd_get", b"get_hits", b"curr_connections"):
        assert field in stats
    assert raw.version()
    settings = raw.stats("settings")
    assert settings[b"item_size_max"] == 1024 * 1024


@pytest.mark.skipif(TARGET != "dynkv", reason="crosses into the RESP port")
def test_same_keyspace_as_redis(raw):
    import redis

    r = redis.Redis(host=HOST, port=int(os.environ["DYNKV_PORT"]))
    raw.flush_all()
    raw.set("shared", b"from memcached")
    assert r.get("shared") == b"from memcached"
    r.set("back", "from redis")
    assert raw.get("back") == b"from redis"
    raw.set("counter", b"1")
    assert raw.incr("counter", 1) == 2
    assert r.incr("counter") == 3
    assert raw.incr("counter", 1) == 4
