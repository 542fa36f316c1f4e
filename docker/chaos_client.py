#!/usr/bin/env python3
"""Bounded writer/reader and checker for docker/chaos.sh (needs redis-py).

  load    writes COUNT fresh keys (one value each) round-robin through the
          nodes while a reader GETs keys already acknowledged; every
          acknowledged write is appended to the ledger (JSON lines).
  verify  reads every ledger key back through every given node.

A "nil read" is a GET answering nil for a key whose SET had been
acknowledged before the GET was sent; a "lost write" is a ledger key that a
node answers nil (or another value) for in `verify`. Errors and timeouts
(an unreachable node, a quorum not met) are counted apart: they are
unavailability, not lost data. Both commands print one JSON summary line.
"""

import argparse
import json
import random
import sys
import threading
import time

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry


def connect(host, port, password, timeout):
    # No retries inside redis-py: a request to a partitioned node must fail
    # after `timeout`, not block the writer until the partition heals.
    return redis.Redis(
        host=host,
        port=port,
        password=password,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        retry_on_timeout=False,
        decode_responses=True,
    )


def parse_nodes(specs):
    nodes = []
    for spec in specs:
        name, _, addr = spec.partition("=")
        host, _, port = addr.rpartition(":")
        if not name or not host or not port.isdigit():
            sys.exit(f"bad --node {spec!r}: want NAME=HOST:PORT")
        nodes.append((name, host, int(port)))
    if not nodes:
        sys.exit("give at least one --node NAME=HOST:PORT")
    return nodes


class Nodes:
    """One connection pool per node, and a short memory of which failed, so
    an unreachable node costs one timeout and not one per request."""

    def __init__(self, nodes, password, timeout):
        self.names = [n for n, _, _ in nodes]
        self.clients = {name: connect(host, port, password, timeout) for name, host, port in nodes}
        self.counts = {name: {"set_ok": 0, "set_err": 0, "get_ok": 0, "get_err": 0} for name in self.names}
        self.failed_at = {}
        self.lock = threading.Lock()

    def order(self, first):
        """Node names starting at index `first`, recently failed ones last."""
        names = self.names[first % len(self.names):] + self.names[: first % len(self.names)]
        now = time.monotonic()
        with self.lock:
            fresh = [n for n in names if now - self.failed_at.get(n, -1e9) > 2.0]
        return fresh + [n for n in names if n not in fresh]

    def failed(self, name):
        with self.lock:
            self.failed_at[name] = time.monotonic()


def load(args):
    nodes = Nodes(parse_nodes(args.node), args.password, args.timeout)
    acked = []  # (key, value), in acknowledgement order
    acked_lock = threading.Lock()
    stats = {
        "writes_attempted": 0,
        "writes_acked": 0,
        "writes_failed": 0,
        "write_retries": 0,
        "reads": 0,
        "reads_ok": 0,
        "nil_reads": 0,
        "wrong_reads": 0,
        "read_errors": 0,
    }
    examples = {"nil": [], "wrong": [], "write_error": [], "read_error": []}
    stop = threading.Event()
    deadline = time.monotonic() + args.max_seconds
    run = f"{int(time.time())}-{random.randrange(1 << 30):x}"

    def note(kind, text):
        if len(examples[kind]) < 5:
            examples[kind].append(text)

    def writer():
        interval = 1.0 / args.rate if args.rate > 0 else 0.0
        with open(args.ledger, "a", encoding="utf-8") as ledger:
            for i in range(args.count):
                if time.monotonic() > deadline:
                    break
                started = time.monotonic()
                key = f"{args.prefix}:{i}"
                value = f"{run}:{i}"
                stats["writes_attempted"] += 1
                ok = False
                # The same value on every try: if a failed try did land, the
                # versions a retry adds agree with it.
                for attempt, name in enumerate(nodes.order(i)[: args.tries]):
                    if attempt:
                        stats["write_retries"] += 1
                    try:
                        if nodes.clients[name].set(key, value):
                            nodes.counts[name]["set_ok"] += 1
                            ok = True
                            break
                        nodes.counts[name]["set_err"] += 1
                    except redis.RedisError as e:
                        nodes.counts[name]["set_err"] += 1
                        nodes.failed(name)
                        note("write_error", f"{name} SET {key}: {e}")
                if ok:
                    with acked_lock:
                        acked.append((key, value))
                    stats["writes_acked"] += 1
                    ledger.write(json.dumps({"k": key, "v": value}) + "\n")
                    ledger.flush()
                else:
                    stats["writes_failed"] += 1
                spare = interval - (time.monotonic() - started)
                if spare > 0:
                    time.sleep(spare)
        stop.set()

    def reader(seed):
        rng = random.Random(seed)
        interval = 1.0 / args.read_rate if args.read_rate > 0 else 0.0
        while not stop.is_set() and time.monotonic() < deadline:
            started = time.monotonic()
            with acked_lock:
                if not acked:
                    item = None
                else:
                    # Mostly recent writes: those are the ones a failover loses.
                    pick = len(acked) - 1 - min(int(rng.expovariate(1 / 50)), len(acked) - 1)
                    item = acked[pick if rng.random() < 0.7 else rng.randrange(len(acked))]
            if item is not None:
                key, value = item
                name = rng.choice(nodes.order(rng.randrange(len(nodes.names)))[:2])
                stats["reads"] += 1
                try:
                    got = nodes.clients[name].get(key)
                    nodes.counts[name]["get_ok"] += 1
                    if got is None:
                        stats["nil_reads"] += 1
                        note("nil", f"{name} GET {key}")
                    elif got != value:
                        stats["wrong_reads"] += 1
                        note("wrong", f"{name} GET {key} = {got!r}, want {value!r}")
                    else:
                        stats["reads_ok"] += 1
                except redis.RedisError as e:
                    nodes.counts[name]["get_err"] += 1
                    nodes.failed(name)
                    stats["read_errors"] += 1
                    note("read_error", f"{name} GET {key}: {e}")
            spare = interval - (time.monotonic() - started)
            if spare > 0:
                time.sleep(spare)
            elif item is None:
                time.sleep(0.01)

    began = time.monotonic()
    threads = [threading.Thread(target=writer)] + [
        threading.Thread(target=reader, args=(s,)) for s in range(args.readers)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stats["seconds"] = round(time.monotonic() - began, 1)
    stats["by_node"] = nodes.counts
    stats["examples"] = {k: v for k, v in examples.items() if v}
    print(json.dumps({"load": args.prefix, **stats}))


def verify(args):
    nodes = parse_nodes(args.node)
    entries = {}
    with open(args.ledger, encoding="utf-8") as ledger:
        for line in ledger:
            line = line.strip()
            if line:
                e = json.loads(line)
                entries[e["k"]] = e["v"]
    keys = sorted(entries)
    # Keys (not answers) are counted: a key is lost if any node answered
    # nil for it, wrong if any answered another value.
    summary = {"keys": len(keys), "lost_writes": 0, "wrong_values": 0, "unreadable": 0, "per_node": {}}
    nil_keys, wrong_keys, error_keys = set(), set(), set()
    examples = []
    for name, host, port in nodes:
        client = connect(host, port, args.password, args.timeout)
        per = {"ok": 0, "nil": 0, "wrong": 0, "error": 0}
        pending = list(keys)
        # Errors (a quorum not met yet) are retried; nil and wrong are final.
        for round_ in range(args.tries):
            errors = []
            for start in range(0, len(pending), 200):
                batch = pending[start:start + 200]
                try:
                    pipe = client.pipeline(transaction=False)
                    for k in batch:
                        pipe.get(k)
                    results = pipe.execute(raise_on_error=False)
                except redis.RedisError:
                    errors.extend(batch)
                    continue
                for k, got in zip(batch, results):
                    if isinstance(got, Exception):
                        errors.append(k)
                    elif got is None:
                        per["nil"] += 1
                        nil_keys.add(k)
                        if len(examples) < 10:
                            examples.append(f"{name} GET {k} = nil")
                    elif got != entries[k]:
                        per["wrong"] += 1
                        wrong_keys.add(k)
                        if len(examples) < 10:
                            examples.append(f"{name} GET {k} = {got!r}, want {entries[k]!r}")
                    else:
                        per["ok"] += 1
            pending = errors
            if not pending:
                break
            time.sleep(1)
        per["error"] = len(pending)
        error_keys.update(pending)
        summary["per_node"][name] = per
    summary["lost_writes"] = len(nil_keys)
    summary["wrong_values"] = len(wrong_keys)
    summary["unreadable"] = len(error_keys)
    summary["examples"] = examples
    print(json.dumps({"verify": True, **summary}))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("load", "verify"):
        s = sub.add_parser(name)
        s.add_argument("--node", action="append", default=[], help="NAME=HOST:PORT (repeat)")
        s.add_argument("--password", default=None)
        s.add_argument("--ledger", required=True, help="JSON lines of acknowledged writes")
        s.add_argument("--timeout", type=float, default=1.0, help="seconds per request")
        s.add_argument("--tries", type=int, default=3)
    s = sub.choices["load"]
    s.add_argument("--prefix", required=True)
    s.add_argument("--count", type=int, default=2000, help="writes (fresh keys)")
    s.add_argument("--rate", type=float, default=200.0, help="writes per second (0 = unlimited)")
    s.add_argument("--read-rate", type=float, default=200.0, help="reads per second per reader")
    s.add_argument("--readers", type=int, default=1)
    s.add_argument("--max-seconds", type=float, default=60.0)
    args = p.parse_args()
    {"load": load, "verify": verify}[args.cmd](args)


if __name__ == "__main__":
    main()
