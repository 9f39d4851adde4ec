"""Running the model once and recording layers: the pipeline's capture step.

The forward pass runs under ``torch.no_grad()`` up to the first recorded layer. A forward hook
there replaces the layer's output by a fresh leaf tensor that requires grad and switches grad
mode on for the rest of the forward, so autograd records only what follows the layer
(usually a pooling and a linear head). Later recorded layers keep their outputs in that
graph, so the gradient of an earlier layer flows through the later ones.
``torch.autograd.grad`` then computes ``∂score/∂A`` at the recorded layers and nothing else:
no parameter ``.grad`` is written and nothing before the first layer is kept for backward.

Every hook returns a copy of what it recorded, so in-place operations later in the model
(``ReLU(inplace=True)``) never modify a recorded tensor. Hooks react only to the thread that
installed them, and :func:`explanation_mode` serialises explanations of one model, so
concurrent calls on one model give the sequential results.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import attrs
import torch
from torch import Tensor, nn

from camkit.errors import LayerResolutionError
from camkit.targets import OutputSelector

__all__ = [
    "Forward",
    "explanation_mode",
    "layer_gradients",
    "record_forward",
]

_locks: weakref.WeakKeyDictionary[nn.Module, threading.RLock] = weakref.WeakKeyDictionary()
_locks_guard = threading.Lock()


def _model_lock(model: nn.Module) -> threading.RLock:
    with _locks_guard:
        lock = _locks.get(model)
        if lock is None:
            lock = _locks[model] = threading.RLock()
        return lock


def _modules_of(model: nn.Module) -> list[nn.Module]:
    """Every module of ``model``, itself included, each once: ``model.modules()`` without
    its dotted names and nested generators (the walk runs on every call; this is two to
    three times faster)."""
    found: list[nn.Module] = []
    seen: set[int] = set()
    stack = [model]
    while stack:
        module = stack.pop()
        if id(module) not in seen:
            seen.add(id(module))
            found.append(module)
            stack.extend(child for child in module._modules.values() if child is not None)
    return found


@contextmanager
def explanation_mode(model: nn.Module) -> Iterator[None]:
    """Hold ``model`` for one explanation: every module in eval mode, each module's own
    ``training`` flag restored afterwards, inference mode left and the caller's grad mode
    restored, whatever happens inside.

    Explanations of one model are serialised: a second thread entering this context for the
    same model waits until the first leaves (the same thread may nest it).
    """
    with _model_lock(model):
        flags = [(module, module.training) for module in _modules_of(model)]
        grad_enabled = torch.is_grad_enabled()
        try:
            with torch.inference_mode(False):
                # only the flags that change are set: nn.Module.__setattr__ is slow, and a
                # model in eval mode (the usual case) then costs one walk per call
                for module, flag in flags:
                    if flag:
                        module.training = False
                yield
        finally:
            for module, flag in flags:
                if module.training != flag:
                    module.training = flag
            torch.set_grad_enabled(grad_enabled)


@attrs.frozen(eq=False)
class Forward:
    """What one recorded forward pass produced.

    Attributes:
        logits: the class scores ``(B, K)`` the output selector read; part of the autograd
            graph when the forward tracked gradients.
        inputs: the inputs the model ran on (the leaf that requires grad for
            ``input_gradients``).
        outputs: each recorded layer's output of its last call, in the layer's own layout;
            in the graph when gradients are tracked (a leaf for the first layer reached).
        calls: how many times each recorded layer was called.
    """

    logits: Tensor
    inputs: Tensor
    outputs: Mapping[str, Tensor]
    calls: Mapping[str, int]


def record_forward(
    model: nn.Module,
    inputs: Tensor,
    output: OutputSelector,
    layers: Sequence[str] = (),
    *,
    gradients: bool = False,
    input_gradients: bool = False,
    replace: Mapping[str, Callable[[Tensor], Tensor]] | None = None,
) -> Forward:
    """Run ``model`` on ``inputs`` once, recording the outputs of ``layers``.

    Must be called inside :func:`explanation_mode`; grad mode is left disabled afterwards.

    Args:
        output: ``model output -> (B, K) logits``.
        layers: dotted names of the layers to record.
        gradients: track gradients from the first recorded layer on (the leaf trick above).
        input_gradients: track gradients from the input on: ``inputs`` is used as a leaf
            that requires grad, and every recorded output stays in the graph (full-gradient
            methods).
        replace: ``{layer: function}``; the layer's output is replaced by
            ``function(output)`` (nothing recorded for it).

    Raises:
        LayerResolutionError: a recorded layer returned something other than a tensor, or
            was never called.
    """
    thread = threading.get_ident()
    tracking = gradients or input_gradients
    outputs: dict[str, Tensor] = {}
    calls = dict.fromkeys(layers, 0)
    replacements = dict(replace or {})

    def make_hook(name: str) -> Callable[[nn.Module, Any, Any], Any]:
        def hook(_module: nn.Module, _args: Any, out: Any) -> Any:
            if threading.get_ident() != thread:
                return None  # another thread's forward of a shared model
            if name in replacements:
                return replacements[name](out)
            if not isinstance(out, Tensor):
                raise LayerResolutionError(
                    f"layer {name!r} returns {type(out).__name__}, not a tensor; choose a "
                    "layer whose output is a single (B, C, H, W) tensor"
                )
            calls[name] += 1
            if not tracking or (input_gradients and out.requires_grad):
                recorded = out if tracking else out.detach()
            elif out.requires_grad:
                recorded = out  # after an earlier recorded layer: stays in its graph
            else:
                recorded = out.detach().requires_grad_(True)
                torch.set_grad_enabled(True)
            outputs[name] = recorded
            return recorded.clone()  # later in-place ops must not reach the recorded tensor

        return hook

    names = list(dict.fromkeys([*layers, *replacements]))
    handles = [model.get_submodule(name).register_forward_hook(make_hook(name)) for name in names]
    try:
        torch.set_grad_enabled(input_gradients)
        if input_gradients:
            inputs = inputs.detach().requires_grad_(True)
        logits = output(model(inputs))
    finally:
        for handle in handles:
            handle.remove()
        torch.set_grad_enabled(False)
    missing = [name for name in layers if calls[name] == 0]
    if missing:
        raise LayerResolutionError(
            f"layer {missing[0]!r} was not called during the forward pass; choose a layer on "
            "the path from the input to the class scores"
        )
    return Forward(logits, inputs, outputs, calls)


def layer_gradients(
    forward: Forward,
    scores: Tensor,
    layers: Sequence[str],
    *,
    retain_graph: bool = False,
    create_graph: bool = False,
) -> list[Tensor]:
    """``∂(Σ scores)/∂output`` for each recorded layer, in the layers' own layout.

    Each image's score depends only on its own row, so the gradient of the sum gives every
    image its own gradient in one backward pass through the part after the layers.

    Raises:
        LayerResolutionError: the scores do not depend on a layer.
    """
    tensors = [forward.outputs[name] for name in layers]
    found: tuple[Tensor | None, ...] = (None,) * len(tensors)
    if scores.requires_grad:
        with torch.enable_grad():
            found = torch.autograd.grad(
                scores.sum(),
                tensors,
                retain_graph=retain_graph or create_graph,
                create_graph=create_graph,
                allow_unused=True,
            )
    result = []
    for name, gradient in zip(layers, found, strict=True):
        if gradient is None:
            count = forward.calls.get(name, 1)
            which = f"the last of the {count} calls of layer" if count > 1 else "layer"
            raise LayerResolutionError(
                f"the target score does not depend on {which} {name!r}; choose a layer on "
                "the path from the input to the class scores"
            )
        result.append(gradient)
    return result
