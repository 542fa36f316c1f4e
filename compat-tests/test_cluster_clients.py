"""redis-py's RedisCluster against a dynkv cluster (compat-tests/cluster_clients.sh
starts three nodes and names them in the environment).

The client reads the slot map (CLUSTER SLOTS), sends every key to a node in its
preference list, so no request takes a forward hop, and after a fourth node
joins it follows MOVED to the new owners.
"""

import os
import subprocess
import time

import redis
from redis.cluster import LoadBalancingStrategy, RedisCluster

HOST = "127.0.0.1"
# Client ports (plain clients, INFO) and the cluster-client ports the slot map
# advertises (where keys a node does not serve are answered MOVED).
PORTS = [int(p) for p in os.environ["DYNKV_CLUSTER_PORTS"].split(",")]
ADVERTISED = [int(p) for p in os.environ["DYNKV_CLUSTER_CLIENT_PORTS"].split(",")]
KEYS = int(os.environ.get("CLUSTER_CLIENT_KEYS", "400"))


def plain(port):
    return redis.Redis(host=HOST, port=port, decode_responses=True)


def forwarded_total(ports):
    return sum(int(plain(p).info("dynamo")["forwarded_requests"]) for p in ports)


def owners_by_slot(port):
    """slot -> set of client ports serving it, from a fresh CLUSTER SLOTS."""
    owners = {}
    for row in plain(port).execute_command("CLUSTER", "SLOTS"):
        first, last, nodes = row[0], row[1], row[2:]
        for slot in range(first, last + 1):
            owners[slot] = {int(n[1]) for n in nodes}
    return owners


def wait_until(what, cond, timeout=90):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if cond():
                return
        except redis.RedisError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def start_fourth_node():
    port, cport, ccport = (int(p) for p in os.environ["DYNKV_NODE4_PORTS"].split(","))
    work = os.environ["DYNKV_WORK"]
    log = open(os.path.join(work, "c4.log"), "w")
    proc = subprocess.Popen(
        [
            os.environ["DYNKV_BIN"], "--bind", HOST, "--port", str(port),
            "--cluster-port", str(cport), "--cluster-client-port", str(ccport),
            "--metrics-port", "0", "--memcache-port", "0",
            "--data-dir", os.path.join(work, "c4"), "--node-name", "c4",
            "--n", "3", "--r", "2", "--w", "2", "--fsync", "everysec",
            "--cluster-secret", os.environ["DYNKV_SECRET"],
            "--join", os.environ["DYNKV_JOIN"],
        ],
        stdout=log, stderr=subprocess.STDOUT,
    )
    with open(os.path.join(work, "c4.pid"), "w") as f:
        f.write(str(proc.pid))
    return port, ccport


def settled(ports, members):
    for p in ports:
        info = plain(p).info("dynamo")
        if int(info["members_up"]) != members or int(info["partitions_moving"]) != 0:
            return False
    return True


def test_cluster_client_routes_directly_and_follows_a_join():
    rc = RedisCluster(host=HOST, port=PORTS[0], decode_responses=True)
    # Each node leads some slot ranges and replicates others (redis-py labels
    # a node by the first role it saw; routing uses each slot's own list).
    assert {n.port for n in rc.get_nodes()} >= set(ADVERTISED)
    assert {rc.get_node_from_key(f"k{i}").port for i in range(200)} == set(ADVERTISED)
    for i in range(KEYS):
        assert rc.set(f"user:{i}", i)
    assert [rc.get(f"user:{i}") for i in range(KEYS)] == [str(i) for i in range(KEYS)]
    assert rc.mget_nonatomic([f"user:{i}" for i in range(10)]) == [str(i) for i in range(10)]
    pipe = rc.pipeline()
    for i in range(50):
        pipe.incr(f"hits:{i}")
    assert pipe.execute() == [1] * 50

    port4, advertised4 = start_fourth_node()
    everyone = PORTS + [port4]
    wait_until("the fourth node to join and its partitions to settle",
               lambda: settled(everyone, 4))

    # The client keeps working through the change, follows MOVED and learns
    # about the new node.
    for i in range(KEYS):
        assert rc.set(f"user:{i}", f"v{i}")
    assert [rc.get(f"user:{i}") for i in range(KEYS)] == [f"v{i}" for i in range(KEYS)]
    assert advertised4 in {n.port for n in rc.get_nodes()}

    # Every key now goes to a node of its preference list: no forward hop.
    owners = owners_by_slot(port4)
    for i in range(KEYS):
        key = f"user:{i}"
        assert rc.get_node_from_key(key).port in owners[rc.keyslot(key)], key
    before = forwarded_total(everyone)
    for i in range(KEYS):
        rc.set(f"user:{i}", f"w{i}")
    assert forwarded_total(everyone) - before == 0

    # A plain client talking to one node has about a quarter of its writes
    # forwarded: the hop the cluster client saves.
    before = forwarded_total(everyone)
    one = plain(PORTS[0])
    for i in range(KEYS):
        one.set(f"user:{i}", f"p{i}")
    assert forwarded_total(everyone) - before > KEYS // 10

    # Reads from replicas (READONLY) are quorum reads coordinated there.
    replicas = RedisCluster(host=HOST, port=port4, decode_responses=True,
                            load_balancing_strategy=LoadBalancingStrategy.ROUND_ROBIN_REPLICAS)
    assert [replicas.get(f"user:{i}") for i in range(KEYS)] == [f"p{i}" for i in range(KEYS)]
