"""The hook implementations camkit loads through the ``camkit`` entry point ``vit``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from camkit import LayerResolver, hookimpl
from camkit.errors import LayerResolutionError
from torch import Tensor, nn

from camkit_vit.layout import (
    channels_last_to_first,
    find_owner,
    inside_attention,
    is_token_transformer,
    map_layout,
    token_grid,
    tokens_to_map,
)
from camkit_vit.resolvers import ChannelsLastStageResolver, TokenBlockResolver


@hookimpl
def camkit_register_resolvers() -> Sequence[LayerResolver]:
    return [TokenBlockResolver(), ChannelsLastStageResolver()]


def refuse_attention_internals(model: nn.Module, layer: str, output: Tensor) -> None:
    """Raise for 4-D outputs that are not feature maps: inside an attention module, or inside
    a token transformer's blocks (where only token sequences are features)."""
    owner = find_owner(model, layer, is_token_transformer)
    in_blocks = owner is not None and layer.startswith(
        f"{owner[0]}.blocks" if owner[0] else "blocks"
    )
    if inside_attention(model, layer) or in_blocks:
        raise LayerResolutionError(
            f"layer {layer!r} outputs {tuple(output.shape)}: attention heads, windows or "
            "weights, not a feature map. Choose a block, a norm or an MLP layer, or leave "
            "layer= out to let camkit-vit pick one."
        )


@hookimpl
def camkit_to_spatial(
    model: nn.Module, layer: str, output: Tensor, input_size: tuple[int, int]
) -> Tensor | None:
    if output.ndim == 3:
        owner = find_owner(model, layer, is_token_transformer)
        if owner is None:
            return None
        transformer = cast(Any, owner[1])
        grid = token_grid(transformer, input_size)
        prefix_tokens = int(transformer.num_prefix_tokens)
        if output.shape[1] == grid[0] * grid[1]:
            # patch tokens alone: the patch embedding's output, before the prefix tokens are
            # prepended, or a model that adds its class token after the blocks (CaiT)
            prefix_tokens = 0
        return tokens_to_map(output, prefix_tokens, grid)
    if output.ndim == 4:
        refuse_attention_internals(model, layer, output)
        layout = map_layout(model, layer)
        if layout == "NHWC":
            return channels_last_to_first(output)
        if layout == "NCHW":
            return output
    return None
