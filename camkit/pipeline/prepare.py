"""The prepare step: user inputs become one :class:`PreparedBatch`.

It has two parts: :func:`prepare_image` reads, decodes and preprocesses one input into a
:class:`PreparedImage` (thread-safe: a folder run does it on worker threads while the model
runs), and :func:`assemble_batch` stacks prepared images into the batch on the model's
device. :func:`prepare_batch` is both, and what every call of the engine goes through.

Every :class:`~camkit.geometry.Placement` of the engine is built here: by the data config for
images it preprocesses (stretch, crop or letterbox), as a plain stretch for a user transform,
and as the identity for float tensors, which are their own originals. uint8 image tensors
(``torchvision.io.read_image``'s ``(C, H, W)``) take the path of the equivalent numpy image.

Every input is checked here: non-finite values (NaN, infinity) in a tensor or in what a
transform returns, and tensors of integer, bool or complex dtypes, are an
:class:`~camkit.errors.InputError`. The values of inputs on the CPU are checked at once; those
of inputs already on an accelerator are checked on the device and read with the rest of the
call that runs the batch (:mod:`camkit.pipeline.checks`), so that preparing them does not
wait for the device.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import attrs
import numpy as np
import torch
from numpy.typing import NDArray
from PIL import Image
from torch import Tensor

from camkit.errors import InputError
from camkit.geometry import Placement
from camkit.pipeline.checks import Requirement, all_finite
from camkit.preprocess import (
    DEFAULT_MAX_PIXELS,
    DataConfig,
    ImageInput,
    Transform,
    as_batch_list,
    decode_rgb,
    tensor_image,
)

__all__ = ["PreparedBatch", "PreparedImage", "assemble_batch", "prepare_batch", "prepare_image"]


@attrs.define(eq=False)
class _Originals:
    """The RGB originals of a batch: decoded images as they are, tensor inputs
    de-normalised on first use (in one batched operation on the inputs' device)."""

    decoded: list[NDArray[np.uint8] | None]
    tensors: Tensor | None  # the caller's values of the tensor inputs, in order
    config: DataConfig
    _done: list[NDArray[np.uint8]] | None = None
    _lock: threading.Lock = attrs.field(factory=threading.Lock)

    def get(self) -> list[NDArray[np.uint8]]:
        with self._lock:
            if self._done is None:
                made = iter(self.config.to_images(self.tensors) if self.tensors is not None else [])
                self._done = [next(made) if d is None else d for d in self.decoded]
                self.tensors = None
            return self._done


@attrs.frozen(eq=False)
class PreparedBatch:
    """A batch ready for the model.

    Attributes:
        inputs: the model inputs ``(B, C, H, W)`` on the model's device and in its dtype;
            a copy, so in-place operations of the model never reach the caller's tensors.
        placements: where each original image lies in the input.
        checks: the checks of the inputs' values still to be read: those of inputs on an
            accelerator, read with the rest of each call that runs the batch
            (:class:`~camkit.pipeline.checks.DeviceChecks`); inputs on the CPU are checked
            by :func:`prepare_batch` itself.
    """

    inputs: Tensor
    placements: tuple[Placement, ...]
    _originals: _Originals = attrs.field(repr=False)
    checks: tuple[Requirement, ...] = attrs.field(default=(), repr=False)

    @property
    def input_size(self) -> tuple[int, int]:
        """``(H, W)`` of the model input."""
        return int(self.inputs.shape[-2]), int(self.inputs.shape[-1])

    def __len__(self) -> int:
        return int(self.inputs.shape[0])

    def originals(self) -> list[NDArray[np.uint8]]:
        """The RGB uint8 images the maps are placed on, computed on first use: decoded
        images as they are; tensor inputs with their normalisation undone."""
        return self._originals.get()


def _from_tensor(item: Tensor, index: int) -> Tensor:
    """A tensor input as ``(C, H, W)``: a float tensor (already preprocessed) or a uint8 image."""
    if item.ndim == 4 and item.shape[0] == 1:
        item = item[0]
    if item.ndim != 3:
        raise InputError(
            f"a tensor image must have shape (C, H, W) or (1, C, H, W), got "
            f"{tuple(item.shape)}; use explain_batch for (N, C, H, W)"
        )
    if not item.is_floating_point() and item.dtype != torch.uint8:
        raise InputError(
            f"image {index} is a {item.dtype} tensor; camkit takes a float tensor (C, H, W) "
            "as already preprocessed (resized, scaled, normalised), and a uint8 tensor "
            "(C, H, W) as the image's pixels (torchvision.io.read_image). Convert it: "
            "tensor.to(torch.uint8) for 0..255 pixels, or preprocess it to floats"
        )
    if item.numel() == 0:
        raise InputError(
            f"image {index} is an empty tensor {tuple(item.shape)}; an image needs at least "
            "one channel, row and column"
        )
    return item


def _from_image(
    image: Image.Image, config: DataConfig, transform: Transform | None
) -> tuple[Tensor, Placement]:
    if transform is None:
        return config.fit(image)  # normalised with its batch (assemble_batch)
    tensor = transform(image)
    if not isinstance(tensor, Tensor) or tensor.ndim != 3:
        raise InputError(
            "the transform must return a (C, H, W) tensor, got "
            f"{type(tensor).__name__} {tuple(getattr(tensor, 'shape', ()))}"
        )
    if not tensor.is_floating_point():
        raise InputError(
            f"the transform returned a {tensor.dtype} tensor; it must return the model's "
            "float input (end it with T.ToTensor() or T.ConvertImageDtype(torch.float32), "
            "then normalise)"
        )
    size = (int(tensor.shape[1]), int(tensor.shape[2]))
    return tensor, Placement.stretch((image.height, image.width), size)


@attrs.frozen(eq=False)
class PreparedImage:
    """One input after the per-image part of the prepare step (:func:`prepare_image`): read,
    decoded and preprocessed, not yet on the model's device.

    Made on any thread (a folder run's workers make them while the model runs);
    :func:`assemble_batch` (through :meth:`Explainer.prepare <camkit.Explainer.prepare>`)
    stacks them into one :class:`PreparedBatch`.

    Attributes:
        tensor: the model input ``(C, H, W)``, before the cast to the model's device and
            dtype: float values as the model takes them, or uint8 pixels fitted by the data
            config (:meth:`DataConfig.fit <camkit.preprocess.DataConfig.fit>`), which
            :func:`assemble_batch` normalises, a whole batch at once on the model's device.
        placement: where the original image lies in ``tensor``.
        original: the RGB uint8 image the map is placed on; ``None`` for a float tensor
            input, whose original is the tensor with its normalisation undone (on first
            use).
    """

    tensor: Tensor
    placement: Placement
    original: NDArray[np.uint8] | None = attrs.field(repr=False)


def prepare_image(
    item: ImageInput | PreparedImage,
    *,
    config: DataConfig,
    transform: Transform | None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    index: int = 0,
) -> PreparedImage:
    """The per-image part of the prepare step: read and decode ``item``
    (:func:`~camkit.preprocess.decode_rgb`), then fit it to the model's input (the data
    config's resize, its normalisation left to :func:`assemble_batch`; or ``transform``). A
    :class:`PreparedImage` is returned as it is.

    Thread-safe when ``transform`` is (the data config's preprocessing is).

    Args:
        max_pixels: the pixel limit of image files and PIL images; ``None`` for no limit.
        index: the input's position in its batch, named by error messages.

    Raises:
        InputError: the image cannot be read or exceeds ``max_pixels``, a tensor has an
            integer, bool or complex dtype or no elements, or the transform returned no
            float ``(C, H, W)`` tensor.
    """
    if isinstance(item, PreparedImage):
        return item
    if isinstance(item, Tensor):
        tensor = _from_tensor(item, index)
        if tensor.is_floating_point():
            size = (int(tensor.shape[1]), int(tensor.shape[2]))
            return PreparedImage(tensor, Placement.stretch(size, size), None)
        image = tensor_image(tensor)
        pil = Image.fromarray(image)
    else:
        image, pil = decode_rgb(item, max_pixels=max_pixels)
    tensor, placement = _from_image(pil, config, transform)
    return PreparedImage(tensor, placement, image)


def assemble_batch(
    items: Sequence[PreparedImage],
    *,
    config: DataConfig,
    device: torch.device,
    dtype: torch.dtype,
    stacked: Tensor | None = None,
) -> PreparedBatch:
    """The batch part of the prepare step: stack prepared images into one
    :class:`PreparedBatch` on the model's device, in its dtype (a copy), after checking that
    they have one shape and hold finite values only. Fitted uint8 pixels are normalised by
    ``config`` (:meth:`DataConfig.normalize <camkit.preprocess.DataConfig.normalize>`): on
    the model's device after the copy when the whole batch is pixels (a quarter of the bytes
    to move), else each image on the CPU.

    Args:
        config: the data config that undoes the normalisation of float tensor inputs (their
            originals).
        stacked: the inputs already stacked, ``(N, C, H, W)`` (a float batch tensor is not
            split and re-stacked); ``None`` stacks the items' tensors.

    Raises:
        InputError: there is no item, the items have different shapes, or hold NaN or
            infinite values, or values the model's dtype cannot hold. The values of a batch
            already on an accelerator are checked when it is run
            (:attr:`PreparedBatch.checks`), with the same error.
    """
    if not items:
        raise InputError("got no images to explain")
    shapes = {tuple(item.tensor.shape) for item in items}
    if len(shapes) > 1:
        raise InputError(
            f"images of one batch must preprocess to the same shape, got {sorted(shapes)}; "
            "resize the tensors or explain them separately"
        )
    decoded = [item.original for item in items]
    placements = [item.placement for item in items]
    # Copies need not wait for the device when their source cannot change before they are
    # done: a tensor on a device (stream-ordered), or a batch stacked here (the caller's own
    # CPU tensor may be in pinned memory, whose copy would run after this returns)
    early = stacked is None or stacked.device.type != "cpu"
    fresh = stacked is None  # a tensor made here: no copy needed to keep the caller's safe
    if stacked is None:
        tensors = [item.tensor for item in items]
        if all(tensor.dtype == torch.uint8 for tensor in tensors):
            pixels = torch.stack(tensors).to(device, non_blocking=True)
            stacked = config.normalize(pixels)
        else:
            pixels_of = [config.normalize(t) if t.dtype == torch.uint8 else t for t in tensors]
            stacked = torch.stack(pixels_of)
    return _to_device(stacked, decoded, placements, config, device, dtype, early, copy=not fresh)


def prepare_batch(
    imgs: Sequence[ImageInput | PreparedImage] | Tensor,
    *,
    config: DataConfig,
    transform: Transform | None,
    device: torch.device,
    dtype: torch.dtype,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> PreparedBatch:
    """Turn images (paths, PIL images, arrays, tensors) or an ``(N, C, H, W)`` tensor into
    one :class:`PreparedBatch`: :func:`prepare_image` for each input (those already
    prepared are taken as they are), then :func:`assemble_batch`.

    Float tensors are taken as already preprocessed. uint8 tensors ``(C, H, W)`` (and uint8
    ``(N, C, H, W)`` batches) are images, preprocessed as the equivalent numpy image.

    Args:
        max_pixels: the pixel limit of image files and PIL images
            (:func:`~camkit.preprocess.load_rgb`); ``None`` for no limit.

    Raises:
        InputError: an image cannot be read or exceeds ``max_pixels``, the batch is empty,
            the inputs preprocess to different shapes, a tensor has an integer, bool or
            complex dtype or no elements, or an input (a tensor, or what the transform
            returned) holds NaN or infinite values, or values the model's dtype cannot hold.
            The values of a batch already on an accelerator are checked when it is run
            (:attr:`PreparedBatch.checks`), with the same error.
    """
    if isinstance(imgs, Tensor) and imgs.is_floating_point() and imgs.ndim == 4 and len(imgs):
        # a float batch tensor: its images are alike, checked once, and it is not split
        # and re-stacked
        _from_tensor(imgs[0], 0)
        image_size = (int(imgs.shape[2]), int(imgs.shape[3]))
        decoded: list[NDArray[np.uint8] | None] = [None] * len(imgs)
        placements = [Placement.stretch(image_size, image_size)] * len(imgs)
        early = imgs.device.type != "cpu"
        return _to_device(imgs, decoded, placements, config, device, dtype, early)
    items: list[Any] = as_batch_list(imgs)
    if not items:
        raise InputError("got no images to explain")
    prepared = [
        prepare_image(item, config=config, transform=transform, max_pixels=max_pixels, index=i)
        for i, item in enumerate(items)
    ]
    return assemble_batch(prepared, config=config, device=device, dtype=dtype)


def _to_device(
    stacked: Tensor,
    decoded: Sequence[NDArray[np.uint8] | None],
    placements: Sequence[Placement],
    config: DataConfig,
    device: torch.device,
    dtype: torch.dtype,
    early: bool,
    *,
    copy: bool = True,
) -> PreparedBatch:
    """Copy the stacked inputs to the model's device and dtype, with their value checks:
    those of inputs on the CPU made now, those on an accelerator kept in the batch.

    ``early``: whether the copies may start without waiting (see :func:`assemble_batch`);
    ``copy``: whether ``stacked`` must be copied even when it is on the device in the dtype
    already (it is the caller's)."""
    checks = [_finite(stacked, decoded, "")]
    inputs = stacked.to(device, dtype, copy=copy, non_blocking=early)
    if inputs.dtype != stacked.dtype:
        checks.append(_finite(inputs, decoded, f" once cast to the model's {dtype}"))
    # values on the CPU are checked now (free); on an accelerator, with the rest of the call
    pending = tuple(check for check in checks if check.ok.device.type != "cpu")
    for check in checks:
        if check.ok.device.type == "cpu":
            check.check_now()
    from_tensors = [i for i, d in enumerate(decoded) if d is None]
    # tensor inputs are de-normalised from the caller's values, before any cast to the
    # model's dtype; kept as a copy on the model's device until an original is asked for
    caller_values = None
    if len(from_tensors) == len(decoded):
        caller_values = stacked.detach().to(device, copy=True, non_blocking=early)
    elif from_tensors:
        caller_values = stacked[from_tensors].detach().to(device, copy=True, non_blocking=True)
    originals = _Originals(list(decoded), caller_values, config)
    return PreparedBatch(inputs, tuple(placements), originals, pending)


def _finite(batch: Tensor, decoded: Sequence[object | None], cast: str) -> Requirement:
    """The requirement that every value of ``batch`` is finite, tested on the batch's device;
    its error names the images that are not (:func:`_non_finite_error`).

    On the CPU (checked at once) the test is :func:`~camkit.pipeline.checks.all_finite`, and
    the images are found only on failure; on an accelerator the test keeps one flag per image
    (the requirement lives as long as the :class:`PreparedBatch`, the batch need not)."""
    if batch.device.type == "cpu":
        return Requirement(
            all_finite(batch), lambda: _non_finite_error(_finite_rows(batch), decoded, cast)
        )
    rows = _finite_rows(batch)
    return Requirement(rows.all(), lambda: _non_finite_error(rows, decoded, cast))


def _finite_rows(batch: Tensor) -> Tensor:
    """Whether each image of ``batch`` holds only finite values, ``(B,)`` bool."""
    return torch.isfinite(batch.detach()).flatten(1).all(dim=1)


def _non_finite_error(
    finite: Tensor, decoded: Sequence[object | None], cast: str
) -> InputError | None:
    """The error for a batch whose images ``~finite`` hold NaN or infinite values; ``None``
    if every image is finite."""
    if bool(finite.all()):
        return None
    bad = [int(i) for i in torch.nonzero(~finite).flatten().tolist()]
    source = "tensor" if any(decoded[i] is None for i in bad) else "transform's output"
    if cast:
        advice = (
            "the model's dtype cannot hold them: scale the inputs down, or explain with the "
            "model in float32"
        )
    elif source == "tensor":
        advice = (
            "find where they come from (a division by zero in the preprocessing?), or "
            "replace them with torch.nan_to_num"
        )
    else:
        advice = "check the transform (a division by a zero std?)"
    return InputError(
        f"image(s) {bad} of the batch hold NaN or infinite values{cast} (in the {source}); "
        f"a map of such an input is meaningless: {advice}"
    )
