"""Rebuild a classifier trained elsewhere from its backbone name, class file and checkpoint.

This is camkit's compatibility layer with the training projects camkit grew out of (a
timm-based fork of a classification template), but it reads any project that saves the same
files. Nothing is ever downloaded: every model is built with random weights
(``pretrained=False`` / ``weights=None``) and then filled from the checkpoint.

Class file (:func:`read_class_names`)
    A UTF-8 text file with one class per line, in training order (the class index is the
    line's position). Two dialects are read:

    - ``normal``: the whole line is the class name (it may contain commas);
    - ``0, normal``: an integer id, a comma, then the display name (everything after the
      first comma, so ``3, cat, siamese`` names ``"cat, siamese"``).

    A file uses one dialect throughout; blank lines and the spaces around ids and names are
    ignored, as is a UTF-8 byte-order mark. The ids are not used to reorder the classes.

Checkpoint (:func:`load_state_dict`)
    A file written by ``torch.save`` holding one of:

    - a plain ``state_dict`` (``torch.save(model.state_dict(), path)``);
    - a dict with the weights under ``"model_state_dict"`` or ``"state_dict"``, next to any
      other entries (``optimizer_state_dict``, ``epoch``, ``val_loss``, ``val_acc``...),
      which are ignored;
    - either of those saved from ``nn.DataParallel``, with ``module.`` before every key.

    Checkpoints are always read with ``torch.load(..., weights_only=True)``: a file holding
    pickled Python objects (a whole model saved with ``torch.save(model, path)``, a custom
    class, numpy scalars...) is refused, since unpickling it could run arbitrary code.

Backbone (:func:`build_backbone`)
    A timm model name, a torchvision model name, ``"timm/NAME"`` or ``"torchvision/NAME"``
    to pick the library, or one of the seed project's names in :data:`SEED_ALIASES`.
"""

from __future__ import annotations

import difflib
import functools
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

import attrs
import torch
from torch import Tensor, nn

from camkit.errors import CheckpointError

__all__ = [
    "SEED_ALIASES",
    "build_backbone",
    "load_classifier",
    "load_state_dict",
    "read_class_names",
]

SEED_ALIASES: Mapping[str, str] = MappingProxyType(
    {
        # timm has no `mobilenetv2`; the seed's template used torchvision's layout
        # (head `classifier.1`, last conv block `features.18`).
        "mobilenetv2": "torchvision/mobilenet_v2",
        # timm's `xception` is a deprecated alias of `legacy_xception` (same weights' keys).
        "xception": "timm/legacy_xception",
    }
)
"""Backbone names of the seed project that are not (or no longer) the name of the model it
built, mapped to camkit's constructor name (``"<library>/<name>"``). The seed's other
names (``resnet18``-``resnet152``, ``vgg11``/``13``/``16`` and ``_bn``,
``densenet121``/``161``/ ``169``/``201``, ``efficientnet_b0``-``b7``,
``convnext_tiny``/``small``/``base``, ``inception_resnet_v2``) are timm and/or
torchvision names already.
"""

_LIBRARIES = ("timm", "torchvision")
_ID_LINE = re.compile(r"(\d+)\s*,(.*)")
_WRAPPER_KEYS = ("model_state_dict", "state_dict")
_SHOWN = 5  # keys quoted in an error message, per kind of problem


# ---- class files ---------------------------------------------------------------------------


def read_class_names(path: str | os.PathLike[str]) -> list[str]:
    """Read the class names of a class file, in training order.

    Both dialects are read: ``name`` per line, and ``id, name`` per line (the display name is
    everything after the first comma). Blank lines and surrounding spaces are ignored. See the
    module docstring for the format.

    Raises:
        CheckpointError: the file is missing, unreadable, empty, mixes the two dialects, or
            has a line with an id but no name.
    """
    file = Path(path)
    if not file.is_file():
        raise CheckpointError(
            f"class file not found: {str(file)!r}; pass the text file listing one class per "
            "line (e.g. model_data/cls_classes.txt), or num_classes= instead"
        )
    try:
        text = file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise CheckpointError(
            f"cannot read class file {str(file)!r} as UTF-8 text ({type(error).__name__}: {error})"
        ) from error
    lines = [(number, line.strip()) for number, line in enumerate(text.splitlines(), 1)]
    lines = [(number, line) for number, line in lines if line]
    if not lines:
        raise CheckpointError(
            f"class file {str(file)!r} is empty; it must list one class per line, as "
            "'name' or 'id, name'"
        )
    parsed = [(number, line, _ID_LINE.fullmatch(line)) for number, line in lines]
    with_id = [(number, line) for number, line, match in parsed if match]
    without_id = [(number, line) for number, line, match in parsed if not match]
    if not with_id:
        return [line for _, line in lines]
    if without_id:
        (n_id, line_id), (n_plain, line_plain) = with_id[0], without_id[0]
        raise CheckpointError(
            f"class file {str(file)!r} mixes its two dialects: line {n_id} ({line_id!r}) is "
            f"'id, name' but line {n_plain} ({line_plain!r}) has no id; write every line as "
            "'id, name' or every line as 'name'"
        )
    names: list[str] = []
    for number, line, match in parsed:
        name = match.group(2).strip() if match else ""
        if not name:
            raise CheckpointError(
                f"class file {str(file)!r}, line {number} ({line!r}) has an id but no name; "
                "write it as 'id, name'"
            )
        names.append(name)
    return names


# ---- backbones -----------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _torchvision_names() -> frozenset[str]:
    import torchvision

    return frozenset(torchvision.models.list_models(module=torchvision.models))


def _exists(library: str, name: str) -> bool:
    if library == "timm":
        import timm

        return bool(timm.is_model(name))
    return name in _torchvision_names()


@attrs.frozen
class _Candidate:
    """A model constructor: ``library`` (``"timm"`` or ``"torchvision"``) and its ``name``."""

    library: str
    name: str

    @property
    def label(self) -> str:
        return f"{self.library} {self.name!r}"

    def build(self, num_classes: int) -> nn.Module:
        """The model with random weights and a ``num_classes`` head; downloads nothing."""
        if self.library == "timm":
            import timm

            model: nn.Module = timm.create_model(
                self.name, pretrained=False, num_classes=num_classes
            )
        else:
            import torchvision

            model = torchvision.models.get_model(self.name, weights=None, num_classes=num_classes)
        return model

    def skeleton(self, num_classes: int) -> nn.Module:
        """The model on the meta device (no memory, no init cost), to compare keys and
        shapes; built on the CPU if the constructor cannot run on the meta device."""
        try:
            with torch.device("meta"):
                return self.build(num_classes)
        except Exception:
            return self.build(num_classes)


def _unknown_backbone(name: str, library: str | None) -> CheckpointError:
    import timm
    import torchvision

    known = [
        *SEED_ALIASES,
        *timm.list_models(),
        *torchvision.models.list_models(module=torchvision.models),
    ]
    close = difflib.get_close_matches(name, list(dict.fromkeys(known)), n=5, cutoff=0.6)
    hint = f"did you mean {', '.join(map(repr, close))}? " if close else ""
    where = f"{library} has no model" if library else "neither timm nor torchvision has a model"
    return CheckpointError(
        f"unknown backbone {name!r}: {where} of that name. {hint}List the names with "
        "timm.list_models() and torchvision.models.list_models(); camkit also reads the seed "
        f"names {', '.join(map(repr, SEED_ALIASES))}, and 'timm/NAME' or 'torchvision/NAME' "
        "to pick the library."
    )


def _candidates(name: str) -> list[_Candidate]:
    """The constructors ``name`` may mean, the preferred first (see :func:`build_backbone`)."""
    if not isinstance(name, str):
        raise TypeError(f"backbone must be a model name (str), got {type(name).__name__}")
    name = name.strip()
    if not name:
        raise CheckpointError("backbone is empty; pass a timm or torchvision model name")
    target = SEED_ALIASES.get(name, name)
    library, slash, rest = target.partition("/")
    if slash and library in _LIBRARIES:
        if _exists(library, rest):
            return [_Candidate(library, rest)]
        raise _unknown_backbone(rest, library)
    found = [_Candidate(library, target) for library in _LIBRARIES if _exists(library, target)]
    if not found:
        raise _unknown_backbone(name, None)
    return found


def _check_num_classes(num_classes: object) -> int:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int):
        raise TypeError(f"num_classes must be an int, got {type(num_classes).__name__}")
    if num_classes < 1:
        raise CheckpointError(f"num_classes must be at least 1, got {num_classes}")
    return num_classes


def build_backbone(name: str, num_classes: int) -> nn.Module:
    """Build the classifier ``name`` with random weights and a ``num_classes``-way head.

    ``name`` is one of:

    - a timm name: ``timm.create_model(name, pretrained=False, num_classes=num_classes)``;
    - a torchvision name: ``torchvision.models.get_model(name, weights=None,
      num_classes=num_classes)``;
    - ``"timm/NAME"`` or ``"torchvision/NAME"``, to pick the library;
    - a seed name of :data:`SEED_ALIASES`: ``mobilenetv2`` is torchvision's ``mobilenet_v2``
      (the seed's layout, last conv block ``features.18``) and ``xception`` is timm's
      ``legacy_xception``.

    When both libraries have the name (``resnet50``, ``vgg16``, ``densenet121``,
    ``efficientnet_b0``, ``convnext_tiny``...), **timm wins**: the seed project built its
    backbones with ``timm.create_model``, and for resnets and densenets the two layouts have
    the same keys and compute the same function. :func:`load_classifier` goes further and
    picks the library whose keys match the checkpoint (torchvision ``vgg16`` has
    ``classifier.6``, timm's has ``pre_logits`` and ``head.fc``).

    Nothing is downloaded. The model is returned in training mode, as the constructors
    return it.

    Raises:
        CheckpointError: unknown name (the message lists the closest known names), or
            ``num_classes`` below 1.
        TypeError: ``name`` is not a string or ``num_classes`` not an int.
    """
    classes = _check_num_classes(num_classes)
    return _candidates(name)[0].build(classes)


def _head_key(model: nn.Module) -> str | None:
    """State-dict key of the weight of the model's classifier: timm's ``get_classifier()``,
    else the last ``nn.Linear``."""
    head: nn.Module | None = None
    get_classifier = getattr(model, "get_classifier", None)
    if callable(get_classifier):
        found = get_classifier()
        if isinstance(found, nn.Module) and isinstance(getattr(found, "weight", None), Tensor):
            head = found
    if head is None:
        linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
        head = linears[-1] if linears else None
    if head is None:
        return None
    for module_name, module in model.named_modules():
        if module is head:
            return f"{module_name}.weight" if module_name else "weight"
    return None


# ---- checkpoints ---------------------------------------------------------------------------

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


# ---- matching a checkpoint to a model ------------------------------------------------------


def _shape(shape: Sequence[int]) -> str:
    return "x".join(map(str, shape)) if len(shape) else "scalar"


def _quote(keys: Sequence[str]) -> str:
    shown = ", ".join(map(repr, keys[:_SHOWN]))
    return shown + (f", ... ({len(keys) - _SHOWN} more)" if len(keys) > _SHOWN else "")


def _plural(count: int, word: str, plural: str | None = None) -> str:
    return f"{count} {word if count == 1 else plural or word + 's'}"


@attrs.frozen
class _Fit:
    """How well a checkpoint fits one candidate model built with ``num_classes`` classes."""

    candidate: _Candidate
    num_classes: int
    missing: list[str]
    unexpected: list[str]
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]]  # key, checkpoint, model
    head_key: str | None

    @classmethod
    def measure(cls, candidate: _Candidate, state: Mapping[str, Tensor], classes: int) -> _Fit:
        model = candidate.skeleton(classes)
        expected = model.state_dict()
        return cls(
            candidate=candidate,
            num_classes=classes,
            missing=[k for k in expected if k not in state],
            unexpected=[k for k in state if k not in expected],
            mismatched=[
                (k, tuple(state[k].shape), tuple(v.shape))
                for k, v in expected.items()
                if k in state and state[k].shape != v.shape
            ],
            head_key=_head_key(model),
        )

    @property
    def score(self) -> tuple[int, int]:
        """Smaller is better: keys that differ, then tensors whose shapes differ."""
        return len(self.missing) + len(self.unexpected), len(self.mismatched)

    def problems(self, state: Mapping[str, Tensor], source: str) -> list[tuple[str, str]]:
        """What keeps the checkpoint from loading: ``(kind, sentence)`` pairs, kind ``"head"``
        (the head's class count, first) or ``"keys"``. ``source`` says where
        :attr:`num_classes` came from."""
        found: list[tuple[str, str]] = []
        mismatched = self.mismatched
        head = self.head_key
        if head is not None and head in state and state[head].ndim >= 1:
            head_shape = tuple(state[head].shape)
            if head_shape[0] != self.num_classes:
                classes = _plural(head_shape[0], "class", "classes")
                found.append(
                    (
                        "head",
                        f"the checkpoint head has {classes} ({head}: {_shape(head_shape)}) "
                        f"but {source} {self.num_classes}",
                    )
                )
                head_keys = {head, head[: -len("weight")] + "bias"}
                mismatched = [m for m in mismatched if m[0] not in head_keys]
        if self.missing:
            count = _plural(len(self.missing), "key")
            found.append(
                (
                    "keys",
                    f"{count} of the model missing from the checkpoint: {_quote(self.missing)}",
                )
            )
        if self.unexpected:
            count = _plural(len(self.unexpected), "unexpected key")
            found.append(("keys", f"{count} in the checkpoint: {_quote(self.unexpected)}"))
        if mismatched:
            shown = ", ".join(
                f"{k!r} (checkpoint {_shape(c)}, model {_shape(m)})"
                for k, c, m in mismatched[:_SHOWN]
            )
            more = f", ... ({len(mismatched) - _SHOWN} more)" if len(mismatched) > _SHOWN else ""
            count = _plural(len(mismatched), "tensor")
            found.append(("keys", f"{count} with the wrong shape: {shown}{more}"))
        return found


def load_classifier(
    backbone: str,
    weights: str | os.PathLike[str] | None = None,
    classes: str | os.PathLike[str] | None = None,
    num_classes: int | None = None,
) -> tuple[nn.Module, list[str]]:
    """Build the classifier ``backbone``, load its checkpoint and return it with its classes.

    Args:
        backbone: model name, as :func:`build_backbone` reads it.
        weights: checkpoint file (formats: :func:`load_state_dict`). ``None`` builds a model
            with random weights, which is only useful to try camkit out.
        classes: class file (formats: :func:`read_class_names`); its line count is the number
            of classes.
        num_classes: number of classes when there is no class file (if both are given they
            must agree). With neither, it is read from the checkpoint's head.

    Returns:
        ``(model, class_names)``: the model in eval mode on the CPU, and the class names
        (``["0", "1", ...]`` without a class file).

    When ``backbone`` names a model of both timm and torchvision, both layouts are compared
    with the checkpoint's keys and the one that matches is used; when both match exactly
    (resnets, densenets: the same keys, the same function) timm's is used, as in
    :func:`build_backbone`. Keys and shapes are compared on meta-device models, before any
    weights are loaded.

    Raises:
        CheckpointError: a file is missing or unreadable, the backbone is unknown, or the
            checkpoint does not fit the model: the message gives the head's class count
            against the class file's (both numbers), and the missing, unexpected and
            wrongly-shaped keys (counts and a few names) of the closest layout.
    """
    names = read_class_names(classes) if classes is not None else None
    wanted = _check_num_classes(num_classes) if num_classes is not None else None
    if names is not None and wanted is not None and len(names) != wanted:
        raise CheckpointError(
            f"the class file {str(classes)!r} lists {len(names)} classes but num_classes="
            f"{wanted}; pass only one of them, or make them agree"
        )
    if names is not None:
        wanted = len(names)
        source = f"the class file {str(classes)!r} lists"
    else:
        source = "num_classes is"
    candidates = _candidates(backbone)

    if weights is None:
        if wanted is None:
            raise CheckpointError(
                "cannot tell how many classes the model has: without weights= pass a class "
                "file (classes=) or num_classes="
            )
        model = candidates[0].build(wanted)
        return model.eval(), _class_names(names, wanted)

    state = load_state_dict(weights)
    # Any class count will do to compare keys; min() keeps the first (timm) on a tie.
    fits = [_Fit.measure(candidate, state, wanted or 1) for candidate in candidates]
    best = min(fits, key=lambda fit: fit.score)
    if wanted is None:
        head = best.head_key
        if head is None or head not in state or state[head].ndim < 1:
            key_problems = [p for p in best.problems(state, source) if p[0] != "head"]
            if key_problems:
                raise _mismatch(weights, backbone, best, len(candidates), key_problems, names)
            raise CheckpointError(
                f"cannot tell how many classes checkpoint {str(weights)!r} has: "
                f"{best.candidate.label} has no classifier head to read it from; pass "
                "classes= (the class file) or num_classes="
            )
        wanted = int(state[head].shape[0])
        best = _Fit.measure(best.candidate, state, wanted)

    problems = best.problems(state, source)
    if problems:
        raise _mismatch(weights, backbone, best, len(candidates), problems, names)

    model = best.candidate.build(wanted)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:  # keys and shapes matched on the meta model; be safe
        raise CheckpointError(
            f"checkpoint {str(weights)!r} does not load into {best.candidate.label}: {error}"
        ) from error
    return model.eval(), _class_names(names, wanted)


def _class_names(names: list[str] | None, num_classes: int) -> list[str]:
    return names if names is not None else [str(i) for i in range(num_classes)]


def _mismatch(
    weights: str | os.PathLike[str],
    backbone: str,
    fit: _Fit,
    tried: int,
    problems: list[tuple[str, str]],
    names: list[str] | None,
) -> CheckpointError:
    """The error for a checkpoint that does not fit ``fit.candidate``: each problem on its own
    line, then how to fix them."""
    closest = " (the closest of the timm and torchvision layouts, both tried)" if tried > 1 else ""
    classes = ""
    hints = []
    if any(kind == "head" for kind, _ in problems):
        classes = f" with {_plural(fit.num_classes, 'class', 'classes')}"
        hints.append(
            "use the class file the checkpoint was trained with (one class per line, in "
            "training order)"
            if names is not None
            else "pass the num_classes the checkpoint was trained with, or leave it out to "
            "read it from the checkpoint"
        )
    if any(kind == "keys" for kind, _ in problems):
        hints.append(
            f"check that backbone={backbone!r} names the architecture the checkpoint was "
            "trained with"
        )
    hint = "; ".join(hints)
    return CheckpointError(
        f"checkpoint {str(weights)!r} does not fit {fit.candidate.label}{closest}{classes}:\n"
        + "".join(f"  - {text}\n" for _, text in problems)
        + f"{hint[:1].upper()}{hint[1:]}."
    )
