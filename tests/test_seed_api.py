"""The seed's functions on real classification-project files."""

from __future__ import annotations

import csv
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from PIL import Image

from camkit import DataConfig, Explainer, generate_gradcam, generate_gradcam_batch
from camkit.errors import DeviceFallbackWarning, ImageSkippedWarning, InputError


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("project")
    (root / "model_data").mkdir()
    (root / "model_data" / "cls_classes.txt").write_text("0, normal\n\n 1, abnormal \n2, other\n")
    torch.manual_seed(0)
    model = timm.create_model("resnet18", num_classes=3)
    (root / "models" / "resnet18").mkdir(parents=True)
    state = {f"module.{k}": v for k, v in model.state_dict().items()}  # DataParallel
    torch.save({"model_state_dict": state, "epoch": 3}, root / "models/resnet18/best.pth")
    images = root / "datasets" / "test" / "1"
    images.mkdir(parents=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (100, 300, 3), dtype=np.uint8)).save(images / "wide.png")
    Image.fromarray(rng.integers(0, 256, (90, 60), dtype=np.uint8), "L").save(images / "g.jpg")
    (images / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return root


def args(project: Path) -> dict[str, object]:
    return {
        "model_path": project / "models/resnet18/best.pth",
        "backbone": "resnet18",
        "classes_path": project / "model_data/cls_classes.txt",
        "input_shape": (64, 64),
        "cuda": False,
    }


def test_generate_gradcam_values(project: Path, tmp_path: Path) -> None:
    image = project / "datasets/test/1/wide.png"
    out = tmp_path / "o" / "wide_gradcam.jpg"
    result = generate_gradcam(image, output_path=out, return_image=True, **args(project))  # type: ignore[arg-type]
    assert result["cam"].shape == (100, 300)
    assert result["overlay"].shape == (100, 300, 3) and result["overlay"].dtype == np.uint8
    assert result["pred_name"] == ["normal", "abnormal", "other"][result["pred_class"]]
    assert result["layer"] == "layer4" and result["target"] == result["pred_class"]
    assert Path(result["output_path"]) == out and out.is_file()
    # centre crop of a 3:1 image: only the middle third is seen, the rest has no map
    cam = result["cam"]
    assert cam[:, :99].max() == 0 and cam[:, 201:].max() == 0
    assert cam[:, 100:200].max() == 1.0
    # the same as an Explainer with the projects' preprocessing
    torch.manual_seed(0)
    model = timm.create_model("resnet18", num_classes=3)
    config = DataConfig((64, 64), interpolation="bicubic", resize="crop")
    direct = Explainer(model, layer="layer4", data_config=config).explain(image)
    np.testing.assert_allclose(cam, direct.cam, atol=1e-5)
    assert result["confidence"] == pytest.approx(direct.confidence, abs=1e-6)


def test_letterbox_and_target(project: Path) -> None:
    image = project / "datasets/test/1/wide.png"
    result = generate_gradcam(image, target_class=2, letterbox=True, **args(project))  # type: ignore[arg-type]
    assert result["target"] == 2
    assert result["cam"].shape == (100, 300)
    assert result["cam"][:, :100].max() > 0 and result["cam"][:, 200:].max() > 0  # all seen


def test_default_device_gives_no_fallback_warning_and_cuda_true_one(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if torch.cuda.is_available():
        pytest.skip("tests the CPU fallback")
    import camkit.device
    from camkit.compat.seed import _cached_explainer

    monkeypatch.setattr(camkit.device, "_fallbacks_warned", set())
    _cached_explainer.cache_clear()
    settings = {k: v for k, v in args(project).items() if k != "cuda"}  # the default
    image = project / "datasets/test/1/wide.png"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = generate_gradcam_batch(
            project / "datasets/test/1",
            tmp_path / "out",
            save_report=True,
            progress=False,
            **settings,  # type: ignore[arg-type]
        )
        single = generate_gradcam(image, **settings)  # type: ignore[arg-type]
    assert not [w for w in caught if issubclass(w.category, DeviceFallbackWarning)]
    assert [Path(r["image_path"]).name for r in results] == ["broken.jpg", "g.jpg", "wide.png"]
    assert results[0]["error"] and "cam" not in results[0]
    assert results[1]["error"] is None and results[1]["cam"].shape == (90, 60)
    assert Path(results[2]["output_path"]).name == "wide_gradcam.jpg"
    # one image alone and in a batch of several: equal up to float32 summation order
    np.testing.assert_allclose(single["cam"], results[2]["cam"], rtol=0, atol=1e-5)
    rows = list(csv.DictReader((tmp_path / "out" / "gradcam_report.csv").open()))
    assert [Path(r["image"]).name for r in rows] == ["broken.jpg", "g.jpg", "wide.png"]
    assert rows[0]["error"] and rows[2]["pred_name"] == results[2]["pred_name"]

    # asked for explicitly, CUDA's absence is reported once per process, not once per call
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):
            generate_gradcam(image, **{**settings, "cuda": True})  # type: ignore[arg-type]
            _cached_explainer.cache_clear()  # a new explainer each time
        explicit = generate_gradcam(image, **{**settings, "cuda": True})  # type: ignore[arg-type]
    fallbacks = [w for w in caught if issubclass(w.category, DeviceFallbackWarning)]
    assert len(fallbacks) == 1 and "given once" in str(fallbacks[0].message)
    np.testing.assert_array_equal(explicit["cam"], single["cam"])


def test_batch_searches_the_seed_layout_and_refuses_an_empty_folder(
    project: Path, tmp_path: Path
) -> None:
    """``datasets/test/<class>/*.jpg`` is found without options; subfolders are mirrored;
    the output folder inside the input is left out; no image at all is an InputError."""
    test_dir = project / "datasets" / "test"
    out = tmp_path / "cams"
    settings = {**args(project), "progress": False}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ImageSkippedWarning)
        results = generate_gradcam_batch(test_dir, out, **settings)  # type: ignore[arg-type]
    assert [Path(r["image_path"]).relative_to(test_dir).as_posix() for r in results] == [
        "1/broken.jpg",
        "1/g.jpg",
        "1/wide.png",
    ]
    assert Path(results[2]["output_path"]) == out / "1" / "wide_gradcam.jpg"

    inside = tmp_path / "images"
    shutil.copytree(test_dir, inside)
    planted = inside / "cam_output" / "1" / "old_gradcam.jpg"  # an earlier overlay
    planted.parent.mkdir(parents=True)
    shutil.copy(test_dir / "1" / "g.jpg", planted)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ImageSkippedWarning)
        again = generate_gradcam_batch(inside, inside / "cam_output", **settings)  # type: ignore[arg-type]
    assert [Path(r["image_path"]).name for r in again] == ["broken.jpg", "g.jpg", "wide.png"]

    with pytest.raises(InputError, match=r"searched without subfolders.*1 subfolder"):
        generate_gradcam_batch(test_dir, out, recursive=False, **settings)  # type: ignore[arg-type]
    empty = tmp_path / "empty"
    (empty / "class_a").mkdir(parents=True)
    report = tmp_path / "empty_out" / "gradcam_report.csv"
    with pytest.raises(InputError, match=r"no images found in .*empty.*\.jpg"):
        generate_gradcam_batch(
            empty,
            tmp_path / "empty_out",
            save_report=True,
            **settings,  # type: ignore[arg-type]
        )
    assert not report.exists()  # no header-only report


def _checkpoint(path: Path, seed: int) -> None:
    torch.manual_seed(seed)
    model = timm.create_model("resnet18", num_classes=3)
    torch.save(model.state_dict(), path)


def test_checkpoint_replaced_with_the_same_mtime_is_reloaded(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``cp -p``/``rsync -t`` keep the modification time of a replaced checkpoint: the cache
    must still see new weights."""
    from camkit.compat import seed

    seed._cached_explainer.cache_clear()
    weights = tmp_path / "best.pth"
    _checkpoint(weights, seed=0)
    settings = {**args(project), "model_path": weights}
    image = project / "datasets/test/1/wide.png"
    first = generate_gradcam(image, **settings)  # type: ignore[arg-type]
    before = weights.stat()

    _checkpoint(weights, seed=1)  # same size: same architecture, other weights
    os.utime(weights, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert weights.stat().st_mtime_ns == before.st_mtime_ns
    assert weights.stat().st_size == before.st_size
    replaced = generate_gradcam(image, **settings)  # type: ignore[arg-type]
    seed._cached_explainer.cache_clear()
    fresh = generate_gradcam(image, **settings)  # type: ignore[arg-type]
    assert not np.allclose(replaced["cam"], first["cam"])
    np.testing.assert_array_equal(replaced["cam"], fresh["cam"])
    assert replaced["confidence"] == fresh["confidence"] != first["confidence"]

    # an unchanged file is not hashed again; one touched but unchanged keeps its explainer
    hashed: list[Path] = []
    digest = seed._content_digest
    monkeypatch.setattr(seed, "_content_digest", lambda p: hashed.append(p) or digest(p))
    explainer = seed.make_explainer(weights, "resnet18", settings["classes_path"], (64, 64), False)
    assert seed.make_explainer(weights, "resnet18", settings["classes_path"], (64, 64), False) is (
        explainer
    )
    assert hashed == []
    os.utime(weights)  # touch
    assert seed.make_explainer(weights, "resnet18", settings["classes_path"], (64, 64), False) is (
        explainer
    )
    assert hashed == [weights.resolve()]
