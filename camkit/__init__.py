"""camkit: class-activation heatmaps (Grad-CAM++ first) for PyTorch image classifiers.

Quick use::

    from camkit import Explainer
    explanation = Explainer(model).explain("cat.jpg")
    explanation.save("cat_gradcam.jpg")
"""

from camkit.errors import (
    CamkitError,
    CamkitPluginWarning,
    DeviceFallbackWarning,
    ImageSkippedWarning,
    InputError,
    LayerNotFoundError,
    LayerResolutionError,
    ModelOutputError,
    PluginConflictError,
    PluginError,
    TargetError,
    UnknownNameError,
)
from camkit.explainer import Explainer
from camkit.explanation import Explanation
from camkit.layers import ArchitectureMapping, LayerResolver, StructuralResolver
from camkit.methods import CAMMethod, GradCAM, GradCAMPlusPlus, GradientWeightedCAM, LayerCapture
from camkit.plugins import (
    get_plugin_manager,
    hookimpl,
    list_architectures,
    list_methods,
    list_registrations,
    list_renderers,
    list_resolvers,
    register_plugin,
    unregister_plugin,
)
from camkit.preprocess import DataConfig
from camkit.render import JetRenderer, Renderer

__version__ = "0.1.0"

__all__ = [
    "ArchitectureMapping",
    "CAMMethod",
    "CamkitError",
    "CamkitPluginWarning",
    "DataConfig",
    "DeviceFallbackWarning",
    "Explainer",
    "Explanation",
    "ImageSkippedWarning",
    "GradCAM",
    "GradCAMPlusPlus",
    "GradientWeightedCAM",
    "InputError",
    "JetRenderer",
    "LayerCapture",
    "LayerNotFoundError",
    "LayerResolutionError",
    "LayerResolver",
    "ModelOutputError",
    "PluginConflictError",
    "PluginError",
    "Renderer",
    "StructuralResolver",
    "TargetError",
    "UnknownNameError",
    "__version__",
    "get_plugin_manager",
    "hookimpl",
    "list_architectures",
    "list_methods",
    "list_registrations",
    "list_renderers",
    "list_resolvers",
    "register_plugin",
    "unregister_plugin",
]
