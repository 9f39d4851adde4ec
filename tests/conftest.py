from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from camkit.plugins import reset_plugins


@pytest.fixture(autouse=True)
def fresh_plugins(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test starts from a freshly loaded registry and leaves none behind.

    The core's tests see camkit alone: installed third-party plugins (camkit-vit in CI, or
    anything in a developer's environment) are not loaded. Tests of entry-point loading
    fake the entry points and turn autoload back on (``tests/test_plugins.py``); the
    plugins' own tests load them for real.
    """
    monkeypatch.setenv("CAMKIT_DISABLE_PLUGIN_AUTOLOAD", "1")
    reset_plugins()
    yield
    reset_plugins()
