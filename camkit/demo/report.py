"""``camkit demo``: explain a few demo scenes and write a static HTML page about them."""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from pathlib import Path

import attrs
import cv2
import numpy as np
from numpy.typing import NDArray

from camkit.demo.model import load_model
from camkit.demo.scenes import make_scene
from camkit.errors import ConfigurationError
from camkit.explainer import Explainer
from camkit.explanation import Explanation
from camkit.render.base import Renderer
from camkit.render.colorbar import colorbar_data_uri
from camkit.tools.batch import method_slug
from camkit.tools.output import OutputWriter

__all__ = ["DEMO_SCENES", "DemoScene", "demo_scenes", "run_demo"]

DEMO_SCENES: tuple[tuple[int, int | None, bool | None], ...] = (
    (4_000_001, 1, False),
    (4_000_002, 2, False),
    (4_000_003, 1, True),
    (4_000_004, None, None),
    (4_000_005, 2, True),
    (4_000_006, 1, False),
    (4_000_007, None, None),
    (4_000_008, 1, True),
)
"""``(seed, instances, distractor)`` of the scenes the demo shows. Seeds from 1_000_000 on
are never used in training; two scenes force two instances, two force a distractor.
"""


@attrs.frozen(eq=False)
class DemoScene:
    """One demo scene: the image, its true class and the boxes of every instance."""

    name: str
    image: NDArray[np.uint8] = attrs.field(repr=False)
    label: int
    boxes: tuple[tuple[int, int, int, int], ...]


def demo_scenes() -> list[DemoScene]:
    """The scenes of :data:`DEMO_SCENES`, drawn."""
    scenes = []
    for seed, instances, distractor in DEMO_SCENES:
        image, label, boxes = make_scene(seed, instances=instances, distractor=distractor)
        scenes.append(DemoScene(f"scene_{seed}", image, label, tuple(boxes)))
    return scenes


def _with_boxes(
    image: NDArray[np.uint8], boxes: Sequence[tuple[int, int, int, int]]
) -> NDArray[np.uint8]:
    drawn: NDArray[np.uint8] = image.copy()
    for x0, y0, x1, y1 in boxes:
        cv2.rectangle(drawn, (x0, y0), (x1 - 1, y1 - 1), (0, 255, 0), 1)
    return drawn


def _inside(explanation: Explanation, boxes: Sequence[tuple[int, int, int, int]]) -> bool:
    y, x = np.unravel_index(int(np.argmax(explanation.cam)), explanation.cam.shape)
    return any(x0 <= x < x1 and y0 <= y < y1 for x0, y0, x1, y1 in boxes)


_STYLE = """
* { box-sizing: border-box; }
body { font-family: system-ui, sans-serif; margin: 0; padding: 1em 1.5em; color: #222; }
table { border-collapse: collapse; width: 100%; table-layout: fixed; }
th, td { border: 1px solid #ccc; padding: 6px; text-align: center; vertical-align: top;
  overflow-wrap: anywhere; }
td img { width: 100%; max-width: 512px; height: auto; aspect-ratio: 1;
  image-rendering: pixelated; display: block; margin: auto; }
.hit { color: #176b28; } .miss { color: #a3201c; }
.legend { display: flex; align-items: center; gap: 0.5em; margin: 1em 0; flex-wrap: wrap; }
.legend img { width: 256px; height: 16px; border: 1px solid #999; }
"""


def run_demo(
    out_dir: str | os.PathLike[str] = "camkit-demo",
    methods: Sequence[str] = ("gradcam++", "gradcam"),
    alpha: float = 0.5,
    renderer: str | Renderer = "jet",
    *,
    overwrite: bool = False,
) -> Path:
    """Explain the demo scenes with each method and write overlays, a CSV and ``index.html``.

    Returns the path of the page. The page is a static file with relative image links and
    no external resources; its colour legend, the renderer's colour bar from 0 to 1
    (:func:`~camkit.render.colorbar_data_uri`), is embedded in the page. The overlays are
    named ``<scene>_<method slug>.png`` (:func:`~camkit.tools.batch.method_slug`).

    Args:
        methods: registered CAM method names, one column each.
        alpha: the heatmap's weight in the overlays.
        renderer: the overlays' renderer: a registered name (``"jet"``, ``"viridis"``, ...)
            or a :class:`~camkit.Renderer`.
        overwrite: replace the files of an earlier demo in ``out_dir``.

    Files are written by :class:`~camkit.tools.output.OutputWriter`'s rules (never through
    a symbolic link, CSV cells neutralised); the planned files are checked before any work.

    Raises:
        ConfigurationError: no method, or two methods with the same file name.
        OutputError: ``out_dir`` cannot be used (a file, or not writable), or, without
            ``overwrite``, files of an earlier demo exist there.
    """
    if not methods:
        raise ConfigurationError("run_demo needs at least one method")
    slugs = [method_slug(method) for method in methods]
    if len(set(slugs)) < len(slugs):
        raise ConfigurationError(
            f"run_demo needs methods with distinct file names; {list(methods)} are named "
            f"{slugs} in files. Give each method once."
        )
    out = Path(out_dir)
    output = OutputWriter(out, overwrite=overwrite)
    scenes = demo_scenes()
    planned = [out / "index.html", out / "demo_report.csv"]
    for scene in scenes:
        planned.append(out / f"{scene.name}_original.png")
        planned += [out / f"{scene.name}_{slug}.png" for slug in slugs]
    output.check_planned(planned)
    model = load_model()
    names = list(model.class_names)
    images = [scene.image for scene in scenes]
    results: dict[str, list[Explanation]] = {}
    for method in methods:
        explainer = Explainer(
            model, method=method, renderer=renderer, device="cpu", class_names=names
        )
        results[method] = list(explainer.explain_batch(images))
    shown = results[methods[0]][0].renderer

    rows: list[str] = []
    with output.open_csv(out / "demo_report.csv") as writer:
        writer.writerow(
            [
                "scene",
                "true_class",
                "method",
                "pred_class",
                "pred_name",
                "confidence",
                "layer",
                "max_in_box",
                "heatmap",
            ]
        )
        for i, scene in enumerate(scenes):
            original = f"{scene.name}_original.png"
            output.write_image(out / original, _with_boxes(scene.image, scene.boxes))
            cells = [
                f'<td><img src="{original}" alt="{scene.name}"><br>'
                f"{len(scene.boxes)} × {html.escape(names[scene.label])}</td>"
            ]
            for method in methods:
                e = results[method][i]
                file = f"{scene.name}_{method_slug(method)}.png"
                output.write_image(out / file, e.overlay(alpha))
                hit = _inside(e, scene.boxes)
                writer.writerow(
                    [
                        scene.name,
                        names[scene.label],
                        method,
                        e.pred_class,
                        e.pred_name,
                        f"{e.confidence:.4f}",
                        e.layer,
                        int(hit),
                        file,
                    ]
                )
                verdict = "max in box" if hit else "max outside boxes"
                cells.append(
                    f'<td><img src="{file}" alt="{scene.name} {html.escape(method)}"><br>'
                    f"{html.escape(str(e.pred_name))} ({e.confidence:.2f})<br>"
                    f'<span class="{"hit" if hit else "miss"}">{verdict}</span></td>'
                )
            rows.append("<tr>" + "".join(cells) + "</tr>")

    header = "<th>scene (true boxes)</th>" + "".join(f"<th>{html.escape(m)}</th>" for m in methods)
    layer = results[methods[0]][0].layer
    label = html.escape(getattr(shown, "colormap", None) or shown.name or type(shown).__name__)
    legend = (
        f'<p class="legend">Colour legend ({label}): map value <span>0</span>'
        f'<img src="{colorbar_data_uri(shown, vertical=False)}" '
        f'alt="{label} colour scale from 0 to 1"><span>1</span>'
        "<span>low &rarr; high attribution</span></p>"
    )
    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>camkit demo</title>
<style>{_STYLE}</style>
</head>
<body>
<h1>camkit demo</h1>
<p>camkit's shipped demo CNN, trained on procedurally drawn shapes, explained at layer
<code>{html.escape(layer)}</code>. Left: the scene with the true boxes of its class in green.
Then one overlay per method, with the predicted class and its confidence, and whether the
map's maximum falls inside a true box.</p>
{legend}
<table>
<tr>{header}</tr>
{chr(10).join(rows)}
</table>
<p>Report: <a href="demo_report.csv">demo_report.csv</a></p>
</body>
</html>
"""
    index = out / "index.html"
    output.write_text(index, page)
    return index
