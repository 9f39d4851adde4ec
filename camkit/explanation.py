"""The results of the pipeline: :class:`Explanation` and :class:`ExplanationBatch`.

Where results live, decided once:

- One call (``explain``, ``explain_batch``, ``explain_classes``) gives one
  :class:`ExplanationBatch`, a sequence of :class:`Explanation`, one per image and class.
- The batch holds the **tensors on the model's device**: the model inputs, the raw maps on the
  method's grid (the layer's resolution; the input's for fused layers and input-resolution
  methods) and each layer's raw map. Nothing is moved to the host or resized by the pipeline.
- Everything else is **computed lazily, once per batch, in one batched step**, on first use
  of any explanation of the batch: the normalised maps at the input resolution
  (:meth:`ExplanationBatch.input_maps`, a device tensor, what :mod:`camkit.metrics` takes),
  the normalised maps on the original images (:attr:`Explanation.cam`, numpy), the raw maps
  as numpy (:attr:`Explanation.raw`), and the original images (:attr:`Explanation.image`).
- Overlays are rendered on request (:meth:`Explanation.overlay`, :meth:`Explanation.save`).
- The scalars (predicted class, confidence, target, target score) are Python values.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar, overload

import attrs
import numpy as np
from numpy.typing import NDArray
from torch import Tensor

from camkit.pipeline.place import maps_on_grid, maps_on_input, maps_on_originals, overlay_grid
from camkit.pipeline.prepare import PreparedBatch
from camkit.render.base import Renderer
from camkit.tools.output import OutputWriter

__all__ = ["Explanation", "ExplanationBatch"]

_T = TypeVar("_T")

LAYER_SEPARATOR = "+"
"""Joins the names of several layers in :attr:`Explanation.layer` and in reports."""


class ExplanationBatch(Sequence["Explanation"]):
    """The explanations of one call, in order: image by image, and for each image class by
    class (best score first) when several classes were explained.

    Holds the call's tensors on the model's device and computes the derived maps lazily,
    batched, once (see the module docstring). Thread-safe.
    """

    def __init__(
        self,
        *,
        prepared: PreparedBatch,
        rows: Sequence[int],
        maps: Tensor,
        layer_maps: Mapping[str, Tensor],
        pred_class: Sequence[int],
        confidence: Sequence[float],
        targets: Sequence[int | None],
        target_scores: Sequence[float],
        method: str,
        renderer: Renderer,
        class_names: Sequence[str] | None = None,
    ) -> None:
        self._prepared = prepared
        self._rows = list(rows)
        self._maps = maps
        self._layer_maps = dict(layer_maps)
        self._lock = threading.Lock()
        self._cache: dict[str, Any] = {}
        layer = LAYER_SEPARATOR.join(self._layer_maps)
        names = list(class_names) if class_names else None
        self._items = [
            Explanation(
                pred_class=pred_class[i],
                confidence=confidence[i],
                target=targets[i],
                target_score=target_scores[i],
                layer=layer,
                method=method,
                renderer=renderer,
                pred_name=names[pred_class[i]]
                if names is not None and 0 <= pred_class[i] < len(names)
                else None,
                batch=self,
                index=i,
            )
            for i in range(len(self._rows))
        ]

    @overload
    def __getitem__(self, index: int) -> Explanation: ...

    @overload
    def __getitem__(self, index: slice) -> list[Explanation]: ...

    def __getitem__(self, index: int | slice) -> Explanation | list[Explanation]:
        return self._items[index]

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Explanation]:
        return iter(self._items)

    def __repr__(self) -> str:
        return f"ExplanationBatch({len(self)} explanations, layers={self.layers!r})"

    def _cached(self, key: str, make: Callable[[], _T]) -> _T:
        with self._lock:
            if key not in self._cache:
                self._cache[key] = make()
            found: _T = self._cache[key]
            return found

    @property
    def layers(self) -> tuple[str, ...]:
        """The layers the maps were computed at, in the order given."""
        return tuple(self._layer_maps)

    @property
    def maps(self) -> Tensor:
        """The raw maps ``(N, h, w)`` on the method's grid, on the model's device: ReLU'd,
        not normalised (for several layers, their fusion on the input grid)."""
        return self._maps

    @property
    def layer_maps(self) -> Mapping[str, Tensor]:
        """Each layer's raw map ``(N, h_l, w_l)`` on the model's device."""
        return self._layer_maps

    @property
    def inputs(self) -> Tensor:
        """The model inputs ``(N, C, H, W)`` of the explanations, on the model's device."""
        return self._cached("inputs", self._inputs)

    def _inputs(self) -> Tensor:
        inputs = self._prepared.inputs
        if self._rows == list(range(inputs.shape[0])):
            return inputs
        return inputs[self._rows]

    @property
    def targets(self) -> list[int | None]:
        """The class explained in each explanation (``None`` for a callable target)."""
        return [item.target for item in self._items]

    def input_maps(self) -> Tensor:
        """The maps at the input's resolution ``(N, H, W)``, min-max normalised to
        ``[0, 1]``, on the model's device: what :class:`camkit.metrics.Scorer` takes."""
        return self._cached("input", lambda: maps_on_input(self._maps, self._prepared.input_size))

    def cams(self) -> list[NDArray[np.float32]]:
        """The maps on the original images, one float32 ``(H, W)`` array in ``[0, 1]`` each."""
        # (made in the cache: each explanation's .cam reads this list, O(1) each time)
        return self._cached(
            "cams",
            lambda: maps_on_originals(
                self._maps, [self._prepared.placements[r] for r in self._rows]
            ),
        )

    def coarse_cam(self, index: int, size: tuple[int, int]) -> NDArray[np.float32]:
        """The map of explanation ``index`` on a coarser grid ``size`` ``(h, w)`` of its
        original image, normalised to ``[0, 1]`` (:func:`~camkit.pipeline.place.maps_on_grid`):
        what the overlay of a large image is coloured from. Not cached."""
        placement = self._prepared.placements[self._rows[index]]
        maps = maps_on_grid(self._maps[index : index + 1], placement, size)
        coarse: NDArray[np.float32] = maps[0]
        return coarse

    def raws(self) -> NDArray[np.float32]:
        """:attr:`maps` as one float32 numpy array ``(N, h, w)``."""
        return self._cached("raws", lambda: self._maps.float().cpu().numpy())

    def images(self) -> list[NDArray[np.uint8]]:
        """The RGB uint8 image each map lies on, one per explanation."""

        def make() -> list[NDArray[np.uint8]]:
            originals = self._prepared.originals()
            return [originals[r] for r in self._rows]

        return self._cached("images", make)

    def layer_raws(self) -> dict[str, NDArray[np.float32]]:
        """:attr:`layer_maps` as float32 numpy arrays."""
        return self._cached(
            "layer_raws",
            lambda: {name: m.float().cpu().numpy() for name, m in self._layer_maps.items()},
        )


@attrs.frozen(eq=False, slots=True)
class Explanation:
    """One image's explanation for one class.

    Attributes:
        pred_class: the model's predicted class (argmax of the scores).
        confidence: softmax probability of the predicted class.
        target: the class explained, or ``None`` for a callable target.
        target_score: the explained score (the raw logit of ``target`` by default).
        layer: the layer the map was computed at; several layers are joined by ``+``
            (``"layer3+layer4"``), see :attr:`layers`.
        method: registry name of the CAM method.
        renderer: the renderer :meth:`overlay` uses.
        pred_name: display name of ``pred_class`` when the explainer knows class names.
        batch: the :class:`ExplanationBatch` this explanation belongs to.
        index: its position in :attr:`batch`.
    """

    pred_class: int
    confidence: float
    target: int | None
    target_score: float
    layer: str
    method: str
    renderer: Renderer = attrs.field(repr=False)
    pred_name: str | None = None
    batch: ExplanationBatch = attrs.field(default=None, repr=False)
    index: int = attrs.field(default=0, repr=False)

    @property
    def layers(self) -> tuple[str, ...]:
        """Every layer the map was computed at."""
        return self.batch.layers

    @property
    def cam(self) -> NDArray[np.float32]:
        """float32 ``(H, W)`` map on the original image (the tensor's own size for tensor
        input): :attr:`raw` resampled bilinearly onto the original pixels it covers (0 on
        pixels cropped away), min-max normalised to ``[0, 1]`` (all zeros when constant)."""
        return self.batch.cams()[self.index]

    @property
    def raw(self) -> NDArray[np.float32]:
        """float32 ``(h, w)`` map on the method's grid (the layer's resolution; the input's
        for fused layers), after ReLU, not normalised."""
        result: NDArray[np.float32] = self.batch.raws()[self.index]
        return result

    @property
    def layer_maps(self) -> dict[str, NDArray[np.float32]]:
        """Each layer's raw map, float32 ``(h_l, w_l)``, by layer name."""
        return {name: maps[self.index] for name, maps in self.batch.layer_raws().items()}

    @property
    def input_map(self) -> Tensor:
        """The normalised map at the input's resolution ``(H, W)``, on the model's device."""
        return self.batch.input_maps()[self.index]

    @property
    def image(self) -> NDArray[np.uint8]:
        """The RGB uint8 ``(H, W, 3)`` image the map lies on (for tensor input, the tensor
        with its normalisation undone)."""
        return self.batch.images()[self.index]

    def overlay(self, alpha: float = 0.5) -> NDArray[np.uint8]:
        """Return the map rendered over the image: RGB uint8 ``(H, W, 3)``, at the image's
        full size.

        Images of up to :data:`~camkit.pipeline.place.OVERLAY_PIXELS` pixels are drawn from
        :attr:`cam`. Larger ones are drawn from the map on a coarser grid of at most that
        many cells (:meth:`ExplanationBatch.coarse_cam`) by the renderer's
        :meth:`~camkit.Renderer.render_upsampled`, which upsamples it to the image's size:
        the maps are smooth, so the picture is the same to a few colour levels, and memory
        stays a small multiple of the image's instead of many float32 copies of it.

        Args:
            alpha: weight of the heatmap in the blend, in ``[0, 1]``.

        Raises:
            ConfigurationError: ``alpha`` is outside ``[0, 1]``.
        """
        image = self.image
        size = overlay_grid((int(image.shape[0]), int(image.shape[1])))
        if size == image.shape[:2]:
            return self.renderer.render(image, self.cam, alpha)
        return self.renderer.render_upsampled(image, self.batch.coarse_cam(self.index, size), alpha)

    def save(
        self, path: str | os.PathLike[str], alpha: float = 0.5, *, overwrite: bool = False
    ) -> Path:
        """Write :meth:`overlay` to ``path`` (format from the extension); return the path.

        Missing parent folders are created. The image is encoded in memory and written by
        :class:`~camkit.tools.output.OutputWriter`: never through a symbolic link, and an
        existing file is replaced only with ``overwrite`` (a link at ``path`` is then
        replaced itself, not its target).

        Raises:
            ConfigurationError: OpenCV cannot write that file type.
            OutputError: the file exists (without ``overwrite``) or could not be written.
        """
        target = Path(path)
        writer = OutputWriter(target.parent, overwrite=overwrite)
        return writer.write_image(target, self.overlay(alpha))
