"""CAM methods: the :class:`CAMMethod` abstraction and the built-in methods."""

from camkit.methods.base import CAMMethod, GradientWeightedCAM, LayerCapture
from camkit.methods.gradcam import GradCAM, GradCAMPlusPlus

__all__ = ["CAMMethod", "GradCAM", "GradCAMPlusPlus", "GradientWeightedCAM", "LayerCapture"]
