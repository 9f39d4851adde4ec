"""One folder run over every kind of bad file at once: each bad file is an error row, every
good image keeps exactly the result it gets in a run without the bad files."""

from __future__ import annotations

import csv
import io
import os
import shutil
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from PIL import Image

from camkit.tools.cli import main

NON_UTF8 = os.fsdecode(b"h_caf\xe9.jpg")


def _png_bomb(path: Path) -> None:
    """A PNG header that declares 100,000 × 100,000 pixels and holds almost nothing."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 16))
        + chunk(b"IEND", b"")
    )


def _good_images(folder: Path) -> list[str]:
    """Write the good images, of every odd but valid kind; return their names."""
    rng = np.random.default_rng(0)

    def rgb(height: int = 48, width: int = 64) -> np.ndarray:
        return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)

    Image.fromarray(rgb()).save(folder / "a_good.jpg")
    grey16 = rng.integers(0, 65536, (40, 56), dtype=np.uint16)
    Image.fromarray(grey16).save(folder / "f_16bit.png")  # mode I;16
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated: the viewer turns it upright
    Image.fromarray(rgb(30, 60)).save(folder / "g_exif.jpg", exif=exif)
    Image.fromarray(rgb()).save(folder / '=HYPERLINK("http-x").jpg')
    Image.fromarray(rgb()).save(folder / "<img src=x onerror=alert(1)>.png")
    Image.fromarray(rgb(1, 1)).save(folder / "k_tiny.png")
    Image.fromarray(rgb()).convert("CMYK").save(folder / "l_cmyk.jpg")
    Image.fromarray(rgb()).convert("P").save(folder / "m_palette.png")
    Image.fromarray(rng.integers(0, 256, (48, 64, 4), dtype=np.uint8), "RGBA").save(
        folder / "n_rgba.png"
    )
    names = [
        "a_good.jpg",
        "f_16bit.png",
        "g_exif.jpg",
        '=HYPERLINK("http-x").jpg',
        "<img src=x onerror=alert(1)>.png",
        "k_tiny.png",
        "l_cmyk.jpg",
        "m_palette.png",
        "n_rgba.png",
    ]
    if sys.platform.startswith("linux"):
        Image.fromarray(rgb()).save(folder / NON_UTF8)
        names.append(NON_UTF8)
    return names


def _bad_files(folder: Path) -> list[str]:
    """Write one file of every bad kind; return their names."""
    (folder / "b_corrupt.jpg").write_bytes(np.random.default_rng(1).bytes(2000))
    (folder / "c_empty.png").write_bytes(b"")
    whole = io.BytesIO()
    Image.fromarray(np.full((64, 64, 3), 90, np.uint8)).save(whole, "JPEG")
    (folder / "d_truncated.jpg").write_bytes(whole.getvalue()[: len(whole.getvalue()) // 3])
    _png_bomb(folder / "e_bomb.png")
    (folder / "i_text.jpg").write_text("not an image")
    (folder / "j_html.png").write_text("<html><body>a web page saved as .png</body></html>")
    return [
        "b_corrupt.jpg",
        "c_empty.png",
        "d_truncated.jpg",
        "e_bomb.png",
        "i_text.jpg",
        "j_html.png",
    ]


def _written(name: str) -> str:
    """A file name as the report writes it: undecodable bytes as ``\\udcXX`` escapes."""
    return name.encode("utf-8", "backslashreplace").decode("utf-8")


def _rows(report: Path) -> dict[str, dict[str, str]]:
    with report.open(encoding="utf-8", newline="") as handle:
        return {Path(row["image"].lstrip("'")).name: row for row in csv.DictReader(handle)}


def test_a_run_over_every_kind_of_bad_file_keeps_every_good_result(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    torch.manual_seed(0)
    torch.save(timm.create_model("resnet18", num_classes=3).state_dict(), tmp_path / "w.pth")
    mixed, clean = tmp_path / "mixed", tmp_path / "clean"
    mixed.mkdir()
    good = _good_images(mixed)
    bad = _bad_files(mixed)
    clean.mkdir()
    for name in good:
        shutil.copy(mixed / name, clean / name)
    model = ["--model", "resnet18", "--weights", str(tmp_path / "w.pth"), "--device", "cpu"]
    common = [*model, "--input-size", "64", "64", "--batch-size", "4", "--no-progress"]

    code = main(
        ["explain", str(mixed), *common, "--out", str(tmp_path / "o1"), "--report", "--html"]
    )
    err = capsys.readouterr().err
    assert code == 1  # some inputs failed, the others were done
    assert main(["explain", str(clean), *common, "--out", str(tmp_path / "o2"), "--report"]) == 0
    capsys.readouterr()

    rows, reference = (
        _rows(tmp_path / "o1" / "gradcam_report.csv"),
        _rows(tmp_path / "o2" / "gradcam_report.csv"),
    )
    assert sorted(rows) == sorted(map(_written, good + bad))  # a row for every file
    for name in bad:
        assert rows[name]["error"].startswith("'InputError: ") or rows[name]["error"].startswith(
            "InputError: "
        ), (name, rows[name]["error"])
        assert rows[name]["heatmap"] == "" and rows[name]["pred_class"] == ""
        assert repr(str(mixed / name)) in err or name in err
    for name in good:
        row, expected = rows[_written(name)], reference[_written(name)]
        assert row["error"] == "", (name, row["error"])
        assert row["pred_class"] == expected["pred_class"]
        assert float(row["confidence"]) == pytest.approx(float(expected["confidence"]), abs=1e-6)
        assert row["heatmap"] == expected["heatmap"].replace("o2", "o1", 1) != ""
        overlay = tmp_path / "o1" / f"{Path(name).stem}_gradcampp.jpg"
        twin = tmp_path / "o2" / overlay.name
        # batches of other images than in the clean run: the same overlay up to float32
        # summation order (a map value on a rounding edge may move one level)
        ours = np.asarray(Image.open(overlay), np.int16)
        theirs = np.asarray(Image.open(twin), np.int16)
        assert ours.shape == theirs.shape and np.abs(ours - theirs).mean() < 0.5, name
    # no cell a spreadsheet would run as a formula; the page holds every row and escapes the markup
    cells = [cell for row in rows.values() for cell in row.values()]
    assert not [c for c in cells if c[:1] in ("=", "+", "@", "\t", "\r")]
    page = (tmp_path / "o1" / "index.html").read_text(encoding="utf-8")
    assert "<img src=x onerror" not in page
    assert f"explained {len(good)} of {len(good) + len(bad)} images" in err
