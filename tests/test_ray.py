"""camkit.ray: a folder explained by Ray actors gives the single-process run's rows, maps,
overlays and report; error rows survive; every actor holds the driver's weights."""

from __future__ import annotations

import csv
import importlib.util
import logging
import os
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from tiny_models import SmallCNN
from torch import nn

from camkit import DataConfig, Explainer
from camkit.errors import (
    CheckpointError,
    ConfigurationError,
    ImageSkippedWarning,
    InputError,
    MissingDependencyError,
    OutputError,
    TargetError,
    UnknownNameError,
)
from camkit.ray import COLUMNS, decode_map, encode_map
from camkit.tools.batch import (
    FileResult,
    describe_preprocessing,
    explain_files,
    find_images,
    plan_outputs,
)
from camkit.tools.cli import main

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.*")  # Ray's own

HAVE_RAY = importlib.util.find_spec("ray") is not None
REQUIRE_RAY = os.environ.get("CAMKIT_REQUIRE_RAY") == "1"  # CI: a missing Ray fails the tests
needs_ray = pytest.mark.skipif(
    not HAVE_RAY and not REQUIRE_RAY,
    reason="Ray is not installed (pip install 'camkit[ray]'; CI installs it)",
)
TESTS = Path(__file__).parent
CONFIG = DataConfig((32, 32))
OPTIONS: dict[str, Any] = {
    "data_config": CONFIG,
    "device": "cpu",
    "class_names": ["=cat", "+dog", "@bird"],  # formulas to a spreadsheet: neutralised
}


class RandomSmallCNN:
    """A SmallCNN with fresh random weights at every call (no seed), so actors that built
    their own would disagree; remembers the models it built in this process."""

    def __init__(self) -> None:
        self.built: list[nn.Module] = []

    def __call__(self) -> nn.Module:
        model = SmallCNN(3)
        self.built.append(model)
        return model

    def __reduce__(self) -> tuple[type[RandomSmallCNN], tuple[()]]:
        return RandomSmallCNN, ()  # the workers get the factory, not the driver's models


def minmax(array: np.ndarray) -> np.ndarray:
    span = array.max() - array.min()
    return (array - array.min()) / span if span > 0 else np.zeros_like(array)


# --- without Ray ---------------------------------------------------------------------------
def test_importing_camkit_never_imports_ray() -> None:
    code = (
        "import sys, camkit, camkit.ray, camkit.tools.cli, camkit.tools.batch\n"
        "assert 'ray' not in sys.modules, sorted(m for m in sys.modules if 'ray' in m)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(TESTS.parent)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=120)


def test_without_ray_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import camkit.ray

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    with pytest.raises(MissingDependencyError, match=r"pip install 'camkit\[ray\]'"):
        camkit.ray.explain_dataset(object(), SmallCNN)  # type: ignore[arg-type]
    with pytest.raises(MissingDependencyError, match=r"pip install 'camkit\[ray\]'"):
        camkit.ray.start_ray()
    image = tmp_path / "a.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image)
    args = ["explain", str(image), "--model", "resnet18", "--engine", "ray", "--out"]
    assert main([*args, str(tmp_path / "out")]) == 2
    assert not (tmp_path / "out").exists()


def test_map_encoding_round_trip() -> None:
    rng = np.random.default_rng(1)
    raw = rng.random((7, 5)).astype(np.float32) * 40.0
    data = encode_map(raw)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    decoded = decode_map(data)
    assert decoded.dtype == np.float32 and decoded.shape == (7, 5)
    np.testing.assert_allclose(decoded, minmax(raw), atol=0.5 / 65535 + 1e-7)
    assert decoded.min() == 0.0 and decoded.max() == 1.0
    np.testing.assert_array_equal(decode_map(encode_map(np.full((3, 3), 2.5))), np.zeros((3, 3)))


@pytest.mark.parametrize(
    "raw", [np.zeros((0, 3)), np.zeros((2, 2, 2)), np.array([[0.0, np.nan]])], ids=str
)
def test_encode_map_refuses_non_maps(raw: np.ndarray) -> None:
    with pytest.raises(InputError, match="finite, non-empty 2-D"):
        encode_map(raw)


@pytest.mark.parametrize("data", [b"", b"not a png", None], ids=["empty", "text", "8-bit"])
def test_decode_map_refuses_other_bytes(data: bytes | None) -> None:
    if data is None:  # an 8-bit PNG is an image, not a map cell
        data = png_bytes(np.zeros((3, 3), np.uint8))
    with pytest.raises(InputError, match="16-bit grayscale PNG"):
        decode_map(data)


def png_bytes(array: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


# --- a local Ray ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[Any]:
    """A local Ray with 2 CPUs; its workers import camkit and the tests' models."""
    if not HAVE_RAY:
        pytest.skip("Ray is not installed (pip install 'camkit[ray]'; CI installs it)")
    import ray
    import ray.data

    paths = [str(TESTS.parent), str(TESTS), os.environ.get("PYTHONPATH", "")]
    saved = dict(os.environ)
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)  # the workers inherit it
    os.environ["CAMKIT_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    try:
        ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True
    context.enable_progress_bars = False
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 small images (two folders, PNG and JPEG, several sizes) and 3 bad files."""
    root = tmp_path_factory.mktemp("images")
    (root / "sub").mkdir()
    rng = np.random.default_rng(0)
    for i in range(24):
        where = root / "sub" if i % 4 == 0 else root
        size = (24 + 3 * (i % 5), 30 + 2 * (i % 3), 3)
        image = Image.fromarray(rng.integers(0, 256, size, dtype=np.uint8))
        image.save(where / f"img{i:02d}.{'png' if i % 2 else 'jpg'}")
    (root / "bad.jpg").write_text("not an image")
    (root / "empty.png").write_bytes(b"")
    (root / "sub" / "truncated.png").write_bytes(png_bytes(np.zeros((20, 20), np.uint8))[:40])
    return root


def local_run(
    model: nn.Module, folder: Path, out: Path, **kwargs: Any
) -> tuple[list[FileResult], Explainer]:
    """The single-process run (explain_files) with the same weights and options."""
    explainer = Explainer(model, **OPTIONS)
    jobs = plan_outputs(find_images([folder]), out, suffix="_gradcampp")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ImageSkippedWarning)
        results = explain_files(explainer, jobs, progress=False, **kwargs)
    skipped = [Path(str(w.message).split("'")[1]).name for w in caught]
    assert skipped == ["bad.jpg", "empty.png", "truncated.png"]
    assert all(w.category is ImageSkippedWarning for w in caught)
    return results, explainer


@pytest.fixture(scope="module")
def ray_run(ray_cluster: Any, folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """explain_dataset over the folder (2 actors, random-init model, top 2 classes), and
    the single-process run of the driver's model."""
    from camkit.ray import explain_dataset, write_report

    tmp = tmp_path_factory.mktemp("ray")
    paths = [str(image) for image, _ in find_images([folder])]
    ds = ray_cluster.data.from_items([{"path": path} for path in paths])
    factory = RandomSmallCNN()
    results = explain_dataset(
        ds,
        factory,
        explainer_options=OPTIONS,
        output_dir=tmp / "ray",
        top=2,
        batch_size=4,
        concurrency=2,
    )
    assert len(factory.built) == 1  # built once on the driver
    driver_model = factory.built[0]
    local, explainer = local_run(driver_model, folder, tmp / "local", top=2, report=tmp / "l.csv")
    rows: list[dict[str, Any]] = []
    summary = write_report(
        results,
        tmp / "ray.csv",
        tmp / "ray.parquet",
        preprocessing=describe_preprocessing(explainer),
        on_row=rows.append,
    )
    return {
        "tmp": tmp,
        "rows": rows,
        "local": local,
        "summary": summary,
        "factory": factory,
        "ds": ds,
        "paths": paths,
    }


@needs_ray
def test_rows_match_the_single_process_run(ray_run: Any) -> None:
    """Same rows in the same order: values, layer, method, errors. The model has random
    weights, built without a seed: only actors that all hold the driver's weights agree."""
    rows, local = ray_run["rows"], ray_run["local"]
    assert [row["path"] for row in rows] == [str(result.image) for result in local]
    assert len(rows) == 2 * 24 + 3
    for row, result in zip(rows, local, strict=True):
        assert list(row) == list(COLUMNS)
        e = result.explanation
        if e is None:
            assert row["error"] == result.error
            assert row["error"].startswith("InputError: ")
            assert row["pred_class"] is None and row["map"] is None and row["overlay"] is None
            continue
        assert row["error"] is None
        assert (row["pred_class"], row["pred_name"], row["target"]) == (
            e.pred_class,
            e.pred_name,
            e.target,
        )
        assert row["confidence"] == pytest.approx(e.confidence, abs=1e-6)
        assert row["target_score"] == pytest.approx(e.target_score, abs=1e-5)
        assert (row["layer"], row["method"]) == (e.layer, e.method) == ("body", "gradcam++")
    failed = {Path(row["path"]).name for row in rows if row["error"]}
    assert failed == {"bad.jpg", "empty.png", "truncated.png"}
    summary = ray_run["summary"]
    assert (summary.rows, summary.images, summary.failed) == (51, 27, 3)


@needs_ray
def test_map_column_decodes_to_the_explanations_map(ray_run: Any) -> None:
    for row, result in zip(ray_run["rows"], ray_run["local"], strict=True):
        if result.explanation is None:
            continue
        decoded = decode_map(row["map"])
        raw = result.explanation.raw
        assert decoded.shape == raw.shape == (16, 16)
        np.testing.assert_allclose(decoded, minmax(raw), atol=1e-4)


@needs_ray
def test_overlays_are_the_single_process_runs_bytes(ray_run: Any) -> None:
    tmp = ray_run["tmp"]
    ours = sorted(p.relative_to(tmp / "ray") for p in (tmp / "ray").rglob("*.jpg"))
    theirs = sorted(p.relative_to(tmp / "local") for p in (tmp / "local").rglob("*.jpg"))
    assert ours == theirs and len(ours) == 48
    assert (
        Path("sub/img00_gradcampp_class0.jpg") in ours
        or Path("sub/img00_gradcampp_class1.jpg") in ours
    )
    for name in ours:
        assert (tmp / "ray" / name).read_bytes() == (tmp / "local" / name).read_bytes(), name
    for row in ray_run["rows"]:
        if row["overlay"] is not None:
            assert Path(row["overlay"]).is_file()
            assert Path(row["overlay"]).name.endswith(f"_class{row['target']}.jpg")


@needs_ray
def test_reports_csv_as_the_folder_run_and_parquet(ray_run: Any) -> None:
    import pyarrow.parquet as pq

    tmp = ray_run["tmp"]
    ours = (tmp / "ray.csv").read_text().replace(str(tmp / "ray"), "OUT")
    theirs = (tmp / "l.csv").read_text().replace(str(tmp / "local"), "OUT")
    assert ours == theirs
    assert ours.splitlines()[0].startswith("image,pred_class,pred_name,")
    names = [r["pred_name"] for r in csv.DictReader(ours.splitlines()) if not r["error"]]
    assert len(names) == 48 and all(n[0] == "'" and n[1:] in OPTIONS["class_names"] for n in names)
    table = pq.read_table(tmp / "ray.parquet")
    assert table.column_names == list(COLUMNS) and table.num_rows == 51
    assert table.column("path").to_pylist() == [row["path"] for row in ray_run["rows"]]
    assert table.column("map").to_pylist() == [row["map"] for row in ray_run["rows"]]


@needs_ray
def test_no_overwrite_without_the_flag(ray_run: Any) -> None:
    from camkit.ray import explain_dataset, write_report

    tmp = ray_run["tmp"]
    before = {p: p.stat().st_mtime_ns for p in (tmp / "ray").rglob("*.jpg")}
    with pytest.raises(OutputError, match="48 planned output files already exist"):
        explain_dataset(
            ray_run["ds"], SmallCNN, explainer_options=OPTIONS, output_dir=tmp / "ray", top=2
        )
    # the overlays without top are other files; the report is checked before any work
    results = explain_dataset(ray_run["ds"], SmallCNN, explainer_options=OPTIONS)
    with pytest.raises(OutputError, match="already exists"):
        write_report(results, tmp / "elsewhere.csv", tmp / "ray.parquet")
    assert not (tmp / "elsewhere.csv").exists()
    assert before == {p: p.stat().st_mtime_ns for p in (tmp / "ray").rglob("*.jpg")}


@needs_ray
def test_dataset_of_images_named_by_id(ray_cluster: Any, tmp_path: Path) -> None:
    """Decoded images (an 'image' column named by 'id'): RGBA converted, a bad array an
    error row; overlays named after the ids; the values of the single-process run."""
    from camkit.ray import explain_dataset, write_report

    rng = np.random.default_rng(3)
    good = rng.integers(0, 256, (20, 28, 3), dtype=np.uint8)
    rgba = rng.integers(0, 256, (20, 28, 4), dtype=np.uint8)
    items = [
        {"id": "cats/one", "image": good},
        {"id": "two", "image": rgba},
        {"id": "three", "image": np.zeros((20, 28, 5), np.uint8)},
    ]
    ds = ray_cluster.data.from_items(items)
    torch.manual_seed(5)
    model = SmallCNN(3)
    weights = model.state_dict()
    results = explain_dataset(
        ds, SmallCNN, weights=weights, explainer_options=OPTIONS, output_dir=tmp_path / "out"
    )
    rows: list[dict[str, Any]] = []
    write_report(results, on_row=rows.append)
    assert [row["error"] is None for row in rows] == [True, True, False], rows
    assert [row["path"] for row in rows] == ["cats/one", "two", "three"]
    assert rows[2]["error"].startswith("InputError: ") and rows[2]["overlay"] is None
    expected = Explainer(model, **OPTIONS).explain_batch([good, rgba[..., :3]])
    for row, e in zip(rows[:2], expected, strict=True):
        assert row["pred_class"] == e.pred_class
        assert row["confidence"] == pytest.approx(e.confidence, abs=1e-6)
        np.testing.assert_allclose(decode_map(row["map"]), minmax(e.raw), atol=1e-4)
    assert rows[0]["overlay"] == str(tmp_path / "out" / "cats" / "one_gradcampp.jpg")
    assert rows[1]["overlay"] == str(tmp_path / "out" / "two_gradcampp.jpg")
    assert Path(rows[0]["overlay"]).is_file() and Path(rows[1]["overlay"]).is_file()


@needs_ray
def test_run_wide_errors_propagate_with_their_type(ray_cluster: Any, folder: Path) -> None:
    from camkit.ray import explain_dataset, write_report

    ds = ray_cluster.data.from_items([{"path": str(folder / "img01.png")}])
    results = explain_dataset(ds, SmallCNN, explainer_options=OPTIONS, target=7)
    with pytest.raises(TargetError, match="out of range.*raised on a Ray worker"):
        write_report(results)


@needs_ray
def test_bad_arguments_are_refused_before_any_work(ray_cluster: Any, tmp_path: Path) -> None:
    from camkit.ray import explain_dataset

    data = ray_cluster.data
    paths = data.from_items([{"path": "a.png"}])
    with pytest.raises(ConfigurationError, match="'path' column"):
        explain_dataset(data.from_items([{"file": "a.png"}]), SmallCNN)
    with pytest.raises(ConfigurationError, match="'path' or 'id'"):
        explain_dataset(data.from_items([{"image": np.zeros((4, 4, 3), np.uint8)}]), SmallCNN)
    for bad in ({"concurrency": 0}, {"batch_size": 0}, {"num_gpus": -1}, {"top": 0}):
        with pytest.raises(ConfigurationError):
            explain_dataset(paths, SmallCNN, **bad)
    with pytest.raises(ConfigurationError, match="not both"):
        explain_dataset(paths, SmallCNN, output_dir=tmp_path, plan=[])
    with pytest.raises(UnknownNameError, match="unknown method 'nosuch'"):
        explain_dataset(paths, SmallCNN, explainer_options={"method": "nosuch"})
    with pytest.raises(CheckpointError, match="do not fit"):
        explain_dataset(paths, SmallCNN, weights=SmallCNN(5).state_dict())
    with pytest.raises(ConfigurationError, match="nn.Module"):
        explain_dataset(paths, lambda: "model")  # type: ignore[arg-type, return-value]


# --- the CLI ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cli_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli")
    torch.manual_seed(1)
    torch.save(SmallCNN(3).state_dict(), root / "weights.pth")
    (root / "model.py").write_text(
        "from tiny_models import SmallCNN\n\ndef factory():\n    return SmallCNN(3)\n"
    )
    images = root / "images"
    (images / "deep").mkdir(parents=True)
    rng = np.random.default_rng(2)
    for i, name in enumerate(["a.jpg", "a.png", "deep/b.png", "c.jpg", "=d.png", "e.png"]):
        pixels = rng.integers(0, 256, (22 + i, 30, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(images / name)
    odd = os.fsdecode(b"caf\xe9.png")  # not UTF-8: a \udce9 escape
    Image.fromarray(rng.integers(0, 256, (25, 25, 3), dtype=np.uint8)).save(images / odd)
    (images / "deep" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    return root


def cli_args(files: Path, out: Path) -> list[str]:
    """Paths as a user types them: relative to the working folder (``files``)."""
    model = ["--model", "model.py:factory", "--weights", "weights.pth"]
    options = ["--input-size", "32", "32", "--device", "cpu", "--report", "--no-progress"]
    return ["explain", "images", *model, *options, "--out", os.path.relpath(out, files)]


@needs_ray
def test_cli_ray_engine_writes_what_the_local_engine_writes(
    ray_cluster: Any,
    cli_files: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Relative paths, as typed: the workers read and write absolute ones, the rows and
    messages show them as typed."""
    monkeypatch.chdir(cli_files)
    local, remote = tmp_path / "local", tmp_path / "ray"
    assert main(cli_args(cli_files, local)) == 1
    capsys.readouterr()
    assert main([*cli_args(cli_files, remote), "--engine", "ray", "--workers", "2"]) == 1
    err = capsys.readouterr().err
    assert "explained 7 of 8 images at layer 'body' with gradcam++ on 2 Ray worker(s)" in err
    assert "failed" in err and "broken.jpg" in err
    ours = sorted(p.relative_to(remote) for p in remote.rglob("*") if p.suffix == ".jpg")
    theirs = sorted(p.relative_to(local) for p in local.rglob("*") if p.suffix == ".jpg")
    assert ours == theirs and len(ours) == 7
    assert Path("a_gradcampp.jpg") in ours and Path("a_png_gradcampp.jpg") in ours
    assert Path(os.fsdecode(b"caf\xe9_gradcampp.jpg")) in ours
    for name in ours:
        assert (remote / name).read_bytes() == (local / name).read_bytes(), name
    report = "gradcam_report.csv"
    ours_csv = (remote / report).read_bytes()
    theirs_csv = (local / report).read_bytes()
    out = os.fsencode(os.path.relpath(remote, cli_files))
    assert ours_csv == theirs_csv.replace(os.fsencode(os.path.relpath(local, cli_files)), out)
    assert b"InputError: cannot read 'images/deep/broken.jpg'" in ours_csv
    rows = list(csv.DictReader((remote / report).open(encoding="utf-8")))
    assert [Path(r["image"]).name for r in rows] == [
        "=d.png",
        "a.jpg",
        "a.png",
        "c.jpg",
        "caf\\udce9.png",
        "b.png",
        "broken.jpg",
        "e.png",
    ]
    assert (remote / "gradcam_report.parquet").is_file()
    # a second run stops before any work without --overwrite
    assert main([*cli_args(cli_files, remote), "--engine", "ray"]) == 2
    assert "already exist" in capsys.readouterr().err


@needs_ray
def test_cli_ray_engine_refuses_html(
    ray_cluster: Any,
    cli_files: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(cli_files)
    assert main([*cli_args(cli_files, tmp_path), "--engine", "ray", "--html"]) == 2
    assert "--html works with the local engine only" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
