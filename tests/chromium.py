"""Rendering camkit's HTML pages in headless Chromium, for the page tests.

A page is copied with probe scripts injected, loaded with ``--dump-dom``, and the probe
reports by writing ``document.title``. Chromium missing skips the test, or fails it where
``CAMKIT_REQUIRE_CHROMIUM=1`` (CI).
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--allow-file-access-from-files",
    "--virtual-time-budget=10000",
]

CONSOLE_LINE = re.compile(r"^.*:CONSOLE[:(].*$", re.MULTILINE)
"""A console message in Chromium's ``--enable-logging=stderr --v=0`` log."""


def find_chromium() -> str:
    """The Chromium executable; skips the test without one (fails it in CI)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        if os.environ.get("CAMKIT_REQUIRE_CHROMIUM") == "1":
            pytest.fail("chromium is required (CAMKIT_REQUIRE_CHROMIUM=1) but not installed")
        pytest.skip("chromium is not installed (.ci/run installs it)")
    return chromium


def with_probe(page: Path, *, head: str = "", body: str = "", name: str = "probe.html") -> Path:
    """A copy of ``page`` beside it, with ``head`` at the start of ``<head>`` and ``body``
    just before ``</body>``."""
    text = page.read_text(encoding="utf-8")
    assert text.count("<head>") == 1 and text.count("</body>") == 1
    text = text.replace("<head>", "<head>" + head).replace("</body>", body + "</body>")
    probe = page.parent / name
    probe.write_text(text, encoding="utf-8")
    return probe


def dump_dom(
    page: Path, profile: Path, *, window: tuple[int, int] = (1280, 900)
) -> subprocess.CompletedProcess[str]:
    """Load ``page`` in headless Chromium, console messages logged on stderr; the DOM after
    the scripts ran is on stdout."""
    return subprocess.run(
        [
            find_chromium(),
            *CHROMIUM_FLAGS,
            "--enable-logging=stderr",
            "--v=0",
            f"--window-size={window[0]},{window[1]}",
            f"--user-data-dir={profile}",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def title_json(done: subprocess.CompletedProcess[str], prefix: str = "probe ") -> Any:
    """The JSON a probe wrote to ``document.title`` after ``prefix``."""
    found = re.search(r"<title>(.*?)</title>", done.stdout, re.DOTALL)
    assert found is not None, done.stderr[-2000:]
    title = html.unescape(found.group(1))
    assert title.startswith(prefix), (title[:500], done.stderr[-2000:])
    return json.loads(title.removeprefix(prefix))


ERROR_PROBE = """<script>
window.__errors = [];
window.addEventListener('error', function (e) {
  window.__errors.push('error: ' + (e.message || (e.target && (e.target.src || e.target.href))));
}, true);
window.addEventListener('unhandledrejection', function (e) {
  window.__errors.push('rejection: ' + e.reason);
});
['error', 'warn'].forEach(function (level) {
  const original = console[level];
  console[level] = function () {
    window.__errors.push(level + ': ' + Array.prototype.join.call(arguments, ' '));
    original.apply(console, arguments);
  };
});
window.alert = function (message) { window.__errors.push('alert: ' + message); };
</script>"""
"""Head probe: collects script errors, failed resource loads, console errors and warnings,
and alert() calls in ``window.__errors``."""
