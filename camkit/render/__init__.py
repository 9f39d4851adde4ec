"""Renderers: the :class:`Renderer` abstraction, OpenCV's colormaps as overlays
(:class:`ColormapRenderer`; :class:`JetRenderer` is the default ``"jet"``) and colour bars."""

from camkit.render.base import Renderer, check_render_inputs
from camkit.render.colorbar import colorbar, colorbar_data_uri
from camkit.render.colormap import (
    COLORMAP_RENDERERS,
    COLORMAPS,
    ColormapRenderer,
    JetRenderer,
)

__all__ = [
    "COLORMAPS",
    "COLORMAP_RENDERERS",
    "ColormapRenderer",
    "JetRenderer",
    "Renderer",
    "check_render_inputs",
    "colorbar",
    "colorbar_data_uri",
]
