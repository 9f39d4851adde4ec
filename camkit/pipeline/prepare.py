"""The prepare step: user inputs become one :class:`PreparedBatch`.

Every :class:`~camkit.geometry.Placement` of the engine is built here: by the data config for
images it preprocesses (stretch, crop or letterbox), as a plain stretch for a user transform,
and as the identity for tensors, which are their own originals.
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
from camkit.preprocess import DataConfig, ImageInput, Transform, as_batch_list, load_rgb

__all__ = ["PreparedBatch", "prepare_batch"]


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
    """

    inputs: Tensor
    placements: tuple[Placement, ...]
    _originals: _Originals = attrs.field(repr=False)

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


def _from_tensor(item: Tensor) -> Tensor:
    if item.ndim == 4 and item.shape[0] == 1:
        item = item[0]
    if item.ndim != 3:
        raise InputError(
            f"a tensor image must have shape (C, H, W) or (1, C, H, W), got "
            f"{tuple(item.shape)}; use explain_batch for (N, C, H, W)"
        )
    return item


def _from_image(
    image: NDArray[np.uint8], config: DataConfig, transform: Transform | None
) -> tuple[Tensor, Placement]:
    if transform is None:
        return config.prepare(image)
    tensor = transform(Image.fromarray(image))
    if not isinstance(tensor, Tensor) or tensor.ndim != 3:
        raise InputError(
            "the transform must return a (C, H, W) tensor, got "
            f"{type(tensor).__name__} {tuple(getattr(tensor, 'shape', ()))}"
        )
    size = (int(tensor.shape[1]), int(tensor.shape[2]))
    return tensor, Placement.stretch((image.shape[0], image.shape[1]), size)


def prepare_batch(
    imgs: Sequence[ImageInput] | Tensor,
    *,
    config: DataConfig,
    transform: Transform | None,
    device: torch.device,
    dtype: torch.dtype,
) -> PreparedBatch:
    """Turn images (paths, PIL images, arrays, tensors) or an ``(N, C, H, W)`` tensor into
    one :class:`PreparedBatch`.

    Raises:
        InputError: an image cannot be read, the batch is empty, or the inputs preprocess to
            different shapes.
    """
    items: list[Any] = as_batch_list(imgs)
    if not items:
        raise InputError("got no images to explain")
    tensors: list[Tensor] = []
    decoded: list[NDArray[np.uint8] | None] = []
    placements: list[Placement] = []
    for item in items:
        if isinstance(item, Tensor):
            tensor = _from_tensor(item)
            size = (int(tensor.shape[1]), int(tensor.shape[2]))
            tensors.append(tensor)
            decoded.append(None)
            placements.append(Placement.stretch(size, size))
            continue
        image = load_rgb(item)
        tensor, placement = _from_image(image, config, transform)
        tensors.append(tensor)
        decoded.append(image)
        placements.append(placement)
    shapes = {tuple(t.shape) for t in tensors}
    if len(shapes) > 1:
        raise InputError(
            f"images of one batch must preprocess to the same shape, got {sorted(shapes)}; "
            "resize the tensors or explain them separately"
        )
    # a batch tensor is not split and re-stacked
    stacked = imgs if isinstance(imgs, Tensor) else torch.stack(tensors)
    inputs = stacked.to(device, dtype, copy=True)
    from_tensors = [i for i, d in enumerate(decoded) if d is None]
    # tensor inputs are de-normalised from the caller's values, before any cast to the
    # model's dtype; kept as a copy on the model's device until an original is asked for
    caller_values = stacked[from_tensors].detach().to(device, copy=True) if from_tensors else None
    originals = _Originals(decoded, caller_values, config)
    return PreparedBatch(inputs, tuple(placements), originals)
