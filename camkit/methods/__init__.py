"""CAM methods: the :class:`CAMMethod` abstraction, its :class:`MethodContext`, and the
built-in methods."""

from camkit.methods.base import CAMMethod, GradientWeightedCAM, LayerCapture
from camkit.methods.context import FullGradients, MethodContext, Perturbations, TargetScore
from camkit.methods.finer import FinerCAM
from camkit.methods.fullgrad import FullGrad
from camkit.methods.gradcam import GradCAM, GradCAMPlusPlus
from camkit.methods.shapley import ShapleyCAM
from camkit.methods.smooth import SmoothGradCAMPlusPlus

__all__ = [
    "CAMMethod",
    "FinerCAM",
    "FullGrad",
    "FullGradients",
    "GradCAM",
    "GradCAMPlusPlus",
    "GradientWeightedCAM",
    "LayerCapture",
    "MethodContext",
    "Perturbations",
    "ShapleyCAM",
    "SmoothGradCAMPlusPlus",
    "TargetScore",
]
