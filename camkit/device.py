"""Choosing the device an explainer runs on."""

from __future__ import annotations

import threading
import warnings

import torch

from camkit.errors import ConfigurationError, DeviceFallbackWarning

__all__ = ["ACCEPTED_DEVICES", "DeviceLike", "select_device"]

DeviceLike = str | torch.device

ACCEPTED_DEVICES = "'auto', 'cpu', 'cuda', 'cuda:N' (N the index of a visible GPU) or 'mps'"
"""The device names :func:`select_device` accepts, for messages."""

_SUPPORTED_TYPES = ("cpu", "cuda", "mps")

_fallbacks_warned: set[str] = set()
_fallbacks_lock = threading.Lock()


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def _fall_back(device: DeviceLike, kind: str) -> torch.device:
    """The CPU, with one :class:`DeviceFallbackWarning` per process and device type."""
    with _fallbacks_lock:
        first = kind not in _fallbacks_warned
        _fallbacks_warned.add(kind)
    if first:
        warnings.warn(
            f"device {str(device)!r} was requested but {kind.upper()} is not available; "
            "running on the CPU (this warning is given once). Pass device='cpu' (the seed "
            "functions: cuda=False), or 'auto', to choose the CPU without a warning.",
            DeviceFallbackWarning,
            stacklevel=3,
        )
    return torch.device("cpu")


def select_device(device: DeviceLike = "auto") -> torch.device:
    """Return the torch device for ``device``.

    ``"auto"`` picks CUDA when available, else the CPU. A CUDA or MPS device that is not
    available falls back to the CPU with a :class:`~camkit.errors.DeviceFallbackWarning`,
    given once per process (per device type), however many explainers ask for it. Names are
    read case-insensitively, surrounding spaces ignored.

    Args:
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"``, or a
            ``torch.device`` of those types.

    Raises:
        ConfigurationError: ``device`` is not a device name torch understands
            (``"tpu"``, ``"cuda:abc"``), names a device type camkit does not run on
            (``"xla"``, ``"meta"``), or a GPU index that is not visible. The message lists
            the accepted names.
    """
    spec: DeviceLike = device.strip().lower() if isinstance(device, str) else device
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(spec)
    except (RuntimeError, TypeError, ValueError) as error:
        raise ConfigurationError(f"unknown device {device!r}; use {ACCEPTED_DEVICES}") from error
    if chosen.type not in _SUPPORTED_TYPES:
        raise ConfigurationError(
            f"device {device!r} ({chosen.type}) is not supported by camkit; use {ACCEPTED_DEVICES}"
        )
    if chosen.type == "cuda":
        if not torch.cuda.is_available():
            return _fall_back(device, "cuda")
        count = torch.cuda.device_count()
        if chosen.index is not None and chosen.index >= count:
            raise ConfigurationError(
                f"device {device!r} names GPU {chosen.index}, but {count} GPU(s) are visible "
                f"(cuda:0 to cuda:{count - 1}); use {ACCEPTED_DEVICES}"
            )
    if chosen.type == "mps" and not _mps_available():
        return _fall_back(device, "mps")
    return chosen
