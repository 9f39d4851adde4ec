"""Weights-only checkpoint loading (:func:`load_state_dict`).

A checkpoint is a file written by ``torch.save`` holding one of:

- a plain ``state_dict`` (``torch.save(model.state_dict(), path)``);
- a dict with the weights under ``"model_state_dict"`` or ``"state_dict"``, next to any
  other entries (``optimizer_state_dict``, ``epoch``, ``val_loss``, ``val_acc``...),
  which are ignored;
- either of those saved from ``nn.DataParallel``, with ``module.`` before every key.

Checkpoints are always read with ``torch.load(..., weights_only=True)``: a file holding
pickled Python objects (a whole model saved with ``torch.save(model, path)``, a custom
class, numpy scalars...) is refused, since unpickling it could run arbitrary code.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from camkit.errors import CheckpointError

__all__ = ["load_state_dict"]

_WRAPPER_KEYS = ("model_state_dict", "state_dict")
_SHOWN = 5  # keys quoted in an error message, per kind of problem

_CONVERT_HINT = (
    "camkit only loads weights-only checkpoints, since unpickling Python objects can run "
    "arbitrary code. Convert it once in the training project, where its classes import: "
    "`torch.save(model.state_dict(), path)` (for a file holding a whole model: "
    "`model = torch.load(old_path, weights_only=False)` first, only if you trust the file), "
    "and keep metrics such as val_acc as plain floats."
)


def _numpy_scalar_globals() -> list[Any]:
    """The numpy types a pickled numpy scalar needs: its reconstructor, dtype and dtype classes."""
    import numpy as np

    core = getattr(np, "_core", None) or np.core
    allowed: list[Any] = [core.multiarray.scalar, np.dtype]
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:
        allowed += [v for v in vars(dtypes).values() if isinstance(v, type)]
    return allowed


def load_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read the weights of a checkpoint file, on the CPU.

    Accepts a plain ``state_dict``, a dict holding it under ``"model_state_dict"`` or
    ``"state_dict"`` (other entries such as ``optimizer_state_dict`` or ``epoch`` are ignored),
    and either with the ``module.`` prefix of ``nn.DataParallel`` on every key (stripped).
    The file is read with ``torch.load(path, map_location="cpu", weights_only=True)``; numpy
    scalars (metrics such as ``val_acc`` saved as ``np.float64``) are allowed too.

    Raises:
        CheckpointError: the file is missing or not a PyTorch checkpoint; it holds pickled
            Python objects (a whole model, a custom class), which weights-only loading
            refuses; or it holds no state_dict.
    """
    file = Path(path)
    if not file.exists():
        raise CheckpointError(f"checkpoint file not found: {str(file)!r}")
    if not file.is_file():
        raise CheckpointError(f"checkpoint {str(file)!r} is not a file (a directory?)")
    try:
        # numpy scalars (a val_acc computed with numpy) are data, not code: allow them.
        with torch.serialization.safe_globals(_numpy_scalar_globals()):
            loaded: Any = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as error:
        message = str(error)
        unsupported = re.search(r"GLOBAL ([\w.]+)", message)
        if unsupported:
            raise CheckpointError(
                f"checkpoint {str(file)!r} contains pickled Python objects "
                f"({unsupported.group(1)}), not only tensors. {_CONVERT_HINT}"
            ) from None
        raise CheckpointError(
            f"cannot read {str(file)!r} as a PyTorch checkpoint ({type(error).__name__}: "
            f"{_first_line(message)}); is it a complete file written by torch.save? camkit "
            "reads checkpoints with torch.load(weights_only=True), which accepts only "
            "tensors in plain containers (dicts, lists, numbers, strings)."
        ) from error
    return _extract_state_dict(loaded, file)


def _first_line(message: str) -> str:
    """The informative line of a torch.load error (after ``WeightsUnpickler error:``)."""
    _, marker, rest = message.partition("WeightsUnpickler error:")
    lines = [line.strip() for line in (rest if marker else message).splitlines()]
    return next((line for line in lines if line), "no detail; empty or truncated file?")


def _extract_state_dict(loaded: Any, file: Path) -> dict[str, Tensor]:
    where = "the checkpoint"
    if isinstance(loaded, Mapping):
        for key in _WRAPPER_KEYS:
            if key in loaded:
                where = f"its {key!r} entry"
                loaded = loaded[key]
                if not isinstance(loaded, Mapping):
                    raise CheckpointError(
                        f"checkpoint {str(file)!r}: {where} is a {type(loaded).__name__}, not "
                        "a state_dict (a dict of tensors)"
                    )
                break
        else:
            other = [k for k, v in loaded.items() if not isinstance(v, Tensor)]
            if other:
                keys = ", ".join(repr(k) for k in list(loaded)[:8])
                raise CheckpointError(
                    f"checkpoint {str(file)!r} is a dict without 'model_state_dict' or "
                    f"'state_dict' entry whose values are not all tensors (keys: {keys}); "
                    "save the weights with torch.save(model.state_dict(), path) or under "
                    "'model_state_dict'"
                )
    else:
        raise CheckpointError(
            f"checkpoint {str(file)!r} holds a {type(loaded).__name__}, not a state_dict; "
            "save the weights with torch.save(model.state_dict(), path)"
        )
    bad = [k for k, v in loaded.items() if not isinstance(k, str) or not isinstance(v, Tensor)]
    if bad:
        raise CheckpointError(
            f"checkpoint {str(file)!r}: {where} is not a state_dict: entries "
            f"{', '.join(map(repr, bad[:_SHOWN]))} are not tensors named by strings"
        )
    if not loaded:
        raise CheckpointError(f"checkpoint {str(file)!r}: {where} holds no tensors")
    state: dict[str, Tensor] = dict(loaded)
    if all(key.startswith("module.") for key in state):
        state = {key[len("module.") :]: value for key, value in state.items()}
    return state
