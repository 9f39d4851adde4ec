"""CAM methods: the :class:`CAMMethod` abstraction, its :class:`MethodContext`, and the
built-in methods."""

from camkit.methods.base import CAMMethod, GradientWeightedCAM, LayerCapture
from camkit.methods.context import FullGradients, MethodContext, Perturbations, TargetScore
from camkit.methods.eigen import KPCACAM, EigenCAM, EigenGradCAM
from camkit.methods.gradcam import GradCAM, GradCAMPlusPlus
from camkit.methods.gradient import GradCAMElementWise, HiResCAM, LayerCAM, XGradCAM

__all__ = [
    "KPCACAM",
    "CAMMethod",
    "EigenCAM",
    "EigenGradCAM",
    "FullGradients",
    "GradCAM",
    "GradCAMElementWise",
    "GradCAMPlusPlus",
    "GradientWeightedCAM",
    "HiResCAM",
    "LayerCAM",
    "LayerCapture",
    "MethodContext",
    "Perturbations",
    "TargetScore",
    "XGradCAM",
]
