"""Checks of values on the model's device, read in one transfer per call.

Reading a value computed on an accelerator (``bool(tensor)``, ``.item()``, ``.tolist()``,
``.cpu()``) makes the host wait until the device has finished all the work queued so far.
A check in the middle of a call therefore stalls it: the host stops queuing kernels while
the device drains, and the device then idles while the host queues the rest. So the pipeline
computes each check of values (finite inputs, logits, scores and maps; non-negative maps;
empty gradient maps) as a 0-d tensor on the device, queues the whole call, and reads every
check in the same transfer as the results' scalars, once, at the end
(:meth:`DeviceChecks.read`).

A failed check then builds its error, recomputing what the message names (which images,
which weights) on that rare path only, and raises it. Checks are settled in the order they
were made, so the error raised is the one an immediate check would have raised first; and
when the call fails for another reason after some checks were made, those are settled first
(:meth:`DeviceChecks.first_failure`): a NaN input is reported as a NaN input, not as whatever
it broke further on.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Sequence

import attrs
import torch
from torch import Tensor

__all__ = ["DeviceChecks", "Requirement", "all_finite"]


def all_finite(values: Tensor) -> Tensor:
    """A cheap test that every value is finite, for :class:`Requirement`: whether their sum
    (in ``float32``) is, a 0-d bool tensor. NaN and infinity reach the sum, so it is never
    true for bad values; a sum of large finite values can overflow, a false alarm that the
    requirement's failure rules out. One reduction, several times faster than
    ``torch.isfinite(values).all()`` on a CPU."""
    return torch.isfinite(values.detach().sum(dtype=torch.float32))


@attrs.frozen(eq=False)
class Requirement:
    """A condition computed on the device, and the error to raise when it does not hold.

    Attributes:
        ok: a 0-d bool tensor, true when the values are fine. It may be a cheap test that is
            sometimes false for fine values (a sum that overflows), never true for bad ones.
        failure: called only when ``ok`` is false: looks at the values closely (it may read
            the device again, to name the culprits) and returns the error, or ``None`` when
            they are fine after all.
    """

    ok: Tensor
    failure: Callable[[], Exception | None]

    def check_now(self) -> None:
        """Read :attr:`ok` at once and raise the failure when it is false (for values on the
        CPU, where reading costs no synchronisation)."""
        if not bool(self.ok) and (error := self.failure()) is not None:
            raise error


@attrs.frozen(eq=False)
class _Count:
    """A count computed on the device; a warning is emitted when it is not 0."""

    value: Tensor
    message: Callable[[int], str]
    category: type[Warning]


class DeviceChecks:
    """The checks of one call, in the order they were made, read together at the end."""

    def __init__(self, requirements: Iterable[Requirement] = ()) -> None:
        self._pending: list[Requirement | _Count] = list(requirements)

    def __len__(self) -> int:
        return len(self._pending)

    def require(self, ok: Tensor, failure: Callable[[], Exception | None]) -> None:
        """Raise ``failure()`` at the end of the call unless the 0-d bool ``ok`` is true (see
        :class:`Requirement`)."""
        self._pending.append(Requirement(ok, failure))

    def warn_if(
        self, count: Tensor, message: Callable[[int], str], category: type[Warning]
    ) -> None:
        """Warn ``message(n)`` at the end of the call when the 0-d ``count`` is ``n > 0``."""
        self._pending.append(_Count(count, message, category))

    def read(self, values: Sequence[Tensor] = (), *, stacklevel: int = 1) -> list[list[float]]:
        """Read every pending check and ``values`` in one transfer, then settle the checks in
        order: warn for counts, raise the first failed requirement's error.

        Args:
            values: 1-D tensors of one length on one device (or none), read as rows of
                floats (``float64``; ``float32`` on a device without ``float64``).
            stacklevel: for the warnings, as for :func:`warnings.warn`, counted from the
                caller of this method.

        Returns:
            One list of floats per tensor of ``values``.

        Raises:
            Exception: the error of the first requirement that does not hold.
        """
        pending, self._pending = self._pending, []
        host = _transfer(pending, values)
        failure = _settle(pending, host[: len(pending)], stacklevel + 1)
        if failure is not None:
            raise failure
        width = int(values[0].shape[0]) if values else 0
        start = len(pending)
        return [host[start + i * width : start + (i + 1) * width] for i in range(len(values))]

    def first_failure(self, *, stacklevel: int = 1) -> Exception | None:
        """Read and settle the pending checks (one transfer), returning the first failed
        requirement's error instead of raising it: for a call that failed otherwise, whose
        earlier checks must be reported first."""
        pending, self._pending = self._pending, []
        return _settle(pending, _transfer(pending, ()), stacklevel + 1)


def _value_of(item: Requirement | _Count) -> Tensor:
    return item.ok if isinstance(item, Requirement) else item.value


def _transfer(pending: Sequence[Requirement | _Count], values: Sequence[Tensor]) -> list[float]:
    """The checks' values, then ``values``, flattened, as floats: one copy to the host."""
    tensors = [_value_of(item) for item in pending] + list(values)
    if not tensors:
        return []
    device = values[0].device if values else tensors[0].device
    wide = torch.float32 if device.type == "mps" else torch.float64
    # one concatenation: the empty wide tensor first makes it promote every part to `wide`
    # (bool, integer and narrower float values are exact in it)
    parts = [torch.empty(0, dtype=wide, device=device)]
    for tensor in tensors:
        part = tensor if tensor.device == device else tensor.to(device)
        parts.append(part.reshape(1) if part.ndim == 0 else part)
    host: list[float] = torch.cat(parts).cpu().tolist()
    return host


def _settle(
    pending: Sequence[Requirement | _Count], host: Sequence[float], stacklevel: int
) -> Exception | None:
    """Warn for the counts and return the first failed requirement's error, in order."""
    for item, value in zip(pending, host, strict=True):
        if isinstance(item, Requirement):
            if not value and (error := item.failure()) is not None:
                return error
        elif value:
            warnings.warn(item.message(int(value)), item.category, stacklevel=stacklevel + 1)
    return None
