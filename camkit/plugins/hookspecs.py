"""camkit's hook specifications: the only contract between camkit and its plugins.

A plugin is a module or object with functions named like the specifications below and
decorated with :data:`hookimpl`. camkit registers its own built-ins through these very hooks
(:mod:`camkit.plugins.builtin`, marked ``trylast`` so plugins come first). Third-party
packages are discovered through the ``camkit`` entry-point group::

    [project.entry-points.camkit]
    my_plugin = "my_package.camkit_plugin"
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from torch import Tensor, nn

    from camkit.layers.base import LayerResolver
    from camkit.methods.base import CAMMethod
    from camkit.render.base import Renderer

__all__ = ["PROJECT_NAME", "hookimpl", "hookspec"]

PROJECT_NAME = "camkit"
"""The pluggy project name and the entry-point group."""

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
"""Decorator for a plugin's hook implementations."""


@hookspec
def camkit_register_methods() -> Sequence[type[CAMMethod]]:  # type: ignore[empty-body]
    """Return CAM method classes to register, each under its ``name`` class attribute.

    The class is instantiated with no arguments for ``Explainer(method="name")``; users who
    need other arguments pass an instance instead. Two plugins registering the same name is
    a :class:`~camkit.errors.PluginConflictError`.
    """


@hookspec
def camkit_register_renderers() -> Sequence[type[Renderer]]:  # type: ignore[empty-body]
    """Return renderer classes to register, each under its ``name`` class attribute."""


@hookspec
def camkit_register_resolvers() -> Sequence[LayerResolver]:  # type: ignore[empty-body]
    """Return layer resolvers to ask, in order, when no layer is given.

    Resolvers from plugins are asked before the built-in architecture table and the
    structural fallback; the first that returns a layer name wins.
    """


@hookspec
def camkit_register_architectures() -> Mapping[str, str]:  # type: ignore[empty-body]
    """Return architecture → target-layer rows: ``{"my_net*": "backbone.stage4"}``.

    Keys are architecture names or globs matched against
    :func:`camkit.layers.architecture_name` (timm's ``pretrained_cfg["architecture"]``);
    values are dotted layer names. Plugin rows win over the built-in table. This replaces
    the seed toolkit's ``add_custom_mapping``.
    """


@hookspec(firstresult=True)
def camkit_to_spatial(
    model: nn.Module, layer: str, output: Tensor, input_size: tuple[int, int]
) -> Tensor | None:
    """Turn a layer's output into a spatial map ``(B, C, H, W)``, or return ``None`` to pass.

    This is how a plugin teaches camkit the layout of a layer whose output is not already a
    channels-first map: a vision transformer's token sequence ``(B, N, C)``, a Swin stage's
    channels-last ``(B, H, W, C)``, and so on.

    Called on the captured activations and, with the same arguments, on their gradients, so
    the transformation must be linear in ``output`` (a reshape, a permutation, dropping
    prefix tokens): ``∂y/∂A`` must be laid out exactly like ``A``. Implementations are asked
    last-registered first; the first non-``None`` answer wins. The built-in implementation
    (``trylast``) accepts 4-D outputs as they are, except for models that declare
    channels-last outputs (timm's ``output_fmt == "NHWC"``), for which it returns ``None``.

    Args:
        model: the model being explained.
        layer: dotted name of the target layer.
        output: the layer's output (or its gradient), detached.
        input_size: ``(H, W)`` of the model input of this batch, for implementations whose
            grid depends on it (a ViT with ``dynamic_img_size=True``). Implementations may
            leave out any argument they do not use.
    """
