"""Batch file explanation: discovery, output names, bad files, the streamed report."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tiny_models import SmallCNN

from camkit import Explainer
from camkit.errors import ConfigurationError, ImageSkippedWarning, InputError
from camkit.tools.batch import (
    REPORT_COLUMNS,
    explain_files,
    find_images,
    iter_explain_files,
    method_slug,
    plan_outputs,
)


def write_image(path: Path, mode: str = "RGB", size: tuple[int, int] = (40, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(str(path)))
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    data = rng.integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
    Image.fromarray(data[:, :, 0] if mode == "L" else data, mode).save(path)
    return path


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "images"
    write_image(root / "a.jpg")
    write_image(root / "B.PNG", "RGBA", (64, 48))
    write_image(root / "grey.bmp", "L", (20, 50))
    write_image(root / "a.png", size=(33, 33))  # same stem as a.jpg
    write_image(root / "sub" / "a.jpg", size=(25, 60))  # same name in a subfolder
    write_image(root / "other.webp")
    (root / "notes.txt").write_text("ignored: not an image extension")
    (root / "fake.jpg").write_text("text named .jpg")
    (root / "empty.png").write_bytes(b"")
    good = (root / "a.jpg").read_bytes()
    (root / "cut.jpg").write_bytes(good[: len(good) // 3])
    return root


def test_find_images_by_extension(folder: Path) -> None:
    names = sorted(p.relative_to(folder).as_posix() for p, _ in find_images([folder]))
    assert names == sorted(
        ["a.jpg", "B.PNG", "grey.bmp", "a.png", "other.webp", "fake.jpg", "empty.png", "cut.jpg"]
    )
    deep = sorted(p.relative_to(folder).as_posix() for p, _ in find_images([folder], True))
    assert deep == sorted([*names, "sub/a.jpg"])
    with pytest.raises(InputError, match="no such file or folder"):
        find_images([folder / "missing"])


def test_output_names_never_collide_or_escape(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    images = [*find_images([folder], recursive=True), (folder / "a.jpg", folder / "sub")]
    jobs = plan_outputs(images, out)
    outputs = [job.output for job in jobs]
    assert len(set(outputs)) == len(outputs)
    named = {
        (job.source.relative_to(folder).as_posix(), job.output.relative_to(out).as_posix())
        for job in jobs
    }
    assert ("a.jpg", "a_gradcam.jpg") in named
    assert ("a.png", "a_png_gradcam.jpg") in named
    assert ("sub/a.jpg", "sub/a_gradcam.jpg") in named
    assert jobs[-1].output.relative_to(out).as_posix() == "a_jpg_gradcam.jpg"  # third "a"
    for path in outputs:
        assert path.resolve().is_relative_to(out.resolve())


@pytest.mark.parametrize(
    ("method", "slug"),
    [
        ("gradcam", "gradcam"),
        ("gradcam++", "gradcampp"),
        ("smoothgradcam++", "smoothgradcampp"),
        ("gradcamelementwise", "gradcamelementwise"),
        ("acme-scorecam", "acme-scorecam"),
        ("Acme/Score.CAM", "acme-score-cam"),
        ("../x y", "x-y"),
        ("Ω", "cam"),
    ],
)
def test_method_slug(method: str, slug: str) -> None:
    assert method_slug(method) == slug


def test_output_names_carry_the_given_suffix(folder: Path, tmp_path: Path) -> None:
    """The CLI names overlays after the method; the default stays the seed's ``_gradcam``."""
    out = tmp_path / "out"
    images = find_images([folder], recursive=True)
    jobs = plan_outputs(images, out, suffix=f"_{method_slug('gradcam++')}")
    named = {job.output.relative_to(out).as_posix() for job in jobs}
    assert {"a_gradcampp.jpg", "a_png_gradcampp.jpg", "sub/a_gradcampp.jpg"} <= named
    assert len(named) == len(jobs)
    png = plan_outputs(images[:1], out, suffix="_layercam", extension=".png")
    assert png[0].output.name == f"{images[0][0].stem}_layercam.png"
    for bad in ("_x/../../y", "_a\\b", "/abs"):
        with pytest.raises(ConfigurationError, match="without path separators"):
            plan_outputs(images, out, suffix=bad)
    with pytest.raises(ConfigurationError, match="extension must be part of a file name"):
        plan_outputs(images, out, extension="/.jpg")


def test_batch_survives_bad_files_and_reports(folder: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    explainer = Explainer(SmallCNN(), class_names=["x", "y", "z"])
    out = tmp_path / "out"
    jobs = plan_outputs(find_images([folder], recursive=True), out)
    report = out / "gradcam_report.csv"
    with pytest.warns(ImageSkippedWarning) as caught:
        results = explain_files(explainer, jobs, batch_size=3, report=report, progress=False)
    failed = {r.image.name for r in results if not r.ok}
    assert failed == {"fake.jpg", "empty.png", "cut.jpg"}
    assert {str(w.message).split("'")[1] for w in caught} == {str(folder / n) for n in failed}
    rows = list(csv.DictReader(report.open(encoding="utf-8")))
    assert tuple(rows[0].keys()) == REPORT_COLUMNS
    assert [row["image"] for row in rows] == [str(job.source) for job in jobs]
    for row, result in zip(rows, results, strict=True):
        if result.ok:
            assert result.explanation is not None and result.heatmap is not None
            assert row["error"] == "" and Path(row["heatmap"]).is_file()
            assert int(row["pred_class"]) == result.explanation.pred_class
            assert row["pred_name"] == "xyz"[result.explanation.pred_class]
            assert float(row["confidence"]) == pytest.approx(
                result.explanation.confidence, abs=1e-6
            )
            written = Image.open(result.heatmap)
            assert written.size == Image.open(result.image).size  # overlay at original size
        else:
            assert row["error"] and row["heatmap"] == "" and row["pred_class"] == ""
    # batched results equal one-by-one explanations
    ok = [r for r in results if r.ok]
    single = explainer.explain(ok[1].image)
    assert ok[1].explanation is not None
    np.testing.assert_allclose(ok[1].explanation.raw, single.raw, rtol=1e-5, atol=1e-6)


def test_report_rows_are_written_as_results_arrive(folder: Path, tmp_path: Path) -> None:
    explainer = Explainer(SmallCNN())
    jobs = plan_outputs(find_images([folder]), tmp_path / "out")
    report = tmp_path / "out" / "report.csv"
    stream = iter_explain_files(explainer, jobs, batch_size=2, report=report, progress=False)
    next(stream)
    next(stream)
    lines = report.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3  # header + the two rows already yielded
    stream.close()  # an interrupted run keeps what it wrote
    assert len(report.read_text(encoding="utf-8").splitlines()) == 3


def test_batch_argument_checks(tmp_path: Path) -> None:
    explainer = Explainer(SmallCNN())
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        explain_files(explainer, [], batch_size=0)
    with pytest.raises(ValueError, match="alpha must lie"):
        explain_files(explainer, [], alpha=3.0)
