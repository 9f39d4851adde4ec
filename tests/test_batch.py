"""Batch file explanation: discovery, output names, bad files, the streamed report."""

from __future__ import annotations

import csv
import gc
import threading
import warnings
import weakref
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tiny_models import SmallCNN
from torch import Tensor, nn

from camkit import DataConfig, Explainer
from camkit.errors import (
    ConfigurationError,
    ImageSkippedWarning,
    InputError,
    MethodError,
    OutputError,
    TargetError,
)
from camkit.pipeline.prepare import PreparedImage
from camkit.preprocess import ImageInput
from camkit.tools.batch import (
    REPORT_COLUMNS,
    ImageJob,
    explain_files,
    find_images,
    iter_explain_files,
    method_slug,
    plan_outputs,
)
from camkit.tools.output import OutputWriter
from camkit.tools.stream import THREAD_PREFIX

WAIT = 10.0  # seconds an event may take before a test fails instead of hanging


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
    """Subfolders are searched by default; ``recursive=False`` keeps to the folder."""
    flat = find_images([folder], recursive=False)
    names = sorted(p.relative_to(folder).as_posix() for p, _ in flat)
    assert names == sorted(
        ["a.jpg", "B.PNG", "grey.bmp", "a.png", "other.webp", "fake.jpg", "empty.png", "cut.jpg"]
    )
    deep = sorted(p.relative_to(folder).as_posix() for p, _ in find_images([folder]))
    assert deep == sorted([*names, "sub/a.jpg"])
    assert {root for _, root in find_images([folder])} == {folder}  # mirrored from the root
    with pytest.raises(InputError, match="no such file or folder"):
        find_images([folder / "missing"])


def test_find_images_leaves_out_the_output_folder(folder: Path) -> None:
    """An output folder inside the input folder is not searched, so a second run does not
    explain the first one's overlays; the searched folder itself is never left out."""
    write_image(folder / "cam_output" / "a_gradcampp.jpg")
    write_image(folder / "cam_output" / "sub" / "a_gradcampp.jpg")
    everything = {p.relative_to(folder).as_posix() for p, _ in find_images([folder])}
    assert {"cam_output/a_gradcampp.jpg", "cam_output/sub/a_gradcampp.jpg"} <= everything
    kept = {
        p.relative_to(folder).as_posix()
        for p, _ in find_images([folder], exclude=[folder / "sub" / ".." / "cam_output"])
    }
    assert kept == everything - {"cam_output/a_gradcampp.jpg", "cam_output/sub/a_gradcampp.jpg"}
    assert "sub/a.jpg" in kept
    assert len(find_images([folder], exclude=[folder])) == len(everything)
    assert len(find_images([folder / "sub"], exclude=[folder])) == 1  # above: not left out


def test_finding_no_image_is_an_error_that_says_why(tmp_path: Path) -> None:
    """``allow_empty=False``: where camkit looked, how, what counts, and what it passed over."""
    root = tmp_path / "datasets"
    (root / "test").mkdir(parents=True)
    assert find_images([root]) == []  # the default: an empty list
    with pytest.raises(InputError) as info:
        find_images([root], allow_empty=False)
    message = str(info.value)
    assert f"no images found in {str(root)!r}, searched with their subfolders" in message
    assert ".jpeg, .jpg, .png, .tif, .tiff, .webp (any case)" in message
    assert "other file" not in message and "left out" not in message
    (root / "notes.txt").write_text("x")
    (root / "test" / "scan.heic").write_bytes(b"x")
    with pytest.raises(
        InputError,
        match=r"2 other file\(s\) were passed over, with "
        r"extensions \.heic, \.txt",
    ):
        find_images([root], allow_empty=False)
    write_image(root / "test" / "cat" / "x.jpg")
    with pytest.raises(InputError) as info:
        find_images([root], recursive=False, allow_empty=False)
    message = str(info.value)
    assert "searched without subfolders (recursion off)" in message
    assert "1 other file(s) were passed over, with extensions .txt" in message
    assert "1 subfolder(s) were not searched: turn recursion back on" in message
    assert len(find_images([root], allow_empty=False)) == 1
    with pytest.raises(InputError, match=r"the output folder '.*test' was left out"):
        find_images([root], exclude=[root / "test"], allow_empty=False)


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


class Picky(nn.Module):
    """SmallCNN that raises ``error`` for any batch holding an image brighter than the
    threshold (mean of the normalised input above 1)."""

    def __init__(self, error: Exception) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = SmallCNN()
        self.error = error

    def forward(self, x: Tensor) -> Tensor:
        if (x.mean(dim=(1, 2, 3)) > 1.0).any():
            raise self.error
        return self.net(x)  # type: ignore[no-any-return]


@pytest.fixture
def some_bright(tmp_path: Path) -> list[ImageJob]:
    """Seven images, the 2nd and 5th bright (normalised mean about 2), one unreadable."""
    root = tmp_path / "mixed"
    for i in range(6):
        path = write_image(root / f"{i}.png", size=(30 + i, 28))
        if i in (1, 4):
            Image.fromarray(np.full((28, 30 + i, 3), 250, np.uint8)).save(path)
    (root / "6.png").write_text("not an image")
    return plan_outputs(find_images([root]), tmp_path / "out")


@pytest.mark.parametrize(
    "error",
    [RuntimeError("too bright for this model"), MethodError("non-finite map for this image")],
)
def test_a_failing_batch_is_retried_one_by_one(
    some_bright: list[ImageJob], tmp_path: Path, error: Exception
) -> None:
    """A batch that raises is explained again image by image: every image gets a row, the
    failures with their error, the others with the results a batch of only them gives."""
    explainer = Explainer(Picky(error), device="cpu", class_names=["x", "y", "z"])
    report = tmp_path / "out" / "report.csv"
    with pytest.warns(ImageSkippedWarning):
        results = explain_files(explainer, some_bright, batch_size=3, report=report)
    assert [r.image.name for r in results] == [f"{i}.png" for i in range(7)]
    assert [r.ok for r in results] == [True, False, True, True, False, True, False]
    message = f"{type(error).__name__}: {error}"
    assert [r.error for r in results if not r.ok][:2] == [message, message]
    rows = list(csv.DictReader(report.open(encoding="utf-8")))
    assert [row["error"] for row in rows][:2] == ["", message]
    assert [bool(row["heatmap"]) for row in rows] == [r.ok for r in results]
    good = [job for job, r in zip(some_bright, results, strict=True) if r.ok]
    alone = explain_files(explainer, good, batch_size=8, save=False)  # one batch, no failure
    assert all(r.ok for r in alone)
    for kept, reference in zip([r for r in results if r.ok], alone, strict=True):
        assert kept.explanation is not None and reference.explanation is not None
        assert kept.explanation.pred_class == reference.explanation.pred_class
        assert kept.explanation.confidence == pytest.approx(reference.explanation.confidence)
        np.testing.assert_allclose(
            kept.explanation.raw, reference.explanation.raw, rtol=1e-4, atol=1e-6
        )
        assert kept.heatmap is not None and kept.heatmap.is_file()


@pytest.mark.parametrize(
    "error",
    [
        TargetError("target out of range"),
        ConfigurationError("bad option"),
        TypeError("a bug"),
        KeyboardInterrupt(),
    ],
)
def test_run_wide_errors_stop_the_run(
    some_bright: list[ImageJob], tmp_path: Path, error: BaseException
) -> None:
    """Errors that concern the run (its options) or are not camkit's or the model's
    (a bug, Ctrl-C) are not turned into rows; the report keeps its header."""
    explainer = Explainer(Picky(error), device="cpu")  # type: ignore[arg-type]
    report = tmp_path / "out" / "report.csv"
    with pytest.raises(type(error)), warnings.catch_warnings():
        warnings.simplefilter("ignore", ImageSkippedWarning)
        explain_files(explainer, some_bright, batch_size=3, report=report)
    assert report.read_text(encoding="utf-8").splitlines() == [",".join(REPORT_COLUMNS)]


def test_report_records_the_preprocessing(folder: Path, tmp_path: Path) -> None:
    """Every row, errors included, says how images were fitted to the model."""
    config = DataConfig((48, 32), resize="crop", interpolation="bicubic")
    explainer = Explainer(SmallCNN(), device="cpu", data_config=config)
    jobs = plan_outputs(find_images([folder]), tmp_path / "out")
    report = tmp_path / "report.csv"
    with pytest.warns(ImageSkippedWarning):
        results = explain_files(explainer, jobs, report=report, save=False)
    rows = list(csv.DictReader(report.open(encoding="utf-8")))
    described = "centre crop to 48x32 (HxW), bicubic, ImageNet mean/std"
    assert {row["preprocessing"] for row in rows} == {described}
    assert any(row["error"] for row in rows) and {r.preprocessing for r in results} == {described}
    custom = Explainer(SmallCNN(), device="cpu", transform=lambda image: torch.zeros(3, 8, 8))
    assert explain_files(custom, jobs[:1], save=False)[0].preprocessing == "custom transform"


@pytest.mark.parametrize(
    ("config", "text"),
    [
        (DataConfig(), "stretch to 224x224, bilinear, ImageNet mean/std"),
        (
            DataConfig((299, 299), resize="crop"),
            "centre crop to 299x299, bilinear, ImageNet mean/std",
        ),
        (
            DataConfig((64, 80), (0.5, 0.5, 0.5), (0.25, 0.5, 1.0), "nearest", "letterbox", 0),
            "letterbox on grey 0 to 64x80 (HxW), nearest, mean (0.5, 0.5, 0.5), std (0.25, 0.5, 1)",
        ),
    ],
)
def test_data_config_describe(config: DataConfig, text: str) -> None:
    assert config.describe() == text


# --- the streaming pipeline: workers, bounds, clean stops ---------------------------------


def camkit_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(THREAD_PREFIX)]


def relative_rows(report: Path, out: Path) -> list[dict[str, str]]:
    """The report's rows with each overlay path relative to the output folder."""
    rows = list(csv.DictReader(report.open(encoding="utf-8")))
    for row in rows:
        if row["heatmap"]:
            row["heatmap"] = Path(row["heatmap"]).relative_to(out).as_posix()
    return rows


@pytest.mark.parametrize("top", [None, 2])
def test_workers_give_the_same_rows_and_the_same_overlay_bytes(
    folder: Path, tmp_path: Path, top: int | None
) -> None:
    """0, 1 and 3 worker threads: identical reports (bad files included) and overlays
    identical to the byte."""
    for i in range(5):
        write_image(folder / "more" / f"{i}.jpg", size=(20 + 7 * i, 31))
    explainer = Explainer(SmallCNN(), device="cpu", class_names=["x", "y", "z"])
    images = find_images([folder])
    runs = {}
    for workers in (0, 1, 3):
        out = tmp_path / f"out{workers}"
        report = out / "report.csv"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ImageSkippedWarning)
            explain_files(
                explainer,
                plan_outputs(images, out),
                top=top,
                batch_size=3,
                report=report,
                workers=workers,
            )
        overlays = {
            p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*.jpg") if p.is_file()
        }
        runs[workers] = (relative_rows(report, out), overlays)
    rows, overlays = runs[0]
    assert len(rows) == (len(images) - 3) * (top or 1) + 3  # 3 bad files: one row each
    assert sum(1 for row in rows if row["error"]) == 3
    assert len(overlays) == len(rows) - 3
    assert runs[1] == runs[0]
    assert runs[3] == runs[0]


def test_memory_stays_flat_on_a_large_folder(tmp_path: Path) -> None:
    """60 images, batch 4, 2 workers: the images read and not yet returned, and the decoded
    images alive, stay below a bound set by the batch size, not by the folder's size."""
    for i in range(60):
        write_image(tmp_path / "many" / f"{i:02d}.png", size=(24 + i % 5, 20))
    jobs = plan_outputs(find_images([tmp_path / "many"]), tmp_path / "out")
    explainer = Explainer(SmallCNN(), device="cpu")
    lock = threading.Lock()
    counts = {"read": 0, "returned": 0, "alive": 0, "most_in_flight": 0, "most_alive": 0}
    prepare = explainer.prepare_image

    def forget() -> None:
        with lock:
            counts["alive"] -= 1

    def counting(image: ImageInput) -> PreparedImage:
        prepared = prepare(image)
        gc.collect()  # what is left alive is referenced, not garbage waiting for collection
        with lock:
            counts["read"] += 1
            counts["alive"] += 1
            counts["most_in_flight"] = max(
                counts["most_in_flight"], counts["read"] - counts["returned"]
            )
            counts["most_alive"] = max(counts["most_alive"], counts["alive"])
        assert prepared.original is not None
        weakref.finalize(prepared.original, forget)
        return prepared

    explainer.prepare_image = counting  # type: ignore[method-assign]
    for result in iter_explain_files(explainer, jobs, batch_size=4, workers=2, progress=False):
        assert result.ok
        with lock:
            counts["returned"] += 1
    assert counts["read"] == counts["returned"] == 60
    # read ahead: 2 batches; explained: 1; being written: 2 (iter_explain_files's windows)
    assert counts["most_in_flight"] <= 5 * 4
    # and the caller's last result's batch, and garbage not collected yet
    assert counts["most_alive"] <= 7 * 4
    assert counts["most_in_flight"] > 4  # reading runs ahead of the model


class Gated(nn.Module):
    """SmallCNN whose forward calls ``on_forward(call_number)`` first."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = SmallCNN()
        self.calls = 0
        self.on_forward = lambda call: None

    def forward(self, x: Tensor) -> Tensor:
        self.on_forward(self.calls)
        self.calls += 1
        return self.net(x)  # type: ignore[no-any-return]


def test_reading_and_writing_overlap_the_model(
    some_bright: list[ImageJob], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With workers, the images of the next batch are read while the model explains this
    one (the first forward waits for it), and the first batch's overlays are written while
    the model explains the second batch (the writes wait for it): neither could happen one step
    after the other. Reading and writing run on the workers' threads."""
    model = Gated()
    explainer = Explainer(model, device="cpu", layer="net.body")
    next_batch_read = threading.Event()
    second_forward = threading.Event()
    threads: dict[str, set[str]] = {"read": set(), "write": set()}
    prepare = explainer.prepare_image

    def reading(image: ImageInput) -> PreparedImage:
        threads["read"].add(threading.current_thread().name)
        if Path(str(image)).name == "3.png":  # the first image of the second batch
            next_batch_read.set()
        return prepare(image)

    write_image_file = OutputWriter.write_image
    overlapped: list[bool] = []

    def writing(self: OutputWriter, path: Path, rgb: np.ndarray) -> Path:
        threads["write"].add(threading.current_thread().name)
        overlapped.append(second_forward.wait(WAIT))  # instant once the model is on batch 2
        return write_image_file(self, path, rgb)

    def on_forward(call: int) -> None:
        if call == 0:
            assert next_batch_read.wait(WAIT), "the next batch was not read during the model"
        if call == 1:
            second_forward.set()

    model.on_forward = on_forward
    explainer.prepare_image = reading  # type: ignore[method-assign]
    monkeypatch.setattr(OutputWriter, "write_image", writing)
    some_bright = some_bright[:6]  # readable images only: 2 batches of 3
    results = explain_files(explainer, some_bright, batch_size=3, workers=2, progress=False)
    assert [r.ok for r in results] == [True] * 6
    assert overlapped == [True] * 6, "the first overlays were not written during the model"
    assert threads["read"] and all(n.startswith("camkit-prepare") for n in threads["read"])
    assert threads["write"] and all(n.startswith("camkit-write") for n in threads["write"])
    assert camkit_threads() == []


def test_without_workers_everything_runs_in_the_calling_thread(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    explainer = Explainer(SmallCNN(), device="cpu")
    seen: set[str] = set()
    write_image_file = OutputWriter.write_image

    def writing(self: OutputWriter, path: Path, rgb: np.ndarray) -> Path:
        seen.add(threading.current_thread().name)
        return write_image_file(self, path, rgb)

    monkeypatch.setattr(OutputWriter, "write_image", writing)
    before = threading.active_count()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ImageSkippedWarning)
        for _ in iter_explain_files(
            explainer, plan_outputs(find_images([folder]), tmp_path / "out"), workers=0
        ):
            assert threading.active_count() == before
    assert seen == {threading.current_thread().name}


def test_stopping_early_stops_the_workers(folder: Path, tmp_path: Path) -> None:
    """A consumer that takes two results and closes the stream: no thread is left, and the
    report keeps the two rows."""
    explainer = Explainer(SmallCNN(), device="cpu")
    jobs = plan_outputs(find_images([folder]), tmp_path / "out")
    report = tmp_path / "out" / "report.csv"
    before = threading.active_count()
    stream = iter_explain_files(
        explainer, jobs, batch_size=2, report=report, workers=3, progress=False
    )
    next(stream)
    next(stream)
    assert camkit_threads()
    stream.close()
    assert camkit_threads() == []
    assert threading.active_count() == before
    assert len(report.read_text(encoding="utf-8").splitlines()) == 3


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize(
    "error", [TargetError("target out of range"), TypeError("a bug"), KeyboardInterrupt()]
)
def test_run_wide_errors_keep_the_rows_before_them_and_stop_the_workers(
    some_bright: list[ImageJob], tmp_path: Path, error: BaseException, workers: int
) -> None:
    """The model fails on the third batch: the results of the first two come first (rows
    and overlays; an interrupt may cut them short), then the error; no thread is left."""
    model = Gated()

    def on_forward(call: int) -> None:
        if call == 2:
            raise error

    model.on_forward = on_forward
    explainer = Explainer(model, device="cpu", layer="net.body")
    report = tmp_path / "out" / "report.csv"
    before = threading.active_count()
    got: list[str] = []
    with pytest.raises(type(error)), warnings.catch_warnings():
        warnings.simplefilter("ignore", ImageSkippedWarning)
        for result in iter_explain_files(
            explainer, some_bright, batch_size=2, report=report, workers=workers
        ):
            got.append(result.image.name)
    rows = [row["image"] for row in csv.DictReader(report.open(encoding="utf-8"))]
    assert rows == [str(job.source) for job in some_bright[: len(rows)]]
    assert got == [Path(row).name for row in rows]
    if not isinstance(error, KeyboardInterrupt):
        assert got == ["0.png", "1.png", "2.png", "3.png"]
    assert camkit_threads() == []
    assert threading.active_count() == before


@pytest.mark.parametrize("error", [TargetError("no such class"), KeyboardInterrupt()])
def test_errors_raised_on_a_worker_reach_the_caller(
    some_bright: list[ImageJob], tmp_path: Path, error: BaseException
) -> None:
    """An error of the run raised while reading an image on a worker stops the run in the
    caller's thread, after the results before it; no thread is left."""
    explainer = Explainer(SmallCNN(), device="cpu")
    prepare = explainer.prepare_image

    def reading(image: ImageInput) -> PreparedImage:
        if Path(str(image)).name == "4.png":
            raise error
        return prepare(image)

    explainer.prepare_image = reading  # type: ignore[method-assign]
    got: list[str] = []
    with pytest.raises(type(error)):
        for result in iter_explain_files(explainer, some_bright, batch_size=2, workers=2):
            got.append(result.image.name)
    if not isinstance(error, KeyboardInterrupt):
        assert got == ["0.png", "1.png", "2.png", "3.png"]
    assert camkit_threads() == []


def test_an_overlay_that_cannot_be_written_is_a_row(
    some_bright: list[ImageJob], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write that fails on a writer thread makes that image's row an error (with its
    warning, in the caller's thread); the others are written."""
    explainer = Explainer(SmallCNN(), device="cpu")
    write_image_file = OutputWriter.write_image

    def writing(self: OutputWriter, path: Path, rgb: np.ndarray) -> Path:
        if Path(path).name.startswith("2_"):
            raise OutputError(f"the disk is full: could not write {str(path)!r}")
        return write_image_file(self, path, rgb)

    monkeypatch.setattr(OutputWriter, "write_image", writing)
    with pytest.warns(ImageSkippedWarning) as caught:
        results = explain_files(explainer, some_bright, batch_size=3, workers=2)
    assert [r.ok for r in results] == [True, True, False, True, True, True, False]
    assert results[2].error is not None and results[2].error.startswith("OutputError: the disk")
    assert sorted(str(w.message).split("'")[1] for w in caught) == [
        str(some_bright[2].source),
        str(some_bright[6].source),
    ]
    assert sorted(p.name for p in (tmp_path / "out").glob("*.jpg")) == [
        f"{i}_gradcam.jpg" for i in (0, 1, 3, 4, 5)
    ]


@pytest.mark.parametrize("bad", [-1, 2.5, "4", True])
def test_bad_worker_counts_are_configuration_errors(tmp_path: Path, bad: object) -> None:
    explainer = Explainer(SmallCNN(), device="cpu")
    with pytest.raises(ConfigurationError, match="workers must be an int >= 0"):
        explain_files(explainer, [], workers=bad)  # type: ignore[arg-type]


def test_progress_shows_images_per_second(
    some_bright: list[ImageJob], capsys: pytest.CaptureFixture[str]
) -> None:
    """The bar counts images and shows their rate; without a terminal (``progress=None``
    with stderr captured) nothing is printed."""
    explainer = Explainer(SmallCNN(), device="cpu")
    good = some_bright[:6]
    explain_files(explainer, good, save=False, progress=True, workers=1)
    err = capsys.readouterr().err
    assert "camkit: 100%" in err and "6/6" in err and "img/s" in err
    explain_files(explainer, good, save=False, workers=1)
    assert capsys.readouterr().err == ""


def test_the_seed_batch_function_takes_workers(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``generate_gradcam_batch`` runs the same pipeline: ``workers`` reaches
    :func:`explain_files` (``None``, the default, by default) and a bad count is refused
    before the model is built."""
    from camkit.compat import seed

    with pytest.raises(ConfigurationError, match="workers must be an int >= 0"):
        seed.generate_gradcam_batch(folder, tmp_path / "out", model_path="missing.pth", workers=-1)
    passed: list[object] = []

    def explain(*args: object, **kwargs: object) -> list[object]:
        passed.append(kwargs["workers"])
        return []

    monkeypatch.setattr(seed, "explain_files", explain)
    monkeypatch.setattr(seed, "make_explainer", lambda *args: None)
    assert seed.generate_gradcam_batch(folder, tmp_path / "out", workers=3) == []
    assert seed.generate_gradcam_batch(folder, tmp_path / "out") == []
    assert passed == [3, None]


def test_images_prepared_ahead_go_through_the_same_prepare_step(folder: Path) -> None:
    """``Explainer.prepare_image`` is the per-image part of ``prepare``: a batch of images
    prepared ahead (mixed with other inputs) is the batch of the paths, to the bit, and
    explains the same; an unreadable file fails in ``prepare_image`` already."""
    explainer = Explainer(SmallCNN(), device="cpu")
    paths = [folder / "a.jpg", folder / "B.PNG", folder / "grey.bmp"]
    prepared = [explainer.prepare_image(p) for p in paths]
    assert all(isinstance(p, PreparedImage) for p in prepared)
    assert prepared[1].original is not None and prepared[1].original.shape == (48, 64, 3)
    assert tuple(prepared[0].tensor.shape) == (3, *explainer.data_config.input_size)
    whole = explainer.prepare(paths)
    mixed = explainer.prepare(
        [prepared[0], np.asarray(Image.open(paths[1]).convert("RGB")), prepared[2]]
    )
    assert torch.equal(whole.inputs, mixed.inputs)
    assert whole.placements == mixed.placements
    for a, b in zip(whole.originals(), mixed.originals(), strict=True):
        np.testing.assert_array_equal(a, b)
    direct = explainer.explain_batch(paths)
    again = explainer.run(explainer.prepare(prepared))
    for d, e in zip(direct, again, strict=True):
        np.testing.assert_array_equal(d.cam, e.cam)
    with pytest.raises(InputError, match="cannot read"):
        explainer.prepare_image(folder / "fake.jpg")
