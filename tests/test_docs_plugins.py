"""The example packages of docs/plugins.md, installed and run as the page says.

Each ``# <package>/pyproject.toml`` block and its ``# <package>/<module>/__init__.py`` block
are laid out as pip would install them (module and ``.dist-info`` with the ``camkit`` entry
point) in a temporary site directory; camkit discovers them through the real
``importlib.metadata``. Then every top-level usage block of the page runs in order, and the
listing block's output must be the ``text`` block the page shows after it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from doc_blocks import MODULE, install_example_packages, only_distributions, run_page

from camkit.plugins import manager


def test_plugin_page_examples_run_as_documented(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    installed = install_example_packages("plugins.md", site)
    assert len(installed) == 5, installed
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CAMKIT_DISABLE_PLUGIN_AUTOLOAD")
    # other installed plugins stay out
    monkeypatch.setattr(manager.importlib.metadata, "entry_points", only_distributions(installed))
    manager.reset_plugins()

    assert run_page("plugins.md", skip=MODULE) >= 6
    assert (tmp_path / "out" / "spotlight.png").is_file()
    sys.modules.pop("acme_camkit_xgradcam", None)
