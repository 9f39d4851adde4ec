"""CAM methods: the :class:`CAMMethod` abstraction, its :class:`MethodContext`, and the
built-in methods."""

from camkit.methods.base import CAMMethod, GradientWeightedCAM, LayerCapture
from camkit.methods.context import FullGradients, MethodContext, Perturbations, TargetScore
from camkit.methods.eigen import KPCACAM, EigenCAM, EigenGradCAM
from camkit.methods.finer import FinerCAM
from camkit.methods.fullgrad import FullGrad
from camkit.methods.gradcam import GradCAM, GradCAMPlusPlus
from camkit.methods.gradient import GradCAMElementWise, HiResCAM, LayerCAM, XGradCAM
from camkit.methods.shapley import ShapleyCAM
from camkit.methods.smooth import SmoothGradCAMPlusPlus

__all__ = [
    "KPCACAM",
    "CAMMethod",
    "EigenCAM",
    "EigenGradCAM",
    "FinerCAM",
    "FullGrad",
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
    "ShapleyCAM",
    "SmoothGradCAMPlusPlus",
    "TargetScore",
    "XGradCAM",
]
