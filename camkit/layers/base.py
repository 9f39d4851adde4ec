"""The :class:`LayerResolver` abstraction and helpers to address modules by dotted name."""

from __future__ import annotations

import difflib
from abc import ABC, abstractmethod
from typing import ClassVar

from torch import Tensor, nn

from camkit.errors import LayerNotFoundError

__all__ = ["LayerResolver", "get_layer", "layer_name_of"]


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
