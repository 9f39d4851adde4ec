"""Layer resolvers: the :class:`LayerResolver` abstraction and the built-in resolvers."""

from camkit.layers.base import LayerResolver, get_layer, layer_name_of
from camkit.layers.structural import (
    TRANSFORMER_HINT,
    StructuralResolver,
    declared_layout,
    declares_channels_last,
    transformer_hint,
)
from camkit.layers.table import (
    BUILTIN_ARCHITECTURES,
    ArchitectureMapping,
    ArchitectureTableResolver,
    architecture_name,
)

__all__ = [
    "BUILTIN_ARCHITECTURES",
    "TRANSFORMER_HINT",
    "ArchitectureMapping",
    "ArchitectureTableResolver",
    "LayerResolver",
    "StructuralResolver",
    "architecture_name",
    "declared_layout",
    "declares_channels_last",
    "get_layer",
    "layer_name_of",
    "transformer_hint",
]
