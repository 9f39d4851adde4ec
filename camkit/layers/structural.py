"""Structural fallback: find the last spatial map that feeds the classifier."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from camkit.errors import LayerResolutionError
from camkit.layers.base import LayerResolver

__all__ = ["StructuralResolver"]

#: Module types whose output is never a useful target: it only pools, drops or passes
#: through what another module produced. Matched by class name so that timm's
#: ``SelectAdaptivePool2d`` and similar wrappers are covered too.
_PASS_THROUGH_MARKERS = ("Pool", "Dropout", "Identity", "Flatten", "DropPath")


def _is_pass_through(module: nn.Module) -> bool:
    return any(marker in type(module).__name__ for marker in _PASS_THROUGH_MARKERS)


def _is_spatial(value: Any) -> bool:
    return isinstance(value, Tensor) and value.ndim == 4 and value.shape[-1] * value.shape[-2] > 1


class StructuralResolver(LayerResolver):
    """Picks the target layer of any CNN from one dry forward pass.

    Every module's output is recorded in the order the calls end. The result is the last
    module whose output is a spatial map ``(B, C, H, W)`` with ``H·W > 1`` and was not merely
    produced by a pooling, dropout or identity module (so torchvision VGG's 7×7 adaptive
    ``avgpool`` or a container that returns a pooling output is never picked). A module called
    several times counts by its last call. Among modules returning the very same tensor
    (a block and its last activation), the outermost one — whose call ends last — wins.
    """

    name = "structural"

    #: Number of token-sequence outputs ``(B, N, C)`` after the last spatial map above which
    #: the model is taken for a transformer.
    token_outputs_threshold = 3

    def resolve(self, model: nn.Module, example: Tensor | None) -> str | None:
        if example is None:
            return None
        names = {id(module): name for name, module in model.named_modules()}
        producer: dict[int, nn.Module] = {}
        keep_alive: list[Tensor] = []
        calls: list[tuple[str, bool, bool]] = []  # (name, candidate, token output)

        def record(module: nn.Module, args: Any, output: Any) -> None:
            name = names.get(id(module))
            if name is None or name == "":
                return
            origin: nn.Module | None = None
            if isinstance(output, Tensor):
                keep_alive.append(output)
                if not any(output is arg for arg in args):
                    producer.setdefault(id(output), module)
                origin = producer.get(id(output))
            candidate = (
                _is_spatial(output)
                and not _is_pass_through(module)
                and (origin is None or not _is_pass_through(origin))
            )
            tokens = isinstance(output, Tensor) and output.ndim == 3
            calls.append((name, candidate, tokens))

        handles = [m.register_forward_hook(record) for m in model.modules() if m is not model]
        try:
            with torch.no_grad():
                model(example[:1])
        finally:
            for handle in handles:
                handle.remove()
            keep_alive.clear()

        last = max((i for i, (_, cand, _) in enumerate(calls) if cand), default=None)
        if last is None:
            return None
        tokens_after = sum(tok for _, _, tok in calls[last + 1 :])
        if tokens_after >= self.token_outputs_threshold:
            raise LayerResolutionError(
                f"{type(model).__name__} looks like a vision transformer: its last layers "
                "produce token sequences (B, N, C), not spatial maps. ViT, DeiT and Swin models "
                "need the camkit-vit plugin package (camkit's plugins/camkit-vit), or pass "
                "layer= and register a camkit_to_spatial hook that reshapes its output."
            )
        return calls[last][0]
