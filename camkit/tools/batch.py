"""Explaining many image files: discovery, safe output names, batching and a CSV report."""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import re
import sys
import threading
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
from numpy.typing import NDArray

from camkit.errors import (
    CamkitError,
    CheckpointError,
    ConfigurationError,
    ImageSkippedWarning,
    InputError,
    LayerNotFoundError,
    LayerResolutionError,
    MethodNotApplicableError,
    PluginConflictError,
    PluginError,
    TargetError,
    UnknownNameError,
)
from camkit.explainer import Explainer
from camkit.explanation import Explanation
from camkit.pipeline.prepare import PreparedImage
from camkit.pipeline.run import ClassRequest
from camkit.tools.output import CsvWriter, OutputWriter
from camkit.tools.stream import OrderedWorkers, check_workers, ordered_map
from camkit.tools.threads import ModelThreads, Threads, check_threads

__all__ = [
    "IMAGE_EXTENSIONS",
    "REPORT_COLUMNS",
    "FileResult",
    "ImageJob",
    "OverlayWriters",
    "ReportWriter",
    "check_outputs",
    "describe_preprocessing",
    "error_result",
    "explain_files",
    "explain_images",
    "find_images",
    "iter_explain_files",
    "method_slug",
    "plan_outputs",
    "report_row",
    "save_result",
]

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
"""File extensions taken from folders (any case)."""
REPORT_COLUMNS = (
    "image",
    "pred_class",
    "pred_name",
    "confidence",
    "target",
    "layer",
    "heatmap",
    "error",
    "preprocessing",
)
"""Columns of the CSV report, in order. ``preprocessing`` is filled on every row, errors
included: how images were fitted to the model's input (:meth:`DataConfig.describe
<camkit.preprocess.DataConfig.describe>`), or ``custom transform``."""


_UNSAFE = re.compile(r"[^a-z0-9_-]+")


def method_slug(name: str) -> str:
    """A method's name as it appears in output file names: ``gradcam++`` → ``gradcampp``.

    The name is lower-cased, each ``+`` becomes ``p``, and every run of other characters than
    ``a``-``z``, ``0``-``9``, ``_`` and ``-`` becomes one ``-`` (none at either end), so the
    result is a safe file-name part on every system: ``gradcam`` → ``gradcam``,
    ``smoothgradcam++`` → ``smoothgradcampp``, ``Acme/Score.CAM`` → ``acme-score-cam``.
    A name with nothing left (``"%%"``) gives ``cam``. The CLI's overlays and the demo page's
    images are named with it.
    """
    slug = _UNSAFE.sub("-", name.lower().replace("+", "p")).strip("-")
    return slug or "cam"


def _check_name_part(label: str, value: str) -> None:
    separators = {"/", "\\", "\0", os.sep, os.altsep or "/"}
    if not isinstance(value, str) or any(s in value for s in separators):
        raise ConfigurationError(
            f"{label} must be part of a file name, without path separators, got {value!r}; "
            "method_slug gives a safe one"
        )


@attrs.frozen
class ImageJob:
    """One image to explain and where its overlay goes.

    ``root`` is the output folder the overlay is written below (:func:`plan_outputs` sets
    it): no folder between it and the overlay may be a symbolic link. ``None`` takes the
    overlay's own folder.
    """

    source: Path
    output: Path
    root: Path | None = None

    @property
    def output_root(self) -> Path:
        """The output folder the overlay is written below."""
        return self.output.parent if self.root is None else self.root


@attrs.frozen(eq=False)
class FileResult:
    """The outcome for one image file: an explanation or the error that stopped it, and the
    preprocessing the explainer applies (:meth:`DataConfig.describe
    <camkit.preprocess.DataConfig.describe>`, or ``custom transform``)."""

    image: Path
    heatmap: Path | None
    explanation: Explanation | None
    error: str | None
    preprocessing: str = ""

    @property
    def ok(self) -> bool:
        """Whether the image was explained (and its overlay written, when asked)."""
        return self.error is None


def find_images(
    paths: Sequence[str | os.PathLike[str]],
    recursive: bool = True,
    *,
    exclude: Sequence[str | os.PathLike[str]] = (),
    allow_empty: bool = True,
) -> list[tuple[Path, Path]]:
    """Expand files and folders into ``(image, root)`` pairs, sorted within each folder.

    Folders contribute files with an :data:`IMAGE_EXTENSIONS` extension (any case), other
    files are ignored; subfolders are searched too unless ``recursive`` is false (symbolic
    links to folders are not followed). A file given explicitly is always taken (a non-image
    fails later, reported like any unreadable image). ``root`` is the folder the image was
    found from, used to mirror subfolders in the output.

    Args:
        exclude: folders left out of the search, such as the output folder when it lies
            inside an input folder, so that a second run does not explain the first run's
            overlays. A folder is left out only below a searched folder, never the searched
            folder itself.
        allow_empty: when false, finding no image at all is an error that says where camkit
            looked and what counts as an image.

    Raises:
        InputError: a path does not exist; or, with ``allow_empty=False``, no image was
            found.
    """
    excluded = [Path(p).resolve() for p in exclude]
    found: list[tuple[Path, Path]] = []
    folders: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            folders.append(path)
            found.extend((image, path) for image in _folder_files(path, recursive, excluded, True))
        elif path.is_file():
            found.append((path, path.parent))
        else:
            raise InputError(f"no such file or folder: {str(path)!r}")
    if not found and not allow_empty:
        raise _no_images(folders, recursive, excluded)
    return found


def _folder_files(folder: Path, recursive: bool, excluded: list[Path], images: bool) -> list[Path]:
    """The files of ``folder`` (with subfolders when ``recursive``, minus the ``excluded``
    folders below it) whose extension is (``images``) or is not an image's, sorted."""
    root = folder.resolve()
    skip = {e for e in excluded if e != root and e.is_relative_to(root)}
    if recursive:
        files: list[Path] = []
        for directory, subfolders, names in os.walk(folder):
            here = Path(directory)
            subfolders[:] = [d for d in subfolders if (here / d).resolve() not in skip]
            files.extend(here / name for name in names)
    else:
        files = list(folder.iterdir())
    return sorted(
        p for p in files if (p.suffix.lower() in IMAGE_EXTENSIONS) == images and p.is_file()
    )


def _no_images(folders: list[Path], recursive: bool, excluded: list[Path]) -> InputError:
    """The error for a search that found no image: where, how, and what counts."""
    where = ", ".join(repr(str(folder)) for folder in folders)
    how = "with their subfolders" if recursive else "without subfolders (recursion off)"
    kinds = ", ".join(sorted(IMAGE_EXTENSIONS))
    notes = []
    other = [f for folder in folders for f in _folder_files(folder, recursive, excluded, False)]
    if other:
        suffixes = sorted({f.suffix.lower() or "(none)" for f in other})
        notes.append(
            f"{len(other)} other file(s) were passed over, with extensions "
            f"{', '.join(suffixes[:8])}{', ...' if len(suffixes) > 8 else ''}"
        )
    skipped = [
        e for e in excluded for f in folders if e != f.resolve() and e.is_relative_to(f.resolve())
    ]
    if recursive and skipped:
        notes.append(f"the output folder {str(skipped[0])!r} was left out")
    subfolders = sum(1 for folder in folders for p in folder.iterdir() if p.is_dir())
    if not recursive and subfolders:
        notes.append(
            f"{subfolders} subfolder(s) were not searched: turn recursion back on (drop "
            "--no-recursive; recursive=True in Python)"
        )
    return InputError(
        f"no images found in {where}, searched {how}; images are files ending in {kinds} "
        "(any case)" + "".join(f"; {note}" for note in notes) + ". Pass image files or a "
        "folder that holds some."
    )


def plan_outputs(
    images: Sequence[tuple[Path, Path]],
    output_dir: str | os.PathLike[str],
    suffix: str = "_gradcam",
    extension: str = ".jpg",
) -> list[ImageJob]:
    """Give every image an output path inside ``output_dir`` that no other image shares.

    An image ``x.jpg`` gets ``x<suffix><extension>``: ``x_gradcam.jpg`` by default (the seed
    toolkit's names); the CLI passes ``suffix="_" + method_slug(method)`` (``x_gradcampp.jpg``
    for ``gradcam++``). Subfolders below an image's root are mirrored (``a/x.jpg`` →
    ``out/a/x_gradcam.jpg``); two images that would get the same name (``x.jpg`` and
    ``x.png``, or the same file name from two roots) are told apart by their extension, then
    by a counter. No output path leaves ``output_dir``.

    Raises:
        ConfigurationError: ``suffix`` or ``extension`` holds a path separator.
    """
    _check_name_part("suffix", suffix)
    _check_name_part("extension", extension)
    out_root = Path(output_dir)
    resolved_root = out_root.resolve()
    used: set[str] = set()
    jobs: list[ImageJob] = []
    folders: dict[Path, tuple[Path, Path]] = {}  # mirrored folder -> (folder, resolved)
    for image, root in images:
        try:
            relative_parent = image.parent.relative_to(root)
        except ValueError:
            relative_parent = Path()
        parts = [p for p in relative_parent.parts if p not in ("", ".", "..")]
        mirrored = out_root.joinpath(*parts)
        if mirrored not in folders:  # resolved once per folder, not once per image
            resolved = mirrored.resolve()
            if not resolved.is_relative_to(resolved_root):
                mirrored_or_root = (out_root, resolved_root)
            else:
                mirrored_or_root = (mirrored, resolved)
            folders[mirrored] = mirrored_or_root
        folder, resolved_folder = folders[mirrored]
        candidates = itertools.chain(
            [
                f"{image.stem}{suffix}{extension}",
                f"{image.stem}_{image.suffix.lstrip('.').lower()}{suffix}{extension}",
            ],
            (f"{image.stem}_{n}{suffix}{extension}" for n in itertools.count(2)),
        )
        for name in candidates:
            key = os.path.normcase(str(resolved_folder / name)).lower()
            if key not in used:
                used.add(key)
                jobs.append(ImageJob(image, folder / name, out_root))
                break
    return jobs


def report_row(result: FileResult) -> list[object]:
    """The cells of ``result``'s report row, in :data:`REPORT_COLUMNS` order.

    Numbers stay numbers (the confidence rounded to 6 decimals) and missing values are
    ``None``: :func:`~camkit.tools.output.neutralise_cell` turns them into text.
    """
    e = result.explanation
    return [
        result.image,
        None if e is None else e.pred_class,
        None if e is None else e.pred_name,
        None if e is None else round(e.confidence, 6),
        None if e is None else e.target,
        None if e is None else e.layer,
        result.heatmap,
        result.error,
        result.preprocessing,
    ]


class ReportWriter(CsvWriter):
    """Writes the CSV report (:data:`REPORT_COLUMNS`) row by row, each row whole and
    straight to the operating system, so an interrupted run keeps every complete row.

    The file is created by :class:`~camkit.tools.output.OutputWriter`'s rules: an existing
    report is replaced only with ``overwrite``, never through a symbolic link, and cells a
    spreadsheet would run as formulas are neutralised
    (:func:`~camkit.tools.output.neutralise_cell`).

    Raises:
        OutputError: the report exists (without ``overwrite``) or cannot be created; a row
            cannot be written (a full disk: the complete rows are kept).
    """

    def __init__(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> None:
        target = Path(path)
        super().__init__(OutputWriter(target.parent, overwrite=overwrite), target, REPORT_COLUMNS)

    def write(self, result: FileResult) -> None:
        """Append one row for ``result`` (:func:`report_row`)."""
        self.writerow(report_row(result))

    def __enter__(self) -> ReportWriter:
        return self


def check_outputs(
    jobs: Sequence[ImageJob],
    report: str | os.PathLike[str] | None = None,
    *,
    by_class: bool = False,
    overwrite: bool = False,
    extra: Sequence[str | os.PathLike[str]] = (),
) -> None:
    """Check, before any work, that the overlays of ``jobs``, the ``report`` and the
    ``extra`` files (an HTML page) can be written
    (:meth:`~camkit.tools.output.OutputWriter.check_planned`).

    With ``by_class`` (``top``), the overlays' names end in ``_class<N>``, so the files
    already there with such a name are the ones that count.

    Raises:
        OutputError: an output folder cannot be used, a folder on the way is a symbolic link,
            or, without ``overwrite``, planned files exist (how many, and one of them).
    """
    planned: dict[Path, list[Path]] = {}
    listed: dict[Path, list[str]] = {}
    for job in jobs:
        paths = planned.setdefault(job.output_root, [])
        if not by_class:
            paths.append(job.output)
            continue
        folder = job.output.parent
        if folder not in listed:
            real = os.path.isdir(folder) and not os.path.islink(folder)
            listed[folder] = sorted(os.listdir(folder)) if real else []
        pattern = re.compile(
            re.escape(job.output.stem) + r"_class\d+" + re.escape(job.output.suffix)
        )
        paths += [folder / name for name in listed[folder] if pattern.fullmatch(name)]
    for path in [*([report] if report is not None else []), *extra]:
        planned.setdefault(Path(path).parent, []).append(Path(path))
    for root, paths in planned.items():
        writer = OutputWriter(root, overwrite=overwrite)
        if by_class:  # the folders on the way to each overlay, which may not exist yet
            writer.check_folders([job.output for job in jobs if job.output_root == root])
        writer.check_planned(paths)


class OverlayWriters:
    """One :class:`~camkit.tools.output.OutputWriter` per output folder (a job's
    :attr:`ImageJob.output_root`), made when first needed: what :func:`save_result` writes
    overlays with.

    Args:
        overwrite: replace overlays that exist.
    """

    def __init__(self, overwrite: bool) -> None:
        self.overwrite = overwrite
        self._writers: dict[Path, OutputWriter] = {}
        self._lock = threading.Lock()

    def for_job(self, job: ImageJob) -> OutputWriter:
        """The writer of ``job``'s output folder (thread-safe: the folder run's writer
        threads share one)."""
        root = job.output_root
        with self._lock:
            if root not in self._writers:
                self._writers[root] = OutputWriter(root, overwrite=self.overwrite)
            return self._writers[root]


_RUN_WIDE: tuple[type[CamkitError], ...] = (
    CheckpointError,
    ConfigurationError,
    LayerNotFoundError,
    LayerResolutionError,
    MethodNotApplicableError,
    PluginConflictError,
    PluginError,
    TargetError,
    UnknownNameError,
)
"""Errors that concern the whole run (its options, the model, the layer, a plugin), not one
image: :func:`iter_explain_files` lets them propagate instead of writing them as rows."""


def error_result(image: Path, error: BaseException, preprocessing: str = "") -> FileResult:
    """The result of an image that failed: its ``error`` is ``"<type>: <message>"``.

    Also warns (:class:`~camkit.errors.ImageSkippedWarning`) naming the image.
    """
    message = f"{type(error).__name__}: {error}"
    warnings.warn(f"camkit: skipped {str(image)!r}: {message}", ImageSkippedWarning, stacklevel=3)
    return FileResult(image, None, None, message, preprocessing)


def describe_preprocessing(explainer: Explainer) -> str:
    """How the explainer fits images to the model, in words (the report's
    ``preprocessing`` column): ``"custom transform"`` or
    :meth:`~camkit.preprocess.DataConfig.describe`."""
    if explainer.transform is not None:
        return "custom transform"
    return explainer.data_config.describe()


def iter_explain_files(
    explainer: Explainer,
    jobs: Sequence[ImageJob],
    *,
    target: int | None = None,
    top: int | None = None,
    alpha: float = 0.5,
    batch_size: int = 8,
    save: bool = True,
    report: str | os.PathLike[str] | None = None,
    progress: bool | None = None,
    overwrite: bool = False,
    workers: int | None = None,
    threads: Threads = None,
) -> Iterator[FileResult]:
    """Explain image files in batches, yielding one :class:`FileResult` per job, in order
    (with ``top``, one per job and class, best score first).

    The run is a stream of three stages (:mod:`camkit.tools.stream`):

    1. ``workers`` threads read, decode and preprocess the images
       (:meth:`Explainer.prepare_image <camkit.Explainer.prepare_image>`), a window of
       ``2 × batch_size`` images ahead of the model;
    2. the calling thread explains them ``batch_size`` at a time (:func:`explain_images`:
       the explainer's one pipeline, prepare, capture, method, place);
    3. ``workers`` other threads render, encode and write the overlays (what
       :func:`save_result` does), up to ``2 × batch_size`` images behind the model.

    Results come in input order, and the CSV report, when ``report`` is given, gets each
    row as its result comes. At most about ``5 × batch_size`` images are in flight,
    whatever the number of files. The results, the report and the overlays are the same
    whatever ``workers`` is. With ``workers=0`` everything runs in the calling thread, one
    step after the other. Any exception, and closing the iterator early, stops the workers
    and joins them.

    An unreadable, truncated or non-image file is reported (an
    :class:`~camkit.errors.ImageSkippedWarning` and a result with ``error``) and the run
    goes on.

    Every file is written by :class:`~camkit.tools.output.OutputWriter`'s rules. Before any
    work (at the first result), :func:`check_outputs` checks the planned overlays and the
    report: files that exist stop the run unless ``overwrite``. Nothing is written through a
    symbolic link; cells that a spreadsheet would run as formulas are neutralised.

    When explaining a batch raises a :class:`~camkit.errors.CamkitError` that concerns its
    images (an :class:`~camkit.errors.InputError`, a :class:`~camkit.errors.MethodError`, a
    :class:`~camkit.errors.ModelOutputError`, ...) or a ``RuntimeError`` (what a model's
    forward raises on an input it cannot take, and CUDA's out-of-memory error), the batch's
    images are explained again one by one: each one that fails again becomes a result with
    its ``error`` (type and message), the others are kept, and the run goes on. Errors that
    concern the whole run propagate, after the results of the images before: a bad option
    (``ConfigurationError``), a target out of range (``TargetError``), a layer that cannot
    be found or used, a method that does not apply to the model, a plugin error. Other
    exceptions (``KeyboardInterrupt``, a ``TypeError`` from a bug) stop the run; the report
    keeps its rows so far.

    Args:
        target: the class to explain in every image; ``None`` for each one's prediction.
        top: explain each image's ``top`` best classes from one forward
            (:meth:`~camkit.Explainer.explain_batch_classes`); each overlay's name then ends
            in ``_class<N>`` before the extension; ``target`` is ignored.
        save: write each overlay to its job's output path.
        progress: show a tqdm bar with the images per second; ``None`` shows it only when
            stderr is a terminal.
        overwrite: replace overlays and a report that exist.
        workers: threads that decode and preprocess, and as many that write overlays;
            ``None`` for half the CPUs, 1 to 4; ``0`` for none. A custom ``transform``
            of the explainer runs on these threads: pass ``0`` if it is not thread-safe.
        threads: the model's CPU threads for the run (torch's intra-op threads, restored
            afterwards): a count, ``"auto"`` to time the first batches at torch's count
            and with a core left to each worker and keep the faster
            (:class:`~camkit.tools.threads.ModelThreads`; what ``camkit explain`` does), or
            ``None`` (default) to leave torch's setting alone. Different counts can change
            the maps by float rounding.

    Raises:
        ConfigurationError: ``batch_size`` or ``top`` < 1, ``alpha`` outside ``[0, 1]``,
            ``workers`` not an int >= 0 or None, or ``threads`` not an int >= 1, ``"auto"``
            or None.
        TargetError: ``target`` is out of range for the model.
        OutputError: planned outputs exist (without ``overwrite``) or cannot be written
            (checked before any work), or the report cannot be written (a full disk: its
            complete rows are kept).
        CamkitError: another error that concerns the whole run (see above).
    """
    if batch_size < 1:
        raise ConfigurationError(f"batch_size must be >= 1, got {batch_size}")
    if not 0.0 <= alpha <= 1.0:
        raise ConfigurationError(f"alpha must lie in [0, 1], got {alpha!r}")
    if top is not None and (isinstance(top, bool) or not isinstance(top, int) or top < 1):
        raise ConfigurationError(f"top must be an int >= 1 or None, got {top!r}")
    pool_size = check_workers(workers)
    check_threads(threads)
    show = sys.stderr.isatty() if progress is None else progress
    check_outputs(jobs if save else [], report, by_class=top is not None, overwrite=overwrite)
    outputs = OverlayWriters(overwrite) if save else None
    writer = ReportWriter(report, overwrite=overwrite) if report is not None else None
    preprocessing = describe_preprocessing(explainer)
    by_class = top is not None
    window = 2 * batch_size

    try:
        with contextlib.ExitStack() as stack:
            bar = stack.enter_context(_progress_bar(len(jobs), show))

            def emit(job: ImageJob, outcome: _Outcome) -> Iterator[FileResult]:
                """The results of one job, each written to the report as it is yielded."""
                for result in _file_results(job, outcome, preprocessing):
                    if writer is not None:
                        writer.write(result)
                    yield result
                bar.update(1)

            prepared = stack.enter_context(
                contextlib.closing(
                    ordered_map(
                        functools.partial(_prepare, explainer),
                        jobs,
                        workers=pool_size,
                        window=max(window, pool_size),
                        name="prepare",
                    )
                )
            )
            written = stack.enter_context(OrderedWorkers[_Done](pool_size, name="write"))
            model_threads = stack.enter_context(
                ModelThreads(threads, workers=pool_size, device=explainer.device)
            )
            for start in range(0, len(jobs), batch_size):
                chunk = jobs[start : start + batch_size]
                try:
                    items = [next(prepared) for _ in chunk]
                    images = [item for item in items if isinstance(item, PreparedImage)]
                    groups = iter(explain_images(explainer, images, target, top))
                except Exception:  # a run-wide error: the results before it come first
                    while written:
                        yield from emit(*written.next())
                    raise
                outcomes = [
                    next(groups) if isinstance(item, PreparedImage) else item for item in items
                ]
                del items, images  # the inputs were copied to the device: free them now
                for job, outcome in zip(chunk, outcomes, strict=True):
                    if isinstance(outcome, Exception) or outputs is None:
                        written.put((job, outcome))
                    else:
                        written.submit(_write_overlays, job, outcome, outputs, alpha, by_class)
                while written and (written.ready() or len(written) > window):
                    yield from emit(*written.next())
                model_threads.batch_done()
            while written:
                yield from emit(*written.next())
    finally:
        if writer is not None:
            writer.close()


_Outcome = list[Explanation] | list[tuple[Explanation, Path | Exception]] | Exception
"""What became of one job: its explanations (with ``save``, each with its overlay's path or
the error that stopped the write), or the error that stopped the image."""
_Done = tuple[ImageJob, _Outcome]


def _prepare(explainer: Explainer, job: ImageJob) -> PreparedImage | Exception:
    """``job``'s image read, decoded and preprocessed (on a worker), or the error that
    concerns this image only; errors that concern the run propagate."""
    try:
        return explainer.prepare_image(job.source)
    except _RUN_WIDE:
        raise
    except (CamkitError, RuntimeError) as error:
        return error


def _write_overlays(
    job: ImageJob, group: list[Explanation], outputs: OverlayWriters, alpha: float, by_class: bool
) -> _Done:
    """Render and write the overlay of each explanation of ``job`` (on a worker): its path,
    or the error that stopped it (as :func:`save_result`)."""
    done: list[tuple[Explanation, Path | Exception]] = []
    for explanation in group:
        try:
            done.append((explanation, _write_overlay(job, explanation, outputs, alpha, by_class)))
        except (OSError, CamkitError) as error:
            done.append((explanation, error))
    return job, done


def _file_results(job: ImageJob, outcome: _Outcome, preprocessing: str) -> list[FileResult]:
    """The results of one job; failures warn (:func:`error_result`) in the calling thread."""
    if isinstance(outcome, Exception):
        return [error_result(job.source, outcome, preprocessing)]
    results = []
    for item in outcome:
        explanation, heatmap = item if isinstance(item, tuple) else (item, None)
        if isinstance(heatmap, Exception):
            results.append(error_result(job.source, heatmap, preprocessing))
        else:
            results.append(FileResult(job.source, heatmap, explanation, None, preprocessing))
    return results


class _NoBar:
    """The progress bar when none is shown."""

    def update(self, count: int) -> None:
        """Nothing to show."""


@contextlib.contextmanager
def _progress_bar(total: int, show: bool) -> Iterator[Any]:
    """A tqdm bar on stderr counting images, with their rate (``img/s``), or no bar."""
    if not show:
        yield _NoBar()
        return
    from tqdm import tqdm  # only when a bar is shown

    with tqdm(total=total, unit="img", desc="camkit", dynamic_ncols=True) as bar:
        yield bar


def _explain(
    explainer: Explainer, images: Sequence[_Image], target: int | None, top: int | None
) -> list[list[Explanation]]:
    """The explanations of each image: one, or its ``top`` classes (the explainer's
    pipeline: :meth:`~camkit.Explainer.prepare`, then :meth:`~camkit.Explainer.run`)."""
    if not images:
        return []
    prepared = explainer.prepare(images)
    if top is None:
        return [[e] for e in explainer.run(prepared, target)]
    flat = list(explainer.run(prepared, classes=ClassRequest(None, top)))
    per_image = len(flat) // len(images)
    return [flat[i : i + per_image] for i in range(0, len(flat), per_image)]


_Image = NDArray[np.uint8] | PreparedImage


def explain_images(
    explainer: Explainer,
    images: Sequence[NDArray[np.uint8] | PreparedImage],
    target: int | None = None,
    top: int | None = None,
) -> list[list[Explanation] | Exception]:
    """Explain decoded images (or images prepared by :meth:`Explainer.prepare_image
    <camkit.Explainer.prepare_image>`) as one batch; for each image, its explanations (one,
    or its ``top`` classes best first) or the error that stopped it.

    When the batch fails for a reason that may concern some images only (a
    :class:`~camkit.errors.CamkitError` about an input, a ``RuntimeError`` from the model),
    the images are explained again one by one, so each one gets its explanations or the
    error it raised alone. Every engine (the folder run, the Ray engine) explains its batches
    with this function.

    Raises:
        CamkitError: an error that concerns the whole run (a bad option, a target out of
            range, a layer or method that cannot be used, a plugin error).
    """
    try:
        return list(_explain(explainer, images, target, top))
    except _RUN_WIDE:
        raise
    except (CamkitError, RuntimeError) as error:
        if len(images) == 1:
            return [error]
    outcomes: list[list[Explanation] | Exception] = []
    for image in images:
        try:
            outcomes.extend(_explain(explainer, [image], target, top))
        except _RUN_WIDE:
            raise
        except (CamkitError, RuntimeError) as error:
            outcomes.append(error)
    return outcomes


def save_result(
    job: ImageJob,
    explanation: Explanation,
    outputs: OverlayWriters | None,
    alpha: float,
    by_class: bool,
    preprocessing: str,
) -> FileResult:
    """The result of one explanation of ``job``'s image, with its overlay written (named for
    its class with ``by_class``: ``x_gradcampp_class3.jpg``) unless ``outputs`` is ``None``.

    An overlay that cannot be written makes an error result (:func:`error_result`).
    """
    heatmap: Path | None = None
    if outputs is not None:
        try:
            heatmap = _write_overlay(job, explanation, outputs, alpha, by_class)
        except (OSError, CamkitError) as error:
            return error_result(job.source, error, preprocessing)
    return FileResult(job.source, heatmap, explanation, None, preprocessing)


def _write_overlay(
    job: ImageJob, explanation: Explanation, outputs: OverlayWriters, alpha: float, by_class: bool
) -> Path:
    """Render ``explanation``'s overlay and write it to ``job``'s output (named for its class
    with ``by_class``)."""
    output = job.output
    if by_class:
        output = output.with_name(f"{output.stem}_class{explanation.target}{output.suffix}")
    return outputs.for_job(job).write_image(output, explanation.overlay(alpha))


def explain_files(
    explainer: Explainer,
    jobs: Sequence[ImageJob],
    *,
    target: int | None = None,
    top: int | None = None,
    alpha: float = 0.5,
    batch_size: int = 8,
    save: bool = True,
    report: str | os.PathLike[str] | None = None,
    progress: bool | None = None,
    overwrite: bool = False,
    workers: int | None = None,
    threads: Threads = None,
) -> list[FileResult]:
    """Like :func:`iter_explain_files`, returning every result as a list."""
    return list(
        iter_explain_files(
            explainer,
            jobs,
            target=target,
            top=top,
            alpha=alpha,
            batch_size=batch_size,
            save=save,
            report=report,
            progress=progress,
            overwrite=overwrite,
            workers=workers,
            threads=threads,
        )
    )
