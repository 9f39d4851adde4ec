"""The seed toolkit's functions: ``generate_gradcam``, ``generate_gradcam_batch``,
``quick_gradcam``, with its parameter names and defaults (``cuda`` defaults to ``None``: CUDA
when available, without a warning; see :func:`make_explainer`).

They replace ``tools.visualize_gradcam`` of the classification projects camkit grew from:
the model is built from ``backbone`` and the class file, its checkpoint loaded with
:func:`camkit.compat.checkpoints.load_classifier`, images are preprocessed as those projects
did (RGB, shorter side resized and centre-cropped to ``input_shape``, or letterboxed onto
grey, ImageNet mean/std), and Grad-CAM++ maps are mapped back onto the original pixels.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from camkit.compat.checkpoints import load_classifier
from camkit.errors import ConfigurationError
from camkit.explainer import Explainer
from camkit.explanation import Explanation
from camkit.preprocess import IMAGENET_MEAN, IMAGENET_STD, DataConfig
from camkit.tools.batch import explain_files, find_images, plan_outputs
from camkit.tools.stream import check_workers

__all__ = ["generate_gradcam", "generate_gradcam_batch", "make_explainer", "quick_gradcam"]

PathLike = str | os.PathLike[str]


_HASH_CHUNK = 1 << 20

_digests: dict[str, tuple[tuple[int, ...], str]] = {}
"""Resolved path -> (stat signature, SHA-256 of the content) of the files last hashed."""
_digests_lock = threading.Lock()


def _content_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _file_key(path: PathLike | None) -> tuple[str, str | None] | None:
    """The cache key of a checkpoint or class file: its resolved path and the SHA-256 of its
    content (``None`` when it cannot be read: loading it then raises, and nothing is cached).

    The content is hashed again whenever the file's stat signature changes: device, inode,
    size, modification time and status-change time (``st_ctime_ns``), all in nanoseconds.
    The status-change time is set by the system on every write, rename and ``utime`` call,
    and cannot be carried over by ``cp -p``, ``rsync -t`` or ``touch -d``; so a checkpoint
    replaced under the same name and modification time is hashed again, and its new weights
    are loaded. A file touched but not changed keeps its digest, and its explainer.
    """
    if path is None:
        return None
    resolved = Path(path).resolve()
    key = str(resolved)
    try:
        info = resolved.stat()
        signature = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)
        with _digests_lock:
            known = _digests.get(key)
        if known is not None and known[0] == signature:
            return key, known[1]
        digest = _content_digest(resolved)
    except OSError:
        return key, None
    with _digests_lock:
        _digests[key] = (signature, digest)
    return key, digest


@lru_cache(maxsize=4)
def _cached_explainer(
    weights: tuple[str, str | None] | None,
    backbone: str,
    classes: tuple[str, str | None] | None,
    input_shape: tuple[int, int],
    device: str,
    letterbox: bool,
    method: str,
    layer: str | None,
) -> Explainer:
    model, names = load_classifier(
        backbone,
        weights[0] if weights else None,
        classes[0] if classes else None,
    )
    config = DataConfig(
        input_size=input_shape,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        interpolation="bicubic",
        resize="letterbox" if letterbox else "crop",
    )
    return Explainer(
        model, method=method, layer=layer, device=device, data_config=config, class_names=names
    )


def make_explainer(
    model_path: PathLike | None = "models/inception_resnet_v2/best_epoch_weights.pth",
    backbone: str = "inception_resnet_v2",
    classes_path: PathLike | None = "model_data/cls_classes.txt",
    input_shape: Sequence[int] = (299, 299),
    cuda: bool | None = None,
    letterbox: bool = False,
    method: str = "gradcam++",
    layer: str | None = None,
) -> Explainer:
    """Build (or reuse) the explainer the seed functions use for these settings.

    The last four explainers are cached on their arguments and the content of the checkpoint
    and class file (their SHA-256, computed again only when a file's inode, size,
    modification or status-change time changes), so calling :func:`generate_gradcam` in a
    loop loads the checkpoint once, and a checkpoint replaced under the same name — even with
    its modification time kept (``cp -p``, ``rsync -t``) — is loaded again.

    ``cuda``: ``None`` (the default) runs on CUDA when it is available, else on the CPU,
    silently; ``True`` asks for CUDA, and without it falls back to the CPU with one
    :class:`~camkit.errors.DeviceFallbackWarning` per process; ``False`` runs on the CPU.

    Raises:
        ConfigurationError: ``input_shape`` is not ``(H, W)``.
        CheckpointError: the checkpoint or class file is missing or does not fit the model.
    """
    shape = tuple(int(v) for v in input_shape)
    if len(shape) != 2:
        raise ConfigurationError(f"input_shape must be (H, W), got {tuple(input_shape)!r}")
    return _cached_explainer(
        _file_key(model_path),
        backbone,
        _file_key(classes_path),
        (shape[0], shape[1]),
        "auto" if cuda is None else "cuda" if cuda else "cpu",
        letterbox,
        method,
        layer,
    )


def _as_dict(explanation: Explanation, return_image: bool, alpha: float) -> dict[str, Any]:
    result: dict[str, Any] = {
        "pred_class": explanation.pred_class,
        "pred_name": explanation.pred_name,
        "confidence": explanation.confidence,
        "cam": explanation.cam,
        "target": explanation.target,
        "target_score": explanation.target_score,
        "layer": explanation.layer,
        "method": explanation.method,
    }
    if return_image:
        result["overlay"] = explanation.overlay(alpha)
    return result


def generate_gradcam(
    image_path: PathLike,
    model_path: PathLike | None = "models/inception_resnet_v2/best_epoch_weights.pth",
    backbone: str = "inception_resnet_v2",
    classes_path: PathLike | None = "model_data/cls_classes.txt",
    input_shape: Sequence[int] = (299, 299),
    target_class: int | None = None,
    alpha: float = 0.5,
    output_path: PathLike | None = None,
    cuda: bool | None = None,
    return_image: bool = False,
    *,
    letterbox: bool = False,
    method: str = "gradcam++",
    layer: str | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Explain one image with Grad-CAM++ (the seed's ``generate_gradcam``).

    Returns:
        A dict with ``pred_class``, ``pred_name``, ``confidence``, ``cam`` (float32
        ``(H, W)`` in ``[0, 1]`` at the original image's size), ``target``,
        ``target_score``, ``layer``, ``method``; ``overlay`` (RGB uint8 ``(H, W, 3)``) when
        ``return_image``; ``output_path`` when an overlay was written.

    ``output_path`` is written by :meth:`~camkit.Explanation.save`: an existing file is
    replaced only with ``overwrite=True``, and never through a symbolic link.

    Raises:
        InputError: the image cannot be read.
        CheckpointError: the checkpoint or class file is missing or does not fit the model.
        TargetError: ``target_class`` is out of range.
        OutputError: ``output_path`` exists (without ``overwrite``) or cannot be written.
    """
    explainer = make_explainer(
        model_path, backbone, classes_path, input_shape, cuda, letterbox, method, layer
    )
    explanation = explainer.explain(image_path, target=target_class)
    result = _as_dict(explanation, return_image, alpha)
    if output_path is not None:
        result["output_path"] = str(explanation.save(output_path, alpha, overwrite=overwrite))
    return result


def generate_gradcam_batch(
    image_dir: PathLike,
    output_dir: PathLike = "cam_output",
    save_report: bool = False,
    model_path: PathLike | None = "models/inception_resnet_v2/best_epoch_weights.pth",
    backbone: str = "inception_resnet_v2",
    classes_path: PathLike | None = "model_data/cls_classes.txt",
    input_shape: Sequence[int] = (299, 299),
    target_class: int | None = None,
    alpha: float = 0.5,
    cuda: bool | None = None,
    return_image: bool = False,
    *,
    letterbox: bool = False,
    method: str = "gradcam++",
    layer: str | None = None,
    recursive: bool = True,
    batch_size: int = 8,
    progress: bool | None = None,
    overwrite: bool = False,
    workers: int | None = None,
) -> list[dict[str, Any]]:
    """Explain every image of a folder (the seed's ``generate_gradcam_batch``).

    Subfolders are searched too (the seed's ``datasets/test/<class>/*.jpg`` layout), unless
    ``recursive=False``; ``output_dir`` is left out of the search when it lies inside
    ``image_dir``. Writes ``<name>_gradcam.jpg`` per image into ``output_dir`` (subfolders
    mirrored, names never collide) and, with ``save_report``,
    ``output_dir/gradcam_report.csv`` row by row. A file that cannot be read is reported (a
    warning and a row with its error) and the batch goes on. Overlays and a report that
    exist stop the call before any image is explained, unless ``overwrite=True``
    (:func:`camkit.tools.batch.check_outputs`); nothing is written through a symbolic link.
    The folder is explained by :func:`camkit.tools.batch.iter_explain_files`'s streaming
    pipeline: ``workers`` threads decode while the model runs and as many write the
    overlays (``None``: half the CPUs, 1 to 4; ``0``: none).

    Returns:
        One dict per image, in order: ``image_path``, ``error`` (``None`` when it worked),
        and when it worked the keys of :func:`generate_gradcam`, with ``output_path``.

    Raises:
        OutputError: planned overlays or the report exist (without ``overwrite``), or the
            output folder or the report cannot be written.
        InputError: ``image_dir`` does not exist or holds no image (the message says where
            camkit looked and which extensions count).
        CheckpointError: the checkpoint or class file is missing or does not fit the model.
        ConfigurationError: ``workers`` is not an int >= 0 or None.
    """
    check_workers(workers)  # before the model is built
    images = find_images([image_dir], recursive=recursive, exclude=[output_dir], allow_empty=False)
    explainer = make_explainer(
        model_path, backbone, classes_path, input_shape, cuda, letterbox, method, layer
    )
    jobs = plan_outputs(images, output_dir)
    report = Path(output_dir) / "gradcam_report.csv" if save_report else None
    results = []
    for outcome in explain_files(
        explainer,
        jobs,
        target=target_class,
        alpha=alpha,
        batch_size=batch_size,
        report=report,
        progress=progress,
        overwrite=overwrite,
        workers=workers,
    ):
        entry: dict[str, Any] = {"image_path": str(outcome.image), "error": outcome.error}
        if outcome.explanation is not None:
            entry.update(_as_dict(outcome.explanation, return_image, alpha))
            entry["output_path"] = str(outcome.heatmap)
        results.append(entry)
    return results


def quick_gradcam(
    image_path: PathLike, output_path: PathLike | None = None, *, overwrite: bool = False
) -> dict[str, Any]:
    """:func:`generate_gradcam` with every default (the seed's ``quick_gradcam``)."""
    return generate_gradcam(image_path, output_path=output_path, overwrite=overwrite)
