"""The example packages of docs/plugins.md, installed and run as the page says.

Each ``# <package>/pyproject.toml`` block and its ``# <package>/<module>/__init__.py`` block
are laid out as pip would install them (module and ``.dist-info`` with the ``camkit`` entry
point) in a temporary site directory; camkit discovers them through the real
``importlib.metadata``. Then every top-level usage block of the page runs in order, and the
listing block's output must be the ``text`` block the page shows after it.
"""

from __future__ import annotations

import importlib.metadata
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from doc_blocks import blocks, run_page

from camkit.plugins import manager

PYPROJECT = re.compile(r"# ([\w-]+)/pyproject\.toml\n")
MODULE = re.compile(r"# ([\w-]+)/(\w+)/__init__\.py\n")


def _install_examples(site: Path) -> list[str]:
    names = []
    for lang, code in blocks("plugins.md"):
        project = PYPROJECT.match(code)
        if lang == "toml" and project:
            dist = re.search(r'^name = "([\w-]+)"', code, re.M)
            section = code.split("[project.entry-points.camkit]\n", 1)[1]
            assert dist is not None and dist.group(1) == project.group(1)
            info = site / f"{dist.group(1).replace('-', '_')}-0.1.0.dist-info"
            info.mkdir()
            (info / "METADATA").write_text(
                f"Metadata-Version: 2.1\nName: {dist.group(1)}\nVersion: 0.1.0\n"
            )
            entries = section.replace('"', "")  # TOML strings; entry_points.txt is bare
            (info / "entry_points.txt").write_text("[camkit]\n" + entries)
            names.append(dist.group(1))
        module = MODULE.match(code)
        if lang == "python" and module:
            package = site / module.group(2)
            package.mkdir()
            (package / "__init__.py").write_text(code)
    return names


def test_plugin_page_examples_run_as_documented(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    installed = _install_examples(site)
    assert len(installed) == 5, installed
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CAMKIT_DISABLE_PLUGIN_AUTOLOAD")
    real_entry_points = importlib.metadata.entry_points

    def only_the_examples(**kwargs: Any) -> Any:  # other installed plugins stay out
        points = real_entry_points(**kwargs)
        if kwargs.get("group") != "camkit":
            return points
        return [p for p in points if p.dist is not None and p.dist.name in installed]

    monkeypatch.setattr(manager.importlib.metadata, "entry_points", only_the_examples)
    manager.reset_plugins()

    assert run_page("plugins.md", skip=MODULE) >= 6
    assert (tmp_path / "out" / "viridis.png").is_file()
    sys.modules.pop("acme_camkit_xgradcam", None)
