"""How many CPU threads the model runs on during a folder run: ``threads=`` of
:func:`~camkit.tools.batch.iter_explain_files` and ``camkit explain --threads``.

A folder run on the CPU does two kinds of work at once: the model (torch's intra-op threads,
one OpenMP team) and the per-image work on the worker threads (decoding, resizing, drawing
and encoding overlays). When both want every core, they slow each other down: on two cores,
MobileNetV3-small explains a folder about 1.3 times faster with the model on one thread and
the workers on the other, while ResNet-50, whose forward dominates, runs twice as slowly on
one thread. Which split is faster depends on the model and the machine, so ``"auto"``
measures it on the run's first batches (:class:`ModelThreads`).

Thread counts change the order of some floating-point sums in torch's CPU kernels: maps
computed with different counts can differ by float rounding (an overlay pixel by one
colour level, rarely). Give a fixed count for bit-identical reruns.
"""

from __future__ import annotations

import statistics
import time
from types import TracebackType
from typing import Literal

import torch

from camkit.errors import ConfigurationError

__all__ = ["AUTO", "ModelThreads", "Threads", "check_threads"]

AUTO = "auto"
"""The ``threads`` value that lets a folder run choose (:class:`ModelThreads`)."""

Threads = int | Literal["auto"] | None
"""A folder run's model threads: a count, ``"auto"``, or ``None`` to leave torch's own
setting (``torch.get_num_threads()``) alone."""


def check_threads(threads: object) -> Threads:
    """Validate a ``threads`` option and return it.

    Raises:
        ConfigurationError: ``threads`` is not an int >= 1, ``"auto"`` or ``None``.
    """
    if threads is None or threads == AUTO:
        return threads  # type: ignore[return-value]
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ConfigurationError(
            f"threads must be an int >= 1, 'auto' (measured on the first batches) or None "
            f"(torch's own setting), got {threads!r}"
        )
    return threads


class ModelThreads:
    """The model's CPU thread count for the length of a folder run, restored afterwards.

    - an int: ``torch.set_num_threads(threads)`` for the run;
    - ``None``: torch's setting is left alone;
    - ``"auto"`` (on the CPU, with worker threads, when torch has more than one thread):
      the run's batches are timed (the period from the end of one batch to the end of the
      next, which includes waiting for the workers) at torch's own count ``n`` and at
      ``max(1, n - workers)``, which leaves a core to each worker thread; the faster one is
      kept for the rest of the run. Batch 0 warms up; batches 1 to 3 are timed at ``n``;
      batch 4 runs at the lower count and ends the trial at once when it is more than
      :attr:`GIVE_UP` times slower; batches 5 and 6 are timed at the lower count, which is
      kept when it is faster by :attr:`MARGIN` or more. A run that ends before batch 7
      ends undecided, and torch's count is restored. On other devices (the model's
      threads hardly matter there) nothing changes.

    The count is changed only between batches, in the thread that runs the model (the one
    that enters this context and calls :meth:`batch_done`).

    Args:
        threads: see above (:func:`check_threads`).
        workers: the run's worker threads.
        device: the model's device.
    """

    GIVE_UP = 1.25
    """How much slower the first batch at the lower count may be before the trial stops."""
    MARGIN = 0.95
    """The lower count is kept when its batches take at most this share of the others'."""
    _TIMED = 3
    _TIMED_LOWER = 2

    def __init__(self, threads: Threads, *, workers: int, device: torch.device) -> None:
        self.threads = check_threads(threads)
        self.workers = workers
        self.device = device
        self._saved: int | None = None
        self._candidates: tuple[int, int] | None = None
        self._last: float | None = None
        self._periods: list[float] = []
        self.chosen: int | None = None
        """The count the run settled on: the given count, the faster one once ``"auto"``
        has decided, torch's own count when ``"auto"`` does not apply; ``None`` for
        ``threads=None`` and while ``"auto"`` is measuring (also when the run ended
        first)."""

    def __enter__(self) -> ModelThreads:
        own = torch.get_num_threads()
        if isinstance(self.threads, int):
            self._saved = own
            torch.set_num_threads(self.threads)
            self.chosen = self.threads
        elif self.threads == AUTO:
            lower = max(1, own - self.workers)
            if self.device.type == "cpu" and self.workers > 0 and lower < own:
                self._saved = own
                self._candidates = (own, lower)
            else:
                self.chosen = own
        return self

    def batch_done(self) -> None:
        """Mark the end of a batch (after its results were handed on): times it, and moves
        the ``"auto"`` trial on."""
        now = time.perf_counter()
        if self._last is not None and self._candidates is not None and self.chosen is None:
            self._periods.append(now - self._last)
            self._step()
        self._last = now

    def _step(self) -> None:
        assert self._candidates is not None
        own, lower = self._candidates
        timed = self._periods  # the periods of batches 1, 2, ...
        at_own = timed[: self._TIMED]
        if len(timed) == self._TIMED:
            torch.set_num_threads(lower)  # for batch 4, which settles the pipeline
        elif len(timed) == self._TIMED + 1:
            if timed[-1] > self.GIVE_UP * statistics.median(at_own):
                self._decide(own)
        elif len(timed) == self._TIMED + 1 + self._TIMED_LOWER:
            at_lower = timed[self._TIMED + 1 :]
            faster = statistics.mean(at_lower) <= self.MARGIN * statistics.median(at_own)
            self._decide(lower if faster else own)

    def _decide(self, count: int) -> None:
        self.chosen = count
        torch.set_num_threads(count)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._saved is not None and torch.get_num_threads() != self._saved:
            torch.set_num_threads(self._saved)
