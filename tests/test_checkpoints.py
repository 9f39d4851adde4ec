"""Rebuilding trained classifiers: class files, backbone names, checkpoint formats, errors.

Every checkpoint here is a real file written by ``torch.save`` from a real timm or
torchvision model; loaded models must hold exactly the saved tensors and compute exactly the
original's outputs.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from helpers import build, recalibrate_batchnorm
from torch import nn

from camkit.compat.checkpoints import (
    SEED_ALIASES,
    build_backbone,
    load_classifier,
    load_state_dict,
    read_class_names,
)
from camkit.errors import CamkitError, CheckpointError
from camkit.layers import ArchitectureTableResolver

CLASSES = 3
SIZE = 64  # every model here accepts 64x64 inputs; small keeps the file fast


def fixed_input() -> torch.Tensor:
    return torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(7))


def trained(source: str, name: str, classes: int = CLASSES) -> nn.Module:
    """A model whose weights and BatchNorm statistics differ from any fresh random init."""
    model = build(source, name, seed=1234, num_classes=classes)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.01)
    return recalibrate_batchnorm(model, size=SIZE, batches=1)


def save(model: nn.Module, path: Path, fmt: str = "plain") -> Path:
    """Write ``model``'s weights as the seed's training projects did."""
    state = {key: value.clone() for key, value in model.state_dict().items()}
    if fmt.startswith("module"):  # what nn.DataParallel(model).state_dict() gives
        keys = list(nn.DataParallel(model).state_dict())
        assert keys == [f"module.{key}" for key in state]
        state = dict(zip(keys, state.values(), strict=True))
    if fmt.endswith("model_state_dict"):
        weights = {key: value.clone() for key, value in model.state_dict().items()}
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        model(fixed_input()).sum().backward()
        optimizer.step()  # momentum buffers: a real optimizer_state_dict
        optimizer.zero_grad()
        model.load_state_dict(weights)  # undo the step: `model` stays what is saved
        saved: Any = {
            "model_state_dict": state,
            "optimizer_state_dict": optimizer.state_dict(),
            "epoch": 12,
            "val_loss": 0.4321,
            "val_acc": 0.875,
        }
    elif fmt == "state_dict":
        saved = {"epoch": 3, "state_dict": state, "arch": "resnet18"}
    else:
        saved = state
    torch.save(saved, path)
    return path


def class_file(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def three_classes(tmp_path: Path) -> Path:
    return class_file(tmp_path / "cls_classes.txt", "0, normal\n1, pneumonia\n2, covid\n")


def assert_same_model(loaded: nn.Module, original: nn.Module) -> None:
    """Same keys, bit-identical tensors, identical outputs; ``loaded`` in eval mode."""
    assert not loaded.training
    expected, got = original.state_dict(), loaded.state_dict()
    assert list(got) == list(expected)
    for key, value in expected.items():
        assert torch.equal(got[key], value), key
    original.eval()
    with torch.no_grad():
        assert torch.equal(loaded(fixed_input()), original(fixed_input()))


def library(model: nn.Module) -> str:
    return type(model).__module__.split(".")[0]


# ---- class files ----------------------------------------------------------------------------


def test_class_names_one_per_line(tmp_path: Path) -> None:
    path = class_file(tmp_path / "c.txt", "normal\n\n   pneumonia  \n\t\ncovid-19\n\n")
    assert read_class_names(path) == ["normal", "pneumonia", "covid-19"]
    assert read_class_names(str(path)) == ["normal", "pneumonia", "covid-19"]


def test_class_names_id_dialect(tmp_path: Path) -> None:
    text = "\ufeff0, normal\n\n1,pneumonia\n  2 ,  covid-19, severe  \n10, other\n"
    path = class_file(tmp_path / "c.txt", text)
    # the display name is everything after the first comma; a byte-order mark is skipped
    assert read_class_names(path) == ["normal", "pneumonia", "covid-19, severe", "other"]


def test_class_names_may_contain_commas(tmp_path: Path) -> None:
    path = class_file(tmp_path / "c.txt", "cat, siamese\ndog\n2 legs, bird\n")
    assert read_class_names(path) == ["cat, siamese", "dog", "2 legs, bird"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, r"class file not found: '.*missing\.txt'"),
        ("", r"class file '.*' is empty"),
        ("\n  \n\t\n", r"class file '.*' is empty"),
        ("0, normal\npneumonia\n", r"mixes its two dialects: line 1 \('0, normal'\).*line 2"),
        ("0, normal\n1,  \n", r"line 2 \('1,'\) has an id but no name"),
    ],
    ids=["missing", "empty", "blank", "mixed", "no-name"],
)
def test_class_file_errors(tmp_path: Path, text: str | None, message: str) -> None:
    path = tmp_path / "missing.txt"
    if text is not None:
        class_file(path, text)
    with pytest.raises(CheckpointError, match=message) as caught:
        read_class_names(path)
    assert isinstance(caught.value, CamkitError) and isinstance(caught.value, ValueError)


# ---- checkpoint formats --------------------------------------------------------------------

FORMATS = ["plain", "model_state_dict", "state_dict", "module", "module+model_state_dict"]


@pytest.fixture(scope="module")
def resnet18() -> nn.Module:
    return trained("torchvision", "resnet18")


@pytest.mark.parametrize("fmt", FORMATS)
def test_checkpoint_formats(tmp_path: Path, resnet18: nn.Module, fmt: str) -> None:
    path = save(resnet18, tmp_path / "best_epoch_weights.pth", fmt)
    state = load_state_dict(path)
    assert list(state) == list(resnet18.state_dict())  # no `module.` prefix left
    assert all(torch.equal(state[k], v) for k, v in resnet18.state_dict().items())

    model, names = load_classifier("resnet18", path, classes=three_classes(tmp_path))
    assert names == ["normal", "pneumonia", "covid"]
    assert_same_model(model, resnet18)


def test_same_keys_in_both_libraries_gives_timm(tmp_path: Path, resnet18: nn.Module) -> None:
    # resnets have the same keys in timm and torchvision, and compute the same function:
    # timm wins the tie, and the torchvision checkpoint's outputs are reproduced exactly.
    model, _ = load_classifier("resnet18", save(resnet18, tmp_path / "w.pth"), num_classes=3)
    assert library(model) == "timm"
    assert model.pretrained_cfg["architecture"] == "resnet18"
    assert_same_model(model, resnet18)

    original = trained("timm", "resnet18")
    loaded, names = load_classifier("resnet18", save(original, tmp_path / "t.pth", "module"))
    assert names == ["0", "1", "2"]  # class count read from the checkpoint's head
    assert_same_model(loaded, original)


@pytest.mark.parametrize("source", ["torchvision", "timm"])
def test_vgg_layout_chosen_by_keys(tmp_path: Path, source: str) -> None:
    original = trained(source, "vgg11")  # 130M parameters: the plain format keeps it quick
    path = save(original, tmp_path / "vgg.pth", "state_dict")
    model, _ = load_classifier("vgg11", path, classes=three_classes(tmp_path))
    assert library(model) == source
    assert_same_model(model, original)


@pytest.mark.parametrize("source", ["torchvision", "timm"])
def test_efficientnet_layout_chosen_by_keys(tmp_path: Path, source: str) -> None:
    original = trained(source, "efficientnet_b0")
    path = save(original, tmp_path / "effnet.pth", "module")
    model, _ = load_classifier("efficientnet_b0", path, classes=three_classes(tmp_path))
    assert library(model) == source
    assert_same_model(model, original)


def test_seed_mobilenetv2_is_torchvision_layout(tmp_path: Path) -> None:
    original = trained("torchvision", "mobilenet_v2")
    path = save(original, tmp_path / "best_epoch_weights.pth", "module+model_state_dict")
    model, names = load_classifier("mobilenetv2", path, classes=three_classes(tmp_path))
    assert type(model).__name__ == "MobileNetV2" and library(model) == "torchvision"
    assert names == ["normal", "pneumonia", "covid"]
    assert_same_model(model, original)
    assert ArchitectureTableResolver().resolve(model, None) == "features.18"


def test_seed_xception_is_timm_legacy_xception(tmp_path: Path) -> None:
    original = trained("timm", "legacy_xception")
    path = save(original, tmp_path / "xception.pth", "model_state_dict")
    model, _ = load_classifier("xception", path, num_classes=3)
    assert model.pretrained_cfg["architecture"] == "legacy_xception"
    assert_same_model(model, original)
    assert ArchitectureTableResolver().resolve(model, None) == "conv4"


# ---- backbone names -------------------------------------------------------------------------

#: The seed's backbone names, the library camkit builds them with and their target layer.
SEED_BACKBONES = [
    *[(f"resnet{d}", "timm", "layer4") for d in (18, 34, 50, 101, 152)],
    ("vgg11", "timm", "features.18"),
    ("vgg13", "timm", "features.22"),
    ("vgg16", "timm", "features.28"),
    ("vgg11_bn", "timm", "features.25"),
    ("vgg13_bn", "timm", "features.31"),
    ("vgg16_bn", "timm", "features.40"),
    *[(f"densenet{d}", "timm", "features.denseblock4") for d in (121, 161, 169, 201)],
    *[(f"efficientnet_b{i}", "timm", "conv_head") for i in range(8)],
    *[(f"convnext_{s}", "timm", "stages.3") for s in ("tiny", "small", "base")],
    ("inception_resnet_v2", "timm", "conv2d_7b"),
    ("mobilenetv2", "torchvision", "features.18"),
    ("xception", "timm", "conv4"),
    ("torchvision/vgg16", "torchvision", "features.28"),
    ("torchvision/efficientnet_b0", "torchvision", "features.8"),
    ("timm/legacy_xception", "timm", "conv4"),
]


@pytest.mark.parametrize(("name", "source", "layer"), SEED_BACKBONES, ids=lambda v: str(v))
def test_build_backbone_seed_names(name: str, source: str, layer: str) -> None:
    with torch.device("meta"):  # structure only: no memory, no init time
        model = build_backbone(name, 4)
    assert library(model) == source
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert linears[-1].out_features == 4
    assert ArchitectureTableResolver().resolve(model, None) == layer


def test_seed_aliases() -> None:
    assert dict(SEED_ALIASES) == {
        "mobilenetv2": "torchvision/mobilenet_v2",
        "xception": "timm/legacy_xception",
    }


def test_build_backbone_builds_real_random_model() -> None:
    model = build_backbone("resnet18", 7)
    assert library(model) == "timm" and model.fc.out_features == 7
    assert model(torch.zeros(1, 3, SIZE, SIZE)).shape == (1, 7)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("resnet5O", r"unknown backbone 'resnet5O': neither timm nor torchvision.*'resnet50'"),
        ("mobilnetv2", r"unknown backbone 'mobilnetv2'.*did you mean 'mobilenetv2'"),
        ("torchvision/legacy_xception", r"torchvision has no model.*'legacy_xception'"),
        ("  ", r"backbone is empty"),
    ],
)
def test_unknown_backbone_suggests_close_names(name: str, message: str) -> None:
    with pytest.raises(CheckpointError, match=message):
        build_backbone(name, 3)


def test_build_backbone_checks_num_classes() -> None:
    with pytest.raises(CheckpointError, match="num_classes must be at least 1, got 0"):
        build_backbone("resnet18", 0)
    with pytest.raises(TypeError, match="num_classes must be an int, got str"):
        build_backbone("resnet18", "3")  # type: ignore[arg-type]


# ---- mismatches ----------------------------------------------------------------------------


def forbid_load(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make nn.Module.load_state_dict fail: the error must come before any loading."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("load_state_dict was called")

    monkeypatch.setattr(nn.Module, "load_state_dict", refuse)


def test_head_class_count_against_class_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = save(trained("torchvision", "resnet18", classes=5), tmp_path / "w.pth")
    classes = three_classes(tmp_path)
    forbid_load(monkeypatch)
    with pytest.raises(CheckpointError) as caught:
        load_classifier("resnet18", path, classes=classes)
    message = str(caught.value)
    assert (
        f"the checkpoint head has 5 classes (fc.weight: 5x512) but the class file "
        f"{str(classes)!r} lists 3" in message
    )
    assert "use the class file the checkpoint was trained with" in message.lower()
    assert "missing" not in message and "wrong shape" not in message


def test_head_class_count_against_num_classes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = save(trained("torchvision", "mobilenet_v2", classes=5), tmp_path / "m.pth")
    forbid_load(monkeypatch)
    with pytest.raises(CheckpointError) as caught:
        load_classifier("mobilenetv2", path, num_classes=3)
    message = str(caught.value)
    assert "does not fit torchvision 'mobilenet_v2' with 3 classes" in message
    assert "head has 5 classes (classifier.1.weight: 5x1280) but num_classes is 3" in message
    assert "pass the num_classes the checkpoint was trained with" in message.lower()


def test_class_file_and_num_classes_must_agree(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"lists 3 classes but num_classes=4"):
        load_classifier("resnet18", None, classes=three_classes(tmp_path), num_classes=4)


def test_missing_and_unexpected_keys(tmp_path: Path, resnet18: nn.Module) -> None:
    state = dict(resnet18.state_dict())
    del state["fc.bias"]
    state["extra.weight"] = torch.zeros(2)
    torch.save(state, tmp_path / "w.pth")
    with pytest.raises(CheckpointError) as caught:
        load_classifier("resnet18", tmp_path / "w.pth", num_classes=3)
    message = str(caught.value)
    assert "1 key of the model missing from the checkpoint: 'fc.bias'" in message
    assert "1 unexpected key in the checkpoint: 'extra.weight'" in message
    assert "check that backbone='resnet18' names the architecture" in message.lower()


def test_wrong_backbone_counts_keys(tmp_path: Path, resnet18: nn.Module) -> None:
    path = save(resnet18, tmp_path / "w.pth", "model_state_dict")
    with torch.device("meta"):
        expected = set(build("timm", "resnet34", num_classes=3).state_dict())
    missing = len(expected - set(resnet18.state_dict()))
    assert missing > 5
    with pytest.raises(CheckpointError) as caught:
        load_classifier("resnet34", path, classes=three_classes(tmp_path))
    message = str(caught.value)
    assert f"{missing} keys of the model missing from the checkpoint: 'layer1.2." in message
    assert f"... ({missing - 5} more)" in message  # five keys quoted, then the count
    assert "unexpected" not in message


def test_wrong_backbone_without_class_count(tmp_path: Path, resnet18: nn.Module) -> None:
    path = save(resnet18, tmp_path / "w.pth")
    with pytest.raises(CheckpointError) as caught:
        load_classifier("densenet121", path)
    message = str(caught.value)
    assert re.search(r"\d+ keys of the model missing from the checkpoint: 'features", message)
    assert re.search(r"\d+ unexpected keys in the checkpoint: 'conv1.weight'", message)
    assert "the closest of the timm and torchvision layouts" in message


def test_shape_mismatch_lists_tensors(tmp_path: Path, resnet18: nn.Module) -> None:
    state = dict(resnet18.state_dict())
    state["conv1.weight"] = torch.zeros(64, 3, 3, 3)
    torch.save(state, tmp_path / "w.pth")
    with pytest.raises(CheckpointError) as caught:
        load_classifier("resnet18", tmp_path / "w.pth", num_classes=3)
    assert (
        "1 tensor with the wrong shape: 'conv1.weight' (checkpoint 64x3x3x3, model 64x3x7x7)"
        in str(caught.value)
    )


# ---- unreadable checkpoints ----------------------------------------------------------------


class TrainingConfig:
    """A custom class a training script might save next to its weights."""

    lr = 0.1


PICKLED: list[tuple[str, Callable[[nn.Module], object], str]] = [
    ("whole-model", lambda model: model, "torchvision.models.resnet.ResNet"),
    (
        "custom-class",
        lambda model: {"model_state_dict": model.state_dict(), "config": TrainingConfig()},
        "TrainingConfig",
    ),
]


@pytest.mark.parametrize(("what", "content", "culprit"), PICKLED, ids=[p[0] for p in PICKLED])
def test_pickled_objects_are_refused(
    tmp_path: Path,
    what: str,
    content: Callable[[nn.Module], object],
    culprit: str,
) -> None:
    model = build("torchvision", "resnet18", num_classes=3)
    path = tmp_path / "full_model.pth"
    torch.save(content(model), path)
    with pytest.raises(CheckpointError) as caught:
        load_classifier("resnet18", path, num_classes=3)
    message = str(caught.value)
    assert "contains pickled Python objects" in message
    assert culprit in message
    assert "only loads weights-only checkpoints" in message
    assert "torch.save(model.state_dict(), path)" in message


def test_missing_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"checkpoint file not found: '.*nope\.pth'"):
        load_classifier("resnet18", tmp_path / "nope.pth", num_classes=3)
    with pytest.raises(CheckpointError, match="is not a file"):
        load_state_dict(tmp_path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"0, normal\n1, covid\n", r"cannot read '.*' as a PyTorch checkpoint \(UnpicklingError"),
        (b"", r"cannot read '.*' as a PyTorch checkpoint \(EOFError"),
    ],
    ids=["text", "empty"],
)
def test_not_a_checkpoint(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "weights.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message):
        load_state_dict(path)


def test_dict_without_state_dict(tmp_path: Path) -> None:
    torch.save({"epoch": 3, "weights": {"fc.weight": torch.zeros(3, 4)}}, tmp_path / "w.pth")
    with pytest.raises(CheckpointError, match=r"without 'model_state_dict'.*'epoch', 'weights'"):
        load_state_dict(tmp_path / "w.pth")
    torch.save({"model_state_dict": [torch.zeros(1)]}, tmp_path / "l.pth")
    with pytest.raises(CheckpointError, match=r"'model_state_dict' entry is a list"):
        load_state_dict(tmp_path / "l.pth")
    torch.save([torch.zeros(1)], tmp_path / "t.pth")
    with pytest.raises(CheckpointError, match=r"holds a list, not a state_dict"):
        load_state_dict(tmp_path / "t.pth")


# ---- without weights -----------------------------------------------------------------------


def test_no_weights_builds_random_model(tmp_path: Path) -> None:
    model, names = load_classifier("mobilenetv2", classes=three_classes(tmp_path))
    assert not model.training and library(model) == "torchvision"
    assert names == ["normal", "pneumonia", "covid"]
    assert model.classifier[1].out_features == 3

    model, names = load_classifier("resnet18", num_classes=4)
    assert names == ["0", "1", "2", "3"] and model.fc.out_features == 4

    with pytest.raises(CheckpointError, match="cannot tell how many classes"):
        load_classifier("resnet18")


def test_numpy_scalar_metrics_are_accepted(tmp_path: Path) -> None:
    model = build("torchvision", "resnet18", num_classes=3)
    path = tmp_path / "best_epoch_weights.pth"
    extras = {"val_acc": np.float64(0.9), "val_loss": np.float32(0.2), "epoch": np.int64(3)}
    torch.save({"model_state_dict": model.state_dict(), **extras}, path)
    loaded, _ = load_classifier("resnet18", path, num_classes=3)
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)
