"""Pub/Sub through redis-py: subscribe/psubscribe, get_message, a
background listener thread, and PUBSUB introspection. Runs against the
node at $DYNKV_HOST:$DYNKV_PORT; with DYNKV_TARGET=redis against a real
redis-server, with the same assertions.
"""

import os
import threading
import time
import uuid

import redis

HOST = os.environ.get("DYNKV_HOST", "127.0.0.1")
PORT = int(os.environ.get("DYNKV_PORT", "6379"))
PASSWORD = os.environ.get("DYNKV_PASSWORD") or None


def client():
    return redis.Redis(
        host=HOST, port=PORT, password=PASSWORD, decode_responses=True, socket_timeout=30
    )


def next_message(ps, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        msg = ps.get_message(ignore_subscribe_messages=True, timeout=0.5)
        if msg is not None:
            return msg
    raise AssertionError("no message within %.0f s" % timeout)


def test_subscribe_and_pattern_messages():
    ch = "ps:%s" % uuid.uuid4().hex[:8]
    r = client()
    ps = r.pubsub()
    ps.subscribe(ch)
    ps.psubscribe(ch[:5] + "*")
    assert r.pubsub_numsub(ch) == [(ch, 1)]
    assert r.publish(ch, "hello") == 2
    got = sorted((m["type"], m["data"]) for m in (next_message(ps), next_message(ps)))
    assert got == [("message", "hello"), ("pmessage", "hello")]
    ps.unsubscribe(ch)
    ps.punsubscribe()
    ps.close()


def test_listener_thread_gets_every_message_in_order():
    ch = "ps:%s" % uuid.uuid4().hex[:8]
    r = client()
    received = []
    done = threading.Event()

    def handler(msg):
        received.append(msg["data"])
        if len(received) == 500:
            done.set()

    ps = r.pubsub()
    ps.subscribe(**{ch: handler})
    worker = ps.run_in_thread(sleep_time=0.01, daemon=True)
    for i in range(500):
        r.publish(ch, str(i))
    assert done.wait(30)
    worker.stop()
    worker.join(10)
    assert received == [str(i) for i in range(500)]


def test_keyspace_notifications_for_an_expiry_handler():
    # The common pattern: a worker reacting to keys that expire (session
    # timeouts, delayed jobs) through __keyevent@0__:expired.
    r = client()
    before = r.config_get("notify-keyspace-events")["notify-keyspace-events"]
    r.config_set("notify-keyspace-events", "Ex")
    try:
        key = "ks:%s" % uuid.uuid4().hex[:8]
        ps = r.pubsub()
        ps.psubscribe("__keyevent@0__:expired")
        next_message_of_type(ps, "psubscribe")
        r.set(key, "v", px=100)
        msg = next_message(ps)
        assert msg["channel"] == "__keyevent@0__:expired"
        assert msg["data"] == key
        assert r.exists(key) == 0
        ps.close()
    finally:
        r.config_set("notify-keyspace-events", before)


def next_message_of_type(ps, kind, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        msg = ps.get_message(timeout=0.5)
        if msg is not None and msg["type"] == kind:
            return msg
    raise AssertionError("no %s within %.0f s" % (kind, timeout))
