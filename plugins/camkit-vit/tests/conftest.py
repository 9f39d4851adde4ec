from __future__ import annotations

from collections.abc import Iterator

import pytest
from camkit.plugins import reset_plugins


@pytest.fixture(autouse=True)
def fresh_plugins() -> Iterator[None]:
    """Every test loads the plugins afresh from the installed entry points."""
    reset_plugins()
    yield
    reset_plugins()
