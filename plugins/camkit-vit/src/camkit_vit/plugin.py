"""The hook implementations camkit loads through the ``camkit`` entry point ``vit``.

- ``camkit_register_resolvers``: :class:`~camkit_vit.TokenBlockResolver` and
  :class:`~camkit_vit.ChannelsLastStageResolver`;
- ``camkit_to_spatial``: token sequences and channels-last maps as ``(B, C, h, w)``;
- ``camkit_input_size``: the size a timm patch embedding enforces
  (:func:`~camkit_vit.enforced_input_size`);
- ``camkit_advice``: :data:`LAYOUT_ADVICE` and :data:`EMPTY_MAP_ADVICE`, for the models and
  layers they concern.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from camkit import LayerResolver, hookimpl
from camkit.errors import LayerResolutionError
from torch import Tensor, nn

from camkit_vit.layout import (
    channels_last_to_first,
    enforced_input_size,
    find_owner,
    inside_attention,
    is_channels_last_model,
    is_token_transformer,
    map_layout,
    token_grid,
    tokens_to_map,
)
from camkit_vit.resolvers import ChannelsLastStageResolver, TokenBlockResolver

LAYOUT_ADVICE = (
    "camkit-vit is installed but does not handle this model or layer: it covers timm's "
    "ViT, DeiT and Swin, at the layers it picks when layer= is left out or at layers whose "
    "output is a token sequence or a channels-last map. For other transformers, pass layer= "
    "and register a camkit_to_spatial hook that reshapes that layer's output "
    "(docs/plugins.md)."
)
"""camkit-vit's advice when camkit cannot read the maps of a transformer (problem
``"layout"``): the structural resolver's verdict on a model none of camkit-vit's resolvers
knows, or a layer of a ViT, DeiT or Swin whose output camkit-vit does not reshape."""

EMPTY_MAP_ADVICE = (
    "For a vision transformer whose head reads the class token, choose a layer before the "
    "last attention, such as blocks[-1].norm1, which camkit-vit picks when layer= is left out."
)
"""camkit-vit's advice when a token transformer's map is empty (problem ``"empty-map"``):
after the last attention, the class token no longer reads the patch tokens."""


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


@hookimpl
def camkit_input_size(model: nn.Module) -> tuple[int, int] | None:
    return enforced_input_size(model)


def _is_transformer(module: nn.Module) -> bool:
    return is_token_transformer(module) or is_channels_last_model(module)


@hookimpl
def camkit_advice(model: nn.Module, layer: str | None, problem: str) -> str | None:
    if problem == "layout":
        # layer=None: the structural resolver found token sequences or channels-last maps in
        # a model that camkit-vit's resolvers did not pick a layer for
        if layer is None or find_owner(model, layer, _is_transformer) is not None:
            return LAYOUT_ADVICE
        return None
    if problem == "empty-map" and layer is not None:
        return EMPTY_MAP_ADVICE if find_owner(model, layer, is_token_transformer) else None
    return None
