"""Ordered, bounded work on background threads: how a folder run overlaps decoding and
writing with the model.

- :class:`OrderedWorkers` runs tasks on a few threads and gives their results back in the
  order the tasks were submitted, each failure re-raised where its result would have come.
- :func:`ordered_map` maps a function over an iterable with it, keeping at most ``window``
  items in flight, so memory stays flat however long the iterable is.

Both stop cleanly: closing them (or the iterator, or leaving the ``with`` block, on any
exception, ``KeyboardInterrupt`` included) cancels the tasks that have not started, waits
for the ones running, and joins every thread. With ``workers=0`` everything runs in the
calling thread, one item at a time, and no thread is started.

Threads, not processes: PIL's decoding and resizing and OpenCV's encoding release the GIL; a
spawned process would pay torch's import (seconds) and a forked one can hang once OpenMP
has started.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Generator, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Generic, TypeVar

from camkit.errors import ConfigurationError

__all__ = ["THREAD_PREFIX", "OrderedWorkers", "check_workers", "default_workers", "ordered_map"]

_T = TypeVar("_T")
_R = TypeVar("_R")

THREAD_PREFIX = "camkit-"
"""The start of the name of every thread these helpers start (``camkit-prepare_0``, ...)."""


def default_workers() -> int:
    """The default number of worker threads: half the CPUs this process may run on, at
    least 1 and at most 4 (the model keeps the other half: see
    :mod:`camkit.tools.threads`)."""
    return max(1, min(4, _cpus() // 2))


def _cpus() -> int:
    """How many CPUs this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def check_workers(workers: object) -> int:
    """``workers`` as an int: ``None`` gives :func:`default_workers`.

    Raises:
        ConfigurationError: ``workers`` is not an int >= 0 or None.
    """
    if workers is None:
        return default_workers()
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise ConfigurationError(
            f"workers must be an int >= 0 (0: everything in the calling thread) or None (half "
            f"the CPUs, 1 to 4), got {workers!r}"
        )
    return workers


class OrderedWorkers(Generic[_R]):
    """Tasks run on ``workers`` threads; results are taken in submission order.

    Args:
        workers: how many threads; 0 runs each task in the calling thread when it is
            submitted.
        name: the threads' name, after :data:`THREAD_PREFIX`.

    Use it as a context manager, or call :meth:`close`: the threads are joined then.
    """

    def __init__(self, workers: int, *, name: str) -> None:
        self.workers = check_workers(workers)
        self._pool = (
            ThreadPoolExecutor(self.workers, thread_name_prefix=THREAD_PREFIX + name)
            if self.workers
            else None
        )
        self._pending: deque[Future[_R]] = deque()

    def submit(self, fn: Callable[..., _R], /, *args: object) -> None:
        """Run ``fn(*args)`` on a worker; its result (or exception) comes in turn."""
        if self._pool is not None:
            self._pending.append(self._pool.submit(fn, *args))
            return
        future: Future[_R] = Future()
        try:
            future.set_result(fn(*args))
        except Exception as error:  # re-raised in turn by next(); others propagate now
            future.set_exception(error)
        self._pending.append(future)

    def put(self, value: _R) -> None:
        """Queue a result known already, in turn with the tasks' results."""
        future: Future[_R] = Future()
        future.set_result(value)
        self._pending.append(future)

    def __len__(self) -> int:
        """How many results have not been taken yet (running, waiting or done)."""
        return len(self._pending)

    def ready(self) -> bool:
        """Whether the next result is there (taking it would not wait)."""
        return bool(self._pending) and self._pending[0].done()

    def next(self) -> _R:
        """The next result in submission order, waiting for it.

        Raises:
            IndexError: no result is pending.
            BaseException: what the task raised.
        """
        return self._pending.popleft().result()

    def close(self) -> None:
        """Cancel the tasks that have not started, wait for the running ones and join the
        threads; the results not taken are dropped. Safe to call again."""
        for future in self._pending:
            future.cancel()
        self._pending.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> OrderedWorkers[_R]:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def ordered_map(
    fn: Callable[[_T], _R], items: Iterable[_T], *, workers: int, window: int, name: str
) -> Generator[_R, None, None]:
    """``fn`` of each item, in the items' order, computed ahead on ``workers`` threads.

    At most ``window`` items (at least one) are in flight: taken from ``items`` and not yet
    yielded. An exception of ``fn`` is raised where its result would have been yielded.
    Closing the iterator, or any exception, stops the workers and joins them. With
    ``workers=0``, each item is computed in the calling thread when it is asked for.

    Raises:
        ConfigurationError: ``workers`` is not an int >= 0.
    """
    source = iter(items)
    limit = max(1, window) if workers else 1
    with OrderedWorkers[_R](workers, name=name) as pool:
        exhausted = False
        while True:
            while not exhausted and len(pool) < limit:
                try:
                    item = next(source)
                except StopIteration:
                    exhausted = True
                    break
                pool.submit(fn, item)
            if not len(pool):
                return
            yield pool.next()
