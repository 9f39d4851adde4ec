"""Architecture table: known families and the real names of their target layers."""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
from torch import Tensor, nn

from camkit.errors import ConfigurationError
from camkit.layers.base import LayerResolver

__all__ = [
    "BUILTIN_ARCHITECTURES",
    "ArchitectureMapping",
    "ArchitectureTableResolver",
    "architecture_name",
]


def _non_empty(_: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    if not isinstance(value, str) or not value:
        raise ConfigurationError(
            f"ArchitectureMapping.{attribute.name} must be a non-empty string, got {value!r}"
        )


@attrs.frozen
class ArchitectureMapping:
    """One row of the architecture table.

    Attributes:
        pattern: architecture name or glob (``"resnet50*"``), matched against
            :func:`architecture_name`.
        layer: dotted name of the target layer in models of that architecture.
        provider: name of the plugin that registered the row.
    """

    pattern: str = attrs.field(validator=_non_empty)
    layer: str = attrs.field(validator=_non_empty)
    provider: str = "camkit"

    def matches(self, architecture: str) -> bool:
        """Whether ``architecture`` matches :attr:`pattern` (case-insensitive glob)."""
        return fnmatch.fnmatchcase(architecture.lower(), self.pattern.lower())


_VGG_LAST_CONV = {
    "vgg11": "features.18",
    "vgg13": "features.22",
    "vgg16": "features.28",
    "vgg19": "features.34",
    "vgg11_bn": "features.25",
    "vgg13_bn": "features.31",
    "vgg16_bn": "features.40",
    "vgg19_bn": "features.49",
}

BUILTIN_ARCHITECTURES: Mapping[str, str] = {
    # ResNet (timm and torchvision layouts share names)
    **{f"resnet{depth}*": "layer4" for depth in (18, 26, 34, 50, 101, 152, 200)},
    "torchvision/resnet": "layer4",
    # VGG, plain and batch-norm, timm and torchvision
    **_VGG_LAST_CONV,
    **{f"torchvision/{k}": v for k, v in _VGG_LAST_CONV.items()},
    # DenseNet
    **{f"densenet{d}*": "features.denseblock4" for d in (121, 161, 169, 201)},
    "torchvision/densenet": "features.denseblock4",
    # MobileNet v2
    "mobilenetv2_*": "conv_head",
    "torchvision/mobilenetv2": "features.18",
    # EfficientNet b0-b7 (timm and tf_ ports) and torchvision
    **{f"efficientnet_b{i}": "conv_head" for i in range(8)},
    **{f"tf_efficientnet_b{i}*": "conv_head" for i in range(8)},
    "torchvision/efficientnet": "features.8",
    # ConvNeXt
    "convnext_*": "stages.3",
    "torchvision/convnext": "features.7",
    # Xception (timm's deprecated `xception` name maps to `legacy_xception`)
    "legacy_xception": "conv4",
    "xception": "conv4",
    # Inception-ResNet v2
    "inception_resnet_v2": "conv2d_7b",
}
"""The built-in table: timm names as timm spells them, torchvision models as
``torchvision/<family>`` (see :func:`architecture_name`).
"""

_TORCHVISION_FAMILIES = {
    "ResNet": "resnet",
    "DenseNet": "densenet",
    "MobileNetV2": "mobilenetv2",
    "EfficientNet": "efficientnet",
    "ConvNeXt": "convnext",
}


def architecture_name(model: nn.Module) -> str | None:
    """Return the architecture name camkit looks up in the table, or ``None``.

    - a model with a timm-style ``pretrained_cfg`` (or ``default_cfg``) dict holding
      ``"architecture"`` gives that name (all timm models do);
    - a torchvision classification model gives ``torchvision/<family>``, with the VGG
      variant spelled out (``torchvision/vgg16_bn``), since the layer index depends on it.
    """
    for attribute in ("pretrained_cfg", "default_cfg"):
        cfg: Any = getattr(model, attribute, None)
        if isinstance(cfg, Mapping) and isinstance(cfg.get("architecture"), str):
            return str(cfg["architecture"])
    cls = type(model)
    if not cls.__module__.startswith("torchvision.models"):
        return None
    if cls.__name__ == "VGG":
        features = getattr(model, "features", None)
        if isinstance(features, nn.Sequential):
            convs = sum(isinstance(m, nn.Conv2d) for m in features)
            has_bn = any(isinstance(m, nn.BatchNorm2d) for m in features)
            depth = {8: 11, 10: 13, 13: 16, 16: 19}.get(convs)
            if depth is not None:
                return f"torchvision/vgg{depth}{'_bn' if has_bn else ''}"
        return "torchvision/vgg"
    family = _TORCHVISION_FAMILIES.get(cls.__name__)
    return f"torchvision/{family}" if family else None


class ArchitectureTableResolver(LayerResolver):
    """Looks the model's :func:`architecture_name` up in the registered architecture table.

    Plugin mappings come before the built-in rows, so a plugin's row wins. A row whose layer
    does not exist in the model is skipped (the next resolver is asked).
    """

    name = "architecture-table"

    def __init__(self, mappings: Sequence[ArchitectureMapping] | None = None) -> None:
        self._mappings = mappings

    def mappings(self) -> Sequence[ArchitectureMapping]:
        """The rows used: those given at construction, else the registry's."""
        if self._mappings is not None:
            return self._mappings
        from camkit.plugins.manager import get_registry

        return get_registry().architectures

    def resolve(self, model: nn.Module, example: Tensor | None) -> str | None:
        architecture = architecture_name(model)
        if architecture is None:
            return None
        names = {name for name, _ in model.named_modules()}
        for mapping in self.mappings():
            if mapping.matches(architecture) and mapping.layer in names:
                return mapping.layer
        return None
