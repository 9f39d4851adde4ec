"""FullGrad, ShapleyCAM, Smooth Grad-CAM++ and Finer-CAM: parity with their references
(pytorch-grad-cam 1.5.7, torchcam 0.5.0), closed forms on tiny hand-built models, and the
errors they raise.

Parity: random-init models with recalibrated BatchNorm statistics, 96-112 px inputs, batch 2;
min-max normalised maps within 2e-3, at the layer's resolution (FullGrad at the input's).
VGG-BN is explained at ``features.27``, after its in-place ReLU.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Callable

import numpy as np
import pytest
import torch
from helpers import build, minmax, recalibrate_batchnorm
from tiny_models import A, ConstantFeatures, SmallCNN
from torch import Tensor, nn

from camkit import CAMMethod, Explainer, ExplanationBatch, GradCAMPlusPlus
from camkit.errors import ConfigurationError, MethodNotApplicableError, TargetError
from camkit.methods import (
    FinerCAM,
    FullGrad,
    MethodContext,
    ShapleyCAM,
    SmoothGradCAMPlusPlus,
)
from camkit.methods.finer import ComparisonScore, nearest_classes

TOLERANCE = 2e-3

MODELS = {
    "resnet18": ("torchvision", "resnet18", 112),
    "vgg11_bn": ("torchvision", "vgg11_bn", 112),
    "efficientnet_b0": ("timm", "efficientnet_b0", 112),
    # timm, with plain BatchNorm2d: pytorch-grad-cam's FullGrad skips timm's fused
    # BatchNormAct2d (efficientnet's), so FullGrad is compared on this one
    "dla46_c": ("timm", "dla46_c", 96),
}


@functools.cache
def _model(key: str) -> nn.Module:
    source, name, size = MODELS[key]
    return recalibrate_batchnorm(build(source, name), size=size)


def _inputs(key: str, seed: int = 7, batch: int = 2) -> Tensor:
    size = MODELS[key][2]
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _raw(explanations: object) -> np.ndarray:
    return np.stack([e.raw for e in explanations])  # type: ignore[attr-defined]


def _explain(
    model: nn.Module, method: str | CAMMethod, layer: str | None, x: Tensor, target: object = None
) -> ExplanationBatch:
    """``explain_batch`` on the CPU."""
    explainer = Explainer(model, method=method, layer=layer, device="cpu")
    return explainer.explain_batch(x, target)  # type: ignore[arg-type]


def _maps(
    model: nn.Module, method: str | CAMMethod, layer: str, x: Tensor, target: object = None
) -> np.ndarray:
    """The min-max normalised raw maps ``(B, h, w)`` of ``explain_batch`` on the CPU."""
    return minmax(_raw(_explain(model, method, layer, x, target)))


def _recording(cam: object) -> list[np.ndarray]:
    """Record every raw layer map a pytorch-grad-cam object computes (before its ReLU,
    normalisation and resize)."""
    found: list[np.ndarray] = []
    original = cam.get_cam_image  # type: ignore[attr-defined]

    def recorded(*args: object, **kwargs: object) -> np.ndarray:
        result = original(*args, **kwargs)
        found.append(result)
        return result

    cam.get_cam_image = recorded  # type: ignore[attr-defined]
    return found


def _correlations(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of each image's maps, ``(B,)``."""
    return np.array([np.corrcoef(x.ravel(), y.ravel())[0, 1] for x, y in zip(a, b, strict=True)])


# ---- FullGrad ----------------------------------------------------------------------------


def _reference_fullgrad(model: nn.Module, x: Tensor, classes: list[int]) -> np.ndarray:
    """pytorch-grad-cam's FullGrad map (min-max normalised, input resolution)."""
    from pytorch_grad_cam import FullGrad as Reference
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    with Reference(model=model, target_layers=[]) as reference:
        return reference(input_tensor=x, targets=[ClassifierOutputTarget(c) for c in classes])


@pytest.mark.parametrize("key", ["resnet18", "vgg11_bn", "dla46_c"])
def test_fullgrad_matches_pytorch_grad_cam_at_input_resolution(key: str) -> None:
    model, x = _model(key), _inputs(key)
    explanations = _explain(model, "fullgrad", None, x)
    ours = minmax(_raw(explanations))
    assert ours.shape == (2, *x.shape[-2:])  # the input's grid
    assert ours.std() > 0.05
    expected = _reference_fullgrad(model, x, [e.pred_class for e in explanations])
    assert np.abs(ours - expected).max() <= TOLERANCE


class TinyConvNet(nn.Module):
    """conv (1x1, bias) → BatchNorm (running statistics) → ReLU → global mean → linear."""

    def __init__(self, norm: nn.Module | None = None, act: nn.Module | None = None) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(3)
        self.conv = nn.Conv2d(3, 2, 1)
        self.bn = nn.BatchNorm2d(2) if norm is None else norm
        self.act = nn.ReLU() if act is None else act
        self.fc = nn.Linear(2, 2)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(2, 3, 1, 1, generator=generator))
            self.conv.bias.copy_(torch.tensor([0.3, -0.2]))
            self.bn.running_mean.copy_(torch.tensor([0.1, -0.4]))
            self.bn.running_var.copy_(torch.tensor([1.5, 0.5]))
            self.bn.weight.copy_(torch.tensor([0.8, -1.2]))
            self.bn.bias.copy_(torch.tensor([0.2, 0.5]))
            self.fc.weight.copy_(torch.tensor([[1.0, -2.0], [0.5, 0.5]]))
            self.fc.bias.copy_(torch.tensor([0.1, 0.0]))
        self.eval()

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.act(self.bn(self.conv(x))).mean(dim=(2, 3)))


def _psi(t: Tensor) -> Tensor:
    """FullGrad's post-processing without the resize: |t| to [0, 1] per image and channel."""
    t = t.abs()
    t = t - t.amin(dim=(2, 3), keepdim=True)
    return t / (t.amax(dim=(2, 3), keepdim=True) + 1e-7)


def test_fullgrad_closed_form_on_a_conv_bn_relu_net() -> None:
    """By hand: z = W x + b, u = s (z − μ) + β with s = γ / sqrt(σ² + eps), y = V mean(ReLU u).
    ∂y/∂u_k = V_k m_k / HW with m_k = [u_k > 0]; ∂y/∂z_k = s_k ∂y/∂u_k; ∂y/∂x = Wᵀ ∂y/∂z.
    The conv's term |b_k ∂y/∂z_k| and BatchNorm's |(β − μ s)_k ∂y/∂u_k| are m_k scaled, so
    each rescales to m_k: FullGrad = Σ_j ψ(|x_j ∂y/∂x_j|) + 2 Σ_k m_k."""
    model = TinyConvNet()
    x = torch.randn(2, 3, 6, 6, generator=torch.Generator().manual_seed(0))
    ours = torch.as_tensor(_raw(_explain(model, "fullgrad", "act", x, 0)))

    bn, weight, hw = model.bn, model.conv.weight[:, :, 0, 0].detach(), 36
    scale = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach()
    z = torch.einsum("kj,bjhw->bkhw", weight, x) + model.conv.bias.detach()[None, :, None, None]
    u = scale[None, :, None, None] * (z - bn.running_mean[None, :, None, None])
    u = u + bn.bias.detach()[None, :, None, None]
    masks = (u > 0).float()
    assert ((masks.amax(dim=(2, 3)) - masks.amin(dim=(2, 3))) == 1).all()  # not degenerate
    d_u = model.fc.weight[0].detach()[None, :, None, None] * masks / hw
    d_x = torch.einsum("kj,bkhw->bjhw", weight, scale[None, :, None, None] * d_u)
    expected = _psi(x * d_x).sum(dim=1) + 2 * masks.sum(dim=1)
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-4)


def test_fullgrad_reads_fused_batchnorm_activation_at_the_normalisation() -> None:
    """timm's BatchNormAct2d (normalisation, drop, activation in one module) gives the map of
    the same network written as BatchNorm2d then the activation. pytorch-grad-cam matches the
    latter but skips the fused module's bias."""
    from timm.layers import BatchNormAct2d

    plain = TinyConvNet(act=nn.SiLU())
    fused = TinyConvNet(norm=BatchNormAct2d(2, act_layer=nn.SiLU), act=nn.Identity())
    fused.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 6, 6, generator=torch.Generator().manual_seed(1))
    plain_map, fused_map = (_maps(m, "fullgrad", "conv", x, 1) for m in (plain, fused))
    np.testing.assert_allclose(fused_map, plain_map, atol=1e-5)
    assert np.abs(plain_map - _reference_fullgrad(plain, x, [1, 1])).max() <= TOLERANCE
    assert np.abs(fused_map - _reference_fullgrad(fused, x, [1, 1])).max() > 0.05


class PerPositionLinear(nn.Module):
    """A Linear applied at every position of a channels-last map (as in ConvNeXt blocks)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.mix = nn.Linear(4, 4)
        self.fc = nn.Linear(4, 2)

    def forward(self, x: Tensor) -> Tensor:
        y = self.mix(self.conv(x).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return self.fc(y.mean(dim=(2, 3)))


def _head(module: nn.Module) -> nn.Sequential:
    """conv → ``module`` → ReLU → global pooling → linear."""
    return nn.Sequential(
        nn.Conv2d(3, 4, 3),
        module,
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 2),
    )


@pytest.mark.parametrize(
    ("model", "layer", "named"),
    [
        (_head(nn.GroupNorm(2, 4)), "0", "1 (GroupNorm: normalises with the input's own"),
        (_head(nn.InstanceNorm2d(4, affine=True)), "0", "1 (InstanceNorm2d"),
        (_head(nn.ConvTranspose2d(4, 4, 1)), "0", "1 (ConvTranspose2d: holds a bias"),
        (PerPositionLinear(), "conv", "mix (Linear: applied at every position"),
    ],
    ids=["groupnorm", "instancenorm", "transposed-conv", "per-position-linear"],
)
def test_fullgrad_refuses_biases_it_cannot_account_for(
    model: nn.Module, layer: str, named: str
) -> None:
    explainer = Explainer(model, method="fullgrad", layer=layer, device="cpu")
    with pytest.raises(
        MethodNotApplicableError, match="FullGrad cannot account for the biases"
    ) as raised:
        explainer.explain_batch(torch.randn(1, 3, 8, 8), 0)
    assert named in str(raised.value)


def test_fullgrad_eps_must_be_positive() -> None:
    with pytest.raises(ConfigurationError, match="eps"):
        FullGrad(eps=0.0)


def test_fullgrad_refuses_convnext() -> None:
    model = build("timm", "convnext_atto", num_classes=3).eval()
    with pytest.raises(MethodNotApplicableError, match=r"stages\.0\.blocks\.0\.norm \(LayerNorm2d"):
        _explain(model, "fullgrad", "stages.3", torch.randn(1, 3, 64, 64), 0)


# ---- ShapleyCAM --------------------------------------------------------------------------


def _softmax_of(classes: list[int]) -> Callable[[Tensor], Tensor]:
    return lambda logits: logits.softmax(dim=1)[torch.arange(len(classes)), classes]


SHAPLEY_CASES = [
    # ReLU networks with the logit as the score have no second-order term: the softmax
    # probability gives them one; efficientnet's SiLU gives one to the logit
    ("resnet18", "layer3", True),
    ("vgg11_bn", "features.27", True),
    ("efficientnet_b0", "blocks.5", False),
]


@pytest.mark.parametrize(
    ("key", "layer", "softmax"), SHAPLEY_CASES, ids=[c[0] for c in SHAPLEY_CASES]
)
def test_shapleycam_matches_pytorch_grad_cam(key: str, layer: str, softmax: bool) -> None:
    from pytorch_grad_cam import ShapleyCAM as Reference
    from pytorch_grad_cam.utils.model_targets import (
        ClassifierOutputSoftmaxTarget,
        ClassifierOutputTarget,
    )

    model, x = _model(key), _inputs(key)
    with torch.no_grad():
        classes = model(x).argmax(dim=1).tolist()
    target = _softmax_of(classes) if softmax else classes
    ours = _maps(model, "shapleycam", layer, x, target)
    gradcam = _maps(model, "gradcam", layer, x, target)
    assert ours.std() > 0.05
    assert np.abs(ours - gradcam).max() > 0.02  # the Hessian term matters here

    kind = ClassifierOutputSoftmaxTarget if softmax else ClassifierOutputTarget
    with Reference(model=model, target_layers=[model.get_submodule(layer)]) as reference:
        found = _recording(reference)
        reference(input_tensor=x, targets=[kind(c) for c in classes])
    assert np.abs(ours - minmax(np.maximum(found[-1], 0))).max() <= TOLERANCE


class QuadraticHead(nn.Module):
    """``y_c = Σ_k W_ck p_k + V_ck p_k²`` with ``p_k`` the spatial mean of channel ``k``."""

    def __init__(self, linear: Tensor, quadratic: Tensor) -> None:
        super().__init__()
        self.register_buffer("linear", linear)
        self.register_buffer("quadratic", quadratic)

    def forward(self, a: Tensor) -> Tensor:
        p = a.mean(dim=(2, 3))
        return p @ self.linear.T + (p * p) @ self.quadratic.T


def test_shapleycam_closed_form_on_a_quadratic_head() -> None:
    """For ``y = Σ_k W_k p_k + V_k p_k²`` (p_k the mean of A_k over its n positions):
    g = (W_k + 2 V_k p_k) / n, (H·A)_k = 2 V_k p_k / n, so w_k = (W_k + V_k p_k) / n, and
    each channel's score share w_k · Σ_ij A^k_ij = p_k (W_k + V_k p_k) is its exact Shapley
    value (the game is additive over channels)."""
    linear = torch.tensor([[1.0, 2.0], [0.5, 0.5]])
    quadratic = torch.tensor([[0.5, -3.0], [1.0, 1.0]])
    model = nn.Sequential(
        OrderedDict(features=ConstantFeatures(A), head=QuadraticHead(linear, quadratic))
    )
    x = torch.zeros(1, 3, 4, 4)
    ours = Explainer(model, method=ShapleyCAM(), layer="features", device="cpu").explain(x, 0)
    p = A.mean(dim=(1, 2))  # [2.5, 0.25]
    weights = (linear[0] + quadratic[0] * p) / 4
    expected = torch.relu(torch.einsum("c,chw->hw", weights, A))
    np.testing.assert_allclose(ours.raw, expected.numpy(), rtol=1e-5, atol=1e-6)
    gradcam = Explainer(model, method="gradcam", layer="features", device="cpu").explain(x, 0)
    # Grad-CAM's weights (W + 2 V p) / n give another map
    assert np.abs(minmax(gradcam.raw[None]) - minmax(ours.raw[None])).max() > 0.1


def test_shapleycam_on_a_frozen_model_with_a_linear_head() -> None:
    model = _model("resnet18")
    frozen = [p for p in model.parameters() if p.requires_grad]
    try:
        for parameter in frozen:
            parameter.requires_grad_(False)
        x = _inputs("resnet18")
        ours = _raw(_explain(model, "shapleycam", "layer4", x))
        gradcam = _raw(_explain(model, "gradcam", "layer4", x))
    finally:
        for parameter in frozen:
            parameter.requires_grad_(True)
    np.testing.assert_allclose(ours, gradcam, rtol=1e-5, atol=1e-7)


# ---- Smooth Grad-CAM++ -------------------------------------------------------------------


def _torchcam_weights_map(
    model: nn.Module, layer: str, x: Tensor, classes: list[int], seed: int
) -> np.ndarray:
    """torchcam's SmoothGradCAMpp weights (4 copies, std 0.3, drawn after
    ``torch.manual_seed(seed)``) applied to the original input's activations, min-max
    normalised."""
    from torchcam.methods import SmoothGradCAMpp

    shape = tuple(x.shape[1:])
    with (
        SmoothGradCAMpp(model, target_layer=layer, input_shape=shape) as reference,
        torch.enable_grad(),
    ):
        model(x)
        original = reference.hook_a[0].clone()
        torch.manual_seed(seed)
        (weights,) = reference._get_weights(classes)
    cam = torch.relu((weights[:, :, None, None] * original).sum(dim=1))
    return minmax(cam.numpy())


def test_smoothgradcampp_equals_torchcam_where_the_noise_cannot_change_the_gradient() -> None:
    """At ResNet's layer4 the gradient is the head's weight over the map, the same on every
    noisy copy and at every position: torchcam's departures from the formula all vanish, and
    its weights give camkit's map whatever the noise."""
    model, x = _model("resnet18"), _inputs("resnet18")
    method = SmoothGradCAMPlusPlus(seed=0)
    explanations = _explain(model, method, "layer4", x)
    ours = minmax(_raw(explanations))
    classes = [e.pred_class for e in explanations]
    assert ours.std() > 0.05
    assert np.abs(ours - _torchcam_weights_map(model, "layer4", x, classes, 0)).max() <= TOLERANCE


@pytest.mark.parametrize(
    ("key", "layer"), [("vgg11_bn", "features.27"), ("efficientnet_b0", "conv_head")]
)
def test_smoothgradcampp_agrees_with_torchcam_statistically(key: str, layer: str) -> None:
    """A seeded statistical check. With the same seed camkit and torchcam draw the same noise
    (``torch.randn`` on the CPU, copy after copy), so their maps differ only by torchcam's
    departures from the formula (see SmoothGradCAMPlusPlus): it takes the ReLU of the last
    copy's gradient rather than the mean, sums ``D_3 · A`` over the map, and weights the last
    noisy copy's activations. The last is left out by applying torchcam's weights to the
    original activations; the others are random with the noise. Over 4 seeds × 2 images:

    - camkit's maps correlate with torchcam's of the same noise at 0.9 or more (median), and
      no less than torchcam's maps of two different seeds correlate with each other: camkit
      differs from torchcam no more than torchcam differs from itself;
    - the seed-averaged maps correlate at 0.9 or more, image by image (measured: 0.925 and
      0.99 on VGG, 0.96 and 0.99 on EfficientNet; torchcam's single-copy ReLU keeps its
      average noisy at 4 seeds);
    - camkit's maps vary less from seed to seed than torchcam's (it averages every
      derivative).
    """
    model, x = _model(key), _inputs(key)
    seeds = range(4)
    ours, theirs = [], []
    for seed in seeds:
        method = SmoothGradCAMPlusPlus(seed=seed)
        explanations = _explain(model, method, layer, x)
        ours.append(minmax(_raw(explanations)))
        classes = [e.pred_class for e in explanations]
        theirs.append(_torchcam_weights_map(model, layer, x, classes, seed))
    same_noise = np.concatenate([_correlations(ours[s], theirs[s]) for s in seeds])
    pairs = [(s, t) for s in seeds for t in seeds if s < t]
    torchcam_spread = np.concatenate([_correlations(theirs[s], theirs[t]) for s, t in pairs])
    camkit_spread = np.concatenate([_correlations(ours[s], ours[t]) for s, t in pairs])
    assert np.median(same_noise) >= max(0.9, np.median(torchcam_spread))
    averaged = _correlations(np.mean(ours, axis=0), np.mean(theirs, axis=0))
    assert averaged.min() >= 0.9
    assert np.median(camkit_spread) > np.median(torchcam_spread)


def test_smoothgradcampp_without_noise_is_gradcampp() -> None:
    """With std = 0 every copy is the input: D_p = g^p, and the formula is Grad-CAM++'s."""
    model = SmallCNN().eval()
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    smooth = SmoothGradCAMPlusPlus(num_samples=2, std=0.0, eps=1e-8)
    maps = [
        _raw(Explainer(model, method=m, layer="stem", device="cpu").explain_batch(x, 1))
        for m in (smooth, GradCAMPlusPlus(eps=1e-8))
    ]
    np.testing.assert_allclose(maps[0], maps[1], rtol=1e-5, atol=1e-7)


def test_smoothgradcampp_seeds_are_reproducible() -> None:
    model = SmallCNN().eval()
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))

    def explain(method: SmoothGradCAMPlusPlus) -> np.ndarray:
        explainer = Explainer(model, method=method, layer="stem", device="cpu")
        return _raw(explainer.explain_batch(x, 1))

    seeded = SmoothGradCAMPlusPlus(seed=3)
    np.testing.assert_array_equal(explain(seeded), explain(seeded))  # an int: every call
    assert not np.allclose(explain(seeded), explain(SmoothGradCAMPlusPlus(seed=4)))
    generator = SmoothGradCAMPlusPlus(seed=torch.Generator().manual_seed(3))
    first, second = explain(generator), explain(generator)  # a generator advances
    np.testing.assert_array_equal(first, explain(seeded))
    assert not np.allclose(first, second)
    torch.manual_seed(3)  # None: torch's global generator, as torchcam
    np.testing.assert_array_equal(explain(SmoothGradCAMPlusPlus()), first)


@pytest.mark.parametrize(
    "arguments",
    [{"num_samples": 0}, {"num_samples": 2.0}, {"std": -0.1}, {"eps": -1.0}, {"seed": "1"}],
)
def test_smoothgradcampp_rejects_bad_arguments(arguments: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        SmoothGradCAMPlusPlus(**arguments)  # type: ignore[arg-type]


# ---- Finer-CAM ---------------------------------------------------------------------------

FINER_CASES = [
    ("resnet18", "layer4"),
    ("vgg11_bn", "features.27"),
    ("efficientnet_b0", "conv_head"),
]


@pytest.mark.parametrize(("key", "layer"), FINER_CASES, ids=[c[0] for c in FINER_CASES])
def test_finercam_matches_pytorch_grad_cam(key: str, layer: str) -> None:
    from pytorch_grad_cam import FinerCAM as Reference

    model, x = _model(key), _inputs(key)
    ours = _maps(model, "finercam", layer, x)
    gradcam = _maps(model, "gradcam", layer, x)
    assert ours.std() > 0.05
    assert np.abs(ours - gradcam).max() > 0.1  # the comparison changes the map
    with Reference(model=model, target_layers=[model.get_submodule(layer)]) as reference:
        found = _recording(reference.base_cam)
        reference(input_tensor=x)  # no targets: the predicted class and its 3 nearest
    assert np.abs(ours - minmax(np.maximum(found[-1], 0))).max() <= TOLERANCE


def test_finercam_score_by_hand() -> None:
    logits = torch.tensor([[2.0, 1.5, -1.0, 2.25, 0.0], [0.0, 3.0, 1.0, 2.0, 2.0]])
    main = torch.tensor([0, 1])
    nearest = nearest_classes(logits, main, 2)
    assert nearest.tolist() == [[3, 1], [3, 4]]  # |Δ| 0.25, 0.5; ties to the lower index
    score = ComparisonScore(main, nearest, alpha=0.5)(logits)
    p = logits.softmax(dim=1)
    expected = [
        (p[0, 3] * (2.0 - 0.5 * 2.25) + p[0, 1] * (2.0 - 0.5 * 1.5)) / (p[0, 3] + p[0, 1]),
        (p[1, 3] * (3.0 - 1.0) + p[1, 4] * (3.0 - 1.0)) / (p[1, 3] + p[1, 4]),
    ]
    torch.testing.assert_close(score, torch.stack(expected))


def test_finercam_without_comparison_strength_is_its_base_method() -> None:
    """α = 0: the score is y_c up to the normalised weights, so the map is Grad-CAM's."""
    model, x = _model("resnet18"), _inputs("resnet18")
    finer = _maps(model, FinerCAM(alpha=0.0), "layer3", x)
    np.testing.assert_allclose(finer, _maps(model, "gradcam", "layer3", x), atol=1e-5)


def test_finercam_needs_class_targets_and_a_suitable_base() -> None:
    model = SmallCNN().eval()
    x = torch.randn(1, 3, 16, 16)
    explainer = Explainer(model, method="finercam", layer="body", device="cpu")
    with pytest.raises(TargetError, match="callable target has no class"):
        explainer.explain_batch(x, lambda logits: logits[:, 0])
    with pytest.raises(ConfigurationError, match="base"):
        FinerCAM(base=SmoothGradCAMPlusPlus())
    with pytest.raises(ConfigurationError, match="base"):
        FinerCAM(base=FinerCAM())
    with pytest.raises(ConfigurationError, match="comparisons"):
        FinerCAM(comparisons=0)


# ---- what the engine lacks ---------------------------------------------------------------


class _OtherScoreProbe(CAMMethod):
    """Asks its context for the gradients of another score of the same forward."""

    name = "other-score-probe"

    def __init__(self) -> None:
        self.gradients: list[Tensor] = []

    def compute(self, context: MethodContext) -> Tensor:
        other = context.with_score(lambda logits: logits[:, 1] - logits[:, 0])
        self.gradients.append(other.gradients)
        return torch.relu(context.activations.sum(dim=1))


def test_context_gives_gradients_of_another_score_of_the_same_forward() -> None:
    from tiny_models import G0, linear_head_model

    probe = _OtherScoreProbe()
    model = linear_head_model(G0, other=-0.5)
    Explainer(model, method=probe, layer="features", device="cpu").explain(torch.zeros(3, 2, 2))
    torch.testing.assert_close(probe.gradients[0][0], torch.full_like(G0, -0.5) - G0)
