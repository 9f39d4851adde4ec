"""HiResCAM, element-wise Grad-CAM, XGrad-CAM and LayerCAM: closed-form values on tiny
hand-built models, and parity with pytorch-grad-cam 1.5.7 on three architectures."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np
import pytest
import torch
from helpers import minmax
from parity_models import (
    ARCHITECTURES,
    IDS,
    TOLERANCE,
    camkit_maps,
    inputs,
    model,
    reference_maps,
)
from tiny_models import G0, A, linear_head_model, signed_head_model
from torch import nn

import camkit
from camkit import Explainer
from camkit.errors import ConfigurationError
from camkit.methods import (
    CAMMethod,
    GradCAMElementWise,
    HiResCAM,
    LayerCAM,
    LayerCapture,
    MethodContext,
    XGradCAM,
)

# ---- closed form ----------------------------------------------------------------------

# With A and G0 of tiny_models, g ⊙ A = [[1, 0], [-3, 2]] (channel 1), [[0, 2], [0, 0]]
# (channel 2), and A >= 0:
#   HiResCAM:    ReLU([[1, 2], [-3, 2]])      = [[1, 2], [0, 2]]
#   element-wise: ReLU(ch1) + ReLU(ch2)        = [[1, 2], [0, 2]]
#   LayerCAM:    ReLU(G0) ⊙ A summed           = [[1, 2], [0, 2]]   (= element-wise when A >= 0)
#   XGrad-CAM:   w_1 = (1 + 0 - 3 + 2) / 10 = 0, w_2 = 2 / 1 = 2  ->  2 · A_2 = [[0, 2], [0, 0]]
SAME_ON_A_G0 = torch.tensor([[1.0, 2.0], [0.0, 2.0]])
XGRADCAM_A_G0 = torch.tensor([[0.0, 2.0], [0.0, 0.0]])

# A second case that tells the four apart: activations of both signs, channels that
# disagree at a position.
A2 = torch.tensor(
    [
        [[1.0, 2.0], [3.0, 4.0]],  # S_1 = 10
        [[0.0, 1.0], [-2.0, 3.0]],  # S_2 = 2
    ]
)
G2 = torch.tensor(
    [
        [[1.0, 1.0], [-1.0, 0.5]],
        [[2.0, -1.0], [-1.0, 2.0]],
    ]
)
# g ⊙ A: channel 1 [[1, 2], [-3, 2]], channel 2 [[0, -1], [2, 6]]
EXPECTED_A2_G2 = {
    # ReLU of the sum [[1, 1], [-1, 8]]
    "hirescam": torch.tensor([[1.0, 1.0], [0.0, 8.0]]),
    # [[1, 2], [0, 2]] + [[0, 0], [2, 6]]
    "gradcamelementwise": torch.tensor([[1.0, 2.0], [2.0, 8.0]]),
    # ReLU(G2) ⊙ A2: [[1, 2], [0, 2]] + [[0, 0], [0, 6]] (the -2 activation has g = -1)
    "layercam": torch.tensor([[1.0, 2.0], [0.0, 8.0]]),
    # w_1 = (1 + 2 - 3 + 2) / 10 = 0.2, w_2 = (0 - 1 + 2 + 6) / 2 = 3.5:
    # ReLU(0.2 · A_1 + 3.5 · A_2) = ReLU([[0.2, 3.9], [-6.4, 11.3]])
    "xgradcam": torch.tensor([[0.2, 3.9], [0.0, 11.3]]),
}

METHODS: list[type[CAMMethod]] = [HiResCAM, GradCAMElementWise, XGradCAM, LayerCAM]


def explain_tiny(net: nn.Module, method: CAMMethod) -> np.ndarray:
    explainer = Explainer(net, method=method, layer="features", device="cpu")
    result = explainer.explain(torch.zeros(3, 8, 8), target=0)
    assert result.target == 0 and result.method == method.name
    return result.raw


@pytest.mark.parametrize("cls", METHODS, ids=[m.name for m in METHODS])
def test_closed_form_on_a_g0(cls: type[CAMMethod]) -> None:
    expected = XGRADCAM_A_G0 if cls is XGradCAM else SAME_ON_A_G0
    raw = explain_tiny(linear_head_model(), cls())
    np.testing.assert_allclose(raw, expected.numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("cls", METHODS, ids=[m.name for m in METHODS])
def test_closed_form_with_mixed_signs(cls: type[CAMMethod]) -> None:
    raw = explain_tiny(signed_head_model(A2, G2), cls())
    np.testing.assert_allclose(raw, EXPECTED_A2_G2[cls.name].numpy(), rtol=1e-6, atol=1e-6)


def test_xgradcam_weights_hand_computed() -> None:
    weights = XGradCAM(eps=0.0).channel_weights(A2[None], G2[None])
    torch.testing.assert_close(weights, torch.tensor([[0.2, 3.5]]), rtol=0, atol=1e-7)
    # pytorch-grad-cam's eps = 1e-7 on the channel sums is the default
    assert XGradCAM().eps == 1e-7
    weights = XGradCAM().channel_weights(A[None], G0[None])
    torch.testing.assert_close(weights, torch.tensor([[0.0, 2.0 / (1 + 1e-7)]]))


def test_xgradcam_channel_with_zero_denominator_gets_zero_weight() -> None:
    activations = torch.tensor([[[[1.0, -1.0], [0.0, 0.0]]], [[[1.0, 2.0], [0.0, 1.0]]]])
    gradients = torch.ones_like(activations)
    weights = XGradCAM(eps=0.0).channel_weights(activations, gradients)
    assert torch.isfinite(weights).all()
    torch.testing.assert_close(weights, torch.tensor([[0.0], [1.0]]))


@pytest.mark.parametrize("eps", [-1e-7, float("nan"), float("inf"), "1e-7", True])
def test_xgradcam_rejects_bad_eps(eps: Any) -> None:
    with pytest.raises(ConfigurationError, match="eps"):
        XGradCAM(eps=eps)


def test_hirescam_is_cam_before_global_pooling_and_a_linear_head() -> None:
    """The paper's theorem: with global average pooling and one linear layer after it,
    HiResCAM is CAM, ``ReLU(Σ_k W_ck A^k) / (h·w)``."""
    torch.manual_seed(0)
    net = nn.Sequential(
        OrderedDict(
            features=nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU()),
            pool=nn.AdaptiveAvgPool2d(1),
            flatten=nn.Flatten(),
            fc=nn.Linear(6, 4),
        )
    ).eval()
    x = torch.randn(2, 3, 5, 5, generator=torch.Generator().manual_seed(1))
    batch = Explainer(net, method=HiResCAM(), layer="features", device="cpu").explain_batch(
        x, [1, 3]
    )
    with torch.no_grad():
        activations = net.features(x)
    weights = net.fc.weight.detach()[[1, 3]]
    expected = torch.relu(torch.einsum("bk,bkhw->bhw", weights, activations)) / 25
    assert expected.amax(dim=(1, 2)).min() > 0
    np.testing.assert_allclose(batch.raws(), expected.numpy(), rtol=1e-5, atol=1e-7)


def test_element_wise_methods_from_a_capture() -> None:
    """The methods on tensors at hand, batched: each image gets its own map."""
    activations = torch.stack([A2, A])
    gradients = torch.stack([G2, G0])
    context = MethodContext.from_capture(
        LayerCapture(activations, gradients, torch.zeros(2), "features")
    )
    for cls in METHODS:
        maps = cls().compute(context)
        expected_second = XGRADCAM_A_G0 if cls is XGradCAM else SAME_ON_A_G0
        torch.testing.assert_close(maps[0], EXPECTED_A2_G2[cls.name], rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(maps[1], expected_second, rtol=1e-6, atol=1e-6)


def test_registered_under_their_names() -> None:
    names = set(camkit.list_methods())
    assert {"hirescam", "gradcamelementwise", "xgradcam", "layercam"} <= names
    net = linear_head_model()
    for name in ("hirescam", "gradcamelementwise", "xgradcam", "layercam"):
        explanation = Explainer(net, method=name, layer="features", device="cpu").explain(
            torch.zeros(3, 8, 8), target=0
        )
        assert explanation.method == name
    assert repr(XGradCAM(eps=0.5)) == "XGradCAM(eps=0.5)"


# ---- parity with pytorch-grad-cam 1.5.7 -------------------------------------------------


def _reference_classes() -> dict[str, Any]:
    import pytorch_grad_cam as reference

    return {
        "hirescam": reference.HiResCAM,
        "gradcamelementwise": reference.GradCAMElementWise,
        "xgradcam": reference.XGradCAM,
        "layercam": reference.LayerCAM,
    }


@pytest.mark.parametrize(("source", "name", "layer"), ARCHITECTURES, ids=IDS)
def test_matches_pytorch_grad_cam(source: str, name: str, layer: str) -> None:
    """Min-max normalised maps at the layer's resolution within 2e-3 of the reference's,
    for each method, on the classes the model predicts."""
    net = model(source, name)
    x = inputs()
    references = _reference_classes()
    for cls in METHODS:
        ours, targets = camkit_maps(net, cls(), layer, x)
        ours = minmax(ours)
        assert ours.shape == (2, 7, 7)
        assert ours.std() > 0.05, f"{cls.name}: degenerate map, the comparison is meaningless"
        reference = reference_maps(references[cls.name], net, layer, x, targets)
        difference = np.abs(ours - minmax(np.maximum(reference, 0))).max()
        assert difference <= TOLERANCE, f"{cls.name} on {name}: {difference:.2e}"


def test_matches_pytorch_grad_cam_for_other_classes() -> None:
    """Classes other than the predicted ones, through explicit targets."""
    net = model("torchvision", "resnet18")
    x = inputs(seed=3)
    references = _reference_classes()
    for cls in METHODS:
        batch = Explainer(net, method=cls(), layer="layer3", device="cpu").explain_batch(
            x, [5, 900]
        )
        reference = reference_maps(references[cls.name], net, "layer3", x, [5, 900])
        difference = np.abs(minmax(batch.raws()) - minmax(np.maximum(reference, 0))).max()
        assert difference <= TOLERANCE, f"{cls.name}: {difference:.2e}"
