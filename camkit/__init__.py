"""camkit: class-activation heatmaps (Grad-CAM++ first) for PyTorch image classifiers.

Quick use::

    from camkit import Explainer
    explanation = Explainer(model).explain("cat.jpg")
    explanation.save("cat_gradcam.jpg")

The top level holds what users need: the :class:`Explainer` facade and its results, the
abstractions to subclass (:class:`CAMMethod` with its :class:`MethodContext`,
:class:`LayerResolver`, :class:`Renderer`), the plugin entry points, :class:`CamkitError`, and
the seed toolkit's functions. Everything else is importable from its module: the specific
error and warning types from :mod:`camkit.errors`, the pipeline's steps from
:mod:`camkit.pipeline`, metrics from :mod:`camkit.metrics`, folder runs from
:mod:`camkit.tools.batch`, checkpoints from :mod:`camkit.compat`.
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from camkit.compat.checkpoints import load_classifier
    from camkit.compat.seed import generate_gradcam, generate_gradcam_batch, quick_gradcam
    from camkit.errors import CamkitError
    from camkit.explainer import Explainer
    from camkit.explanation import Explanation, ExplanationBatch
    from camkit.layers import LayerResolver
    from camkit.methods import (
        CAMMethod,
        GradCAM,
        GradCAMPlusPlus,
        GradientWeightedCAM,
        LayerCapture,
        MethodContext,
    )
    from camkit.plugins import (
        hookimpl,
        list_architectures,
        list_methods,
        list_plugins,
        list_renderers,
        list_resolvers,
        register_plugin,
        unregister_plugin,
    )
    from camkit.preprocess import DataConfig
    from camkit.render import JetRenderer, Renderer

__version__ = "0.1.0"

__all__ = [
    "CAMMethod",
    "CamkitError",
    "DataConfig",
    "Explainer",
    "Explanation",
    "ExplanationBatch",
    "GradCAM",
    "GradCAMPlusPlus",
    "GradientWeightedCAM",
    "JetRenderer",
    "LayerCapture",
    "LayerResolver",
    "MethodContext",
    "Renderer",
    "__version__",
    "generate_gradcam",
    "generate_gradcam_batch",
    "hookimpl",
    "list_architectures",
    "list_methods",
    "list_plugins",
    "list_renderers",
    "list_resolvers",
    "load_classifier",
    "quick_gradcam",
    "register_plugin",
    "unregister_plugin",
]

_LAZY = {
    "CAMMethod": "camkit.methods",
    "CamkitError": "camkit.errors",
    "DataConfig": "camkit.preprocess",
    "Explainer": "camkit.explainer",
    "Explanation": "camkit.explanation",
    "ExplanationBatch": "camkit.explanation",
    "GradCAM": "camkit.methods",
    "GradCAMPlusPlus": "camkit.methods",
    "GradientWeightedCAM": "camkit.methods",
    "JetRenderer": "camkit.render",
    "LayerCapture": "camkit.methods",
    "LayerResolver": "camkit.layers",
    "MethodContext": "camkit.methods",
    "Renderer": "camkit.render",
    "generate_gradcam": "camkit.compat.seed",
    "generate_gradcam_batch": "camkit.compat.seed",
    "hookimpl": "camkit.plugins",
    "list_architectures": "camkit.plugins",
    "list_methods": "camkit.plugins",
    "list_plugins": "camkit.plugins",
    "list_renderers": "camkit.plugins",
    "list_resolvers": "camkit.plugins",
    "load_classifier": "camkit.compat.checkpoints",
    "quick_gradcam": "camkit.compat.seed",
    "register_plugin": "camkit.plugins",
    "unregister_plugin": "camkit.plugins",
}
"""Where each name of the top level lives. Names and submodules are imported on first use
(PEP 562): ``import camkit`` costs almost nothing, and ``import camkit.errors`` or
``camkit.tools.output`` loads neither torch nor the methods."""


def __getattr__(name: str) -> Any:
    """A top-level name, or a submodule (``camkit.errors``), imported on first use."""
    module = _LAZY.get(name)
    if module is not None:
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value  # found directly next time
        return value
    if not name.startswith("_"):
        try:
            return importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as error:
            if error.name != f"{__name__}.{name}":
                raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
