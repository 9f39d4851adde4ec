"""The plugin registry: built-ins as a plugin, entry points, conflicts, failures, listing."""

from __future__ import annotations

import types
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pytest
import torch
from helpers import build
from tiny_models import SmallCNN
from torch import Tensor, nn

import camkit
from camkit import Explainer, GradientWeightedCAM, LayerResolver, Renderer, hookimpl
from camkit.errors import (
    CamkitPluginWarning,
    LayerResolutionError,
    PluginConflictError,
    PluginError,
    UnknownNameError,
)
from camkit.plugins import builtin, manager
from camkit.render import COLORMAPS

# camkit's own methods, sorted as list_methods() gives them
BUILTIN_METHODS = sorted(cls.name for cls in builtin.camkit_register_methods())


class Xgrad(GradientWeightedCAM):
    name = "xgrad-test"

    def channel_weights(self, activations: Tensor, gradients: Tensor) -> Tensor:
        sums = activations.sum(dim=(2, 3), keepdim=True) + 1e-7
        return (activations / sums * gradients).sum(dim=(2, 3))


class Grey(Renderer):
    name = "grey-test"

    def render(self, image: Any, cam: Any, alpha: float = 0.5) -> Any:
        return np.repeat((np.asarray(cam) * 255).astype(np.uint8)[:, :, None], 3, axis=2)


class MethodPlugin:
    @hookimpl
    def camkit_register_methods(self) -> Sequence[type[GradientWeightedCAM]]:
        return [Xgrad]

    @hookimpl
    def camkit_register_renderers(self) -> Sequence[type[Renderer]]:
        return [Grey]


class FakeEntryPoint:
    def __init__(self, name: str, dist: str, load: Any) -> None:
        self.name = name
        self.dist = types.SimpleNamespace(name=dist)
        self._load = load

    def load(self) -> Any:
        return self._load()


def fake_entry_points(monkeypatch: pytest.MonkeyPatch, *points: FakeEntryPoint) -> None:
    def entry_points(group: str) -> list[FakeEntryPoint]:
        assert group == "camkit"
        return list(points)

    monkeypatch.setattr(manager.importlib.metadata, "entry_points", entry_points)
    monkeypatch.delenv("CAMKIT_DISABLE_PLUGIN_AUTOLOAD")


def test_builtins_are_registered_through_the_hooks() -> None:
    assert camkit.list_methods() == BUILTIN_METHODS
    assert {"gradcam", "gradcam++", "hirescam", "eigencam"} <= set(BUILTIN_METHODS)
    assert camkit.list_renderers() == sorted(COLORMAPS)  # every OpenCV colormap, jet among them
    assert camkit.list_resolvers() == ["architecture-table", "structural"]
    assert "resnet50*" in camkit.list_architectures()
    assert camkit.list_architectures("vgg16*") == ["vgg16", "vgg16_bn"]
    entries = camkit.plugins.list_registrations()
    assert {e.distribution for e in entries} == {"camkit"}
    assert {e.plugin for e in entries} == {"camkit"}
    impls = camkit.plugins.get_plugin_manager().hook.camkit_register_methods.get_hookimpls()
    assert [i.trylast for i in impls] == [True]


def test_runtime_plugin_method_and_renderer_by_name() -> None:
    name = camkit.register_plugin(MethodPlugin(), name="methods-test")
    assert "xgrad-test" in camkit.list_methods("xgrad*")
    [entry] = [e for e in camkit.plugins.list_registrations("method") if e.name == "xgrad-test"]
    assert entry.plugin == "methods-test" and entry.distribution is None
    explanation = Explainer(SmallCNN(), method="xgrad-test", renderer="grey-test").explain(
        torch.randn(3, 32, 32)
    )
    assert explanation.method == "xgrad-test"
    overlay = explanation.overlay()
    np.testing.assert_array_equal(overlay[:, :, 0], (explanation.cam * 255).astype(np.uint8))
    camkit.unregister_plugin(name)
    with pytest.raises(UnknownNameError, match=r"unknown method 'xgrad-test'.*gradcam\+\+"):
        Explainer(SmallCNN(), method="xgrad-test")


def test_unknown_names_suggest_close_ones() -> None:
    with pytest.raises(UnknownNameError, match=r"did you mean 'gradcam\+\+'"):
        Explainer(SmallCNN(), method="gradcam+")
    with pytest.raises(UnknownNameError, match="unknown renderer 'jett'.*'jet'"):
        Explainer(SmallCNN(), renderer="jett")
    with pytest.raises(UnknownNameError, match="no plugin named 'nope'"):
        camkit.unregister_plugin("nope")


def test_conflicting_method_names_name_both_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    class Clash:
        @hookimpl
        def camkit_register_methods(self) -> Sequence[type[GradientWeightedCAM]]:
            class Impostor(Xgrad):
                name = "gradcam++"

            return [Impostor]

    fake_entry_points(monkeypatch, FakeEntryPoint("clashing", "camkit-clash", Clash))
    with pytest.raises(
        PluginConflictError,
        match=r"'gradcam\+\+' is registered twice: by plugin 'clashing' \(distribution "
        r"'camkit-clash'\) and by plugin 'camkit' \(distribution 'camkit'\)",
    ):
        Explainer(SmallCNN())


def test_runtime_conflict_raises_and_rolls_back() -> None:
    camkit.register_plugin(MethodPlugin(), name="first")
    with pytest.raises(PluginConflictError, match="'first'.*'second'|'second'.*'first'"):
        camkit.register_plugin(MethodPlugin(), name="second")
    assert not camkit.plugins.get_plugin_manager().has_plugin("second")
    assert "xgrad-test" in camkit.list_methods()  # the first one still works


def test_broken_import_is_skipped_with_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> Any:
        raise ImportError("No module named 'missing_dependency'")

    fake_entry_points(
        monkeypatch,
        FakeEntryPoint("broken", "camkit-broken", broken),
        FakeEntryPoint("good", "camkit-good", MethodPlugin),
    )
    with pytest.warns(CamkitPluginWarning, match="'broken' from distribution 'camkit-broken'"):
        methods = camkit.list_methods()
    assert "xgrad-test" in methods and "gradcam++" in methods
    [entry] = [e for e in camkit.plugins.list_registrations("method") if e.name == "xgrad-test"]
    assert entry.distribution == "camkit-good" and entry.plugin == "good"


def test_failing_registration_hook_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    class Failing:
        @hookimpl
        def camkit_register_renderers(self) -> Sequence[type[Renderer]]:
            raise RuntimeError("renderer table corrupted")

        @hookimpl
        def camkit_register_methods(self) -> Sequence[type[GradientWeightedCAM]]:
            return [Xgrad]

    fake_entry_points(monkeypatch, FakeEntryPoint("failing", "camkit-failing", Failing))
    with pytest.warns(CamkitPluginWarning, match="'failing'.*'camkit-failing'.*corrupted"):
        assert camkit.list_renderers() == sorted(COLORMAPS)
    assert "xgrad-test" not in camkit.list_methods()  # nothing of a failed plugin remains


def test_bad_registration_type_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    class Wrong:
        @hookimpl
        def camkit_register_methods(self) -> Sequence[object]:
            return ["not a class"]

    fake_entry_points(monkeypatch, FakeEntryPoint("wrong", "camkit-wrong", Wrong))
    with pytest.warns(CamkitPluginWarning, match="CAMMethod subclasses"):
        assert camkit.list_methods() == BUILTIN_METHODS


def test_autoload_can_be_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    loaded: list[str] = []

    def load() -> Any:
        loaded.append("yes")
        return MethodPlugin()

    fake_entry_points(monkeypatch, FakeEntryPoint("good", "camkit-good", load))
    monkeypatch.setenv("CAMKIT_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert camkit.list_methods() == BUILTIN_METHODS
    assert loaded == []
    monkeypatch.delenv("CAMKIT_DISABLE_PLUGIN_AUTOLOAD")
    manager.reset_plugins()
    assert "xgrad-test" in camkit.list_methods()
    assert loaded == ["yes"]


class FixedResolver(LayerResolver):
    name = "fixed-test"

    def resolve(self, model: nn.Module, example: Tensor | None) -> str | None:
        return "layer3" if hasattr(model, "layer3") else None


def test_plugin_resolver_wins_over_table_and_structural() -> None:
    class ResolverPlugin:
        @hookimpl
        def camkit_register_resolvers(self) -> Sequence[LayerResolver]:
            return [FixedResolver()]

    camkit.register_plugin(ResolverPlugin(), name="resolver-test")
    assert camkit.list_resolvers() == ["fixed-test", "architecture-table", "structural"]
    assert Explainer(build("torchvision", "resnet18")).resolve_layer() == "layer3"
    # a model it does not know falls through to the structural fallback
    assert Explainer(SmallCNN()).resolve_layer(torch.zeros(1, 3, 32, 32)) == "body"


def test_plugin_mapping_wins_over_builtin_table() -> None:
    class MappingPlugin:
        @hookimpl
        def camkit_register_architectures(self) -> Mapping[str, str]:
            return {"resnet18": "layer2", "my_net*": "body"}

    camkit.register_plugin(MappingPlugin(), name="mapping-test")
    assert Explainer(build("timm", "resnet18")).resolve_layer() == "layer2"
    assert Explainer(build("timm", "resnet34")).resolve_layer() == "layer4"
    model = SmallCNN()
    model.pretrained_cfg = {"architecture": "my_net_v2"}
    assert Explainer(model).resolve_layer() == "body"
    rows = [e for e in camkit.plugins.list_registrations("architecture") if e.name == "my_net*"]
    assert rows[0].value == "body" and rows[0].plugin == "mapping-test"


def test_to_spatial_hook_lets_token_layers_work() -> None:
    class Tokens(nn.Module):
        """Features as a token sequence (B, N, C) over a 4x4 grid."""

        def __init__(self) -> None:
            super().__init__()
            self.proj = nn.Conv2d(3, 8, 4, stride=4)
            self.tokens = nn.Identity()
            self.fc = nn.Linear(8, 2)

        def forward(self, x: Tensor) -> Tensor:
            seq = self.tokens(self.proj(x).flatten(2).transpose(1, 2))
            return self.fc(seq.mean(dim=1))

    class GridPlugin:
        @hookimpl
        def camkit_to_spatial(self, model: nn.Module, layer: str, output: Tensor) -> Tensor | None:
            if output.ndim != 3:
                return None
            batch, tokens, channels = output.shape
            side = int(tokens**0.5)
            return output.transpose(1, 2).reshape(batch, channels, side, side)

    torch.manual_seed(0)
    model = Tokens()
    x = torch.randn(3, 16, 16)
    camkit.register_plugin(GridPlugin(), name="grid-test")
    via_tokens = Explainer(model, layer="tokens", method="gradcam").explain(x, target=0)
    via_conv = Explainer(model, layer="proj", method="gradcam").explain(x, target=0)
    np.testing.assert_allclose(via_tokens.raw, via_conv.raw, rtol=1e-5, atol=1e-7)
    assert via_tokens.raw.shape == (4, 4)


def test_runtime_plugin_with_misspelt_hook_raises() -> None:
    class Misspelt:
        @hookimpl
        def camkit_register_method(self) -> Sequence[type[GradientWeightedCAM]]:
            return [Xgrad]

    with pytest.raises(PluginError, match="'misspelt' is invalid.*camkit_register_method"):
        camkit.register_plugin(Misspelt(), name="misspelt")
    assert not camkit.plugins.get_plugin_manager().has_plugin("misspelt")


def test_runtime_plugin_whose_hook_fails_raises() -> None:
    class Failing:
        @hookimpl
        def camkit_register_methods(self) -> Sequence[type[GradientWeightedCAM]]:
            raise RuntimeError("cannot build my methods")

    with pytest.raises(PluginError, match="'failing' failed to register.*cannot build"):
        camkit.register_plugin(Failing(), name="failing")
    assert not camkit.plugins.get_plugin_manager().has_plugin("failing")
    assert camkit.list_methods() == BUILTIN_METHODS


def test_entry_point_with_misspelt_hook_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    class Misspelt:
        @hookimpl
        def camkit_register_renderer(self) -> Sequence[type[Renderer]]:
            return [Grey]

    fake_entry_points(
        monkeypatch,
        FakeEntryPoint("misspelt", "camkit-typo", Misspelt),
        FakeEntryPoint("good", "camkit-good", MethodPlugin),
    )
    with pytest.warns(CamkitPluginWarning, match="'misspelt' from distribution 'camkit-typo'"):
        assert camkit.list_renderers("[gj]*") == ["grey-test", "jet"]
    assert not camkit.plugins.get_plugin_manager().has_plugin("misspelt")


def _install(site: Any, dist: str, module: str, source: str, entry: str) -> None:
    """Install a one-module distribution into ``site`` as pip would lay it out: the module
    and a ``.dist-info`` with its metadata and ``camkit`` entry point."""
    (site / f"{module}.py").write_text(source)
    info = site / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[camkit]\n{entry} = {module}\n")


CLASH_SOURCE = """
from camkit import GradientWeightedCAM, hookimpl


class Impostor(GradientWeightedCAM):
    name = "gradcam"

    def channel_weights(self, activations, gradients):
        return gradients.mean(dim=(2, 3))


@hookimpl
def camkit_register_methods():
    return [Impostor]
"""


def test_installed_packages_broken_and_clashing(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real distributions on sys.path, found by the real importlib.metadata (not faked)."""
    _install(
        tmp_path,
        "camkit-broken-test",
        "camkit_broken_test",
        "raise ImportError(\"No module named 'missing_dependency'\")\n",
        "broken-test",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("CAMKIT_DISABLE_PLUGIN_AUTOLOAD")
    manager.reset_plugins()
    with pytest.warns(
        CamkitPluginWarning,
        match=r"'broken-test' from distribution 'camkit-broken-test': ImportError: "
        r"No module named 'missing_dependency'",
    ):
        assert set(BUILTIN_METHODS) <= set(camkit.list_methods())
    assert not camkit.plugins.get_plugin_manager().has_plugin("broken-test")
    explanation = Explainer(SmallCNN()).explain(torch.rand(3, 32, 32))  # camkit goes on
    assert explanation.method == "gradcam++"

    _install(tmp_path, "camkit-clash-test", "camkit_clash_test", CLASH_SOURCE, "clash-test")
    manager.reset_plugins()
    with pytest.warns(CamkitPluginWarning, match="broken-test"):
        assert camkit.list_methods() == BUILTIN_METHODS  # the clashing name is listed once
    with pytest.raises(
        PluginConflictError,
        match=r"'gradcam' is registered twice: by plugin 'clash-test' \(distribution "
        r"'camkit-clash-test'\) and by plugin 'camkit' \(distribution 'camkit'\)",
    ):
        Explainer(SmallCNN(), method="gradcam")
    assert Explainer(SmallCNN()).explain(torch.rand(3, 32, 32)).method == "gradcam++"


class Flat(nn.Module):
    """A model whose layer ``tokens`` gives a token sequence (B, N, C) no hook reshapes."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, 8, 4, stride=4)
        self.tokens = nn.Identity()
        self.fc = nn.Linear(8, 2)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.tokens(self.proj(x).flatten(2).transpose(1, 2)).mean(dim=1))


CORE_LAYOUT_ERROR = r"layer 'tokens' returns shape \(1, 16, 8\), which no camkit_to_spatial hook"
GENERIC_LAYOUT_ADVICE = manager.generic_advice("layout")


@pytest.fixture
def no_installed_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty ``camkit`` entry-point group: whatever this environment has installed (and
    autoload keeps out), the advice is only what the test's plugins and camkit say."""
    monkeypatch.setattr(manager.importlib.metadata, "entry_points", lambda group: [])


class AcmeAdvice:
    """Advice for Flat models only, recording what it was asked."""

    def __init__(self, text: str = "acme-camkit knows Flat: pass layer='proj'.") -> None:
        self.text = text
        self.asked: list[tuple[str, str | None, str]] = []

    @hookimpl
    def camkit_advice(self, model: nn.Module, layer: str | None, problem: str) -> str | None:
        self.asked.append((type(model).__name__, layer, problem))
        return self.text if isinstance(model, Flat) else None


@pytest.mark.usefixtures("no_installed_plugins")
def test_builtin_plugin_gives_no_advice_and_no_input_size() -> None:
    builtin = {p.name: p for p in camkit.list_plugins()}["camkit"]
    assert "camkit_advice" not in builtin.hooks and "camkit_input_size" not in builtin.hooks
    assert manager.enforced_input_size(SmallCNN()) is None
    assert manager.advice(SmallCNN(), "body", "layout") == GENERIC_LAYOUT_ADVICE


@pytest.mark.parametrize("problem", ["layout", "empty-map", "no-layer"])
def test_generic_advice_names_no_plugin_and_no_architecture(problem: Any) -> None:
    text = manager.generic_advice(problem)
    assert "docs/plugins.md" in text and "camkit plugins" in text
    for word in ("vit", "transformer", "swin", "deit", "token", "camkit-"):
        assert word not in text.lower()
    with pytest.raises(ValueError, match="unknown problem 'nope'"):
        manager.generic_advice("nope")  # type: ignore[arg-type]


@pytest.mark.usefixtures("no_installed_plugins")
def test_plugin_advice_is_appended_to_a_core_error() -> None:
    plugin = AcmeAdvice()
    camkit.register_plugin(plugin, name="acme-advice")
    with pytest.raises(LayerResolutionError, match=CORE_LAYOUT_ERROR) as error:
        Explainer(Flat(), layer="tokens").explain(torch.rand(3, 16, 16))
    assert str(error.value).endswith(" acme-camkit knows Flat: pass layer='proj'.")
    assert GENERIC_LAYOUT_ADVICE not in str(error.value)  # a plugin answered
    assert plugin.asked == [("Flat", "tokens", "layout")]
    # a model the plugin knows nothing about gets camkit's generic advice
    with pytest.raises(LayerResolutionError, match=r"'head' returns shape \(1, 3\)") as error:
        Explainer(SmallCNN(), layer="head").explain(torch.rand(3, 32, 32))
    assert str(error.value).endswith(GENERIC_LAYOUT_ADVICE)


def test_plugin_advice_from_an_installed_package(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_entry_points(monkeypatch, FakeEntryPoint("acme", "acme-camkit", AcmeAdvice))
    with pytest.raises(LayerResolutionError, match=CORE_LAYOUT_ERROR + ".*knows Flat"):
        Explainer(Flat(), layer="tokens").explain(torch.rand(3, 16, 16))


@pytest.mark.usefixtures("no_installed_plugins")
def test_structural_layout_error_asks_for_advice_on_the_whole_model() -> None:
    class Tokens(Flat):  # three token outputs after the last spatial map
        def __init__(self) -> None:
            super().__init__()
            self.mix = nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 8), nn.Linear(8, 8))

        def forward(self, x: Tensor) -> Tensor:
            seq = self.mix(self.tokens(self.proj(x).flatten(2).transpose(1, 2)))
            return self.fc(seq.mean(dim=1))

    plugin = AcmeAdvice()
    camkit.register_plugin(plugin, name="acme-advice")
    with pytest.raises(LayerResolutionError, match=r"token sequences.*knows Flat"):
        Explainer(Tokens()).explain(torch.rand(3, 16, 16))
    assert plugin.asked == [("Tokens", None, "layout")]


@pytest.mark.usefixtures("no_installed_plugins")
def test_every_plugins_advice_is_collected() -> None:
    camkit.register_plugin(AcmeAdvice("First."), name="first")
    camkit.register_plugin(AcmeAdvice("Second."), name="second")
    with pytest.raises(LayerResolutionError, match=CORE_LAYOUT_ERROR) as error:
        Explainer(Flat(), layer="tokens").explain(torch.rand(3, 16, 16))
    assert str(error.value).endswith("(B, C, H, W). Second. First.")  # last registered first


@pytest.mark.usefixtures("no_installed_plugins")
def test_raising_advice_plugin_does_not_hide_the_error() -> None:
    class Broken:
        @hookimpl
        def camkit_advice(self) -> str | None:
            raise RuntimeError("advice table corrupted")

    class Wrong:
        @hookimpl
        def camkit_advice(self) -> Any:
            return 42

    camkit.register_plugin(AcmeAdvice(), name="acme-advice")
    camkit.register_plugin(Broken(), name="broken-advice")
    with pytest.raises(LayerResolutionError, match=CORE_LAYOUT_ERROR) as error:
        Explainer(Flat(), layer="tokens").explain(torch.rand(3, 16, 16))
    message = str(error.value)
    assert "acme-camkit knows Flat" in message  # the other plugins' advice is kept
    assert message.endswith(
        "(Skipped: the camkit_advice hook of plugin 'broken-advice' (distribution None) raised "
        "RuntimeError: advice table corrupted.)"
    )
    camkit.unregister_plugin("acme-advice")
    camkit.register_plugin(Wrong(), name="wrong-advice")
    with pytest.raises(LayerResolutionError, match=CORE_LAYOUT_ERROR) as error:
        Explainer(Flat(), layer="tokens").explain(torch.rand(3, 16, 16))
    message = str(error.value)
    assert GENERIC_LAYOUT_ADVICE in message  # nobody answered
    assert "plugin 'broken-advice' (distribution None) raised RuntimeError: advice table" in message
    assert "plugin 'wrong-advice' (distribution None) answered int, not a string" in message


@pytest.mark.usefixtures("no_installed_plugins")
def test_empty_map_warning_carries_the_advice() -> None:
    class Blind(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Conv2d(3, 4, 3, padding=1)
            self.fc = nn.Linear(4, 2)

        def forward(self, x: Tensor) -> Tensor:
            return self.fc(self.body(x).mean(dim=(2, 3)) * 0.0)

    generic = manager.generic_advice("empty-map")
    with pytest.warns(camkit.errors.EmptyMapWarning) as record:
        Explainer(Blind(), layer="body").explain(torch.rand(3, 8, 8))
    assert str(record[0].message).endswith(f"choose an earlier layer. {generic}")

    class BlindAdvice:
        @hookimpl
        def camkit_advice(self, model: nn.Module, layer: str | None, problem: str) -> str | None:
            return f"Blind at {layer}: try 'nothing'." if problem == "empty-map" else None

    camkit.register_plugin(BlindAdvice(), name="blind-advice")
    with pytest.warns(
        camkit.errors.EmptyMapWarning, match=r"'body'.*Blind at body: try 'nothing'\.$"
    ):
        Explainer(Blind(), layer="body").explain(torch.rand(3, 8, 8))


class Sized(nn.Module):
    """A model that accepts only ``size`` inputs (as the plugin below says)."""

    def __init__(self, size: tuple[int, int], config: bool) -> None:
        super().__init__()
        self.size = size
        if config:
            self.pretrained_cfg = {"input_size": (3, 224, 224), "mean": (0.5, 0.5, 0.5)}
        self.body = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 2)

    def forward(self, x: Tensor) -> Tensor:
        assert tuple(x.shape[-2:]) == self.size, x.shape
        return self.fc(self.body(x).mean(dim=(2, 3)))


class SizePlugin:
    @hookimpl
    def camkit_input_size(self, model: nn.Module) -> tuple[int, int] | None:
        inner = model[-1] if isinstance(model, nn.Sequential) else model
        return inner.size if isinstance(inner, Sized) else None


@pytest.mark.parametrize("config", [True, False], ids=["with-config", "without-config"])
def test_plugin_input_size_sets_the_data_config(config: bool) -> None:
    model = Sized((48, 80), config)
    assert camkit.DataConfig.from_model(model).input_size == (224, 224)
    camkit.register_plugin(SizePlugin(), name="size-test")
    data = camkit.DataConfig.from_model(model)
    assert data.input_size == (48, 80)
    assert data.mean == ((0.5, 0.5, 0.5) if config else camkit.DataConfig().mean)  # the rest kept
    wrapped = nn.Sequential(nn.Identity(), model)
    assert camkit.DataConfig.from_model(wrapped).input_size == (48, 80)
    assert camkit.DataConfig.from_model(SmallCNN()).input_size == (224, 224)  # None: no say
    image = np.zeros((30, 40, 3), np.uint8)
    explanation = Explainer(model, layer="body").explain(image)  # the model asserts the size
    assert explanation.raw.shape == (48, 80) and explanation.cam.shape == (30, 40)


def test_first_input_size_answer_wins() -> None:
    class Other:
        @hookimpl
        def camkit_input_size(self) -> tuple[int, int]:
            return (32, 32)

    camkit.register_plugin(Other(), name="other-size")
    camkit.register_plugin(SizePlugin(), name="size-test")  # asked first
    assert camkit.DataConfig.from_model(Sized((48, 80), True)).input_size == (48, 80)
    assert camkit.DataConfig.from_model(SmallCNN()).input_size == (32, 32)


@pytest.mark.parametrize("answer", [(0, 32), (32,), "224", (32.0, 32), (True, 32), 224])
def test_bad_input_size_answer_names_the_plugin(answer: Any) -> None:
    class Bad:
        @hookimpl
        def camkit_input_size(self) -> Any:
            return answer

    camkit.register_plugin(Bad(), name="bad-size")
    with pytest.raises(PluginError, match=r"plugin 'bad-size' \(distribution None\) answered"):
        camkit.DataConfig.from_model(SmallCNN())


def test_bad_to_spatial_answer_names_the_plugin() -> None:
    class Flattening:
        @hookimpl
        def camkit_to_spatial(self, output: Tensor) -> Tensor | None:
            return output.flatten(2)  # (B, C, H·W): not a map

    camkit.register_plugin(Flattening(), name="flattening-test")
    with pytest.raises(PluginError, match=r"plugin 'flattening-test' \(distribution None\)"):
        Explainer(SmallCNN(), layer="body").explain(torch.rand(3, 32, 32))


def test_resolver_choosing_a_missing_layer_names_the_plugin() -> None:
    class Wrong(LayerResolver):
        name = "wrong-test"

        def resolve(self, model: nn.Module, example: Tensor | None) -> str | None:
            return "does.not.exist"

    class WrongPlugin:
        @hookimpl
        def camkit_register_resolvers(self) -> Sequence[LayerResolver]:
            return [Wrong()]

    camkit.register_plugin(WrongPlugin(), name="wrong-plugin")
    with pytest.raises(
        PluginError, match=r"resolver 'wrong-test' \(plugin 'wrong-plugin'.*'does.not.exist'"
    ):
        Explainer(SmallCNN()).explain(torch.rand(3, 32, 32))


def test_empty_gradient_map_warns() -> None:
    class Blind(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Conv2d(3, 4, 3, padding=1)
            self.fc = nn.Linear(4, 2)

        def forward(self, x: Tensor) -> Tensor:
            return self.fc(self.body(x).mean(dim=(2, 3)) * 0.0)

    with pytest.warns(camkit.errors.EmptyMapWarning, match=r"'body' for 1 of 1 images"):
        explanation = Explainer(Blind(), layer="body").explain(torch.rand(3, 8, 8))
    assert explanation.raw.max() == 0


def test_culprit_is_found_past_a_wrapper() -> None:
    class Logger:
        @hookimpl(wrapper=True)
        def camkit_to_spatial(self, output: Tensor) -> Any:
            return (yield)

    class Bad:
        @hookimpl
        def camkit_to_spatial(self, output: Tensor) -> Any:
            return output.flatten(2)

    camkit.register_plugin(Bad(), name="bad-test")
    camkit.register_plugin(Logger(), name="logger-test")
    with pytest.raises(PluginError, match=r"plugin 'bad-test'"):
        Explainer(SmallCNN(), layer="body").explain(torch.rand(3, 32, 32))


# ---- plugins that get past the warn-and-skip path ----------------------------------------


class OtherGrey(Grey):
    pass


class SecondMethodPlugin:
    """Registers the same method and renderer names as MethodPlugin."""

    @hookimpl
    def camkit_register_methods(self) -> Sequence[type[GradientWeightedCAM]]:
        class Other(Xgrad):
            pass

        return [Other]

    @hookimpl
    def camkit_register_renderers(self) -> Sequence[type[Renderer]]:
        return [OtherGrey]


def test_installed_name_clash_fails_only_where_the_name_is_used(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_entry_points(
        monkeypatch,
        FakeEntryPoint("alpha", "camkit-alpha", MethodPlugin),
        FakeEntryPoint("beta", "camkit-beta", SecondMethodPlugin),
    )
    # everything else works: the default method and renderer, other names, the listings
    x = torch.rand(3, 32, 32)
    assert Explainer(SmallCNN()).explain(x).method == "gradcam++"
    assert Explainer(SmallCNN(), method="gradcam", renderer="viridis").explain(x).cam.max() == 1
    assert camkit.list_methods("xgrad-*") == ["xgrad-test"]
    both = r"by plugin 'alpha' \(distribution 'camkit-alpha'\) and by plugin 'beta' "
    both += r"\(distribution 'camkit-beta'\)"
    with pytest.raises(PluginConflictError, match=rf"method name 'xgrad-test' .*twice: {both}"):
        Explainer(SmallCNN(), method="xgrad-test")
    with pytest.raises(PluginConflictError, match=rf"renderer name 'grey-test' .*twice: {both}"):
        Explainer(SmallCNN(), renderer="grey-test")
    with pytest.raises(PluginConflictError, match="xgrad-test"):
        camkit.plugins.create_method("xgrad-test")
    # the class itself, given instead of the name, works
    assert Explainer(SmallCNN(), method=Xgrad).explain(x).method == "xgrad-test"
    clashing = [e for e in camkit.plugins.list_registrations() if e.conflict]
    assert [(e.kind, e.name, e.plugin, e.distribution) for e in clashing] == [
        ("method", "xgrad-test", "alpha", "camkit-alpha"),
        ("method", "xgrad-test", "beta", "camkit-beta"),
        ("renderer", "grey-test", "alpha", "camkit-alpha"),
        ("renderer", "grey-test", "beta", "camkit-beta"),
    ]
    assert not any(e.conflict for e in camkit.plugins.list_registrations() if e.plugin == "camkit")

    from camkit.tools.cli import main

    assert main(["plugins"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for plugin, dist in (("alpha", "camkit-alpha"), ("beta", "camkit-beta")):
        assert ["method", "xgrad-test", plugin, dist, "CONFLICT"] in [ln.split() for ln in lines]
    assert ["method", "gradcam", "camkit", "camkit"] in [ln.split() for ln in lines]
    [summary] = [ln for ln in lines if ln.startswith("CONFLICT: method")]
    assert "plugin 'alpha' (distribution 'camkit-alpha') and by plugin 'beta'" in summary


def test_same_entry_point_name_in_two_distributions_keeps_both(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Other:
        @hookimpl
        def camkit_register_renderers(self) -> Sequence[type[Renderer]]:
            class Red(Grey):
                name = "red-test"

            return [Red]

    class Shadow:  # an entry point also named like the built-ins
        @hookimpl
        def camkit_register_architectures(self) -> Mapping[str, str]:
            return {"shadow_net": "body"}

    fake_entry_points(
        monkeypatch,
        FakeEntryPoint("vit", "zz-vit", Other),
        FakeEntryPoint("vit", "camkit-vit", MethodPlugin),
        FakeEntryPoint("camkit", "camkit-shadow", Shadow),
    )
    plugins = {p.name: p.distribution for p in camkit.list_plugins()}
    assert plugins == {
        "camkit": "camkit",
        "camkit-shadow:camkit": "camkit-shadow",
        "camkit-vit:vit": "camkit-vit",
        "zz-vit:vit": "zz-vit",
    }
    assert "xgrad-test" in camkit.list_methods() and "red-test" in camkit.list_renderers()
    assert "shadow_net" in camkit.list_architectures()
    assert camkit.list_methods() == sorted([*BUILTIN_METHODS, "xgrad-test"])  # built-ins intact


@pytest.mark.parametrize(
    "failure", [SystemExit(3), SystemExit("plugin gave up"), BaseException("odd")]
)
def test_system_exit_in_a_plugins_import_is_skipped(
    monkeypatch: pytest.MonkeyPatch, failure: BaseException
) -> None:
    def exits() -> Any:
        raise failure

    fake_entry_points(
        monkeypatch,
        FakeEntryPoint("exiting", "camkit-exiting", exits),
        FakeEntryPoint("good", "camkit-good", MethodPlugin),
    )
    with pytest.warns(
        CamkitPluginWarning,
        match=rf"'exiting' from distribution 'camkit-exiting': {type(failure).__name__}",
    ):
        assert "xgrad-test" in camkit.list_methods()
    assert not camkit.plugins.get_plugin_manager().has_plugin("exiting")
    assert Explainer(SmallCNN()).explain(torch.rand(3, 32, 32)).method == "gradcam++"


def test_system_exit_in_a_registration_hook_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    class Exiting:
        @hookimpl
        def camkit_register_methods(self) -> Sequence[type[GradientWeightedCAM]]:
            raise SystemExit(1)

    fake_entry_points(monkeypatch, FakeEntryPoint("exiting", "camkit-exiting", Exiting))
    with pytest.warns(CamkitPluginWarning, match="'exiting'.*'camkit-exiting'.*SystemExit"):
        assert camkit.list_methods() == BUILTIN_METHODS


def test_keyboard_interrupt_in_a_plugins_import_is_not_swallowed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def interrupted() -> Any:
        raise KeyboardInterrupt

    fake_entry_points(monkeypatch, FakeEntryPoint("slow", "camkit-slow", interrupted))
    with pytest.raises(KeyboardInterrupt):
        camkit.list_methods()


class KeyErrorSpatial:
    """A camkit_to_spatial that raises for every model, as a buggy plugin would."""

    def __init__(self) -> None:
        self.calls = 0

    @hookimpl
    def camkit_to_spatial(self, model: nn.Module, layer: str, output: Tensor) -> Tensor | None:
        self.calls += 1
        return {"blocks": output}[layer]  # KeyError for any other layer


def test_raising_to_spatial_plugin_does_not_break_cnns(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    model, x = SmallCNN(), torch.rand(3, 32, 32)
    expected = Explainer(model, layer="body").explain(x)
    plugin = KeyErrorSpatial()
    fake_entry_points(
        monkeypatch, FakeEntryPoint("broken-spatial", "camkit-broken", lambda: plugin)
    )
    manager.reset_plugins()
    with pytest.warns(CamkitPluginWarning) as record:
        explanation = Explainer(model, layer="body").explain(x)
    np.testing.assert_allclose(explanation.raw, expected.raw, rtol=1e-6, atol=1e-7)
    assert plugin.calls >= 2  # asked for the activations and for the gradients
    [warning] = [str(w.message) for w in record]  # once, though asked several times
    assert "camkit_to_spatial hook of plugin 'broken-spatial' (distribution 'camkit-broken')" in (
        warning
    )
    assert "KeyError: 'body'" in warning and "pip uninstall camkit-broken" in warning
    assert "report the error to its authors" in warning
    import warnings as warnings_module

    with warnings_module.catch_warnings():
        warnings_module.simplefilter("error")  # no second warning
        again = Explainer(model, layer="body").explain(x)
    np.testing.assert_allclose(again.raw, expected.raw, rtol=1e-6, atol=1e-7)


def test_raising_to_spatial_plugin_is_named_when_nothing_else_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake_entry_points(
        monkeypatch, FakeEntryPoint("broken-spatial", "camkit-broken", KeyErrorSpatial)
    )
    with (
        pytest.warns(CamkitPluginWarning, match="broken-spatial"),
        pytest.raises(
            PluginError,
            match=r"camkit_to_spatial hook of plugin 'broken-spatial' \(distribution "
            r"'camkit-broken'\) raised KeyError: 'tokens', on the output \(1, 16, 8\) of layer "
            r"'tokens' of Flat, and no other plugin reads that layout\. Update or uninstall "
            r"'camkit-broken'",
        ) as error,
    ):
        Explainer(Flat(), layer="tokens").explain(torch.rand(3, 16, 16))
    assert isinstance(error.value.__cause__, KeyError)


def test_raising_to_spatial_plugin_leaves_the_answer_to_another_plugin() -> None:
    class Tokens:
        @hookimpl
        def camkit_to_spatial(self, output: Tensor) -> Tensor | None:
            if output.ndim != 3:
                return None
            return output.transpose(1, 2).reshape(output.shape[0], output.shape[2], 4, 4)

    class Logger:  # a wrapper around the hook sees the failure pass through it
        @hookimpl(wrapper=True)
        def camkit_to_spatial(self) -> Any:
            return (yield)

    torch.manual_seed(0)
    model, x = Flat(), torch.rand(3, 16, 16)
    camkit.register_plugin(Tokens(), name="tokens-test")
    expected = Explainer(model, layer="tokens").explain(x, target=0)
    camkit.register_plugin(KeyErrorSpatial(), name="broken-spatial")  # asked first
    camkit.register_plugin(Logger(), name="logger-test")
    with pytest.warns(CamkitPluginWarning) as record:
        explanation = Explainer(model, layer="tokens").explain(x, target=0)
    [warning] = [str(w.message) for w in record]  # the wrapper is not blamed
    assert "hook of plugin 'broken-spatial' (distribution None) raised KeyError" in warning
    assert "camkit.unregister_plugin('broken-spatial')" in warning
    np.testing.assert_allclose(explanation.raw, expected.raw, rtol=1e-6, atol=1e-7)


def test_deliberate_error_of_a_to_spatial_plugin_is_raised_as_it_is() -> None:
    class Refusing:
        @hookimpl
        def camkit_to_spatial(self, layer: str) -> Tensor | None:
            raise LayerResolutionError(f"layer {layer!r} is attention weights; choose a block")

    camkit.register_plugin(Refusing(), name="refusing-test")
    with pytest.raises(LayerResolutionError, match="attention weights; choose a block"):
        Explainer(SmallCNN(), layer="body").explain(torch.rand(3, 32, 32))


def test_raising_input_size_plugin_is_passed_over(monkeypatch: pytest.MonkeyPatch) -> None:
    class Broken:
        @hookimpl
        def camkit_input_size(self, model: nn.Module) -> tuple[int, int] | None:
            raise AttributeError("'SmallCNN' object has no attribute 'patch_embed'")

    fake_entry_points(monkeypatch, FakeEntryPoint("broken-size", "camkit-broken", Broken))
    with pytest.warns(
        CamkitPluginWarning,
        match=r"camkit_input_size hook of plugin 'broken-size' \(distribution 'camkit-broken'\) "
        r"raised AttributeError: .*patch_embed.* \(for SmallCNN\)",
    ):
        assert camkit.DataConfig.from_model(SmallCNN()).input_size == (224, 224)
    camkit.register_plugin(SizePlugin(), name="size-test")
    assert camkit.DataConfig.from_model(Sized((48, 80), True)).input_size == (48, 80)
    explanation = Explainer(SmallCNN(), layer="body").explain(np.zeros((20, 30, 3), np.uint8))
    assert explanation.cam.shape == (20, 30)


class BrokenResolver(LayerResolver):
    name = "broken-test"

    def resolve(self, model: nn.Module, example: Tensor | None) -> str | None:
        return {"Vit": "blocks.11"}[type(model).__name__]  # KeyError for anything else


class BrokenResolverPlugin:
    @hookimpl
    def camkit_register_resolvers(self) -> Sequence[LayerResolver]:
        return [BrokenResolver()]


def test_raising_resolver_plugin_does_not_break_cnns(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_entry_points(
        monkeypatch, FakeEntryPoint("broken-resolver", "camkit-broken", BrokenResolverPlugin)
    )
    with pytest.warns(
        CamkitPluginWarning,
        match=r"layer resolver 'broken-test' of plugin 'broken-resolver' \(distribution "
        r"'camkit-broken'\) raised KeyError: 'SmallCNN'",
    ):
        explanation = Explainer(SmallCNN()).explain(torch.rand(3, 32, 32))
    assert explanation.layer == "body"
    # a model no other resolver knows: the error names the plugin
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 2))
    with pytest.raises(
        PluginError,
        match=r"no target layer found for Sequential: a layer resolver of plugin "
        r"'broken-resolver' \(distribution 'camkit-broken'\) raised KeyError: 'Sequential'.*"
        r"Pass layer=.*pip uninstall camkit-broken",
    ):
        Explainer(mlp).explain(torch.rand(3, 8, 8))
