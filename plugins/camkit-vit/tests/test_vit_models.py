"""Explainer(model).explain(img) on timm ViT, DeiT (distilled) and Swin: no layer, no reshape.

Random-init models (nothing is downloaded). Maps are checked against pytorch-grad-cam given
a reshape_transform written by hand for the test, and for size and content on default and
other input sizes.
"""

from __future__ import annotations

import numpy as np
import pytest
import timm
import torch
from camkit import DataConfig, Explainer
from torch import Tensor, nn

from camkit_vit import enforced_input_size
from camkit_vit.plugin import EMPTY_MAP_ADVICE

TOLERANCE = 2e-3


def _model(name: str, **kwargs: object) -> nn.Module:
    torch.manual_seed(0)
    return timm.create_model(name, pretrained=False, **kwargs).eval()


def _image(height: int, width: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)


CASES = [
    # name, create kwargs, explain kwargs, image (H, W), expected layer, expected grid
    ("vit_tiny_patch16_224", {}, {}, (224, 224), "blocks.11.norm1", (14, 14)),
    (
        "vit_tiny_patch16_224",
        {"dynamic_img_size": True},
        {"data_config": DataConfig(input_size=(160, 288))},
        (300, 500),
        "blocks.11.norm1",
        (10, 18),
    ),
    ("deit_tiny_distilled_patch16_224", {}, {}, (240, 320), "blocks.11.norm1", (14, 14)),
    (
        "deit_tiny_distilled_patch16_224",
        {"img_size": 160},
        {},
        (200, 200),
        "blocks.11.norm1",
        (10, 10),
    ),
    ("swin_tiny_patch4_window7_224", {}, {}, (224, 224), "layers.3", (7, 7)),
    ("swin_tiny_patch4_window7_224", {"img_size": 256}, {}, (300, 400), "layers.3", (8, 8)),
]
IDS = ["vit", "vit-dynamic-160x288", "deit-distilled", "deit-distilled-160", "swin", "swin-256"]


@pytest.mark.parametrize(("name", "create", "options", "size", "layer", "grid"), CASES, ids=IDS)
def test_maps_have_the_input_size_and_are_not_empty(
    name: str,
    create: dict,
    options: dict,
    size: tuple[int, int],
    layer: str,
    grid: tuple[int, int],
) -> None:
    model = _model(name, **create)
    explanation = Explainer(model, device="cpu", **options).explain(_image(*size))
    assert explanation.layer == layer
    assert explanation.raw.shape == grid
    assert explanation.cam.shape == size
    assert explanation.raw.max() > 0
    assert explanation.cam.max() == pytest.approx(1.0)
    assert explanation.cam.std() > 0.01


def test_dynamic_vit_takes_tensors_of_any_size() -> None:
    model = _model("vit_tiny_patch16_224", dynamic_img_size=True)
    explainer = Explainer(model, device="cpu")
    for height, width in [(224, 224), (96, 208), (320, 160)]:
        explanation = explainer.explain(torch.rand(3, height, width))
        assert explanation.raw.shape == (height // 16, width // 16)
        assert explanation.cam.shape == (height, width)
        assert explanation.raw.max() > 0


def _grid_reshape(height: int, width: int, prefix: int):
    def reshape(tensor: Tensor) -> Tensor:
        if tensor.ndim == 4:  # Swin: (B, h, w, C)
            return tensor.permute(0, 3, 1, 2)
        result = tensor[:, prefix:, :].reshape(tensor.size(0), height, width, tensor.size(2))
        return result.permute(0, 3, 1, 2)

    return reshape


def _minmax(maps: np.ndarray) -> np.ndarray:
    low = maps.min(axis=(1, 2), keepdims=True)
    high = maps.max(axis=(1, 2), keepdims=True)
    return (maps - low) / np.maximum(high - low, 1e-12)


PARITY = [
    ("vit_tiny_patch16_224", (14, 14), 1),
    ("deit_tiny_distilled_patch16_224", (14, 14), 2),
    ("swin_tiny_patch4_window7_224", (7, 7), 0),
]


@pytest.mark.parametrize(("name", "grid", "prefix"), PARITY, ids=[p[0] for p in PARITY])
def test_gradcampp_matches_pytorch_grad_cam_with_hand_written_reshape(
    name: str, grid: tuple[int, int], prefix: int
) -> None:
    from pytorch_grad_cam import GradCAMPlusPlus
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    model = _model(name)
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(3))
    explanations = Explainer(model, device="cpu").explain_batch(x)
    ours = _minmax(np.stack([e.raw for e in explanations]))
    assert ours.std() > 0.05, "degenerate map: the comparison would be meaningless"

    layer = dict(model.named_modules())[explanations[0].layer]
    targets = [ClassifierOutputTarget(e.pred_class) for e in explanations]
    with GradCAMPlusPlus(model, [layer], reshape_transform=_grid_reshape(*grid, prefix)) as cam:
        cam(input_tensor=x, targets=targets)
        store = cam.activations_and_grads
        activations = store.activations[-1].numpy()
        gradients = store.gradients[-1].numpy()
        reference = cam.get_cam_image(x, layer, targets, activations, gradients)
    reference = _minmax(np.maximum(reference, 0))
    assert np.abs(ours - reference).max() <= TOLERANCE


def test_wrapped_transformer_is_found_inside() -> None:
    vit = _model("vit_tiny_patch16_224")
    wrapped = nn.Sequential(nn.Identity(), vit).eval()
    x = torch.rand(3, 224, 224)
    inner = Explainer(vit, device="cpu").explain(x)
    outer = Explainer(wrapped, device="cpu").explain(x)
    assert outer.layer == "1.blocks.11.norm1"
    np.testing.assert_allclose(outer.raw, inner.raw, rtol=1e-5, atol=1e-9)


def test_model_is_left_as_it_was() -> None:
    model = _model("swin_tiny_patch4_window7_224").train()
    model.head.fc.weight.requires_grad_(False)
    flags = {name: m.training for name, m in model.named_modules()}
    grads = {name: p.requires_grad for name, p in model.named_parameters()}
    Explainer(model, device="cpu").explain(torch.rand(3, 224, 224))
    assert {name: m.training for name, m in model.named_modules()} == flags
    assert {name: p.requires_grad for name, p in model.named_parameters()} == grads
    assert all(p.grad is None for p in model.parameters())
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


LAYOUTS = [
    # name, create kwargs, layer, input (H, W), map (h, w)
    ("swin_tiny_patch4_window7_224", {}, "patch_embed.proj", (224, 224), (56, 56)),
    ("swin_tiny_patch4_window7_224", {}, "patch_embed.norm", (224, 224), (56, 56)),
    ("swin_tiny_patch4_window7_224", {}, "layers.2", (224, 224), (14, 14)),
    ("vit_tiny_patch16_224", {"dynamic_img_size": True}, "patch_embed.proj", (160, 320), (10, 20)),
    ("vit_tiny_patch16_224", {"dynamic_img_size": True}, "patch_embed", (160, 320), (10, 20)),
    ("vit_tiny_patch16_224", {"dynamic_img_size": True}, "patch_embed.norm", (160, 192), (10, 12)),
    ("vit_tiny_r_s16_p8_224", {}, "patch_embed.backbone", (224, 224), (56, 56)),
    ("vit_tiny_patch16_224", {}, "patch_embed", (224, 224), (14, 14)),
    ("vit_tiny_patch16_224", {}, "blocks.5", (224, 224), (14, 14)),
]


@pytest.mark.parametrize(("name", "create", "layer", "size", "grid"), LAYOUTS)
def test_each_layer_is_read_in_its_own_layout(
    name: str, create: dict, layer: str, size: tuple[int, int], grid: tuple[int, int]
) -> None:
    """Channels-first convolutions inside Swin or a dynamic ViT's patch embedding stay as
    they are; channels-last outputs are permuted; a map read the wrong way round would
    have the shape (C, h) or (w, C)."""
    model = _model(name, **create)
    explanation = Explainer(model, layer=layer, device="cpu").explain(torch.rand(3, *size))
    assert explanation.raw.shape == grid
    assert explanation.raw.max() > 0


@pytest.mark.parametrize(
    ("name", "create", "layer"),
    [
        ("vit_tiny_patch16_224", {"class_token": False, "global_pool": "avg"}, "blocks.11"),
        ("vit_tiny_patch16_224", {"global_pool": "map"}, "blocks.11"),
        ("vit_tiny_patch16_224", {"global_pool": "token"}, "blocks.11.norm1"),
        ("cait_xxs24_224", {}, "blocks.23.norm1"),  # class token added after the blocks
    ],
    ids=["avg-pool", "attention-pool", "class-token", "cait"],
)
def test_default_layer_follows_the_head(name: str, create: dict, layer: str) -> None:
    model = _model(name, **create)
    explanation = Explainer(model, device="cpu").explain(torch.rand(3, 224, 224))
    assert explanation.layer == layer
    assert explanation.raw.shape == (14, 14)
    assert explanation.raw.max() > 0


def test_layer_after_the_last_attention_warns_of_an_empty_map() -> None:
    from camkit.errors import EmptyMapWarning

    model = _model("vit_tiny_patch16_224")
    with pytest.warns(EmptyMapWarning, match=r"'blocks.11'.*blocks\[-1\].norm1") as record:
        explanation = Explainer(model, layer="blocks.11", device="cpu").explain(
            torch.rand(3, 224, 224)
        )
    assert explanation.raw.max() == 0
    assert str(record[0].message).endswith(EMPTY_MAP_ADVICE)  # camkit-vit's advice


def test_size_enforced_by_a_patch_embedding() -> None:
    """A model built for another fixed size keeps timm's config size, but its patch
    embedding accepts only its own: camkit-vit's camkit_input_size gives that size."""
    swin = _model("swin_tiny_patch4_window7_224", img_size=256)
    assert swin.pretrained_cfg["input_size"] == (3, 224, 224)  # timm keeps the config's
    assert enforced_input_size(swin) == (256, 256)
    assert DataConfig.from_model(swin).input_size == (256, 256)
    assert DataConfig.from_model(nn.Sequential(nn.Identity(), swin)).input_size == (256, 256)
    deit = _model("deit_tiny_distilled_patch16_224", img_size=160)
    assert DataConfig.from_model(deit).input_size == (160, 160)
    dynamic = _model("vit_tiny_patch16_224", dynamic_img_size=True)
    assert enforced_input_size(dynamic) is None
    assert DataConfig.from_model(dynamic).input_size == (224, 224)
    assert enforced_input_size(_model("resnet18")) is None


def test_without_the_plugin_the_config_size_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """The size comes from camkit-vit, not from camkit's core."""
    from camkit.plugins import reset_plugins

    monkeypatch.setenv("CAMKIT_DISABLE_PLUGIN_AUTOLOAD", "1")
    reset_plugins()
    swin = _model("swin_tiny_patch4_window7_224", img_size=256)
    assert DataConfig.from_model(swin).input_size == (224, 224)


def test_half_precision_vit_map_is_not_empty() -> None:
    model = _model("vit_tiny_patch16_224")
    x = torch.rand(3, 224, 224)
    full = Explainer(model, device="cpu").explain(x)
    half = Explainer(model.half(), device="cpu").explain(x)
    assert half.raw.max() > 0
    assert np.abs(_minmax(half.raw[None]) - _minmax(full.raw[None])).max() < 0.05


@pytest.mark.parametrize(
    ("name", "create", "layer"),
    [
        ("vit_tiny_patch16_224", {"qk_norm": True}, "blocks.5.attn.q_norm"),
        ("vit_tiny_patch16_224", {}, "blocks.5.attn.q_norm"),
        ("swin_tiny_patch4_window7_224", {}, "layers.3.blocks.0.attn.softmax"),
    ],
)
def test_attention_internals_are_refused(name: str, create: dict, layer: str) -> None:
    from camkit.errors import LayerResolutionError

    model = _model(name, **create)
    with pytest.raises(LayerResolutionError, match="not a feature map"):
        Explainer(model, layer=layer, device="cpu").explain(torch.rand(3, 224, 224))
