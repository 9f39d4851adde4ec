"""Colour bars of a renderer's colormap, for figures and HTML pages."""

from __future__ import annotations

import base64

import cv2
import numpy as np
from numpy.typing import NDArray

from camkit.errors import ConfigurationError, OutputError
from camkit.render.base import Renderer

__all__ = ["colorbar", "colorbar_data_uri"]

_LENGTH, _THICKNESS = 256, 16


def _renderer(renderer: str | Renderer | type[Renderer]) -> Renderer:
    from camkit.plugins.manager import resolve_renderer  # the registry imports this package

    return resolve_renderer(renderer)


def _size(label: str, value: int | None, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"{label} must be an int >= 1 or None, got {value!r}")
    return value


def colorbar(
    renderer: str | Renderer | type[Renderer] = "jet",
    *,
    height: int | None = None,
    width: int | None = None,
    vertical: bool = True,
) -> NDArray[np.uint8]:
    """A colour bar of ``renderer``'s colormap from 0 to 1: RGB uint8 ``(height, width, 3)``.

    Vertical bars run from 1 at the top row to 0 at the bottom row; horizontal ones from 0 in
    the left column to 1 in the right one. The values are evenly spaced, both ends included,
    one per pixel along the bar: with an odd length the middle pixel is exactly 0.5.

    The colours are what the renderer draws at ``alpha=1`` over a black image, which for a
    :class:`~camkit.render.ColormapRenderer` (every built-in renderer) is its colormap
    exactly: the bar's pixel for value ``v`` is the overlay's colour for a map value ``v``.

    Args:
        renderer: a registered renderer name (``"jet"``, ``"viridis"``, ...), a
            :class:`~camkit.Renderer` or a Renderer subclass.
        height: the bar's height in pixels; default 256 vertical, 16 horizontal.
        width: the bar's width in pixels; default 16 vertical, 256 horizontal.
        vertical: the direction of the bar.

    Raises:
        UnknownNameError: ``renderer`` is a name no plugin registered.
        ConfigurationError: ``height`` or ``width`` < 1, or ``renderer`` of another type.
    """
    drawer = _renderer(renderer)
    rows = _size("height", height, _LENGTH if vertical else _THICKNESS)
    columns = _size("width", width, _THICKNESS if vertical else _LENGTH)
    length = rows if vertical else columns
    values = np.linspace(0.0, 1.0, length, dtype=np.float64).astype(np.float32)[None, :]
    colours = drawer.render(np.zeros((1, length, 3), dtype=np.uint8), values, alpha=1.0)
    line = np.asarray(colours, dtype=np.uint8)[0]  # (length, 3), value 0 first
    if vertical:
        return np.ascontiguousarray(np.repeat(line[::-1, None, :], columns, axis=1))
    return np.ascontiguousarray(np.repeat(line[None, :, :], rows, axis=0))


def colorbar_data_uri(
    renderer: str | Renderer | type[Renderer] = "jet",
    *,
    height: int | None = None,
    width: int | None = None,
    vertical: bool = True,
) -> str:
    """:func:`colorbar` as a PNG ``data:image/png;base64,...`` URI, for an HTML ``<img src>``
    that needs no file next to the page. Encoded in memory; nothing is written.

    Raises:
        OutputError: OpenCV could not encode the PNG.
        UnknownNameError, ConfigurationError: as :func:`colorbar`.
    """
    bar = colorbar(renderer, height=height, width=width, vertical=vertical)
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(bar, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OutputError(f"OpenCV could not encode the {bar.shape} colour bar as PNG")
    return "data:image/png;base64," + base64.b64encode(encoded.tobytes()).decode("ascii")
