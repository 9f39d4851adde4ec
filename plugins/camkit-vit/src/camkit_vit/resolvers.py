"""Layer resolvers for token transformers (ViT, DeiT) and channels-last ones (Swin)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from camkit import LayerResolver
from torch import Tensor, nn

from camkit_vit.layout import find_owner, is_channels_last_model, is_token_transformer

__all__ = ["ChannelsLastStageResolver", "TokenBlockResolver"]


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


class TokenBlockResolver(LayerResolver):
    """ViT and DeiT: the first norm (``norm1``) of the last transformer block.

    With a class-token head, the output of the last block reaches the score only through
    the prefix tokens, so the gradients at its patch tokens are zero and the map would be
    empty. ``blocks[-1].norm1`` sits before the last attention, which mixes the patch
    tokens into the class token: it is the layer commonly used for ViT Grad-CAM. A last
    block without ``norm1`` is used as a whole.
    """

    name = "vit-last-block-norm1"

    def resolve(self, model: nn.Module, example: Tensor | None) -> str | None:
        owner = find_owner(model, None, is_token_transformer)
        if owner is None:
            return None
        prefix, transformer = owner
        blocks: Any = transformer.blocks  # checked by is_token_transformer
        last = len(blocks) - 1
        block = _join(prefix, f"blocks.{last}")
        norm = getattr(blocks[last], "norm1", None)
        return f"{block}.norm1" if isinstance(norm, nn.Module) else block


class ChannelsLastStageResolver(LayerResolver):
    """Swin: the last stage of a model that declares channels-last maps (``output_fmt``).

    The stage is read from timm's ``feature_info`` (its last entry's ``module``), else the
    last of the model's ``layers``.
    """

    name = "swin-last-stage"

    def resolve(self, model: nn.Module, example: Tensor | None) -> str | None:
        owner = find_owner(model, None, is_channels_last_model)
        if owner is None:
            return None
        prefix, transformer = owner
        info = getattr(transformer, "feature_info", None)
        if isinstance(info, Sequence) and info and isinstance(info[-1], dict):
            stage = info[-1].get("module")
            if isinstance(stage, str) and stage:
                return _join(prefix, stage)
        layers = getattr(transformer, "layers", None)
        if isinstance(layers, (nn.Sequential, nn.ModuleList)) and len(layers) > 0:
            return _join(prefix, f"layers.{len(layers) - 1}")
        return None
