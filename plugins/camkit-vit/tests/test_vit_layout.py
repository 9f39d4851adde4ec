"""Token and channels-last layouts turned into (B, C, h, w) maps, checked on exact values."""

from __future__ import annotations

import pytest
import timm
import torch
from camkit.errors import LayerResolutionError
from camkit.plugins import to_spatial

from camkit_vit import channels_last_to_first, token_grid, tokens_to_map


def _hand_built_tokens(batch: int, prefix: int, height: int, width: int, channels: int):
    """Tokens whose patch (i, j) carries value 1000·b + 100·c + 10·i + j in channel c, and
    prefix tokens that carry -1; with the map those values must land at [b, c, i, j]."""
    expected = torch.empty(batch, channels, height, width)
    tokens = torch.full((batch, prefix + height * width, channels), -1.0)
    for b in range(batch):
        for c in range(channels):
            for i in range(height):
                for j in range(width):
                    value = 1000.0 * b + 100.0 * c + 10.0 * i + j
                    expected[b, c, i, j] = value
                    tokens[b, prefix + i * width + j, c] = value
    return tokens, expected


@pytest.mark.parametrize(("prefix", "grid"), [(1, (3, 3)), (2, (2, 5)), (5, (4, 3)), (0, (1, 6))])
def test_tokens_to_map_on_exact_values(prefix: int, grid: tuple[int, int]) -> None:
    tokens, expected = _hand_built_tokens(2, prefix, *grid, channels=3)
    result = tokens_to_map(tokens, prefix, grid)
    assert torch.equal(result, expected)


def test_wrong_token_count_names_both_counts() -> None:
    tokens = torch.zeros(1, 1 + 15, 4)
    with pytest.raises(LayerResolutionError, match=r"16 tokens.*1 prefix tokens.*4x4 patch grid"):
        tokens_to_map(tokens, 1, (4, 4))


def test_channels_last_to_first_on_exact_values() -> None:
    maps = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5)
    result = channels_last_to_first(maps)
    for b, i, j, c in [(0, 0, 0, 0), (1, 2, 3, 4), (1, 0, 2, 1)]:
        assert result[b, c, i, j] == maps[b, i, j, c]
    assert result.shape == (2, 5, 3, 4)


def test_grid_is_read_from_the_patch_embedding() -> None:
    fixed = timm.create_model("vit_tiny_patch16_224", img_size=(96, 160))
    assert token_grid(fixed, (96, 160)) == (6, 10)
    dynamic = timm.create_model("vit_tiny_patch16_224", dynamic_img_size=True)
    assert token_grid(dynamic, (160, 288)) == (10, 18)
    padded = timm.create_model("vit_tiny_patch16_224", dynamic_img_size=True, dynamic_img_pad=True)
    assert token_grid(padded, (100, 50)) == (7, 4)


@pytest.mark.parametrize(
    ("name", "kwargs", "prefix"),
    [
        ("vit_tiny_patch16_224", {}, 1),
        ("deit_tiny_distilled_patch16_224", {}, 2),
        ("vit_tiny_patch16_224", {"reg_tokens": 4}, 5),
        ("vit_tiny_patch16_224", {"class_token": False, "global_pool": "avg"}, 0),
    ],
    ids=["vit", "deit-distilled", "vit-registers", "vit-no-class-token"],
)
def test_hook_drops_the_models_prefix_tokens(name: str, kwargs: dict, prefix: int) -> None:
    model = timm.create_model(name, img_size=(64, 96), **kwargs)
    assert model.num_prefix_tokens == prefix
    tokens, expected = _hand_built_tokens(2, prefix, 4, 6, channels=model.embed_dim)
    result = to_spatial(model, "blocks.11.norm1", tokens, (64, 96))
    assert torch.equal(result, expected)


def test_hook_uses_the_input_size_of_a_dynamic_model() -> None:
    model = timm.create_model("vit_tiny_patch16_224", dynamic_img_size=True)
    tokens, expected = _hand_built_tokens(1, 1, 3, 7, channels=model.embed_dim)
    assert torch.equal(to_spatial(model, "blocks.11", tokens, (48, 112)), expected)


def test_patch_embedding_tokens_have_no_prefix() -> None:
    model = timm.create_model("deit_tiny_distilled_patch16_224", img_size=(48, 64))
    tokens, expected = _hand_built_tokens(1, 0, 3, 4, channels=model.embed_dim)
    assert torch.equal(to_spatial(model, "patch_embed", tokens, (48, 64)), expected)
    wrapped = torch.nn.Sequential(torch.nn.Identity(), model)
    assert torch.equal(to_spatial(wrapped, "1.patch_embed", tokens, (48, 64)), expected)


def test_hook_permutes_swin_channels_last_maps() -> None:
    model = timm.create_model("swin_tiny_patch4_window7_224")
    maps = torch.randn(2, 7, 7, 768)
    result = to_spatial(model, "layers.3", maps, (224, 224))
    assert torch.equal(result, maps.permute(0, 3, 1, 2))


def test_hook_leaves_other_models_to_the_core() -> None:
    model = timm.create_model("resnet18")
    maps = torch.randn(1, 512, 7, 7)
    assert to_spatial(model, "layer4", maps, (224, 224)) is maps
    assert to_spatial(model, "fc", torch.randn(1, 5, 3), (224, 224)) is None
