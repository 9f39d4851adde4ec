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

#: The pluggy project name and the entry-point group.
PROJECT_NAME = "camkit"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
#: Decorator for a plugin's hook implementations.
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


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
def camkit_to_spatial(model: nn.Module, layer: str, output: Tensor) -> Tensor | None:
    """Turn a layer's output into a spatial map ``(B, C, H, W)``, or return ``None`` to pass.

    Called on the captured activations and, with the same arguments, on their gradients,
    so the transformation must be linear in ``output`` (a reshape or permutation, for
    instance dropping prefix tokens of a vision transformer and folding the rest into a
    grid). The built-in implementation (``trylast``) accepts 4-D outputs as they are.
    """
