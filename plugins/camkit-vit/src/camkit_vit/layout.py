"""How transformer activations are laid out, and how they become ``(B, C, h, w)`` maps.

Everything is read from the model: the number of prefix tokens (class, distillation and
register tokens) from ``num_prefix_tokens``, the token grid from the patch embedding
(``grid_size``, or ``dynamic_feat_size`` of the actual input for models built with
``dynamic_img_size=True``). Nothing is assumed, not even a square grid.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from camkit.errors import InputError, LayerResolutionError
from camkit.layers import declared_layout, declares_channels_last
from torch import Tensor, nn

__all__ = [
    "channels_last_to_first",
    "enforced_input_size",
    "find_owner",
    "is_channels_last_model",
    "is_token_transformer",
    "map_layout",
    "token_grid",
    "tokens_to_map",
]


def is_token_transformer(module: nn.Module) -> bool:
    """Whether ``module`` is a timm-style token transformer (ViT, DeiT and kin).

    It must have a ``patch_embed`` module, an integer ``num_prefix_tokens`` and a non-empty
    sequence of ``blocks``.
    """
    blocks = getattr(module, "blocks", None)
    return (
        isinstance(getattr(module, "patch_embed", None), nn.Module)
        and isinstance(getattr(module, "num_prefix_tokens", None), int)
        and isinstance(blocks, (nn.Sequential, nn.ModuleList))
        and len(blocks) > 0
    )


def is_channels_last_model(module: nn.Module) -> bool:
    """Whether ``module`` declares channels-last ``(B, H, W, C)`` maps (timm's Swin)."""
    return declares_channels_last(module)


def find_owner(
    model: nn.Module, layer: str | None, predicate: Callable[[nn.Module], bool]
) -> tuple[str, nn.Module] | None:
    """The innermost module satisfying ``predicate`` that contains ``layer``.

    ``model`` itself counts, so a transformer wrapped in another module (a normalisation in
    front, a custom head) is still found. With ``layer=None`` the first match in
    ``model.named_modules()`` order is returned. Returns ``(dotted name, module)`` or
    ``None``.
    """
    if layer is None:
        return next(((n, m) for n, m in model.named_modules() if predicate(m)), None)
    parts = layer.split(".") if layer else []
    for depth in range(len(parts), -1, -1):  # the layer itself, then its ancestors
        name = ".".join(parts[:depth])
        try:
            module = model.get_submodule(name)
        except AttributeError:
            continue
        if predicate(module):
            return name, module
    return None


def token_grid(model: nn.Module, input_size: tuple[int, int]) -> tuple[int, int]:
    """The ``(h, w)`` patch grid of a token transformer for an input of ``input_size``.

    Models built with ``dynamic_img_size=True`` take any input size: their grid is the patch
    embedding's ``dynamic_feat_size(input_size)`` (which knows about dynamic padding).
    Fixed-size models have the patch embedding's ``grid_size``.
    """
    embed: Any = model.patch_embed
    dynamic = getattr(model, "dynamic_img_size", False)
    if dynamic and callable(getattr(embed, "dynamic_feat_size", None)):
        height, width = embed.dynamic_feat_size(tuple(input_size))
    else:
        grid = getattr(embed, "grid_size", None)
        if grid is None:
            raise LayerResolutionError(
                f"{type(embed).__name__} at patch_embed has no grid_size; camkit-vit cannot "
                "tell the token grid of this model. Pass a layer whose output is a "
                "(B, C, H, W) map, or register your own camkit_to_spatial hook."
            )
        height, width = grid
    return int(height), int(width)


def enforced_input_size(model: nn.Module) -> tuple[int, int] | None:
    """The only input size ``(H, W)`` the first timm patch embedding in ``model`` accepts.

    A timm model built for another size (``timm.create_model(..., img_size=256)``) keeps its
    pretrained config's ``input_size`` although its patch embedding accepts only its own
    ``img_size``. The first module of ``model.modules()`` (``model`` itself included) that
    has a ``patch_embed`` module decides: its ``img_size`` when the embedding enforces it
    (``strict_img_size``) and the module was not built with ``dynamic_img_size=True``, else
    ``None``. ``None`` too when no module has a patch embedding.
    """
    for module in model.modules():
        embed = getattr(module, "patch_embed", None)
        if not isinstance(embed, nn.Module):
            continue
        size = getattr(embed, "img_size", None)
        dynamic = getattr(module, "dynamic_img_size", False)
        if dynamic or not getattr(embed, "strict_img_size", False):
            return None
        if isinstance(size, Sequence) and len(size) == 2:
            return int(size[0]), int(size[1])
        return None
    return None


def tokens_to_map(tokens: Tensor, num_prefix_tokens: int, grid: tuple[int, int]) -> Tensor:
    """Fold a token sequence ``(B, N, C)`` into a map ``(B, C, h, w)``.

    The first ``num_prefix_tokens`` tokens (class, distillation, register tokens) are
    dropped; the remaining ``h·w`` patch tokens are in row-major order, as timm's patch
    embedding flattens them. Linear in ``tokens``, so gradients fold the same way.

    Raises:
        LayerResolutionError: ``N`` is not ``num_prefix_tokens + h·w``.
    """
    if tokens.ndim != 3:
        raise InputError(f"tokens must have shape (B, N, C), got {tuple(tokens.shape)}")
    batch, count, channels = tokens.shape
    height, width = grid
    if count != num_prefix_tokens + height * width:
        raise LayerResolutionError(
            f"the layer gives {count} tokens, but the model has {num_prefix_tokens} prefix "
            f"tokens and a {height}x{width} patch grid ({num_prefix_tokens + height * width} "
            "tokens). Choose a layer inside the transformer blocks (for example "
            "blocks[-1].norm1), or build the model with dynamic_img_size=True to use "
            "another input size."
        )
    patches = tokens[:, num_prefix_tokens:, :].reshape(batch, height, width, channels)
    return patches.permute(0, 3, 1, 2).contiguous()


def channels_last_to_first(maps: Tensor) -> Tensor:
    """Permute a channels-last map ``(B, h, w, C)`` to ``(B, C, h, w)``."""
    if maps.ndim != 4:
        raise InputError(f"maps must have shape (B, h, w, C), got {tuple(maps.shape)}")
    return maps.permute(0, 3, 1, 2).contiguous()


CHANNELS_FIRST_MODULES: tuple[type[nn.Module], ...] = (
    nn.modules.conv._ConvNd,
    nn.modules.batchnorm._BatchNorm,
    nn.modules.pooling._AvgPoolNd,
    nn.modules.pooling._MaxPoolNd,
    nn.modules.pooling._AdaptiveAvgPoolNd,
    nn.modules.pooling._AdaptiveMaxPoolNd,
    nn.GroupNorm,
)
"""Modules whose 4-D outputs are channels-first whatever model they sit in."""


def _is_embedding(module: nn.Module) -> bool:
    """A module that declares its output format and is not a whole model (timm models have
    ``forward_features``): a patch embedding, channels-first inside."""
    return declared_layout(module) is not None and not hasattr(module, "forward_features")


def map_layout(model: nn.Module, layer: str) -> str | None:
    """The layout of the 4-D output of ``layer``: ``"NHWC"``, ``"NCHW"``, or ``None`` when
    camkit-vit has no opinion (the model declares nothing, so it is channels-first).

    In order: the layer's own ``output_fmt`` (timm patch embeddings); convolutions, batch
    norms and poolings (channels-first); inside a patch embedding that declares an
    ``output_fmt``, its ``norm`` in that format and anything else channels-first (timm
    converts the format just before the norm); else channels-last if the enclosing model
    declares ``output_fmt == "NHWC"`` (Swin's stages, blocks and norms).
    """
    module = model.get_submodule(layer)
    declared = declared_layout(module)
    if declared is not None:
        return declared
    if isinstance(module, CHANNELS_FIRST_MODULES):
        return "NCHW"
    embedding = find_owner(model, layer, lambda m: m is not module and _is_embedding(m))
    if embedding is not None:
        # timm's patch embeddings convert to their format before their own ``norm``
        if module is getattr(embedding[1], "norm", None):
            return declared_layout(embedding[1])
        return "NCHW"
    if find_owner(model, layer, is_channels_last_model) is not None:
        return "NHWC"
    return None


def inside_attention(model: nn.Module, layer: str) -> bool:
    """Whether ``layer`` is an attention module or inside one (its 4-D outputs are heads,
    windows or attention weights, not feature maps)."""
    return find_owner(model, layer, lambda m: "Attention" in type(m).__name__) is not None
