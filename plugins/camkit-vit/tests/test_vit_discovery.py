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
    assert info.hooks == ("camkit_register_resolvers", "camkit_to_spatial")
    resolvers = [e for e in camkit.list_registrations("resolver") if e.plugin == "vit"]
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


@pytest.mark.parametrize(
    "name",
    ["vit_tiny_patch16_224", "deit_tiny_distilled_patch16_224", "swin_tiny_patch4_window7_224"],
)
def test_without_the_plugin_the_error_names_it(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAMKIT_DISABLE_PLUGIN_AUTOLOAD", "1")
    camkit.plugins.reset_plugins()
    model = timm.create_model(name)
    advice = r"vision transformer.*camkit-vit is installed but not loaded"
    with pytest.raises(LayerResolutionError, match=advice):
        Explainer(model).explain(torch.rand(3, 224, 224))
