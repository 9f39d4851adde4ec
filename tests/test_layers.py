"""Layer resolution: explicit names, the architecture table and the structural fallback."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import build
from tiny_models import SmallCNN
from torch import Tensor, nn

from camkit import Explainer
from camkit.errors import LayerNotFoundError, LayerResolutionError
from camkit.layers import (
    BUILTIN_ARCHITECTURES,
    ArchitectureTableResolver,
    StructuralResolver,
    architecture_name,
)


def last_conv(model: nn.Module) -> str:
    return [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)][-1]


# ---- explicit -------------------------------------------------------------------------------


def test_explicit_dotted_name_and_module() -> None:
    model = build("torchvision", "resnet18")
    assert Explainer(model, layer="layer3").layer == "layer3"
    assert Explainer(model, layer=model.layer2[1]).layer == "layer2.1"


def test_unknown_name_lists_closest() -> None:
    model = build("torchvision", "resnet18")
    with pytest.raises(LayerNotFoundError, match=r"'layer5' not found in ResNet.*'layer4'"):
        Explainer(model, layer="layer5")


def test_foreign_module_rejected() -> None:
    model = build("torchvision", "resnet18")
    with pytest.raises(LayerNotFoundError, match="not part of ResNet"):
        Explainer(model, layer=nn.Conv2d(1, 1, 1))


def test_layer_wrong_type() -> None:
    with pytest.raises(TypeError, match="layer must be a dotted name"):
        Explainer(SmallCNN(), layer=3)  # type: ignore[arg-type]


# ---- architecture table -------------------------------------------------------------------

TABLE_CASES = [
    ("torchvision", "resnet18", "layer4"),
    ("torchvision", "resnet50", "layer4"),
    ("torchvision", "vgg11", "features.18"),
    ("torchvision", "vgg13", "features.22"),
    ("torchvision", "vgg16", "features.28"),
    ("torchvision", "vgg11_bn", "features.25"),
    ("torchvision", "vgg13_bn", "features.31"),
    ("torchvision", "vgg16_bn", "features.40"),
    ("torchvision", "densenet121", "features.denseblock4"),
    ("torchvision", "mobilenet_v2", "features.18"),
    ("timm", "resnet18", "layer4"),
    ("timm", "resnet50", "layer4"),
    ("timm", "vgg16", "features.28"),
    ("timm", "vgg16_bn", "features.40"),
    ("timm", "densenet121", "features.denseblock4"),
    ("timm", "mobilenetv2_100", "conv_head"),
    ("timm", "efficientnet_b0", "conv_head"),
    ("timm", "efficientnet_b3", "conv_head"),
    ("timm", "convnext_tiny", "stages.3"),
    ("timm", "xception", "conv4"),
    ("timm", "legacy_xception", "conv4"),
    ("timm", "inception_resnet_v2", "conv2d_7b"),
]


@pytest.mark.parametrize(
    ("source", "name", "layer"), TABLE_CASES, ids=[f"{s}-{n}" for s, n, _ in TABLE_CASES]
)
def test_table_resolves_real_layer(source: str, name: str, layer: str) -> None:
    model = build(source, name)
    assert ArchitectureTableResolver().resolve(model, None) == layer
    assert Explainer(model).resolve_layer() == layer
    if "vgg" in name:  # VGG rows name the last convolution itself
        assert last_conv(model.features) == layer.split(".", 1)[1]


def test_architecture_names() -> None:
    assert architecture_name(build("torchvision", "vgg16_bn")) == "torchvision/vgg16_bn"
    assert architecture_name(build("torchvision", "resnet18")) == "torchvision/resnet"
    assert architecture_name(build("timm", "xception")) == "legacy_xception"
    assert architecture_name(SmallCNN()) is None


def test_table_row_with_missing_layer_is_skipped() -> None:
    model = SmallCNN()
    model.pretrained_cfg = {"architecture": "resnet50"}  # claims to be a resnet: no layer4
    assert ArchitectureTableResolver().resolve(model, None) is None
    assert Explainer(model).resolve_layer(torch.zeros(1, 3, 32, 32)) == "body"


def test_builtin_rows_cover_seed_families() -> None:
    for family in ("resnet50*", "vgg16", "densenet121*", "mobilenetv2_*", "efficientnet_b7"):
        assert family in BUILTIN_ARCHITECTURES
    for family in ("convnext_*", "xception", "inception_resnet_v2", "torchvision/mobilenetv2"):
        assert family in BUILTIN_ARCHITECTURES


# ---- structural fallback ----------------------------------------------------------------


def test_structural_skips_adaptive_pool_keeping_spatial_shape() -> None:
    model = SmallCNN().eval()
    assert StructuralResolver().resolve(model, torch.zeros(1, 3, 32, 32)) == "body"


def test_structural_on_unknown_cnn_explains() -> None:
    model = SmallCNN().eval()
    explanation = Explainer(model).explain(torch.randn(3, 32, 32))
    assert explanation.layer == "body"
    assert explanation.raw.shape == (16, 16)


def test_structural_on_vgg_never_picks_avgpool() -> None:
    model = build("torchvision", "vgg11").eval()
    layer = StructuralResolver().resolve(model, torch.zeros(1, 3, 224, 224))
    # the last spatial map produced by a real layer: the ReLU after the last conv
    assert layer == "features.19"


@pytest.mark.parametrize(
    ("source", "name", "expected"),
    [
        ("torchvision", "resnet18", "layer4"),
        ("torchvision", "mobilenet_v2", "features"),
        ("timm", "efficientnet_b0", "bn2"),
        ("timm", "convnext_tiny", "stages"),
    ],
)
def test_structural_on_known_models(source: str, name: str, expected: str) -> None:
    model = build(source, name).eval()
    assert StructuralResolver().resolve(model, torch.zeros(1, 3, 224, 224)) == expected


class SharedActivation(nn.Module):
    """One activation module called after each conv (as in several EfficientNet ports)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 4, 3, stride=2, padding=1)
        self.act = nn.ReLU()
        self.fc = nn.Linear(4, 3)

    def forward(self, x: Tensor) -> Tensor:
        x = self.act(self.conv1(x))
        x = self.act(self.conv2(x))
        return self.fc(x.mean(dim=(2, 3)))


def test_module_called_twice_uses_last_call() -> None:
    model = SharedActivation().eval()
    x = torch.randn(1, 3, 8, 8)
    assert StructuralResolver().resolve(model, x) == "act"
    explanation = Explainer(model, method="gradcam").explain(x, target=1)
    assert explanation.layer == "act"
    assert explanation.raw.shape == (4, 4)  # the second call's resolution, not the first's
    with torch.no_grad():
        activation = torch.relu(model.conv2(torch.relu(model.conv1(x))))
    # Grad-CAM by hand: score = fc(mean(A)) -> dscore/dA = w_fc[1] / (H*W) for every position
    weights = model.fc.weight[1].detach() / 16.0
    expected = torch.relu(torch.einsum("c,chw->hw", weights, activation[0]))
    np.testing.assert_allclose(explanation.raw, expected.numpy(), rtol=1e-5, atol=1e-7)


class NoSpatial(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3 * 4 * 4, 2)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(x.flatten(1))


def test_no_spatial_layer_is_a_clear_error() -> None:
    with pytest.raises(LayerResolutionError, match="Pass layer='<dotted name>'"):
        Explainer(NoSpatial()).explain(torch.randn(3, 4, 4))


LAYOUT_ADVICE = r"docs/plugins\.md.*camkit_to_spatial hook"
"""The end of camkit's generic advice for a layout it cannot read."""


@pytest.fixture
def no_installed_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever is installed in this environment, the ``camkit`` entry-point group is empty:
    the messages are camkit's own."""
    from camkit.plugins import manager

    monkeypatch.setattr(manager.importlib.metadata, "entry_points", lambda group: [])


def _names_no_plugin(message: str) -> None:
    for word in ("vit", "transformer", "swin", "deit"):
        assert word not in message.lower()


@pytest.mark.usefixtures("no_installed_plugins")
def test_token_sequence_model_gets_the_generic_layout_advice() -> None:
    model = build("timm", "vit_tiny_patch16_224")
    with pytest.raises(
        LayerResolutionError,
        match=r"token sequences \(B, N, C\), not spatial maps.*" + LAYOUT_ADVICE,
    ) as error:
        Explainer(model).explain(torch.randn(3, 224, 224))
    _names_no_plugin(str(error.value).replace("VisionTransformer", ""))


@pytest.mark.usefixtures("no_installed_plugins")
def test_token_layer_given_explicitly_gets_the_generic_layout_advice() -> None:
    model = build("timm", "vit_tiny_patch16_224")
    with pytest.raises(
        LayerResolutionError, match=r"\(1, 197, 192\).*Pass layer=.*" + LAYOUT_ADVICE
    ) as error:
        Explainer(model, layer="blocks.11").explain(torch.randn(3, 224, 224))
    _names_no_plugin(str(error.value))


def test_layer_not_on_the_path() -> None:
    class Branchy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.used = nn.Conv2d(3, 2, 1)
            self.unused = nn.Conv2d(3, 2, 1)
            self.fc = nn.Linear(2, 2)

        def forward(self, x: Tensor) -> Tensor:
            self.unused(x)
            return self.fc(self.used(x).mean(dim=(2, 3)))

    with pytest.raises(LayerResolutionError, match="does not depend on layer 'unused'"):
        Explainer(Branchy(), layer="unused").explain(torch.randn(3, 4, 4))


def test_layer_never_called() -> None:
    model = SmallCNN()
    model.spare = nn.Conv2d(3, 3, 1)
    with pytest.raises(LayerResolutionError, match="'spare' was not called"):
        Explainer(model, layer="spare").explain(torch.randn(3, 32, 32))


def test_layer_returning_tuple() -> None:
    class Pair(nn.Module):
        def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
            return x, x

    class Model(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.pair = Pair()
            self.fc = nn.Linear(3, 2)

        def forward(self, x: Tensor) -> Tensor:
            return self.fc(self.pair(x)[0].mean(dim=(2, 3)))

    with pytest.raises(LayerResolutionError, match="returns tuple, not a tensor"):
        Explainer(Model(), layer="pair").explain(torch.randn(3, 4, 4))


class ChannelsLast(nn.Module):
    """Declares (B, H, W, C) maps the way timm's Swin does (output_fmt = "NHWC")."""

    output_fmt = "NHWC"

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 4, stride=4)
        self.stage = nn.Identity()
        self.fc = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = self.stage(self.stem(x).permute(0, 2, 3, 1))
        return self.fc(maps.mean(dim=(1, 2)))


@pytest.mark.usefixtures("no_installed_plugins")
def test_channels_last_model_is_not_read_as_channels_first() -> None:
    model = ChannelsLast()
    with pytest.raises(LayerResolutionError, match=r"declares channels-last.*" + LAYOUT_ADVICE):
        Explainer(model).explain(torch.rand(3, 16, 16))
    with pytest.raises(LayerResolutionError, match=r"\(1, 4, 4, 8\).*" + LAYOUT_ADVICE):
        Explainer(model, layer="stage").explain(torch.rand(3, 16, 16))


class ChannelsLastEmbedding(nn.Module):
    """A patch embedding that declares NHWC output, inside a model that declares nothing
    (timm's ViT with dynamic_img_size=True)."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, 8, 4, stride=4)
        self.output_fmt = "NHWC"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).permute(0, 2, 3, 1)


@pytest.mark.usefixtures("no_installed_plugins")
def test_channels_last_layer_of_a_plain_model_is_refused() -> None:
    model = nn.Sequential(ChannelsLastEmbedding(), nn.Flatten(1), nn.LazyLinear(2))
    model(torch.zeros(1, 3, 16, 16))
    with pytest.raises(LayerResolutionError, match=r"\(1, 4, 4, 8\).*" + LAYOUT_ADVICE):
        Explainer(model, layer="0").explain(torch.rand(3, 16, 16))
    # its convolution is channels-first and works
    assert Explainer(model, layer="0.proj").explain(torch.rand(3, 16, 16)).raw.shape == (4, 4)


@pytest.mark.parametrize(
    ("installed", "autoload_off", "not_loaded"),
    [(False, True, False), (True, True, True), (True, False, False), (False, False, False)],
)
def test_layout_advice_fits_the_installation(
    installed: bool, autoload_off: bool, not_loaded: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Installed plugins that are not loaded because autoload is off are named (by their
    distributions: data from the entry-point group); the advice itself stays generic."""
    import types

    from camkit.plugins import manager

    class Inert:  # an installed plugin with no say in layouts
        pass

    point = types.SimpleNamespace(
        name="acme", dist=types.SimpleNamespace(name="acme-camkit-plugin"), load=Inert
    )
    points = [point] if installed else []
    monkeypatch.setattr(manager.importlib.metadata, "entry_points", lambda group: points)
    if not autoload_off:
        monkeypatch.delenv("CAMKIT_DISABLE_PLUGIN_AUTOLOAD")
    manager.reset_plugins()
    with pytest.raises(LayerResolutionError, match=LAYOUT_ADVICE) as error:
        Explainer(ChannelsLast()).explain(torch.rand(3, 16, 16))
    note = (
        "Installed camkit plugins are not loaded, because CAMKIT_DISABLE_PLUGIN_AUTOLOAD is "
        "set: acme-camkit-plugin (entry point 'acme'). Unset it, or register the ones you "
        "need with camkit.register_plugin."
    )
    assert (note in str(error.value)) is not_loaded
    _names_no_plugin(str(error.value))


class WindowBatched(nn.Module):
    """A layer whose output folds 2x2 windows into the batch, as Swin's attention does."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.windows = nn.Identity()
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        y = self.conv(x).reshape(b, 4, 2, h // 2, 2, w // 2).permute(0, 2, 4, 1, 3, 5)
        y = self.windows(y.reshape(b * 4, 4, h // 2, w // 2))
        return self.fc(y.reshape(b, 4, 4, -1).mean(dim=(1, 3)))


def test_maps_whose_first_dimension_is_not_the_batch_are_refused() -> None:
    with pytest.raises(LayerResolutionError, match=r"\(8, 4, 4, 4\) for a batch of 2 images"):
        Explainer(WindowBatched(), layer="windows").explain_batch(torch.rand(2, 3, 8, 8))
