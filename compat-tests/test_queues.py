"""Job queues on lists through a real library from PyPI: RQ.

RQ (1.11, the last before results moved to streams, which dynkv lacks) enqueues with pipelines (MULTI/EXEC) onto a list, its worker waits in
BLPOP/BLMOVE and keeps job state in hashes, sets and sorted sets. A burst
of jobs is enqueued and a separate `rq worker --burst` process completes
every one; every result is right. Runs against $DYNKV_HOST:$DYNKV_PORT
(DYNKV_TARGET=redis: a real redis-server, same assertions).
$DYNKV_RQ_JOBS sets the number of jobs (default 1,000).
"""

import os
import subprocess
import sys
import uuid

import redis

HOST = os.environ.get("DYNKV_HOST", "127.0.0.1")
PORT = int(os.environ.get("DYNKV_PORT", "6379"))
PASSWORD = os.environ.get("DYNKV_PASSWORD") or None
JOBS = int(os.environ.get("DYNKV_RQ_JOBS", "1000"))
HERE = os.path.dirname(os.path.abspath(__file__))


def test_rq_worker_completes_every_job():
    from rq import Queue
    from rq.job import JobStatus

    sys.path.insert(0, HERE)
    from rq_jobs.tasks import square

    conn = redis.Redis(host=HOST, port=PORT, password=PASSWORD, socket_timeout=60)
    name = "compat-" + uuid.uuid4().hex[:8]
    q = Queue(name, connection=conn)
    jobs = [q.enqueue(square, n) for n in range(JOBS)]
    assert len(q) == JOBS
    url = "redis://%s%s:%d/0" % (":%s@" % PASSWORD if PASSWORD else "", HOST, PORT)
    env = dict(os.environ, PYTHONPATH=HERE)
    done = subprocess.run(
        [sys.executable, "-m", "rq.cli", "worker", "--burst", "--url", url, name],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(q) == 0
    for n, job in enumerate(jobs):
        job.refresh()
        assert job.get_status() == JobStatus.FINISHED, (n, job.get_status())
        assert job.result == n * n
    assert q.finished_job_registry.count == JOBS
    assert q.failed_job_registry.count == 0
