"""OpenCV's colormaps as renderers: :class:`ColormapRenderer` and one registered class per
colormap (``jet``, ``turbo``, ``viridis``, ...).

The colormaps are the ``cv2.COLORMAP_*`` constants of the installed OpenCV, read at import
and named in lower case without the prefix (``COLORMAP_TWILIGHT_SHIFTED`` →
``"twilight_shifted"``): :data:`COLORMAPS`. Each one has a renderer class registered under
its name (:data:`COLORMAP_RENDERERS`), so ``Explainer(renderer="viridis")`` works;
:class:`JetRenderer` is the ``"jet"`` member, camkit's default.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from types import MappingProxyType
from typing import cast

import cv2
import numpy as np
from numpy.typing import NDArray

from camkit.errors import ConfigurationError, UnknownNameError
from camkit.render.base import Renderer, check_render_inputs

__all__ = [
    "COLORMAPS",
    "COLORMAP_RENDERERS",
    "ColormapRenderer",
    "JetRenderer",
]

_PREFIX = "COLORMAP_"

COLORMAPS: Mapping[str, int] = MappingProxyType(
    {
        attribute.removeprefix(_PREFIX).lower(): int(getattr(cv2, attribute))
        for attribute in sorted(dir(cv2))
        if attribute.startswith(_PREFIX) and isinstance(getattr(cv2, attribute), int)
    }
)
"""Every colormap of the installed OpenCV: lower-case name → ``cv2.COLORMAP_*`` code,
sorted by name."""


def _colormap_code(colormap: str) -> int:
    if not isinstance(colormap, str):
        raise ConfigurationError(
            f"colormap must be a colormap name such as 'jet' or 'viridis', got {colormap!r}"
        )
    if colormap in COLORMAPS:
        return COLORMAPS[colormap]
    close = difflib.get_close_matches(colormap.lower(), list(COLORMAPS), n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(map(repr, close))}? " if close else ""
    raise UnknownNameError(
        f"unknown colormap {colormap!r}; {hint}OpenCV's colormaps: {', '.join(COLORMAPS)}."
    )


_BAND_PIXELS = 1 << 20
"""Most pixels of an upsampled overlay coloured at once (4 MiB of float32 map values)."""


def _blend_into(
    heat: NDArray[np.uint8], image: NDArray[np.uint8], alpha: float
) -> NDArray[np.uint8]:
    """``round(alpha · heat + (1 − alpha) · image)`` written into ``heat`` and returned.

    Computed by OpenCV (``cv2.addWeighted``, float arithmetic rounded to the nearest level,
    in one vectorised pass and no temporaries): where the exact value is within float
    rounding of a half level, it may land on the other neighbouring level, as any float32
    computation of the formula does."""
    cv2.addWeighted(heat, alpha, image, 1.0 - alpha, 0.0, dst=heat)
    return heat


class ColormapRenderer(Renderer):
    """An OpenCV colormap blended over the image.

    ``out = round(alpha · colormap(cam) + (1 − alpha) · image)`` as uint8, where
    ``colormap(cam)`` is ``cv2.applyColorMap(round(255 · cam), cv2.COLORMAP_<NAME>)``
    converted from BGR to RGB. RGB in, RGB out. The map is clipped to ``[0, 1]`` first, so 0
    gets the colormap's first colour and 1 its last.

    Every colormap is also registered as a renderer of its own name (``"turbo"``,
    ``"viridis"``, ...: :data:`COLORMAP_RENDERERS`); this class takes the colormap as an
    argument instead, and is not registered itself.

    Args:
        colormap: a name of :data:`COLORMAPS`, in lower case.

    Raises:
        UnknownNameError: ``colormap`` is not one of OpenCV's colormaps; the message suggests
            close names.
    """

    def __init__(self, colormap: str = "jet") -> None:
        self._code = _colormap_code(colormap)
        self.colormap: str = colormap
        """The colormap's name."""

    def heatmap(self, cam: NDArray[np.floating]) -> NDArray[np.uint8]:
        """The coloured map alone, RGB uint8 ``(H, W, 3)``, for a map ``(H, W)`` in ``[0, 1]``."""
        clipped = np.clip(np.asarray(cam, dtype=np.float32), 0.0, 1.0)
        levels = cv2.convertScaleAbs(clipped, alpha=255.0)  # round(255 · v), one pass
        # the colormap's colours as RGB: one lookup, no BGR→RGB pass afterwards
        return np.asarray(cv2.applyColorMap(levels, self._rgb_table()), dtype=np.uint8)

    def _rgb_table(self) -> NDArray[np.uint8]:
        """OpenCV's colours of the colormap, RGB, as a ``(256, 1, 3)`` user colormap."""
        table = getattr(self, "_table", None)
        if table is None:
            bgr = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], self._code)
            table = np.ascontiguousarray(bgr[:, :, ::-1])
            self._table: NDArray[np.uint8] = table
        return table

    def table(self) -> NDArray[np.uint8]:
        """The colormap's 256 colours, RGB uint8 ``(256, 3)``: row ``k`` is the colour of
        level ``k``, that is of the map value ``k / 255``.

        For other plotting tools, e.g. ``matplotlib.colors.ListedColormap(table / 255)``.
        """
        levels = np.arange(256, dtype=np.float32)[None, :] / 255.0
        table: NDArray[np.uint8] = self.heatmap(levels)[0]
        return table

    def render(
        self, image: NDArray[np.uint8], cam: NDArray[np.floating], alpha: float = 0.5
    ) -> NDArray[np.uint8]:
        cam32 = check_render_inputs(image, cam, alpha)
        return _blend_into(self.heatmap(cam32), image, alpha)

    def render_upsampled(
        self, image: NDArray[np.uint8], cam: NDArray[np.floating], alpha: float = 0.5
    ) -> NDArray[np.uint8]:
        """``render`` of the coarse map ``(h, w)`` resized bilinearly (half-pixel centres,
        as ``cv2.resize``) to the image's size, computed band by band of rows: each band of
        the map is interpolated, coloured and blended by OpenCV (``cv2.addWeighted``,
        rounded in uint8) into the result. Besides the result, only one band is held; the
        colours match ``render`` of the upsampled map to a level.

        Raises:
            InputError, ConfigurationError: as :func:`check_render_inputs` with ``coarse``.
        """
        cam32 = check_render_inputs(image, cam, alpha, coarse=True)
        height, width = image.shape[:2]
        scale_x, scale_y = cam32.shape[1] / width, cam32.shape[0] / height
        out = np.empty((height, width, 3), dtype=np.uint8)
        rows = max(1, _BAND_PIXELS // width)
        for top in range(0, height, rows):
            bottom = min(height, top + rows)
            # pixel (x, y) of the band reads the map at ((x + ½)·sx − ½, (top + y + ½)·sy − ½)
            inverse = np.array(
                [
                    [scale_x, 0.0, 0.5 * scale_x - 0.5],
                    [0.0, scale_y, (top + 0.5) * scale_y - 0.5],
                ]
            )
            values = cv2.warpAffine(
                cam32,
                inverse,
                (width, bottom - top),
                flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                borderMode=cv2.BORDER_REPLICATE,
            )
            levels = cv2.convertScaleAbs(values, alpha=255.0)  # round(255 · v), v in [0, 1]
            heat = cv2.applyColorMap(levels, self._code)
            cv2.cvtColor(heat, cv2.COLOR_BGR2RGB, dst=heat)
            cv2.addWeighted(heat, alpha, image[top:bottom], 1.0 - alpha, 0.0, dst=out[top:bottom])
        return out

    def __repr__(self) -> str:
        if type(self).name == self.colormap:
            return f"{type(self).__name__}()"
        return f"{type(self).__name__}(colormap={self.colormap!r})"


class JetRenderer(ColormapRenderer):
    """OpenCV's JET colormap blended over the image: camkit's default renderer, ``"jet"``.

    ``out = round(alpha · jet(cam) + (1 − alpha) · image)`` as uint8, where ``jet`` is
    ``cv2.applyColorMap(round(255 · cam), COLORMAP_JET)`` converted from BGR to RGB.
    RGB in, RGB out.
    """

    name = "jet"

    def __init__(self) -> None:
        super().__init__("jet")


def _class_name(colormap: str) -> str:
    return "".join(part.capitalize() for part in colormap.split("_")) + "Renderer"


def _member(colormap: str) -> type[ColormapRenderer]:
    """The registered renderer class of ``colormap``: a :class:`ColormapRenderer` subclass
    named ``<Name>Renderer`` with ``name = colormap`` and a no-argument constructor."""
    class_name = _class_name(colormap)

    def __init__(self: ColormapRenderer) -> None:
        ColormapRenderer.__init__(self, colormap)

    __init__.__qualname__ = f"{class_name}.__init__"
    namespace = {
        "name": colormap,
        "__init__": __init__,
        "__module__": __name__,
        "__qualname__": class_name,
        "__doc__": (
            f"OpenCV's ``COLORMAP_{colormap.upper()}`` blended over the image, registered as "
            f"``{colormap!r}``: ``ColormapRenderer({colormap!r})`` with no arguments."
        ),
    }
    return cast("type[ColormapRenderer]", type(class_name, (ColormapRenderer,), namespace))


COLORMAP_RENDERERS: Mapping[str, type[ColormapRenderer]] = MappingProxyType(
    {name: JetRenderer if name == "jet" else _member(name) for name in COLORMAPS}
)
"""The registered renderer class of every colormap of :data:`COLORMAPS`, by name.

The classes are also attributes of this module (``TurboRenderer``, ``ViridisRenderer``,
``TwilightShiftedRenderer``, ...), so that explainers holding one can be pickled.
"""

for _cls in COLORMAP_RENDERERS.values():
    globals().setdefault(_cls.__name__, _cls)
del _cls
