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
from typing import TYPE_CHECKING, Literal

import pluggy

if TYPE_CHECKING:
    from torch import Tensor, nn

    from camkit.layers.base import LayerResolver
    from camkit.methods.base import CAMMethod
    from camkit.render.base import Renderer

__all__ = ["ADVICE_PROBLEMS", "PROJECT_NAME", "AdviceProblem", "hookimpl", "hookspec"]

PROJECT_NAME = "camkit"
"""The pluggy project name and the entry-point group."""

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
"""Decorator for a plugin's hook implementations."""

AdviceProblem = Literal["layout", "empty-map", "no-layer"]
"""The problems camkit asks :func:`camkit_advice` about (see :data:`ADVICE_PROBLEMS`)."""

ADVICE_PROBLEMS: tuple[AdviceProblem, ...] = ("layout", "empty-map", "no-layer")
"""The ``problem`` codes passed to :func:`camkit_advice`:

- ``"layout"``: a layer's output cannot be turned into a ``(B, C, H, W)`` map (no
  ``camkit_to_spatial`` implementation answered), or the structural resolver found that the
  model's last layers give token sequences ``(B, N, C)``, or that the model declares
  channels-last maps;
- ``"empty-map"``: the gradient of the target score is zero everywhere on the layer's map, so
  the explanation is empty (an :class:`~camkit.errors.EmptyMapWarning`);
- ``"no-layer"``: no layer resolver found a target layer for the model.

Later versions of camkit may add codes; implementations return ``None`` for codes they do not
know.
"""


@hookspec
def camkit_register_methods() -> Sequence[type[CAMMethod]]:  # type: ignore[empty-body]
    """Return CAM method classes to register, each under its ``name`` class attribute.

    The class is instantiated with no arguments for ``Explainer(method="name")``; users who
    need other arguments pass an instance instead. When two plugins register the same name,
    both are listed and using that name raises :class:`~camkit.errors.PluginConflictError`
    naming both; the other names keep working.
    """


@hookspec
def camkit_register_renderers() -> Sequence[type[Renderer]]:  # type: ignore[empty-body]
    """Return renderer classes to register, each under its ``name`` class attribute.

    Name clashes are handled as for :func:`camkit_register_methods`.
    """


@hookspec
def camkit_register_resolvers() -> Sequence[LayerResolver]:  # type: ignore[empty-body]
    """Return layer resolvers to ask, in order, when no layer is given.

    Resolvers from plugins are asked before the built-in architecture table and the
    structural fallback; the first that returns a layer name wins. A resolver that raises
    anything but a :class:`~camkit.errors.CamkitError` is passed over with one
    :class:`~camkit.errors.CamkitPluginWarning` naming the plugin; when no other resolver
    finds a layer, :class:`~camkit.errors.PluginError` names it
    (:func:`camkit.plugins.ask_resolvers`).
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
    channels-first map: a token sequence ``(B, N, C)``, a channels-last map ``(B, H, W, C)``,
    and so on.

    Called on the captured activations and, with the same arguments, on their gradients, so
    the transformation must be linear in ``output`` (a reshape, a permutation, dropping
    prefix tokens): ``∂y/∂A`` must be laid out exactly like ``A``. Implementations are asked
    last-registered first; the first non-``None`` answer wins. The built-in implementation
    (``trylast``) accepts 4-D outputs as they are, except for models that declare
    channels-last outputs (timm's ``output_fmt == "NHWC"``), for which it returns ``None``.

    Return ``None`` for models and layers the plugin does not handle; never assume a model's
    structure. An implementation that raises anything but a
    :class:`~camkit.errors.CamkitError` is passed over (the others are asked) with one
    :class:`~camkit.errors.CamkitPluginWarning` naming the plugin, and when no other
    implementation answers, :class:`~camkit.errors.PluginError` names it. A ``CamkitError``
    (a :class:`~camkit.errors.LayerResolutionError` refusing a layer) is raised as it is.

    Args:
        model: the model being explained.
        layer: dotted name of the target layer.
        output: the layer's output (or its gradient), detached.
        input_size: ``(H, W)`` of the model input of this batch, for implementations whose
            grid depends on it (a model that takes inputs of any size). Implementations may
            leave out any argument they do not use.
    """


@hookspec(firstresult=True)
def camkit_input_size(model: nn.Module) -> tuple[int, int] | None:
    """Return the only input size ``(H, W)`` ``model`` accepts, or ``None`` if it takes others.

    :meth:`camkit.DataConfig.from_model` asks this hook, so that images are preprocessed to a
    size the model accepts even when its ``pretrained_cfg`` says otherwise (a model built for
    another input size than the one its pretrained configuration records). The answer
    replaces the configuration's ``input_size``; ``None`` from every implementation keeps it.
    An explicit ``DataConfig`` or ``transform`` given to the explainer is never overridden.

    Implementations are asked last-registered first; the first non-``None`` answer wins. The
    built-in plugin does not implement this hook. An implementation that raises anything but
    a :class:`~camkit.errors.CamkitError` is passed over with one
    :class:`~camkit.errors.CamkitPluginWarning` naming the plugin.

    Args:
        model: the model, as given to the explainer (it may wrap the module that enforces
            the size).

    Returns:
        ``(H, W)`` with ``H, W >= 1``, or ``None`` to pass. Any other answer raises
        :class:`~camkit.errors.PluginError` naming the plugin.
    """


@hookspec
def camkit_advice(model: nn.Module, layer: str | None, problem: str) -> str | None:
    """Return advice to append to a camkit message about ``model``, or ``None`` to pass.

    camkit calls this hook when something about a model or a layer goes wrong, and appends
    the answers to its error or warning message, so that a plugin can say what it covers and
    what to do about a model it knows. Every implementation is asked (not ``firstresult``);
    the non-empty answers are joined in the order the implementations are asked
    (last-registered first). When no implementation answers, camkit appends its own generic
    advice (:func:`camkit.plugins.advice`). An implementation that raises is skipped: the
    message says so, and the original error is still raised.

    Return ``None`` for models, layers and problems the plugin knows nothing about: advice
    that does not concern the model only hides camkit's generic advice. The built-in plugin
    does not implement this hook.

    Args:
        model: the model being explained.
        layer: dotted name of the layer concerned, or ``None`` when the problem concerns no
            single layer (the structural resolver's verdict on the whole model, or no layer
            found).
        problem: what went wrong, one of :data:`ADVICE_PROBLEMS`: ``"layout"``,
            ``"empty-map"`` or ``"no-layer"``. Implementations may leave out any argument
            they do not use.
    """
