"""CAM methods: the :class:`CAMMethod` abstraction, its :class:`MethodContext`, and the
built-in methods."""

from camkit.methods.base import CAMMethod, GradientWeightedCAM, LayerCapture
from camkit.methods.context import FullGradients, MethodContext, Perturbations, TargetScore
from camkit.methods.gradcam import GradCAM, GradCAMPlusPlus

__all__ = [
    "CAMMethod",
    "FullGradients",
    "GradCAM",
    "GradCAMPlusPlus",
    "GradientWeightedCAM",
    "LayerCapture",
    "MethodContext",
    "Perturbations",
    "TargetScore",
]
