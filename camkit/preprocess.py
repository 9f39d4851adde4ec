"""Turning user images into model inputs, and reading a model's preprocessing config."""

from __future__ import annotations

import math
import os
import struct
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch
from numpy.typing import NDArray
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor, nn

from camkit.errors import ConfigurationError, InputError
from camkit.geometry import Placement
from camkit.plugins.manager import enforced_input_size

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "RESIZE_MODES",
    "DataConfig",
    "ImageInput",
    "Transform",
    "check_max_pixels",
    "decode_rgb",
    "load_rgb",
    "tensor_image",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

DEFAULT_MAX_PIXELS = 178_956_970
"""The most pixels (width × height) an image file or PIL image may declare before camkit
refuses to decode it: PIL's own refusal limit by default (twice ``Image.MAX_IMAGE_PIXELS``,
about 179 Mpx, 537 MB as RGB). A guard against decompression bombs and corrupt headers;
``max_pixels`` of :func:`load_rgb` and of :class:`camkit.Explainer` replaces it."""

ImageInput = str | os.PathLike[str] | Image.Image | NDArray[Any] | Tensor
"""Anything :meth:`camkit.Explainer.explain` accepts as one image."""
Transform = Callable[[Image.Image], Tensor]
"""A user transform: PIL RGB image in, ``(C, H, W)`` float tensor out."""

_INTERPOLATIONS = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
}


def _triple(
    name: str, positive: bool = False
) -> Callable[[Any, attrs.Attribute[Any], tuple[float, ...]], None]:
    def check(_: Any, __: attrs.Attribute[Any], value: tuple[float, ...]) -> None:
        if len(value) != 3:
            raise ConfigurationError(f"DataConfig.{name} needs 3 values (R, G, B), got {value!r}")
        if not all(math.isfinite(v) and (v > 0 or not positive) for v in value):
            kind = "positive finite" if positive else "finite"
            raise ConfigurationError(f"DataConfig.{name} needs {kind} values, got {value!r}")

    return check


def _one_of(choices: Sequence[str]) -> Callable[[Any, attrs.Attribute[Any], str], None]:
    def check(_: Any, attribute: attrs.Attribute[Any], value: str) -> None:
        if value not in choices:
            raise ConfigurationError(
                f"DataConfig.{attribute.name} must be one of {', '.join(map(repr, choices))}, "
                f"got {value!r}"
            )

    return check


def _grey_level(_: Any, __: attrs.Attribute[Any], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 255:
        raise ConfigurationError(f"DataConfig.fill must be an int in 0..255, got {value!r}")


def _positive_size(_: Any, __: attrs.Attribute[Any], value: tuple[int, int]) -> None:
    if len(value) != 2 or min(value) < 1:
        raise ConfigurationError(
            f"DataConfig.input_size must be (H, W) with H, W >= 1, got {value!r}"
        )


RESIZE_MODES = ("stretch", "crop", "letterbox")
"""How an image is fitted to the input size, see :class:`DataConfig`."""


def _own_config(module: nn.Module) -> Mapping[str, Any] | None:
    for attribute in ("pretrained_cfg", "default_cfg"):
        candidate = getattr(module, attribute, None)
        if isinstance(candidate, Mapping):
            return candidate
    return None


@attrs.frozen
class DataConfig:
    """How images are preprocessed for a model: fit to ``input_size``, scale to ``[0, 1]``,
    normalise by ``mean``/``std``.

    ``resize`` chooses how the image is fitted to ``input_size`` ``(H, W)``:

    - ``"stretch"`` (default): the whole image is resized to the input size;
    - ``"crop"``: the shorter side is resized to match and the centre is cropped (the usual
      classification-project inference); parts cropped away get a map of 0;
    - ``"letterbox"``: the longer side is resized to match, aspect ratio kept, and the image is
      centred on a grey canvas of value ``fill``.

    In every mode the explanation map is brought back onto the original pixels it covers.
    """

    input_size: tuple[int, int] = attrs.field(default=(224, 224), validator=_positive_size)
    mean: tuple[float, float, float] = attrs.field(default=IMAGENET_MEAN, validator=_triple("mean"))
    std: tuple[float, float, float] = attrs.field(
        default=IMAGENET_STD, validator=_triple("std", positive=True)
    )
    interpolation: str = attrs.field(default="bilinear", validator=_one_of(sorted(_INTERPOLATIONS)))
    resize: str = attrs.field(default="stretch", validator=_one_of(RESIZE_MODES))
    fill: int = attrs.field(default=128, validator=_grey_level)

    @classmethod
    def from_model(cls, model: nn.Module) -> DataConfig:
        """Read a timm-style ``pretrained_cfg`` (or ``default_cfg``) from any model.

        Uses its ``input_size`` ``(C, H, W)``, ``mean``, ``std`` and ``interpolation``;
        missing keys fall back to ImageNet mean/std at 224×224, bilinear. A model without a
        config of its own that wraps one (``nn.Sequential(normalize, timm_model)``, an
        ensemble) uses the config of the first submodule that has one.

        A model built for another input size than its config records keeps the config's size
        although it accepts only its own: when a plugin's ``camkit_input_size`` hook says
        which size the model enforces (:func:`camkit.plugins.enforced_input_size`), that size
        is used.

        Raises:
            PluginError: a ``camkit_input_size`` implementation answered something other than
                two positive integers.
        """
        cfg: Any = None
        for module in model.modules():
            cfg = _own_config(module)
            if cfg is not None:
                break
        default = cls()
        enforced = enforced_input_size(model)
        if cfg is None:
            return cls(input_size=enforced or default.input_size)
        size = cfg.get("input_size")
        input_size = (int(size[-2]), int(size[-1])) if size is not None else default.input_size
        mean = tuple(float(v) for v in cfg.get("mean", default.mean))
        std = tuple(float(v) for v in cfg.get("std", default.std))
        interpolation = str(cfg.get("interpolation", default.interpolation)).lower()
        if interpolation not in _INTERPOLATIONS:
            interpolation = default.interpolation
        return cls(enforced or input_size, mean, std, interpolation)  # type: ignore[arg-type]

    def describe(self) -> str:
        """The preprocessing in one line, as the CLI prints it and its report records it.

        The fit (``stretch to``, ``centre crop to`` or ``letterbox on grey <fill> to``), the
        input size ``HxW`` (with ``(HxW)`` after it when not square), the interpolation, and
        ``ImageNet mean/std`` or the values: ``stretch to 224x224, bilinear, ImageNet
        mean/std``; ``centre crop to 256x192 (HxW), bicubic, mean (0.5, 0.5, 0.5), std (0.5,
        0.5, 0.5)``.
        """
        height, width = self.input_size
        fit = {
            "stretch": "stretch to",
            "crop": "centre crop to",
            "letterbox": f"letterbox on grey {self.fill} to",
        }[self.resize]
        size = f"{height}x{width}" + ("" if height == width else " (HxW)")
        if (self.mean, self.std) == (IMAGENET_MEAN, IMAGENET_STD):
            stats = "ImageNet mean/std"
        else:
            mean, std = (", ".join(f"{v:g}" for v in values) for values in (self.mean, self.std))
            stats = f"mean ({mean}), std ({std})"
        return f"{fit} {size}, {self.interpolation}, {stats}"

    def placement(self, original_size: tuple[int, int]) -> Placement:
        """Where an image of ``original_size`` ``(H, W)`` lies in the input."""
        height, width = self.input_size
        orig_h, orig_w = original_size
        if self.resize == "stretch":
            return Placement.stretch(original_size, self.input_size)
        ratio = (max if self.resize == "crop" else min)(height / orig_h, width / orig_w)
        new_h, new_w = max(1, round(orig_h * ratio)), max(1, round(orig_w * ratio))
        if self.resize == "crop":
            offset_x, offset_y = -((new_w - width) // 2), -((new_h - height) // 2)
        else:
            offset_x, offset_y = (width - new_w) // 2, (height - new_h) // 2
        return Placement(
            original_size, self.input_size, new_w / orig_w, new_h / orig_h, offset_x, offset_y
        )

    def prepare(self, image: NDArray[np.uint8] | Image.Image) -> tuple[Tensor, Placement]:
        """Fit an RGB image to :attr:`input_size` and normalise it: :meth:`fit`, then
        :meth:`normalize`.

        Returns the float32 ``(3, H, W)`` tensor and the image's :class:`Placement` in it.
        """
        pixels, placement = self.fit(image)
        return self.normalize(pixels), placement

    def fit(self, image: NDArray[np.uint8] | Image.Image) -> tuple[Tensor, Placement]:
        """Fit an RGB image (a uint8 ``(H, W, 3)`` array or an RGB PIL image) to
        :attr:`input_size` by :attr:`resize`, with PIL and :attr:`interpolation`.

        Returns the fitted pixels, a uint8 ``(3, H, W)`` tensor, and the image's
        :class:`Placement` in them. Folder runs fit images on worker threads and normalise
        whole batches on the model's device (:meth:`normalize`).
        """
        pil = image if isinstance(image, Image.Image) else Image.fromarray(image)
        if pil.mode != "RGB":
            pil = pil.convert("RGB")
        placement = self.placement((pil.height, pil.width))
        height, width = self.input_size
        new_w = round(placement.scale_x * pil.width)
        new_h = round(placement.scale_y * pil.height)
        if pil.size != (new_w, new_h):
            pil = pil.resize((new_w, new_h), _INTERPOLATIONS[self.interpolation])
        left, top = int(placement.offset_x), int(placement.offset_y)
        if (new_w, new_h) != (width, height) or left or top:
            canvas = Image.new("RGB", (width, height), (self.fill,) * 3)
            canvas.paste(pil, (left, top))
            pil = canvas
        return torch.from_numpy(np.array(pil)).permute(2, 0, 1), placement

    def normalize(self, pixels: Tensor) -> Tensor:
        """Normalise fitted pixels: ``(p − 255·mean) / (255·std)`` per channel, as float32,
        on the pixels' device.

        Args:
            pixels: uint8 ``(3, H, W)`` or ``(N, 3, H, W)`` (what :meth:`fit` returns, or a
                stack of them).

        The values equal ``(p / 255 − mean) / std`` up to float rounding; one image gives
        the same values alone as in a batch.
        """
        channels = (1, 3, 1, 1) if pixels.ndim == 4 else (3, 1, 1)
        shift = torch.tensor([255.0 * m for m in self.mean], device=pixels.device)
        scale = torch.tensor([255.0 * s for s in self.std], device=pixels.device)
        values = pixels.to(torch.float32)
        return values.sub_(shift.view(channels)).div_(scale.view(channels))

    def to_tensor(self, image: NDArray[np.uint8] | Image.Image) -> Tensor:
        """Fit an RGB uint8 image to :attr:`input_size` and normalise: ``(3, H, W)``."""
        return self.prepare(image)[0]

    def to_image(self, tensor: Tensor) -> NDArray[np.uint8]:
        """Undo the normalisation of a ``(3, H, W)`` tensor into an RGB uint8 image.

        Tensors with another channel count are min-max scaled into a grey image.
        """
        return self.to_images(tensor[None])[0]

    def to_images(self, batch: Tensor) -> list[NDArray[np.uint8]]:
        """:meth:`to_image` of every image of a ``(B, C, H, W)`` batch.

        Computed on the batch's device; only the uint8 pixels are copied to the CPU.
        """
        data = batch.detach().float()
        if data.shape[1] == 3:
            mean = torch.tensor(self.mean, device=data.device).view(1, 3, 1, 1) * 255.0
            std = torch.tensor(self.std, device=data.device).view(1, 3, 1, 1) * 255.0
            levels = torch.addcmul(mean, data, std)  # (x · std + mean) · 255 in one pass
        else:
            grey = data.mean(dim=1, keepdim=True)
            low = grey.amin(dim=(2, 3), keepdim=True)
            high = grey.amax(dim=(2, 3), keepdim=True)
            levels = (grey - low) * (255.0 / (high - low).clamp(min=1e-12))
        pixels = levels.clamp_(0.0, 255.0).round_().to(torch.uint8).expand(-1, 3, -1, -1)
        return list(pixels.permute(0, 2, 3, 1).contiguous().cpu().numpy())


def check_max_pixels(max_pixels: object) -> int | None:
    """Validate a pixel limit: an int >= 1, or ``None`` for no limit. Returns it.

    Raises:
        ConfigurationError: ``max_pixels`` is of another type, or < 1.
    """
    if max_pixels is None:
        return None
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 1:
        raise ConfigurationError(
            f"max_pixels must be an int >= 1 or None (no limit), got {max_pixels!r}"
        )
    return max_pixels


_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})
_SIXTEEN_BIT_TOP = 65535
_READ_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, struct.error)
# PIL reads Image.MAX_IMAGE_PIXELS when it opens a file; camkit lifts it, under this lock,
# only to read the header of a file larger than PIL's limit when max_pixels allows it
_PIL_LIMIT_LOCK = threading.Lock()


def _scale_16bit(values: NDArray[Any]) -> NDArray[np.uint8]:
    """0..65535 onto 0..255: ``round(v / 257)``, so 65535 → 255 and 32896 → 128 exactly."""
    wide = values.astype(np.uint32)
    wide += 128
    wide //= 257
    return wide.astype(np.uint8)


def _scale_range(values: NDArray[Any]) -> NDArray[np.uint8]:
    """Min-max onto 0..255, rounded; a constant image becomes 0."""
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return np.zeros(values.shape, dtype=np.uint8)
    scaled = values.astype(np.float32)
    scaled -= np.float32(low)
    scaled *= np.float32(255.0 / (high - low))
    np.clip(np.rint(scaled, out=scaled), 0.0, 255.0, out=scaled)
    return scaled.astype(np.uint8)


def _grey_to_rgb(grey: NDArray[np.uint8]) -> NDArray[np.uint8]:
    return np.repeat(grey[:, :, None], 3, axis=2)


def _no_pixels(label: str, shape: tuple[int, ...]) -> InputError:
    return InputError(
        f"{label} has no pixels (shape {shape}); an image needs a height and a width of at "
        "least 1: check how it was cropped or decoded"
    )


def _array_to_rgb(array: NDArray[Any]) -> NDArray[np.uint8]:
    sixteen_bit = array.dtype.kind == "u" and array.dtype.itemsize == 2
    if array.dtype != np.uint8 and not sixteen_bit:
        raise InputError(
            f"numpy images must be uint8 (or uint16, scaled by 1/257) (H, W, 3) RGB, got dtype "
            f"{array.dtype}; convert with (x * 255).round().astype(np.uint8) for floats in "
            "[0, 1], or pass a preprocessed torch tensor instead"
        )
    channels = 1 if array.ndim == 2 else array.shape[2] if array.ndim == 3 else 0
    if channels not in (1, 3, 4):
        raise InputError(
            f"numpy images must have shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got "
            f"{array.shape}; channels-first arrays must be transposed to (H, W, C)"
        )
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise _no_pixels("the numpy image", array.shape)
    if sixteen_bit:
        array = _scale_16bit(array)
    if channels == 1:
        return _grey_to_rgb(array.reshape(array.shape[0], array.shape[1]))
    if channels == 3:
        return np.ascontiguousarray(array)
    return np.asarray(Image.fromarray(np.ascontiguousarray(array), "RGBA").convert("RGB"))


_Decoded = tuple[NDArray[np.uint8], Image.Image | None]
"""RGB uint8 pixels, and the same pixels as an RGB PIL image when decoding made one."""


def _pil_to_rgb(image: Image.Image, label: str) -> _Decoded:
    """RGB uint8 pixels of a PIL image, 16-bit and float modes scaled by their range; with
    the RGB PIL image they were read from, when there is one (8-bit modes, and images small
    enough to convert at once)."""
    if image.mode in _SIXTEEN_BIT_MODES:
        return _grey_to_rgb(_scale_16bit(np.asarray(image))), None
    if image.mode == "I":  # 32-bit integers, e.g. a 16-bit PNG in older Pillows
        values = np.asarray(image)
        in_range = int(values.min()) >= 0 and int(values.max()) <= _SIXTEEN_BIT_TOP
        return _grey_to_rgb(_scale_16bit(values) if in_range else _scale_range(values)), None
    if image.mode == "F":  # 32-bit floats, e.g. a float TIFF
        values = np.asarray(image)
        if not bool(np.isfinite(values).all()):
            raise InputError(
                f"{label} is a float image holding NaN or infinite values; replace them "
                "(numpy.nan_to_num) and save or pass it again"
            )
        if float(values.min()) >= 0.0 and float(values.max()) <= 1.0:
            return _grey_to_rgb(np.rint(values * np.float32(255.0)).astype(np.uint8)), None
        return _grey_to_rgb(_scale_range(values)), None
    width, height = image.size
    if width * height * 3 <= _BAND_BYTES:
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        return np.asarray(rgb), rgb
    return _banded_rgb(image), None


_BAND_BYTES = 1 << 24  # the most RGB bytes converted at once from a large image


def _banded_rgb(image: Image.Image) -> NDArray[np.uint8]:
    """``convert("RGB")`` of a large image as an array, band by band of rows: PIL holds a
    converted copy and a byte string of each band only, not of the whole image."""
    width, height = image.size
    out = np.empty((height, width, 3), dtype=np.uint8)
    rows = max(1, _BAND_BYTES // (width * 3))
    for top in range(0, height, rows):
        band = image.crop((0, top, width, min(height, top + rows)))
        out[top : top + rows] = np.asarray(band if band.mode == "RGB" else band.convert("RGB"))
    return out


def _too_many_pixels(label: str, what: str, limit: int | None) -> InputError:
    if limit is None:  # a frame or tile past PIL's own limit, which camkit lifts for headers only
        return InputError(
            f"{label} is too large to decode ({what}); if the image is genuine, raise "
            "PIL.Image.MAX_IMAGE_PIXELS"
        )
    return InputError(
        f"{label} is too large to decode ({what}): the pixel limit is {limit:,} (max_pixels), "
        "a guard against decompression bombs and corrupt headers; if the image is genuine, "
        "raise it: load_rgb(..., max_pixels=N) or Explainer(..., max_pixels=N), None for no "
        "limit"
    )


def _check_size(image: Image.Image, label: str, limit: int | None) -> None:
    width, height = image.size
    if width == 0 or height == 0:
        raise _no_pixels(label, (height, width))
    if limit is not None and width * height > limit:
        what = f"it declares {width}×{height} = {width * height:,} pixels"
        raise _too_many_pixels(label, what, limit)


@contextmanager
def _pil_limit_lifted() -> Iterator[None]:
    with _PIL_LIMIT_LOCK:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _open(path: Path, label: str, limit: int | None) -> Image.Image:
    """Open ``path`` lazily (the header only), under camkit's limit instead of PIL's."""
    try:
        return Image.open(path)
    except Image.DecompressionBombError as error:
        pil_limit = Image.MAX_IMAGE_PIXELS
        if limit is not None and (pil_limit is None or limit <= 2 * pil_limit):
            raise _too_many_pixels(label, f"PIL: {error}", limit) from error
    with _pil_limit_lifted():
        return Image.open(path)


def _decode(image: Image.Image, label: str, limit: int | None, upright: bool) -> _Decoded:
    """Check the declared size, then decode as RGB uint8; ``upright``: turned by the EXIF
    orientation, as a viewer shows the file (in place: only for images camkit opened)."""
    _check_size(image, label, limit)
    if upright:
        ImageOps.exif_transpose(image, in_place=True)
    return _pil_to_rgb(image, label)


def load_rgb(
    image: str | os.PathLike[str] | Image.Image | NDArray[Any],
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> NDArray[np.uint8]:
    """Return an RGB uint8 ``(H, W, 3)`` array from a path, a PIL image or a numpy array.

    - Files are turned upright by their EXIF orientation tag, as image viewers show them.
    - Grayscale, palette, CMYK and other 8-bit modes are converted to RGB; RGBA images lose
      their alpha channel.
    - 16-bit images (PIL modes ``I;16``, ``I;16B``, ...; numpy ``uint16`` arrays) are scaled
      by their range: ``round(v / 257)``, so 65535 becomes 255. 16-bit RGB PNGs are read by
      PIL as 8-bit RGB already. 32-bit integer images (mode ``I``) whose values lie in
      0..65535 are taken as 16-bit, others are min-max scaled.
    - Float images (mode ``F``, e.g. float TIFFs) are taken as ``[0, 1]`` when every value
      lies there, and min-max scaled otherwise (a constant image outside ``[0, 1]`` becomes
      black); NaN or infinite values are refused.

    Args:
        image: the image.
        max_pixels: the most pixels a file or PIL image may declare (width × height),
            checked from the header before anything is decoded; ``None`` for no limit. It
            replaces PIL's own ``Image.MAX_IMAGE_PIXELS`` check. numpy arrays are already
            decoded and are not limited.

    Raises:
        InputError: the file is missing or not a readable image, it declares more than
            ``max_pixels`` pixels, it has no pixels, or the array's shape or dtype is not an
            image's.
        ConfigurationError: ``max_pixels`` is not an int >= 1 or None.
    """
    return _decode_any(image, max_pixels)[0]


def decode_rgb(
    image: str | os.PathLike[str] | Image.Image | NDArray[Any],
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> tuple[NDArray[np.uint8], Image.Image]:
    """:func:`load_rgb`, with the same pixels as an RGB PIL image too: the decoded image
    itself when it is one (no copy), else one made from the array. What the prepare step
    reads images with: :meth:`DataConfig.fit` resizes the PIL image.

    Raises:
        InputError, ConfigurationError: as :func:`load_rgb`.
    """
    pixels, pil = _decode_any(image, max_pixels)
    return pixels, pil if pil is not None else Image.fromarray(pixels)


def _decode_any(
    image: str | os.PathLike[str] | Image.Image | NDArray[Any], max_pixels: int | None
) -> _Decoded:
    limit = check_max_pixels(max_pixels)
    if isinstance(image, np.ndarray):
        return _array_to_rgb(image), None
    if isinstance(image, Image.Image):
        return _read(lambda: image, "the PIL image", limit, opened=False)
    if isinstance(image, (str, os.PathLike)):
        path = Path(image)
        if not path.is_file():
            raise InputError(f"image file not found: {str(path)!r}")
        label = repr(str(path))
        return _read(lambda: _open(path, label, limit), label, limit, opened=True)
    raise InputError(
        f"unsupported image type {type(image).__name__}; pass a file path, a PIL image, an "
        "RGB uint8 numpy array (H, W, 3), a uint8 image tensor (C, H, W) or a preprocessed "
        "float tensor (C, H, W)"
    )


def _read(
    source: Callable[[], Image.Image], label: str, limit: int | None, *, opened: bool
) -> _Decoded:
    """Decode the image ``source`` gives, every failure an :class:`InputError`; ``opened``:
    camkit opened it from a file, so it is turned upright and closed (unless it is handed
    on as the RGB PIL image, which it is only once decoding has closed its file)."""
    try:
        image = source()
        handed_on = False
        try:
            pixels, rgb = _decode(image, label, limit, upright=opened)
            if opened and rgb is image:
                handed_on = getattr(image, "fp", None) is None and not getattr(image, "map", None)
                rgb = rgb if handed_on else None
            return pixels, rgb
        finally:
            if opened and not handed_on:
                image.close()
    except InputError:
        raise
    except Image.DecompressionBombError as error:  # a frame or tile past PIL's limit
        raise _too_many_pixels(label, f"PIL: {error}", None) from error
    except MemoryError as error:
        raise InputError(
            f"not enough memory to decode {label}; lower max_pixels to refuse such images, "
            "or downscale the file first"
        ) from error
    except _READ_ERRORS as error:
        raise InputError(
            f"cannot read {label} as an image ({type(error).__name__}: {error}); "
            "is it a complete JPEG/PNG/BMP/TIFF/WebP file?"
        ) from error


def tensor_image(tensor: Tensor) -> NDArray[np.uint8]:
    """An RGB uint8 ``(H, W, 3)`` array from a uint8 ``(C, H, W)`` image tensor, as
    ``torchvision.io.read_image`` returns: ``C`` = 1 (grey), 3 (RGB) or 4 (RGBA, the alpha
    channel is dropped). The same pixels as the equivalent numpy image.

    Raises:
        InputError: the tensor is not uint8, not ``(C, H, W)`` with ``C`` in 1, 3, 4, or
            has no pixels.
    """
    if tensor.dtype != torch.uint8:
        raise InputError(f"an image tensor must be uint8, got {tensor.dtype}")
    if tensor.ndim != 3 or tensor.shape[0] not in (1, 3, 4):
        raise InputError(
            f"a uint8 tensor is taken as an image (C, H, W) with C = 1, 3 or 4 channels, as "
            f"torchvision.io.read_image returns; got shape {tuple(tensor.shape)}. For an "
            "(H, W, C) tensor pass tensor.permute(2, 0, 1) or tensor.numpy()"
        )
    return _array_to_rgb(tensor.detach().cpu().permute(1, 2, 0).numpy())


def as_batch_list(images: Sequence[Any] | Tensor) -> list[Any]:
    """Split an explain_batch argument into a list of single inputs."""
    if isinstance(images, Tensor):
        if images.ndim != 4:
            raise InputError(
                f"a batch tensor must have shape (N, C, H, W), got {tuple(images.shape)}"
            )
        return list(images.unbind(0))
    if isinstance(images, (str, os.PathLike, Image.Image, np.ndarray)):
        raise InputError(
            "explain_batch takes a list of images or an (N, C, H, W) tensor; "
            "use explain() for a single image"
        )
    return list(images)
