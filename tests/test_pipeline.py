"""Engine v2: several classes from one forward, several layers fused, one pipeline."""

from __future__ import annotations

import threading
from typing import Any

import attrs
import numpy as np
import pytest
import torch
from helpers import build, minmax, recalibrate_batchnorm
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode

from camkit import Explainer
from camkit.errors import ConfigurationError, InputError, LayerNotFoundError, TargetError
from camkit.pipeline.checks import Requirement
from camkit.pipeline.run import ClassRequest


@pytest.fixture(scope="module")
def resnet() -> nn.Module:
    return recalibrate_batchnorm(build("torchvision", "resnet18", num_classes=10), size=64)


def _input(seed: int = 0, batch: int | None = None, size: int = 64) -> Tensor:
    generator = torch.Generator().manual_seed(seed)
    shape = (3, size, size) if batch is None else (batch, 3, size, size)
    return torch.randn(*shape, generator=generator)


class ForwardCounter:
    """Counts the model's forward calls through a pre-hook (removed by ``close``)."""

    def __init__(self, model: nn.Module) -> None:
        self.calls = 0
        self._handle = model.register_forward_pre_hook(self._count)

    def _count(self, *_: Any) -> None:
        self.calls += 1

    def close(self) -> None:
        self._handle.remove()


# ---- explain_classes ------------------------------------------------------------------------


def test_top_classes_from_one_forward_equal_single_calls(resnet: nn.Module) -> None:
    explainer = Explainer(resnet, device="cpu")
    x = _input()
    with torch.no_grad():
        logits = resnet(x[None])[0]
    counter = ForwardCounter(resnet)
    try:
        results = explainer.explain_classes(x, top=4)
    finally:
        counter.close()
    assert counter.calls == 1
    assert [r.target for r in results] == logits.topk(4).indices.tolist()
    scores = [r.target_score for r in results]
    assert scores == sorted(scores, reverse=True)
    np.testing.assert_allclose(scores, logits.topk(4).values.numpy(), rtol=1e-5)
    for result in results:
        single = explainer.explain(x, target=result.target)
        np.testing.assert_allclose(result.raw, single.raw, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(result.cam, single.cam, rtol=1e-5, atol=1e-5)
        assert result.pred_class == single.pred_class == int(logits.argmax())
        assert result.confidence == pytest.approx(single.confidence, rel=1e-6)


def test_given_classes_are_exactly_those_best_first(resnet: nn.Module) -> None:
    explainer = Explainer(resnet, device="cpu")
    x = _input(1)
    with torch.no_grad():
        logits = resnet(x[None])[0]
    wanted = [7, 2, 5]
    results = explainer.explain_classes(x, classes=wanted, top=1)  # top is ignored
    expected = sorted(wanted, key=lambda c: -float(logits[c]))
    assert [r.target for r in results] == expected
    for result in results:
        np.testing.assert_allclose(
            result.raw, explainer.explain(x, target=result.target).raw, rtol=1e-5, atol=1e-5
        )


def test_top_is_clamped_to_the_number_of_classes() -> None:
    model = build("torchvision", "resnet18", num_classes=3).eval()
    results = Explainer(model, device="cpu").explain_classes(_input(2), top=10)
    assert sorted(r.target for r in results) == [0, 1, 2]


def test_classes_of_a_batch_come_image_by_image(resnet: nn.Module) -> None:
    explainer = Explainer(resnet, device="cpu")
    x = _input(3, batch=2)
    results = explainer.explain_batch_classes(x, top=2)
    with torch.no_grad():
        top = resnet(x).topk(2).indices
    assert [r.target for r in results] == top.flatten().tolist()
    for i, result in enumerate(results):
        single = explainer.explain(x[i // 2], target=result.target)
        np.testing.assert_allclose(result.raw, single.raw, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"top": 0}, ConfigurationError, "top must be an int >= 1"),
        ({"top": -2}, ConfigurationError, "top must be an int >= 1"),
        ({"top": 2.5}, ConfigurationError, "top must be an int >= 1"),
        ({"classes": [3, 10]}, TargetError, "target 10 is out of range"),
        ({"classes": [-1]}, TargetError, "target -1 is out of range"),
        ({"classes": []}, TargetError, "classes is empty"),
        ({"classes": [4, 4]}, TargetError, r"classes names \[4\] more than once"),
        ({"classes": 4}, TargetError, "classes must be a sequence"),
        ({"classes": [1.5]}, TargetError, "must be an int class index"),
    ],
)
def test_explain_classes_bad_inputs(
    resnet: nn.Module, kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        Explainer(resnet, device="cpu").explain_classes(_input(), **kwargs)


# ---- several layers -----------------------------------------------------------------------


def test_each_layer_of_a_list_equals_that_layer_alone(resnet: nn.Module) -> None:
    """layer3's gradient flows through layer4: the fused capture's layer3 map is the map of
    layer3 explained on its own."""
    x = _input(4, batch=2)
    fused = Explainer(resnet, layer=["layer3", "layer4"], device="cpu").explain_batch(x)
    alone = {
        name: Explainer(resnet, layer=name, device="cpu").explain_batch(x)
        for name in ("layer3", "layer4")
    }
    for i, result in enumerate(fused):
        assert result.layer == "layer3+layer4"
        assert result.layers == ("layer3", "layer4")
        assert set(result.layer_maps) == {"layer3", "layer4"}
        for name, single in alone.items():
            assert result.layer_maps[name].max() > 0
            np.testing.assert_allclose(result.layer_maps[name], single[i].raw, rtol=1e-5, atol=1e-6)


def test_layers_are_captured_in_one_forward(resnet: nn.Module) -> None:
    counter = ForwardCounter(resnet)
    try:
        Explainer(resnet, layer=["layer2", "layer3", "layer4"], device="cpu").explain(_input())
    finally:
        counter.close()
    assert counter.calls == 1


def test_mean_fusion_equals_pytorch_grad_cam(resnet: nn.Module) -> None:
    from pytorch_grad_cam import GradCAMPlusPlus
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    x = _input(5, batch=2)
    explanations = Explainer(resnet, layer=["layer3", "layer4"], device="cpu").explain_batch(
        x, targets=[1, 6]
    )
    with GradCAMPlusPlus(model=resnet, target_layers=[resnet.layer3, resnet.layer4]) as cam:
        reference = cam(input_tensor=x, targets=[ClassifierOutputTarget(t) for t in (1, 6)])
    ours = minmax(np.stack([e.raw for e in explanations]))
    assert ours.shape == reference.shape == (2, 64, 64)
    assert np.abs(ours - reference).max() < 2e-3
    np.testing.assert_allclose(explanations.input_maps().numpy(), ours, atol=1e-5)


@pytest.mark.parametrize("fusion", ["max", "product"])
def test_other_fusions_combine_the_normalised_layer_maps(resnet: nn.Module, fusion: str) -> None:
    import cv2

    x = _input(6)
    result = Explainer(resnet, layer=["layer3", "layer4"], fusion=fusion, device="cpu").explain(x)
    resized = [
        cv2.resize(minmax(m[None])[0], (64, 64), interpolation=cv2.INTER_LINEAR)
        for m in result.layer_maps.values()
    ]
    combine = np.maximum if fusion == "max" else np.multiply
    np.testing.assert_allclose(result.raw, combine(*resized), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    ("layer", "error", "message"),
    [
        ([], ConfigurationError, r"layer=\[\] names no layer"),
        (["layer4", "layer4"], ConfigurationError, "'layer4' is given twice"),
        (["layer3", "layer4", "layer3"], ConfigurationError, "'layer3' is given twice"),
        (["layer4", "layer9"], LayerNotFoundError, "layer 'layer9' not found"),
        ([4], ConfigurationError, "each layer must be a dotted name or an nn.Module"),
    ],
)
def test_layer_list_bad_inputs(
    resnet: nn.Module, layer: Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        Explainer(resnet, layer=layer, device="cpu")


def test_a_module_and_its_name_are_the_same_layer(resnet: nn.Module) -> None:
    with pytest.raises(ConfigurationError, match="given twice"):
        Explainer(resnet, layer=[resnet.layer4, "layer4"], device="cpu")


def test_unknown_fusion(resnet: nn.Module) -> None:
    with pytest.raises(ConfigurationError, match="unknown fusion 'median'.*'mean'"):
        Explainer(resnet, layer=["layer3", "layer4"], fusion="median", device="cpu")


# ---- results --------------------------------------------------------------------------------


def test_input_maps_are_the_metrics_input(resnet: nn.Module) -> None:
    """The batch's maps at input resolution: each map resized to the input and min-max
    normalised, a tensor on the model's device, with no conversion by the caller."""
    import cv2

    x = _input(7, batch=3)
    batch = Explainer(resnet, device="cpu").explain_batch(x)
    maps = batch.input_maps()
    assert isinstance(maps, Tensor) and maps.shape == (3, 64, 64)
    for i, explanation in enumerate(batch):
        expected = minmax(cv2.resize(explanation.raw, (64, 64))[None])[0]
        np.testing.assert_allclose(maps[i].numpy(), expected, atol=1e-5)
        assert torch.equal(explanation.input_map, maps[i])
    assert torch.equal(batch.inputs, x)


def test_concurrent_calls_give_the_sequential_results(resnet: nn.Module) -> None:
    explainer = Explainer(resnet, device="cpu")
    inputs = [_input(10 + i) for i in range(4)]
    expected = [explainer.explain(x).raw for x in inputs]
    training = {name: m.training for name, m in resnet.named_modules()}
    found: dict[int, np.ndarray] = {}
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for _ in range(3):
                found[i] = explainer.explain(inputs[i]).raw
                with torch.no_grad():  # a plain forward of the shared model meanwhile
                    resnet(inputs[i][None])
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    for i in range(4):
        np.testing.assert_allclose(found[i], expected[i], rtol=1e-5, atol=1e-6)
    assert {name: m.training for name, m in resnet.named_modules()} == training


def test_callable_target_must_give_one_score_per_image(resnet: nn.Module) -> None:
    explainer = Explainer(resnet, device="cpu")
    with pytest.raises(TargetError, match=r"shape \(2,\), one score per image, got \(2, 10\)"):
        explainer.explain_batch(_input(batch=2), targets=lambda logits: logits)
    with pytest.raises(TargetError, match=r"got float"):
        explainer.explain_batch(_input(batch=2), targets=lambda logits: 1.0)


# ---- cost per call: the device is read once -------------------------------------------------


class DeviceReads(TorchDispatchMode):
    """Counts the operations that read a tensor's values on the host (``.item()``,
    ``bool(tensor)``, ``nonzero``...), which wait for an accelerator; ``.tolist()`` and
    ``.cpu()`` are counted by patching them, as a CPU tensor does not dispatch them."""

    READS = frozenset(
        {"aten._local_scalar_dense.default", "aten.nonzero.default", "aten.is_nonzero.default"}
    )

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        super().__init__()
        self.reads: list[str] = []
        for name in ("tolist", "cpu", "numpy"):
            original = getattr(Tensor, name)

            def counted(self_: Tensor, *args: Any, _name: str = name, _f: Any = original) -> Any:
                self.reads.append(_name)
                return _f(self_, *args)

            monkeypatch.setattr(Tensor, name, counted)

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if str(func) in self.READS:
            self.reads.append(str(func))
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize(
    "call",
    ["predicted", "index", "per-image", "callable", "classes", "top", "two layers"],
)
def test_a_call_reads_the_device_once(
    resnet: nn.Module, monkeypatch: pytest.MonkeyPatch, call: str
) -> None:
    """The checks of values (finite logits, scores and maps, non-negative maps, empty
    gradient maps) and the results' scalars come back in one transfer at the end."""
    layers = ["layer3", "layer4"] if call == "two layers" else "layer4"
    explainer = Explainer(resnet, layer=layers, device="cpu")
    prepared = explainer.prepare(_input(batch=3))
    requests: dict[str, Any] = {
        "predicted": {},
        "index": {"target": 2},
        "per-image": {"target": [1, 2, 3]},
        "callable": {"target": lambda logits: logits[:, 1] - logits[:, 0]},
        "classes": {"classes": ClassRequest((4, 1))},
        "top": {"classes": ClassRequest(None, 3)},
        "two layers": {},
    }
    expected = explainer.run(prepared, **requests[call])
    reads = DeviceReads(monkeypatch)
    with reads:
        results = explainer.run(prepared, **requests[call])
    assert reads.reads == ["cpu", "tolist"], reads.reads
    assert [r.target for r in results] == [r.target for r in expected]
    assert [r.target_score for r in results] == [r.target_score for r in expected]
    assert torch.equal(results.maps, expected.maps)
    # nothing else is moved to the host until asked for
    assert all(isinstance(m, Tensor) for m in [results.maps, *results.layer_maps.values()])
    with reads:
        results[0].cam  # noqa: B018 - the maps on the originals: one transfer, once
        results[1].cam  # noqa: B018
    assert reads.reads[2:] == ["cpu", "numpy"]


def test_the_checks_a_prepared_batch_carries_are_settled_first_by_every_run(
    resnet: nn.Module,
) -> None:
    """Inputs already on an accelerator are checked on the device; the requirement travels
    with the prepared batch and is read with the call that runs it, before the later ones."""
    explainer = Explainer(resnet, layer="layer4", device="cpu")
    prepared = explainer.prepare(_input(batch=2))
    assert prepared.checks == ()  # CPU inputs: checked by prepare itself
    seen: list[int] = []

    def failure() -> Exception | None:
        seen.append(len(seen))
        return InputError("image(s) [1] of the batch hold NaN (pretend)")

    flagged = attrs.evolve(prepared, checks=(Requirement(torch.tensor(False), failure),))
    for _ in range(2):  # each run reads it again
        with pytest.raises(InputError, match=r"\(pretend\)"):
            explainer.run(flagged, target=99)  # the bad target comes after: not reported
    assert seen == [0, 1]
    false_alarm = attrs.evolve(prepared, checks=(Requirement(torch.tensor(False), lambda: None),))
    expected = explainer.run(prepared)
    assert torch.equal(explainer.run(false_alarm).maps, expected.maps)


def test_batches_are_normalised_as_each_image_alone() -> None:
    """Images fitted as uint8 on workers and normalised per batch get exactly the values of
    DataConfig.prepare on each image, and those of (p / 255 - mean) / std to float rounding;
    a batch mixing pixels and a float tensor gives the same values too."""
    from camkit.pipeline.prepare import assemble_batch, prepare_image
    from camkit.preprocess import DataConfig

    config = DataConfig((20, 24), mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3), resize="letterbox")
    rng = np.random.default_rng(3)
    images = [rng.integers(0, 256, (15 + i, 31, 3), dtype=np.uint8) for i in range(3)]
    prepared = [prepare_image(image, config=config, transform=None) for image in images]
    assert all(item.tensor.dtype == torch.uint8 for item in prepared)
    cpu = torch.device("cpu")
    batch = assemble_batch(prepared, config=config, device=cpu, dtype=torch.float32).inputs
    alone = torch.stack([config.prepare(image)[0] for image in images])
    assert torch.equal(batch, alone)
    pixels = torch.stack([item.tensor for item in prepared]).float() / 255
    mean = torch.tensor(config.mean).view(1, 3, 1, 1)
    std = torch.tensor(config.std).view(1, 3, 1, 1)
    torch.testing.assert_close(batch, (pixels - mean) / std, rtol=0, atol=1e-5)
    tensor = prepare_image(alone[1], config=config, transform=None)
    mixed = assemble_batch(
        [prepared[0], tensor, prepared[2]], config=config, device=cpu, dtype=torch.float32
    ).inputs
    assert torch.equal(mixed, alone)


def test_decoded_files_are_closed_and_their_pil_image_usable(tmp_path: Any) -> None:
    """decode_rgb hands on the decoded PIL image only once its file is closed; a multi-frame
    GIF (whose file stays open after decoding) is closed and a copy handed on instead."""
    import warnings

    from PIL import Image

    from camkit.preprocess import decode_rgb

    still = tmp_path / "still.jpg"
    Image.fromarray(np.full((12, 16, 3), 200, np.uint8)).save(still)
    frames = [Image.new("RGB", (16, 12), (i * 40, 0, 0)) for i in range(3)]
    animated = tmp_path / "moving.gif"
    frames[0].save(animated, save_all=True, append_images=frames[1:])
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        for path in (still, animated):
            pixels, pil = decode_rgb(path)
            assert pil.mode == "RGB" and pil.size == (16, 12)
            assert getattr(pil, "fp", None) is None
            np.testing.assert_array_equal(np.asarray(pil.resize((16, 12))), pixels)
