"""The one output writer: no overwrite, no symlinks, neutral CSV cells, a full disk, names
that are not UTF-8."""

from __future__ import annotations

import csv
import errno
import os
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from tiny_models import SmallCNN

from camkit import Explainer
from camkit.errors import ConfigurationError, OutputError
from camkit.tools import output as output_module
from camkit.tools.batch import (
    REPORT_COLUMNS,
    ReportWriter,
    check_outputs,
    explain_files,
    find_images,
    plan_outputs,
)
from camkit.tools.output import CsvWriter, OutputWriter, encode_image, neutralise_cell

RGB = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3) * 5
FORMULAS = ["=SUM(A1:A9)", "+1+2", "-2+3", "@cmd", "\tx", "\rx"]


def read_rgb(path: Path) -> np.ndarray:
    data = np.frombuffer(path.read_bytes(), np.uint8)
    return cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def test_neutralise_cell() -> None:
    for text in FORMULAS:
        assert neutralise_cell(text) == "'" + text
        assert neutralise_cell(Path("/data") / text) == "/data/" + text  # not at the start
        assert neutralise_cell(Path(text)) == "'" + text
    assert neutralise_cell("-1") == "'-1"  # text is text, whatever it looks like
    for text in ("cat", "a=b", " =x", "", "'quoted"):
        assert neutralise_cell(text) == text
    # numbers we computed are exempt
    assert neutralise_cell(-0.5) == "-0.5"
    assert neutralise_cell(-3) == "-3"
    assert neutralise_cell(np.float32(-0.25)) == "-0.25"
    assert neutralise_cell(None) == ""


def test_encode_image_round_trip_and_bad_extensions() -> None:
    np.testing.assert_array_equal(
        cv2.cvtColor(
            cv2.imdecode(np.frombuffer(encode_image(RGB, ".PNG"), np.uint8), cv2.IMREAD_COLOR),
            cv2.COLOR_BGR2RGB,
        ),
        RGB,
    )
    for extension in (".txt", "", ".jp\udce9g", "png"):
        with pytest.raises(ConfigurationError, match="unsupported image extension"):
            encode_image(RGB, extension)
    with pytest.raises(ConfigurationError, match=r"RGB uint8 \(H, W, 3\)"):
        encode_image(RGB[:, :, 0], ".png")


def test_existing_file_kept_without_overwrite_replaced_with_it(tmp_path: Path) -> None:
    target = tmp_path / "out" / "a.png"
    target.parent.mkdir()
    target.write_bytes(b"the user's file")
    writer = OutputWriter(tmp_path / "out")
    with pytest.raises(OutputError, match=r"already exists .*pass --overwrite"):
        writer.write_image(target, RGB)
    assert target.read_bytes() == b"the user's file"
    with pytest.raises(OutputError, match="1 planned output file already exists"):
        writer.check_planned([target, tmp_path / "out" / "new.png"])
    OutputWriter(tmp_path / "out").check_planned([tmp_path / "out" / "new.png"])  # fine
    assert not (tmp_path / "out" / "new.png").exists()  # a check creates nothing
    replacing = OutputWriter(tmp_path / "out", overwrite=True)
    replacing.check_planned([target])
    assert replacing.write_image(target, RGB) == target
    np.testing.assert_array_equal(read_rgb(target), RGB)
    assert sorted(p.name for p in target.parent.iterdir()) == ["a.png"]  # no temporary left


def test_check_planned_counts_and_names_one(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    paths = [out / f"{i}.jpg" for i in range(5)]
    for path in paths[1:4]:
        path.write_bytes(b"x")
    with pytest.raises(OutputError) as info:
        OutputWriter(out).check_planned(paths)
    message = str(info.value)
    assert "3 planned output files already exist" in message
    assert repr(str(paths[1])) in message
    assert "--overwrite" in message and "overwrite=True" in message


def test_symlink_at_the_file_name_is_never_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim.png"
    victim.write_bytes(b"precious")
    out = tmp_path / "out"
    out.mkdir()
    link = out / "a.png"
    link.symlink_to(victim)
    with pytest.raises(OutputError, match="already exists \\(a symbolic link\\)"):
        OutputWriter(out).write_image(link, RGB)
    with pytest.raises(OutputError, match="1 planned output file already exists"):
        OutputWriter(out).check_planned([link])
    assert victim.read_bytes() == b"precious" and link.is_symlink()
    # with overwrite the link itself is replaced by a regular file; its target is untouched
    OutputWriter(out, overwrite=True).write_image(link, RGB)
    assert not link.is_symlink() and victim.read_bytes() == b"precious"
    np.testing.assert_array_equal(read_rgb(link), RGB)
    # a dangling link: nothing is created at its target
    dangling = out / "b.png"
    dangling.symlink_to(tmp_path / "created-through-link.png")
    with pytest.raises(OutputError, match="already exists"):
        OutputWriter(out).write_image(dangling, RGB)
    assert not (tmp_path / "created-through-link.png").exists()


def test_symlinked_folder_is_refused_even_with_overwrite(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "a.png").write_bytes(b"precious")
    out = tmp_path / "out"
    out.mkdir()
    (out / "sub").symlink_to(elsewhere, target_is_directory=True)
    for overwrite in (False, True):
        writer = OutputWriter(out, overwrite=overwrite)
        with pytest.raises(OutputError, match="'.*sub' is a symbolic link; camkit never writes"):
            writer.check_planned([out / "sub" / "a.png"])
        with pytest.raises(OutputError, match="is a symbolic link"):
            writer.write_image(out / "sub" / "a.png", RGB)
        with pytest.raises(OutputError, match="is a symbolic link"):
            writer.write_image(out / "sub" / "new" / "b.png", RGB)
        with pytest.raises(OutputError, match="is a symbolic link"):
            writer.open_csv(out / "sub" / "r.csv")
    assert sorted(p.name for p in elsewhere.iterdir()) == ["a.png"]
    assert (elsewhere / "a.png").read_bytes() == b"precious"
    # the output folder itself may be a link: the user chose it
    chosen = tmp_path / "chosen"
    chosen.symlink_to(elsewhere, target_is_directory=True)
    OutputWriter(chosen).write_image(chosen / "deep" / "c.png", RGB)
    np.testing.assert_array_equal(read_rgb(elsewhere / "deep" / "c.png"), RGB)


def test_output_folder_that_cannot_be_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    afile = tmp_path / "file"
    afile.write_text("x")
    with pytest.raises(OutputError, match="'.*file' is a file, not a folder; choose a folder"):
        OutputWriter(afile).check_planned([afile / "a.png"])
    with pytest.raises(OutputError, match="cannot create the output folder .*is a file"):
        OutputWriter(afile / "sub").write_image(afile / "sub" / "a.png", RGB)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "x").write_text("a file where a folder is needed")
    with pytest.raises(OutputError, match="a file of that name exists"):
        OutputWriter(tmp_path / "out").write_image(tmp_path / "out" / "x" / "a.png", RGB)
    (tmp_path / "out" / "dir.png").mkdir()
    with pytest.raises(OutputError, match="a folder of that name exists"):
        OutputWriter(tmp_path / "out", overwrite=True).check_planned([tmp_path / "out/dir.png"])
    with pytest.raises(ConfigurationError, match="outside the output folder"):
        OutputWriter(tmp_path / "out").write_image(tmp_path / "a.png", RGB)
    # a folder that cannot be written to (faked: the tests may run as root)
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda p, mode: False if Path(p) == locked else real_access(p, mode)
    )
    with pytest.raises(OutputError, match="permission denied: cannot write to the output"):
        OutputWriter(locked).check_planned([locked / "a.png"])
    with pytest.raises(OutputError, match="permission denied: cannot write to the folder"):
        OutputWriter(locked / "new").check_root()


def test_permission_refused_while_writing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_open = os.open

    def refuse(path: str, flags: int, mode: int = 0o777, **kwargs: object) -> int:
        if Path(path).parent == tmp_path:
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_open(path, flags, mode, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(OutputError, match="permission denied: could not create '.*a.png'"):
        OutputWriter(tmp_path).write_image(tmp_path / "a.png", RGB)


def failing_write_all(monkeypatch: pytest.MonkeyPatch, fail_at: set[int]) -> None:
    """Make the writes numbered in ``fail_at`` (1-based) write half their bytes, then fail:
    a full disk."""
    real = output_module._write_all
    calls: list[int] = []

    def write_all(fd: int, data: bytes) -> None:
        calls.append(len(data))
        if len(calls) in fail_at:
            os.write(fd, data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fd, data)

    monkeypatch.setattr(output_module, "_write_all", write_all)


def test_disk_full_keeps_every_complete_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    failing_write_all(monkeypatch, {4})  # the header, two rows, then the third row
    path = tmp_path / "report.csv"
    writer = OutputWriter(tmp_path).open_csv(path, ["image", "confidence"])
    writer.writerow(["a.jpg", 0.5])
    writer.writerow(["b.jpg", 0.25])
    with pytest.raises(OutputError) as info:
        writer.writerow(["c.jpg" * 50, 0.125])
    message = str(info.value)
    assert message.startswith("the disk is full: could not write a row of")
    assert "2 complete rows are kept" in message and "Free some space" in message
    assert path.read_bytes() == b"image,confidence\r\na.jpg,0.5\r\nb.jpg,0.25\r\n"
    with pytest.raises(OutputError, match="is closed"):
        writer.writerow(["d.jpg", 1.0])


def test_disk_full_while_writing_an_image_leaves_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    failing_write_all(monkeypatch, {1, 2})
    for overwrite in (False, True):
        with pytest.raises(OutputError, match="the disk is full: could not write '.*a.png'"):
            OutputWriter(tmp_path, overwrite=overwrite).write_image(tmp_path / "a.png", RGB)
        assert list(tmp_path.iterdir()) == []


def test_report_writer_rules(tmp_path: Path) -> None:
    report = tmp_path / "r.csv"
    with ReportWriter(report):
        pass
    assert report.read_bytes() == (",".join(REPORT_COLUMNS) + "\r\n").encode()
    with pytest.raises(OutputError, match="already exists"):
        ReportWriter(report)
    victim = tmp_path / "victim.csv"
    victim.write_text("precious")
    report.unlink()
    report.symlink_to(victim)
    with pytest.raises(OutputError, match="already exists \\(a symbolic link\\)"):
        ReportWriter(report)
    ReportWriter(report, overwrite=True).close()
    assert victim.read_text() == "precious" and not report.is_symlink()
    assert isinstance(ReportWriter(tmp_path / "s.csv"), CsvWriter)


def test_report_cells_are_neutralised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Image paths, overlay paths and class names that start with = + - @, a tab or a CR
    are neutralised in the report; the numbers are not."""
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    for i, text in enumerate(FORMULAS):
        pixels = rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(f"{text}{i}.png")
    torch.manual_seed(0)
    model = SmallCNN(classes=len(FORMULAS))
    explainer = Explainer(model, class_names=FORMULAS, device="cpu")
    jobs = plan_outputs(find_images(["."]), "-out")  # relative: the paths start with them
    assert sorted(str(job.source)[0] for job in jobs) == sorted(t[0] for t in FORMULAS)
    report = Path("-out") / "report.csv"
    results = explain_files(explainer, jobs, report=report, progress=False)
    with report.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(FORMULAS)
    for row, result in zip(rows, results, strict=True):
        e = result.explanation
        assert e is not None and result.heatmap is not None
        assert row["image"] == "'" + str(result.image)
        assert row["heatmap"] == "'" + str(result.heatmap)
        assert row["pred_name"] == "'" + FORMULAS[e.pred_class]
        assert row["pred_class"] == str(e.pred_class) and row["target"] == str(e.target)
        assert float(row["confidence"]) == pytest.approx(e.confidence, abs=1e-6)
    # every class name, as the predicted one (the names turned so that each gets its turn)
    single = [job for job in jobs if str(job.source).startswith("@")]
    pred = explainer.explain(single[0].source).pred_class
    with ReportWriter(tmp_path / "names.csv") as writer:
        for name in FORMULAS:
            names = [name if k == pred else "x" for k in range(len(FORMULAS))]
            named = Explainer(model, class_names=names, device="cpu")
            [result] = explain_files(named, single, save=False, progress=False)
            writer.write(result)
    with (tmp_path / "names.csv").open(newline="", encoding="utf-8") as handle:
        cells = [row["pred_name"] for row in csv.DictReader(handle)]
    assert cells == ["'" + name for name in FORMULAS]
    # numbers are exempt
    with OutputWriter(tmp_path).open_csv(tmp_path / "n.csv") as csv_writer:
        csv_writer.writerow([Path("-rf.jpg"), -0.5, -3, "-0.5"])
    assert (tmp_path / "n.csv").read_bytes() == b"'-rf.jpg,-0.5,-3,'-0.5\r\n"


def test_check_outputs_with_top_counts_class_files(tmp_path: Path) -> None:
    image = tmp_path / "in" / "a.jpg"
    image.parent.mkdir()
    Image.fromarray(RGB).save(image)
    jobs = plan_outputs([(image, image.parent)], tmp_path / "out", suffix="_gradcampp")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a_gradcampp_class7.jpg").write_bytes(b"x")
    (tmp_path / "out" / "a_gradcampp_classic.jpg").write_bytes(b"x")  # not a class file
    check_outputs(jobs)  # a_gradcampp.jpg does not exist
    with pytest.raises(OutputError, match="1 planned output file already exists.*class7"):
        check_outputs(jobs, by_class=True)
    check_outputs(jobs, by_class=True, overwrite=True)
    with pytest.raises(OutputError, match="2 planned output files already exist"):
        check_outputs(jobs, tmp_path / "out" / "a_gradcampp_classic.jpg", by_class=True)


@pytest.mark.skipif(sys.platform != "linux", reason="needs a file system that takes any bytes")
def test_name_that_is_not_utf8_is_written_and_read_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """OpenCV crashed (SIGSEGV) on such names: images are encoded in memory and written by
    Python; printing and reporting the name does not raise."""
    from camkit.tools.cli import main

    folder = tmp_path / "in"
    folder.mkdir()
    name = os.fsdecode(b"caf\xe9.jpg")
    Image.fromarray(np.full((40, 30, 3), 120, np.uint8)).save(folder / name)
    out = tmp_path / "out"
    args = ["--model", "resnet18", "--input-size", "32", "32", "--device", "cpu"]
    code = main(["explain", str(folder), *args, "--out", str(out), "--report", "--no-progress"])
    assert code == 0
    assert sorted(os.listdir(os.fsencode(out))) == [b"caf\xe9_gradcampp.jpg", b"gradcam_report.csv"]
    assert read_rgb(out / os.fsdecode(b"caf\xe9_gradcampp.jpg")).shape == (40, 30, 3)
    printed = capsys.readouterr()
    assert "caf\\udce9.jpg -> " in printed.out and "caf\\udce9_gradcampp.jpg" in printed.out
    rows = list(csv.DictReader((out / "gradcam_report.csv").open(encoding="utf-8")))
    assert [row["image"] for row in rows] == [str(folder / "caf\\udce9.jpg")]


def test_explanation_save_follows_the_rules(tmp_path: Path) -> None:
    torch.manual_seed(0)
    explanation = Explainer(SmallCNN(), device="cpu").explain(RGB.repeat(8, 0).repeat(8, 1))
    target = tmp_path / "deep" / "x.png"
    assert explanation.save(target, alpha=0.3) == target
    np.testing.assert_array_equal(read_rgb(target), explanation.overlay(0.3))
    with pytest.raises(OutputError, match="already exists .*overwrite=True"):
        explanation.save(target, alpha=1.0)
    np.testing.assert_array_equal(read_rgb(target), explanation.overlay(0.3))  # kept
    explanation.save(target, alpha=1.0, overwrite=True)
    np.testing.assert_array_equal(read_rgb(target), explanation.overlay(1.0))
    victim = tmp_path / "victim.png"
    victim.write_bytes(b"precious")
    (tmp_path / "link.png").symlink_to(victim)
    with pytest.raises(OutputError, match="a symbolic link"):
        explanation.save(tmp_path / "link.png")
    explanation.save(tmp_path / "link.png", overwrite=True)
    assert victim.read_bytes() == b"precious" and not (tmp_path / "link.png").is_symlink()
    with pytest.raises(ConfigurationError, match="cannot write '.*x.txt': unsupported image"):
        explanation.save(tmp_path / "x.txt")
