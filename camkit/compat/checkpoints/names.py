"""Model names: the timm or torchvision constructor a backbone name means (:func:`build_backbone`).

A backbone is a timm model name, a torchvision model name, ``"timm/NAME"`` or
``"torchvision/NAME"`` to pick the library, or one of the seed project's names in
:data:`SEED_ALIASES`. Nothing is ever downloaded: every model is built with random weights
(``pretrained=False`` / ``weights=None``).
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Mapping
from types import MappingProxyType

import attrs
import torch
from torch import nn

from camkit.errors import CheckpointError, ConfigurationError

__all__ = ["SEED_ALIASES", "build_backbone"]

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
        raise ConfigurationError(f"backbone must be a model name (str), got {type(name).__name__}")
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
        raise ConfigurationError(f"num_classes must be an int, got {type(num_classes).__name__}")
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
