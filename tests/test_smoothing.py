"""aug_smooth and eigen_smooth, with pytorch-grad-cam's semantics, checked against it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import build, minmax, recalibrate_batchnorm, reference_gradcampp
from torch import Tensor, nn

from camkit import CAMMethod, Explainer, MethodContext
from camkit.errors import ConfigurationError
from camkit.methods.eigen import principal_projection

SIZE = 64


@pytest.fixture(scope="module")
def resnet() -> nn.Module:
    return recalibrate_batchnorm(build("torchvision", "resnet18", num_classes=10), size=SIZE)


def _inputs(seed: int = 0, batch: int = 2) -> Tensor:
    return torch.randn(batch, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


def test_projection_equals_the_reference_up_to_sign_and_follows_camkits_rule() -> None:
    from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection

    maps = torch.rand(3, 16, 5, 6, generator=torch.Generator().manual_seed(0)) - 0.3
    ours = principal_projection(maps).numpy()
    reference = get_2d_projection(maps.numpy())
    for mine, theirs in zip(ours, reference, strict=True):
        assert min(np.abs(mine - theirs).max(), np.abs(mine + theirs).max()) < 1e-5
    for mine in ours.reshape(3, -1):  # the sign rule: the largest magnitude is positive
        assert mine[np.abs(mine).argmax()] > 0


def test_eigen_smooth_equals_the_reference_up_to_sign(resnet: nn.Module) -> None:
    batch, targets = _inputs(1), [2, 7]
    explanations = Explainer(resnet, eigen_smooth=True, device="cpu").explain_batch(batch, targets)
    projection = reference_gradcampp(
        resnet, resnet.layer4, batch, targets, eigen_smooth=True, relu=False
    )
    ours = minmax(np.stack([e.raw for e in explanations]))
    for mine, theirs in zip(ours, projection, strict=True):
        candidates = [minmax(np.maximum(sign * theirs, 0)[None])[0] for sign in (1, -1)]
        assert min(np.abs(mine - c).max() for c in candidates) < 2e-3
    plain = Explainer(resnet, device="cpu").explain_batch(batch, targets)
    assert not np.allclose(minmax(np.stack([e.raw for e in plain])), ours, atol=1e-2)


@pytest.mark.parametrize("layers", [["layer4"], ["layer3", "layer4"]])
def test_aug_smooth_equals_the_reference(resnet: nn.Module, layers: list[str]) -> None:
    from pytorch_grad_cam import GradCAMPlusPlus
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    batch, targets = _inputs(2), [1, 6]
    explainer = Explainer(resnet, layer=layers, aug_smooth=True, device="cpu")
    explanations = explainer.explain_batch(batch, targets)
    modules = [resnet.get_submodule(name) for name in layers]
    with GradCAMPlusPlus(model=resnet, target_layers=modules) as cam:
        reference = cam(
            input_tensor=batch,
            targets=[ClassifierOutputTarget(t) for t in targets],
            aug_smooth=True,
        )
    ours = minmax(np.stack([e.raw for e in explanations]))
    assert ours.shape == reference.shape == (2, SIZE, SIZE)
    assert np.abs(ours - minmax(reference)).max() < 2e-3
    plain = Explainer(resnet, layer=layers, device="cpu").explain_batch(batch, targets)
    assert np.abs(minmax(plain.input_maps().numpy()) - ours).max() > 1e-2  # it did smooth
    assert set(explanations[0].layer_maps) == set(layers)


def test_aug_smooth_keeps_the_scores_and_predictions_of_the_original(resnet: nn.Module) -> None:
    batch = _inputs(3)
    smoothed = Explainer(resnet, aug_smooth=True, device="cpu").explain_batch(batch)
    plain = Explainer(resnet, device="cpu").explain_batch(batch)
    for a, b in zip(smoothed, plain, strict=True):
        assert (a.pred_class, a.target) == (b.pred_class, b.target)
        assert a.target_score == pytest.approx(b.target_score, rel=1e-5)
        assert a.confidence == pytest.approx(b.confidence, rel=1e-5)


class ChannelMean(CAMMethod):
    """A gradient-free method without weighted activations."""

    name = "channel-mean-test"
    needs_gradients = False

    def compute(self, context: MethodContext) -> Tensor:
        return torch.relu(context.activations.mean(dim=1))


def test_eigen_smooth_on_a_method_without_weighted_activations(resnet: nn.Module) -> None:
    with pytest.raises(ConfigurationError, match="eigen_smooth does not apply to ChannelMean"):
        Explainer(resnet, method=ChannelMean(), eigen_smooth=True, device="cpu")


def test_aug_smooth_works_with_any_method(resnet: nn.Module) -> None:
    """The augmented maps of a gradient-free method are flipped back before averaging: a
    mirror-symmetric input gives a mirror-symmetric smoothed map."""
    half = _inputs(4, batch=1)[..., : SIZE // 2]
    symmetric = torch.cat([half, half.flip(-1)], dim=-1)
    result = Explainer(resnet, method=ChannelMean(), aug_smooth=True, device="cpu").explain(
        symmetric[0]
    )
    np.testing.assert_allclose(result.raw, result.raw[:, ::-1], atol=1e-5)


@pytest.mark.parametrize(
    ("name", "reference"),
    [
        ("hirescam", "HiResCAM"),
        ("gradcamelementwise", "GradCAMElementWise"),
        ("layercam", "LayerCAM"),
        ("xgradcam", "XGradCAM"),
    ],
)
def test_eigen_smooth_of_the_element_wise_methods(
    resnet: nn.Module, name: str, reference: str
) -> None:
    import pytorch_grad_cam
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    batch, targets = _inputs(5), [3, 8]
    ours = Explainer(resnet, method=name, eigen_smooth=True, device="cpu").explain_batch(
        batch, targets
    )
    wanted = [ClassifierOutputTarget(t) for t in targets]
    with getattr(pytorch_grad_cam, reference)(model=resnet, target_layers=[resnet.layer4]) as cam:
        cam(input_tensor=batch, targets=wanted)
        store = cam.activations_and_grads
        projection = cam.get_cam_image(
            batch,
            resnet.layer4,
            wanted,
            store.activations[-1].numpy(),
            store.gradients[-1].numpy(),
            True,
        )
    for mine, theirs in zip(minmax(np.stack([e.raw for e in ours])), projection, strict=True):
        candidates = [minmax(np.maximum(sign * theirs, 0)[None])[0] for sign in (1, -1)]
        assert min(np.abs(mine - c).max() for c in candidates) < 2e-3
