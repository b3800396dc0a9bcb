"""Where tasks run: in the driver (inline), in a local process pool, or on a Ray cluster.

Every backend offers the same small interface (``base.Backend``): a list
of workers, each maybe beside a SuperFS data server, ``submit`` a task to
a worker, and ``poll`` for tasks that finished or workers that were lost.
"""
