"""``camkit demo``: the page, its images, the report, and a real render in headless Chromium."""

from __future__ import annotations

import base64
import csv
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from chromium import dump_dom, with_probe

from camkit import Explainer
from camkit.demo.model import load_model
from camkit.demo.report import DEMO_SCENES, demo_scenes, run_demo
from camkit.errors import ConfigurationError
from camkit.render import colorbar
from camkit.tools.cli import main

PROBE = """<script>
window.addEventListener('load', () => {
  const images = [...document.images];
  const loaded = images.filter((i) => i.complete && i.naturalWidth > 0).length;
  const table = document.querySelector('table').getBoundingClientRect().width;
  const share = Math.round((100 * table) / document.documentElement.clientWidth);
  document.title = 'loaded ' + loaded + ' of ' + images.length + ', table ' + share + '%';
});
</script>"""


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    assert main(["demo", "--out", str(out)]) == 0
    return out / "index.html"


DATA_PNG = "data:image/png;base64,"


def decode_png_uri(uri: str) -> np.ndarray:
    assert uri.startswith(DATA_PNG)
    data = np.frombuffer(base64.b64decode(uri.removeprefix(DATA_PNG), validate=True), np.uint8)
    return cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def sources_of(page: Path) -> tuple[list[str], list[str]]:
    """The page's image files and its embedded images (data URIs)."""
    sources = re.findall(r'<img src="([^"]+)"', page.read_text(encoding="utf-8"))
    embedded = [s for s in sources if s.startswith("data:")]
    return [s for s in sources if not s.startswith("data:")], embedded


def test_page_is_static_with_relative_images(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    files, embedded = sources_of(page)
    assert len(files) == 3 * len(DEMO_SCENES)  # original + two methods per scene
    for source in files:
        assert "/" not in source and ":" not in source  # relative, same folder
        assert (page.parent / source).is_file()
    assert {f.rsplit("_", 1)[1] for f in files} == {"original.png", "gradcampp.png", "gradcam.png"}
    assert not re.search(r"https?://|<link|<script", text)  # no external resources
    # the colour legend: JET's colour bar from 0 to 1, embedded
    [legend] = embedded
    np.testing.assert_array_equal(decode_png_uri(legend), colorbar("jet", vertical=False))
    assert "Colour legend (jet)" in text
    assert "<span>0</span><img" in text and "<span>1</span>" in text
    assert "low &rarr; high attribution" in text


def test_demo_with_another_colormap(tmp_path: Path) -> None:
    args = ["--out", str(tmp_path), "--method", "gradcam", "--colormap", "viridis"]
    assert main(["demo", *args]) == 0
    page = tmp_path / "index.html"
    files, [legend] = sources_of(page)
    np.testing.assert_array_equal(decode_png_uri(legend), colorbar("viridis", vertical=False))
    scene = demo_scenes()[0]
    assert f"{scene.name}_gradcam.png" in files
    model = load_model()
    explanation = Explainer(model, method="gradcam", renderer="viridis", device="cpu").explain(
        scene.image
    )
    written = cv2.imread(str(tmp_path / f"{scene.name}_gradcam.png"))[:, :, ::-1]
    np.testing.assert_array_equal(written, explanation.overlay(0.5))
    with pytest.raises(ConfigurationError, match="distinct file names"):
        run_demo(tmp_path, methods=("gradcam++", "gradcampp"))


def test_report_and_pointing(page: Path) -> None:
    rows = list(csv.DictReader((page.parent / "demo_report.csv").open(encoding="utf-8")))
    assert len(rows) == 2 * len(DEMO_SCENES)
    assert {r["method"] for r in rows} == {"gradcam++", "gradcam"}
    correct = [r for r in rows if r["pred_name"] == r["true_class"]]
    assert len(correct) >= len(rows) - 2
    hits = [r for r in rows if r["method"] == "gradcam++" and r["max_in_box"] == "1"]
    assert len(hits) >= len(DEMO_SCENES) - 1


def test_page_renders_in_chromium(page: Path, tmp_path: Path) -> None:
    """Every image loads, and the table spans the window's width (less the page's padding)."""
    done = dump_dom(with_probe(page, body=PROBE), tmp_path / "profile")
    total = 3 * len(DEMO_SCENES) + 1  # and the colour legend
    found = re.search(r"<title>loaded (\d+) of (\d+), table (\d+)%</title>", done.stdout)
    assert found is not None, done.stderr[-2000:]
    assert (int(found[1]), int(found[2])) == (total, total)
    assert int(found[3]) >= 95  # the full width; it was a fixed 3 × 192 px before
