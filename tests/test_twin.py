"""The channels-last twin that scores the Score-CAM family's passes on the CPU.

What it shares and copies, that the user's model is only read (same tensors, same layout,
same hooks, also when the twin is used), that scores and maps match those of the model itself,
batch norms folded into convolutions only where that is safe to see, the cases where camkit
scores with the model instead (no 4-D tensors, compiled, refusing channels-last inputs,
computing something else on them, a convolution's output read twice), and that the twin's
memory is released when the call ends.
"""

from __future__ import annotations

import gc
import threading
import weakref
from typing import Any

import pytest
import torch
from helpers import build
from test_context import probe, randn
from test_side_effects import assert_same, snapshot, user_model
from torch import Tensor, nn

from camkit import Explainer
from camkit.errors import ConfigurationError
from camkit.methods import ISCAM, SSCAM, ScoreCAM
from camkit.twin import channels_last_twin, fold_batch_norms

CL = torch.channels_last


def layouts(model: nn.Module) -> dict[str, tuple[int, tuple[int, ...], bool]]:
    """Each tensor's storage address, strides and ``requires_grad``."""
    tensors = [*model.named_parameters(), *model.named_buffers()]
    return {n: (t.data_ptr(), t.stride(), t.requires_grad) for n, t in tensors}


# ---- the twin itself ------------------------------------------------------------------------


def test_twin_holds_channels_last_copies_of_4d_tensors_and_shares_the_others() -> None:
    model = user_model().eval()
    before, layout = snapshot(model), layouts(model)
    twin = channels_last_twin(model)
    assert twin is not None and twin is not model
    assert twin.conv is not model.conv  # a new module tree
    copies = {**dict(twin.named_parameters()), **dict(twin.named_buffers())}
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        copied = copies[name]
        if tensor.ndim == 4:
            assert copied is not tensor and copied.is_contiguous(memory_format=CL), name
            assert not copied.requires_grad and torch.equal(copied, tensor), name
        else:
            assert copied is tensor, name  # shared, not copied
    assert_same(before, snapshot(model))
    assert layouts(model) == layout  # the model's own tensors keep their layout
    x = randn(2, 3, 16, 16)
    with torch.no_grad():
        expected = model(x)
        got = twin(x.contiguous(memory_format=CL))
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def test_twin_runs_the_models_hook_functions() -> None:
    model = user_model().eval()
    seen: list[nn.Module] = []
    model.conv2.register_forward_hook(lambda m, i, o: seen.append(m))
    twin = channels_last_twin(model)
    assert twin is not None
    with torch.no_grad():
        twin(randn(1, 3, 8, 8).contiguous(memory_format=CL))
    assert seen == [twin.conv2]


class Locked(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.lock = threading.Lock()  # a deep copy would refuse it

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x).mean(dim=(2, 3))


def test_other_attributes_are_shared_and_hooks_on_the_twin_stay_there() -> None:
    model = Locked()
    model.table = list(range(10))  # what a model may hold: shared, never copied
    hooks = list(model.conv._forward_hooks)
    twin = channels_last_twin(model)
    assert twin is not None
    assert twin.lock is model.lock and twin.table is model.table
    twin.conv.register_forward_hook(lambda m, i, o: None)
    twin.conv.register_forward_pre_hook(lambda m, a: None)
    assert list(model.conv._forward_hooks) == hooks and not model.conv._forward_pre_hooks
    shared = nn.Conv2d(3, 3, 1)
    pair = nn.Sequential(shared, nn.ReLU(), shared)
    copied = channels_last_twin(pair)
    assert copied is not None and copied[0] is copied[2] and copied[0] is not shared


def test_no_twin_where_it_cannot_help() -> None:
    assert channels_last_twin(nn.Sequential(nn.Flatten(), nn.Linear(12, 2))) is None

    class Compiled(nn.Module):  # what torch.compile wraps a model in: _orig_mod
        def __init__(self) -> None:
            super().__init__()
            self._orig_mod = nn.Conv2d(3, 4, 3)

    assert channels_last_twin(Compiled()) is None


# ---- folding batch norms into convolutions ---------------------------------------------------


def test_every_batch_norm_after_a_convolution_is_folded_and_the_function_kept() -> None:
    model = build("torchvision", "resnet18", num_classes=10).eval()
    twin = channels_last_twin(model)
    assert twin is not None
    x = randn(2, 3, 64, 64, seed=5).contiguous(memory_format=CL)
    with torch.no_grad():
        assert fold_batch_norms(twin, x) == 20  # every BatchNorm2d of a ResNet-18
        got, expected = twin(x), model(x.contiguous())
    assert not any(isinstance(m, nn.BatchNorm2d) for m in twin.modules())
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 20  # the user's kept
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    # w' = w·γ/√(σ²+ε), b' = (0 − μ)·γ/√(σ²+ε) + β for conv1 (no bias) and bn1
    bn = model.bn1
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    torch.testing.assert_close(twin.conv1.weight, model.conv1.weight * scale[:, None, None, None])
    torch.testing.assert_close(twin.conv1.bias, bn.bias - bn.running_mean * scale)
    assert twin.conv1.weight.is_contiguous(memory_format=CL)


class Pairs(nn.Module):
    """A convolution shared by two calls, a batch norm after a ReLU, a batch norm with a
    hook, one reading a map changed in place after the convolution, and one clean pair: only
    the clean pair folds."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.shared, self.shared_bn = nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3)
        self.conv, self.after_relu = nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4)
        self.hooked_conv, self.hooked = nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4)
        self.changed_conv, self.changed = nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4)
        self.clean_conv, self.clean = nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4)
        self.hooked.register_forward_hook(lambda m, i, o: None)

    def forward(self, x: Tensor) -> Tensor:
        x = self.shared_bn(self.shared(self.shared(x)))
        x = self.after_relu(torch.relu(self.conv(x)))
        x = self.hooked(self.hooked_conv(x))
        x = self.changed(self.changed_conv(x).add_(0.5))  # bn(conv(x) + 0.5)
        return self.clean(self.clean_conv(x)).mean(dim=(2, 3))


def test_only_a_convolution_run_once_straight_into_a_plain_batch_norm_folds() -> None:
    model = Pairs().eval()
    for bn in (model.shared_bn, model.after_relu, model.hooked, model.changed, model.clean):
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
    twin = channels_last_twin(model)
    assert twin is not None
    x = randn(2, 3, 8, 8).contiguous(memory_format=CL)
    with torch.no_grad():
        assert fold_batch_norms(twin, x) == 1
        torch.testing.assert_close(twin(x), model(x.contiguous()), rtol=1e-5, atol=1e-6)
    assert isinstance(twin.clean, nn.Identity)
    assert all(
        isinstance(twin.get_submodule(n), nn.BatchNorm2d)
        for n in ("shared_bn", "after_relu", "hooked", "changed")
    )
    training = channels_last_twin(model.train())
    assert training is not None
    with torch.no_grad():
        assert fold_batch_norms(training, x) == 0  # batch statistics: nothing to fold


class ReadTwice(nn.Module):
    """The convolution's output feeds the batch norm and a skip connection: folding cannot
    see the second reader, and the twin's check must catch it."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv, self.bn = nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 3)
        self.bn.running_mean.uniform_(-1, 1)

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv(x)
        return self.fc(torch.relu(self.bn(y) + y).mean(dim=(2, 3)))


# ---- scoring with the twin --------------------------------------------------------------------


class Refuses(nn.Module):
    """Flattens with ``view``, which raises on a channels-last map."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 8 * 8, 3)

    def forward(self, x: Tensor) -> Tensor:
        features = torch.relu(self.conv(x))
        return self.fc(features.view(features.shape[0], -1))


class Differs(nn.Module):
    """Computes something else on channels-last inputs."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x: Tensor) -> Tensor:
        shift = 0.0 if x.is_contiguous() else 1.0
        return self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3))) + shift


def _modules_scoring(model: nn.Module, method: Any, layer: str) -> tuple[Tensor, list[str]]:
    """The map of ``method`` and which module tree ran the passes after the first forward."""
    ran: list[str] = []
    model.fc.register_forward_hook(  # not on conv: a hooked convolution is not folded
        lambda m, i, o: ran.append("model" if m is model.fc else "twin")
    )
    explanation = Explainer(model, method=method, layer=layer, device="cpu").explain_batch(
        randn(2, 3, 8, 8, seed=4)
    )
    return explanation.maps, ran


@pytest.mark.parametrize("model_class", [Refuses, Differs, ReadTwice])
def test_models_that_differ_in_channels_last_are_scored_by_themselves(
    model_class: type[nn.Module],
) -> None:
    fast, ran = _modules_scoring(model_class().eval(), ScoreCAM(), "conv")
    plain, ran_plain = _modules_scoring(model_class().eval(), ScoreCAM(channels_last=False), "conv")
    assert set(ran_plain) == {"model"}
    # the twin's checks (Refuses stops before fc), then the model itself ran every pass
    assert ran.count("model") == len(ran_plain) and ran[-1] == "model"
    torch.testing.assert_close(fast, plain, rtol=0, atol=0)


def test_scores_match_the_model_itself() -> None:
    model = user_model().eval()
    inputs, versions = randn(2, 3, 16, 16), 2 * randn(2, 5, 3, 16, 16, seed=1)

    def body(context: Any) -> tuple[Tensor, Tensor]:
        return (
            context.score_inputs(versions, batch_size=4),
            context.score_inputs(versions, batch_size=4, channels_last=False),
        )

    fast, plain = probe(model, inputs, body, layer="conv2", targets=[1, 3])
    with torch.no_grad():
        expected = torch.stack(
            [model(versions[:, v])[torch.arange(2), torch.tensor([1, 3])] for v in range(5)], 1
        )
    torch.testing.assert_close(plain, expected, rtol=0, atol=0)
    torch.testing.assert_close(fast, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "method",
    [ScoreCAM, lambda **k: ISCAM(num_samples=2, **k), lambda **k: SSCAM(2, seed=3, **k)],
    ids=["scorecam", "iscam", "sscam"],
)
def test_maps_with_the_twin_match_the_maps_without(method: Any) -> None:
    model = build("torchvision", "resnet18", num_classes=10).eval()
    x = randn(1, 3, 64, 64, seed=2)
    maps = [
        Explainer(model, method=method(channels_last=flag), layer="layer3", device="cpu")
        .explain_batch(x)
        .maps
        for flag in (True, False)
    ]
    torch.testing.assert_close(maps[0], maps[1], rtol=1e-4, atol=1e-5)


def test_model_left_as_found_and_twin_released_when_the_call_ends() -> None:
    model = user_model()
    before, layout = snapshot(model), layouts(model)
    twins: list[weakref.ref[nn.Module]] = []
    handle = model.conv.register_forward_hook(
        lambda m, i, o: None if m is model.conv else twins.append(weakref.ref(m))
    )
    hooks = snapshot(model)["hooks"]

    def body(context: Any) -> Any:
        context.score_inputs(context.inputs[:, None].repeat(1, 3, 1, 1, 1))
        return context  # kept by the probe after the call, and the runner with it

    kept = probe(model, randn(2, 3, 16, 16), body, layer="conv2")
    assert twins, "the twin scored nothing"
    gc.collect()
    assert all(ref() is None for ref in twins), "the call's end did not release the twin"
    assert kept is not None
    assert snapshot(model)["hooks"] == hooks
    handle.remove()
    assert_same(before, snapshot(model))
    assert layouts(model) == layout


def test_channels_last_must_be_a_bool() -> None:
    with pytest.raises(ConfigurationError, match="channels_last must be True or False"):
        ScoreCAM(channels_last=1)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="channels_last"):
        ISCAM(channels_last="yes")  # type: ignore[arg-type]


# ---- models that a plain copy would break ---------------------------------------------------


class Encoder(nn.Module):
    def __init__(self, store: dict[str, Tensor]) -> None:
        super().__init__()
        self.conv, self.store = nn.Conv2d(3, 8, 3, padding=1), store

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv(x)
        self.store["skip"] = y  # read by the decoder: a dict the two modules share
        return torch.relu(y)


class Decoder(nn.Module):
    def __init__(self, store: dict[str, Tensor]) -> None:
        super().__init__()
        self.conv, self.store = nn.Conv2d(8, 8, 3, padding=1), store

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x) + self.store["skip"]


class SharedStore(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        store: dict[str, Tensor] = {}
        self.enc, self.dec = Encoder(store), Decoder(store)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.dec(self.enc(x)))


class Slotted(nn.Module):
    __slots__ = ("scale",)

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv, self.fc = nn.Conv2d(3, 4, 3, padding=1), nn.Linear(4, 3)
        self.scale = 2.0

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3))) * self.scale


def _parametrized() -> nn.Module:
    torch.manual_seed(0)
    conv = nn.utils.parametrizations.weight_norm(nn.Conv2d(3, 4, 3, padding=1))
    return nn.Sequential(conv, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))


def _traced() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 3),
    ).eval()
    model[1].running_mean.uniform_(-1, 1)
    return torch.fx.symbolic_trace(model)


@pytest.mark.parametrize(
    ("make", "layer"),
    [(SharedStore, "dec"), (Slotted, "conv"), (_parametrized, "1"), (_traced, "2")],
    ids=["shared-dict", "slots", "parametrized", "fx-graph"],
)
def test_twin_of_models_a_plain_copy_would_break(make: Any, layer: str) -> None:
    model = make().eval()
    x = randn(2, 3, 12, 12, seed=6)
    graph = getattr(model, "graph", None)
    kinds = {name: type(m) for name, m in model.named_modules()}
    assert channels_last_twin(model) is not None
    maps = [
        Explainer(model, method=ScoreCAM(channels_last=flag), layer=layer, device="cpu")
        .explain_batch(x)
        .maps
        for flag in (True, False)
    ]
    torch.testing.assert_close(maps[0], maps[1], rtol=1e-5, atol=1e-6)
    assert {name: type(m) for name, m in model.named_modules()} == kinds  # nothing folded
    if graph is not None:
        assert model.graph is graph and graph.owning_module is model
