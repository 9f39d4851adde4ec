"""Grad-CAM and Grad-CAM++ against hand-computed closed-form values."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny_models import G0, GRADCAM_CLASS0, GRADCAMPP_CLASS0, A, linear_head_model

from camkit import Explainer, GradCAM, GradCAMPlusPlus, LayerCapture
from camkit.errors import MethodError
from camkit.methods import GradientWeightedCAM, MethodContext


def capture(activations: torch.Tensor, gradients: torch.Tensor) -> MethodContext:
    return MethodContext.from_capture(
        LayerCapture(activations[None], gradients[None], torch.zeros(1), "features")
    )


def test_gradcampp_closed_form_exact_eps0() -> None:
    cam = GradCAMPlusPlus(eps=0.0).compute(capture(A, G0))
    torch.testing.assert_close(cam[0], GRADCAMPP_CLASS0, rtol=0, atol=1e-6)


def test_gradcampp_default_eps_matches_reference_value() -> None:
    assert GradCAMPlusPlus().eps == 1e-6
    cam = GradCAMPlusPlus().compute(capture(A, G0))
    torch.testing.assert_close(cam[0], GRADCAMPP_CLASS0, rtol=1e-5, atol=1e-5)


def test_gradcampp_weights_hand_computed() -> None:
    weights = GradCAMPlusPlus(eps=0.0).channel_weights(A[None], G0[None])
    torch.testing.assert_close(weights, torch.tensor([[13 / 84, 2.0]]), rtol=0, atol=1e-7)


def test_gradcampp_alpha_zero_where_gradient_or_denominator_vanishes() -> None:
    # S = 10, g = -0.2 makes 2 g^2 + S g^3 = 0.08 - 0.08 = 0: alpha must be 0, not inf/nan.
    activations = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    gradients = torch.tensor([[[[-0.2, 0.0], [0.0, 0.0]]]])
    weights = GradCAMPlusPlus(eps=0.0).channel_weights(activations, gradients)
    assert torch.isfinite(weights).all()
    assert weights.item() == 0.0
    # only positive gradients contribute through ReLU(g): g = 0.5 with S = 10 -> 1/7 * 0.5
    gradients = torch.tensor([[[[0.5, -0.2], [0.0, 0.0]]]])
    weights = GradCAMPlusPlus(eps=0.0).channel_weights(activations, gradients)
    assert weights.item() == pytest.approx(0.5 / 7, abs=1e-7)


def test_gradcam_closed_form() -> None:
    cam = GradCAM().compute(capture(A, G0))
    torch.testing.assert_close(cam[0], GRADCAM_CLASS0, rtol=0, atol=1e-6)


def test_negative_weighted_sum_is_relued() -> None:
    gradients = -G0.abs()  # all weights of Grad-CAM negative -> the map is 0 everywhere
    cam = GradCAM().compute(capture(A, gradients))
    assert cam.min().item() == 0.0 and cam.max().item() == 0.0


@pytest.mark.parametrize(
    ("method", "expected"),
    [(GradCAMPlusPlus(eps=0.0), GRADCAMPP_CLASS0), (GradCAM(), GRADCAM_CLASS0)],
)
def test_explainer_end_to_end_closed_form(
    method: GradientWeightedCAM, expected: torch.Tensor
) -> None:
    model = linear_head_model()
    result = Explainer(model, method=method, layer="features", device="cpu").explain(
        torch.zeros(3, 8, 8), target=0
    )
    np.testing.assert_allclose(result.raw, expected.numpy(), rtol=0, atol=1e-6)
    normalised = (expected - expected.min()) / (expected.max() - expected.min())
    # the raw map is min-max normalised, then resized bilinearly to the 8x8 input
    assert result.cam.shape == (8, 8)
    assert result.cam.max() <= 1.0 and result.cam.min() >= 0.0
    corner = float(normalised[0, 0])
    assert result.cam[0, 0] == pytest.approx(corner, abs=1e-6)  # corners are not interpolated
    assert result.target == 0
    score = float((A * G0).sum())
    assert result.target_score == pytest.approx(score, abs=1e-5)
    assert result.layer == "features"


def test_gradcampp_eps_validation() -> None:
    with pytest.raises(ValueError, match="eps must be >= 0"):
        GradCAMPlusPlus(eps=-1.0)


def test_layer_capture_validates_shapes() -> None:
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        LayerCapture(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(2), "x")
    with pytest.raises(ValueError, match="same shape"):
        LayerCapture(torch.zeros(1, 2, 3, 3), torch.zeros(1, 2, 4, 4), torch.zeros(1), "x")


def test_subclass_overrides_one_method() -> None:
    class GradientNorm(GradientWeightedCAM):
        name = "gradnorm-test"

        def channel_weights(
            self, activations: torch.Tensor, gradients: torch.Tensor
        ) -> torch.Tensor:
            return gradients.abs().amax(dim=(2, 3))

    cam = GradientNorm().compute(capture(A, G0))
    expected = torch.relu(1.0 * A[0] + 2.0 * A[1])
    torch.testing.assert_close(cam[0], expected)


def test_bad_channel_weights_shape_is_reported() -> None:
    class Broken(GradientWeightedCAM):
        def channel_weights(
            self, activations: torch.Tensor, gradients: torch.Tensor
        ) -> torch.Tensor:
            return gradients.mean(dim=(1, 2, 3))

    with pytest.raises(MethodError, match=r"Broken.channel_weights returned \(1,\)"):
        Broken().compute(capture(A, G0))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_captures_are_computed_in_float32(dtype: torch.dtype) -> None:
    """Gradients of 1e-4 (a ViT's norm1) have squares below float16's range: computed in
    float16, Grad-CAM++ would give an all-zero map."""
    generator = torch.Generator().manual_seed(0)
    activations = torch.randn(2, 8, 5, 5, generator=generator)
    gradients = 1e-4 * torch.randn(2, 8, 5, 5, generator=generator)
    half = MethodContext.from_capture(
        LayerCapture(activations.to(dtype), gradients.to(dtype), torch.zeros(2), "x")
    )
    exact = MethodContext.from_capture(
        LayerCapture(
            activations.to(dtype).float(), gradients.to(dtype).float(), torch.zeros(2), "x"
        )
    )
    for method in (GradCAMPlusPlus(), GradCAM()):
        result = method(half)
        expected = method(exact)
        assert result.dtype == torch.float32
        assert expected.abs().max() > 0
        torch.testing.assert_close(result, expected, rtol=1e-5, atol=1e-9)
