"""Parity with pytorch-grad-cam (the most used implementation) on real architectures.

Random-init models with recalibrated BatchNorm statistics; maps compared at the layer's
resolution after min-max normalisation, same layer, same eps (1e-6).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import build, minmax, recalibrate_batchnorm, reference_gradcampp

from camkit import Explainer, GradCAM

TOLERANCE = 2e-3

CASES = [
    ("torchvision", "resnet50", "layer4"),
    ("torchvision", "densenet121", "features.denseblock4"),
    # pytorch-grad-cam's stored activation at features.28 is overwritten by the in-place
    # ReLU that follows; at the ReLU itself both see the same tensor (see test below).
    ("torchvision", "vgg16", "features.29"),
    ("torchvision", "mobilenet_v2", "features.18"),
    ("timm", "efficientnet_b0", "conv_head"),
    ("timm", "convnext_tiny", "stages.3"),
]


def _inputs(seed: int = 7, batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, 3, 224, 224, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(("source", "name", "layer"), CASES, ids=[c[1] for c in CASES])
def test_gradcampp_matches_pytorch_grad_cam(source: str, name: str, layer: str) -> None:
    model = recalibrate_batchnorm(build(source, name))
    x = _inputs()
    explanations = Explainer(model, layer=layer, device="cpu").explain_batch(x)
    ours = minmax(np.stack([e.raw for e in explanations]))
    assert ours.std() > 0.05, "degenerate map: the comparison would be meaningless"
    module = dict(model.named_modules())[layer]
    reference = minmax(reference_gradcampp(model, module, x, [e.pred_class for e in explanations]))
    assert np.abs(ours - reference).max() <= TOLERANCE
    assert all(e.target == e.pred_class for e in explanations)


def test_gradcampp_matches_with_explicit_other_class() -> None:
    model = recalibrate_batchnorm(build("torchvision", "resnet50"))
    x = _inputs(seed=3)
    explanations = Explainer(model, layer=model.layer4, device="cpu").explain_batch(x, [5, 900])
    ours = minmax(np.stack([e.raw for e in explanations]))
    reference = minmax(reference_gradcampp(model, model.layer4, x, [5, 900]))
    assert np.abs(ours - reference).max() <= TOLERANCE


def test_gradcam_matches_pytorch_grad_cam() -> None:
    from pytorch_grad_cam import GradCAM as ReferenceGradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    model = recalibrate_batchnorm(build("torchvision", "resnet50"))
    x = _inputs(seed=11)
    explanations = Explainer(model, method=GradCAM(), layer="layer4").explain_batch(x)
    targets = [ClassifierOutputTarget(e.pred_class) for e in explanations]
    with ReferenceGradCAM(model=model, target_layers=[model.layer4]) as reference:
        reference(input_tensor=x, targets=targets)
        store = reference.activations_and_grads
        raw = reference.get_cam_image(
            x, model.layer4, targets, store.activations[-1].numpy(), store.gradients[-1].numpy()
        )
    ours = minmax(np.stack([e.raw for e in explanations]))
    assert np.abs(ours - minmax(np.maximum(raw, 0))).max() <= TOLERANCE


def test_inplace_relu_layer_sees_its_own_output() -> None:
    """At VGG's last conv, camkit uses the conv's output, not the in-place ReLU's result."""
    model = recalibrate_batchnorm(build("torchvision", "vgg16"))
    x = _inputs(seed=5, batch=1)
    recorded: list[torch.Tensor] = []
    handle = model.features[28].register_forward_hook(lambda m, i, o: recorded.append(o.clone()))
    try:
        explanation = Explainer(model, layer="features.28").explain(x)
    finally:
        handle.remove()
    conv_output = recorded[0]
    assert (conv_output < 0).any()  # pre-ReLU values exist: the capture must keep them
    # rebuild the Grad-CAM++ map from the conv output and the gradient at the conv output
    leaf = conv_output.detach().requires_grad_(True)
    score = model.classifier(torch.flatten(model.avgpool(model.features[29:](leaf.clone())), 1))
    (gradient,) = torch.autograd.grad(score[0, explanation.target], leaf)
    from camkit import GradCAMPlusPlus, LayerCapture
    from camkit.methods import MethodContext

    expected = GradCAMPlusPlus().compute(
        MethodContext.from_capture(
            LayerCapture(conv_output, gradient, score[:, 0].detach(), "features.28")
        )
    )
    np.testing.assert_allclose(explanation.raw, expected[0].numpy(), rtol=1e-4, atol=1e-6)


def test_gradient_free_capture_is_not_overwritten_by_inplace_relu() -> None:
    """A method that needs no gradients still sees the conv output, not the ReLU's result:
    its negative part, which the in-place ReLU would have zeroed, is intact."""
    from camkit import CAMMethod
    from camkit.methods import MethodContext

    class Mean(CAMMethod):
        name = "mean-test"
        needs_gradients = False

        def compute(self, context: MethodContext) -> torch.Tensor:
            return torch.relu(-context.activations).mean(dim=1)

    model = build("torchvision", "vgg11").eval()
    x = _inputs(seed=2, batch=1)
    with torch.no_grad():
        conv_output = model.features[:19](x)  # before its in-place ReLU
    expected = torch.relu(-conv_output).mean(dim=1)[0]
    explanation = Explainer(model, method=Mean(), layer="features.18").explain(x)
    assert expected.max() > 0
    np.testing.assert_allclose(explanation.raw, expected.numpy(), rtol=1e-5, atol=1e-6)
