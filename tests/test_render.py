"""JetRenderer: exact colours, blending, RGB order and input checks."""

from __future__ import annotations

import numpy as np
import pytest

from camkit import JetRenderer


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
