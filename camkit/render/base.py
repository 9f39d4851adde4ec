"""The :class:`Renderer` abstraction: an RGB image and a map become a picture."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np
from numpy.typing import NDArray

from camkit.errors import ConfigurationError, InputError

__all__ = ["Renderer", "check_render_inputs"]


def check_render_inputs(
    image: NDArray[np.uint8], cam: NDArray[np.floating], alpha: float
) -> NDArray[np.float32]:
    """Validate a renderer's inputs and return the map as float32 clipped to ``[0, 1]``.

    Raises:
        InputError: the image is not ``(H, W, 3)`` uint8, or the map is not ``(H, W)`` of the
            same size.
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
    if cam.shape != image.shape[:2]:
        raise InputError(
            f"cam shape {cam.shape} does not match the image's (H, W) {image.shape[:2]}; "
            "resize the map to the image first"
        )
    if not 0.0 <= alpha <= 1.0:
        raise ConfigurationError(f"alpha must lie in [0, 1], got {alpha!r}")
    return np.clip(np.nan_to_num(cam.astype(np.float32, copy=False)), 0.0, 1.0)


class Renderer(ABC):
    """Turns an RGB uint8 image ``(H, W, 3)`` and a map ``(H, W)`` in ``[0, 1]`` into an
    RGB uint8 picture ``(H, W, 3)``.

    Subclasses set :attr:`name` (the registry name) and implement :meth:`render`; call
    :func:`check_render_inputs` first to validate shapes the same way the built-ins do.
    """

    name: ClassVar[str] = ""
    """Name under which the renderer is registered (``Explainer(renderer=name)``)."""

    @abstractmethod
    def render(
        self, image: NDArray[np.uint8], cam: NDArray[np.floating], alpha: float = 0.5
    ) -> NDArray[np.uint8]:
        """Return the rendered RGB uint8 picture, same height and width as ``image``."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
