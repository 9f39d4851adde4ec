"""Choosing the device an explainer runs on."""

from __future__ import annotations

import warnings

import torch

from camkit.errors import ConfigurationError, DeviceFallbackWarning

__all__ = ["DeviceLike", "select_device"]

DeviceLike = str | torch.device


def select_device(device: DeviceLike = "auto") -> torch.device:
    """Return the torch device for ``device``.

    ``"auto"`` picks CUDA when available, else the CPU. A CUDA device that is not available
    falls back to the CPU with a :class:`~camkit.errors.DeviceFallbackWarning`.

    Raises:
        ConfigurationError: ``device`` is not a device name torch understands.
    """
    if isinstance(device, str) and device.strip().lower() == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ConfigurationError(
            f"unknown device {device!r}; use 'auto', 'cpu', 'cuda' or 'cuda:N'"
        ) from error
    if chosen.type == "cuda" and not torch.cuda.is_available():
        warnings.warn(
            f"device {device!r} was requested but CUDA is not available; running on the CPU",
            DeviceFallbackWarning,
            stacklevel=3,
        )
        return torch.device("cpu")
    return chosen
