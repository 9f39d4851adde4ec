"""The documented examples run and produce what they say."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
from PIL import Image

EXAMPLES = Path(__file__).resolve().parent.parent / "docs" / "examples"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quickstart(tmp_path: Path) -> None:
    path = load("quickstart").main(str(tmp_path / "out"))
    assert Image.open(path).size == (320, 240)


def test_seed_examples(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    load("example_gradcam").main(str(tmp_path / "project"))
    project = tmp_path / "project"
    out = capsys.readouterr().out
    assert "2. processed 4 of 4 images" in out
    assert Image.open(project / "cam_output" / "sample_gradcam.jpg").size == (320, 240)
    rows = list(csv.DictReader((project / "cam_output/batch_analysis/gradcam_report.csv").open()))
    assert len(rows) == 4 and all(r["pred_name"] in ("normal", "abnormal") for r in rows)
    assert Image.open(project / "test_gradcam.jpg").size == (320, 260)
    compared = sorted(p.name for p in (project / "cam_output" / "compare").iterdir())
    assert compared == [
        f"{b}_gradcam.jpg"
        for b in sorted(["efficientnet_b0", "inception_resnet_v2", "mobilenetv2", "resnet50"])
    ]
    assert "4. mobilenetv2          layer features.18" in out
    assert "4. inception_resnet_v2  layer conv2d_7b" in out
