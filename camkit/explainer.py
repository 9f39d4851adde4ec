"""The :class:`Explainer` facade: configuration, and the calls into the pipeline.

Every call prepares its inputs (:mod:`camkit.pipeline.prepare`) and runs
:func:`camkit.pipeline.run.run_pipeline`; nothing else happens here.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from camkit.capture import explanation_mode
from camkit.device import DeviceLike, select_device
from camkit.errors import (
    ConfigurationError,
    InputError,
    LayerNotFoundError,
    LayerResolutionError,
    PluginError,
    TargetError,
)
from camkit.explanation import LAYER_SEPARATOR, Explanation, ExplanationBatch
from camkit.layers.base import get_layer, layer_name_of, original_module
from camkit.methods.base import CAMMethod
from camkit.methods.context import Runner
from camkit.pipeline.fusion import check_fusion
from camkit.pipeline.prepare import PreparedBatch, PreparedImage, prepare_batch, prepare_image
from camkit.pipeline.run import (
    ClassRequest,
    check_eigen_smooth,
    run_pipeline,
    spatial_converter,
)
from camkit.plugins.manager import (
    advice,
    ask_resolvers,
    resolve_method,
    resolve_renderer,
    resolver_origin,
)
from camkit.preprocess import (
    DEFAULT_MAX_PIXELS,
    DataConfig,
    ImageInput,
    Transform,
    check_max_pixels,
)
from camkit.render.base import Renderer
from camkit.targets import OutputSelector, TargetSpec, select_logits

__all__ = ["ACCELERATOR_BATCH_SIZE", "CPU_BATCH_SIZE", "Explainer", "LayerSpec"]

CPU_BATCH_SIZE = 16
"""Inputs per extra forward pass on the CPU (``Explainer(batch_size=None)``): small batches
stay in the CPU's caches and run faster per image."""
ACCELERATOR_BATCH_SIZE = 64
"""Inputs per extra forward pass on an accelerator (``Explainer(batch_size=None)``)."""

LayerSpec = str | nn.Module | Sequence[str | nn.Module] | None
"""The target layer(s): a dotted name, the module itself, a list of them, or ``None`` for
the registered resolvers' choice."""


def _layer_names(model: nn.Module, layer: LayerSpec) -> tuple[str, ...] | None:
    if layer is None:
        return None
    given = [layer] if isinstance(layer, (str, nn.Module)) else layer
    if not isinstance(given, Sequence):
        raise ConfigurationError(
            f"layer must be a dotted name, an nn.Module, a list of them or None, got {layer!r}"
        )
    if not given:
        raise ConfigurationError(
            "layer=[] names no layer; give at least one layer, or None for camkit's choice"
        )
    names: list[str] = []
    for item in given:
        if isinstance(item, nn.Module):
            names.append(layer_name_of(model, item))
        elif isinstance(item, str):
            get_layer(model, item)
            names.append(item)
        else:
            raise ConfigurationError(
                f"each layer must be a dotted name or an nn.Module, got {item!r}"
            )
    modules = [model.get_submodule(name) for name in names]
    for i, module in enumerate(modules):
        for j in range(i):
            if modules[j] is module:
                raise ConfigurationError(
                    f"layer {names[i]!r} is given twice (as {names[j]!r} and {names[i]!r}); "
                    "give each layer once"
                )
    return tuple(names)


class Explainer:
    """Explains a classifier's decisions with class-activation maps.

    Args:
        model: any ``nn.Module`` classifier. It is moved to ``device``; its training flags,
            ``requires_grad`` flags, parameter gradients and hooks are left as they were. A
            model returned by ``torch.compile`` is explained through the module it wraps
            (:func:`camkit.layers.original_module`): same parameters and maps, eager
            execution, and layer names without the ``_orig_mod.`` prefix.
        method: a registered method name (``"gradcam++"``, ``"gradcam"``, …), a
            :class:`~camkit.CAMMethod` instance or subclass.
        layer: the target layer as a dotted name or the module itself, or a list of them to
            capture several layers from one forward and fuse their maps (see ``fusion``);
            ``None`` asks the registered resolvers (plugins, the architecture table, then the
            structural fallback) on the first call.
        renderer: a registered renderer name (``"jet"``) or a :class:`~camkit.Renderer`.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ``"cuda:N"``,
            ``"mps"`` or a ``torch.device``. An unavailable CUDA or MPS device falls back to
            the CPU with a warning (once per process); any other name is a
            ``ConfigurationError`` (:func:`camkit.device.select_device`).
        transform: ``PIL image -> (C, H, W) tensor``; replaces the default preprocessing
            (the model's timm-style ``pretrained_cfg``, else ImageNet mean/std at 224×224).
            The map is resized back onto the whole original image, so the transform should
            not crop.
        output: the output selector, ``model output -> (B, K) logits``, for models whose
            output is not a tensor, a tuple (first element), a mapping with ``"logits"`` or an
            object with ``.logits``.
        data_config: input size, mean, std and interpolation of the default preprocessing;
            ``None`` reads them from the model (see :meth:`DataConfig.from_model`).
        class_names: one display name per class; results then carry ``pred_name``.
        fusion: how the maps of several layers are combined on the input grid: ``"mean"``
            (pytorch-grad-cam's), ``"max"`` or ``"product"``
            (:data:`camkit.pipeline.fusion.FUSIONS`).
        batch_size: the default number of inputs per extra forward pass of methods that run
            the model again (Score-CAM and the like); ``None``: 16 on the CPU, whose caches
            run small batches faster per image (ResNet-18 Score-CAM measured 7 % faster at 16
            than at 64), and 64 on an accelerator.
        aug_smooth: test-time augmentation with pytorch-grad-cam's semantics: each image is
            also explained flipped horizontally and with brightness factors 0.9, 1 and 1.1
            (six versions, one forward), each map flipped back, and the maps averaged
            (:mod:`camkit.pipeline.smooth`). The maps are then on the input grid.
        eigen_smooth: each map is the first principal component of the method's weighted
            activations (``w_k · A^k``), after ReLU, as pytorch-grad-cam's option; only for
            methods that define :meth:`~camkit.CAMMethod.weighted_activations`
            (``ConfigurationError`` otherwise).
        max_pixels: the most pixels (width × height) an image file or PIL image may declare,
            checked before it is decoded (a guard against decompression bombs and corrupt
            headers); ``None`` for no limit. See :func:`camkit.preprocess.load_rgb`.

    Raises:
        LayerNotFoundError: ``layer`` names no module of ``model``.
        UnknownNameError: ``method`` or ``renderer`` is not registered.
        PluginConflictError: ``method`` or ``renderer`` is a name several plugins registered.
        ConfigurationError: an argument has the wrong type or value (an empty or repeated
            layer list, an unknown fusion, an unknown or unsupported device).
    """

    def __init__(
        self,
        model: nn.Module,
        method: str | CAMMethod | type[CAMMethod] = "gradcam++",
        layer: LayerSpec = None,
        renderer: str | Renderer | type[Renderer] = "jet",
        device: DeviceLike = "auto",
        transform: Transform | None = None,
        output: OutputSelector | None = None,
        data_config: DataConfig | None = None,
        class_names: Sequence[str] | None = None,
        fusion: str = "mean",
        batch_size: int | None = None,
        aug_smooth: bool = False,
        eigen_smooth: bool = False,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise ConfigurationError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        model = original_module(model)  # a torch.compile'd model: explain what it wraps
        if batch_size is not None and (
            isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
        ):
            raise ConfigurationError(
                f"batch_size must be an int >= 1 or None (16 on the CPU, 64 on an "
                f"accelerator), got {batch_size!r}"
            )
        self.method: CAMMethod = resolve_method(method)
        self.method_name: str = self.method.name or type(self.method).__name__
        self.renderer: Renderer = resolve_renderer(renderer)
        self.fusion: str = check_fusion(fusion)
        self.max_pixels: int | None = check_max_pixels(max_pixels)
        self.device: torch.device = select_device(device)
        if batch_size is None:
            batch_size = CPU_BATCH_SIZE if self.device.type == "cpu" else ACCELERATOR_BATCH_SIZE
        self.batch_size: int = batch_size
        self.model: nn.Module = model.to(self.device)
        self.transform = transform
        self.output: OutputSelector = output or select_logits
        self.data_config: DataConfig = data_config or DataConfig.from_model(model)
        self.class_names: list[str] | None = list(class_names) if class_names else None
        self._layers: tuple[str, ...] | None = _layer_names(model, layer)
        self.aug_smooth: bool = bool(aug_smooth)
        self.eigen_smooth: bool = bool(eigen_smooth)
        if self.eigen_smooth:
            check_eigen_smooth(self.method)

    def __repr__(self) -> str:
        return (
            f"Explainer(model={type(self.model).__name__}, method={self.method_name!r}, "
            f"layer={self.layer!r}, renderer={self.renderer!r}, device='{self.device}')"
        )

    @property
    def layer(self) -> str | None:
        """The target layer's dotted name (several joined by ``+``); ``None`` until resolved
        by the first call."""
        return None if self._layers is None else LAYER_SEPARATOR.join(self._layers)

    @property
    def layers(self) -> tuple[str, ...] | None:
        """Every target layer's dotted name; ``None`` until resolved by the first call."""
        return self._layers

    def resolve_layer(self, example: Tensor | None = None) -> str:
        """Return the target layer's name (several joined by ``+``), asking the registered
        resolvers if needed.

        Args:
            example: a preprocessed batch for resolvers that run the model; defaults to a
                zero image of the data config's size.

        Raises:
            LayerResolutionError: no resolver found a layer.
        """
        if self._layers is None:
            if example is None:
                height, width = self.data_config.input_size
                example = torch.zeros(1, 3, height, width, device=self.device, dtype=self._dtype())
            with explanation_mode(self.model):
                return LAYER_SEPARATOR.join(self._resolve(example))
        return LAYER_SEPARATOR.join(self._layers)

    def _resolve(self, example: Tensor) -> tuple[str, ...]:
        if self._layers is not None:
            return self._layers
        found = ask_resolvers(self.model, example)
        if found is not None:
            resolver, name = found
            try:
                get_layer(self.model, name)
            except LayerNotFoundError as error:
                raise PluginError(
                    f"layer resolver {resolver_origin(resolver)} chose {name!r}, which is "
                    f"not a layer of {type(self.model).__name__}. Fix or uninstall the "
                    "plugin, or pass layer= to Explainer."
                ) from error
            self._layers = (name,)
            return self._layers
        raise LayerResolutionError(
            f"no target layer found for {type(self.model).__name__}: no resolver knows it and "
            "it produces no spatial (B, C, H, W) map. "
            f"{advice(self.model, None, 'no-layer')}"
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

    def prepare_image(self, img: ImageInput) -> PreparedImage:
        """The per-image part of the prepare step: read, decode and preprocess one image
        (:func:`~camkit.pipeline.prepare.prepare_image`), without touching the model.

        Thread-safe when the transform is: folder runs call it on worker threads while the
        model explains the previous batch, then hand the results to :meth:`prepare`.

        Raises:
            InputError: the image cannot be read, exceeds :attr:`max_pixels`, or has the
                wrong type or shape.
        """
        return prepare_image(
            img, config=self.data_config, transform=self.transform, max_pixels=self.max_pixels
        )

    def prepare(self, imgs: Sequence[ImageInput | PreparedImage] | Tensor) -> PreparedBatch:
        """The prepare step alone: images become one batch of model inputs on the device.

        Images already prepared by :meth:`prepare_image` are only stacked.

        Raises:
            InputError: an image cannot be read or exceeds :attr:`max_pixels`, the batch is
                empty, the inputs preprocess to different shapes, or hold NaN or infinite
                values.
        """
        return prepare_batch(
            imgs,
            config=self.data_config,
            transform=self.transform,
            device=self.device,
            dtype=self._dtype(),
            max_pixels=self.max_pixels,
        )

    def run(
        self,
        prepared: PreparedBatch,
        target: TargetSpec = None,
        classes: ClassRequest | None = None,
    ) -> ExplanationBatch:
        """Run the pipeline on a prepared batch: capture, method, fusion; placement on the
        originals happens lazily in the returned batch."""
        runner = Runner(
            self.model,
            self.output,
            spatial_converter(self.model, prepared.input_size),
            self.batch_size,
        )
        return run_pipeline(
            prepared,
            runner=runner,
            method=self.method,
            method_name=self.method_name,
            resolve_layers=self._resolve,
            renderer=self.renderer,
            target=target,
            classes=classes,
            fusion=self.fusion,
            class_names=self.class_names,
            aug_smooth=self.aug_smooth,
            eigen_smooth=self.eigen_smooth,
        )

    def explain(self, img: ImageInput, target: TargetSpec = None) -> Explanation:
        """Explain one image.

        Args:
            img: a file path, a PIL image, an RGB uint8 array ``(H, W, 3)`` (grayscale and
                RGBA are converted), a uint8 image tensor ``(C, H, W)`` (as
                ``torchvision.io.read_image`` returns), or a preprocessed float tensor
                ``(C, H, W)``/``(1, C, H, W)``.
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
    ) -> ExplanationBatch:
        """Explain many images with one batched forward pass.

        Args:
            imgs: a list of inputs as accepted by :meth:`explain`, or an ``(N, C, H, W)``
                tensor (float: preprocessed; uint8: images). Images are preprocessed to the
                same size.
            targets: ``None``, one index for all, one index per image, or a callable
                ``logits (B, K) -> scores (B,)``.

        Returns:
            An :class:`ExplanationBatch`: one :class:`Explanation` per image, in order.

        Raises:
            InputError: an image cannot be read, the batch is empty, or tensors differ in
                shape.
            TargetError: a target is out of range, or the number of targets differs from
                the number of images.
        """
        return self.run(self.prepare(imgs), targets)

    def explain_classes(
        self, img: ImageInput, classes: Sequence[int] | None = None, top: int = 5
    ) -> list[Explanation]:
        """Explain several classes of one image from one forward pass.

        The gradients of the classes are taken through the part of the model after the
        layer only, so ``k`` classes cost about one :meth:`explain`.

        Args:
            img: one image, as accepted by :meth:`explain`.
            classes: the class indices to explain (exactly these; ``top`` is ignored), or
                ``None`` for the ``top`` best-scoring classes.
            top: how many of the best classes, clamped to the number of classes.

        Returns:
            One :class:`Explanation` per class, best score first.

        Raises:
            ConfigurationError: ``top`` < 1.
            TargetError: a class is out of range, repeated, or ``classes`` is empty.
        """
        return list(self.explain_batch_classes([img], classes, top))

    def explain_batch_classes(
        self,
        imgs: Sequence[ImageInput] | Tensor,
        classes: Sequence[int] | None = None,
        top: int = 5,
    ) -> ExplanationBatch:
        """:meth:`explain_classes` for a batch: one forward for all images; the result holds,
        image by image, one :class:`Explanation` per class, best score first."""
        if classes is not None and (
            isinstance(classes, (str, bytes)) or not isinstance(classes, Sequence)
        ):
            raise TargetError(
                f"classes must be a sequence of class indices or None, got {classes!r}"
            )
        request = ClassRequest(None if classes is None else tuple(classes), top)
        return self.run(self.prepare(imgs), classes=request)
