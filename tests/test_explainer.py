"""The Explainer facade: inputs, preprocessing, targets, model outputs, results, devices."""

from __future__ import annotations

import types
import warnings
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from tiny_models import SmallCNN
from torch import Tensor, nn

import camkit.device
from camkit import DataConfig, Explainer, JetRenderer
from camkit.errors import (
    ConfigurationError,
    DeviceFallbackWarning,
    InputError,
    ModelOutputError,
    TargetError,
)


@pytest.fixture
def model() -> nn.Module:
    torch.manual_seed(0)
    return SmallCNN(classes=3).eval()


@pytest.fixture
def image() -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)


class Recorder:
    def __init__(self, model: nn.Module) -> None:
        self.inputs: list[Tensor] = []
        model.register_forward_pre_hook(lambda m, args: self.inputs.append(args[0].clone()))


# ---- inputs and preprocessing -------------------------------------------------------------


def test_all_image_kinds_give_the_same_map(
    model: nn.Module, image: np.ndarray, tmp_path: Path
) -> None:
    path = tmp_path / "img.png"
    Image.fromarray(image).save(path)
    ex = Explainer(model)
    results = [
        ex.explain(image),
        ex.explain(str(path)),
        ex.explain(path),
        ex.explain(Image.fromarray(image)),
    ]
    for result in results:
        assert result.cam.shape == (37, 53)
        assert result.cam.dtype == np.float32
        np.testing.assert_allclose(result.raw, results[0].raw, rtol=1e-6, atol=1e-7)
        np.testing.assert_array_equal(result.image, image)


def test_grayscale_and_rgba_become_rgb(model: nn.Module, image: np.ndarray) -> None:
    ex = Explainer(model)
    grey = image[:, :, 0]
    as_rgb = ex.explain(np.repeat(grey[:, :, None], 3, axis=2))
    np.testing.assert_allclose(ex.explain(grey).raw, as_rgb.raw, rtol=1e-6)
    np.testing.assert_allclose(ex.explain(Image.fromarray(grey, "L")).raw, as_rgb.raw, rtol=1e-6)
    rgba = np.concatenate([image, np.full((37, 53, 1), 90, np.uint8)], axis=2)
    np.testing.assert_allclose(ex.explain(rgba).raw, ex.explain(image).raw, rtol=1e-6)
    assert ex.explain(rgba).image.shape == (37, 53, 3)


def test_default_preprocessing_is_imagenet_224(model: nn.Module) -> None:
    recorder = Recorder(model)
    colour = np.zeros((30, 20, 3), dtype=np.uint8)
    colour[:] = (255, 128, 0)
    Explainer(model).explain(colour)
    seen = recorder.inputs[-1]
    assert seen.shape == (1, 3, 224, 224)
    expected = [(1.0 - 0.485) / 0.229, (128 / 255 - 0.456) / 0.224, (0.0 - 0.406) / 0.225]
    for channel, value in enumerate(expected):
        torch.testing.assert_close(seen[0, channel], torch.full((224, 224), value))


def test_pretrained_cfg_is_read_from_any_model(model: nn.Module) -> None:
    model.pretrained_cfg = {
        "input_size": (3, 40, 48),
        "mean": (0.5, 0.5, 0.5),
        "std": (0.25, 0.5, 1.0),
        "interpolation": "bicubic",
    }
    recorder = Recorder(model)
    colour = np.full((9, 11, 3), 51, dtype=np.uint8)  # 0.2 after scaling
    result = Explainer(model).explain(colour)
    seen = recorder.inputs[-1]
    assert seen.shape == (1, 3, 40, 48)
    for channel, std in enumerate((0.25, 0.5, 1.0)):
        torch.testing.assert_close(seen[0, channel], torch.full((40, 48), (0.2 - 0.5) / std))
    assert result.cam.shape == (9, 11)  # back at the original resolution
    assert DataConfig.from_model(model).interpolation == "bicubic"


def test_timm_data_config() -> None:
    from helpers import build

    config = DataConfig.from_model(build("timm", "inception_resnet_v2"))
    assert config.input_size == (299, 299)
    assert config.mean == (0.5, 0.5, 0.5) and config.interpolation == "bicubic"


def test_wrapped_model_uses_the_inner_config() -> None:
    from helpers import build

    inner = build("timm", "inception_resnet_v2")
    wrapped = nn.Sequential(nn.Identity(), inner)
    assert DataConfig.from_model(wrapped) == DataConfig.from_model(inner)
    assert DataConfig.from_model(wrapped).input_size == (299, 299)


def test_explicit_data_config(model: nn.Module) -> None:
    recorder = Recorder(model)
    config = DataConfig(input_size=(299, 299), mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    result = Explainer(model, data_config=config).explain(np.full((10, 12, 3), 255, np.uint8))
    torch.testing.assert_close(recorder.inputs[-1], torch.ones(1, 3, 299, 299))
    assert result.cam.shape == (10, 12)
    with pytest.raises(ValueError, match=r"input_size must be \(H, W\)"):
        DataConfig(input_size=(0, 4))


def test_user_transform_overrides(model: nn.Module, image: np.ndarray) -> None:
    calls: list[tuple[int, int]] = []

    def transform(pil: Image.Image) -> Tensor:
        calls.append(pil.size)
        return torch.ones(3, 32, 32)

    recorder = Recorder(model)
    result = Explainer(model, transform=transform).explain(image)
    assert calls == [(53, 37)]
    torch.testing.assert_close(recorder.inputs[-1], torch.ones(1, 3, 32, 32))
    assert result.cam.shape == (37, 53)
    with pytest.raises(InputError, match=r"transform must return a \(C, H, W\) tensor"):
        Explainer(model, transform=lambda pil: np.zeros(3)).explain(image)  # type: ignore[arg-type,return-value]


def test_tensor_input_used_as_is(model: nn.Module) -> None:
    recorder = Recorder(model)
    x = torch.randn(3, 24, 40)
    ex = Explainer(model)
    result = ex.explain(x)
    torch.testing.assert_close(recorder.inputs[-1][0], x)
    assert result.cam.shape == (24, 40)
    assert result.image.shape == (24, 40, 3)
    np.testing.assert_allclose(ex.explain(x[None]).raw, result.raw, rtol=1e-6)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.zeros((4, 4, 3), dtype=np.float32), "must be uint8"),
        (np.zeros((3, 4, 4, 2), dtype=np.uint8), "must have shape"),
        (torch.zeros(2, 3, 8, 8), r"\(C, H, W\) or \(1, C, H, W\)"),
        (torch.zeros(8, 8), r"\(C, H, W\) or \(1, C, H, W\)"),
        (12, "unsupported image type int"),
        ("does/not/exist.jpg", "image file not found"),
    ],
)
def test_bad_inputs(model: nn.Module, bad: Any, message: str) -> None:
    with pytest.raises(InputError, match=message):
        Explainer(model).explain(bad)


def test_unreadable_files(model: nn.Module, tmp_path: Path) -> None:
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    truncated = tmp_path / "cut.png"
    buffer = tmp_path / "full.png"
    Image.fromarray(np.zeros((64, 64, 3), np.uint8) + 100).save(buffer)
    truncated.write_bytes(buffer.read_bytes()[:60])
    for path in (text, empty, truncated):
        with pytest.raises(InputError, match="cannot read"):
            Explainer(model).explain(path)


# ---- batches ----------------------------------------------------------------------------


def test_batch_equals_singles(model: nn.Module, image: np.ndarray) -> None:
    ex = Explainer(model)
    other = image[::-1].copy()
    batch = ex.explain_batch([image, other, torch.randn(3, 224, 224)], targets=[0, 1, 2])
    assert [b.target for b in batch] == [0, 1, 2]
    single = ex.explain(other, target=1)
    np.testing.assert_allclose(batch[1].raw, single.raw, rtol=1e-5, atol=1e-6)
    assert batch[2].cam.shape == (224, 224)


def test_batch_tensor(model: nn.Module) -> None:
    x = torch.randn(4, 3, 32, 32)
    results = Explainer(model).explain_batch(x)
    assert len(results) == 4
    np.testing.assert_allclose(
        results[3].raw, Explainer(model).explain(x[3]).raw, rtol=1e-5, atol=1e-6
    )


def test_batch_errors(model: nn.Module, image: np.ndarray) -> None:
    ex = Explainer(model)
    with pytest.raises(InputError, match="got no images"):
        ex.explain_batch([])
    with pytest.raises(InputError, match="same shape"):
        ex.explain_batch([torch.zeros(3, 8, 8), torch.zeros(3, 9, 9)])
    with pytest.raises(InputError, match="use explain\\(\\) for a single image"):
        ex.explain_batch(image)
    with pytest.raises(InputError, match=r"\(N, C, H, W\)"):
        ex.explain_batch(torch.zeros(3, 8, 8))


# ---- targets ----------------------------------------------------------------------------


def test_predicted_class_and_confidence(model: nn.Module) -> None:
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        logits = model(x)
    probabilities = torch.softmax(logits, dim=1)
    results = Explainer(model).explain_batch(x)
    for i, result in enumerate(results):
        assert result.pred_class == int(logits[i].argmax())
        assert result.target == result.pred_class
        assert result.confidence == pytest.approx(float(probabilities[i].max()), abs=1e-6)
        assert result.target_score == pytest.approx(float(logits[i].max()), abs=1e-5)


def test_int_and_list_targets(model: nn.Module) -> None:
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        logits = model(x)
    results = Explainer(model).explain_batch(x, 2)
    assert [r.target for r in results] == [2, 2]
    assert results[0].target_score == pytest.approx(float(logits[0, 2]), abs=1e-5)
    results = Explainer(model).explain_batch(x, [np.int64(1), torch.tensor(0)])
    assert [r.target for r in results] == [1, 0]
    results = Explainer(model).explain_batch(x, torch.tensor(1))  # a 0-d tensor: one for all
    assert [r.target for r in results] == [1, 1]
    assert Explainer(model).explain(x[0], target=torch.tensor([2])).target == 2


def test_callable_target(model: nn.Module) -> None:
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        logits = model(x)
    results = Explainer(model, method="gradcam").explain_batch(x, lambda z: z[:, 0] - z[:, 1])
    for i, result in enumerate(results):
        assert result.target is None
        assert result.target_score == pytest.approx(float(logits[i, 0] - logits[i, 1]), abs=1e-5)
    # Grad-CAM is linear in the score's gradient: the contrastive weights are a difference
    ex = Explainer(model, method="gradcam")
    first = ex.explain(x[0], target=0)
    assert not np.allclose(first.raw, results[0].raw)


@pytest.mark.parametrize(
    ("target", "message"),
    [
        (3, r"target 3 is out of range: the model has 3 classes \(valid targets are 0..2\)"),
        (-1, "target -1 is out of range"),
        ([0, 1, 2], "got 3 targets for a batch of 2 images"),
        ([0], "got 1 targets for a batch of 2 images"),
        (True, "must be an int class index, got bool"),
        (1.0, "must be an int class index, got float"),
        (lambda z: z, r"must return a tensor of shape \(2,\)"),
    ],
)
def test_bad_targets(model: nn.Module, target: Any, message: str) -> None:
    with pytest.raises(TargetError, match=message):
        Explainer(model).explain_batch(torch.randn(2, 3, 32, 32), target)


def test_explain_rejects_several_targets(model: nn.Module) -> None:
    with pytest.raises(InputError, match="got 2 targets"):
        Explainer(model).explain(torch.randn(3, 32, 32), target=[0, 1])


# ---- model outputs ----------------------------------------------------------------------


class Wrapped(nn.Module):
    def __init__(self, inner: nn.Module, kind: str) -> None:
        super().__init__()
        self.inner = inner
        self.kind = kind

    def forward(self, x: Tensor) -> Any:
        logits = self.inner(x)
        if self.kind == "tuple":
            return logits, logits.detach() * 0
        if self.kind == "dict":
            return {"aux": logits * 0, "logits": logits}
        if self.kind == "object":
            return types.SimpleNamespace(logits=logits, hidden=None)
        if self.kind == "other-dict":
            return {"scores": logits}
        return logits[:, :, None]


@pytest.mark.parametrize("kind", ["tuple", "dict", "object"])
def test_structured_outputs(model: nn.Module, kind: str) -> None:
    x = torch.randn(3, 32, 32)
    plain = Explainer(model).explain(x)
    wrapped = Explainer(Wrapped(model, kind)).explain(x)
    assert wrapped.layer == "inner." + plain.layer
    np.testing.assert_allclose(wrapped.raw, plain.raw, rtol=1e-6)
    assert wrapped.pred_class == plain.pred_class


def test_output_selector(model: nn.Module) -> None:
    x = torch.randn(3, 32, 32)
    wrapped = Wrapped(model, "other-dict")
    with pytest.raises(ModelOutputError, match="without 'logits'.*'scores'"):
        Explainer(wrapped).explain(x)
    result = Explainer(wrapped, output=lambda out: out["scores"]).explain(x)
    np.testing.assert_allclose(result.raw, Explainer(model).explain(x).raw, rtol=1e-6)


def test_non_2d_scores(model: nn.Module) -> None:
    with pytest.raises(ModelOutputError, match=r"shape \(B, K\), got \(1, 3, 1\)"):
        Explainer(Wrapped(model, "3d"), layer="inner.body").explain(torch.randn(3, 32, 32))


# ---- results ----------------------------------------------------------------------------


def test_cam_lies_on_the_image(model: nn.Module, image: np.ndarray) -> None:
    result = Explainer(model).explain(image)
    assert result.cam.min() == 0.0 and result.cam.max() == 1.0
    resized = cv2.resize(result.raw, (53, 37), interpolation=cv2.INTER_LINEAR)
    resized = (resized - resized.min()) / (resized.max() - resized.min())
    np.testing.assert_allclose(result.cam, resized, atol=1e-6)
    assert result.method == "gradcam++" and result.layer == "body"


def test_overlay_and_save(model: nn.Module, image: np.ndarray, tmp_path: Path) -> None:
    result = Explainer(model).explain(image)
    np.testing.assert_array_equal(
        result.overlay(alpha=0.3), JetRenderer().render(image, result.cam, 0.3)
    )
    written = result.save(tmp_path / "deep" / "out.png", alpha=0.3)
    back = cv2.cvtColor(cv2.imread(str(written)), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(back, result.overlay(alpha=0.3))  # PNG keeps RGB order
    with pytest.raises(ValueError, match="unsupported image extension .txt"):
        result.save(tmp_path / "out.txt")
    with pytest.raises(ValueError, match="alpha must lie"):
        result.overlay(alpha=2.0)


def test_explanation_is_frozen(model: nn.Module) -> None:
    import attrs

    result = Explainer(model).explain(torch.randn(3, 32, 32))
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        result.layer = "other"  # type: ignore[misc]


# ---- torch.compile -----------------------------------------------------------------------


def test_compiled_model_is_explained_through_its_original_module() -> None:
    """Without layer=, the automatic choice used to crash inside TorchDynamo
    (InternalTorchDynamoError) on a compiled model; backend="eager" needs no C compiler."""
    torch.manual_seed(0)
    model = SmallCNN(classes=3)
    x = torch.rand(2, 3, 32, 32)
    expected = Explainer(model, device="cpu").explain_batch(x)
    model.train()
    model.stem[0].eval()  # mixed flags, restored as they were
    compiled = torch.compile(model, backend="eager")
    with torch.no_grad():
        compiled(x)  # a compiled graph exists, as in a user's program
    flags = [m.training for m in model.modules()]
    explainer = Explainer(compiled, device="cpu")
    batch = explainer.explain_batch(x)
    assert explainer.model is model
    assert [e.layer for e in batch] == ["body", "body"]
    for got, want in zip(batch, expected, strict=True):
        np.testing.assert_allclose(got.raw, want.raw, rtol=1e-6, atol=1e-7)
        assert got.pred_class == want.pred_class
    # the module itself, taken from the compiled wrapper, names the same layer
    by_module = Explainer(compiled, layer=compiled._orig_mod.body, device="cpu")
    assert by_module.layer == "body"
    np.testing.assert_allclose(by_module.explain(x[0]).raw, expected[0].raw, rtol=1e-6, atol=1e-7)
    # no side effects: flags, hooks; the compiled model still runs as the original
    assert [m.training for m in model.modules()] == flags
    for module in compiled.modules():
        assert not module._forward_hooks and not module._forward_pre_hooks
        assert not module._backward_hooks
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x))


# ---- devices ----------------------------------------------------------------------------


@pytest.fixture
def fresh_fallback_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget the device fallbacks already reported in this process."""
    monkeypatch.setattr(camkit.device, "_fallbacks_warned", set())


@pytest.mark.skipif(torch.cuda.is_available(), reason="tests the fallback without CUDA")
@pytest.mark.usefixtures("fresh_fallback_warnings")
def test_cuda_falls_back_to_cpu_with_one_warning_per_process(model: nn.Module) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        explainers = [Explainer(model, device=d) for d in ("cuda", "cuda", "cuda:1", "CUDA:0")]
    fallbacks = [str(w.message) for w in caught if issubclass(w.category, DeviceFallbackWarning)]
    assert len(fallbacks) == 1
    assert "'cuda' was requested but CUDA is not available" in fallbacks[0]
    assert "given once" in fallbacks[0]
    assert {ex.device for ex in explainers} == {torch.device("cpu")}
    assert explainers[0].explain(torch.randn(3, 32, 32)).cam.shape == (32, 32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert Explainer(model, device="auto").device == torch.device("cpu")  # never warns


@pytest.mark.skipif(camkit.device._mps_available(), reason="tests the fallback without MPS")
@pytest.mark.usefixtures("fresh_fallback_warnings")
def test_mps_falls_back_to_cpu_with_warning(model: nn.Module) -> None:
    with pytest.warns(DeviceFallbackWarning, match="'mps' was requested but MPS is not available"):
        assert Explainer(model, device="mps").device == torch.device("cpu")


def test_auto_and_bad_device(model: nn.Module) -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert Explainer(model, device="auto").device.type == expected
    assert Explainer(model, device=" Auto ").device.type == expected
    assert Explainer(model, device="CPU").device == torch.device("cpu")
    assert Explainer(model, device=torch.device("cpu")).device == torch.device("cpu")
    accepted = r"use 'auto', 'cpu', 'cuda', 'cuda:N' \(N the index of a visible GPU\) or 'mps'"
    for bad in ("gpu0", "tpu", "cuda:abc", "cuda:-1", "cuda:", ""):
        with pytest.raises(ConfigurationError, match=rf"unknown device '{bad}'; {accepted}"):
            Explainer(model, device=bad)
    weight = model.head[2].weight.clone()
    for unsupported in ("xla", "meta", "ipu", torch.device("meta")):
        with pytest.raises(ConfigurationError, match=rf"is not supported by camkit; {accepted}"):
            Explainer(model, device=unsupported)
    torch.testing.assert_close(model.head[2].weight, weight)  # never moved to meta


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_index_past_the_visible_gpus(model: nn.Module) -> None:
    count = torch.cuda.device_count()
    with pytest.raises(ConfigurationError, match=rf"names GPU {count}, but {count} GPU"):
        Explainer(model, device=f"cuda:{count}")


def test_bad_model_and_method_types() -> None:
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        Explainer(lambda x: x)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="method must be a registered name"):
        Explainer(SmallCNN(), method=3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="renderer must be a registered name"):
        Explainer(SmallCNN(), renderer=3)  # type: ignore[arg-type]


# ---- geometry: crop and letterbox -------------------------------------------------------


class RightHalfDetector(nn.Module):
    """Class 0 scores the brightness of the input's right half: its map is the right half."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Conv2d(3, 1, 1, bias=False)
        with torch.no_grad():
            self.features.weight.fill_(1.0)
        self.fc = nn.Linear(1, 2)

    def forward(self, x: Tensor) -> Tensor:
        a = self.features(x)
        score = torch.relu(a[:, :, :, a.shape[-1] // 2 :]).mean(dim=(1, 2, 3))
        return torch.stack([score, -score], dim=1)


@pytest.mark.parametrize("resize", ["stretch", "crop", "letterbox"])
def test_map_lies_on_the_content(resize: str) -> None:
    """A wide image whose right half is bright: the map's mass must follow the content."""
    image = np.zeros((40, 120, 3), dtype=np.uint8)
    image[:, 60:] = 255
    config = DataConfig(input_size=(32, 32), mean=(0, 0, 0), std=(1, 1, 1), resize=resize)
    result = Explainer(RightHalfDetector(), layer="features", data_config=config).explain(
        image, target=0
    )
    cam = result.cam
    assert cam.shape == (40, 120)
    left, right = cam[:, :60].sum(), cam[:, 60:].sum()
    assert right > 0.95 * (left + right)
    if resize == "crop":
        # 40x120 -> 32x96, centre crop of 32 columns: original columns 40..80 are seen
        assert cam[:, :40].max() == 0 and cam[:, 81:].max() == 0
        assert cam[:, 62:78].min() > 0.9
    if resize == "letterbox":
        # 120 -> 32 wide, 40 -> 11 tall on a grey canvas: the whole right half is seen
        assert cam[:, 62:].min() > 0.5


def test_letterbox_and_crop_preprocessing_values() -> None:
    image = np.full((10, 20, 3), 255, dtype=np.uint8)
    box = DataConfig(
        input_size=(20, 20), mean=(0, 0, 0), std=(1, 1, 1), resize="letterbox", fill=128
    )
    tensor, placement = box.prepare(image)
    assert (placement.offset_x, placement.offset_y, placement.scale_x) == (0, 5, 1.0)
    torch.testing.assert_close(tensor[:, 5:15], torch.ones(3, 10, 20))
    torch.testing.assert_close(tensor[:, :5], torch.full((3, 5, 20), 128 / 255))
    crop = DataConfig(input_size=(10, 10), mean=(0, 0, 0), std=(1, 1, 1), resize="crop")
    gradient = np.tile(np.arange(20, dtype=np.uint8)[None, :, None] * 10, (10, 1, 3))
    tensor, placement = crop.prepare(gradient)
    assert (placement.offset_x, placement.scale_x) == (-5, 1.0)
    torch.testing.assert_close(tensor[0, 0], torch.arange(5, 15, dtype=torch.float32) * 10 / 255)


def test_class_names_give_pred_name(model: nn.Module) -> None:
    x = torch.randn(3, 32, 32)
    result = Explainer(model, class_names=["cat", "dog", "fox"]).explain(x)
    assert result.pred_name == ["cat", "dog", "fox"][result.pred_class]
    assert Explainer(model).explain(x).pred_name is None


def test_tensor_inputs_are_de_normalised_for_the_overlay() -> None:
    config = DataConfig(input_size=(6, 7), mean=(0.5, 0.25, 0.0), std=(0.5, 0.25, 1.0))
    pixels = np.random.default_rng(0).integers(0, 256, (2, 6, 7, 3), dtype=np.uint8)
    tensors = torch.stack([config.to_tensor(p) for p in pixels])
    explainer = Explainer(SmallCNN(), layer="body", data_config=config, device="cpu")
    explanations = explainer.explain_batch([tensors[0], pixels[1], tensors[1]])
    np.testing.assert_array_equal(explanations[0].image, pixels[0])
    np.testing.assert_array_equal(explanations[1].image, pixels[1])
    np.testing.assert_array_equal(explanations[2].image, pixels[1])
    grey = config.to_images(torch.tensor([[[[0.0, 2.0], [4.0, 1.0]]]]))[0]
    assert grey[:, :, 0].tolist() == [[0, 128], [255, 64]] and (grey[..., 1] == grey[..., 0]).all()


def test_the_callers_batch_tensor_is_not_changed() -> None:
    model = nn.Sequential(
        nn.ReLU(inplace=True),
        nn.Conv2d(3, 4, 3),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 2),
    )
    batch = torch.randn(2, 3, 16, 16)
    before = batch.clone()
    Explainer(model, layer="1", device="cpu").explain_batch(batch)
    assert torch.equal(batch, before)


def test_normalisation_of_tiny_maps_reaches_one() -> None:
    from camkit.geometry import normalize_maps

    tiny = np.array([[0.0, 1e-39], [5e-40, 0.0]], dtype=np.float32)
    assert float(normalize_maps(torch.from_numpy(tiny)[None].clone()).max()) == 1.0
    assert not normalize_maps(torch.zeros(1, 2, 2)).any()


def test_large_maps_are_post_processed_in_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    from camkit.geometry import Placement
    from camkit.pipeline import place as module

    raw = torch.rand(5, 3, 4)
    placements = [Placement.stretch((30, 40), (3, 4))] * 4 + [Placement.stretch((9, 9), (3, 4))]
    whole = module.maps_on_originals(raw, placements)
    monkeypatch.setattr(module, "POSTPROCESS_ELEMENTS", 2 * 30 * 40)
    chunked = module.maps_on_originals(raw, placements)
    assert [c.shape for c in chunked] == [(30, 40)] * 4 + [(9, 9)]
    for a, b in zip(whole, chunked, strict=True):
        np.testing.assert_array_equal(a, b)
        assert b.base is None or b.base.size == b.size  # no view into a whole chunk


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"interpolation": "cubic"}, "interpolation must be one of 'bicubic'"),
        ({"resize": "fit"}, "resize must be one of 'stretch', 'crop', 'letterbox'"),
        ({"fill": 256}, r"fill must be an int in 0\.\.255"),
        ({"mean": (0.5, 0.5)}, "mean needs 3 values"),
        ({"input_size": (0, 4)}, "input_size must be"),
    ],
)
def test_data_config_errors_are_configuration_errors(kwargs: dict[str, Any], message: str) -> None:
    from camkit.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match=message):
        DataConfig(**kwargs)


def test_extra_pass_batch_size_defaults_by_device(
    model: nn.Module, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``batch_size=None``: 16 inputs per extra forward on the CPU, 64 on an accelerator;
    an explicit size is kept; anything else is refused with the accepted forms."""
    from camkit import explainer as explainer_module

    assert Explainer(model, device="cpu").batch_size == explainer_module.CPU_BATCH_SIZE == 16
    assert Explainer(model, device="cpu", batch_size=5).batch_size == 5
    monkeypatch.setattr(
        explainer_module, "select_device", lambda _: torch.device("meta")
    )  # stands in for an accelerator: only the device type is read
    accelerated = Explainer(nn.Linear(1, 1).to("meta"), layer=None, device="cuda")
    assert accelerated.batch_size == explainer_module.ACCELERATOR_BATCH_SIZE == 64
    for bad in (0, -1, 2.5, True, "16"):
        with pytest.raises(ConfigurationError, match="batch_size must be an int >= 1 or None"):
            Explainer(model, device="cpu", batch_size=bad)  # type: ignore[arg-type]
