"""camkit: class-activation heatmaps (Grad-CAM++ first) for PyTorch image classifiers.

Quick use::

    from camkit import Explainer
    explanation = Explainer(model).explain("cat.jpg")
    explanation.save("cat_gradcam.jpg")
"""

from camkit.compat.checkpoints import (
    build_backbone,
    load_classifier,
    load_state_dict,
    read_class_names,
)
from camkit.compat.seed import generate_gradcam, generate_gradcam_batch, quick_gradcam
from camkit.errors import (
    CamkitError,
    CamkitPluginWarning,
    CheckpointError,
    DeviceFallbackWarning,
    EmptyMapWarning,
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
    list_plugins,
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
    "CheckpointError",
    "DataConfig",
    "DeviceFallbackWarning",
    "EmptyMapWarning",
    "Explainer",
    "Explanation",
    "GradCAM",
    "GradCAMPlusPlus",
    "GradientWeightedCAM",
    "ImageSkippedWarning",
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
    "build_backbone",
    "generate_gradcam",
    "generate_gradcam_batch",
    "get_plugin_manager",
    "hookimpl",
    "list_architectures",
    "list_methods",
    "list_plugins",
    "list_registrations",
    "list_renderers",
    "list_resolvers",
    "load_classifier",
    "load_state_dict",
    "quick_gradcam",
    "read_class_names",
    "register_plugin",
    "unregister_plugin",
]
