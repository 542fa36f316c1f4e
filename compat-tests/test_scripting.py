"""Lua scripting through real client libraries.

redis-py's `Lock` (acquire with SET NX PX; release, extend and reacquire
with Lua scripts), `register_script` (EVALSHA, reloading after NOSCRIPT),
scripts inside a MULTI/EXEC pipeline, and a lock keeping concurrent
workers out of each other's critical section. Runs against the node at
$DYNKV_HOST:$DYNKV_PORT; with DYNKV_TARGET=redis against a real
redis-server, with the same assertions.
"""

import os
import threading
import time
import uuid

import pytest
import redis
from redis.exceptions import LockError, LockNotOwnedError

HOST = os.environ.get("DYNKV_HOST", "127.0.0.1")
PORT = int(os.environ.get("DYNKV_PORT", "6379"))
PASSWORD = os.environ.get("DYNKV_PASSWORD") or None


def client():
    return redis.Redis(
        host=HOST, port=PORT, password=PASSWORD, decode_responses=True, socket_timeout=30
    )


@pytest.fixture
def p():
    return "lua:%s:" % uuid.uuid4().hex[:10]


def test_lock_acquire_extend_reacquire_release(p):
    r = client()
    lock = r.lock(p + "lock", timeout=5)
    assert lock.acquire(blocking=False)
    assert lock.owned()
    # Another holder cannot take it.
    assert not r.lock(p + "lock", timeout=5).acquire(blocking=False)
    assert lock.extend(10)  # adds 10 s to what is left
    assert 5000 < r.pttl(p + "lock") <= 15000
    assert lock.reacquire()  # resets the timeout to 5 s
    assert 0 < r.pttl(p + "lock") <= 5000
    lock.release()
    assert r.get(p + "lock") is None
    with pytest.raises(LockError):  # released already
        lock.release()
    # A lock that expired under its holder is not released by it.
    short = r.lock(p + "short", timeout=0.2)
    assert short.acquire(blocking=False)
    time.sleep(0.4)
    taken = r.lock(p + "short", timeout=5)
    assert taken.acquire(blocking=False)
    with pytest.raises(LockNotOwnedError):
        short.release()
    assert taken.owned()
    taken.release()


def test_lock_keeps_workers_out_of_each_others_critical_section(p):
    inside = []
    counter = p + "counter"
    errors = []

    def worker():
        r = client()
        try:
            for _ in range(15):
                with r.lock(p + "mutex", timeout=10, blocking_timeout=60, sleep=0.005):
                    inside.append(1)
                    assert len(inside) == 1, "two holders at once"
                    value = int(r.get(counter) or 0)
                    r.set(counter, value + 1)
                    inside.pop()
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert int(client().get(counter)) == 60


def test_registered_script_reloads_after_flush(p):
    r = client()
    incr_by = r.register_script("return redis.call('INCRBY', KEYS[1], ARGV[1])")
    assert incr_by(keys=[p + "n"], args=[5]) == 5
    r.script_flush()
    assert incr_by(keys=[p + "n"], args=[2]) == 7  # NOSCRIPT, SCRIPT LOAD, EVALSHA
    assert r.script_exists(incr_by.sha) == [True]


def test_scripts_in_a_transaction_pipeline(p):
    r = client()
    swap = r.register_script(
        "local a = redis.call('GET', KEYS[1]); local b = redis.call('GET', KEYS[2]); "
        "redis.call('SET', KEYS[1], b); redis.call('SET', KEYS[2], a); return {b, a}"
    )
    r.mset({p + "x": "1", p + "y": "2"})
    pipe = r.pipeline()  # MULTI ... EVALSHA ... EXEC
    swap(keys=[p + "x", p + "y"], client=pipe)
    pipe.get(p + "x")
    assert pipe.execute() == [["2", "1"], "2"]
    assert r.get(p + "y") == "1"


def test_cjson_and_eval_ro(p):
    r = client()
    r.hset(p + "h", mapping={"a": "1", "b": "2"})
    doc = r.eval(
        "local kv = redis.call('HGETALL', KEYS[1]); local t = {}; "
        "for i = 1, #kv, 2 do t[kv[i]] = tonumber(kv[i + 1]) end; return cjson.encode(t)",
        1,
        p + "h",
    )
    import json

    assert json.loads(doc) == {"a": 1, "b": 2}
    assert r.eval_ro("return redis.call('HLEN', KEYS[1])", 1, p + "h") == 2
    with pytest.raises(redis.exceptions.ResponseError, match="read-only"):
        r.eval_ro("return redis.call('DEL', KEYS[1])", 1, p + "h")


def test_limits_fixed_sliding_and_moving_window_rate_limiters(p):
    """The `limits` package's Redis storage counts hits with Lua scripts."""
    from limits import RateLimitItemPerMinute, storage, strategies

    store = storage.storage_from_string("redis://%s:%d" % (HOST, PORT), password=PASSWORD)
    item = RateLimitItemPerMinute(5)
    for strategy in (
        strategies.FixedWindowRateLimiter,
        strategies.SlidingWindowCounterRateLimiter,
        # Keeps each hit's time in a list (LPUSH/LRANGE/LTRIM in Lua).
        strategies.MovingWindowRateLimiter,
    ):
        limiter = strategy(store)
        who = p + strategy.__name__
        assert [limiter.hit(item, who) for _ in range(7)] == [True] * 5 + [False] * 2
        assert limiter.get_window_stats(item, who).remaining == 0
        assert limiter.hit(item, who + ":someone-else")
        limiter.clear(item, who)
        assert limiter.hit(item, who)


def test_django_redis_incr(p):
    """django-redis's incr/decr run a Lua script (atomic read-and-add)."""
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(
            CACHES={
                "default": {
                    "BACKEND": "django_redis.cache.RedisCache",
                    "LOCATION": "redis://%s:%d/3" % (HOST, PORT),
                    "OPTIONS": {"PASSWORD": PASSWORD} if PASSWORD else {},
                }
            }
        )
        django.setup()
    from django.core.cache import caches

    cache = caches["default"]
    cache.set(p + "hits", 10)
    assert cache.incr(p + "hits") == 11
    assert cache.incr(p + "hits", 5) == 16
    assert cache.decr(p + "hits", 6) == 10
    assert cache.get(p + "hits") == 10
    with pytest.raises(ValueError):
        cache.incr(p + "absent")
