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
    """ViT, DeiT and kin: the last transformer block, or its first norm for class-token heads.

    A model whose head reads the class token (``global_pool == "token"``: ViT, DeiT, the
    distilled DeiT, CaiT) gets ``blocks[-1].norm1``. After the last block such a head reads
    only the prefix tokens, so the gradient at the last block's patch tokens is exactly zero
    and its map would be empty; ``norm1`` sits before the last attention, which mixes the
    patch tokens into the class token. It is the layer commonly used for ViT Grad-CAM. A
    model that pools the patch tokens (``"avg"``, ``"map"``, …: BEiT, EVA, the ``*_gap``
    ViTs) gets the last block's output, whose patch tokens all reach the score. A last block
    without ``norm1`` is used as a whole.
    """

    name = "vit-last-block"

    def resolve(self, model: nn.Module, example: Tensor | None) -> str | None:
        owner = find_owner(model, None, is_token_transformer)
        if owner is None:
            return None
        prefix, transformer = owner
        blocks: Any = transformer.blocks  # checked by is_token_transformer
        last = len(blocks) - 1
        block = _join(prefix, f"blocks.{last}")
        reads_class_token = getattr(transformer, "global_pool", "token") == "token"
        norm = getattr(blocks[last], "norm1", None)
        if reads_class_token and isinstance(norm, nn.Module):
            return f"{block}.norm1"
        return block


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
