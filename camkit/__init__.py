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
