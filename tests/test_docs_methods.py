"""docs/methods.md: its examples run as the page says, and its Score-CAM package, installed
from the page, works through the ``camkit`` entry point.

The ``# acme-scorecam/...`` blocks are laid out as pip would install them (module and
``.dist-info`` with the entry point) in a temporary site directory, with plugin autoloading on
and only that distribution's entry points visible; nothing imports the package directly.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from doc_blocks import MODULE, install_example_packages, only_distributions, run_page
from helpers import build, minmax, recalibrate_batchnorm
from test_side_effects import assert_same, snapshot, user_model
from tiny_models import SmallCNN
from torch import Tensor, nn

import camkit
from camkit import Explainer
from camkit.plugins import list_registrations, manager


@pytest.fixture
def scorecam(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The page's ``acme-scorecam`` package installed, found by camkit's entry-point loading."""
    site = tmp_path / "site"
    site.mkdir()
    installed = install_example_packages("methods.md", site)
    assert installed == ["acme-scorecam"]
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CAMKIT_DISABLE_PLUGIN_AUTOLOAD")
    monkeypatch.setattr(manager.importlib.metadata, "entry_points", only_distributions(installed))
    manager.reset_plugins()
    yield
    sys.modules.pop("acme_scorecam", None)


def randn(*shape: int, seed: int = 0) -> Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_page_examples_run_as_documented(scorecam: None) -> None:
    assert run_page("methods.md", skip=MODULE) >= 7


def test_registered_through_the_entry_point(scorecam: None) -> None:
    (entry,) = [r for r in list_registrations("method") if r.name == "acme-scorecam"]
    assert (entry.plugin, entry.distribution) == ("acme_scorecam", "acme-scorecam")
    assert {"scorecam", "acme-scorecam"} <= set(camkit.list_methods())  # two distinct names
    explainer = Explainer(SmallCNN(), method="acme-scorecam", layer="body", device="cpu")
    assert type(explainer.method).__module__ == "acme_scorecam"
    assert (explainer.method.needs_gradients, explainer.method.extra_passes) == (False, True)


@torch.no_grad()
def score_cam_by_hand(
    model: nn.Module, layer: nn.Module, inputs: Tensor, target: Callable[[Tensor], Tensor]
) -> Tensor:
    """Score-CAM as the page's formula says, one masked input at a time."""
    found: list[Tensor] = []
    handle = layer.register_forward_hook(lambda m, i, o: found.append(o))
    try:
        model.eval()(inputs)
    finally:
        handle.remove()
    activations = found[0]
    maps = []
    for b in range(inputs.shape[0]):
        scores = []
        for k in range(activations.shape[1]):
            mask = F.interpolate(
                activations[b : b + 1, k : k + 1], size=inputs.shape[-2:], mode="bilinear"
            )[0, 0]
            mask = (mask - mask.min()) / (mask.max() - mask.min() + 1e-8)
            scores.append(target(model(inputs[b : b + 1] * mask))[0])
        weights = torch.softmax(torch.stack(scores), dim=0)
        maps.append(torch.relu(torch.einsum("c,chw->hw", weights, activations[b])))
    return torch.stack(maps)


def test_honours_targets_chunk_by_chunk(scorecam: None) -> None:
    model = SmallCNN(classes=5).eval()
    with torch.no_grad():
        model.head[2].weight.mul_(30.0)  # scores that react to the masks: softmax not flat
    inputs = randn(2, 3, 32, 32)
    # 16 channels of 2 images, 2 versions of the batch per forward pass: 8 chunks
    explainer = Explainer(model, method="acme-scorecam", layer="body", device="cpu", batch_size=5)
    class3 = lambda logits: logits[:, 3]  # noqa: E731
    contrastive = lambda logits: logits[:, 3] - logits[:, 1]  # noqa: E731
    by_index = explainer.explain_batch(inputs, targets=3).maps
    by_callable = explainer.explain_batch(inputs, targets=class3).maps
    contrast = explainer.explain_batch(inputs, targets=contrastive).maps
    close = {"rtol": 1e-4, "atol": 1e-6}
    torch.testing.assert_close(
        by_index, score_cam_by_hand(model, model.body, inputs, class3), **close
    )
    torch.testing.assert_close(by_callable, by_index, rtol=1e-6, atol=1e-7)
    expected = score_cam_by_hand(model, model.body, inputs, contrastive)
    torch.testing.assert_close(contrast, expected, **close)
    assert float((contrast - by_index).abs().max()) > 0.01 * float(by_index.max())


def test_leaves_the_model_as_found(scorecam: None) -> None:
    model = user_model()
    model.bn.train()
    model.relu.eval()
    before = snapshot(model)
    explanation = Explainer(model, method="acme-scorecam", layer="conv2", device="cpu").explain(
        randn(3, 16, 16), target=lambda logits: logits[:, 1] - logits[:, 0]
    )
    assert_same(before, snapshot(model))
    assert torch.is_grad_enabled()
    assert explanation.raw.shape == (16, 16) and explanation.raw.max() > 0


def reference_scorecam(
    model: nn.Module, layer: nn.Module, batch: Tensor, targets: list[int]
) -> np.ndarray:
    """pytorch-grad-cam's ScoreCAM map at the layer's resolution, ReLU'd (B, h, w)."""
    from pytorch_grad_cam import ScoreCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    wanted = [ClassifierOutputTarget(t) for t in targets]
    with ScoreCAM(model=model, target_layers=[layer]) as cam:
        cam.batch_size = 64
        with torch.no_grad():
            cam.activations_and_grads(batch)
        activations = cam.activations_and_grads.activations[-1].numpy()
        weights = cam.get_cam_weights(batch, layer, wanted, activations, None)
    return np.maximum((weights[:, :, None, None] * activations).sum(axis=1), 0)


def test_matches_pytorch_grad_cam(scorecam: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TQDM_DISABLE", "1")  # pytorch-grad-cam's progress bars
    model = recalibrate_batchnorm(build("torchvision", "resnet18", num_classes=10), size=96)
    inputs = randn(2, 3, 96, 96)
    batch = Explainer(model, method="acme-scorecam", layer="layer3", device="cpu").explain_batch(
        inputs
    )
    ours = batch.raws()
    assert ours.shape == (2, 6, 6)
    reference = reference_scorecam(model, model.layer3, inputs, batch.targets)
    for mine, theirs in zip(minmax(ours), minmax(reference), strict=True):
        assert mine.std() > 0 and theirs.std() > 0
        assert np.corrcoef(mine.ravel(), theirs.ravel())[0, 1] >= 0.98
