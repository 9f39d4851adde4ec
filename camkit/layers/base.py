"""The :class:`LayerResolver` abstraction and helpers to address modules by dotted name."""

from __future__ import annotations

import difflib
import sys
from abc import ABC, abstractmethod
from typing import ClassVar

from torch import Tensor, nn

from camkit.errors import LayerNotFoundError

__all__ = ["LayerResolver", "get_layer", "layer_name_of", "original_module"]


class LayerResolver(ABC):
    """Finds the target layer of a model.

    Resolvers are asked in order (plugins first, then the built-in architecture table, then
    the structural fallback); the first that returns a name wins. Return ``None`` when the
    resolver does not know the model, so that the next one is asked.

    Subclasses set :attr:`name` (shown by :func:`camkit.list_resolvers`) and implement
    :meth:`resolve`.
    """

    name: ClassVar[str] = ""
    """Name shown in registry listings."""

    @abstractmethod
    def resolve(self, model: nn.Module, example: Tensor | None) -> str | None:
        """Return the dotted name of the target layer, or ``None`` to pass.

        Args:
            model: the model, already in eval mode.
            example: a preprocessed input batch ``(B, C, H, W)`` on the model's device that
                a resolver may run through the model (under ``torch.no_grad``), or ``None``.
        """

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def get_layer(model: nn.Module, name: str) -> nn.Module:
    """Return the submodule ``name`` (dotted path, ``""`` for the model itself).

    Raises:
        LayerNotFoundError: no such submodule; the message lists the closest names.
    """
    modules = dict(model.named_modules())
    if name in modules:
        found: nn.Module = modules[name]
        return found
    close = difflib.get_close_matches(name, [n for n in modules if n], n=5, cutoff=0.4)
    hint = (
        f"closest existing names: {', '.join(repr(c) for c in close)}"
        if close
        else "list the model's layers with [n for n, _ in model.named_modules()]"
    )
    raise LayerNotFoundError(
        f"layer {name!r} not found in {type(model).__name__}; {hint}. "
        "Pass the layer as a dotted path (layer= in Python, --layer on the command line, where "
        "`camkit layers` lists the candidates) or, in Python, as the nn.Module itself."
    )


def layer_name_of(model: nn.Module, module: nn.Module) -> str:
    """Return the dotted name of ``module`` inside ``model``.

    Raises:
        LayerNotFoundError: ``module`` is not a submodule of ``model``.
    """
    for name, candidate in model.named_modules(remove_duplicate=False):
        if candidate is module:
            return str(name)
    raise LayerNotFoundError(
        f"the module given as layer ({type(module).__name__}) is not part of "
        f"{type(model).__name__}; pass a module taken from this model (for example "
        "model.layer4) or its dotted name"
    )


def original_module(model: nn.Module) -> nn.Module:
    """The module that a model returned by ``torch.compile`` wraps (``compiled._orig_mod``),
    else ``model``.

    ``torch.compile`` returns a wrapper whose submodules are the original module's, under the
    prefix ``_orig_mod.``. camkit explains the original module: its layer names are the
    model's own (``"layer4"``, not ``"_orig_mod.layer4"``), the dry forward of the structural
    resolver does not go through TorchDynamo (whose tracing of camkit's hooks fails), and
    camkit's hooks and ``torch.autograd.grad`` calls do not hit compiled graphs (which break
    at the hooks, or refuse a second backward through donated buffers). The parameters are
    the same, so the maps are those of the compiled model. Nested wrappers are unwrapped.
    """
    eval_frame = sys.modules.get("torch._dynamo.eval_frame")  # loaded once torch.compile ran
    compiled = getattr(eval_frame, "OptimizedModule", None)
    while compiled is not None and isinstance(model, compiled):
        inner = getattr(model, "_orig_mod", None)
        if not isinstance(inner, nn.Module):
            break
        model = inner
    return model
