"""Fitting a checkpoint to a model (:func:`load_classifier`).

The backbone is built on the meta device in each library that has its name, and the keys and
shapes of each layout are compared with the checkpoint's; the closest layout is used. What
keeps a checkpoint from loading (the head's class count against the class file's, missing,
unexpected and wrongly-shaped keys) is told in one error message.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import attrs
from torch import Tensor, nn

from camkit.compat.checkpoints.classfile import read_class_names
from camkit.compat.checkpoints.names import _Candidate, _candidates, _check_num_classes
from camkit.compat.checkpoints.safe_load import _SHOWN, load_state_dict
from camkit.errors import CheckpointError

__all__ = ["load_classifier"]


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


def _shape(shape: Sequence[int]) -> str:
    return "x".join(map(str, shape)) if len(shape) else "scalar"


def _quote(keys: Sequence[str]) -> str:
    shown = ", ".join(map(repr, keys[:_SHOWN]))
    return shown + (f", ... ({len(keys) - _SHOWN} more)" if len(keys) > _SHOWN else "")


def _plural(count: int, word: str, plural: str | None = None) -> str:
    return f"{count} {word if count == 1 else plural or word + 's'}"


@attrs.frozen
class _Comparison:
    """How well a checkpoint fits a model whose head has ``num_classes`` classes: the keys
    and shapes that differ."""

    num_classes: int
    missing: list[str]
    unexpected: list[str]
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]]  # key, checkpoint, model
    head_key: str | None

    @classmethod
    def of(cls, model: nn.Module, state: Mapping[str, Tensor], classes: int) -> _Comparison:
        """Compare ``model``'s state_dict (keys and shapes only) with ``state``."""
        expected = model.state_dict()
        return cls(
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


@attrs.frozen
class _Fit(_Comparison):
    """How well a checkpoint fits one candidate model built with ``num_classes`` classes."""

    candidate: _Candidate

    @classmethod
    def measure(cls, candidate: _Candidate, state: Mapping[str, Tensor], classes: int) -> _Fit:
        found = _Comparison.of(candidate.skeleton(classes), state, classes)
        return cls(candidate=candidate, **attrs.asdict(found, recurse=False))


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
