"""Transactions and databases through real client libraries.

redis-py's default pipeline (MULTI/EXEC), WATCH-based optimistic locking,
Django's Redis cache (`set_many` runs a MULTI/EXEC pipeline), and clients
that pick a database with a `redis://host:port/N` URL. Runs against the
node at $DYNKV_HOST:$DYNKV_PORT; with DYNKV_TARGET=redis against a real
redis-server, with the same assertions.
"""

import os
import threading
import uuid

import pytest
import redis

HOST = os.environ.get("DYNKV_HOST", "127.0.0.1")
PORT = int(os.environ.get("DYNKV_PORT", "6379"))
PASSWORD = os.environ.get("DYNKV_PASSWORD") or None


def client(db=0):
    return redis.Redis(
        host=HOST, port=PORT, password=PASSWORD, db=db, decode_responses=True, socket_timeout=30
    )


@pytest.fixture
def p():
    return "tx:%s:" % uuid.uuid4().hex[:10]


def test_default_pipeline_is_a_transaction(p):
    r = client()
    pipe = r.pipeline()  # transaction=True: MULTI ... EXEC
    pipe.set(p + "a", "1").incr(p + "a").get(p + "a").sadd(p + "s", "x", "y").scard(p + "s")
    assert pipe.execute() == [True, 2, "2", 2, 2]
    # A command failing at run time is one of EXEC's replies.
    pipe = r.pipeline()
    pipe.set(p + "b", "v").hset(p + "b", "f", "v").get(p + "b")
    res = pipe.execute(raise_on_error=False)
    assert res[0] is True and isinstance(res[1], redis.ResponseError) and res[2] == "v"


def test_watch_optimistic_locking(p):
    r = client()
    r.set(p + "stock", 10)

    def buy():
        with r.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(p + "stock")
                    left = int(pipe.get(p + "stock"))
                    pipe.multi()
                    pipe.set(p + "stock", left - 1)
                    pipe.execute()
                    return
                except redis.WatchError:
                    continue

    threads = [threading.Thread(target=buy) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert r.get(p + "stock") == "5"
    # A write between WATCH and EXEC makes EXEC fail with WatchError.
    with r.pipeline() as pipe:
        pipe.watch(p + "stock")
        r.set(p + "stock", 100)
        pipe.multi()
        pipe.set(p + "stock", 0)
        with pytest.raises(redis.WatchError):
            pipe.execute()
    assert r.get(p + "stock") == "100"
    # redis-py's transaction() helper retries until EXEC runs.
    r.transaction(lambda pipe: pipe.multi() or pipe.incr(p + "stock"), p + "stock")
    assert r.get(p + "stock") == "101"


def test_database_urls_and_select(p):
    one = redis.Redis.from_url(
        "redis://%s%s:%d/1" % (":%s@" % PASSWORD if PASSWORD else "", HOST, PORT),
        decode_responses=True,
    )
    zero = client(0)
    one.set(p + "k", "in one")
    zero.set(p + "k", "in zero")
    assert one.get(p + "k") == "in one"
    assert zero.get(p + "k") == "in zero"
    assert client(1).get(p + "k") == "in one"
    assert client(2).get(p + "k") is None
    assert one.move(p + "k", 3) is True
    assert client(3).get(p + "k") == "in one"
    assert one.exists(p + "k") == 0
    assert zero.get(p + "k") == "in zero"
    info = zero.info("keyspace")
    assert "db0" in info and "db3" in info
    client(3).flushdb()
    assert client(3).dbsize() == 0
    assert zero.get(p + "k") == "in zero"


def test_django_cache_set_many(p):
    import django
    from django.conf import settings

    location = "redis://%s%s:%d/2" % (":%s@" % PASSWORD if PASSWORD else "", HOST, PORT)
    if not settings.configured:
        settings.configure(
            CACHES={
                "default": {
                    "BACKEND": "django.core.cache.backends.redis.RedisCache",
                    "LOCATION": location,
                }
            }
        )
        django.setup()
    from django.core.cache import cache

    data = {p + "k%d" % i: {"n": i} for i in range(20)}
    assert cache.set_many(data, timeout=300) == []
    assert cache.get_many(list(data)) == data
    assert cache.get(p + "k7") == {"n": 7}
    assert cache.add(p + "counter", 0) is True
    assert cache.add(p + "counter", 5) is False
    assert cache.incr(p + "counter") == 1
    cache.delete_many([p + "k0", p + "k1"])
    assert cache.get(p + "k0") is None
    assert cache.get(p + "k2") == {"n": 2}
    assert client(2).ttl(":1:" + p + "k5") > 200
    assert client(0).exists(":1:" + p + "k5") == 0
