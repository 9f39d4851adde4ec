"""Layer resolvers: the :class:`LayerResolver` abstraction and the built-in resolvers, and
the layout helpers :func:`declared_layout` and :func:`declares_channels_last`."""

from camkit.layers.base import LayerResolver, get_layer, layer_name_of, original_module
from camkit.layers.structural import StructuralResolver, declared_layout, declares_channels_last
from camkit.layers.table import (
    BUILTIN_ARCHITECTURES,
    ArchitectureMapping,
    ArchitectureTableResolver,
    architecture_name,
)

__all__ = [
    "BUILTIN_ARCHITECTURES",
    "ArchitectureMapping",
    "ArchitectureTableResolver",
    "LayerResolver",
    "StructuralResolver",
    "architecture_name",
    "declared_layout",
    "declares_channels_last",
    "get_layer",
    "layer_name_of",
    "original_module",
]
