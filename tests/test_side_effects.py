"""The explainer leaves the user's model exactly as it found it, also after an exception."""

from __future__ import annotations

import gc
import weakref
from collections import OrderedDict

import numpy as np
import pytest
import torch
from tiny_models import SmallCNN
from torch import Tensor, nn

from camkit import Explainer


def snapshot(model: nn.Module) -> dict[str, object]:
    return {
        "training": {n: m.training for n, m in model.named_modules()},
        "requires_grad": {n: p.requires_grad for n, p in model.named_parameters()},
        "grad": {
            n: None if p.grad is None else p.grad.clone() for n, p in model.named_parameters()
        },
        "hooks": {
            n: (
                list(m._forward_hooks),
                list(m._forward_pre_hooks),
                list(m._backward_hooks),
                list(m._backward_pre_hooks),
            )
            for n, m in model.named_modules()
        },
        "state": {k: v.clone() for k, v in model.state_dict().items()},
    }


def assert_same(before: dict[str, object], after: dict[str, object]) -> None:
    assert after["training"] == before["training"]
    assert after["requires_grad"] == before["requires_grad"]
    assert after["hooks"] == before["hooks"]
    grads_before, grads_after = before["grad"], after["grad"]
    assert isinstance(grads_before, dict) and isinstance(grads_after, dict)
    for name, grad in grads_before.items():
        if grad is None:
            assert grads_after[name] is None, f"{name}.grad was written"
        else:
            torch.testing.assert_close(grads_after[name], grad, rtol=0, atol=0)
    state_before, state_after = before["state"], after["state"]
    assert isinstance(state_before, dict) and isinstance(state_after, dict)
    for key, value in state_before.items():
        torch.testing.assert_close(state_after[key], value, rtol=0, atol=0)


def user_model() -> nn.Module:
    """A model in an unusual state: training, partly frozen, with gradients and hooks."""
    torch.manual_seed(0)
    model = nn.Sequential(
        OrderedDict(
            conv=nn.Conv2d(3, 8, 3, padding=1),
            bn=nn.BatchNorm2d(8),
            relu=nn.ReLU(inplace=True),
            conv2=nn.Conv2d(8, 8, 3, padding=1),
            pool=nn.AdaptiveAvgPool2d(1),
            flat=nn.Flatten(),
            fc=nn.Linear(8, 4),
        )
    )
    model.train()
    model.bn.eval()  # mixed flags: must come back mixed
    model.conv.weight.requires_grad_(False)
    model.fc.weight.grad = torch.full_like(model.fc.weight, 7.0)  # accumulated by the user
    model.conv2.register_forward_hook(lambda m, i, o: None)
    model.fc.register_full_backward_hook(lambda m, gi, go: None)
    return model


def test_model_state_untouched() -> None:
    model = user_model()
    before = snapshot(model)
    explanation = Explainer(model, layer="conv2", device="cpu").explain(torch.randn(3, 16, 16))
    assert_same(before, snapshot(model))
    assert explanation.cam.shape == (16, 16)
    assert torch.is_grad_enabled()


def test_runs_in_eval_mode_even_if_model_trains() -> None:
    model = user_model()
    seen: list[bool] = []
    model.bn.register_forward_pre_hook(lambda m, i: seen.append(m.training))
    model.bn.train()
    Explainer(model, layer="conv2").explain(torch.randn(3, 16, 16))
    assert seen == [False]
    assert model.bn.training


def test_running_stats_not_updated() -> None:
    model = user_model()
    model.bn.train()
    before = model.bn.running_mean.clone()
    Explainer(model, layer="conv2").explain(torch.randn(3, 16, 16) * 5 + 3)
    torch.testing.assert_close(model.bn.running_mean, before, rtol=0, atol=0)


class Exploding(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(4, 2)

    def forward(self, x: Tensor) -> Tensor:
        self.features(x)  # the target layer's hook has already run here
        raise KeyError("boom from the user's forward")


def test_exception_propagates_unchanged_and_state_is_restored() -> None:
    model = Exploding().train()
    model.fc.weight.grad = torch.ones_like(model.fc.weight)
    before = snapshot(model)
    grad_mode = torch.is_grad_enabled()
    with pytest.raises(KeyError, match="boom from the user's forward") as info:
        Explainer(model, layer="features").explain(torch.randn(3, 8, 8))
    assert type(info.value) is KeyError
    assert_same(before, snapshot(model))
    assert torch.is_grad_enabled() == grad_mode


class FlipsFlags(nn.Module):
    """A forward that changes training flags itself (as some research code does)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Conv2d(3, 4, 3)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))

    def forward(self, x: Tensor) -> Tensor:
        self.head.train()
        self.features.eval()
        return self.head(self.features(x))


@pytest.mark.parametrize("mode", ["eval", "train", "mixed"])
def test_flags_changed_during_the_call_are_restored(mode: str) -> None:
    """Only the flags that need it are set on entry (a model in eval mode costs no setting);
    every flag that differs from the caller's on exit is restored, whoever changed it."""
    model = FlipsFlags()
    model.train(mode != "eval")
    if mode == "mixed":
        model.head[2].eval()
    before = snapshot(model)
    Explainer(model, layer="features", device="cpu").explain(torch.randn(3, 8, 8))
    assert_same(before, snapshot(model))


def test_inside_no_grad() -> None:
    model = SmallCNN().eval()
    x = torch.randn(3, 32, 32)
    reference = Explainer(model).explain(x)
    with torch.no_grad():
        inside = Explainer(model).explain(x)
        assert not torch.is_grad_enabled()
    np.testing.assert_allclose(inside.raw, reference.raw, rtol=1e-6, atol=1e-7)
    assert inside.raw.max() > 0


def test_inside_inference_mode() -> None:
    model = SmallCNN().eval()
    with torch.inference_mode():
        x = torch.randn(3, 32, 32)
        explanation = Explainer(model).explain(x)
        assert torch.is_inference_mode_enabled()
    assert explanation.raw.max() > 0


def test_all_parameters_frozen() -> None:
    model = SmallCNN().eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    x = torch.randn(3, 32, 32)
    frozen = Explainer(model).explain(x)
    for parameter in model.parameters():
        parameter.requires_grad_(True)
    free = Explainer(model).explain(x)
    np.testing.assert_allclose(frozen.raw, free.raw, rtol=1e-6, atol=1e-7)
    assert all(p.grad is None for p in model.parameters())


def test_no_graph_kept_between_calls() -> None:
    model = SmallCNN().eval()
    outputs: list[weakref.ref[Tensor]] = []
    handle = model.register_forward_hook(lambda m, i, o: outputs.append(weakref.ref(o)))
    try:
        explanation = Explainer(model).explain(torch.randn(3, 32, 32))
    finally:
        handle.remove()
    gc.collect()
    assert len(outputs) == 2  # the structural resolver's dry run, then the explanation
    assert outputs[-1]() is None, "the graph-carrying model output is still alive"
    assert isinstance(explanation.raw, np.ndarray)
    assert all(p.grad is None for p in model.parameters())
