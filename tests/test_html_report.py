"""The HTML report of a folder run (``camkit explain --html``): thumbnails, links, escaping,
files, and the page at work in headless Chromium."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote_to_bytes

import attrs
import cv2
import numpy as np
import pytest
import timm
import torch
from chromium import CONSOLE_LINE, ERROR_PROBE, dump_dom, title_json, with_probe
from PIL import Image

from camkit import Explainer
from camkit.demo import load_model, make_scene
from camkit.errors import ConfigurationError, InputError, OutputError
from camkit.explanation import Explanation
from camkit.preprocess import load_rgb
from camkit.tools.batch import FileResult, find_images, plan_outputs
from camkit.tools.cli import main
from camkit.tools.html_report import (
    HtmlReport,
    ReportRow,
    _href,
    render_page,
    write_html_report,
)

HOSTILE = "<img src=x onerror=alert(1)>.png"
QUOTED = 'it\'s "50%" #1?.png'
NON_UTF8 = os.fsdecode(b"caf\xe9.png")
SIZE = (320, 240)  # (width, height) of the test images: thumbnails shrink them to 160 × 120


@attrs.frozen
class Run:
    source: Path
    out: Path
    results: list[FileResult]
    page: Path


def _write_overlay(path: Path, explanation: Explanation) -> None:
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(explanation.overlay(0.5), cv2.COLOR_RGB2BGR))
    assert ok
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encoded.tobytes())  # Python writes odd names; OpenCV may not


def _explain_folder(source: Path, out: Path) -> list[FileResult]:
    """What explain_files gives, with the overlays written by Python (non-UTF-8 names)."""
    model = load_model()
    explainer = Explainer(model, class_names=model.class_names, device="cpu")
    jobs = plan_outputs(find_images([source], recursive=True), out, suffix="_gradcampp")
    results = []
    for job in jobs:
        try:
            image = load_rgb(job.source)
        except InputError as error:
            results.append(FileResult(job.source, None, None, f"InputError: {error}"))
            continue
        explanation = explainer.explain(image)
        _write_overlay(job.output, explanation)
        results.append(FileResult(job.source, job.output, explanation, None))
    return results


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """Nine files outside the output folder: scenes with plain, hostile, quoted and non-UTF-8
    names, one in a subfolder, and one that is no image."""
    root = tmp_path_factory.mktemp("html")
    source = root / "data" / "test"
    (source / "sub").mkdir(parents=True)
    names = ["a.png", "b.png", "c.png", "d.png", "sub/e.png", HOSTILE, QUOTED, NON_UTF8]
    for seed, name in enumerate(names, start=1_000_000):
        image = cv2.resize(make_scene(seed)[0], SIZE, interpolation=cv2.INTER_NEAREST)
        Image.fromarray(image).save(source / name)
    (source / "bad.jpg").write_text("not an image")
    out = root / "out" / "run1"
    results = _explain_folder(source, out)
    page = write_html_report(
        results, out, method="gradcam++", page_size=4, details={"model": "<b>demonet</b>"}
    )
    return Run(source, out, results, page)


def page_data(page: Path) -> dict[str, Any]:
    """The rows embedded in the page, decoded as the page's script does."""
    text = page.read_text(encoding="utf-8")
    found = re.search(
        r'<script type="application/json" id="camkit-data">(.*?)</script>', text, re.DOTALL
    )
    assert found is not None
    data: dict[str, Any] = json.loads(found.group(1))
    keys = ["path", "image", "overlay", "thumb", "pred", "conf", "target", "layer", "method"]
    data["rows"] = [dict(zip([*keys, "error"], row, strict=True)) for row in data["rows"]]
    return data


def resolve(out: Path, href: str) -> Path:
    """The file a relative link of the page points to."""
    return out / os.fsdecode(unquote_to_bytes(href))


def test_rows_links_and_thumbnails(run: Run) -> None:
    data = page_data(run.page)
    rows = data["rows"]
    assert len(rows) == len(run.results) == 9
    assert data["names"] == {"0": "circle", "1": "square", "2": "triangle", "3": "star"}
    assert data["layers"] == ["layer2"] and data["methods"] == ["gradcam++"]
    assert data["pageSize"] == 4 and data["sep"] == os.sep
    for row, result in zip(rows, run.results, strict=True):
        # every link is relative, percent-encoded, and reaches its file
        assert row["image"].startswith("../../data/test/")
        assert resolve(run.out, row["image"]).resolve() == result.image.resolve()
        e = result.explanation
        if e is None:
            assert row["error"].startswith("InputError: cannot read")
            assert (row["overlay"], row["thumb"], row["pred"], row["conf"]) == (None,) * 4
            continue
        assert row["error"] is None
        assert resolve(run.out, row["overlay"]) == result.heatmap
        assert (row["pred"], row["target"]) == (e.pred_class, e.target)
        assert row["conf"] == pytest.approx(e.confidence, abs=1e-6)
        thumb = resolve(run.out, row["thumb"])
        assert thumb.relative_to(run.out).parts[0] == "thumbs"
        assert thumb.name == result.heatmap.stem + ".thumb.jpg"  # type: ignore[union-attr]
        shrunk = cv2.resize(e.overlay(0.5), (160, 120), interpolation=cv2.INTER_AREA)
        written = cv2.imdecode(np.fromfile(thumb, np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1]
        assert written.shape == (120, 160, 3)
        # the overlay, shrunk: JPEG adds about 4 levels; another colormap would be ~30 off
        assert np.abs(written.astype(int) - shrunk).mean() < 8
    by_name = {Path(row["path"]).name: row for row in rows}
    # the subfolder is mirrored in thumbs/; odd names are percent-encoded from their bytes
    assert by_name["e.png"]["thumb"] == "thumbs/sub/e_gradcampp.thumb.jpg"
    assert by_name[HOSTILE]["image"].endswith("/%3Cimg%20src%3Dx%20onerror%3Dalert%281%29%3E.png")
    assert by_name[QUOTED]["image"].endswith("/it%27s%20%2250%25%22%20%231%3F.png")
    assert "caf\\xe9.png" in by_name  # shown with the undecodable byte written out
    assert by_name["caf\\xe9.png"]["image"].endswith("/caf%E9.png")
    assert by_name["caf\\xe9.png"]["thumb"] == "thumbs/caf%E9_gradcampp.thumb.jpg"


def test_page_is_offline_and_escaped(run: Run) -> None:
    text = run.page.read_text(encoding="utf-8")
    assert not re.search(r"https?://|<link|@import|url\(|<script[^>]*\bsrc=", text)
    assert re.findall(r'<img[^>]*src="([^"]*)"', text) == [
        re.search(r'id="colorbar" src="([^"]*)"', text).group(1)  # type: ignore[union-attr]
    ]
    assert text.count("<script") == 2 and text.count("</script>") == 2
    # a file name holding markup is data, not markup
    assert "<img src=x" not in text and "\\u003cimg src=x onerror=alert(1)\\u003e.png" in text
    assert "<b>demonet</b>" not in text and "&lt;b&gt;demonet&lt;/b&gt;" in text
    assert "Colour legend (jet)" in text and "low &rarr; high attribution" in text
    assert "9 results from 9 images; 1 failed." in text


def test_script_data_cannot_end_the_script() -> None:
    nasty = "</script><script>alert(1)</script><!-- \u2028 'quote\" &amp; \udce9"
    rows = [
        ReportRow(image=nasty, image_href="x.png", error=nasty),
        ReportRow(image="ok.png", image_href="ok.png", pred_class=1, confidence=float("nan")),
    ]
    text = render_page(rows, title="</title><script>", class_names=["<i>c</i>", nasty])
    assert text.count("</script>") == 2 and "<!--" not in text and "<i>" not in text
    assert "<title>&lt;/title&gt;&lt;script&gt;</title>" in text
    text.encode("ascii", "strict")  # nothing but ASCII in the page's data and header
    found = re.search(r'id="camkit-data">(.*?)</script>', text, re.DOTALL)
    data = json.loads(found.group(1))  # type: ignore[union-attr]
    assert data["rows"][0][0] == nasty.replace("\udce9", "\\xe9")
    assert data["rows"][0][9] == data["rows"][0][0]
    assert data["rows"][1][5] is None  # a NaN confidence is no number, and no JSON error
    assert data["names"] == {"0": "<i>c</i>", "1": data["rows"][0][0]}


@pytest.mark.parametrize(
    ("target", "page", "href"),
    [
        ("out/a_gradcampp.jpg", "out", "a_gradcampp.jpg"),
        ("out/sub/a b.jpg", "out", "sub/a%20b.jpg"),
        ("data/x/a.png", "out/run", "../../data/x/a.png"),
        ("data/100%#?:.png", "out", "../data/100%25%23%3F%3A.png"),
        (os.fsdecode(b"caf\xe9.png"), "out", "../caf%E9.png"),
        ("caf\u00e9.png", "out", "../caf%C3%A9.png"),
    ],
)
def test_links_are_relative_and_percent_encoded(
    tmp_path: Path, target: str, page: str, href: str
) -> None:
    assert _href(tmp_path / target, tmp_path / page) == href


def test_thumbnails_are_made_small_and_named_apart(
    run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No full-size overlay is made (memory); names never collide."""

    def no_full_overlay(self: Explanation, alpha: float = 0.5) -> None:
        raise AssertionError("the report must not render a full-size overlay")

    monkeypatch.setattr(Explanation, "overlay", no_full_overlay)
    by_name = {r.image.name: r for r in run.results}
    first, second = by_name["a.png"].image, by_name["b.png"].image
    done = [by_name["a.png"], by_name["b.png"]]
    report = HtmlReport(tmp_path / "out", thumb_size=40, alpha=1.0)
    outside = tmp_path / "elsewhere" / "b_gradcampp.jpg"
    rows = [
        report.add(FileResult(first, None, done[0].explanation, None)),
        report.add(FileResult(first, None, done[0].explanation, None)),
        report.add(FileResult(second, outside, done[1].explanation, None)),
        report.add(FileResult(second, outside, done[1].explanation, None)),
    ]
    assert [row.thumb_href for row in rows] == [
        "thumbs/a.thumb.jpg",
        "thumbs/a_2.thumb.jpg",
        "thumbs/b_gradcampp.thumb.jpg",
        "thumbs/b_gradcampp_2.thumb.jpg",
    ]
    assert [row.overlay_href for row in rows] == [None, None, *["../elsewhere/b_gradcampp.jpg"] * 2]
    thumb = cv2.imread(str(tmp_path / "out" / "thumbs" / "a.thumb.jpg"))
    assert thumb.shape == (30, 40, 3)  # 320 × 240 shrunk to 40 on the longer side
    page = report.write()
    assert [row["thumb"] for row in page_data(page)["rows"]] == [r.thumb_href for r in rows]


def test_never_overwrites_unless_asked_nor_writes_through_symlinks(
    run: Run, tmp_path: Path
) -> None:
    with pytest.raises(OutputError, match=r"index\.html' already exists; pass --overwrite"):
        write_html_report(run.results, run.out)
    out = tmp_path / "out"
    write_html_report(run.results[:2], out)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    (out / "index.html").unlink()
    with pytest.raises(OutputError, match=r"_gradcampp\.thumb\.jpg' already exists"):
        write_html_report(run.results[:2], out)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == {
        p: b for p, b in before.items() if p.name != "index.html"
    }
    page = write_html_report(run.results[:3], out, overwrite=True)
    assert len(page_data(page)["rows"]) == 3
    assert not [p for p in out.rglob("*.tmp")]

    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("mine")
    planted = tmp_path / "planted"
    planted.mkdir()
    (planted / "thumbs").symlink_to(victim, target_is_directory=True)
    with pytest.raises(OutputError, match="symbolic link; camkit never writes through one"):
        write_html_report(run.results[:1], planted)
    assert [p.name for p in victim.iterdir()] == ["keep.txt"]
    (planted / "thumbs").unlink()
    (planted / "index.html").symlink_to(victim / "keep.txt")
    with pytest.raises(OutputError, match="index\\.html"):
        write_html_report(run.results[:1], planted)
    assert (victim / "keep.txt").read_text() == "mine"
    # overwrite replaces the link itself with the page, never the file it points to
    page = write_html_report(run.results[:1], planted, overwrite=True)
    assert not page.is_symlink() and "<html" in page.read_text()
    assert (victim / "keep.txt").read_text() == "mine"


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"alpha": 1.5}, r"alpha must lie in \[0, 1\], got 1.5"),
        ({"alpha": True}, r"alpha must lie in \[0, 1\], got True"),
        ({"thumb_size": 8}, "thumb_size must be an int >= 16, got 8"),
        ({"page_size": 0}, "page_size must be an int >= 1, got 0"),
        ({"page_size": 2.5}, "page_size must be an int >= 1, got 2.5"),
    ],
)
def test_bad_options(tmp_path: Path, option: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        write_html_report([], tmp_path, **option)
    assert not (tmp_path / "index.html").exists()


def test_output_folder_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="is a file; choose a folder for --out"):
        write_html_report([], tmp_path / "file")


def test_cli_html(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    torch.manual_seed(0)
    torch.save(timm.create_model("resnet18", num_classes=2).state_dict(), tmp_path / "w.pth")
    (tmp_path / "classes.txt").write_text("cat\ndog\n")
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)).save(photos / "ok.jpg")
    (photos / "bad.jpg").write_text("text")
    out = tmp_path / "out"
    model = ["--model", "resnet18", "--weights", str(tmp_path / "w.pth")]
    model += ["--classes", str(tmp_path / "classes.txt"), "--input-size", "64", "64"]
    args = ["explain", str(photos), *model, "--device", "cpu", "--out", str(out), "--html"]
    assert main(args) == 1  # bad.jpg failed
    err = capsys.readouterr().err
    assert f"camkit explain: open {(out / 'index.html').resolve().as_uri()}" in err
    data = page_data(out / "index.html")
    assert data["names"] == {"0": "cat", "1": "dog"}
    assert [(Path(r["path"]).name, r["error"] is None) for r in data["rows"]] == [
        ("bad.jpg", False),
        ("ok.jpg", True),
    ]
    assert data["rows"][1]["thumb"] == "thumbs/ok_gradcampp.thumb.jpg"
    assert data["rows"][1]["overlay"] == "ok_gradcampp.jpg"
    assert (out / "thumbs" / "ok_gradcampp.thumb.jpg").is_file()
    assert "<dt>model</dt><dd>resnet18</dd>" in (out / "index.html").read_text("utf-8")
    # without --html, no page
    assert main([*args[:-1], "--out", str(tmp_path / "plain")]) == 1
    assert not (tmp_path / "plain" / "index.html").exists()


DRIVER = """<script>
window.addEventListener('load', async function () {
  const out = {};
  const q = (s) => Array.from(document.querySelectorAll(s));
  const names = () => q('#grid .card .name').map((n) => n.title);
  const status = () => document.getElementById('status').textContent;
  function loaded(image) {  // load events: file fetches hold Chromium's virtual time
    if (image.complete) { return Promise.resolve(image.naturalWidth > 0 ? 1 : 0); }
    return new Promise((resolve) => {
      image.addEventListener('load', () => resolve(image.naturalWidth > 0 ? 1 : 0));
      image.addEventListener('error', () => resolve(0));
    });
  }
  async function loads(images) {
    images.forEach((i) => { i.loading = 'eager'; });
    const ok = await Promise.all(images.map(loaded));
    return ok.reduce((a, b) => a + b, 0);
  }
  function set(id, value) {
    const input = document.getElementById(id);
    input.value = value;
    input.dispatchEvent(new Event(input.tagName === 'INPUT' ? 'input' : 'change'));
    return { names: names(), status: status() };
  }
  out.colorbar = await loads([document.getElementById('colorbar')]);
  out.pages = [];
  const next = document.querySelector('.pager .next');
  for (;;) {
    const images = q('#grid img');
    out.pages.push({ names: names(), images: images.length, loaded: await loads(images),
      info: document.querySelector('.pager .info').textContent });
    if (next.disabled) { break; }
    next.click();
  }
  out.only = set('filter-errors', 'only');
  out.failedCard = q('#grid .card.failed .error').map((n) => n.textContent);
  out.hide = set('filter-errors', 'hide');
  set('filter-errors', 'all');
  out.pred = set('filter-pred', PRED);
  set('filter-pred', '');
  out.target = set('filter-target', TARGET);
  set('filter-target', '');
  out.text = set('filter-text', 'caf');
  out.textLabel = q('#grid .card .name').map((n) => n.textContent);
  set('filter-text', '');
  out.asc = set('order', 'asc');
  out.desc = set('order', 'desc');
  set('order', 'file');
  q('#grid .card .thumb')[1].click();
  const viewer = document.getElementById('viewer');
  const pair = q('#viewer img');
  out.viewer = { hidden: viewer.hidden, src: pair.map((i) => i.getAttribute('src')),
    loaded: await loads(pair), title: document.getElementById('viewer-title').textContent };
  document.dispatchEvent(new KeyboardEvent('keydown', { key: 'Escape' }));
  out.closed = viewer.hidden;
  out.failures = q('#failure-list li').map((n) => n.textContent);
  out.injected = q('img[src="x"]').length + q('[onerror]').length;
  out.errors = window.__errors;
  document.title = 'probe ' + JSON.stringify(out);
});
</script>"""


def _status(count: int, total: int, shown: int) -> str:
    return f"Showing 1\u2013{shown} of {count} matching ({total} in all)."


def test_page_works_in_chromium(run: Run, tmp_path: Path) -> None:
    """Every image loads, nothing errs, nothing injected; paging, filters, sorting and the
    viewer do what they say."""
    rows = page_data(run.page)["rows"]
    ok = [r for r in rows if r["error"] is None]
    pred, target = ok[0]["pred"], ok[-1]["target"]
    driver = DRIVER.replace("PRED", f"'{pred}'").replace("TARGET", f"'{target}'")
    probe = with_probe(run.page, head=ERROR_PROBE, body=driver)
    done = dump_dom(probe, tmp_path / "profile")
    out = title_json(done)
    assert out["errors"] == [] and out["injected"] == 0
    assert CONSOLE_LINE.findall(done.stderr) == []
    assert out["colorbar"] == 1
    paths = [r["path"] for r in rows]
    assert [p["names"] for p in out["pages"]] == [paths[0:4], paths[4:8], paths[8:]]
    assert [p["info"] for p in out["pages"]] == ["page 1 of 3", "page 2 of 3", "page 3 of 3"]
    thumbs = [sum(r["thumb"] is not None for r in rows[i : i + 4]) for i in (0, 4, 8)]
    assert [(p["images"], p["loaded"]) for p in out["pages"]] == [(n, n) for n in thumbs]
    [bad] = [r for r in rows if r["error"] is not None]
    assert out["only"] == {"names": [bad["path"]], "status": _status(1, 9, 1)}
    assert out["failedCard"] == [bad["error"]]
    assert out["failures"] == [f"{bad['path']}: {bad['error']}"]
    assert out["hide"] == {"names": [r["path"] for r in ok[:4]], "status": _status(8, 9, 4)}
    for key, field, value in (("pred", "pred", pred), ("target", "target", target)):
        expected = [r["path"] for r in ok if r[field] == value]
        assert out[key]["names"] == expected[:4]
        assert out[key]["status"] == _status(len(expected), 9, min(4, len(expected)))
    assert out["text"]["names"] == [p for p in paths if p.endswith("caf\\xe9.png")]
    assert out["text"]["status"] == _status(1, 9, 1)
    assert out["textLabel"] == ["caf\\xe9.png"]  # the file name, backslash and all
    order = sorted(range(len(ok)), key=lambda i: (ok[i]["conf"], i))
    assert out["asc"]["names"] == [ok[i]["path"] for i in order][:4]
    order = sorted(range(len(ok)), key=lambda i: (-ok[i]["conf"], i))
    assert out["desc"]["names"] == [ok[i]["path"] for i in order][:4]
    second = rows[1]
    assert out["viewer"] == {
        "hidden": False,
        "src": [second["overlay"], second["image"]],
        "loaded": 2,
        "title": second["path"],
    }
    assert out["closed"] is True


BIG_DRIVER = """<script>
window.addEventListener('load', function () {
  const q = (s) => Array.from(document.querySelectorAll(s));
  const out = { cards: q('.card').length, images: q('#grid img').length,
    lazy: q('#grid img[loading="lazy"]').length,
    info: document.querySelector('.pager .info').textContent };
  document.querySelector('.pager .next').click();
  out.second = q('.card .name')[0].title;
  const errors = document.getElementById('filter-errors');
  errors.value = 'only';
  errors.dispatchEvent(new Event('change'));
  out.failed = { cards: q('.card').length, status: document.getElementById('status').textContent };
  out.failures = q('#failure-list li').length;
  out.errors = window.__errors;
  document.title = 'probe ' + JSON.stringify(out);
});
</script>"""


def test_ten_thousand_rows(tmp_path: Path) -> None:
    """10,000 results: the page stays small, and holds one page of cards at a time."""
    thumbs = tmp_path / "thumbs"
    thumbs.mkdir()
    ok, encoded = cv2.imencode(".jpg", np.full((120, 160, 3), 128, np.uint8))
    assert ok
    (thumbs / "t.thumb.jpg").write_bytes(encoded.tobytes())
    rows = []
    for i in range(10_000):
        name = f"class_{i % 10:02d}/img_{i:06d}"
        rows.append(
            ReportRow(
                image=f"/home/someone/datasets/test/{name}.jpg",
                image_href=f"../../datasets/test/{name}.jpg",
                overlay_href=f"{name}_gradcampp.jpg",
                thumb_href="thumbs/t.thumb.jpg",
                pred_class=i % 10,
                pred_name=f"class {i % 10}",
                confidence=(i % 997) / 997,
                target=i % 10,
                layer="layer4",
                method="gradcam++",
            )
            if i % 100
            else ReportRow(
                image=f"/data/{i}.jpg", image_href=f"{i}.jpg", error="InputError: unreadable"
            )
        )
    text = render_page(rows, method="gradcam++")
    assert len(text.encode("utf-8")) < 4_000_000
    page = tmp_path / "index.html"
    page.write_text(text, encoding="utf-8")
    done = dump_dom(with_probe(page, head=ERROR_PROBE, body=BIG_DRIVER), tmp_path / "profile")
    out = title_json(done)
    assert out == {
        "cards": 200,
        "images": 198,  # rows 0 and 100 failed: no thumbnail
        "lazy": 198,
        "info": "page 1 of 50",
        "second": rows[200].image,  # page 2 starts at row 200
        "failed": {"cards": 100, "status": _status(100, 10_000, 100)},
        "failures": 100,
        "errors": [],
    }
