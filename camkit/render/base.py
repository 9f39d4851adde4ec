"""The :class:`Renderer` abstraction: an RGB image and a map become a picture."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import cv2
import numpy as np
from numpy.typing import NDArray

from camkit.errors import ConfigurationError, InputError

__all__ = ["Renderer", "check_render_inputs"]


def check_render_inputs(
    image: NDArray[np.uint8], cam: NDArray[np.floating], alpha: float, *, coarse: bool = False
) -> NDArray[np.float32]:
    """Validate a renderer's inputs and return the map as float32 clipped to ``[0, 1]``.

    Args:
        coarse: the map may be smaller than the image, covering all of it
            (:meth:`Renderer.render_upsampled`); otherwise it must have the image's size.

    Raises:
        InputError: the image is not ``(H, W, 3)`` uint8, the map is not ``(H, W)`` of the
            same size (nor, with ``coarse``, at most that size), or it holds NaN or
            infinite values: no overlay is drawn from such a map.
        ConfigurationError: ``alpha`` is outside ``[0, 1]``.
    """
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise InputError(
            f"image must be a uint8 numpy array, got {type(image).__name__} "
            f"of dtype {getattr(image, 'dtype', None)}"
        )
    if image.ndim != 3 or image.shape[2] != 3:
        raise InputError(f"image must be RGB with shape (H, W, 3), got {image.shape}")
    if not isinstance(cam, np.ndarray) or cam.ndim != 2:
        raise InputError(
            f"cam must be a 2-D numpy array (H, W), got shape {getattr(cam, 'shape', None)}"
        )
    height, width = image.shape[:2]
    if coarse:
        if not (1 <= cam.shape[0] <= height and 1 <= cam.shape[1] <= width):
            raise InputError(
                f"cam shape {cam.shape} must be at least 1×1 and at most the image's (H, W) "
                f"{image.shape[:2]}"
            )
    elif cam.shape != image.shape[:2]:
        raise InputError(
            f"cam shape {cam.shape} does not match the image's (H, W) {image.shape[:2]}; "
            "resize the map to the image first"
        )
    if not 0.0 <= alpha <= 1.0:
        raise ConfigurationError(f"alpha must lie in [0, 1], got {alpha!r}")
    if not bool(np.isfinite(cam).all()):
        raise InputError(
            f"cam holds {int(np.count_nonzero(~np.isfinite(cam)))} NaN or infinite values; "
            "no overlay is drawn from such a map (it would look empty). camkit's maps are "
            "always finite: check where this one was computed"
        )
    return np.clip(cam.astype(np.float32, copy=False), 0.0, 1.0)


class Renderer(ABC):
    """Turns an RGB uint8 image ``(H, W, 3)`` and a map ``(H, W)`` in ``[0, 1]`` into an
    RGB uint8 picture ``(H, W, 3)``.

    Subclasses set :attr:`name` (the registry name) and implement :meth:`render`; call
    :func:`check_render_inputs` first to validate shapes the same way the built-ins do.
    They may override :meth:`render_upsampled`, which draws large images from a coarser map.
    """

    name: ClassVar[str] = ""
    """Name under which the renderer is registered (``Explainer(renderer=name)``)."""

    @abstractmethod
    def render(
        self, image: NDArray[np.uint8], cam: NDArray[np.floating], alpha: float = 0.5
    ) -> NDArray[np.uint8]:
        """Return the rendered RGB uint8 picture, same height and width as ``image``."""

    def render_upsampled(
        self, image: NDArray[np.uint8], cam: NDArray[np.floating], alpha: float = 0.5
    ) -> NDArray[np.uint8]:
        """Render a map ``(h, w)`` that covers the whole image on a coarser grid: what
        :meth:`camkit.Explanation.overlay` draws for images larger than
        :data:`camkit.pipeline.place.OVERLAY_PIXELS`. Returns the picture at the image's
        full size.

        This default resizes the map bilinearly (half-pixel centres) to the image's size and
        calls :meth:`render`; :class:`~camkit.render.ColormapRenderer` upsamples it as 16-bit
        levels and blends in uint8 instead, so that its memory stays a small multiple of the
        image's.

        Raises:
            InputError, ConfigurationError: as :func:`check_render_inputs` with ``coarse``.
        """
        cam32 = check_render_inputs(image, cam, alpha, coarse=True)
        height, width = image.shape[:2]
        full = cv2.resize(cam32, (width, height), interpolation=cv2.INTER_LINEAR)
        return self.render(image, np.asarray(full, dtype=np.float32), alpha)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
