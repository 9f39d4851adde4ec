"""Reading class files (:func:`read_class_names`).

A class file is a UTF-8 text file with one class per line, in training order (the class index
is the line's position). Two dialects are read:

- ``normal``: the whole line is the class name (it may contain commas);
- ``0, normal``: an integer id, a comma, then the display name (everything after the
  first comma, so ``3, cat, siamese`` names ``"cat, siamese"``).

A file uses one dialect throughout; blank lines and the spaces around ids and names are
ignored, as is a UTF-8 byte-order mark. The ids are not used to reorder the classes.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from camkit.errors import CheckpointError

__all__ = ["read_class_names"]

_ID_LINE = re.compile(r"(\d+)\s*,(.*)")


def read_class_names(path: str | os.PathLike[str]) -> list[str]:
    """Read the class names of a class file, in training order.

    Both dialects are read: ``name`` per line, and ``id, name`` per line (the display name is
    everything after the first comma). Blank lines and surrounding spaces are ignored. See the
    module docstring for the format.

    Raises:
        CheckpointError: the file is missing, unreadable, empty, mixes the two dialects, or
            has a line with an id but no name.
    """
    file = Path(path)
    if not file.is_file():
        raise CheckpointError(
            f"class file not found: {str(file)!r}; pass the text file listing one class per "
            "line (e.g. model_data/cls_classes.txt), or num_classes= instead"
        )
    try:
        text = file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise CheckpointError(
            f"cannot read class file {str(file)!r} as UTF-8 text ({type(error).__name__}: {error})"
        ) from error
    lines = [(number, line.strip()) for number, line in enumerate(text.splitlines(), 1)]
    lines = [(number, line) for number, line in lines if line]
    if not lines:
        raise CheckpointError(
            f"class file {str(file)!r} is empty; it must list one class per line, as "
            "'name' or 'id, name'"
        )
    parsed = [(number, line, _ID_LINE.fullmatch(line)) for number, line in lines]
    with_id = [(number, line) for number, line, match in parsed if match]
    without_id = [(number, line) for number, line, match in parsed if not match]
    if not with_id:
        return [line for _, line in lines]
    if without_id:
        (n_id, line_id), (n_plain, line_plain) = with_id[0], without_id[0]
        raise CheckpointError(
            f"class file {str(file)!r} mixes its two dialects: line {n_id} ({line_id!r}) is "
            f"'id, name' but line {n_plain} ({line_plain!r}) has no id; write every line as "
            "'id, name' or every line as 'name'"
        )
    names: list[str] = []
    for number, line, match in parsed:
        name = match.group(2).strip() if match else ""
        if not name:
            raise CheckpointError(
                f"class file {str(file)!r}, line {number} ({line!r}) has an id but no name; "
                "write it as 'id, name'"
            )
        names.append(name)
    return names
