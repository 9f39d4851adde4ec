"""Turning user images into model inputs, and reading a model's preprocessing config."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch
from numpy.typing import NDArray
from PIL import Image, UnidentifiedImageError
from torch import Tensor, nn

from camkit.errors import ConfigurationError, InputError
from camkit.geometry import Placement
from camkit.plugins.manager import enforced_input_size

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "RESIZE_MODES",
    "DataConfig",
    "ImageInput",
    "Transform",
    "load_rgb",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

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


def _triple(name: str) -> Callable[[Any, attrs.Attribute[Any], tuple[float, ...]], None]:
    def check(_: Any, __: attrs.Attribute[Any], value: tuple[float, ...]) -> None:
        if len(value) != 3:
            raise ConfigurationError(f"DataConfig.{name} needs 3 values (R, G, B), got {value!r}")

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
    std: tuple[float, float, float] = attrs.field(default=IMAGENET_STD, validator=_triple("std"))
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

    def prepare(self, image: NDArray[np.uint8]) -> tuple[Tensor, Placement]:
        """Fit an RGB uint8 image to :attr:`input_size` and normalise it.

        Returns the ``(3, H, W)`` tensor and the image's :class:`Placement` in it.
        """
        placement = self.placement((image.shape[0], image.shape[1]))
        height, width = self.input_size
        new_w = round(placement.scale_x * image.shape[1])
        new_h = round(placement.scale_y * image.shape[0])
        pil = Image.fromarray(image)
        if pil.size != (new_w, new_h):
            pil = pil.resize((new_w, new_h), _INTERPOLATIONS[self.interpolation])
        left, top = int(placement.offset_x), int(placement.offset_y)
        if (new_w, new_h) != (width, height) or left or top:
            canvas = Image.new("RGB", (width, height), (self.fill,) * 3)
            canvas.paste(pil, (left, top))
            pil = canvas
        array = np.asarray(pil, dtype=np.float32) / 255.0
        mean = np.asarray(self.mean, dtype=np.float32)
        std = np.asarray(self.std, dtype=np.float32)
        tensor = torch.from_numpy(((array - mean) / std).transpose(2, 0, 1).copy())
        return tensor, placement

    def to_tensor(self, image: NDArray[np.uint8]) -> Tensor:
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


def _array_to_rgb(array: NDArray[Any]) -> NDArray[np.uint8]:
    if array.dtype != np.uint8:
        raise InputError(
            f"numpy images must be uint8 (H, W, 3) RGB, got dtype {array.dtype}; convert "
            "with (x * 255).round().astype(np.uint8) for floats in [0, 1], or pass a "
            "preprocessed torch tensor instead"
        )
    if array.ndim == 2:
        return np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim == 3 and array.shape[2] == 1:
        return np.repeat(array, 3, axis=2)
    if array.ndim == 3 and array.shape[2] == 3:
        return np.ascontiguousarray(array)
    if array.ndim == 3 and array.shape[2] == 4:
        return np.asarray(Image.fromarray(array, "RGBA").convert("RGB"))
    raise InputError(
        f"numpy images must have shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got "
        f"{array.shape}; channels-first arrays must be transposed to (H, W, C)"
    )


def load_rgb(image: str | os.PathLike[str] | Image.Image | NDArray[Any]) -> NDArray[np.uint8]:
    """Return an RGB uint8 ``(H, W, 3)`` array from a path, a PIL image or a numpy array.

    Grayscale and palette images are converted to RGB; RGBA images lose their alpha channel.

    Raises:
        InputError: the file is missing or not a readable image, or the array's shape or
            dtype is not an image's.
    """
    if isinstance(image, np.ndarray):
        return _array_to_rgb(image)
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    if isinstance(image, (str, os.PathLike)):
        path = Path(image)
        if not path.is_file():
            raise InputError(f"image file not found: {str(path)!r}")
        try:
            with Image.open(path) as opened:
                return np.asarray(opened.convert("RGB"))
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
            raise InputError(
                f"cannot read {str(path)!r} as an image ({type(error).__name__}: {error}); "
                "is it a complete JPEG/PNG/BMP/TIFF/WebP file?"
            ) from error
    raise InputError(
        f"unsupported image type {type(image).__name__}; pass a file path, a PIL image, an "
        "RGB uint8 numpy array (H, W, 3), or a preprocessed tensor (C, H, W)"
    )


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
