"""Jobs the RQ compat test enqueues (a worker process imports them)."""


def square(n):
    return n * n
