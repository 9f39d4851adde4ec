"""camkit-vit is found through its entry point, as any third-party package would be."""

from __future__ import annotations

import importlib.metadata

import camkit
import pytest
import timm
import torch
from camkit import Explainer
from camkit.errors import LayerResolutionError
from camkit.plugins import get_plugin_manager
from camkit.tools.cli import main

import camkit_vit.plugin


def test_entry_point_is_installed() -> None:
    points = [p for p in importlib.metadata.entry_points(group="camkit") if p.name == "vit"]
    assert len(points) == 1
    assert points[0].value == "camkit_vit.plugin"
    assert points[0].dist is not None and points[0].dist.name == "camkit-vit"


def test_plugin_is_loaded_from_the_entry_point() -> None:
    assert get_plugin_manager().get_plugin("vit") is camkit_vit.plugin
    info = {p.name: p for p in camkit.list_plugins()}["vit"]
    assert info.distribution == "camkit-vit"
    assert info.hooks == (
        "camkit_advice",
        "camkit_input_size",
        "camkit_register_resolvers",
        "camkit_to_spatial",
    )
    resolvers = [e for e in camkit.plugins.list_registrations("resolver") if e.plugin == "vit"]
    assert [(e.name, e.distribution) for e in resolvers] == [
        ("vit-last-block", "camkit-vit"),
        ("swin-last-stage", "camkit-vit"),
    ]
    # asked before camkit's own resolvers
    assert camkit.list_resolvers()[:2] == ["vit-last-block", "swin-last-stage"]


def test_camkit_plugins_lists_the_distribution(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.split()[:2] == ["vit", "camkit-vit"] for line in lines)
    assert any(
        line.split() == ["resolver", "swin-last-stage", "vit", "camkit-vit"] for line in lines
    )


MODELS = ["vit_tiny_patch16_224", "deit_tiny_distilled_patch16_224", "swin_tiny_patch4_window7_224"]


@pytest.mark.parametrize("name", MODELS)
def test_without_the_plugin_the_advice_is_generic(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """camkit's core knows nothing of camkit-vit: without it loaded, the message is camkit's
    layout error with its generic advice (pointing to docs/plugins.md, whose list of
    available plugins names camkit-vit), and says that installed plugins are not loaded."""
    monkeypatch.setenv("CAMKIT_DISABLE_PLUGIN_AUTOLOAD", "1")
    camkit.plugins.reset_plugins()
    torch.manual_seed(0)  # the weights and the image: a random-init map may be all zero
    model = timm.create_model(name)
    layout = r"token sequences \(B, N, C\)|declares channels-last"
    with pytest.raises(LayerResolutionError, match=layout) as error:
        Explainer(model).explain(torch.rand(3, 224, 224))
    message = str(error.value)
    assert camkit.plugins.generic_advice("layout") in message
    assert "because CAMKIT_DISABLE_PLUGIN_AUTOLOAD is set: camkit-vit (entry point 'vit')" in (
        message
    )
    assert camkit_vit.plugin.LAYOUT_ADVICE not in message
    # registered at run time, the plugin is no longer reported as not loaded, and it works
    camkit.register_plugin(camkit_vit.plugin)
    assert "CAMKIT_DISABLE_PLUGIN_AUTOLOAD" not in camkit.plugins.advice(model, None, "layout")
    image = torch.rand(3, 224, 224, generator=torch.Generator().manual_seed(0))
    assert Explainer(model).explain(image).raw.max() > 0


@pytest.mark.parametrize("name", MODELS)
def test_with_the_plugin_its_advice_replaces_the_generic_one(name: str) -> None:
    model = timm.create_model(name)
    with pytest.raises(LayerResolutionError, match=r"'head\S*' returns shape") as error:
        head = "head.fc" if name.startswith("swin") else "head"
        Explainer(model, layer=head).explain(torch.rand(3, 224, 224))
    message = str(error.value)
    assert message.endswith(camkit_vit.plugin.LAYOUT_ADVICE)
    assert "camkit-vit is installed but does not handle this model or layer" in message
    assert camkit.plugins.generic_advice("layout") not in message


def test_advice_only_for_the_models_and_problems_it_concerns() -> None:
    vit = timm.create_model("vit_tiny_patch16_224")
    resnet = timm.create_model("resnet18")
    advice = camkit_vit.plugin.camkit_advice
    assert advice(vit, "head", "layout") == camkit_vit.plugin.LAYOUT_ADVICE
    assert advice(torch.nn.Sequential(vit), "0.head", "layout") == camkit_vit.plugin.LAYOUT_ADVICE
    assert advice(resnet, None, "layout") == camkit_vit.plugin.LAYOUT_ADVICE  # structural verdict
    assert advice(resnet, "fc", "layout") is None  # a CNN's layer: camkit's generic advice
    assert advice(vit, "blocks.11", "empty-map") == camkit_vit.plugin.EMPTY_MAP_ADVICE
    assert advice(resnet, "layer4", "empty-map") is None
    assert advice(vit, None, "no-layer") is None
    assert advice(vit, "head", "some-later-problem") is None
    # through camkit: a CNN's non-spatial layer gets the generic advice although camkit-vit
    # is loaded
    with pytest.raises(LayerResolutionError) as error:
        Explainer(resnet, layer="fc").explain(torch.rand(3, 224, 224))
    assert str(error.value).endswith(camkit.plugins.generic_advice("layout"))
