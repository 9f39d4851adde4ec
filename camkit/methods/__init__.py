"""CAM methods: the :class:`CAMMethod` abstraction, its :class:`MethodContext`, and the
built-in methods."""

from camkit.methods.base import CAMMethod, GradientWeightedCAM, LayerCapture
from camkit.methods.context import FullGradients, MethodContext, Perturbations, TargetScore
from camkit.methods.gradcam import GradCAM, GradCAMPlusPlus
from camkit.methods.linear_head import CAM
from camkit.methods.perturbation import ISCAM, SSCAM, AblationCAM, ScoreCAM

__all__ = [
    "CAM",
    "ISCAM",
    "SSCAM",
    "AblationCAM",
    "CAMMethod",
    "FullGradients",
    "GradCAM",
    "GradCAMPlusPlus",
    "GradientWeightedCAM",
    "LayerCapture",
    "MethodContext",
    "Perturbations",
    "ScoreCAM",
    "TargetScore",
]
