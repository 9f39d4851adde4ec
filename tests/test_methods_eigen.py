"""Eigen-CAM, Eigen-Grad-CAM and KPCA-CAM: closed-form values on tiny hand-built models,
camkit's sign rule, and parity with pytorch-grad-cam 1.5.7 on three architectures (within
2e-3 up to the SVD's sign for Eigen-CAM and Eigen-Grad-CAM, whose sign the reference leaves
to numpy's SVD; exactly for KPCA-CAM, whose sign scikit-learn fixes as camkit does)."""

from __future__ import annotations

import math
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
from tiny_models import ConstantFeatures, signed_head_model
from torch import Tensor, nn

import camkit
from camkit import Explainer
from camkit.errors import ConfigurationError, MethodError
from camkit.methods import KPCACAM, CAMMethod, EigenCAM, EigenGradCAM, LayerCapture, MethodContext
from camkit.methods.eigen import kernel_principal_projection, orient, principal_projection

# ---- closed form ----------------------------------------------------------------------

# Two orthogonal centred patterns over the 4 positions (row-major):
#   c1 = (-1, -1, -1, 3)  (|c1|² = 12),   c2 = (1, -1, 0, 0)  (|c2|² = 2),   c1 · c2 = 0,
# mixed by the rotation R = [[3/5, -4/5], [4/5, 3/5]] and shifted per channel:
#   channel 1 = 2 + (3/5 c1 + 4/5 c2) = (2.2, 0.6, 1.4, 3.8)
#   channel 2 = 3 + (-4/5 c1 + 3/5 c2) = (4.4, 3.2, 3.8, 0.6)
# Centred, X = [c1 c2] R, so XᵀX = Rᵀ diag(12, 2) R: the first right singular vector is
# v = ±Rᵀ e1 and the projection X v = ±c1. camkit's sign rule makes the value of largest
# magnitude (3) positive, and the ReLU keeps it alone.
A_EIGEN = torch.tensor(
    [
        [[2.2, 0.6], [1.4, 3.8]],
        [[4.4, 3.2], [3.8, 0.6]],
    ]
)
EIGEN_MAP = torch.tensor([[0.0, 0.0], [0.0, 3.0]])

# Rank one after centring: channel 1 = 2 + (-1, -1, -1, 3), channel 2 constant, so C = 2 and
# the positions are x_i = (s_i, 0) with s = (-1, -1, -1, 3). With κ(x, y) = tanh(γ x·y + 1):
#   a = κ among the three equal points (x·y = 1), b = κ across (x·y = -3), d = κ(x_4, x_4)
#   (x·y = 9). The centred kernel matrix is λ ŵŵᵀ with w = (-1, -1, -1, 3), ŵ = w / √12 and
#   λ = wᵀ K w / 12 = (9a - 18b + 9d) / 12, so the projection √λ ŵ = w · √(a - 2b + d) / 4
#   and the map is 0 but for 3 √(a - 2b + d) / 4 at the last position.
A_RANK_ONE = torch.tensor(
    [
        [[1.0, 1.0], [1.0, 5.0]],
        [[7.0, 7.0], [7.0, 7.0]],
    ]
)


def kpca_rank_one_peak(gamma: float) -> float:
    a, b, d = (math.tanh(gamma * p + 1.0) for p in (1.0, -3.0, 9.0))
    return 3.0 * math.sqrt(a - 2.0 * b + d) / 4.0


def explain_tiny(net: nn.Module, method: CAMMethod) -> np.ndarray:
    result = Explainer(net, method=method, layer="features", device="cpu").explain(
        torch.zeros(3, 8, 8), target=0
    )
    assert result.method == method.name
    return result.raw


def from_capture(activations: Tensor, gradients: Tensor | None = None) -> MethodContext:
    return MethodContext.from_capture(
        LayerCapture(activations, gradients, torch.zeros(activations.shape[0]), "features")
    )


def test_eigencam_closed_form() -> None:
    raw = explain_tiny(signed_head_model(A_EIGEN), EigenCAM())
    np.testing.assert_allclose(raw, EIGEN_MAP.numpy(), rtol=0, atol=1e-6)


def test_eigencam_sign_does_not_depend_on_the_activations_sign() -> None:
    """Negated activations give the negated singular vector: the sign rule undoes it."""
    raw = explain_tiny(signed_head_model(10.0 - A_EIGEN), EigenCAM())
    np.testing.assert_allclose(raw, EIGEN_MAP.numpy(), rtol=0, atol=1e-6)


def test_eigengradcam_closed_form() -> None:
    """g ⊙ A = A_EIGEN with A = 2 everywhere and g = A_EIGEN / 2: the same projection."""
    activations = torch.full_like(A_EIGEN, 2.0)
    raw = explain_tiny(signed_head_model(activations, A_EIGEN / 2), EigenGradCAM())
    np.testing.assert_allclose(raw, EIGEN_MAP.numpy(), rtol=0, atol=1e-6)
    # Eigen-CAM of those constant activations is empty: the gradients make the map
    assert explain_tiny(signed_head_model(activations, A_EIGEN / 2), EigenCAM()).max() == 0.0


def test_kpcacam_linear_kernel_is_eigencam() -> None:
    """With the linear kernel, λ = |c1|² = 12 and u = c1 / √12, so √λ·u = c1."""
    raw = explain_tiny(signed_head_model(A_EIGEN), KPCACAM(kernel="linear"))
    np.testing.assert_allclose(raw, EIGEN_MAP.numpy(), rtol=0, atol=1e-6)


@pytest.mark.parametrize(("gamma", "effective"), [(None, 0.5), (0.25, 0.25)])
def test_kpcacam_sigmoid_closed_form(gamma: float | None, effective: float) -> None:
    """The reference's default kernel, tanh(γ x·y + 1) with γ = 1/C = 1/2 by default."""
    raw = explain_tiny(signed_head_model(A_RANK_ONE), KPCACAM(gamma=gamma))
    expected = np.array([[0.0, 0.0], [0.0, kpca_rank_one_peak(effective)]])
    np.testing.assert_allclose(raw, expected, rtol=1e-6, atol=1e-7)


def test_kpcacam_matches_scikit_learn_on_every_kernel() -> None:
    """camkit's torch kernel PCA against scikit-learn's KernelPCA (what the reference
    calls), sign included, on a random 2-image batch of 6 x 5 maps."""
    from sklearn.decomposition import KernelPCA

    maps = torch.randn(2, 8, 6, 5, generator=torch.Generator().manual_seed(0)).double()
    for kernel in ("sigmoid", "rbf", "poly", "linear", "cosine"):
        for gamma in (None, 0.3):
            ours = kernel_principal_projection(maps, kernel, gamma)
            for image in range(2):
                points = maps[image].flatten(1).T.numpy()
                points = points - points.mean(axis=0)
                pca = KernelPCA(n_components=1, kernel=kernel, gamma=gamma)
                expected = pca.fit_transform(points)[:, 0].reshape(6, 5)
                np.testing.assert_allclose(ours[image].numpy(), expected, rtol=1e-7, atol=1e-9)


def test_orient_makes_the_largest_magnitude_positive() -> None:
    projections = torch.tensor([[1.0, -3.0, 2.0], [-2.0, 2.0, 1.0], [0.0, 0.0, 0.0]])
    expected = torch.tensor([[-1.0, 3.0, -2.0], [2.0, -2.0, -1.0], [0.0, 0.0, 0.0]])
    torch.testing.assert_close(orient(projections), expected, rtol=0, atol=0)
    torch.testing.assert_close(orient(-projections), expected, rtol=0, atol=0)


def test_projection_is_batched_image_by_image() -> None:
    maps = torch.randn(3, 16, 5, 4, generator=torch.Generator().manual_seed(2))
    batched = principal_projection(maps)
    assert batched.dtype == maps.dtype and batched.shape == (3, 5, 4)
    for image in range(3):
        points = maps[image].flatten(1).T.double()
        points = points - points.mean(dim=0)
        _, _, vh = torch.linalg.svd(points, full_matrices=False)
        alone = orient((points @ vh[0])[None])[0].reshape(5, 4).float()
        torch.testing.assert_close(batched[image], alone, rtol=1e-5, atol=1e-6)


def test_eigencam_needs_no_gradient() -> None:
    """Gradient-free: it works on a model whose score does not reach the layer through
    autograd (the head detaches it)."""

    class Detached(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = ConstantFeatures(A_EIGEN)
            self.fc = nn.Linear(8, 2)

        def forward(self, x: Tensor) -> Tensor:
            return self.fc(self.features(x).detach().flatten(1))

    assert EigenCAM.needs_gradients is False and KPCACAM.needs_gradients is False
    assert EigenGradCAM.needs_gradients is True
    for method in (EigenCAM(), KPCACAM(kernel="linear")):
        raw = explain_tiny(Detached(), method)
        np.testing.assert_allclose(raw, EIGEN_MAP.numpy(), rtol=0, atol=1e-6)


def test_non_finite_activations_are_refused() -> None:
    activations = A_EIGEN[None].clone()
    activations[0, 0, 0, 0] = float("nan")
    for method in (EigenCAM(), KPCACAM()):
        with pytest.raises(MethodError, match="NaN or infinite"):
            method.compute(from_capture(activations))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"kernel": "laplacian"},
        {"gamma": 0.0},
        {"gamma": -1.0},
        {"gamma": float("nan")},
        {"degree": 0},
        {"degree": True},
        {"coef0": float("inf")},
    ],
)
def test_kpcacam_rejects_bad_configuration(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError, match=next(iter(kwargs))):
        KPCACAM(**kwargs)


def test_registered_under_their_names() -> None:
    assert {"eigencam", "eigengradcam", "kpcacam"} <= set(camkit.list_methods())
    net = signed_head_model(A_EIGEN)
    for name in ("eigencam", "eigengradcam", "kpcacam"):
        explanation = Explainer(net, method=name, layer="features", device="cpu").explain(
            torch.zeros(3, 8, 8), target=0
        )
        assert explanation.method == name
    assert repr(KPCACAM()) == "KPCACAM(kernel='sigmoid', gamma=None, degree=3, coef0=1.0)"


# ---- parity with pytorch-grad-cam 1.5.7 -------------------------------------------------


def _oriented(projections: np.ndarray) -> np.ndarray:
    """camkit's sign rule, written independently: the value of largest magnitude positive."""
    flat = projections.reshape(len(projections), -1)
    peaks = flat[np.arange(len(flat)), np.abs(flat).argmax(axis=1)]
    return projections * np.where(peaks < 0, -1.0, 1.0)[:, None, None]


def _up_to_sign(ours: np.ndarray, reference: np.ndarray) -> float:
    """The largest difference, image by image, with the better of the reference's signs."""
    worst = 0.0
    for mine, theirs in zip(ours, reference, strict=True):
        candidates = [minmax(np.maximum(s * theirs, 0)[None])[0] for s in (1.0, -1.0)]
        worst = max(worst, min(float(np.abs(mine - c).max()) for c in candidates))
    return worst


@pytest.mark.parametrize(("source", "name", "layer"), ARCHITECTURES, ids=IDS)
def test_matches_pytorch_grad_cam(source: str, name: str, layer: str) -> None:
    import pytorch_grad_cam as reference
    from pytorch_grad_cam.utils.svd_on_activations import (
        get_2d_projection_with_sign_correction,
    )

    net = model(source, name)
    x = inputs()
    for method, cls in ((EigenCAM(), reference.EigenCAM), (EigenGradCAM(), reference.EigenGradCAM)):
        ours, targets = camkit_maps(net, method, layer, x)
        ours = minmax(ours)
        assert ours.shape == (2, 7, 7)
        assert ours.std() > 0.05, f"{method.name}: degenerate map"
        theirs = reference_maps(cls, net, layer, x, targets)
        assert _up_to_sign(ours, theirs) <= TOLERANCE, method.name
        # camkit's sign rule, applied to the reference's projection, gives camkit's map
        assert np.abs(ours - minmax(np.maximum(_oriented(theirs), 0))).max() <= TOLERANCE
    # ... and it is the Seg-Eigen-CAM correction that pytorch-grad-cam 1.5.7 ships
    with torch.no_grad():
        recorded: list[Tensor] = []
        handle = net.get_submodule(layer).register_forward_hook(
            lambda _m, _i, out: recorded.append(out.detach().clone())
        )
        try:
            net(x)
        finally:
            handle.remove()
    corrected = get_2d_projection_with_sign_correction(recorded[0].numpy())
    ours, _ = camkit_maps(net, EigenCAM(), layer, x)
    assert np.abs(minmax(ours) - minmax(np.maximum(corrected, 0))).max() <= TOLERANCE

    # KPCA-CAM: scikit-learn fixes the sign as camkit does, so no sign freedom is needed
    ours, targets = camkit_maps(net, KPCACAM(), layer, x)
    ours = minmax(ours)
    assert ours.std() > 0.05, "kpcacam: degenerate map"
    theirs = reference_maps(reference.KPCA_CAM, net, layer, x, targets)
    assert np.abs(ours - minmax(np.maximum(theirs, 0))).max() <= TOLERANCE


def test_kpcacam_matches_pytorch_grad_cam_with_rbf_kernel() -> None:
    import pytorch_grad_cam as reference

    net = model("torchvision", "resnet18")
    x = inputs(seed=3)
    method = KPCACAM(kernel="rbf", gamma=1e-3)
    ours, targets = camkit_maps(net, method, "layer3", x)
    theirs = reference_maps(reference.KPCA_CAM, net, "layer3", x, targets, kernel="rbf", gamma=1e-3)
    assert minmax(ours).std() > 0.05
    assert np.abs(minmax(ours) - minmax(np.maximum(theirs, 0))).max() <= TOLERANCE
