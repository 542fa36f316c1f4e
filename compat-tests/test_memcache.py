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


# ---- meta protocol -------------------------------------------------------

def meta_client():
    from meta_memcache import CacheClient, ServerAddress, connection_pool_factory_builder

    return CacheClient.cache_client_from_servers(
        servers=[ServerAddress(host=HOST, port=PORT)],
        connection_pool_factory_fn=connection_pool_factory_builder(),
    )


def test_meta_memcache_client(raw):
    from meta_memcache import Key

    raw.flush_all()
    c = meta_client()
    assert c.set(key=Key("mm:a"), value={"x": [1, 2]}, ttl=100) is True
    assert c.get(key=Key("mm:a")) == {"x": [1, 2]}
    assert c.delete(key=Key("mm:a")) is True
    assert c.get(key=Key("mm:a")) is None
    assert c.set(key=Key("mm:b"), value="text", ttl=0) is True
    value, cas = c.get_cas(key=Key("mm:b"))
    assert value == "text" and cas is not None
    assert c.set(key=Key("mm:b"), value="new", ttl=0, cas_token=cas) is True
    assert c.set(key=Key("mm:b"), value="newer", ttl=0, cas_token=cas) is False
    assert c.get(key=Key("mm:b")) == "new"
    assert c.delta_initialize(key=Key("mm:n"), delta=1, initial_value=10, initial_ttl=60) is True
    assert c.delta_and_get(key=Key("mm:n"), delta=5) == 15
    assert c.touch(key=Key("mm:b"), ttl=50) is True
    got = c.multi_get(keys=[Key("mm:b"), Key("mm:zz")])
    assert sorted((k.key, v) for k, v in got.items()) == [("mm:b", "new"), ("mm:zz", None)]
    # a key longer than 250 bytes goes as a base64 digest (the b flag)
    long_key = Key("k" * 300)
    assert c.set(key=long_key, value="long", ttl=0) is True
    assert c.get(key=long_key) == "long"


class MetaConn:
    """One raw connection: sends a meta command, reads one reply (a VA
    reply's value included), returned without the final line ending."""

    def __init__(self):
        import socket

        self.sock = socket.create_connection((HOST, PORT), timeout=10)
        self.buf = b""

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            assert chunk, "connection closed"
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def __call__(self, cmd):
        self.sock.sendall(cmd + b"\r\n")
        line = self._line()
        if line.startswith(b"VA "):
            size = int(line.split(b" ")[1])
            while len(self.buf) < size + 2:
                self.buf += self.sock.recv(65536)
            value, self.buf = self.buf[:size], self.buf[size + 2:]
            return line + b"\r\n" + value
        return line


def test_meta_commands_raw(raw):
    raw.flush_all()
    r = MetaConn()
    assert r(b"ms mk 2 T0 F5\r\nhi") == b"HD"
    assert r(b"mg mk v f t s k Oxy") == b"VA 2 f5 t-1 s2 kmk Oxy\r\nhi"
    assert r(b"mg mk") == b"HD"
    assert r(b"mg none v q\r\nmn") == b"MN"
    assert r(b"mg none v") == b"EN"
    assert r(b"ms mk 1 MA\r\n!") == b"HD"
    assert r(b"mg mk v") == b"VA 3\r\nhi!"
    assert r(b"ms new 1 ME\r\nx") == b"HD"
    assert r(b"ms new 1 ME\r\nx") == b"NS"
    assert r(b"ms gone 1 MR\r\nx") == b"NS"
    assert r(b"md new") == b"HD"
    assert r(b"md new") == b"NF"
    assert r(b"ma cnt") == b"NF"
    assert r(b"ma cnt N0 J10 v") == b"VA 2\r\n10"
    assert r(b"ma cnt D5 v") == b"VA 2\r\n15"
    assert r(b"ma cnt MD D100 v") == b"VA 1\r\n0"
    header = r(b"mg mk c")
    assert header.startswith(b"HD c")
    token = header.split(b" c")[1]
    assert r(b"ms mk 1 C" + token + b"\r\nz") == b"HD"
    assert r(b"ms mk 1 C" + token + b"\r\nz") == b"EX"
    assert r(b"mn") == b"MN"


def test_meta_stale_items_and_recache_wins_raw(raw):
    """mg N / R, md I, ms I: the W / Z / X flags, byte for byte the same
    from dynkv and from memcached 1.6."""
    raw.flush_all()
    r, o = MetaConn(), MetaConn()
    assert r(b"mg viv v N30 s") == b"VA 0 s0 W\r\n"
    assert o(b"mg viv v N30 s") == b"VA 0 s0 Z\r\n"
    assert o(b"mg viv s k Oq") == b"HD s0 kviv Oq Z"
    assert r(b"ms viv 3 T60\r\nnew") == b"HD"
    assert r(b"mg viv v N30") == b"VA 3\r\nnew"
    assert r(b"mg viv v R30") == b"VA 3\r\nnew"
    assert r(b"mg viv v R100") == b"VA 3 W\r\nnew"
    assert o(b"mg viv v R100") == b"VA 3 Z\r\nnew"
    assert r(b"ms k 2 T0\r\nhi") == b"HD"
    assert r(b"mg k v R30") == b"VA 2\r\nhi"
    assert r(b"md k I T30") == b"HD"
    assert r(b"mg k v") == b"VA 2 X W\r\nhi"
    assert o(b"mg k v") == b"VA 2 Z X\r\nhi"
    assert r(b"md k I q\r\nmn") == b"MN"
    assert o(b"mg k v") == b"VA 2 X W\r\nhi"
    # an older cas with I stores, but the item stays stale (and won)
    assert r(b"ms k 2 C1 I\r\nv2") == b"HD"
    assert r(b"mg k v") == b"VA 2 Z X\r\nv2"
    assert r(b"ms k 2 MA C1 I\r\nv3") == b"EX"
    token = r(b"mg k c").split(b" ")[1][1:]
    assert r(b"ms k 2 C" + token + b" I\r\nv4") == b"HD"
    assert r(b"mg k v") == b"VA 2\r\nv4"
    assert r(b"md ghost I") == b"NF"
    assert r(b"ms ghost 2 C1 I\r\nv1") == b"NF"
    assert r(b"mg k W") == b"CLIENT_ERROR invalid flag"
    # a refused ms loses its data block with it
    assert r(b"ms k 1 Q\r\nx") == b"CLIENT_ERROR invalid flag"
    assert r(b"mn") == b"MN"


@pytest.mark.skipif(TARGET == "memcached", reason="E came after memcached 1.6.18")
def test_meta_chosen_cas_raw(raw):
    raw.flush_all()
    r = MetaConn()
    assert r(b"ms e 2 E500\r\nhi") == b"HD"
    assert r(b"mg e c") == b"HD c500"
    assert r(b"ms e 2 C499 E600\r\nho") == b"EX"
    assert r(b"ms e 2 C500 E600 c\r\nho") == b"HD c600"
    assert r(b"md e I E700") == b"HD"
    assert r(b"mg e v c") == b"VA 2 c700 X W\r\nho"
    assert r(b"ms e 2 C600 I E650 c\r\nhu") == b"HD c650"
    assert r(b"mg e v c") == b"VA 2 c650 Z X\r\nhu"
    assert r(b"ms n 1 E7\r\n5") == b"HD"
    assert r(b"ma n E99 c v") == b"VA 1 c99\r\n6"
    assert r(b"mg viv v N30 E1234 c") == b"VA 0 c1234 W\r\n"
