"""CAM methods: the :class:`CAMMethod` abstraction, its :class:`MethodContext`, and the
built-in methods, one module per family."""

from camkit.methods.base import CAMMethod, GradientWeightedCAM, LayerCapture
from camkit.methods.context import FullGradients, MethodContext, Perturbations, TargetScore
from camkit.methods.eigen import KPCACAM, EigenCAM, EigenGradCAM
from camkit.methods.finer import FinerCAM
from camkit.methods.fullgrad import FullGrad
from camkit.methods.gradcam import GradCAM, GradCAMPlusPlus
from camkit.methods.gradient import GradCAMElementWise, HiResCAM, LayerCAM, XGradCAM
from camkit.methods.linear_head import CAM
from camkit.methods.perturbation import ISCAM, SSCAM, AblationCAM, ScoreCAM
from camkit.methods.shapley import ShapleyCAM
from camkit.methods.smooth import SmoothGradCAMPlusPlus

__all__ = [
    "CAM",
    "ISCAM",
    "KPCACAM",
    "SSCAM",
    "AblationCAM",
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
    "ScoreCAM",
    "ShapleyCAM",
    "SmoothGradCAMPlusPlus",
    "TargetScore",
    "XGradCAM",
]
