"""The :class:`MethodContext`: everything a CAM method may read and do, the contract between
the pipeline and method authors.

A method reads the preprocessed inputs, the logits, the targets and their scores, the
capture of its layer (activations, and gradients when it declared
``needs_gradients``), the model (read only), and a score function. It may also run the
model again, when it declared ``extra_passes = True``:

- :meth:`MethodContext.score_inputs`: target scores of perturbed inputs (Score-CAM, SS-CAM,
  IS-CAM);
- :meth:`MethodContext.score_activations`: target scores with this layer's activations
  replaced (Ablation-CAM);
- :meth:`MethodContext.capture_inputs`: captures, with gradients, on other inputs (SmoothGrad,
  test-time augmentation);
- :meth:`MethodContext.full_gradients`: one pass with gradients down to the input and to
  chosen modules' outputs (FullGrad);

and, when it declared ``needs_higher_order = True``,
:meth:`MethodContext.hessian_vector_product` through the part after the layer (ShapleyCAM).

Every extra pass runs with the model in eval mode and leaves it exactly as found (training
flags, ``requires_grad``, parameter ``.grad``, hooks); scoring passes run under
``torch.no_grad``. Targets are those of the explanation: class indices stay the same classes
(the predicted class of the original input, when the target was ``None``), and a callable
target is called on the logits of each perturbed version of the batch, ``(B, K)`` at a time,
exactly as on the original batch.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

import attrs
import torch
from torch import Tensor, nn

from camkit.capture import Forward, layer_gradients, record_forward
from camkit.errors import (
    ConfigurationError,
    EmptyMapWarning,
    LayerResolutionError,
    MethodError,
    TargetError,
)
from camkit.methods.base import LayerCapture, at_least_float32
from camkit.targets import OutputSelector
from camkit.twin import channels_last_twin, fold_batch_norms

if TYPE_CHECKING:
    from camkit.methods.base import CAMMethod
    from camkit.pipeline.checks import DeviceChecks

__all__ = [
    "FullGradients",
    "MethodContext",
    "Perturbations",
    "TargetScore",
    "capture_layers",
]

Perturbations = Tensor | Callable[[int, int], Tensor]
"""``N`` versions of each image of the batch: a tensor ``(B, N, ...)``, or a function
``(start, stop) -> (B, stop - start, ...)`` that makes them chunk by chunk (with ``count=N``),
so that large sets never sit in memory at once. The function is called once per chunk, with
contiguous ranges in increasing order (``(0, m), (m, 2m), …``), so a method may draw random
noise in it in a reproducible order."""


@attrs.frozen(eq=False)
class TargetScore:
    """The score explained for each image: ``logits (B, K) -> scores (B,)``.

    Attributes:
        indices: the class index of each image ``(B,)`` (long, on the logits' device), or
            ``None`` for a callable target.
        function: the user's callable target, or ``None``.
    """

    indices: Tensor | None
    function: Callable[[Tensor], Tensor] | None = None

    @property
    def targets(self) -> list[int | None]:
        """The class of each image, ``None`` for a callable target."""
        if self.indices is None:
            raise MethodError("a callable target has no class indices")
        return [int(i) for i in self.indices.tolist()]

    def repeated(self, versions: int, batch: int) -> TargetScore:
        """The same targets for ``versions`` copies of a batch of ``batch`` images stacked
        along the batch dimension, version by version; a callable target is called on each
        copy's ``(B, K)`` logits, as on the original batch."""
        if self.indices is not None:
            return TargetScore(self.indices.repeat(versions))
        original = self

        def per_version(logits: Tensor) -> Tensor:
            return torch.cat([original(part) for part in torch.split(logits, batch)])

        return TargetScore(None, per_version)

    def __call__(self, logits: Tensor) -> Tensor:
        if self.function is not None:
            scores = self.function(logits)
            if not isinstance(scores, Tensor) or scores.shape != (logits.shape[0],):
                got = tuple(getattr(scores, "shape", ())) or type(scores).__name__
                raise TargetError(
                    f"a callable target must return a tensor of shape ({logits.shape[0]},), "
                    f"one score per image, got {got}"
                )
            return scores
        assert self.indices is not None
        return logits.gather(1, self.indices[:, None].to(logits.device))[:, 0]


@attrs.frozen(eq=False)
class FullGradients:
    """What :meth:`MethodContext.full_gradients` computed, for one batch.

    Attributes:
        input: the inputs ``(B, C, H, W)`` the model ran on.
        input_gradient: ``∂y/∂x``, same shape.
        outputs: for each requested module, its output and ``∂y/∂output`` (in the module's
            own layout).
    """

    input: Tensor
    input_gradient: Tensor
    outputs: Mapping[str, tuple[Tensor, Tensor]]


@attrs.define(eq=False)
class Runner:
    """How the pipeline runs the model for a method: shared by every context of a call.

    Attributes:
        model: the model, in eval mode while a method runs.
        output: the output selector, ``model output -> (B, K) logits``.
        to_spatial: ``(layer, output) -> (B, C, h, w)``, the layout conversion of the
            ``camkit_to_spatial`` hook, raising when no plugin reads the layout.
        batch_size: the default number of inputs per extra forward pass.
        active: whether the call is still running; the pipeline clears it when the model is
            released, and any pass asked for afterwards is refused.
        checks: the checks of values the call reads at its end, in one transfer
            (:class:`~camkit.pipeline.checks.DeviceChecks`); ``None``: checked at once.
        twin: the channels-last twin of the model that scoring passes use on the CPU
            (:mod:`camkit.twin`), made and checked by the first context that asks for it;
            ``None`` where there is none (also before). :meth:`release` drops it.
        twin_checked: whether the twin was made and checked (it stays ``None`` when it does
            not apply or failed its check).
    """

    model: nn.Module
    output: OutputSelector
    to_spatial: Callable[[str, Tensor], Tensor]
    batch_size: int = 64
    active: bool = True
    checks: DeviceChecks | None = None
    twin: nn.Module | None = attrs.field(default=None, repr=False)
    twin_checked: bool = False

    def release(self) -> None:
        """End the call: refuse further passes and drop the twin (its memory)."""
        self.active = False
        self.twin = None


def _check_batch_size(batch_size: int) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigurationError(f"batch_size must be an int >= 1, got {batch_size!r}")
    return batch_size


def capture_layers(
    runner: Runner,
    forward: Forward,
    layers: Sequence[str],
    score: TargetScore,
    *,
    gradients: bool,
    retain_graph: bool = False,
    create_graph: bool = False,
) -> tuple[list[LayerCapture], list[Tensor | None]]:
    """Turn a recorded forward into one :class:`LayerCapture` per layer for ``score``:
    gradients taken through the part after the layers only, both tensors made spatial by the
    ``camkit_to_spatial`` hook and upcast to at least ``float32``.

    Returns the captures and each layer's gradient in its own layout, still in the autograd
    graph when ``create_graph`` (``None`` without gradients).

    Raises:
        LayerResolutionError: a layer does not influence the score, its layout cannot be
            read, or its first dimension is not the batch.
    """
    with torch.set_grad_enabled(gradients):
        scores = score(forward.logits)
    found: list[Tensor | None] = [None] * len(layers)
    if gradients:
        found = list(
            layer_gradients(
                forward, scores, layers, retain_graph=retain_graph, create_graph=create_graph
            )
        )
    batch = forward.inputs.shape[0]
    captures = []
    for name, gradient in zip(layers, found, strict=True):
        activation = runner.to_spatial(name, forward.outputs[name].detach())
        if activation.shape[0] != batch:
            raise LayerResolutionError(
                f"layer {name!r} gives maps of shape {tuple(activation.shape)} for a batch of "
                f"{batch} images: its first dimension is not the batch (attention windows or "
                "heads, for instance). Choose a layer whose output has one map per image."
            )
        spatial_gradient = None
        if gradient is not None:
            spatial_gradient = runner.to_spatial(name, gradient.detach())
            _warn_if_empty(spatial_gradient, name, runner)
            (spatial_gradient,) = at_least_float32(spatial_gradient)
        (activation,) = at_least_float32(activation)
        captures.append(LayerCapture(activation, spatial_gradient, scores.detach(), name))
    return captures, found


def _warn_if_empty(gradients: Tensor, layer: str, runner: Runner) -> None:
    """Warn when some image's gradient is zero everywhere on the layer's map: at once, or
    with the call's other checks at its end (:attr:`Runner.checks`)."""
    empty = (gradients.flatten(1) == 0).all(dim=1).sum()
    total, model = gradients.shape[0], runner.model

    def message(count: int) -> str:
        from camkit.plugins.manager import advice  # the manager imports the methods

        return (
            f"the gradient of the target score is zero everywhere on the map of layer "
            f"{layer!r} for {count} of {total} images, so their explanations "
            "are empty. The score does not read this layer's spatial positions: choose an "
            f"earlier layer. {advice(model, layer, 'empty-map')}"
        )

    if runner.checks is not None:
        runner.checks.warn_if(empty, message, EmptyMapWarning)
    elif count := int(empty):
        warnings.warn(message(count), EmptyMapWarning, stacklevel=6)


class MethodContext:
    """What a :class:`~camkit.CAMMethod` may read and do for one batch at one layer.

    The pipeline builds one per layer (and per class, for
    :meth:`~camkit.Explainer.explain_classes`) and passes it to ``compute``. A context is
    only valid during that call.

    Reading:

    - :attr:`inputs`, :attr:`logits`, :attr:`targets`, :attr:`scores`, :attr:`score`;
    - :attr:`capture` (:attr:`activations`, :attr:`gradients`) of :attr:`layer`, and
      :attr:`layers`, every layer of the explanation;
    - :attr:`model`, to read (never modify) parameters such as a linear head's weights.

    Running the model again (methods with ``extra_passes = True``):
    :meth:`score_inputs`, :meth:`score_activations`, :meth:`capture_inputs`,
    :meth:`full_gradients`; with ``needs_higher_order = True``:
    :meth:`hessian_vector_product`.
    """

    def __init__(
        self,
        runner: Runner | None,
        method: CAMMethod | None,
        inputs: Tensor,
        logits: Tensor,
        score: TargetScore,
        capture: LayerCapture,
        layers: Sequence[str],
        forward: Forward | None = None,
        native_gradient: Tensor | None = None,
    ) -> None:
        self._runner = runner
        self._method = method
        self._inputs = inputs
        self._logits = logits.detach()
        self._score = score
        self._capture = capture
        self._layers = tuple(layers)
        self._forward = forward
        self._native_gradient = native_gradient
        self._shortcut: bool | None = None

    @classmethod
    def from_capture(cls, capture: LayerCapture, method: CAMMethod | None = None) -> MethodContext:
        """A context holding only ``capture``, to compute a map from tensors at hand (unit
        tests, research on saved activations): half-precision tensors are upcast to
        ``float32`` as in the pipeline; the inputs and logits are empty, and everything that
        runs the model raises :class:`~camkit.errors.MethodError`."""
        activations, gradients = capture.activations, capture.gradients
        (activations,) = at_least_float32(activations)
        if gradients is not None:
            (gradients,) = at_least_float32(gradients)
        upcast = LayerCapture(activations, gradients, capture.scores, capture.layer)
        batch = activations.shape[0]
        empty = activations.new_zeros(batch, 0)
        return cls(
            None,
            method,
            activations.new_zeros(batch, 0, 0, 0),
            empty,
            TargetScore(None),
            upcast,
            (capture.layer,),
        )

    @property
    def _label(self) -> str:
        return type(self._method).__name__ if self._method is not None else "the method"

    @property
    def _run(self) -> Runner:
        if self._runner is None:
            raise MethodError(
                "this context was made from a capture alone (MethodContext.from_capture); "
                "it cannot run the model. Run the method through an Explainer."
            )
        if not self._runner.active:
            raise MethodError(
                f"{self._label} ran the model through its context after compute returned (an "
                "iterator of capture_inputs kept for later?); a context is valid only during "
                "compute: consume its passes there"
            )
        return self._runner

    def __len__(self) -> int:
        """The number of images ``B``."""
        return int(self._inputs.shape[0])

    # ---- reading -----------------------------------------------------------------------

    @property
    def model(self) -> nn.Module:
        """The model, in eval mode. Read it (a head's weights, a module's bias); never
        modify it or register hooks on it: use the context's passes instead."""
        return self._run.model

    @property
    def inputs(self) -> Tensor:
        """The preprocessed inputs ``(B, C, H, W)`` on the model's device, in its dtype."""
        return self._inputs

    @property
    def input_size(self) -> tuple[int, int]:
        """``(H, W)`` of the model input."""
        return int(self._inputs.shape[-2]), int(self._inputs.shape[-1])

    @property
    def logits(self) -> Tensor:
        """The class scores ``(B, K)`` of :attr:`inputs`, detached."""
        return self._logits

    @property
    def targets(self) -> list[int | None]:
        """The class explained for each image; ``None`` for a callable target."""
        if self._score.indices is None:
            return [None] * self._inputs.shape[0]
        return self._score.targets

    @property
    def score(self) -> TargetScore:
        """The score function: ``logits (B, K) -> target scores (B,)``, differentiable."""
        return self._score

    @property
    def scores(self) -> Tensor:
        """The target score of each image ``(B,)``, detached."""
        return self._capture.scores

    @property
    def layer(self) -> str:
        """Dotted name of the layer this context is for."""
        return self._capture.layer

    @property
    def layers(self) -> tuple[str, ...]:
        """Every layer of the explanation, in the order given."""
        return self._layers

    @property
    def capture(self) -> LayerCapture:
        """What was recorded at :attr:`layer`."""
        return self._capture

    @property
    def activations(self) -> Tensor:
        """The layer's activations ``(B, C, h, w)``, detached, at least ``float32``."""
        return self._capture.activations

    @property
    def gradients(self) -> Tensor:
        """``∂y/∂A`` ``(B, C, h, w)``, detached, at least ``float32``.

        Raises:
            MethodError: the method declared ``needs_gradients = False``.
        """
        if self._capture.gradients is None:
            raise MethodError(
                f"{self._label} declared needs_gradients = False but reads "
                "context.gradients; set needs_gradients = True"
            )
        return self._capture.gradients

    @property
    def batch_size(self) -> int:
        """The default number of inputs per extra forward pass."""
        return self._run.batch_size

    # ---- extra passes ------------------------------------------------------------------

    def _require(self, what: str) -> Runner:
        runner = self._run
        if self._method is None or not self._method.extra_passes:
            raise MethodError(
                f"{self._label} calls context.{what} but does not declare "
                "extra_passes = True; declare it so that callers know the method runs the "
                "model again"
            )
        return runner

    def _chunks(
        self, versions: Perturbations, count: int | None, batch_size: int | None
    ) -> Iterator[tuple[int, Tensor]]:
        """``(start, chunk)`` with chunks ``(m·B, ...)`` in version-major order."""
        batch = self._inputs.shape[0]
        if isinstance(versions, Tensor):
            if versions.ndim < 2 or versions.shape[0] != batch:
                raise MethodError(
                    f"perturbed versions must have shape (B, N, ...) with B = {batch}, got "
                    f"{tuple(versions.shape)}"
                )
            total = int(versions.shape[1])
            tensor = versions

            def sliced(start: int, stop: int) -> Tensor:
                return tensor[:, start:stop]

            make: Callable[[int, int], Tensor] = sliced
        else:
            if count is None or count < 0:
                raise MethodError("a function of perturbed versions needs count=N")
            total, make = int(count), versions
        per_chunk = max(1, _check_batch_size(batch_size or self._run.batch_size) // batch)
        for start in range(0, total, per_chunk):
            stop = min(start + per_chunk, total)
            chunk = make(start, stop)
            if chunk.ndim < 2 or tuple(chunk.shape[:2]) != (batch, stop - start):
                raise MethodError(
                    f"perturbed versions {start}..{stop} must have shape "
                    f"({batch}, {stop - start}, ...), got {tuple(chunk.shape)}"
                )
            yield start, chunk.transpose(0, 1).reshape(-1, *chunk.shape[2:])

    def _scores_of(self, logits: Tensor, versions: int) -> Tensor:
        """Scores ``(B, m)`` from the logits ``(m·B, K)`` of ``m`` versions of the batch."""
        batch = self._inputs.shape[0]
        grouped = logits.reshape(versions, batch, -1)
        if self._score.indices is not None:
            index = self._score.indices.to(logits.device).view(1, batch, 1)
            return grouped.gather(2, index.expand(versions, batch, 1))[..., 0].T
        return torch.stack([self._score(grouped[v]) for v in range(versions)], dim=1)

    @torch.no_grad()
    def score_inputs(
        self,
        versions: Perturbations,
        *,
        count: int | None = None,
        batch_size: int | None = None,
        channels_last: bool = True,
    ) -> Tensor:
        """Target scores of ``N`` perturbed versions of each input.

        Args:
            versions: ``(B, N, C, H, W)`` inputs, or a function ``(start, stop) -> (B,
                stop - start, C, H, W)`` with ``count=N`` (see :data:`Perturbations`).
            count: ``N`` when ``versions`` is a function.
            batch_size: the most inputs per forward pass (default :attr:`batch_size`).
            channels_last: on the CPU, for ``float32`` image batches, score with a
                channels-last twin of the model, its batch norms folded into their
                convolutions (:mod:`camkit.twin`: forwards 1.25× to 1.86× faster on most
                CNNs, same values up to float rounding, a copy of the model's 4-D weights in
                memory during the call). The twin is made once per call and
                checked against the model's own logits on :attr:`inputs`; where it cannot be
                made or differs, the model scores. ``False``: always the model itself.

        Returns:
            ``(B, N)`` scores, in the logits' dtype, on the model's device.
        """
        runner = self._require("score_inputs")
        model = self._scoring_twin(runner) if channels_last else None
        results = []
        for _, chunk in self._chunks(versions, count, batch_size):
            chunk = chunk.to(self._inputs.device, self._inputs.dtype)
            if model is None:
                logits = runner.output(runner.model(chunk))
            else:
                logits = runner.output(model(chunk.contiguous(memory_format=torch.channels_last)))
            results.append(self._scores_of(logits, chunk.shape[0] // self._inputs.shape[0]))
        return torch.cat(results, dim=1) if results else self._logits.new_zeros(len(self), 0)

    def _scoring_twin(self, runner: Runner) -> nn.Module | None:
        """The call's channels-last twin of the model for scoring passes, or ``None``."""
        inputs = self._inputs
        if inputs.device.type != "cpu" or inputs.ndim != 4 or inputs.dtype != torch.float32:
            return None
        if not runner.twin_checked:
            runner.twin_checked = True
            runner.twin = self._checked_twin(runner)
        return runner.twin

    def _checked_twin(self, runner: Runner) -> nn.Module | None:
        """A twin that gives this context's logits on its inputs, or ``None``."""
        expected = self._logits
        inputs = self._inputs.contiguous(memory_format=torch.channels_last)
        try:
            twin = channels_last_twin(runner.model)
            if twin is None:
                return None
            fold_batch_norms(twin, inputs[:1])  # finds the pairs: one image will do
            logits = runner.output(twin(inputs))
        except Exception:  # a module that refuses to be copied or channels-last inputs
            return None
        if not isinstance(logits, Tensor) or logits.shape != expected.shape:
            return None
        scale = float(expected.abs().amax()) if expected.numel() else 0.0
        tolerance = 1e-5 * (1.0 + scale) if math.isfinite(scale) else 1e-5
        same = torch.allclose(
            logits.to(expected.dtype), expected, rtol=1e-4, atol=tolerance, equal_nan=True
        )
        return twin if same else None

    @torch.no_grad()
    def score_activations(
        self, versions: Perturbations, *, count: int | None = None, batch_size: int | None = None
    ) -> Tensor:
        """Target scores with :attr:`layer`'s output replaced by ``N`` versions of it.

        The part of the model before the layer runs once per chunk on the original inputs,
        and only the part after it on the replaced activations, when the model allows it
        (checked once per context against the original logits); otherwise the whole model
        runs on repeated inputs.

        Args:
            versions: ``(B, N, C, h, w)`` replacements of the layer's output, or a function
                ``(start, stop) -> (B, stop - start, C, h, w)`` with ``count=N``.

        Returns:
            ``(B, N)`` scores on the model's device.

        Raises:
            MethodError: the layer's output is not a channels-first map (it is reshaped by a
                ``camkit_to_spatial`` hook), so it cannot be replaced in its own layout.
        """
        self._require("score_activations")
        forward = self._forward
        if forward is None or tuple(forward.outputs[self.layer].shape) != tuple(
            self.activations.shape
        ):
            raise MethodError(
                f"layer {self.layer!r} does not output a channels-first map (B, C, h, w), so "
                "its activations cannot be replaced; choose a convolutional layer"
            )
        batch = len(self)
        dtype = forward.outputs[self.layer].dtype
        shortcut = self._shortcut_works(dtype)
        results = []
        for _, chunk in self._chunks(versions, count, batch_size):
            chunk = chunk.to(self._inputs.device, dtype)
            versions_in_chunk = chunk.shape[0] // batch
            inputs = (
                self._inputs
                if shortcut
                else self._inputs.repeat(versions_in_chunk, *([1] * (self._inputs.ndim - 1)))
            )
            logits = self._replaced_logits(inputs, chunk)
            results.append(self._scores_of(logits, versions_in_chunk))
        return torch.cat(results, dim=1) if results else self._logits.new_zeros(batch, 0)

    def _replaced_logits(self, inputs: Tensor, activations: Tensor) -> Tensor:
        forward = record_forward(
            self._run.model,
            inputs,
            self._run.output,
            replace={self.layer: lambda _out: activations},
        )
        return forward.logits

    def _shortcut_works(self, dtype: torch.dtype) -> bool:
        """Whether the part after the layer can run on more rows than the part before it:
        the original activations, repeated twice, must give the original logits twice."""
        if self._shortcut is not None:
            return self._shortcut
        assert self._forward is not None
        original = self._forward.outputs[self.layer].detach().to(dtype)
        twice = torch.cat([original, original])
        try:
            logits = self._replaced_logits(self._inputs, twice)
            expected = torch.cat([self._logits, self._logits]).to(logits.dtype)
            works = logits.shape == expected.shape and bool(
                torch.allclose(logits, expected, rtol=1e-4, atol=1e-5)
            )
        except (RuntimeError, ValueError, IndexError):
            works = False
        self._shortcut = works
        return works

    def capture_inputs(
        self,
        versions: Perturbations,
        *,
        count: int | None = None,
        gradients: bool = True,
        batch_size: int | None = None,
    ) -> Iterator[LayerCapture]:
        """Captures of :attr:`layer` on ``N`` other versions of the inputs, for the same
        targets: one :class:`LayerCapture` ``(B, C, h, w)`` per version, in order. Gradients
        are taken through the part after the layer only, several versions per pass.

        Args:
            versions: ``(B, N, C, H, W)``, or a function with ``count=N``.
            gradients: compute ``∂y/∂A`` (else ``LayerCapture.gradients`` is ``None``).
        """
        runner = self._require("capture_inputs")  # checked now, not on first iteration
        chunks = self._chunks(versions, count, batch_size)
        return self._captures(runner, chunks, gradients)

    def _captures(
        self, runner: Runner, chunks: Iterator[tuple[int, Tensor]], gradients: bool
    ) -> Iterator[LayerCapture]:
        batch = len(self)
        for _, chunk in chunks:
            runner = self._run  # refuses once the explanation has ended
            chunk = chunk.to(self._inputs.device, self._inputs.dtype)
            versions_in_chunk = chunk.shape[0] // batch
            forward = record_forward(
                runner.model, chunk, runner.output, [self.layer], gradients=gradients
            )
            score = self._repeated_score(versions_in_chunk)
            (capture,), _ = capture_layers(
                runner, forward, [self.layer], score, gradients=gradients
            )
            for v in range(versions_in_chunk):
                rows = slice(v * batch, (v + 1) * batch)
                yield LayerCapture(
                    capture.activations[rows],
                    None if capture.gradients is None else capture.gradients[rows],
                    capture.scores[rows],
                    self.layer,
                )

    def _repeated_score(self, versions: int) -> TargetScore:
        """The target score of ``versions`` stacked copies of the batch."""
        return self._score.repeated(versions, len(self))

    def with_inputs(self, inputs: Tensor) -> MethodContext:
        """A context like this one on other inputs ``(B, C, H, W)`` (an augmented batch),
        for the same targets, with its own forward and capture of :attr:`layer`."""
        runner = self._require("with_inputs")
        assert self._method is not None  # checked by _require
        inputs = inputs.to(self._inputs.device, self._inputs.dtype)
        needs = self._method.needs_gradients
        higher = self._method.needs_higher_order
        forward = record_forward(runner.model, inputs, runner.output, [self.layer], gradients=needs)
        (capture,), (native,) = capture_layers(
            runner, forward, [self.layer], self._score, gradients=needs, create_graph=higher
        )
        return MethodContext(
            runner,
            self._method,
            inputs,
            forward.logits,
            self._score,
            capture,
            self._layers,
            forward,
            native if higher else None,
        )

    def with_score(self, score: Callable[[Tensor], Tensor]) -> MethodContext:
        """A context like this one for another score of the same forward: ``score`` maps the
        logits ``(B, K)`` to one value per image ``(B,)`` (differentiable; a contrast between
        classes, for instance). Its capture holds the same activations and the gradients of
        ``score`` at :attr:`layer`, taken through the part of the model after the layer only,
        by one more backward on the graph of the explanation's forward; no forward is run.

        Raises:
            MethodError: the method declared ``needs_gradients = False`` (its forward kept no
                graph).
            TargetError: ``score`` does not return ``(B,)``.
        """
        runner = self._run  # refuses once the explanation has ended
        forward = self._forward
        if forward is None or self._capture.gradients is None or self._method is None:
            raise MethodError(
                f"{self._label} calls context.with_score but declared needs_gradients = False: "
                "set needs_gradients = True so that the forward keeps the graph after the layer"
            )
        target = TargetScore(None, score)
        (capture,), (native,) = capture_layers(
            runner,
            forward,
            [self.layer],
            target,
            gradients=True,
            retain_graph=True,
            create_graph=self._method.needs_higher_order,
        )
        return MethodContext(
            self._runner,
            self._method,
            self._inputs,
            self._logits,
            target,
            capture,
            self._layers,
            forward,
            native if self._method.needs_higher_order else None,
        )

    def full_gradients(self, modules: Sequence[str] = ()) -> FullGradients:
        """One forward and backward pass with gradients down to the input and to the
        outputs of ``modules`` (dotted names). Parameters get no ``.grad``.

        Returns:
            :class:`FullGradients` for :attr:`inputs` and the target scores.
        """
        runner = self._require("full_gradients")
        names = list(dict.fromkeys(modules))
        forward = record_forward(
            runner.model, self._inputs, runner.output, names, input_gradients=True
        )
        tensors = [forward.inputs, *(forward.outputs[name] for name in names)]
        with torch.enable_grad():
            scores = self._score(forward.logits)
            found = torch.autograd.grad(scores.sum(), tensors, allow_unused=True)
        gradients = [
            torch.zeros_like(t) if g is None else g.detach()
            for t, g in zip(tensors, found, strict=True)
        ]
        outputs = {
            name: (forward.outputs[name].detach(), gradient)
            for name, gradient in zip(names, gradients[1:], strict=True)
        }
        return FullGradients(forward.inputs.detach(), gradients[0], outputs)

    def hessian_vector_product(self, vector: Tensor) -> Tensor:
        """``H·v`` at :attr:`layer`: ``∂(∂y/∂A · v)/∂A`` for each image, through the part of
        the model after the layer, with ``v`` shaped like :attr:`activations`.

        Raises:
            MethodError: the method did not declare ``needs_higher_order = True``.
        """
        runner = self._run
        if self._method is None or not self._method.needs_higher_order:
            raise MethodError(
                f"{self._label} calls context.hessian_vector_product but does "
                "not declare needs_higher_order = True"
            )
        assert self._forward is not None and self._native_gradient is not None
        native = self._forward.outputs[self.layer]
        with torch.enable_grad():
            spatial = runner.to_spatial(self.layer, self._native_gradient)
            product = (spatial * vector.to(spatial.dtype)).sum()
            result = None
            if product.requires_grad:  # else the gradient does not depend on A: H·v = 0
                (result,) = torch.autograd.grad(
                    product, native, retain_graph=True, allow_unused=True
                )
        if result is None:
            return torch.zeros_like(self.activations)
        (spatial_result,) = at_least_float32(runner.to_spatial(self.layer, result.detach()))
        return spatial_result
