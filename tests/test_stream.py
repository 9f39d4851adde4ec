"""The ordered, bounded thread map under folder runs: order, bounds, failures, clean stops."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from camkit.errors import ConfigurationError
from camkit.tools.stream import (
    THREAD_PREFIX,
    OrderedWorkers,
    check_workers,
    default_workers,
    ordered_map,
)

WAIT = 10.0  # seconds an event may take before a test fails instead of hanging


def camkit_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(THREAD_PREFIX)]


@pytest.fixture(autouse=True)
def no_thread_left() -> Iterator[None]:
    """Every test ends with no worker thread alive and the thread count it started with."""
    before = threading.active_count()
    yield
    assert camkit_threads() == []
    assert threading.active_count() == before


def test_results_come_in_input_order_whatever_finishes_first() -> None:
    """Item 0 finishes only after item 1 has finished: the order is still 0, 1, 2, ..."""
    second_done = threading.Event()
    names: set[str] = set()

    def work(i: int) -> int:
        names.add(threading.current_thread().name)
        if i == 0:
            assert second_done.wait(WAIT)
        if i == 1:
            second_done.set()
        return i * i

    assert list(ordered_map(work, range(20), workers=2, window=4, name="t")) == [
        i * i for i in range(20)
    ]
    assert names and all(name.startswith(f"{THREAD_PREFIX}t") for name in names)


@pytest.mark.parametrize(("workers", "window"), [(1, 1), (2, 3), (3, 8)])
def test_at_most_window_items_are_in_flight(workers: int, window: int) -> None:
    """Items are taken from the source lazily: never more than ``window`` ahead of what the
    consumer has received, however long the source is."""
    lock = threading.Lock()
    pulled = started = received = 0
    most_ahead = most_started = 0

    def source() -> Iterator[int]:
        nonlocal pulled, most_ahead
        for i in range(300):
            with lock:
                pulled += 1
                most_ahead = max(most_ahead, pulled - received)
            yield i

    def work(i: int) -> int:
        nonlocal started, most_started
        with lock:
            started += 1
            most_started = max(most_started, started - received)
        return i

    for value in ordered_map(work, source(), workers=workers, window=window, name="t"):
        with lock:
            received += 1
        assert value == received - 1
    assert received == 300
    assert most_ahead <= window and most_started <= window
    assert most_ahead == window  # the window is used: work is ahead of the consumer


def test_no_worker_runs_everything_in_the_calling_thread_lazily() -> None:
    calls: list[tuple[int, str]] = []

    def work(i: int) -> int:
        calls.append((i, threading.current_thread().name))
        return -i

    results = ordered_map(work, range(5), workers=0, window=10, name="t")
    assert calls == []  # nothing before it is asked for
    assert next(results) == 0
    assert next(results) == -1
    assert calls == [(0, threading.current_thread().name), (1, threading.current_thread().name)]
    assert camkit_threads() == []
    assert list(results) == [-2, -3, -4]


@pytest.mark.parametrize("workers", [0, 1, 3])
def test_an_error_comes_in_its_place_and_stops_the_workers(workers: int) -> None:
    def work(i: int) -> int:
        if i == 3:
            raise ValueError(f"item {i} is bad")
        return i

    got: list[int] = []
    with pytest.raises(ValueError, match="item 3 is bad"):
        for value in ordered_map(work, range(50), workers=workers, window=4, name="t"):
            got.append(value)
    assert got == [0, 1, 2]
    assert camkit_threads() == []


@pytest.mark.parametrize("workers", [0, 2])
def test_an_interrupt_in_a_worker_reaches_the_consumer(workers: int) -> None:
    def work(i: int) -> int:
        if i == 2:
            raise KeyboardInterrupt
        return i

    got: list[int] = []
    with pytest.raises(KeyboardInterrupt):
        for value in ordered_map(work, range(50), workers=workers, window=4, name="t"):
            got.append(value)
    assert got == [0, 1]
    assert camkit_threads() == []


def test_closing_early_cancels_the_rest_and_joins_the_threads() -> None:
    """A consumer that stops after two results: the tasks not started never run, the
    running ones finish, and no thread is left."""
    release = threading.Event()
    ran: list[int] = []

    def work(i: int) -> int:
        ran.append(i)
        if i >= 2:
            release.wait(0.2)  # keep some tasks running while the map is closed
        return i

    results = ordered_map(work, range(1000), workers=2, window=6, name="t")
    assert [next(results), next(results)] == [0, 1]
    assert camkit_threads()  # the workers run
    results.close()
    release.set()
    assert camkit_threads() == []
    assert len(ran) <= 2 + 6  # only what was in the window ever started


def test_an_interrupt_in_the_consumer_joins_the_threads() -> None:
    """Ctrl-C while the consumer handles a result: leaving the loop stops the map."""
    with pytest.raises(KeyboardInterrupt):
        for value in ordered_map(lambda i: i, range(1000), workers=3, window=5, name="t"):
            if value == 10:
                raise KeyboardInterrupt
    # the generator is closed when collected; closing it explicitly is what callers do
    results = ordered_map(lambda i: i, range(1000), workers=3, window=5, name="t")
    try:
        for value in results:
            if value == 10:
                raise KeyboardInterrupt
    except KeyboardInterrupt:
        results.close()
    assert camkit_threads() == []


def test_ordered_workers_mix_known_results_and_tasks_in_order() -> None:
    gate = threading.Event()

    def slow(value: str) -> str:
        assert gate.wait(WAIT)
        return value

    with OrderedWorkers[str](2, name="t") as workers:
        workers.submit(slow, "a")
        workers.put("b")
        workers.submit(str.upper, "c")
        assert len(workers) == 3
        assert not workers.ready()  # "a" waits for the gate; "b" is done but not first
        gate.set()
        assert [workers.next(), workers.next(), workers.next()] == ["a", "b", "C"]
        assert not workers and not workers.ready()
        with pytest.raises(IndexError):
            workers.next()
    assert camkit_threads() == []


def test_ordered_workers_without_threads_keep_errors_in_turn() -> None:
    """``workers=0``: a task runs when submitted; its exception comes when its turn does,
    but an interrupt is not held back."""
    workers = OrderedWorkers[int](0, name="t")
    workers.submit(int, "1")
    workers.submit(int, "x")
    workers.put(3)
    assert workers.ready()
    assert workers.next() == 1
    with pytest.raises(ValueError, match="invalid literal"):
        workers.next()
    assert workers.next() == 3

    def interrupt() -> int:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        workers.submit(interrupt)
    workers.close()
    workers.close()  # twice is fine


def test_closing_drops_results_not_taken() -> None:
    with OrderedWorkers[int](2, name="t") as workers:
        for i in range(10):
            workers.submit(abs, -i)
        assert workers.next() == 0
    assert len(workers) == 0
    assert camkit_threads() == []


@pytest.mark.parametrize("bad", [-1, 1.5, True, "2"])
def test_bad_worker_counts_are_refused(bad: object) -> None:
    with pytest.raises(ConfigurationError, match="workers must be an int >= 0"):
        check_workers(bad)
    with pytest.raises(ConfigurationError, match="workers must be an int >= 0"):
        OrderedWorkers(bad, name="t")  # type: ignore[arg-type]


def test_default_worker_count() -> None:
    assert check_workers(None) == default_workers()
    assert 1 <= default_workers() <= 4
    assert check_workers(0) == 0 and check_workers(7) == 7
