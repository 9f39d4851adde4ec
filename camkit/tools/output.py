"""The one output writer: every file camkit writes (overlays, CSV reports, pages) goes
through it.

Its rules, the same for the CLI, the Python API, the seed functions and the demo:

- **No overwrite unless asked.** A file that exists is never replaced without
  ``overwrite=True`` (``--overwrite``); :meth:`OutputWriter.check_planned` says so before any
  work, with how many planned files exist and one of them.
- **No symlinks.** Nothing is written through a symbolic link: neither a link planted at the
  file's own name (with ``overwrite``, the link itself is replaced by a regular file, its
  target is left alone) nor a linked folder between the output folder and the file (always
  refused). The output folder itself is the user's choice and may be anything.
- **Names are never handed to OpenCV.** Images are encoded in memory (:func:`encode_image`)
  and written with Python, so names OpenCV cannot take (non-UTF-8 names, decoded by Python
  with ``surrogateescape``) are written like any other.
- **Neutral CSV cells.** Text cells that a spreadsheet would run as a formula get a leading
  ``'`` (:func:`neutralise_cell`).
- **Clean failures.** A full disk or a refused permission is an
  :class:`~camkit.errors.OutputError` that names the file and what to do; a CSV row is
  written whole or not at all, so an interrupted report keeps every complete row.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import numbers
import os
import secrets
import stat
from collections.abc import Iterable, Sequence
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from camkit.errors import ConfigurationError, OutputError

__all__ = [
    "FORMULA_PREFIXES",
    "CsvWriter",
    "OutputWriter",
    "encode_image",
    "neutralise_cell",
]

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
"""First characters that make a spreadsheet read a cell as a formula (OWASP's list)."""

_DISK_FULL = frozenset({errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)})
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_BINARY = getattr(os, "O_BINARY", 0)
_FILE_MODE = 0o666  # less the umask, as open() does


def neutralise_cell(value: object) -> str:
    """The text of one CSV cell, safe to open in a spreadsheet (CSV formula injection).

    As OWASP recommends, a text cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a
    carriage return gets a leading ``'``, so spreadsheets show it as text instead of running
    it: ``=HYPERLINK(...)`` → ``'=HYPERLINK(...)``. Paths, class names, layer names and error
    messages are always text, whatever they look like (a class named ``-1`` becomes
    ``'-1``).

    Numbers are exempt: an ``int`` or ``float`` (any :class:`numbers.Real`, numpy scalars
    included) is written with ``str()``, so ``-0.5`` stays ``-0.5``. A number is data camkit
    computed and cannot carry a formula. Pass numbers as numbers, not as formatted text.
    ``None`` is the empty cell.
    """
    if value is None:
        return ""
    if isinstance(value, numbers.Real):
        return str(value)
    text = os.fspath(value) if isinstance(value, os.PathLike) else str(value)
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def _image_extension(extension: str, path: Path | None = None) -> str:
    ext = extension.lower()
    if (
        ext.startswith(".")
        and ext[1:].isascii()
        and ext[1:].isalnum()
        and cv2.haveImageWriter(f"x{ext}")
    ):
        return ext
    where = "" if path is None else f"cannot write {str(path)!r}: "
    shown = ascii(extension)[1:-1] if extension else "(none)"
    raise ConfigurationError(
        f"{where}unsupported image extension {shown}; use .png, .jpg, .bmp, .tif or .webp"
    )


def encode_image(rgb: NDArray[np.uint8], extension: str) -> bytes:
    """Encode an RGB ``(H, W, 3)`` uint8 image in memory, in the format of ``extension``
    (``.png``, ``.jpg``, ``.jpeg``, ``.bmp``, ``.tif``, ``.tiff``, ``.webp``; any case).

    Raises:
        ConfigurationError: OpenCV cannot write that format, or ``rgb`` is not an RGB uint8
            image.
        OutputError: the encoder failed.
    """
    ext = _image_extension(extension)
    array = np.asarray(rgb)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise ConfigurationError(
            f"an image to write must be RGB uint8 (H, W, 3), got {array.dtype} {array.shape}"
        )
    done, buffer = cv2.imencode(ext, cv2.cvtColor(array, cv2.COLOR_RGB2BGR))
    if not done:
        raise OutputError(f"OpenCV could not encode a {array.shape} image as {ext}")
    return bytes(buffer.tobytes())


def _failure(error: OSError, path: Path, doing: str, kept: str = "") -> OutputError:
    """An :class:`OutputError` for ``error`` that names ``path`` and the fix."""
    if error.errno in _DISK_FULL:
        return OutputError(
            f"the disk is full: could not {doing} {str(path)!r}{kept}. Free some space or "
            "choose another output folder, then run again (with --overwrite / overwrite=True "
            "to replace what was written)"
        )
    if isinstance(error, PermissionError):
        return OutputError(
            f"permission denied: could not {doing} {str(path)!r}{kept}. Choose an output "
            "folder you can write to"
        )
    reason = error.strerror or str(error)
    return OutputError(f"could not {doing} {str(path)!r}{kept}: {reason}")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written <= 0:  # pragma: no cover - a regular file raises instead
            raise OSError(errno.EIO, "the write made no progress")
        view = view[written:]


class OutputWriter:
    """Writes files below one output folder, by the rules of :mod:`camkit.tools.output`.

    Args:
        root: the output folder (``--out``). It is the user's choice: it may be a link to a
            folder, and it is created, with its parents, when missing. Below it, no folder
            may be a symbolic link.
        overwrite: replace files that exist (a link at a file's name is replaced itself,
            never its target). Without it, an existing file is an
            :class:`~camkit.errors.OutputError`.
    """

    def __init__(self, root: str | os.PathLike[str], *, overwrite: bool = False) -> None:
        self.root = Path(root)
        self.overwrite = bool(overwrite)
        self._checked: set[Path] = set()  # folders below the root known to be real folders

    # --- checks before any work -------------------------------------------------------
    def check_root(self) -> None:
        """Check that the output folder is a folder, or can be created, and is writable.

        Creates nothing.

        Raises:
            OutputError: the output folder (or the nearest part of its path that exists) is
                a file, or cannot be written to.
        """
        existing = self.root
        while not os.path.lexists(existing) and existing.parent != existing:
            existing = existing.parent
        if not existing.is_dir():
            if existing == self.root and existing.is_symlink():
                raise OutputError(
                    f"the output folder {str(self.root)!r} is a symbolic link to nothing; "
                    "remove it or choose another output folder"
                )
            if existing == self.root:
                raise OutputError(
                    f"the output folder {str(self.root)!r} is a file, not a folder; choose "
                    "a folder (it is created when missing)"
                )
            raise OutputError(
                f"cannot create the output folder {str(self.root)!r}: {str(existing)!r} is "
                "a file, not a folder; choose another output folder"
            )
        if not os.access(existing, os.W_OK | os.X_OK):
            what = "the output folder" if existing == self.root else "the folder"
            raise OutputError(
                f"permission denied: cannot write to {what} {str(existing)!r}; choose an "
                "output folder you can write to"
            )

    def check_planned(self, paths: Iterable[str | os.PathLike[str]]) -> None:
        """Check, before any work, that the files of ``paths`` can all be written.

        Creates nothing.

        Raises:
            OutputError: the output folder cannot be used (:meth:`check_root`); a folder on
                the way to a file is a symbolic link or a file (:meth:`check_folders`); a
                planned file is a folder; or, without ``overwrite``, planned files already
                exist (the message gives how many and one of them).
            ConfigurationError: a path is not below the output folder.
        """
        planned = [Path(raw) for raw in paths]
        self.check_folders(planned)
        existing: list[Path] = []
        for path in planned:
            if os.path.lexists(path):
                if os.path.isdir(path) and not os.path.islink(path):
                    raise OutputError(
                        f"cannot write {str(path)!r}: a folder of that name exists; move it "
                        "or choose another output folder"
                    )
                existing.append(path)
        if existing and not self.overwrite:
            count = len(existing)
            files = "file already exists" if count == 1 else "files already exist"
            raise OutputError(
                f"{count} planned output {files} in {str(self.root)!r}, for example "
                f"{str(existing[0])!r}; camkit never overwrites files unless asked: pass "
                "--overwrite (overwrite=True in Python) to replace them, or choose another "
                "output folder"
            )

    def check_folders(self, paths: Iterable[str | os.PathLike[str]]) -> None:
        """Check the output folder (:meth:`check_root`) and, for each path, the folders
        below it on the way to the path that exist: none may be a symbolic link or a file.

        Creates nothing.

        Raises:
            OutputError: a folder cannot be used.
            ConfigurationError: a path is not below the output folder.
        """
        self.check_root()
        seen: set[Path] = set()
        for raw in paths:
            folder = self.root
            for part in self._inside(Path(raw)).parent.parts:
                folder = folder / part
                if folder in seen:
                    continue
                try:
                    info = os.lstat(folder)
                except FileNotFoundError:
                    break
                except OSError as error:
                    raise _failure(error, folder, "check the folder") from error
                self._refuse_folder(folder, info)
                seen.add(folder)

    # --- writing ------------------------------------------------------------------------
    def write_bytes(self, path: str | os.PathLike[str], data: bytes) -> Path:
        """Write ``data`` to ``path`` (below the output folder); return the path.

        Missing folders are created. With ``overwrite``, the file is written to a temporary
        name in its folder first and then renamed over the old one, so a reader never sees
        half a file and a link at that name is replaced, not followed.

        Raises:
            OutputError: the file exists (without ``overwrite``); a folder on the way is a
                symbolic link or a file; the path is a folder; the disk is full; the file
                system refused the write.
        """
        target = Path(path)
        self._prepare_folder(target)
        if self.overwrite:
            self._replace(target, data)
        else:
            fd = self._create(target)
            try:
                _write_all(fd, data)
            except OSError as error:
                os.close(fd)
                _remove(target)  # ours: created exclusively above
                raise _failure(error, target, "write") from error
            os.close(fd)
        return target

    def write_text(self, path: str | os.PathLike[str], text: str) -> Path:
        """Write ``text`` as UTF-8 (see :meth:`write_bytes`); return the path."""
        return self.write_bytes(path, text.encode("utf-8", "backslashreplace"))

    def write_image(self, path: str | os.PathLike[str], rgb: NDArray[np.uint8]) -> Path:
        """Encode an RGB image in the format of ``path``'s extension and write it (see
        :meth:`write_bytes`); return the path.

        Raises:
            ConfigurationError: the extension is not an image format OpenCV can write.
            OutputError: as :meth:`write_bytes`.
        """
        target = Path(path)
        _image_extension(target.suffix, target)
        return self.write_bytes(target, encode_image(rgb, target.suffix))

    def open_csv(
        self, path: str | os.PathLike[str], header: Sequence[object] | None = None
    ) -> CsvWriter:
        """A :class:`CsvWriter` on ``path`` (created now), with ``header`` as first row."""
        return CsvWriter(self, path, header)

    # --- internals ----------------------------------------------------------------------
    def _inside(self, path: Path) -> Path:
        """``path`` relative to the output folder."""
        try:
            relative = Path(os.path.abspath(path)).relative_to(os.path.abspath(self.root))
        except ValueError:
            raise ConfigurationError(
                f"{str(path)!r} is outside the output folder {str(self.root)!r}"
            ) from None
        if not relative.parts:
            raise ConfigurationError(f"{str(path)!r} is the output folder, not a file in it")
        return relative

    def _refuse_folder(self, folder: Path, info: os.stat_result) -> None:
        if stat.S_ISLNK(info.st_mode):
            raise OutputError(
                f"{str(folder)!r} is a symbolic link; camkit never writes through one. "
                "Remove the link or choose another output folder"
            )
        if not stat.S_ISDIR(info.st_mode):
            raise OutputError(
                f"cannot create the folder {str(folder)!r}: a file of that name exists; move "
                "it or choose another output folder"
            )

    def _prepare_folder(self, target: Path) -> None:
        """Create the output folder and the folders below it that ``target`` needs, and
        check that none of those below it is a link."""
        parent = self._inside(target).parent
        if self.root not in self._checked:
            self.check_root()
            try:
                self.root.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise _failure(error, self.root, "create the output folder") from error
            self._checked.add(self.root)
        folder = self.root
        for part in parent.parts:
            folder = folder / part
            if folder in self._checked:
                continue
            try:
                os.mkdir(folder)
            except FileExistsError:
                pass
            except OSError as error:
                raise _failure(error, folder, "create the folder") from error
            self._refuse_folder(folder, os.lstat(folder))
            self._checked.add(folder)

    def _create(self, target: Path) -> int:
        """A new file at ``target``, opened for writing; never an existing file or link."""
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _BINARY
        try:
            return os.open(target, flags, _FILE_MODE)
        except FileExistsError:
            kind = "a symbolic link" if os.path.islink(target) else "a file"
            raise OutputError(
                f"{str(target)!r} already exists ({kind}); camkit never overwrites files "
                "unless asked: pass --overwrite (overwrite=True in Python) to replace it, or "
                "choose another output folder"
            ) from None
        except OSError as error:
            raise _failure(error, target, "create") from error

    def _replace(self, target: Path, data: bytes) -> None:
        if os.path.isdir(target) and not os.path.islink(target):
            raise OutputError(
                f"cannot write {str(target)!r}: a folder of that name exists; move it or "
                "choose another output folder"
            )
        temporary = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
        fd = self._create(temporary)
        try:
            try:
                _write_all(fd, data)
            finally:
                os.close(fd)
            os.replace(temporary, target)  # replaces a link at ``target``, not its target
        except OSError as error:
            _remove(temporary)
            raise _failure(error, target, "write") from error

    def _open_for_rows(self, target: Path) -> int:
        """A new, empty file at ``target`` for a CSV written row by row."""
        self._prepare_folder(target)
        if self.overwrite and os.path.lexists(target):
            if os.path.isdir(target) and not os.path.islink(target):
                raise OutputError(
                    f"cannot write {str(target)!r}: a folder of that name exists; move it or "
                    "choose another output folder"
                )
            try:
                os.unlink(target)  # a link is removed itself, its target is left alone
            except FileNotFoundError:
                pass
            except OSError as error:
                raise _failure(error, target, "replace") from error
        return self._create(target)


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


class CsvWriter:
    """A CSV file written row by row, each row whole or not at all.

    Made by :meth:`OutputWriter.open_csv`, which creates the file by the writer's rules (no
    overwrite unless asked, never through a link). Each row's cells go through
    :func:`neutralise_cell`, the row is encoded (UTF-8; a name that is not valid UTF-8
    keeps its undecodable bytes as ``\\udcXX`` escapes) and written with one call, straight
    to the operating system, so a crash loses no complete row. If a write fails (a full
    disk), the file is cut back to its last complete row, closed, and an
    :class:`~camkit.errors.OutputError` says how many rows were kept.
    """

    def __init__(
        self,
        output: OutputWriter,
        path: str | os.PathLike[str],
        header: Sequence[object] | None = None,
    ) -> None:
        self.path = Path(path)
        self.rows = 0
        """Complete data rows written (the header not counted)."""
        self._size = 0
        self._fd: int | None = output._open_for_rows(self.path)
        if header is not None:
            self._write(header)

    def writerow(self, cells: Iterable[object]) -> None:
        """Append one row; each cell goes through :func:`neutralise_cell`.

        Raises:
            OutputError: the row could not be written (the file then holds every complete
                row before it, and is closed), or the writer is closed.
        """
        self._write(cells)
        self.rows += 1

    def _write(self, cells: Iterable[object]) -> None:
        if self._fd is None:
            raise OutputError(f"the CSV file {str(self.path)!r} is closed; open a new one")
        buffer = io.StringIO()
        csv.writer(buffer).writerow([neutralise_cell(cell) for cell in cells])
        data = buffer.getvalue().encode("utf-8", "backslashreplace")
        try:
            _write_all(self._fd, data)
        except OSError as error:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._size)
            self.close()
            rows = "1 complete row is" if self.rows == 1 else f"{self.rows} complete rows are"
            kept = f"; its header and {rows} kept" if self._size else ""
            raise _failure(error, self.path, "write a row of", kept) from error
        self._size += len(data)

    def close(self) -> None:
        """Close the file (again: nothing)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def __enter__(self) -> CsvWriter:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
