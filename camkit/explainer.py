"""The :class:`Explainer` facade: model + layer + method + renderer on one device."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from PIL import Image
from torch import Tensor, nn

from camkit.capture import capture_layer, explanation_mode
from camkit.device import DeviceLike, select_device
from camkit.errors import InputError, LayerNotFoundError, LayerResolutionError, PluginError
from camkit.explanation import Explanation
from camkit.geometry import Placement, maps_to_original
from camkit.layers.base import get_layer, layer_name_of
from camkit.methods.base import CAMMethod
from camkit.plugins.manager import (
    create_method,
    create_renderer,
    get_registry,
    resolver_origin,
    to_spatial,
)
from camkit.preprocess import DataConfig, ImageInput, Transform, as_batch_list, load_rgb
from camkit.render.base import Renderer
from camkit.targets import OutputSelector, TargetSpec, select_logits

__all__ = ["Explainer", "normalize_map", "normalize_maps"]


def normalize_map(raw: NDArray[np.floating]) -> NDArray[np.float32]:
    """Min-max normalise a map into ``[0, 1]``; a constant map becomes all zeros."""
    shifted = raw.astype(np.float32) - np.float32(raw.min())
    peak = float(shifted.max())
    return shifted / np.float32(peak) if peak > 0 else np.zeros_like(shifted)


def normalize_maps(maps: Tensor) -> Tensor:
    """Min-max normalise each map of a ``(B, H, W)`` batch in place, on its device, as
    :func:`normalize_map` does; returns ``maps``."""
    maps.sub_(maps.amin(dim=(1, 2), keepdim=True))
    peak = maps.amax(dim=(1, 2), keepdim=True)
    return maps.div_(torch.where(peak > 0, peak, 1.0))


#: Most map pixels resized at once on the device (64 MiB of float32).
_POSTPROCESS_ELEMENTS = 1 << 24


def _maps_on_originals(raw: Tensor, placements: Sequence[Placement]) -> list[NDArray[np.float32]]:
    """Normalised maps on the original images, computed on the maps' device in batched
    products, one per distinct placement and chunk, each chunk moved to the CPU at once.
    Chunks hold at most :data:`_POSTPROCESS_ELEMENTS` pixels, so large photographs are done
    one by one; every returned map is an array of its own."""
    cams: list[NDArray[np.float32] | None] = [None] * len(placements)
    for placement in dict.fromkeys(placements):
        group = [i for i, p in enumerate(placements) if p == placement]
        pixels = placement.original_size[0] * placement.original_size[1]
        step = max(1, _POSTPROCESS_ELEMENTS // max(pixels, 1))
        for start in range(0, len(group), step):
            chunk = group[start : start + step]
            mapped = normalize_maps(maps_to_original(raw[chunk], placement)).cpu().numpy()
            for index, cam in zip(chunk, mapped, strict=True):
                cams[index] = cam if len(chunk) == 1 else cam.copy()
    return [cam for cam in cams if cam is not None]


def _make_method(method: str | CAMMethod | type[CAMMethod]) -> CAMMethod:
    if isinstance(method, str):
        return create_method(method)
    if isinstance(method, CAMMethod):
        return method
    if isinstance(method, type) and issubclass(method, CAMMethod):
        return method()
    raise TypeError(
        f"method must be a registered name, a CAMMethod or a CAMMethod subclass, got {method!r}"
    )


def _make_renderer(renderer: str | Renderer | type[Renderer]) -> Renderer:
    if isinstance(renderer, str):
        return create_renderer(renderer)
    if isinstance(renderer, Renderer):
        return renderer
    if isinstance(renderer, type) and issubclass(renderer, Renderer):
        return renderer()
    raise TypeError(
        f"renderer must be a registered name, a Renderer or a Renderer subclass, got {renderer!r}"
    )


class Explainer:
    """Explains a classifier's decisions with class-activation maps.

    Args:
        model: any ``nn.Module`` classifier. It is moved to ``device``; its training flags,
            ``requires_grad`` flags, parameter gradients and hooks are left as they were.
        method: a registered method name (``"gradcam++"``, ``"gradcam"``, …), a
            :class:`~camkit.CAMMethod` instance or subclass.
        layer: the target layer as a dotted name or the module itself; ``None`` asks the
            registered resolvers (plugins, the architecture table, then the structural
            fallback) on the first call.
        renderer: a registered renderer name (``"jet"``) or a :class:`~camkit.Renderer`.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or a
            ``torch.device``. An unavailable CUDA device falls back to the CPU with a warning.
        transform: ``PIL image -> (C, H, W) tensor``; replaces the default preprocessing
            (the model's timm-style ``pretrained_cfg``, else ImageNet mean/std at 224×224).
            The map is resized back onto the whole original image, so the transform should
            not crop.
        output: ``model output -> (B, K) logits``, for models whose output is not a tensor, a
            tuple (first element), a mapping with ``"logits"`` or an object with ``.logits``.
        data_config: input size, mean, std and interpolation of the default preprocessing;
            ``None`` reads them from the model (see :meth:`DataConfig.from_model`).
        class_names: one display name per class; results then carry ``pred_name``.

    Raises:
        LayerNotFoundError: ``layer`` names no module of ``model``.
        UnknownNameError: ``method`` or ``renderer`` is not registered.
    """

    def __init__(
        self,
        model: nn.Module,
        method: str | CAMMethod | type[CAMMethod] = "gradcam++",
        layer: str | nn.Module | None = None,
        renderer: str | Renderer | type[Renderer] = "jet",
        device: DeviceLike = "auto",
        transform: Transform | None = None,
        output: OutputSelector | None = None,
        data_config: DataConfig | None = None,
        class_names: Sequence[str] | None = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.method: CAMMethod = _make_method(method)
        self.method_name: str = self.method.name or type(self.method).__name__
        self.renderer: Renderer = _make_renderer(renderer)
        self.device: torch.device = select_device(device)
        self.model: nn.Module = model.to(self.device)
        self.transform = transform
        self.select: OutputSelector = output or select_logits
        self.data_config: DataConfig = data_config or DataConfig.from_model(model)
        self.class_names: list[str] | None = list(class_names) if class_names else None
        self._layer: str | None = None
        if isinstance(layer, nn.Module):
            self._layer = layer_name_of(model, layer)
        elif isinstance(layer, str):
            get_layer(model, layer)
            self._layer = layer
        elif layer is not None:
            raise TypeError(f"layer must be a dotted name, an nn.Module or None, got {layer!r}")

    def __repr__(self) -> str:
        return (
            f"Explainer(model={type(self.model).__name__}, method={self.method_name!r}, "
            f"layer={self._layer!r}, renderer={self.renderer!r}, device='{self.device}')"
        )

    @property
    def layer(self) -> str | None:
        """The target layer's dotted name; ``None`` until resolved by the first call."""
        return self._layer

    def resolve_layer(self, example: Tensor | None = None) -> str:
        """Return the target layer's name, asking the registered resolvers if needed.

        Args:
            example: a preprocessed batch for resolvers that run the model; defaults to a
                zero image of the data config's size.

        Raises:
            LayerResolutionError: no resolver found a layer.
        """
        if self._layer is not None:
            return self._layer
        if example is None:
            height, width = self.data_config.input_size
            example = torch.zeros(1, 3, height, width, device=self.device, dtype=self._dtype())
        with explanation_mode(self.model):
            return self._resolve(example)

    def _resolve(self, example: Tensor) -> str:
        if self._layer is not None:
            return self._layer
        for resolver in get_registry().resolvers:
            name = resolver.resolve(self.model, example)
            if name is not None:
                try:
                    get_layer(self.model, name)
                except LayerNotFoundError as error:
                    raise PluginError(
                        f"layer resolver {resolver_origin(resolver)} chose {name!r}, which is "
                        f"not a layer of {type(self.model).__name__}. Fix or uninstall the "
                        "plugin, or pass layer= to Explainer."
                    ) from error
                self._layer = name
                return name
        raise LayerResolutionError(
            f"no target layer found for {type(self.model).__name__}: no resolver knows it and "
            "it produces no spatial (B, C, H, W) map. Pass layer='<dotted name>' to Explainer."
        )

    def class_name(self, index: int) -> str | None:
        """The display name of class ``index``, or ``None`` when no name is known."""
        names = self.class_names
        return names[index] if names is not None and 0 <= index < len(names) else None

    def _dtype(self) -> torch.dtype:
        for parameter in self.model.parameters():
            if parameter.is_floating_point():
                return parameter.dtype
        return torch.float32

    def _prepare(self, item: Any) -> tuple[Tensor, NDArray[np.uint8] | None, Placement]:
        """The model input, the RGB image (``None`` for tensors: made later, batched) and
        where the image lies in the input."""
        if isinstance(item, Tensor):
            if item.ndim == 4 and item.shape[0] == 1:
                item = item[0]
            if item.ndim != 3:
                raise InputError(
                    f"a tensor image must have shape (C, H, W) or (1, C, H, W), got "
                    f"{tuple(item.shape)}; use explain_batch for (N, C, H, W)"
                )
            size = (int(item.shape[1]), int(item.shape[2]))
            return item, None, Placement.stretch(size, size)
        image = load_rgb(item)
        if self.transform is None:
            tensor, placement = self.data_config.prepare(image)
            return tensor, image, placement
        tensor = self.transform(Image.fromarray(image))
        if not isinstance(tensor, Tensor) or tensor.ndim != 3:
            raise InputError(
                "the transform must return a (C, H, W) tensor, got "
                f"{type(tensor).__name__} {tuple(getattr(tensor, 'shape', ()))}"
            )
        size = (int(tensor.shape[1]), int(tensor.shape[2]))
        return tensor, image, Placement.stretch(image.shape[:2], size)

    def explain(self, img: ImageInput, target: TargetSpec = None) -> Explanation:
        """Explain one image.

        Args:
            img: a file path, a PIL image, an RGB uint8 array ``(H, W, 3)`` (grayscale and
                RGBA are converted), or a preprocessed tensor ``(C, H, W)``/``(1, C, H, W)``.
            target: ``None`` (the predicted class), a class index, or a callable
                ``logits (B, K) -> scores (B,)``.

        Raises:
            InputError: the image cannot be read or has the wrong shape.
            TargetError: the target is out of range or malformed.
        """
        if isinstance(target, Sequence) and not isinstance(target, str) and len(target) != 1:
            raise InputError(
                f"explain() takes one image but got {len(target)} targets; "
                "use explain_batch for several images"
            )
        return self.explain_batch([img], target)[0]

    def explain_batch(
        self, imgs: Sequence[ImageInput] | Tensor, targets: TargetSpec = None
    ) -> list[Explanation]:
        """Explain many images with one batched forward pass.

        Args:
            imgs: a list of inputs as accepted by :meth:`explain`, or an ``(N, C, H, W)``
                tensor. Non-tensor images are preprocessed to the same size.
            targets: ``None``, one index for all, one index per image, or a callable
                ``logits (B, K) -> scores (B,)``.

        Returns:
            One :class:`Explanation` per image, in order.

        Raises:
            InputError: an image cannot be read, the batch is empty, or tensors differ in
                shape.
            TargetError: a target is out of range, or the number of targets differs from
                the number of images.
        """
        items = as_batch_list(imgs)
        if not items:
            raise InputError("explain_batch got no images")
        prepared = [self._prepare(item) for item in items]
        shapes = {tuple(tensor.shape) for tensor, _, _ in prepared}
        if len(shapes) > 1:
            raise InputError(
                f"images of one batch must preprocess to the same shape, got {sorted(shapes)}; "
                "resize the tensors or explain them separately"
            )
        # a batch tensor is not split and re-stacked; it is copied, so that in-place
        # operations of the model never reach the caller's tensor
        stacked = imgs if isinstance(imgs, Tensor) else torch.stack([t for t, _, _ in prepared])
        batch = stacked.to(self.device, self._dtype(), copy=True)
        from_tensors = [i for i, (_, image, _) in enumerate(prepared) if image is None]
        # de-normalised from the caller's values (before any cast to the model's dtype) on
        # the model's device, one transfer of uint8 pixels
        made = iter(
            self.data_config.to_images(stacked[from_tensors].to(self.device))
            if from_tensors
            else []
        )
        images = [next(made) if image is None else image for _, image, _ in prepared]
        with explanation_mode(self.model):
            layer = self._resolve(batch)
            input_size = (int(batch.shape[-2]), int(batch.shape[-1]))
            result = capture_layer(
                self.model,
                layer,
                batch,
                targets,
                self.select,
                to_spatial=lambda t: to_spatial(self.model, layer, t, input_size),
                needs_gradients=self.method.needs_gradients,
            )
            raw = self.method(result.capture)
        expected = (batch.shape[0], *result.capture.activations.shape[2:])
        if tuple(raw.shape) != expected:
            raise ValueError(
                f"{type(self.method).__name__}.compute returned shape {tuple(raw.shape)}, "
                f"expected (B, H, W) = {expected}"
            )
        probabilities = torch.softmax(result.logits.float(), dim=1)
        confidence, predicted = probabilities.max(dim=1)
        raw_float = raw.detach().float()
        cams = _maps_on_originals(raw_float, [placement for _, _, placement in prepared])
        raw_maps = raw_float.cpu().numpy()
        scores = result.capture.scores.float().cpu().tolist()
        classes: list[int] = predicted.cpu().tolist()
        confidences: list[float] = confidence.cpu().tolist()
        return [
            Explanation(
                cam=cams[i],
                raw=raw_maps[i],
                pred_class=classes[i],
                confidence=confidences[i],
                target=result.targets[i],
                target_score=float(scores[i]),
                layer=layer,
                method=self.method_name,
                image=images[i],
                renderer=self.renderer,
                pred_name=self.class_name(classes[i]),
            )
            for i in range(len(prepared))
        ]
