"""The :class:`~camkit.methods.MethodContext` contract, checked with values.

What a method reads, the extra passes it may run (compared with the same computation done by
hand), the declarations that guard them, the output check, the float32 upcast, and that
every pass leaves the user's model as it was.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from helpers import build, recalibrate_batchnorm
from test_side_effects import assert_same, snapshot, user_model
from tiny_models import SmallCNN
from torch import Tensor, nn

import camkit
from camkit import CAMMethod, Explainer
from camkit.errors import MethodError
from camkit.methods import MethodContext
from camkit.plugins import hookimpl

Body = Callable[[MethodContext], Any]
TargetFn = Callable[[Tensor], Tensor]


class Probe(CAMMethod):
    """Runs ``body(context)`` on every context it gets, keeps what it returns, and returns a
    valid map (the ReLU'd channel sum)."""

    name = "probe"
    extra_passes = True

    def __init__(self, body: Body) -> None:
        self.body = body
        self.seen: list[Any] = []

    def compute(self, context: MethodContext) -> Tensor:
        self.seen.append(self.body(context))
        return torch.relu(context.activations.sum(dim=1))


def probe(
    model: nn.Module,
    inputs: Tensor,
    body: Body,
    *,
    layer: str,
    targets: Any = None,
    method: type[Probe] = Probe,
) -> Any:
    """What ``body`` returned for the one context of ``explain_batch(inputs, targets)``."""
    found = method(body)
    Explainer(model, method=found, layer=layer, device="cpu").explain_batch(inputs, targets)
    assert len(found.seen) == 1
    return found.seen[0]


def randn(*shape: int, seed: int = 0) -> Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def logits_of(model: nn.Module, inputs: Tensor) -> Tensor:
    return model.eval()(inputs)


def per_version(function: Callable[[Tensor], Tensor], versions: Tensor) -> Tensor:
    """``function`` applied to each version ``versions[:, n]``, stacked as ``(B, N, ...)``."""
    return torch.stack([function(versions[:, n]) for n in range(versions.shape[1])], dim=1)


def close(actual: Tensor, expected: Tensor) -> None:
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-5)


@pytest.fixture(scope="module")
def resnet() -> nn.Module:
    model = build("torchvision", "resnet18", num_classes=10)
    return recalibrate_batchnorm(model, size=64)


def contrast(logits: Tensor) -> Tensor:
    """A contrastive target: class 1 against class 0."""
    return logits[:, 1] - logits[:, 0]


def per_row(logits: Tensor) -> Tensor:
    """Depends on the batch layout: class 1 for the first image, class 2 for the second."""
    return logits[torch.arange(len(logits)), torch.tensor([1, 2])]


# ---- 1. score_inputs ------------------------------------------------------------------------


def test_score_inputs_index_targets_are_the_classes_of_the_original_input(
    resnet: nn.Module,
) -> None:
    inputs, versions = randn(2, 3, 32, 32), 3 * randn(2, 6, 3, 32, 32, seed=1)
    logits = per_version(lambda x: logits_of(resnet, x), versions)  # (B, N, K)
    predicted = logits_of(resnet, inputs).argmax(dim=1)
    # the perturbations change the prediction somewhere, so None is told apart from argmax
    assert bool((logits.argmax(dim=2) != predicted[:, None]).any())
    cases = [(None, predicted), (7, torch.tensor([7, 7])), ([3, 8], torch.tensor([3, 8]))]
    for targets, classes in cases:
        scores = probe(
            resnet, inputs, lambda c: c.score_inputs(versions), layer="layer4", targets=targets
        )
        expected = logits.gather(2, classes.view(2, 1, 1).expand(2, 6, 1))[..., 0]
        assert scores.shape == (2, 6)
        close(scores, expected)


@pytest.mark.parametrize("target", [contrast, per_row], ids=["contrast", "per-row"])
def test_score_inputs_calls_a_callable_target_on_each_version(
    resnet: nn.Module, target: TargetFn
) -> None:
    inputs, versions = randn(2, 3, 32, 32), 3 * randn(2, 5, 3, 32, 32, seed=2)
    expected = per_version(lambda x: target(logits_of(resnet, x)), versions)
    scores = probe(
        resnet, inputs, lambda c: c.score_inputs(versions), layer="layer4", targets=target
    )
    close(scores, expected)


def test_score_inputs_tensor_function_and_chunked_forms_agree(resnet: nn.Module) -> None:
    inputs, versions = randn(2, 3, 32, 32), 3 * randn(2, 5, 3, 32, 32, seed=3)
    calls: list[tuple[int, int]] = []

    def make(start: int, stop: int) -> Tensor:
        calls.append((start, stop))
        return versions[:, start:stop]

    def body(context: MethodContext) -> list[Tensor]:
        return [
            context.score_inputs(versions),
            context.score_inputs(make, count=5),
            context.score_inputs(versions, batch_size=1),
            context.score_inputs(make, count=5, batch_size=4),  # 2 versions of B=2 a pass
        ]

    tensor, function, single, chunked = probe(resnet, inputs, body, layer="layer4", targets=4)
    assert calls == [(0, 5), (0, 2), (2, 4), (4, 5)]
    expected = per_version(lambda x: logits_of(resnet, x)[:, 4], versions)
    for scores in (tensor, function, single, chunked):
        close(scores, expected)


# ---- 2. score_activations -------------------------------------------------------------------


class SkipNet(nn.Module):
    """A skip connection from before ``layer`` into the head: the part after the layer cannot
    run on more rows than the part before it."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
        self.layer = nn.Conv2d(8, 8, 3, stride=2, padding=1)
        self.fc = nn.Linear(8, 5)

    def forward(self, x: Tensor) -> Tensor:
        stem = self.stem(x)
        return self.fc(self.layer(stem).mean(dim=(2, 3)) + stem.mean(dim=(2, 3)))


def _rows_seen(module: nn.Module, run: Callable[[], Any]) -> tuple[Any, list[int]]:
    rows: list[int] = []
    handle = module.register_forward_pre_hook(lambda _m, args: rows.append(args[0].shape[0]))
    try:
        return run(), rows
    finally:
        handle.remove()


def test_score_activations_runs_only_the_head_when_it_can(resnet: nn.Module) -> None:
    inputs = randn(2, 3, 64, 64)
    replaced = torch.relu(randn(2, 4, 512, 2, 2, seed=4))
    scores, rows = _rows_seen(
        resnet.conv1,
        lambda: probe(
            resnet,
            inputs,
            lambda c: c.score_activations(replaced, batch_size=4),
            layer="layer4",
            targets=[2, 6],
        ),
    )
    assert max(rows) == 2, "the part before layer4 ran on repeated inputs"
    with torch.no_grad():
        expected = per_version(lambda a: resnet.fc(torch.flatten(resnet.avgpool(a), 1)), replaced)
    close(scores, expected.gather(2, torch.tensor([2, 6]).view(2, 1, 1).expand(2, 4, 1))[..., 0])


@pytest.mark.parametrize("target", [3, contrast], ids=["index", "callable"])
def test_score_activations_same_values_without_the_shortcut(target: Any) -> None:
    model = SkipNet().eval()
    inputs = randn(2, 3, 16, 16)
    replaced = randn(2, 3, 8, 8, 8, seed=5)
    scores, rows = _rows_seen(
        model.stem,
        lambda: probe(
            model, inputs, lambda c: c.score_activations(replaced), layer="layer", targets=target
        ),
    )
    assert max(rows) == 2 * 3, "the whole model must run on repeated inputs"
    with torch.no_grad():
        stem = model.stem(inputs).mean(dim=(2, 3))
        logits = per_version(lambda a: model.fc(a.mean(dim=(2, 3)) + stem), replaced)
    expected = (
        logits[..., 3]
        if target == 3
        else torch.stack([contrast(logits[:, n]) for n in range(3)], dim=1)
    )
    close(scores, expected)


# ---- 3. capture_inputs ----------------------------------------------------------------------


def _by_hand(model: nn.Module, layer: str, inputs: Tensor, target: Any) -> tuple[Tensor, ...]:
    """Activations, ∂y/∂A and scores at ``layer`` by a hook and plain autograd."""
    model.eval()
    found: list[Tensor] = []
    handle = model.get_submodule(layer).register_forward_hook(lambda m, i, o: found.append(o))
    try:
        logits = model(inputs)
    finally:
        handle.remove()
    scores = target(logits) if callable(target) else logits[torch.arange(len(logits)), target]
    (gradient,) = torch.autograd.grad(scores.sum(), found[0])
    return found[0].detach(), gradient, scores.detach()


@pytest.mark.parametrize("target", [None, per_row], ids=["predicted", "per-row"])
def test_capture_inputs_sees_what_an_explanation_of_each_version_sees(
    resnet: nn.Module, target: Any
) -> None:
    inputs = randn(2, 3, 64, 64)
    versions = inputs[:, None] + 0.7 * randn(2, 3, 3, 64, 64, seed=6)
    captures = probe(
        resnet,
        inputs,
        lambda c: list(c.capture_inputs(versions, batch_size=4)),
        layer="layer3",
        targets=target,
    )
    assert len(captures) == 3
    classes = logits_of(resnet, inputs).argmax(dim=1)
    # some version predicts another class: the captures must keep the original ones
    assert any(
        bool((logits_of(resnet, versions[:, v]).argmax(1) != classes).any()) for v in range(3)
    )
    same = per_row if target is per_row else classes.tolist()
    explainer = Explainer(resnet, method="gradcam", layer="layer3", device="cpu")
    for v, capture in enumerate(captures):
        activations, gradients, scores = _by_hand(resnet, "layer3", versions[:, v], same)
        close(capture.activations, activations)
        close(capture.gradients, gradients)
        close(capture.scores, scores)
        assert capture.layer == "layer3"
        gradcam = torch.relu(
            torch.einsum("bc,bchw->bhw", capture.gradients.mean(dim=(2, 3)), capture.activations)
        )
        close(gradcam, explainer.explain_batch(versions[:, v], targets=same).maps)


def test_capture_inputs_without_gradients(resnet: nn.Module) -> None:
    inputs = randn(2, 3, 32, 32)
    versions = randn(2, 2, 3, 32, 32, seed=7)
    captures = probe(
        resnet,
        inputs,
        lambda c: list(c.capture_inputs(lambda s, e: versions[:, s:e], count=2, gradients=False)),
        layer="layer3",
    )
    assert [c.gradients for c in captures] == [None, None]
    for v, capture in enumerate(captures):
        close(capture.activations, _by_hand(resnet, "layer3", versions[:, v], [0, 0])[0])


# ---- 4. full_gradients ----------------------------------------------------------------------


@pytest.mark.parametrize("target", [[5, 1], contrast], ids=["index", "callable"])
def test_full_gradients_equal_plain_autograd(resnet: nn.Module, target: Any) -> None:
    inputs = randn(2, 3, 32, 32)
    modules = ["layer3", "layer4.0.conv1"]
    assert all(p.grad is None for p in resnet.parameters())
    full = probe(
        resnet, inputs, lambda c: c.full_gradients(modules), layer="layer4", targets=target
    )
    assert all(p.grad is None for p in resnet.parameters()), "a parameter .grad was written"

    resnet.eval()
    leaf = inputs.clone().requires_grad_(True)
    outputs: dict[str, Tensor] = {}
    handles = [
        resnet.get_submodule(name).register_forward_hook(
            lambda m, i, o, name=name: outputs.__setitem__(name, o)
        )
        for name in modules
    ]
    try:
        logits = resnet(leaf)
    finally:
        for handle in handles:
            handle.remove()
    scores = target(logits) if callable(target) else logits[[0, 1], target]
    expected = torch.autograd.grad(scores.sum(), [leaf, *(outputs[n] for n in modules)])
    assert all(p.grad is None for p in resnet.parameters())

    close(full.input, inputs)
    close(full.input_gradient, expected[0])
    assert bool(expected[0].abs().sum() > 0)
    assert set(full.outputs) == set(modules)
    for name, gradient in zip(modules, expected[1:], strict=True):
        output, found = full.outputs[name]
        close(output, outputs[name].detach())
        close(found, gradient)


# ---- 5. hessian_vector_product --------------------------------------------------------------


class Quadratic(nn.Module):
    """``score_c = Σ w_c · A²`` after ``features``: the Hessian at ``features`` is
    ``2·diag(w_c)``."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Conv2d(3, 2, kernel_size=4, stride=4)
        self.register_buffer("w", torch.randn(3, 2, 2, 2))

    def forward(self, x: Tensor) -> Tensor:
        activations = self.features(x)
        return (self.w[None] * activations[:, None] ** 2).sum(dim=(2, 3, 4))


class HigherOrder(Probe):
    needs_higher_order = True
    extra_passes = False


VECTOR = randn(2, 2, 2, 2, seed=8)


def test_hessian_vector_product_closed_form() -> None:
    model = Quadratic().eval()
    inputs = randn(2, 3, 8, 8)

    def body(context: MethodContext) -> tuple[list[int | None], Tensor]:
        return context.targets, context.hessian_vector_product(VECTOR)

    w = model.w
    (targets, product) = probe(
        model, inputs, body, layer="features", targets=[0, 2], method=HigherOrder
    )
    assert targets == [0, 2]
    torch.testing.assert_close(product, 2 * torch.stack([w[0], w[2]]) * VECTOR, rtol=1e-6, atol=0)

    contrast = lambda logits: logits[:, 0] - 2 * logits[:, 1]  # noqa: E731
    _, product = probe(model, inputs, body, layer="features", targets=contrast, method=HigherOrder)
    torch.testing.assert_close(product, 2 * (w[0] - 2 * w[1]) * VECTOR, rtol=1e-6, atol=1e-6)

    # several classes from one forward: the graph is kept for each set of targets
    method = HigherOrder(body)
    Explainer(model, method=method, layer="features", device="cpu").explain_batch_classes(
        inputs, classes=[1, 2]
    )
    assert len(method.seen) == 2
    for targets, product in method.seen:
        expected = 2 * torch.stack([w[c] for c in targets]) * VECTOR
        torch.testing.assert_close(product, expected, rtol=1e-6, atol=0)


class HigherOrderPasses(Probe):
    needs_higher_order = True  # and extra_passes, from Probe


def test_hessian_vector_product_on_a_with_inputs_context() -> None:
    model = Quadratic().eval()
    product = probe(
        model,
        randn(2, 3, 8, 8),
        lambda c: c.with_inputs(2 * c.inputs).hessian_vector_product(VECTOR),
        layer="features",
        targets=[0, 2],
        method=HigherOrderPasses,
    )
    expected = 2 * torch.stack([model.w[0], model.w[2]]) * VECTOR
    torch.testing.assert_close(product, expected, rtol=1e-6, atol=0)


def test_hessian_vector_product_needs_the_declaration() -> None:
    with pytest.raises(
        MethodError,
        match=r"Probe calls context\.hessian_vector_product.*"
        r"needs_higher_order = True",
    ):
        probe(
            Quadratic(),
            randn(2, 3, 8, 8),
            lambda c: c.hessian_vector_product(VECTOR),
            layer="features",
        )


# ---- 6. declarations ------------------------------------------------------------------------


class Undeclared(Probe):
    extra_passes = False


PASSES: dict[str, Body] = {
    "score_inputs": lambda c: c.score_inputs(c.inputs[:, None]),
    "score_activations": lambda c: c.score_activations(c.activations[:, None]),
    "capture_inputs": lambda c: list(c.capture_inputs(c.inputs[:, None])),
    "full_gradients": lambda c: c.full_gradients(),
    "with_inputs": lambda c: c.with_inputs(c.inputs),
}


@pytest.mark.parametrize("name", sorted(PASSES))
def test_extra_pass_without_the_declaration_is_an_error(name: str) -> None:
    with pytest.raises(MethodError) as info:
        probe(SmallCNN(), randn(2, 3, 16, 16), PASSES[name], layer="body", method=Undeclared)
    message = str(info.value)
    assert f"Undeclared calls context.{name}" in message
    assert "extra_passes = True" in message


class NoGradients(Probe):
    needs_gradients = False


def test_no_gradients_declared() -> None:
    def body(context: MethodContext) -> Any:
        assert context.capture.gradients is None
        return context.gradients

    with pytest.raises(MethodError) as info:
        probe(SmallCNN(), randn(2, 3, 16, 16), body, layer="body", method=NoGradients)
    assert "NoGradients declared needs_gradients = False" in str(info.value)
    assert "needs_gradients = True" in str(info.value)

    seen = probe(
        SmallCNN(), randn(2, 3, 16, 16), lambda c: c.capture, layer="body", method=NoGradients
    )
    assert seen.gradients is None and seen.activations.shape == (2, 16, 8, 8)


# ---- 7. check_output ------------------------------------------------------------------------


class Returns(CAMMethod):
    """Returns ``make(context)``, whatever it is."""

    make: Callable[[MethodContext], Any] = staticmethod(lambda c: None)

    def compute(self, context: MethodContext) -> Any:
        return self.make(context)


def _returning(label: str, make: Callable[[MethodContext], Any]) -> CAMMethod:
    cls = type(label, (Returns,), {"make": staticmethod(make)})
    return cls()


def _good(c: MethodContext) -> Tensor:
    return torch.relu(c.activations.sum(dim=1))


BAD_OUTPUTS: dict[str, tuple[Callable[[MethodContext], Any], str]] = {
    "WrongBatch": (lambda c: _good(c)[:1], r"WrongBatch\.compute returned \(1, 8, 8\)"),
    "TwoDims": (lambda c: _good(c)[0], r"TwoDims\.compute returned \(8, 8\).*\(B, h, w\)"),
    "NotATensor": (lambda c: _good(c).tolist(), r"NotATensor\.compute returned list"),
    "Negative": (lambda c: _good(c) - 1.0, r"Negative\.compute returned negative values"),
    "WithNaN": (lambda c: _good(c) * float("nan"), r"WithNaN\.compute returned NaN"),
    "Integer": (lambda c: _good(c).long(), r"Integer\.compute returned a torch\.int64"),
}


@pytest.mark.parametrize("label", sorted(BAD_OUTPUTS))
def test_output_checked_in_one_place(label: str) -> None:
    make, message = BAD_OUTPUTS[label]
    explainer = Explainer(SmallCNN(), method=_returning(label, make), layer="body", device="cpu")
    with pytest.raises(MethodError, match=message):
        explainer.explain_batch(randn(2, 3, 16, 16))


def test_valid_output_is_kept_as_returned() -> None:
    model = SmallCNN().eval()
    explainer = Explainer(model, method=_returning("Good", _good), layer="body", device="cpu")
    inputs = randn(2, 3, 16, 16)
    maps = explainer.explain_batch(inputs).maps
    with torch.no_grad():
        expected = torch.relu(model.body(model.stem(inputs)).sum(dim=1))
    close(maps, expected)


def test_check_output_on_its_own_checks_the_values_at_once() -> None:
    method = _returning("Direct", _good)
    maps = torch.rand(2, 4, 4, dtype=torch.float16)
    checked = method.check_output(maps, 2)
    assert checked.dtype == torch.float32 and torch.equal(checked, maps.float())
    for value, message in [
        (float("nan"), r"Direct\.compute returned NaN or infinite values"),
        (float("-inf"), r"Direct\.compute returned NaN or infinite values"),
        (-0.5, r"Direct\.compute returned negative values \(minimum -0\.5\)"),
    ]:
        bad = maps.float().clone()
        bad[1, 2, 3] = value
        with pytest.raises(MethodError, match=message):
            method.check_output(bad, 2)


def test_an_overridden_check_output_is_the_one_applied() -> None:
    class Signed(Returns):
        """Allows negative maps, which the default check refuses."""

        make = staticmethod(lambda c: c.activations.sum(dim=1) - 1.0)

        def check_output(self, maps: object, batch: int) -> Tensor:
            assert isinstance(maps, Tensor)
            return maps.detach().float()

    explainer = Explainer(SmallCNN(), method=Signed(), layer="body", device="cpu")
    maps = explainer.explain_batch(randn(2, 3, 16, 16)).maps
    assert bool((maps < 0).any())


# ---- 8. float32 upcast ----------------------------------------------------------------------


def test_custom_method_sees_float32_on_a_bfloat16_model() -> None:
    model = SmallCNN().to(torch.bfloat16).eval()

    def body(context: MethodContext) -> dict[str, torch.dtype]:
        (capture,) = context.capture_inputs(context.inputs[:, None])
        assert capture.gradients is not None
        return {
            "inputs": context.inputs.dtype,
            "activations": context.activations.dtype,
            "gradients": context.gradients.dtype,
            "captured activations": capture.activations.dtype,
            "captured gradients": capture.gradients.dtype,
        }

    seen = probe(model, randn(2, 3, 16, 16), body, layer="body")
    assert seen.pop("inputs") == torch.bfloat16
    assert set(seen.values()) == {torch.float32}, seen


# ---- 9. the model is left as found ----------------------------------------------------------


class Boom(Exception):
    pass


def _every_pass(context: MethodContext) -> None:
    versions = context.inputs[:, None].repeat(1, 3, 1, 1, 1) + 0.1
    context.score_inputs(versions, batch_size=2)
    context.score_activations(context.activations[:, None].repeat(1, 2, 1, 1, 1))
    list(context.capture_inputs(versions))
    context.full_gradients(["conv", "conv2"])
    context.with_inputs(versions[:, 0])


def test_extra_passes_leave_the_model_as_found() -> None:
    model = user_model()
    model.bn.train()  # running statistics would move in training mode
    model.relu.eval()  # flags stay mixed
    modes: list[bool] = []
    model.bn.register_forward_pre_hook(lambda m, a: modes.append(m.training))
    before, grad_mode = snapshot(model), torch.is_grad_enabled()
    probe(model, randn(2, 3, 16, 16), _every_pass, layer="conv2", targets=contrast)
    assert_same(before, snapshot(model))
    assert torch.is_grad_enabled() == grad_mode
    assert len(modes) > 5 and not any(modes), "an extra pass ran in training mode"
    assert model.bn.training and not model.relu.training


@pytest.mark.parametrize("name", sorted(PASSES))
def test_model_left_as_found_when_a_pass_raises_midway(name: str) -> None:
    model = user_model()
    armed = [False]

    def explode(_m: nn.Module, _args: Any) -> None:  # raises inside the pass's forward
        if armed[0]:
            raise Boom(name)

    model.fc.register_forward_pre_hook(explode)

    def body(context: MethodContext) -> Any:
        armed[0] = True
        return PASSES[name](context)

    before, grad_mode = snapshot(model), torch.is_grad_enabled()
    with pytest.raises(Boom):
        probe(model, randn(2, 3, 16, 16), body, layer="conv2")
    assert_same(before, snapshot(model))
    assert torch.is_grad_enabled() == grad_mode


# ---- 10. registered methods are built by name -----------------------------------------------


class Weighted(CAMMethod):
    name = "test-weighted"
    extra_passes = True

    def __init__(self, power: float = 2.0, *, versions: int = 2) -> None:
        self.power, self.versions = power, versions

    def compute(self, context: MethodContext) -> Tensor:
        scores = context.score_inputs(context.inputs[:, None].repeat(1, self.versions, 1, 1, 1))
        weight = scores.mean(dim=1).abs() ** self.power
        return weight[:, None, None] * torch.relu(context.activations.sum(dim=1))


class WeightedPlugin:
    @hookimpl
    def camkit_register_methods(self) -> list[type[CAMMethod]]:
        return [Weighted]


def test_registered_method_is_constructible_by_name() -> None:
    plugin = camkit.register_plugin(WeightedPlugin(), name="test-weighted-plugin")
    try:
        assert "test-weighted" in camkit.list_methods()
        model = SmallCNN().eval()
        explainer = Explainer(model, method="test-weighted", layer="body", device="cpu")
        assert isinstance(explainer.method, Weighted)
        assert (explainer.method.power, explainer.method.versions) == (2.0, 2)
        inputs = randn(2, 3, 16, 16)
        batch = explainer.explain_batch(inputs, targets=1)
        assert batch[0].method == "test-weighted"
        with torch.no_grad():
            logits = model(inputs)[:, 1]
            expected = logits.abs()[:, None, None] ** 2 * torch.relu(
                model.body(model.stem(inputs)).sum(dim=1)
            )
        close(batch.maps, expected)
    finally:
        camkit.unregister_plugin(plugin)


def test_passes_are_refused_after_compute_returned() -> None:
    """A method that keeps an iterator of capture_inputs and consumes it after compute gets
    a MethodError, and the model is not run outside the explanation (BatchNorm statistics
    unchanged, grad mode as it was); an undeclared capture_inputs fails at the call."""

    class Leaky(CAMMethod):
        name = "leaky-test"
        extra_passes = True

        def compute(self, context: MethodContext) -> Tensor:
            self.later = context.capture_inputs(context.inputs[:, None] * 3 + 1)
            return context.activations.sum(1).relu()

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 6 * 6, 3)
    ).train()
    method = Leaky()
    Explainer(model, method=method, layer="1", device="cpu").explain_batch(randn(2, 3, 8, 8))
    statistics = model[1].running_mean.clone()
    with pytest.raises(MethodError, match="after compute returned"):
        list(method.later)
    assert torch.equal(model[1].running_mean, statistics)
    assert torch.is_grad_enabled()

    class Undeclared(CAMMethod):
        name = "undeclared-test"

        def compute(self, context: MethodContext) -> Tensor:
            context.capture_inputs(context.inputs[:, None])  # never iterated
            return context.activations.sum(1).relu()

    with pytest.raises(MethodError, match="does not declare extra_passes = True"):
        Explainer(model, method=Undeclared(), layer="1", device="cpu").explain(randn(3, 8, 8))
