"""The :class:`Explanation` value returned by an explainer."""

from __future__ import annotations

import os
from pathlib import Path

import attrs
import cv2
import numpy as np
from numpy.typing import NDArray

from camkit.render.base import Renderer
from camkit.render.jet import JetRenderer

__all__ = ["Explanation"]


@attrs.frozen(eq=False)
class Explanation:
    """One image's explanation.

    Attributes:
        cam: float32 ``(H, W)`` map at the original image's resolution (the tensor's own
            size for tensor input): :attr:`raw` resized bilinearly, then min-max normalised
            to ``[0, 1]`` (all zeros when the map is constant).
        raw: float32 ``(h, w)`` map at the layer's resolution, after ReLU, not normalised.
        pred_class: the model's predicted class (argmax of the scores).
        confidence: softmax probability of the predicted class.
        target: the class explained, or ``None`` for a callable target.
        target_score: the explained score (the raw logit of ``target`` by default).
        layer: dotted name of the layer the map was computed at.
        method: registry name of the CAM method.
        image: the RGB uint8 ``(H, W, 3)`` image the map lies on (for tensor input, the
            tensor with its normalisation undone).
        renderer: the renderer :meth:`overlay` uses.
        pred_name: display name of ``pred_class`` when the explainer knows class names.
    """

    cam: NDArray[np.float32] = attrs.field(repr=False)
    raw: NDArray[np.float32] = attrs.field(repr=False)
    pred_class: int
    confidence: float
    target: int | None
    target_score: float
    layer: str
    method: str
    image: NDArray[np.uint8] = attrs.field(repr=False)
    renderer: Renderer = attrs.field(factory=JetRenderer, repr=False)
    pred_name: str | None = None

    def overlay(self, alpha: float = 0.5) -> NDArray[np.uint8]:
        """Return the map rendered over the image: RGB uint8 ``(H, W, 3)``.

        Args:
            alpha: weight of the heatmap in the blend, in ``[0, 1]``.
        """
        return self.renderer.render(self.image, self.cam, alpha)

    def save(self, path: str | os.PathLike[str], alpha: float = 0.5) -> Path:
        """Write :meth:`overlay` to ``path`` (format from the extension); return the path.

        Missing parent folders are created.

        Raises:
            ValueError: OpenCV cannot write that file type.
            OSError: the file could not be written.
        """
        target = Path(path)
        extension = target.suffix.lower()
        if not extension or not cv2.haveImageWriter(f"x{extension}"):
            raise ValueError(
                f"cannot write {str(target)!r}: unsupported image extension "
                f"{extension or '(none)'}; use .png, .jpg, .bmp, .tif or .webp"
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        bgr = cv2.cvtColor(self.overlay(alpha), cv2.COLOR_RGB2BGR)
        if not cv2.imwrite(str(target), bgr):
            raise OSError(f"OpenCV could not write {str(target)!r}")
        return target
