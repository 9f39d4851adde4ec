"""Running the code blocks of a documentation page and checking what they print.

A page's fenced blocks are run in order. A ``text`` block right after a ``python`` block is
that block's exact output. Otherwise a comment on a ``print(...)`` line states the printed
line, whole or up to a ``": "`` that starts a remark: ``print(x)  # (7, 7): the grid``.

Example plugin packages on a page (a ``# <package>/pyproject.toml`` block and its
``# <package>/<module>/__init__.py`` block) are installed as pip would lay them out by
:func:`install_example_packages`.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import io
import re
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parents[1] / "docs"
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)
PYPROJECT = re.compile(r"# ([\w-]+)/pyproject\.toml\n")
MODULE = re.compile(r"# ([\w-]+)/(\w+)/__init__\.py\n")
"""The first line of a package's module block; pass it as ``skip`` to :func:`run_page`."""


def blocks(page: str) -> list[tuple[str, str]]:
    """The top-level fenced blocks of ``docs/<page>`` as ``(language, code)``, in order.

    A ``text`` block counts as the output of the block before it when nothing separates
    them, or one paragraph that introduces it (ends with ``:``, no heading). Any other
    ``text`` block gets the language ``"prose-text"``.
    """
    text = (DOCS / page).read_text(encoding="utf-8")
    found: list[tuple[str, str]] = []
    end = 0
    for match in BLOCK.finditer(text):
        language, code = match.groups()
        between = text[end : match.start()].strip()
        introduced = between.endswith(":") and "\n#" not in f"\n{between}"
        if language == "text" and between and not introduced:
            language = "prose-text"
        found.append((language, code))
        end = match.end()
    return found


def _stated(code: str) -> list[tuple[str, str]]:
    """``(whole comment, part before ": ")`` of every commented ``print(...)`` line."""
    values = []
    for line in code.splitlines():
        if line.startswith("print(") and "  # " in line:
            comment = line.split("  # ", 1)[1].strip()
            values.append((comment, comment.split(": ", 1)[0]))
    return values


def run_page(page: str, skip: re.Pattern[str] | None = None) -> int:
    """Run every Python block of ``page`` (except those matching ``skip``) in the current
    directory and check their output; returns the number of blocks run."""
    found = blocks(page)
    ran = 0
    for index, (language, code) in enumerate(found):
        if language != "python" or (skip is not None and skip.match(code)):
            continue
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(code, f"docs/{page} block {index}", "exec"), {"__name__": "doc"})
        printed = out.getvalue()
        ran += 1
        if index + 1 < len(found) and found[index + 1][0] == "text":
            assert printed == found[index + 1][1], f"docs/{page} block {index}:\n{printed}"
            continue
        lines = [line.strip() for line in printed.splitlines()]
        for whole, value in _stated(code):
            assert whole in lines or value in lines, (
                f"docs/{page} block {index}: {whole!r} not in\n{printed}"
            )
    return ran


def install_example_packages(page: str, site: Path) -> list[str]:
    """Lay out the example packages of ``docs/<page>`` in ``site`` as pip would install them:
    each module block as ``<module>/__init__.py`` and each ``pyproject.toml`` block as a
    ``<name>-0.1.0.dist-info`` with its ``camkit`` entry points. Returns the distribution
    names; put ``site`` on ``sys.path`` to make them importable and discoverable."""
    names = []
    for lang, code in blocks(page):
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


def only_distributions(names: Collection[str]) -> Callable[..., Any]:
    """A replacement for ``importlib.metadata.entry_points`` under which the ``camkit`` group
    holds only the entry points of the distributions ``names`` (other installed plugins stay
    out); every other group is unchanged."""
    real_entry_points = importlib.metadata.entry_points

    def entry_points(**kwargs: Any) -> Any:
        points = real_entry_points(**kwargs)
        if kwargs.get("group") != "camkit":
            return points
        return [p for p in points if p.dist is not None and p.dist.name in names]

    return entry_points
