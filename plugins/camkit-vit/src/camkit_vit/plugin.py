"""The hook implementations camkit loads through the ``camkit`` entry point ``vit``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from camkit import LayerResolver, hookimpl
from torch import Tensor, nn

from camkit_vit.layout import (
    channels_last_to_first,
    find_owner,
    is_channels_last_model,
    is_token_transformer,
    token_grid,
    tokens_to_map,
)
from camkit_vit.resolvers import ChannelsLastStageResolver, TokenBlockResolver


@hookimpl
def camkit_register_resolvers() -> Sequence[LayerResolver]:
    return [TokenBlockResolver(), ChannelsLastStageResolver()]


def _channels_last_embedding(model: nn.Module, layer: str) -> bool:
    """A ViT patch embedding that outputs NHWC (models with ``dynamic_img_size=True``)."""
    module = dict(model.named_modules()).get(layer)
    fmt = getattr(module, "output_fmt", None)
    flatten = getattr(module, "flatten", True)
    return str(getattr(fmt, "value", fmt)).upper() == "NHWC" and not flatten


@hookimpl
def camkit_to_spatial(
    model: nn.Module, layer: str, output: Tensor, input_size: tuple[int, int]
) -> Tensor | None:
    if output.ndim == 3:
        owner = find_owner(model, layer, is_token_transformer)
        if owner is None:
            return None
        name, transformer = owner[0], cast(Any, owner[1])
        embedding = f"{name}.patch_embed" if name else "patch_embed"
        before_prefix = layer == embedding or layer.startswith(embedding + ".")
        # the patch embedding's tokens come before the prefix tokens are prepended
        prefix_tokens = 0 if before_prefix else int(transformer.num_prefix_tokens)
        return tokens_to_map(output, prefix_tokens, token_grid(transformer, input_size))
    if output.ndim == 4 and (
        find_owner(model, layer, is_channels_last_model) is not None
        or _channels_last_embedding(model, layer)
    ):
        return channels_last_to_first(output)
    return None
