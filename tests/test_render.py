"""Renderers: JET and every other OpenCV colormap (exact colours, blending, RGB order, the
registry, input checks), and colour bars."""

from __future__ import annotations

import base64
import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from doc_blocks import run_page
from tiny_models import SmallCNN

import camkit
from camkit import Explainer, JetRenderer, Renderer
from camkit.errors import ConfigurationError, InputError, OutputError, UnknownNameError
from camkit.plugins import create_renderer, list_registrations
from camkit.render import (
    COLORMAP_RENDERERS,
    COLORMAPS,
    ColormapRenderer,
    check_render_inputs,
    colorbar,
    colorbar_data_uri,
)


def test_jet_endpoints_are_rgb() -> None:
    heat = JetRenderer().heatmap(np.array([[0.0, 1.0]], dtype=np.float32))
    # OpenCV's JET is dark blue at 0 and dark red at 1; BGR (128, 0, 0) -> RGB (0, 0, 128)
    np.testing.assert_array_equal(heat[0, 0], [0, 0, 128])
    np.testing.assert_array_equal(heat[0, 1], [128, 0, 0])


def test_blend_formula_and_rounding() -> None:
    image = np.full((1, 2, 3), 255, dtype=np.uint8)
    cam = np.array([[0.0, 1.0]], dtype=np.float32)
    out = JetRenderer().render(image, cam, alpha=0.5)
    # 0.5 * (0, 0, 128) + 0.5 * 255 = (127.5, 127.5, 191.5) -> rint -> (128, 128, 192)
    np.testing.assert_array_equal(out[0, 0], [128, 128, 192])
    np.testing.assert_array_equal(out[0, 1], [192, 128, 128])
    assert out.dtype == np.uint8


@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
def test_alpha_extremes(alpha: float) -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    cam = rng.random((5, 7)).astype(np.float32)
    out = JetRenderer().render(image, cam, alpha)
    heat = JetRenderer().heatmap(cam).astype(np.float64)
    expected = np.rint(alpha * heat + (1 - alpha) * image.astype(np.float64))
    np.testing.assert_allclose(out, expected, atol=1)  # float32 blend vs float64
    if alpha == 0.0:
        np.testing.assert_array_equal(out, image)
    if alpha == 1.0:
        np.testing.assert_array_equal(out, heat.astype(np.uint8))


def test_shape_and_type_errors() -> None:
    renderer = JetRenderer()
    image = np.zeros((4, 4, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="does not match the image"):
        renderer.render(image, np.zeros((3, 4), dtype=np.float32))
    with pytest.raises(ValueError, match=r"RGB with shape \(H, W, 3\)"):
        renderer.render(np.zeros((4, 4), dtype=np.uint8), np.zeros((4, 4)))
    with pytest.raises(ValueError, match="uint8"):
        renderer.render(image.astype(np.float32), np.zeros((4, 4)))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="2-D"):
        renderer.render(image, np.zeros((4, 4, 1)))
    with pytest.raises(ValueError, match=r"alpha must lie in \[0, 1\]"):
        renderer.render(image, np.zeros((4, 4)), alpha=1.5)
    for bad in (np.nan, np.inf, -np.inf):  # no overlay is ever drawn from a non-finite map
        cam = np.full((4, 4), 0.5, dtype=np.float32)
        cam[1, 2] = bad
        with pytest.raises(InputError, match="1 NaN or infinite values; no overlay is drawn"):
            renderer.render(image, cam)
        with pytest.raises(InputError, match="NaN or infinite"):
            renderer.render_upsampled(image, cam[1:3, 1:3])


# --- every OpenCV colormap as a renderer ------------------------------------------------------

OPENCV_COLORMAPS = sorted(
    name.removeprefix("COLORMAP_").lower() for name in dir(cv2) if name.startswith("COLORMAP_")
)


def opencv_colours(colormap: str, cam: np.ndarray) -> np.ndarray:
    """OpenCV's colours of ``cam`` (clipped to [0, 1], 255 levels), as RGB float64."""
    levels = np.rint(np.clip(np.nan_to_num(cam), 0.0, 1.0) * 255.0).astype(np.uint8)
    bgr = cv2.applyColorMap(levels, getattr(cv2, f"COLORMAP_{colormap.upper()}"))
    return bgr[:, :, ::-1].astype(np.float64)


def test_opencv_has_the_colormaps_users_ask_for() -> None:
    assert {"jet", "turbo", "viridis", "inferno", "magma", "plasma"} <= set(OPENCV_COLORMAPS)
    assert list(COLORMAPS) == OPENCV_COLORMAPS
    assert len(OPENCV_COLORMAPS) >= 20


def test_every_colormap_is_a_registered_renderer() -> None:
    assert camkit.list_renderers("*") == OPENCV_COLORMAPS  # camkit alone (conftest)
    assert camkit.list_renderers("twilight*") == ["twilight", "twilight_shifted"]
    for name in OPENCV_COLORMAPS:
        [entry] = [e for e in list_registrations("renderer") if e.name == name]
        assert entry.plugin == "camkit" and entry.value is COLORMAP_RENDERERS[name]
        assert issubclass(entry.value, ColormapRenderer) and entry.value.name == name
    assert COLORMAP_RENDERERS["jet"] is JetRenderer
    assert isinstance(create_renderer("jet"), JetRenderer)


@pytest.mark.parametrize("name", OPENCV_COLORMAPS)
def test_renderer_is_the_opencv_colormap_blended(name: str) -> None:
    rng = np.random.default_rng(len(name))
    image = rng.integers(0, 256, (6, 9, 3), dtype=np.uint8)
    cam = rng.uniform(-0.2, 1.2, (6, 9)).astype(np.float32)  # clipped to [0, 1]
    colours = opencv_colours(name, cam)
    renderer = create_renderer(name)  # the registered class, no arguments
    assert renderer.colormap == name  # type: ignore[attr-defined]
    # alpha 0.5 and 1 are exact in float32 and float64 alike
    half = np.rint(0.5 * colours + 0.5 * image.astype(np.float64))
    np.testing.assert_array_equal(renderer.render(image, cam, alpha=0.5), half)
    np.testing.assert_array_equal(renderer.render(image, cam, alpha=1.0), colours)
    np.testing.assert_array_equal(renderer.render(image, cam, alpha=0.0), image)
    other = np.rint(0.3 * colours + 0.7 * image.astype(np.float64))
    np.testing.assert_allclose(renderer.render(image, cam, alpha=0.3), other, atol=1)
    # the generic class with the same colormap draws the same picture
    np.testing.assert_array_equal(
        ColormapRenderer(name).render(image, cam, 0.3), renderer.render(image, cam, 0.3)
    )
    np.testing.assert_array_equal(
        ColormapRenderer(name).table(), opencv_colours(name, np.arange(256)[None] / 255)[0]
    )


@pytest.mark.parametrize(
    ("name", "low", "high"),
    [
        ("jet", (0, 0, 128), (128, 0, 0)),  # dark blue to dark red
        ("autumn", (255, 0, 0), (255, 255, 0)),  # red to yellow
        ("winter", (0, 0, 255), (0, 255, 128)),  # blue to green
        ("viridis", (68, 1, 84), (253, 231, 37)),  # dark purple to yellow
        ("hot", (0, 0, 0), (255, 255, 255)),  # black to white
    ],
)
def test_colours_are_rgb(name: str, low: tuple[int, ...], high: tuple[int, ...]) -> None:
    heat = ColormapRenderer(name).heatmap(np.array([[0.0, 1.0]]))
    np.testing.assert_array_equal(heat[0], [low, high])


def test_unknown_colormap_names_suggest_close_ones() -> None:
    with pytest.raises(
        UnknownNameError, match=r"unknown renderer 'virdis'; did you mean 'viridis'"
    ):
        create_renderer("virdis")
    with pytest.raises(UnknownNameError, match=r"did you mean 'turbo'"):
        Explainer(SmallCNN(), renderer="turbp")
    with pytest.raises(UnknownNameError, match=r"unknown colormap 'Magme'; did you mean 'magma'"):
        ColormapRenderer("Magme")
    with pytest.raises(ConfigurationError, match="colormap must be a colormap name"):
        ColormapRenderer(2)  # type: ignore[arg-type]


def test_explainer_overlays_with_a_named_colormap() -> None:
    torch.manual_seed(0)
    image = np.random.default_rng(1).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    explainer = Explainer(SmallCNN(), renderer="viridis", device="cpu")
    assert repr(explainer.renderer) == "ViridisRenderer()"
    explanation = explainer.explain(image)
    expected = np.rint(0.4 * opencv_colours("viridis", explanation.cam) + 0.6 * image)
    np.testing.assert_allclose(explanation.overlay(0.4), expected, atol=1)
    assert np.abs(explanation.overlay(1.0) - opencv_colours("viridis", explanation.cam)).max() == 0


def test_renderers_pickle_and_repr() -> None:
    turbo = pickle.loads(pickle.dumps(create_renderer("turbo")))
    assert type(turbo) is COLORMAP_RENDERERS["turbo"] and repr(turbo) == "TurboRenderer()"
    assert type(turbo).__name__ == "TurboRenderer"
    assert COLORMAP_RENDERERS["twilight_shifted"].__name__ == "TwilightShiftedRenderer"
    assert repr(ColormapRenderer("magma")) == "ColormapRenderer(colormap='magma')"
    assert repr(JetRenderer()) == "JetRenderer()"


# --- colour bars ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["jet", "viridis", "twilight_shifted"])
def test_vertical_colorbar_runs_from_one_at_the_top_to_zero(name: str) -> None:
    bar = colorbar(name, height=101, width=7)
    assert bar.shape == (101, 7, 3) and bar.dtype == np.uint8
    assert (bar == bar[:, :1]).all()  # every column the same
    ends = opencv_colours(name, np.array([[1.0, 0.5, 0.0]]))[0]  # 0.5 is level 128
    np.testing.assert_array_equal(bar[[0, 50, 100], 0], ends)
    # the bar's values are float32, as camkit's maps: 255·v rounds as it does in an overlay
    values = np.linspace(1.0, 0.0, 101).astype(np.float32)[:, None]
    np.testing.assert_array_equal(bar[:, :1], opencv_colours(name, values))


def test_horizontal_colorbar_runs_from_zero_on_the_left() -> None:
    bar = colorbar(ColormapRenderer("inferno"), vertical=False)
    assert bar.shape == (16, 256, 3)
    # 256 pixels from 0 to 1: pixel k is level k exactly
    np.testing.assert_array_equal(bar[5], ColormapRenderer("inferno").table())
    np.testing.assert_array_equal(bar[0, [0, -1]], [[0, 0, 4], [252, 255, 164]])
    assert colorbar().shape == (256, 16, 3)  # jet, vertical


def test_colorbar_of_any_renderer_is_what_it_draws_at_alpha_one() -> None:
    class Red(Renderer):
        name = "red-test"

        def render(self, image: np.ndarray, cam: np.ndarray, alpha: float = 0.5) -> np.ndarray:
            cam32 = check_render_inputs(image, cam, alpha)
            out = image.copy()
            out[:, :, 0] = np.rint(alpha * 255 * cam32)
            return out

    bar = colorbar(Red, height=2, width=3, vertical=False)
    np.testing.assert_array_equal(bar[:, :, 0], [[0, 128, 255]] * 2)
    assert not bar[:, :, 1:].any()


def test_colorbar_bad_arguments() -> None:
    with pytest.raises(ConfigurationError, match="height must be an int >= 1"):
        colorbar("jet", height=0)
    with pytest.raises(ConfigurationError, match="width must be an int >= 1"):
        colorbar("jet", width=2.5)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="renderer must be a registered name"):
        colorbar(3)  # type: ignore[arg-type]
    with pytest.raises(UnknownNameError, match="did you mean 'plasma'"):
        colorbar("plasm")


def test_colorbar_data_uri_is_the_bar_as_png_encoded_in_memory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)

    def no_files(*_: object) -> bool:
        raise AssertionError("colorbar_data_uri must not write files")

    monkeypatch.setattr(cv2, "imwrite", no_files)
    uri = colorbar_data_uri("magma", height=9, width=40, vertical=False)
    prefix = "data:image/png;base64,"
    assert uri.startswith(prefix)
    data = np.frombuffer(base64.b64decode(uri.removeprefix(prefix), validate=True), np.uint8)
    decoded = cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(decoded, colorbar("magma", height=9, width=40, vertical=False))
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(cv2, "imencode", lambda *_: (False, None))
    with pytest.raises(OutputError, match="could not encode"):
        colorbar_data_uri("jet")


def test_render_page_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert run_page("api/render.md") >= 1
