"""The Python examples of the guide pages run and print what the pages say.

The pages that need the camkit-vit plugin load the installed plugins (the README's test
command installs it); the others see camkit alone.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from doc_blocks import run_page

from camkit.plugins import reset_plugins

PAGES = {
    "quickstart.md": True,
    "vit.md": True,
    "faq.md": True,
    "metrics.md": False,
    "demo.md": False,
}


@pytest.mark.parametrize("page", sorted(PAGES))
def test_page_examples_run(page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    if PAGES[page]:
        monkeypatch.delenv("CAMKIT_DISABLE_PLUGIN_AUTOLOAD")
        reset_plugins()
    assert run_page(page) >= 1
