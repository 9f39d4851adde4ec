"""An HTML page of a folder run: thumbnails, sorting, filters, failures, one static file.

:func:`write_html_report` (what ``camkit explain --html`` calls) writes ``index.html`` in the
output folder and one small JPEG thumbnail per explained image under ``thumbs/``. The page
works offline: its CSS and JavaScript are inline, its colour bar is a ``data:`` URI, and every
image link is relative to the page. Its rows are one JSON array embedded in the page, which
the page's script sorts, filters and shows one page of cards at a time, so it stays fast for
tens of thousands of images.

:class:`HtmlReport` does the same result by result: each thumbnail is computed and written when
its result is added, and only a row of text is kept, so memory does not grow with the
images' sizes.
"""

from __future__ import annotations

import html
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import attrs
import cv2
import numpy as np
from numpy.typing import NDArray

from camkit.errors import ConfigurationError, OutputError
from camkit.explanation import Explanation
from camkit.render.base import Renderer
from camkit.render.colorbar import colorbar_data_uri
from camkit.tools.batch import FileResult
from camkit.tools.output import OutputWriter

__all__ = [
    "HTML_INDEX",
    "THUMBS_FOLDER",
    "HtmlReport",
    "ReportRow",
    "render_page",
    "write_html_report",
]

HTML_INDEX = "index.html"
"""The page's file name in the output folder."""
THUMBS_FOLDER = "thumbs"
"""The thumbnails' folder in the output folder."""
_THUMB_SUFFIX = ".thumb.jpg"  # no overlay of plan_outputs ends so: they end in _<slug>.<ext>
_JPEG_QUALITY = 85


@attrs.frozen
class ReportRow:
    """One card of the page: what is shown about one result, as text and links.

    Attributes:
        image: the image's path as shown (undecodable bytes of a file name as ``\\xNN``).
        image_href: link to the image, relative to the page and percent-encoded.
        overlay_href: link to the overlay, or ``None`` when none was written.
        thumb_href: link to the thumbnail, or ``None`` (a failed result).
        pred_class: the predicted class, ``None`` for a failure.
        pred_name: its name when known.
        confidence: the predicted class's probability (``None`` for a failure or when not
            finite).
        target: the class explained (``None`` for a callable target or a failure).
        layer: the layer(s) the map was computed at.
        method: the CAM method.
        error: why the image failed, ``None`` when it was explained.
    """

    image: str
    image_href: str
    overlay_href: str | None = None
    thumb_href: str | None = None
    pred_class: int | None = None
    pred_name: str | None = None
    confidence: float | None = None
    target: int | None = None
    layer: str | None = None
    method: str | None = None
    error: str | None = None


def _write_bytes(path: Path, data: bytes, *, root: Path, overwrite: bool = False) -> None:
    """Write ``data`` to ``path`` below ``root`` through camkit's one output writer
    (:class:`~camkit.tools.output.OutputWriter`): the one place this module writes.

    Raises:
        OutputError: the file exists (without ``overwrite``), a symbolic link is in the way,
            or the file system refused the write.
    """
    OutputWriter(root, overwrite=overwrite).write_bytes(path, data)


def _text(value: object) -> str:
    """``value`` as a string that encodes to UTF-8: undecodable file-name bytes (lone
    surrogates) become ``\\xNN`` and other lone surrogates ``\\udNNN``."""
    text = str(value)
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _href(target: Path, page_folder: Path) -> str:
    """A link from a page in ``page_folder`` to ``target``: relative (``../`` where needed),
    ``/``-separated and percent-encoded from the file name's bytes, so that ``#``, ``?``,
    ``%``, ``:``, quotes and non-UTF-8 names all reach the right file."""
    absolute = os.path.abspath(target)
    try:
        relative = os.path.relpath(absolute, os.path.abspath(page_folder))
    except ValueError:  # another drive on Windows: no relative link exists
        return Path(absolute).as_uri()
    return quote(os.fsencode(relative.replace(os.sep, "/")), safe="/")


def _finite(value: float) -> float | None:
    number = float(value)
    return round(number, 6) if math.isfinite(number) else None


def _thumbnail(explanation: Explanation, alpha: float, size: int) -> NDArray[np.uint8]:
    """The overlay at most ``size`` pixels on its longer side: the image and the map are
    shrunk first (area interpolation), then rendered, so no full-size overlay is made."""
    image = explanation.image
    cam = explanation.cam
    height, width = cam.shape
    scale = size / max(height, width, 1)
    if scale < 1.0:
        dsize = (max(1, round(width * scale)), max(1, round(height * scale)))
        image = np.asarray(cv2.resize(image, dsize, interpolation=cv2.INTER_AREA), np.uint8)
        cam = np.asarray(cv2.resize(cam, dsize, interpolation=cv2.INTER_AREA), np.float32)
    return explanation.renderer.render(image, cam, alpha)


def _check_int(label: str, value: object, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigurationError(f"{label} must be an int >= {low}, got {value!r}")
    return value


class HtmlReport:
    """Builds the report page result by result: :meth:`add` each result, then :meth:`write`.

    Each added result's thumbnail is written at once to
    ``<out_dir>/thumbs/<overlay's folder>/<overlay's stem>.thumb.jpg`` (a JPEG at most
    ``thumb_size`` pixels on its longer side, rendered from the explanation in memory) and
    only a :class:`ReportRow` is kept.

    Args:
        out_dir: the folder of the page (the overlays' folder); created when missing.
        method: the CAM method named in the page's heading; default: the results' methods.
        colormap: the renderer of the colour bar; default: the first explanation's renderer,
            else ``"jet"``.
        alpha: the heatmap's weight in the thumbnails, as in the overlays.
        class_names: one display name per class, for the filters and cards; names are also
            taken from the results' ``pred_name``.
        title: the page's title.
        details: more ``label: value`` lines for the page's heading (model, weights, ...).
        thumb_size: the thumbnails' longer side in pixels (>= 16).
        page_size: cards per page (>= 1).
        overwrite: replace an existing page and thumbnails instead of stopping.

    Raises:
        ConfigurationError: ``alpha`` outside ``[0, 1]``, ``thumb_size`` < 16 or
            ``page_size`` < 1.
        OutputError: the page exists (without ``overwrite``), or ``out_dir`` is not a folder.
    """

    def __init__(
        self,
        out_dir: str | os.PathLike[str],
        *,
        method: str | None = None,
        colormap: str | Renderer | None = None,
        alpha: float = 0.5,
        class_names: Sequence[str] | None = None,
        title: str = "camkit report",
        details: Mapping[str, str] | None = None,
        thumb_size: int = 160,
        page_size: int = 200,
        overwrite: bool = False,
    ) -> None:
        number = isinstance(alpha, int | float | np.floating) and not isinstance(alpha, bool)
        if not number or not 0 <= alpha <= 1:
            raise ConfigurationError(f"alpha must lie in [0, 1], got {alpha!r}")
        self.out_dir = Path(out_dir)
        self.page = self.out_dir / HTML_INDEX
        self._thumb_size = _check_int("thumb_size", thumb_size, 16)
        self._page_size = _check_int("page_size", page_size, 1)
        self._alpha = float(alpha)
        self._method = method
        self._colormap = colormap
        self._class_names = list(class_names) if class_names else None
        self._title = title
        self._details = dict(details or {})
        self._overwrite = overwrite
        self._rows: list[ReportRow] = []
        self._used: set[str] = set()
        if self.out_dir.exists() and not self.out_dir.is_dir():
            raise OutputError(
                f"the output folder {str(self.out_dir)!r} is a file; choose a folder for --out"
            )
        if os.path.lexists(self.page) and not overwrite:
            raise OutputError(
                f"{str(self.page)!r} already exists; pass --overwrite (overwrite=True) to "
                "replace it, or choose another output folder"
            )

    @property
    def rows(self) -> list[ReportRow]:
        """The rows added so far, in order."""
        return list(self._rows)

    def add(self, result: FileResult) -> ReportRow:
        """Add one result: write its thumbnail (when explained) and keep its row.

        Raises:
            OutputError: the thumbnail could not be written (it exists without
                ``overwrite``, a symbolic link is in the way, the disk is full).
        """
        e = result.explanation
        row = ReportRow(
            image=_text(result.image),
            image_href=_href(result.image, self.out_dir),
            overlay_href=None if result.heatmap is None else _href(result.heatmap, self.out_dir),
            error=None if result.error is None else _text(result.error),
        )
        if e is not None:
            if self._colormap is None:
                self._colormap = e.renderer
            thumb = self._thumb_path(result)
            bgr = cv2.cvtColor(_thumbnail(e, self._alpha, self._thumb_size), cv2.COLOR_RGB2BGR)
            ok, encoded = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY])
            if not ok:
                raise OutputError(f"OpenCV could not encode the thumbnail {str(thumb)!r}")
            _write_bytes(thumb, encoded.tobytes(), root=self.out_dir, overwrite=self._overwrite)
            row = attrs.evolve(
                row,
                thumb_href=_href(thumb, self.out_dir),
                pred_class=int(e.pred_class),
                pred_name=None if e.pred_name is None else _text(e.pred_name),
                confidence=_finite(e.confidence),
                target=None if e.target is None else int(e.target),
                layer=_text(e.layer),
                method=_text(e.method),
            )
        self._rows.append(row)
        return row

    def _thumb_path(self, result: FileResult) -> Path:
        """``thumbs/<overlay's folder below out_dir>/<overlay's stem>.thumb.jpg``, made unique
        (``_2``, ``_3``, ...); the image's stem when no overlay was written."""
        folder = self.out_dir / THUMBS_FOLDER
        stem = result.image.stem
        if result.heatmap is not None:
            stem = result.heatmap.stem
            try:
                relative = os.path.relpath(
                    os.path.abspath(result.heatmap.parent), os.path.abspath(self.out_dir)
                )
            except ValueError:  # another drive on Windows
                relative = ".."
            parts = Path(relative).parts
            if ".." not in parts:
                folder = folder.joinpath(*[p for p in parts if p not in ("", ".")])
        for n in range(1, len(self._used) + 2):
            name = stem + (f"_{n}" if n > 1 else "") + _THUMB_SUFFIX
            key = os.path.normcase(str(folder / name)).casefold()
            if key not in self._used:
                self._used.add(key)
                return folder / name
        raise AssertionError("unreachable: one of len(used) + 1 names is free")

    def write(self) -> Path:
        """Write ``index.html`` with every row added; return its path.

        Raises:
            OutputError: the page could not be written.
        """
        methods = sorted({row.method for row in self._rows if row.method})
        page = render_page(
            self._rows,
            title=self._title,
            method=self._method or ", ".join(methods) or "-",
            colormap=self._colormap if self._colormap is not None else "jet",
            class_names=self._class_names,
            details=self._details,
            page_size=self._page_size,
        )
        _write_bytes(self.page, page.encode("utf-8"), root=self.out_dir, overwrite=self._overwrite)
        return self.page


def write_html_report(
    results: Iterable[FileResult],
    out_dir: str | os.PathLike[str],
    *,
    method: str | None = None,
    colormap: str | Renderer | None = None,
    alpha: float = 0.5,
    class_names: Sequence[str] | None = None,
    title: str = "camkit report",
    details: Mapping[str, str] | None = None,
    thumb_size: int = 160,
    page_size: int = 200,
    overwrite: bool = False,
) -> Path:
    """Write ``<out_dir>/index.html``, a page of every result, and its thumbnails; return the
    page's path.

    The page shows one card per result (with ``top``, one per image and class): a thumbnail
    of the overlay, the predicted class (index and name when known), the confidence, the
    target class, the method and the layer. Clicking a card opens the full overlay with the
    original image beside it. The cards can be sorted by confidence and filtered by target
    class, predicted class, file name and failure; they are shown ``page_size`` at a time.
    A colour bar of the colormap (0 to 1, low to high attribution) heads the page, and the
    failed files are listed with their errors.

    The page is a single file with inline CSS and JavaScript and no external resources.
    Links to overlays, thumbnails and images are relative to the page (``../`` for images
    outside ``out_dir``) and percent-encoded from the file names' bytes. Every text from
    the results (paths, class names, errors) is inserted as text, never as markup.

    Thumbnails are written to ``<out_dir>/thumbs/`` (see :class:`HtmlReport`), one result at
    a time; nothing bigger than a thumbnail is made.

    The other arguments are those of :class:`HtmlReport`.

    Args:
        results: what :func:`~camkit.tools.batch.explain_files` returned.
        out_dir: the folder of the page, normally the overlays' folder.

    Raises:
        ConfigurationError: ``alpha``, ``thumb_size`` or ``page_size`` out of range.
        OutputError: the page or a thumbnail exists (without ``overwrite``), a symbolic link
            is in the way, or a file could not be written.
    """
    report = HtmlReport(
        out_dir,
        method=method,
        colormap=colormap,
        alpha=alpha,
        class_names=class_names,
        title=title,
        details=details,
        thumb_size=thumb_size,
        page_size=page_size,
        overwrite=overwrite,
    )
    for result in results:
        report.add(result)
    return report.write()


def _json_for_script(value: Any) -> str:
    """JSON that is safe inside ``<script>``: ASCII only, and no ``<``, ``>`` or ``&``, so
    no ``</script>`` or ``<!--`` can appear in it."""
    text = json.dumps(value, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _renderer_label(renderer: str | Renderer) -> str:
    if isinstance(renderer, str):
        return renderer
    return str(getattr(renderer, "colormap", None) or renderer.name or type(renderer).__name__)


def render_page(
    rows: Sequence[ReportRow],
    *,
    title: str = "camkit report",
    method: str = "-",
    colormap: str | Renderer = "jet",
    class_names: Sequence[str] | None = None,
    details: Mapping[str, str] | None = None,
    page_size: int = 200,
) -> str:
    """The report page of ``rows`` as HTML text (what :class:`HtmlReport` writes).

    The rows are embedded as one JSON array (escaped for a ``<script>`` element); the cards
    are made by the page's script, one page of ``page_size`` at a time, with the rows' text
    set as text. The header's texts are HTML-escaped.

    Raises:
        ConfigurationError: ``page_size`` < 1.
        UnknownNameError: ``colormap`` is a name no plugin registered.
    """
    _check_int("page_size", page_size, 1)
    names: dict[str, str] = {}
    for index, name in enumerate(class_names or ()):
        names[str(index)] = _text(name)
    for row in rows:
        if row.pred_class is not None and row.pred_name is not None:
            names.setdefault(str(row.pred_class), _text(row.pred_name))
    layers: dict[str, int] = {}
    methods: dict[str, int] = {}
    packed = []
    for row in rows:
        layer = None if row.layer is None else layers.setdefault(_text(row.layer), len(layers))
        used = None if row.method is None else methods.setdefault(_text(row.method), len(methods))
        confidence = row.confidence
        if confidence is not None and not math.isfinite(confidence):
            confidence = None
        packed.append(
            [
                _text(row.image),
                _text(row.image_href),
                None if row.overlay_href is None else _text(row.overlay_href),
                None if row.thumb_href is None else _text(row.thumb_href),
                row.pred_class,
                confidence,
                row.target,
                layer,
                used,
                None if row.error is None else _text(row.error),
            ]
        )
    data = {
        "names": names,
        "layers": list(layers),
        "methods": list(methods),
        "pageSize": page_size,
        "sep": os.sep,
        "rows": packed,
    }
    failed = sum(row.error is not None for row in rows)
    images = len({row.image for row in rows})
    label = html.escape(_renderer_label(colormap))
    bar = colorbar_data_uri(colormap, vertical=False)
    lines = {"method": method, "layer": ", ".join(layers) or "-", **(details or {})}
    facts = "".join(
        f"<div><dt>{html.escape(_text(key))}</dt><dd>{html.escape(_text(value))}</dd></div>"
        for key, value in lines.items()
    )
    summary = (
        f"{len(rows)} result{'s' * (len(rows) != 1)} from {images} "
        f"image{'s' * (images != 1)}; {failed} failed."
    )
    return _PAGE.format(
        title=html.escape(_text(title)),
        summary=html.escape(summary),
        facts=facts,
        label=label,
        bar=bar,
        style=_STYLE,
        script=_SCRIPT,
        data=_json_for_script(data),
    )


_STYLE = """
* { box-sizing: border-box; }
body { font-family: system-ui, sans-serif; margin: 0; padding: 1em 1.5em; color: #222;
  background: #fafafa; }
h1 { margin: 0 0 0.3em; font-size: 1.5em; }
header { width: 100%; }
dl.facts { display: flex; flex-wrap: wrap; gap: 0.2em 1.5em; margin: 0.4em 0; }
dl.facts dt { font-weight: 600; } dl.facts dt::after { content: ":"; }
dl.facts dd { margin: 0 0 0 0.3em; overflow-wrap: anywhere; }
dl.facts div { display: flex; }
.legend { display: flex; align-items: center; gap: 0.5em; margin: 0.6em 0; flex-wrap: wrap; }
.legend img { width: 256px; height: 16px; border: 1px solid #999; }
.controls { display: flex; flex-wrap: wrap; gap: 0.6em 1.2em; align-items: end;
  margin: 0.8em 0; }
.controls label { display: flex; flex-direction: column; font-size: 0.85em; gap: 0.2em; }
.pager { display: flex; gap: 0.8em; align-items: center; margin: 0.6em 0; }
.grid { display: grid; gap: 10px;
  grid-template-columns: repeat(auto-fill, minmax(180px, 1fr)); }
.card { background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: 6px;
  font-size: 0.85em; line-height: 1.35; min-width: 0; }
.card.failed { border-color: #d9a0a0; background: #fff6f6; }
.card .thumb { display: block; width: 100%; aspect-ratio: 1; background: #eee;
  cursor: zoom-in; border: 0; padding: 0; }
.card .thumb img { width: 100%; height: 100%; object-fit: contain; display: block; }
.card .thumb.none { display: flex; align-items: center; justify-content: center;
  color: #a3201c; font-weight: 600; }
.card .name { font-weight: 600; overflow: hidden; text-overflow: ellipsis;
  white-space: nowrap; margin-top: 4px; }
.card .muted { color: #666; overflow-wrap: anywhere; }
.card .error { color: #a3201c; overflow-wrap: anywhere; }
#failures li { margin: 0.3em 0; overflow-wrap: anywhere; }
#failures .error { color: #a3201c; }
.viewer { position: fixed; inset: 0; background: rgba(17, 17, 17, 0.97); color: #eee;
  display: flex; flex-direction: column; padding: 1em; z-index: 10; }
.viewer[hidden] { display: none; }
.viewer .pair { flex: 1; display: flex; gap: 1em; min-height: 0; }
.viewer figure { flex: 1; margin: 0; display: flex; flex-direction: column; min-width: 0; }
.viewer figure[hidden] { display: none; }
.viewer figure img { flex: 1; min-height: 0; width: 100%; object-fit: contain; }
.viewer figcaption { text-align: center; padding: 0.3em; }
.viewer a { color: #9cf; }
.viewer .bar { display: flex; justify-content: space-between; gap: 1em; align-items: center;
  overflow-wrap: anywhere; }
"""

_SCRIPT = r"""
(function () {
  'use strict';
  const data = JSON.parse(document.getElementById('camkit-data').textContent);
  const names = data.names;
  const rows = data.rows.map(function (r, i) {
    return {
      order: i, path: r[0], image: r[1], overlay: r[2], thumb: r[3], pred: r[4],
      conf: r[5], target: r[6], layer: r[7] === null ? null : data.layers[r[7]],
      method: r[8] === null ? null : data.methods[r[8]], error: r[9]
    };
  });
  const $ = function (id) { return document.getElementById(id); };
  const state = { order: 'file', target: '', pred: '', errors: 'all', text: '', page: 0 };
  let shown = [];

  function classLabel(c) {
    if (c === null) { return '-'; }
    const name = names[String(c)];
    return name === undefined ? String(c) : c + ' \u00b7 ' + name;
  }
  function baseName(path) {
    const parts = path.split('/').flatMap(function (p) { return p.split(data.sep); });
    return parts[parts.length - 1] || path;
  }
  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) { node.className = cls; }
    if (text !== undefined) { node.textContent = text; }
    return node;
  }
  function fillSelect(select, values) {
    values.sort(function (a, b) { return a - b; }).forEach(function (v) {
      const option = el('option', '', classLabel(v));
      option.value = String(v);
      select.appendChild(option);
    });
  }
  function distinct(key) {
    const seen = new Set();
    rows.forEach(function (r) { if (r[key] !== null) { seen.add(r[key]); } });
    return Array.from(seen);
  }

  function matching() {
    const text = state.text.toLowerCase();
    const out = rows.filter(function (r) {
      if (state.errors === 'only' && r.error === null) { return false; }
      if (state.errors === 'hide' && r.error !== null) { return false; }
      if (state.target !== '' && String(r.target) !== state.target) { return false; }
      if (state.pred !== '' && String(r.pred) !== state.pred) { return false; }
      if (text && r.path.toLowerCase().indexOf(text) < 0) { return false; }
      return true;
    });
    if (state.order !== 'file') {
      const sign = state.order === 'asc' ? 1 : -1;
      out.sort(function (a, b) {
        if (a.conf === null || b.conf === null) {
          return (a.conf === null) - (b.conf === null) || a.order - b.order;
        }
        return sign * (a.conf - b.conf) || a.order - b.order;
      });
    }
    return out;
  }

  function card(r, index) {
    const node = el('article', r.error === null ? 'card' : 'card failed');
    let thumb;
    if (r.thumb !== null) {
      thumb = el('a', 'thumb');
      thumb.href = r.overlay !== null ? r.overlay : r.image;
      const img = el('img');
      img.loading = 'lazy';
      img.decoding = 'async';
      img.alt = 'overlay of ' + baseName(r.path);
      img.src = r.thumb;
      thumb.appendChild(img);
    } else {
      thumb = el('a', 'thumb none', 'failed');
      thumb.href = r.image;
    }
    thumb.addEventListener('click', function (event) {
      event.preventDefault();
      openViewer(index);
    });
    node.appendChild(thumb);
    const name = el('div', 'name', baseName(r.path));
    name.title = r.path;
    node.appendChild(name);
    if (r.error !== null) {
      node.appendChild(el('div', 'error', r.error));
      return node;
    }
    node.appendChild(el('div', 'pred', 'pred ' + classLabel(r.pred)));
    node.appendChild(el('div', 'conf', 'confidence ' +
      (r.conf === null ? '-' : r.conf.toFixed(3))));
    node.appendChild(el('div', 'target', 'target ' + classLabel(r.target)));
    node.appendChild(el('div', 'muted', r.method + ' at ' + r.layer));
    return node;
  }

  function render() {
    shown = matching();
    const size = data.pageSize;
    const pages = Math.max(1, Math.ceil(shown.length / size));
    state.page = Math.min(Math.max(0, state.page), pages - 1);
    const start = state.page * size;
    const slice = shown.slice(start, start + size);
    const grid = $('grid');
    grid.textContent = '';
    const fragment = document.createDocumentFragment();
    slice.forEach(function (r, i) { fragment.appendChild(card(r, start + i)); });
    grid.appendChild(fragment);
    $('status').textContent = shown.length === 0 ? 'No result matches.' :
      'Showing ' + (start + 1) + '\u2013' + (start + slice.length) + ' of ' + shown.length +
      ' matching (' + rows.length + ' in all).';
    document.querySelectorAll('.pager').forEach(function (pager) {
      pager.querySelector('.info').textContent = 'page ' + (state.page + 1) + ' of ' + pages;
      pager.querySelector('.prev').disabled = state.page === 0;
      pager.querySelector('.next').disabled = state.page >= pages - 1;
    });
  }

  let current = -1;
  function openViewer(index) {
    const r = shown[index];
    if (r === undefined) { return; }
    current = index;
    const overlay = $('viewer-overlay');
    overlay.hidden = r.overlay === null;
    if (r.overlay !== null) { overlay.querySelector('img').src = r.overlay; }
    $('viewer-original').querySelector('img').src = r.image;
    $('viewer-title').textContent = r.path;
    $('viewer-facts').textContent = r.error !== null ? 'failed: ' + r.error :
      'pred ' + classLabel(r.pred) + ', confidence ' +
      (r.conf === null ? '-' : r.conf.toFixed(3)) + ', target ' + classLabel(r.target) +
      ', ' + r.method + ' at ' + r.layer;
    $('viewer').hidden = false;
  }
  function closeViewer() {
    $('viewer').hidden = true;
    current = -1;
  }

  fillSelect($('filter-target'), distinct('target'));
  fillSelect($('filter-pred'), distinct('pred'));
  [['order', 'order'], ['filter-target', 'target'], ['filter-pred', 'pred'],
   ['filter-errors', 'errors']].forEach(function (pair) {
    $(pair[0]).addEventListener('change', function (event) {
      state[pair[1]] = event.target.value;
      state.page = 0;
      render();
    });
  });
  $('filter-text').addEventListener('input', function (event) {
    state.text = event.target.value;
    state.page = 0;
    render();
  });
  document.querySelectorAll('.pager').forEach(function (pager) {
    pager.querySelector('.prev').addEventListener('click', function () {
      state.page -= 1; render(); window.scrollTo(0, 0);
    });
    pager.querySelector('.next').addEventListener('click', function () {
      state.page += 1; render(); window.scrollTo(0, 0);
    });
  });
  $('viewer-close').addEventListener('click', closeViewer);
  $('viewer').addEventListener('click', function (event) {
    if (event.target === $('viewer')) { closeViewer(); }
  });
  document.addEventListener('keydown', function (event) {
    if ($('viewer').hidden) { return; }
    if (event.key === 'Escape') { closeViewer(); }
    if (event.key === 'ArrowRight') { openViewer(current + 1); }
    if (event.key === 'ArrowLeft') { openViewer(current - 1); }
  });

  const failures = rows.filter(function (r) { return r.error !== null; });
  if (failures.length) {
    $('failures').hidden = false;
    $('failure-count').textContent = String(failures.length);
    const list = $('failure-list');
    const fragment = document.createDocumentFragment();
    failures.forEach(function (r) {
      const item = el('li');
      const link = el('a', '', r.path);
      link.href = r.image;
      item.appendChild(link);
      item.appendChild(document.createTextNode(': '));
      item.appendChild(el('span', 'error', r.error));
      fragment.appendChild(item);
    });
    list.appendChild(fragment);
  }
  render();
  window.camkitReport = { rows: rows, state: state, render: render, matching: matching,
    openViewer: openViewer, closeViewer: closeViewer };
})();
"""

_PAGER = (
    '<nav class="pager"><button type="button" class="prev">&lsaquo; previous</button>'
    '<span class="info"></span><button type="button" class="next">next &rsaquo;</button></nav>'
)

_PAGE = (
    """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{style}</style>
</head>
<body>
<header>
<h1>{title}</h1>
<p id="summary">{summary}</p>
<dl class="facts">{facts}</dl>
<p class="legend">Colour legend ({label}): <span>0</span>
<img id="colorbar" src="{bar}" alt="{label} colour bar from 0 to 1"> <span>1</span>
<span>low &rarr; high attribution</span></p>
<form class="controls" onsubmit="return false">
<label>Sort <select id="order">
<option value="file">file order</option>
<option value="desc">confidence, highest first</option>
<option value="asc">confidence, lowest first</option>
</select></label>
<label>Class (target) <select id="filter-target"><option value="">any</option></select></label>
<label>Predicted class <select id="filter-pred"><option value="">any</option></select></label>
<label>Failures <select id="filter-errors">
<option value="all">show</option>
<option value="only">only failures</option>
<option value="hide">hide failures</option>
</select></label>
<label>File name contains <input id="filter-text" type="search"></label>
</form>
<p id="status"></p>
"""
    + _PAGER
    + """
</header>
<noscript><p>This page needs JavaScript to show its results.</p></noscript>
<main id="grid" class="grid"></main>
"""
    + _PAGER
    + """
<section id="failures" hidden>
<h2>Failed files (<span id="failure-count"></span>)</h2>
<ol id="failure-list"></ol>
</section>
<div id="viewer" class="viewer" hidden>
<div class="bar"><strong id="viewer-title"></strong>
<button type="button" id="viewer-close">close (Esc)</button></div>
<p id="viewer-facts"></p>
<div class="pair">
<figure id="viewer-overlay"><img alt="overlay"><figcaption>overlay</figcaption></figure>
<figure id="viewer-original"><img alt="original image"><figcaption>original</figcaption></figure>
</div>
</div>
<script type="application/json" id="camkit-data">{data}</script>
<script>{script}</script>
</body>
</html>
"""
)
