"""Explaining a Ray Dataset of images on many machines (``pip install "camkit[ray]"``).

:func:`explain_dataset` turns a Ray Dataset of image paths or images into a Dataset of
explanations, one row per image and class (:data:`COLUMNS`), computed by a pool of Ray
actors that each build the :class:`~camkit.Explainer` once. :func:`write_report` runs it
and writes the rows as CSV (the folder run's report, :data:`~camkit.tools.batch.REPORT_COLUMNS`)
and as Parquet (:data:`COLUMNS`). :func:`decode_map` reads the ``map`` column back.

The steps are the folder run's (:mod:`camkit.tools.batch`): the same output plan
(:func:`~camkit.tools.batch.plan_outputs`, checked before any work by
:func:`~camkit.tools.batch.check_outputs`), the same batches with one-by-one retry
(:func:`~camkit.tools.batch.explain_images`), the same overlays written by the same writer
(:func:`~camkit.tools.batch.save_result`), the same error rows. Only the place they run
changes.

This module imports without Ray; using it without Ray raises
:class:`~camkit.errors.MissingDependencyError`. ``import camkit`` never imports Ray.
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import cv2
import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from camkit import errors
from camkit.errors import (
    CamkitError,
    CheckpointError,
    ConfigurationError,
    ImageSkippedWarning,
    InputError,
    MissingDependencyError,
)
from camkit.explainer import Explainer
from camkit.explanation import Explanation
from camkit.preprocess import load_rgb
from camkit.render import JetRenderer
from camkit.tools.batch import (
    FileResult,
    ImageJob,
    OverlayWriters,
    ReportWriter,
    check_outputs,
    describe_preprocessing,
    error_result,
    explain_images,
    method_slug,
    plan_outputs,
    save_result,
)
from camkit.tools.output import OutputWriter

if TYPE_CHECKING:
    import pyarrow as pa
    from ray.data import Dataset

__all__ = [
    "COLUMNS",
    "DatasetSummary",
    "cluster_workers",
    "decode_map",
    "encode_map",
    "explain_dataset",
    "row_name",
    "start_ray",
    "write_report",
]

COLUMNS = (
    "path",
    "pred_class",
    "pred_name",
    "confidence",
    "target",
    "target_score",
    "layer",
    "method",
    "map",
    "overlay",
    "error",
)
"""Columns of the Dataset :func:`explain_dataset` returns, in order.

- ``path`` (string): the image's name: its path, or its ``id`` for a dataset of images.
- ``pred_class`` (int64), ``pred_name`` (string), ``confidence`` (float64), ``target``
  (int64), ``target_score`` (float64), ``layer`` and ``method`` (string): as in
  :class:`~camkit.Explanation`.
- ``map`` (binary): the map, encoded by :func:`encode_map` (read it with
  :func:`decode_map`); null when maps were not asked for.
- ``overlay`` (string): the overlay written, as planned (null when none was written).
- ``error`` (string): ``"<type>: <message>"`` for an image that failed, which then has one
  row and nulls elsewhere; null otherwise.

Text is UTF-8: characters a file name cannot hold in UTF-8 (``\\udcXX`` escapes of
undecodable bytes) are written as backslash escapes, as the CSV report writes them.
"""

_INSTALL = "pip install 'camkit[ray]'"


def start_ray(address: str | None = None) -> bool:
    """Join the Ray cluster at ``address`` (``host:port`` of its head, or ``"auto"``), or
    start a local Ray with every CPU of this machine when ``None``, quietly (warnings and
    errors only, no dashboard), unless Ray is running in this process already. What the
    CLI's ``--engine ray`` does.

    Returns:
        Whether it started or joined one (then end it with ``ray.shutdown()``).

    Raises:
        MissingDependencyError: Ray Data is not installed.
    """
    _require_ray()
    import ray

    if ray.is_initialized():
        return False
    quiet: dict[str, Any] = {"logging_level": logging.WARNING, "include_dashboard": False}
    if address is None:
        ray.init(num_cpus=os.cpu_count(), **quiet)
    else:
        ray.init(address=address, **quiet)
    # Ray Data's execution notes (plans, "progress bars disabled") are not for this run
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    return True


def cluster_workers(use_gpus: bool = True) -> tuple[int, float]:
    """How many actors to start on the running Ray cluster, and the GPUs each reserves: one
    per GPU when the cluster has GPUs (and ``use_gpus``), else one per two CPUs. The CLI's
    default for ``--engine ray`` without ``--workers``.

    Raises:
        MissingDependencyError: Ray Data is not installed.
    """
    _require_ray()
    import ray

    resources: dict[str, float] = ray.cluster_resources()  # type: ignore[no-untyped-call]
    gpus = int(resources.get("GPU", 0)) if use_gpus else 0
    if gpus:
        return gpus, 1.0
    return max(1, int(resources.get("CPU", 1)) // 2), 0.0


def row_name(path: str | os.PathLike[str]) -> str:
    """The ``path`` cell of an image file: its path as text, with the bytes of a name that
    are not UTF-8 (``\\udcXX`` escapes) written as backslash escapes, as the CSV report
    writes them. Build a dataset of files with it:
    ``ray.data.from_items([{"path": row_name(p)} for p in paths])``."""
    return _text(path)


def _require_ray() -> None:
    """Import Ray Data, or say how to install it."""
    try:
        import pyarrow  # noqa: F401
        import ray
        import ray.data
    except ImportError as error:
        raise MissingDependencyError(
            f"camkit.ray needs Ray Data, which is not installed ({error}); install it with "
            f"{_INSTALL}"
        ) from None
    del ray


def _text(value: object) -> str:
    """``value`` as text that UTF-8 can hold: undecodable bytes of a file name (``\\udcXX``)
    become backslash escapes, as in the CSV report."""
    text = os.fspath(value) if isinstance(value, os.PathLike) else str(value)
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


# --- the map column -----------------------------------------------------------------------
def encode_map(raw: NDArray[np.floating[Any]]) -> bytes:
    """Encode a map for the ``map`` column: a 16-bit grayscale PNG of the map min-max
    normalised to ``[0, 1]`` (all zeros when constant) and scaled to ``0..65535``.

    :func:`explain_dataset` encodes each explanation's :attr:`~camkit.Explanation.raw` map,
    at the layer's resolution (``(h, w)``, e.g. 7 × 7 for a ResNet at 224 × 224): a few
    hundred bytes a row. Any PNG reader opens it (``cv2.imread(path, cv2.IMREAD_UNCHANGED)``,
    PIL mode ``I;16``); :func:`decode_map` gives it back as float32 in ``[0, 1]``, within
    ``1 / 131070`` of the normalised map.

    Raises:
        InputError: ``raw`` is not a finite 2-D array.
    """
    array = np.asarray(raw, dtype=np.float64)
    if array.ndim != 2 or array.size == 0 or not np.isfinite(array).all():
        raise InputError(
            f"a map to encode must be a finite, non-empty 2-D array, got shape {array.shape}"
        )
    low, high = float(array.min()), float(array.max())
    scaled = (array - low) / (high - low) if high > low else np.zeros_like(array)
    levels = np.rint(scaled * 65535.0).astype(np.uint16)
    done, buffer = cv2.imencode(".png", levels)
    if not done:  # pragma: no cover - OpenCV encodes any uint16 2-D array as PNG
        raise InputError(f"OpenCV could not encode a {array.shape} map as PNG")
    return bytes(buffer.tobytes())


def decode_map(data: bytes) -> NDArray[np.float32]:
    """Decode a ``map`` cell (:func:`encode_map`): float32 ``(h, w)`` in ``[0, 1]``.

    Raises:
        InputError: ``data`` is not a 16-bit grayscale PNG.
    """
    buffer = np.frombuffer(bytes(data), dtype=np.uint8)
    levels = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED) if buffer.size else None
    if levels is None or levels.dtype != np.uint16 or levels.ndim != 2:
        raise InputError(
            "not a map cell: expected the bytes of a 16-bit grayscale PNG from the 'map' "
            "column of camkit.ray.explain_dataset"
        )
    decoded: NDArray[np.float32] = levels.astype(np.float32) / np.float32(65535.0)
    return decoded


# --- the actors ---------------------------------------------------------------------------
@attrs.frozen
class _Settings:
    """What every actor needs besides the model: how to explain, what to write."""

    name_column: str
    images: bool
    target: int | None
    top: int | None
    alpha: float
    maps: bool
    overwrite: bool


def _schema() -> pa.Schema:
    import pyarrow as pa

    return pa.schema(
        [
            ("path", pa.string()),
            ("pred_class", pa.int64()),
            ("pred_name", pa.string()),
            ("confidence", pa.float64()),
            ("target", pa.int64()),
            ("target_score", pa.float64()),
            ("layer", pa.string()),
            ("method", pa.string()),
            ("map", pa.binary()),
            ("overlay", pa.string()),
            ("error", pa.string()),
        ]
    )


def _load_weights(model: nn.Module, weights: Mapping[str, torch.Tensor]) -> None:
    try:
        model.load_state_dict(weights)
    except (RuntimeError, KeyError, TypeError) as error:
        raise CheckpointError(
            f"the weights do not fit the model that model_factory builds: {error}. Pass the "
            "state_dict of a model of the same architecture, or weights=None to use the "
            "model the driver builds"
        ) from None


@attrs.frozen
class _Planned:
    """One image's job with absolute paths, to read and write on any node (a worker's
    folder may be another), and the job as planned (``None``: no overlay), whose paths the
    rows and error messages show, as a folder run shows them."""

    job: ImageJob
    planned: ImageJob | None

    def as_planned(self, result: FileResult) -> FileResult:
        """``result`` with the planned paths in place of the absolute ones."""
        if self.planned is None:
            return result
        error = result.error
        for absolute, planned in (
            (self.job.source, self.planned.source),
            (self.job.output.parent, self.planned.output.parent),
        ):
            if error is not None:
                error = error.replace(repr(str(absolute)), repr(str(planned)))
                error = error.replace(str(absolute), str(planned))
        heatmap = None
        if result.heatmap is not None:  # a class's overlay (``_class<N>``): same folder
            heatmap = self.planned.output.with_name(result.heatmap.name)
        return FileResult(
            self.planned.source, heatmap, result.explanation, error, result.preprocessing
        )


class _ExplainWorker:
    """The actor class of :func:`explain_dataset`: builds the explainer once, then explains
    one batch of rows per call."""

    def __init__(
        self,
        model_factory: Callable[[], nn.Module],
        shared: list[Any],
        options: Mapping[str, Any],
        settings: _Settings,
    ) -> None:
        import ray

        # the weights and the plan come from the object store, once per actor
        weights, plan = (None if ref is None else ray.get(ref) for ref in shared)
        model = model_factory()
        assert weights is not None  # the driver always shares them
        _load_weights(model, weights)
        self.explainer = Explainer(model, **options)
        self.preprocessing = describe_preprocessing(self.explainer)
        self.plan: Mapping[str, _Planned] | None = plan
        self.outputs = OverlayWriters(settings.overwrite) if plan is not None else None
        self.settings = settings

    def __call__(self, batch: Mapping[str, Any]) -> pa.Table:
        """Explain one batch of rows; one output row per image and class."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ImageSkippedWarning)  # errors are rows
            results = self._explain(batch)
        return self._table(results)

    def _job(self, name: str) -> _Planned:
        key = _text(Path(name))
        if self.plan is not None and key in self.plan:
            return self.plan[key]
        return _Planned(ImageJob(Path(name), Path(name)), None)

    def _explain(self, batch: Mapping[str, Any]) -> list[tuple[str, FileResult]]:
        s = self.settings
        names = [str(name) for name in batch[s.name_column]]
        loaded: list[tuple[int, NDArray[np.uint8]]] = []
        outcomes: dict[int, list[FileResult]] = {}
        plans = [self._job(name) for name in names]
        for i, plan in enumerate(plans):
            try:
                if s.images:
                    image = load_rgb(np.asarray(batch["image"][i]))
                else:
                    image = load_rgb(plan.job.source, max_pixels=self.explainer.max_pixels)
                loaded.append((i, image))
            except InputError as error:
                outcomes[i] = [error_result(plan.job.source, error, self.preprocessing)]
        groups = explain_images(self.explainer, [image for _, image in loaded], s.target, s.top)
        for (i, _), group in zip(loaded, groups, strict=True):
            job = plans[i].job
            if isinstance(group, BaseException):
                outcomes[i] = [error_result(job.source, group, self.preprocessing)]
                continue
            outputs = self.outputs if plans[i].planned is not None else None
            outcomes[i] = [
                save_result(job, e, outputs, s.alpha, s.top is not None, self.preprocessing)
                for e in group
            ]
        return [
            (name, plans[i].as_planned(result))
            for i, name in enumerate(names)
            for result in outcomes[i]
        ]

    def _table(self, results: list[tuple[str, FileResult]]) -> pa.Table:
        import pyarrow as pa

        columns: dict[str, list[Any]] = {name: [] for name in COLUMNS}
        for name, result in results:
            e = result.explanation
            values: dict[str, Any] = dict.fromkeys(COLUMNS)
            values["path"] = _text(name)
            values["error"] = None if result.error is None else _text(result.error)
            if e is not None:
                values.update(
                    pred_class=e.pred_class,
                    pred_name=None if e.pred_name is None else _text(e.pred_name),
                    confidence=e.confidence,
                    target=e.target,
                    target_score=e.target_score,
                    layer=_text(e.layer),
                    method=_text(e.method),
                    map=encode_map(e.raw) if self.settings.maps else None,
                    overlay=None if result.heatmap is None else _text(result.heatmap),
                )
            for column in COLUMNS:
                columns[column].append(values[column])
        return pa.table(columns, schema=_schema())


# --- the driver ---------------------------------------------------------------------------
def _dataset_columns(ds: Dataset) -> tuple[str, bool]:
    """The column that names each row, and whether rows hold decoded images."""
    schema = ds.schema()
    names = list(schema.names) if schema is not None else []
    if "image" in names:
        for column in ("path", "id"):
            if column in names:
                return column, True
        raise ConfigurationError(
            "a dataset of images needs a column that names each image, 'path' or 'id' (the "
            "report's path column and the overlay's name); read_images(..., "
            "include_paths=True) adds 'path', or add an 'id' column"
        )
    if "path" in names:
        return "path", False
    raise ConfigurationError(
        f"the dataset needs a 'path' column (image files) or an 'image' column (HWC uint8 "
        f"arrays, with 'path' or 'id'); its columns are {names}"
    )


def _plan_from_names(
    ds: Dataset, column: str, images: bool, output_dir: Path, suffix: str
) -> list[ImageJob]:
    """Plan an overlay for every distinct name of ``ds`` (read on the driver)."""
    names = list(dict.fromkeys(str(row[column]) for row in ds.select_columns([column]).iter_rows()))
    if images:  # ids: names below one virtual root, their folders mirrored
        root = Path(os.sep)
        found = [(root / name.lstrip("/\\"), root) for name in names]
    else:
        sources = [Path(os.path.abspath(name)) for name in names]
        parents = {str(path.parent) for path in sources}
        common = Path(os.path.commonpath(sorted(parents))) if parents else Path.cwd()
        found = [(path, common) for path in sources]
    jobs = plan_outputs(found, output_dir, suffix=suffix)
    return [
        ImageJob(Path(name), job.output, job.root) for name, job in zip(names, jobs, strict=True)
    ]


def _shared_plan(jobs: Sequence[ImageJob]) -> dict[str, _Planned]:
    """Each job by its name in the dataset (:func:`row_name` of its source)."""
    plan: dict[str, _Planned] = {}
    for job in jobs:
        absolute = ImageJob(
            Path(os.path.abspath(job.source)),
            Path(os.path.abspath(job.output)),
            Path(os.path.abspath(job.output_root)),
        )
        plan.setdefault(_text(job.source), _Planned(absolute, job))
    return plan


def _check_options(
    batch_size: int, concurrency: int | tuple[int, int], num_cpus: float, num_gpus: float
) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigurationError(f"batch_size must be an int >= 1, got {batch_size!r}")
    sizes = concurrency if isinstance(concurrency, tuple) else (concurrency,)
    if (
        len(sizes) not in (1, 2)
        or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in sizes)
        or sizes[0] > sizes[-1]
    ):
        raise ConfigurationError(
            f"concurrency must be a number of actors >= 1, or (min, max), got {concurrency!r}"
        )
    for label, value in (("num_cpus", num_cpus), ("num_gpus", num_gpus)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
            raise ConfigurationError(f"{label} must be a number >= 0, got {value!r}")


def explain_dataset(
    ds: Dataset,
    model_factory: Callable[[], nn.Module],
    *,
    weights: Mapping[str, torch.Tensor] | None = None,
    explainer_options: Mapping[str, Any] | None = None,
    output_dir: str | os.PathLike[str] | None = None,
    plan: Sequence[ImageJob] | None = None,
    overwrite: bool = False,
    target: int | None = None,
    top: int | None = None,
    alpha: float = 0.5,
    maps: bool = True,
    batch_size: int = 8,
    concurrency: int | tuple[int, int] = 1,
    num_cpus: float = 0.5,
    num_gpus: float = 0.0,
) -> Dataset:
    """Explain every image of a Ray Dataset on a pool of Ray actors; a Dataset of
    :data:`COLUMNS`, one row per image (per image and class with ``top``), lazy as Ray
    Datasets are: nothing runs until it is consumed (:func:`write_report`, ``take_all``,
    ``write_parquet``, ...).

    ``ds`` holds image files, a string column ``path`` (every node must be able to read
    them: absolute paths on a shared file system), or decoded images, a column ``image`` of
    RGB ``(H, W, 3)`` uint8 arrays (grayscale and RGBA are converted) named by a ``path``
    or ``id`` column, as ``ray.data.read_images(..., include_paths=True)`` makes. Other
    columns are left out.

    The driver builds ``model_factory()`` once and puts its ``state_dict`` (or
    ``weights``) in the object store; each actor builds ``model_factory()``, loads those
    weights, and builds its :class:`~camkit.Explainer` from ``explainer_options`` once.
    So every actor holds the same weights, a model with random initial weights included.
    The options are checked on the driver first, by building an explainer on the CPU.

    A file that cannot be read and an image that fails alone become rows with ``error``
    (type and message). Errors that concern the whole run (a bad option, a target out of
    range, a layer that cannot be found) stop it, as in a folder run; :func:`write_report`
    raises them as their camkit type.

    Args:
        model_factory: a picklable callable with no arguments (a function of an importable
            module, a class, a ``functools.partial``) that returns the model, the same
            architecture on every node.
        weights: the state_dict every actor loads; default: that of the model the driver
            builds.
        explainer_options: keyword arguments of :class:`~camkit.Explainer` besides the model
            (``method``, ``layer``, ``device``, ``data_config``, ``class_names``, ...).
        output_dir: write each overlay below this folder, on a file system every node can
            write (a shared path): the names of the folder run
            (:func:`~camkit.tools.batch.plan_outputs`: ``<stem>_<method>.jpg``, subfolders
            below the images' common folder mirrored). The names are read on the driver
            first (one pass over the ``path``/``id`` column) to give every image its own
            file and check, before any work, that none exists. ``None``: no overlays.
        plan: the overlays planned already (:func:`~camkit.tools.batch.plan_outputs`, what
            the CLI passes), matched to rows by their ``path`` (the job's source); checked
            again before any work. Use ``output_dir`` or ``plan``, not both.
        overwrite: replace overlays that exist.
        target: the class to explain in every image; ``None`` for each one's prediction.
        top: explain each image's ``top`` best classes (one row and overlay each, the
            overlay named ``..._class<N>.jpg``); ``target`` is ignored.
        alpha: heatmap weight of the overlays.
        maps: fill the ``map`` column (:func:`encode_map`).
        batch_size: images per ``map_batches`` batch, explained as one batch.
        concurrency: the number of actors, or ``(min, max)`` for an autoscaling pool.
        num_cpus: CPUs each actor reserves. Fractional by default, so that on a small
            machine Ray can still schedule the read tasks next to the actors; raise it on
            CPU clusters (torch uses that many threads in each actor).
        num_gpus: GPUs each actor reserves (``1`` for one actor per GPU); the explainer's
            device ``"auto"`` then picks the actor's GPU.

    Raises:
        MissingDependencyError: Ray Data is not installed (``pip install 'camkit[ray]'``).
        ConfigurationError: an option is out of range, the explainer options are invalid,
            or the dataset lacks the columns above.
        CheckpointError: ``weights`` do not fit the model.
        OutputError: planned overlays exist (without ``overwrite``) or cannot be written.
        CamkitError: another error the explainer's options raise.
    """
    _require_ray()
    import ray
    from ray.data import ActorPoolStrategy

    _check_options(batch_size, concurrency, num_cpus, num_gpus)
    if not 0.0 <= alpha <= 1.0:
        raise ConfigurationError(f"alpha must lie in [0, 1], got {alpha!r}")
    if top is not None and (isinstance(top, bool) or not isinstance(top, int) or top < 1):
        raise ConfigurationError(f"top must be an int >= 1 or None, got {top!r}")
    if output_dir is not None and plan is not None:
        raise ConfigurationError(
            "pass output_dir (camkit plans the overlays) or plan (planned already), not both"
        )
    options = dict(explainer_options or {})
    if "model" in options:
        raise ConfigurationError(
            "explainer_options must not hold 'model': the model comes from model_factory"
        )
    column, images = _dataset_columns(ds)

    model = model_factory()
    if not isinstance(model, nn.Module):
        raise ConfigurationError(
            f"model_factory must return a torch.nn.Module, got {type(model).__name__}"
        )
    source = model.state_dict() if weights is None else weights
    state = {k: v.detach().cpu() for k, v in source.items()}
    _load_weights(model, state)
    checked = Explainer(model, **{**options, "device": "cpu"})  # the options, on the driver

    jobs: Sequence[ImageJob] | None = plan
    if output_dir is not None:
        suffix = "_" + method_slug(checked.method_name)
        jobs = _plan_from_names(ds, column, images, Path(output_dir), suffix)
    if jobs is not None:
        check_outputs(jobs, by_class=top is not None, overwrite=overwrite)
    shared = [ray.put(state), None if jobs is None else ray.put(_shared_plan(jobs))]
    settings = _Settings(column, images, target, top, float(alpha), bool(maps), bool(overwrite))
    sizes = concurrency if isinstance(concurrency, tuple) else (concurrency, concurrency)
    columns = [column, "image"] if images else [column]
    result: Dataset = ds.select_columns(columns).map_batches(
        _ExplainWorker,
        fn_constructor_args=(model_factory, shared, options, settings),
        compute=ActorPoolStrategy(min_size=sizes[0], max_size=sizes[1]),
        batch_size=batch_size,
        batch_format="numpy",
        num_cpus=num_cpus,
        num_gpus=num_gpus,
    )
    return result


# --- the report ---------------------------------------------------------------------------
@attrs.frozen
class DatasetSummary:
    """What :func:`write_report` wrote: ``rows`` rows for ``images`` distinct images, of
    which ``failed`` have an error; ``layer`` and ``method`` of the first explained row."""

    rows: int
    images: int
    failed: int
    layer: str | None
    method: str | None


_ERROR_LINE = re.compile(r"^(?:camkit\.errors\.)?([A-Za-z_]\w*): (.*)$")


def _worker_error(error: BaseException) -> BaseException:
    """The camkit error a Ray worker raised, from Ray's wrapped error (its message ends with
    the worker's ``Type: message`` line); ``error`` itself when it is not camkit's."""
    for line in reversed(str(error).splitlines()):
        match = _ERROR_LINE.match(line.strip())
        if match is None:
            continue
        kind = getattr(errors, match.group(1), None)
        if isinstance(kind, type) and issubclass(kind, CamkitError):
            found: BaseException = kind(f"{match.group(2)} (raised on a Ray worker)")
            return found
        break
    return error


def _file_result(row: Mapping[str, Any], preprocessing: str) -> FileResult:
    """A row as the folder run's result, for :func:`~camkit.tools.batch.report_row`: the
    explanation holds the row's values, not its map."""
    explanation = None
    if row["error"] is None:
        explanation = Explanation(
            pred_class=row["pred_class"],
            confidence=row["confidence"],
            target=row["target"],
            target_score=row["target_score"],
            layer=row["layer"],
            method=row["method"],
            renderer=JetRenderer(),
            pred_name=row["pred_name"],
        )
    heatmap = None if row["overlay"] is None else Path(row["overlay"])
    return FileResult(Path(row["path"]), heatmap, explanation, row["error"], preprocessing)


def write_report(
    results: Dataset,
    csv: str | os.PathLike[str] | None = None,
    parquet: str | os.PathLike[str] | None = None,
    *,
    preprocessing: str = "",
    overwrite: bool = False,
    on_row: Callable[[Mapping[str, Any]], None] | None = None,
) -> DatasetSummary:
    """Run ``results`` (:func:`explain_dataset`) once, streaming its rows to the driver, and
    write them as a CSV report and as a Parquet file.

    The CSV is the folder run's report (:class:`~camkit.tools.batch.ReportWriter`: its
    columns, ``image`` first, its neutral cells), written row by row as rows arrive. The
    Parquet file holds :data:`COLUMNS`, written at the end (it is built in the driver's
    memory: a few hundred bytes a row). Both are checked before any work: files that exist
    stop the call unless ``overwrite``. Rows come in the Dataset's order: input order when
    ``DataContext.get_current().execution_options.preserve_order`` is set (the CLI sets
    it), else as they finish.

    Args:
        preprocessing: the CSV's ``preprocessing`` column (:func:`~camkit.tools.batch.
            describe_preprocessing`).
        on_row: called with each row (a mapping of :data:`COLUMNS`) as it arrives.

    Raises:
        MissingDependencyError: Ray Data is not installed.
        OutputError: a report exists (without ``overwrite``) or cannot be written.
        CamkitError: an error that concerns the whole run, raised on a worker, as its camkit
            type (the message says so).
    """
    _require_ray()
    import pyarrow as pa
    import pyarrow.parquet as pq
    import ray.exceptions

    check_outputs([], csv, overwrite=overwrite, extra=[parquet] if parquet is not None else [])
    writer = ReportWriter(csv, overwrite=overwrite) if csv is not None else None
    tables: list[pa.Table] = []
    seen: set[str] = set()
    failed: set[str] = set()
    rows = 0
    first: Mapping[str, Any] | None = None
    try:
        for batch in results.iter_batches(batch_format="pyarrow", batch_size=None):
            table: pa.Table = batch
            if parquet is not None:
                tables.append(table)
            for row in table.to_pylist():
                rows += 1
                seen.add(row["path"])
                if row["error"] is not None:
                    failed.add(row["path"])
                elif first is None:
                    first = row
                if writer is not None:
                    writer.write(_file_result(row, preprocessing))
                if on_row is not None:
                    on_row(row)
    except ray.exceptions.RayError as error:
        raise _worker_error(error) from error
    finally:
        if writer is not None:
            writer.close()
    if parquet is not None:
        table = pa.concat_tables(tables) if tables else _schema().empty_table()
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        target = Path(parquet)
        OutputWriter(target.parent, overwrite=overwrite).write_bytes(
            target, sink.getvalue().to_pybytes()
        )
    return DatasetSummary(
        rows,
        len(seen),
        len(failed),
        None if first is None else first["layer"],
        None if first is None else first["method"],
    )
