"""The JET overlay renderer."""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

from camkit.render.base import Renderer, check_render_inputs

__all__ = ["JetRenderer"]


class JetRenderer(Renderer):
    """OpenCV's JET colormap blended over the image.

    ``out = round(alpha · jet(cam) + (1 − alpha) · image)`` as uint8, where ``jet`` is
    ``cv2.applyColorMap(round(255 · cam), COLORMAP_JET)`` converted from BGR to RGB.
    RGB in, RGB out.
    """

    name = "jet"

    def heatmap(self, cam: NDArray[np.floating]) -> NDArray[np.uint8]:
        """The coloured map alone, RGB uint8 ``(H, W, 3)``."""
        levels = np.rint(np.clip(cam, 0.0, 1.0) * 255.0).astype(np.uint8)
        bgr = cv2.applyColorMap(levels, cv2.COLORMAP_JET)
        return np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), dtype=np.uint8)

    def render(
        self, image: NDArray[np.uint8], cam: NDArray[np.floating], alpha: float = 0.5
    ) -> NDArray[np.uint8]:
        cam32 = check_render_inputs(image, cam, alpha)
        heat = self.heatmap(cam32).astype(np.float32)
        blended = alpha * heat + (1.0 - alpha) * image.astype(np.float32)
        return np.clip(np.rint(blended), 0, 255).astype(np.uint8)
