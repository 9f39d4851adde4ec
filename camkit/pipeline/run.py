"""The pipeline itself: prepare → capture → method → place → :class:`ExplanationBatch`.

:func:`run_pipeline` is the one path every entry point takes (``Explainer.explain``,
``explain_batch``, ``explain_classes``, the folder runs and the CLI): it receives a
:class:`~camkit.pipeline.prepare.PreparedBatch`, and inside
:func:`~camkit.capture.explanation_mode`

1. resolves the layers (once per explainer),
2. records them in **one** forward pass (:func:`~camkit.capture.record_forward`),
3. for each set of targets (one, or one per class for ``explain_classes``), takes the
   gradients through the part after the layers only and runs the method on a
   :class:`~camkit.methods.MethodContext` per layer, checking its output in one place,
4. fuses several layers on the input grid,

then reads every check of values made on the way (finite logits, scores and maps,
non-negative maps, empty gradient maps) together with the results' scalars, in **one**
transfer from the device (:mod:`camkit.pipeline.checks`), and returns the maps, still on the
model's device, in an :class:`ExplanationBatch` that places them on the originals when asked
(:mod:`camkit.pipeline.place`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import attrs
import torch
from torch import Tensor, nn

from camkit.capture import Forward, explanation_mode, record_forward
from camkit.errors import (
    ConfigurationError,
    LayerResolutionError,
    MethodError,
    ModelOutputError,
    TargetError,
)
from camkit.explanation import ExplanationBatch
from camkit.methods.base import (
    CAMMethod,
    LayerCapture,
    output_values_error,
    output_values_ok,
)
from camkit.methods.context import MethodContext, Runner, TargetScore, capture_layers
from camkit.methods.eigen import principal_projection
from camkit.pipeline.checks import DeviceChecks, all_finite
from camkit.pipeline.fusion import fuse_layers
from camkit.pipeline.prepare import PreparedBatch
from camkit.pipeline.smooth import AUGMENTATIONS, augment, smooth_maps
from camkit.plugins.manager import advice, to_spatial
from camkit.render.base import Renderer
from camkit.targets import TargetSpec, target_indices

__all__ = ["ClassRequest", "check_eigen_smooth", "run_pipeline", "spatial_converter"]


def spatial_converter(
    model: nn.Module, input_size: tuple[int, int]
) -> Callable[[str, Tensor], Tensor]:
    """``(layer, output) -> (B, C, h, w)`` through the ``camkit_to_spatial`` hook, for inputs
    of ``input_size``.

    The returned function raises :class:`~camkit.errors.LayerResolutionError` when no hook
    implementation reads the layer's layout, with the installed plugins' advice.
    """

    def convert(layer: str, output: Tensor) -> Tensor:
        result: Tensor | None = to_spatial(model, layer, output, input_size)
        if result is None:
            raise LayerResolutionError(
                f"layer {layer!r} returns shape {tuple(output.shape)}, which no "
                "camkit_to_spatial hook turns into a spatial map (B, C, H, W). "
                f"{advice(model, layer, 'layout')}"
            )
        return result

    return convert


@attrs.frozen
class ClassRequest:
    """Several classes per image from one forward: the given ``classes``, or the ``top``
    best-scoring ones.

    Attributes:
        classes: class indices to explain in every image, or ``None`` for the best ``top``.
        top: how many of the best classes (clamped to the number of classes); ignored when
            ``classes`` is given.
    """

    classes: tuple[int, ...] | None = None
    top: int = 5

    def __attrs_post_init__(self) -> None:
        if self.classes is None:
            top = self.top
            if isinstance(top, bool) or not isinstance(top, int) or top < 1:
                raise ConfigurationError(f"top must be an int >= 1, got {top!r}")
            return
        if not self.classes:
            raise TargetError("classes is empty; give at least one class index, or None")
        repeated = sorted({c for c in self.classes if list(self.classes).count(c) > 1})
        if repeated:
            raise TargetError(f"classes names {repeated} more than once; give each class once")

    def indices(self, logits: Tensor) -> Tensor:
        """The classes ``(B, k)`` of each image, best logit first.

        Raises:
            TargetError: a class is out of range or not an int.
        """
        num_classes = logits.shape[1]
        if self.classes is None:
            return logits.detach().topk(min(self.top, num_classes), dim=1).indices
        # validated like any target: ints within 0..K-1
        given = target_indices(logits[:1].expand(len(self.classes), -1), list(self.classes))
        chosen = logits.detach()[:, given]
        order = chosen.argsort(dim=1, descending=True, stable=True)
        ordered: Tensor = given[order]
        return ordered


def _target_sets(
    logits: Tensor, target: TargetSpec, classes: ClassRequest | None, checks: DeviceChecks
) -> list[TargetScore]:
    if classes is None:
        if callable(target):  # its output is checked by TargetScore when called
            return [TargetScore(None, _finite_scores(target, checks))]
        return [TargetScore(target_indices(logits, target))]
    matrix = classes.indices(logits)
    return [TargetScore(matrix[:, j].contiguous()) for j in range(matrix.shape[1])]


def run_pipeline(
    prepared: PreparedBatch,
    *,
    runner: Runner,
    method: CAMMethod,
    method_name: str,
    resolve_layers: Callable[[Tensor], Sequence[str]],
    renderer: Renderer,
    target: TargetSpec = None,
    classes: ClassRequest | None = None,
    fusion: str = "mean",
    class_names: Sequence[str] | None = None,
    aug_smooth: bool = False,
    eigen_smooth: bool = False,
) -> ExplanationBatch:
    """Explain a prepared batch.

    Args:
        resolve_layers: ``example inputs -> layer names``, called with the model in eval mode.
        target: what to explain when ``classes`` is ``None``
            (:data:`~camkit.targets.TargetSpec`).
        classes: explain several classes per image from one forward.
        fusion: how several layers' maps are combined (:data:`~camkit.pipeline.fusion.FUSIONS`).
        aug_smooth: average the maps of flipped and brightened copies
            (:mod:`camkit.pipeline.smooth`); the maps are then on the input grid.
        eigen_smooth: each layer's map is the first principal component of the method's
            weighted activations (:meth:`~camkit.CAMMethod.weighted_activations`).

    Raises:
        TargetError, LayerResolutionError, MethodError: as their names say.
        ConfigurationError: ``eigen_smooth`` with a method that does not support it.
    """
    model, inputs = runner.model, prepared.inputs
    batch = inputs.shape[0]
    if eigen_smooth:
        check_eigen_smooth(method)
    # the checks of values, read once at the end with the results' scalars
    checks = runner.checks = DeviceChecks(prepared.checks)
    try:
        with explanation_mode(model), _while_active(runner):
            layers = list(resolve_layers(inputs))
            # capture: one forward, every layer (every augmentation of the batch at once)
            forward = record_forward(
                model,
                augment(inputs) if aug_smooth else inputs,
                runner.output,
                layers,
                gradients=method.needs_gradients,
            )
            _check_logits(model, forward.logits, batch, checks)
            sets = _target_sets(forward.logits[:batch], target, classes, checks)
            versions = len(AUGMENTATIONS) if aug_smooth else 1
            per_set: list[Tensor] = []
            per_layer: list[list[Tensor]] = [[] for _ in layers]
            scores: list[Tensor] = []
            for score in sets:
                captures, natives = capture_layers(
                    runner,
                    forward,
                    layers,
                    score.repeated(versions, batch) if aug_smooth else score,
                    gradients=method.needs_gradients,
                    retain_graph=True,  # methods may ask for more (context.with_score)
                    create_graph=method.needs_higher_order,
                )
                # method: one context per layer, output checked in one place
                maps = [
                    _method_maps(
                        method,
                        _context(runner, method, forward, score, capture, layers, native),
                        eigen_smooth,
                        f"{method_name} at layer {layer!r}",
                        batch,
                        checks,
                    )
                    for capture, native, layer in zip(captures, natives, layers, strict=True)
                ]
                if aug_smooth:
                    fused, maps = smooth_maps(maps, prepared.input_size, fusion, batch)
                elif len(maps) == 1:
                    fused = maps[0]
                else:
                    fused = fuse_layers(maps, prepared.input_size, fusion)
                for store, found in zip(per_layer, maps, strict=True):
                    store.append(found)
                scores.append(captures[0].scores[:batch])
                per_set.append(fused)
            logits = forward.logits[:batch].detach()
        return _results(
            prepared,
            logits,
            sets,
            scores,
            per_set,
            dict(zip(layers, per_layer, strict=True)),
            method_name,
            renderer,
            class_names,
            checks,
        )
    except Exception:
        # the checks made before the failure come first, as if each had been read at once
        failure = checks.first_failure(stacklevel=4)
        if failure is not None:
            raise failure from None
        raise
    finally:
        runner.checks = None


def check_eigen_smooth(method: CAMMethod) -> None:
    """Raise unless ``eigen_smooth`` applies to ``method``.

    Raises:
        ConfigurationError: the method does not define ``weighted_activations``.
    """
    if not method.supports_eigen_smooth():
        raise ConfigurationError(
            f"eigen_smooth does not apply to {type(method).__name__}: it projects a method's "
            "weighted activations (B, C, h, w) on their first principal component, and this "
            "method does not define weighted_activations. Use it with a channel-weighting "
            "method (gradcam, gradcam++, ...), or leave eigen_smooth off"
        )


def _method_maps(
    method: CAMMethod,
    context: MethodContext,
    eigen_smooth: bool,
    where: str,
    batch: int,
    checks: DeviceChecks,
) -> Tensor:
    """The method's maps for one context, checked; with ``eigen_smooth``, the ReLU of the
    first principal component of its weighted activations. ``where`` names the method and
    the layer in the error of a non-finite map.

    The maps' layout is checked at once (:meth:`~camkit.CAMMethod.check_output_layout`), their
    values (finite, non-negative) with the call's other checks; a method that overrides
    :meth:`~camkit.CAMMethod.check_output` has it called at once instead."""
    label = type(method).__name__
    if eigen_smooth:
        raw = torch.relu(principal_projection(method.weighted_activations(context)))
        label += ".weighted_activations (eigen_smooth)"
    else:
        raw = method.compute(context)
        label += ".compute"
    if type(method).check_output is not CAMMethod.check_output:
        shaped = isinstance(raw, Tensor) and raw.ndim == 3 and raw.shape[0] == len(context)
        if shaped and raw.is_floating_point():  # other outputs: check_output's messages
            _check_maps(raw, f"{label} returned", where, batch)
        return method.check_output(raw, len(context))
    result = method.check_output_layout(raw, len(context))

    def failure() -> Exception:
        if not bool(torch.isfinite(result).all()):
            return _maps_error(result, f"{label} returned", where, batch)
        return output_values_error(type(method).__name__ + ".compute", result)

    checks.require(output_values_ok(result), failure)
    return result


def _not_finite(values: Tensor) -> list[int]:
    """The indices along the first dimension of the rows holding NaN or infinite values."""
    if values.numel() == 0:
        return []
    finite = torch.isfinite(values.detach()).reshape(values.shape[0], -1).all(dim=1)
    return [int(i) for i in torch.nonzero(~finite).flatten().tolist()]


def _check_logits(model: nn.Module, logits: Tensor, batch: int, checks: DeviceChecks) -> None:
    """Require the model's logits to be finite; the error names the images and the suspect
    weights (:func:`_logits_error`)."""
    values = logits.detach()
    checks.require(all_finite(values), lambda: _logits_error(model, values, batch))


def _logits_error(model: nn.Module, logits: Tensor, batch: int) -> ModelOutputError | None:
    """The error of logits holding NaN or infinite values, naming the images and suspect
    weights; ``None`` if they are finite."""
    images = sorted({i % batch for i in _not_finite(logits)})
    if not images:
        return None
    broken = [
        name
        for name, tensor in [*model.named_parameters(), *model.named_buffers()]
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())
    ]
    cause = (
        f"{len(broken)} of its parameters and buffers hold NaN or infinite values (first "
        f"{broken[0]!r}): the weights are broken (a diverged training run?); load good ones"
        if broken
        else "its weights are finite, so look for an overflow or a division by zero in its "
        "forward (a float16 model?)"
    )
    return ModelOutputError(
        f"the logits of {type(model).__name__} for image(s) {images} of the batch hold NaN or "
        f"infinite values although the inputs are finite: {cause}"
    )


def _finite_scores(
    target: Callable[[Tensor], Tensor], checks: DeviceChecks
) -> Callable[[Tensor], Tensor]:
    """``target`` with its scores required to be finite (the logits are required to be
    already, so this catches the callable's own NaN or infinity)."""

    def checked(logits: Tensor) -> Tensor:
        scores = target(logits)
        if isinstance(scores, Tensor) and scores.ndim == 1:
            values = scores.detach()

            def failure() -> Exception | None:
                bad = _not_finite(values[:, None])
                return (
                    TargetError(
                        f"the target's score for image(s) {bad} is NaN or infinite although "
                        "the logits are finite: check the callable target (a log of 0?)"
                    )
                    if bad
                    else None
                )

            checks.require(all_finite(values), failure)
        return scores

    return checked


def _check_maps(maps: Tensor, label: str, where: str, batch: int) -> None:
    """Raise unless every map is finite; ``label`` says what returned them, ``where`` names
    the method and layer, ``batch`` is the number of images (the maps of augmented copies
    follow them).

    Raises:
        MethodError: a map holds NaN or infinite values.
    """
    if _not_finite(maps):
        raise _maps_error(maps, label, where, batch)


def _maps_error(maps: Tensor, label: str, where: str, batch: int) -> MethodError:
    """The error of maps holding NaN or infinite values (see :func:`_check_maps`)."""
    bad = sorted({i % batch for i in _not_finite(maps)})
    return MethodError(
        f"{label} NaN or infinite values: the map of {where} for image(s) {bad}, although "
        "the model's inputs and logits are finite: the activations or gradients at the layer "
        "overflow, or the method divides by zero; try another layer or method, or the "
        "model in float32"
    )


@contextmanager
def _while_active(runner: Runner) -> Iterator[None]:
    """Contexts may run the model only while the model is held for this call."""
    runner.active = True
    try:
        yield
    finally:
        runner.release()


def _context(
    runner: Runner,
    method: CAMMethod,
    forward: Forward,
    score: TargetScore,
    capture: LayerCapture,
    layers: Sequence[str],
    native: Tensor | None,
) -> MethodContext:
    return MethodContext(
        runner,
        method,
        forward.inputs,
        forward.logits,
        score,
        capture,
        layers,
        forward,
        native if method.needs_higher_order else None,
    )


def _interleave(per_set: Sequence[Tensor]) -> Tensor:
    """``k`` tensors ``(B, ...)`` → ``(B·k, ...)``, image by image, set by set."""
    if len(per_set) == 1:
        return per_set[0]
    stacked = torch.stack(list(per_set), dim=1)
    return stacked.reshape(-1, *stacked.shape[2:])


def _results(
    prepared: PreparedBatch,
    logits: Tensor,
    sets: Sequence[TargetScore],
    scores: Sequence[Tensor],
    per_set: Sequence[Tensor],
    layer_maps: dict[str, list[Tensor]],
    method_name: str,
    renderer: Renderer,
    class_names: Sequence[str] | None,
    checks: DeviceChecks,
) -> ExplanationBatch:
    """Gather the maps (they stay on the device) and read every scalar, with the call's
    checks, in one transfer."""
    batch, count = logits.shape[0], len(sets)
    probabilities = torch.softmax(logits.float(), dim=1)
    confidence, predicted = probabilities.max(dim=1)
    columns = [predicted, confidence, *scores]
    if sets[0].indices is not None:
        columns += [s.indices for s in sets if s.indices is not None]
    host = checks.read(columns, stacklevel=5)  # warnings: the caller of explain_batch
    pred, conf = [int(v) for v in host[0]], host[1]
    score_rows = host[2 : 2 + count]
    index_rows = host[2 + count :] if sets[0].indices is not None else None
    rows = [b for b in range(batch) for _ in range(count)]
    return ExplanationBatch(
        prepared=prepared,
        rows=rows,
        maps=_interleave(per_set),
        layer_maps={name: _interleave(maps) for name, maps in layer_maps.items()},
        pred_class=[pred[b] for b in rows],
        confidence=[conf[b] for b in rows],
        targets=[
            None if index_rows is None else int(index_rows[j][b])
            for b in range(batch)
            for j in range(count)
        ],
        target_scores=[score_rows[j][b] for b in range(batch) for j in range(count)],
        method=method_name,
        renderer=renderer,
        class_names=class_names,
    )
