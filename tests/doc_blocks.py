"""Running the code blocks of a documentation page and checking what they print.

A page's fenced blocks are run in order. A ``text`` block right after a ``python`` block is
that block's exact output. Otherwise a comment on a ``print(...)`` line states the printed
line, whole or up to a ``": "`` that starts a remark: ``print(x)  # (7, 7): the grid``.
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)


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
