"""``camkit evaluate``: explanation-quality metrics of camkit's methods on held-out scenes.

Every figure is computed on the shipped demo model with :mod:`camkit.metrics`, explaining the
*true* class of each scene:

- pointing game: share of scenes whose map maximum falls inside a true box;
- energy: mean share of the map's mass inside the true boxes;
- Average Drop (%, lower is better) and Increase in Confidence (%, higher is better), with the
  map applied in pixel space (hidden pixels black);
- deletion AUC (lower is better) and insertion AUC (higher is better), RISE-style;
- multi-instance: on scenes with two instances of the class, the share of instances whose box
  holds at least :data:`INSTANCE_MASS` of the map's mass.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import attrs
import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor

from camkit.demo.model import load_model
from camkit.demo.scenes import make_scene
from camkit.errors import ConfigurationError, MethodNotApplicableError
from camkit.explainer import Explainer
from camkit.metrics import Scorer, energy_pointing_game, pointing_game
from camkit.plugins.manager import get_registry
from camkit.preprocess import DataConfig

__all__ = [
    "EVAL_SEED_START",
    "INSTANCE_MASS",
    "MULTI_SEED_START",
    "MethodScores",
    "deterministic_methods",
    "evaluate",
]

EVAL_SEED_START = 2_000_000
"""First seed of the evaluation scenes (the demo's training used seeds below 1_000_000, and
its validation seeds lie in 1_000_000..1_001_000).
"""
MULTI_SEED_START = 3_000_000
"""First seed of the two-instance scenes."""
INSTANCE_MASS = 0.2
"""Share of the map's mass an instance's box must hold to count as found."""


@attrs.frozen
class MethodScores:
    """The figures of one method (see the module docstring for definitions)."""

    method: str
    accuracy: float
    pointing: float
    energy: float
    average_drop: float
    increase_in_confidence: float
    deletion: float
    insertion: float
    multi_instance: float
    not_applicable: str | None = None
    """Why the method cannot run on the demo model (its figures are then NaN), or ``None``."""


def _scenes(
    seeds: Sequence[int], instances: int | None
) -> tuple[list[NDArray[np.uint8]], list[int], list[list[tuple[int, int, int, int]]]]:
    images: list[NDArray[np.uint8]] = []
    labels: list[int] = []
    boxes: list[list[tuple[int, int, int, int]]] = []
    for seed in seeds:
        image, label, found = make_scene(seed, instances=instances)
        images.append(image)
        labels.append(label)
        boxes.append(list(found))
    return images, labels, boxes


def _cams(explainer: Explainer, images: Tensor, labels: list[int], chunk: int = 64) -> Tensor:
    maps: list[Tensor] = []
    for start in range(0, len(labels), chunk):
        batch = explainer.explain_batch(
            images[start : start + chunk], labels[start : start + chunk]
        )
        maps.append(batch.input_maps())  # the maps at input resolution, as metrics take them
    return torch.cat(maps)


def _instance_share(cams: Tensor, boxes: list[list[tuple[int, int, int, int]]]) -> float:
    found = total = 0
    for cam, instance_boxes in zip(cams, boxes, strict=True):
        mass = float(cam.sum())
        for x0, y0, x1, y1 in instance_boxes:
            total += 1
            if mass > 0 and float(cam[y0:y1, x0:x1].sum()) / mass >= INSTANCE_MASS:
                found += 1
    return found / total if total else 0.0


def deterministic_methods() -> list[str]:
    """The registered methods whose maps involve no random draws, Grad-CAM++ first."""
    registry = get_registry().methods
    names = [name for name, entry in registry.items() if not entry.value.stochastic]
    return sorted(names, key=lambda name: (name != "gradcam++", name))


def evaluate(
    scenes: int = 200,
    methods: Sequence[str] | None = None,
    steps: int = 50,
    progress: Callable[[str], None] | None = None,
) -> list[MethodScores]:
    """Score each method on ``scenes`` held-out scenes and ``scenes // 2`` two-instance ones.

    Args:
        methods: registered method names; ``None`` scores every deterministic registered
            method (:func:`deterministic_methods`). A method that cannot run on the demo
            model (``cam`` needs a linear head right after global average pooling) gets a
            row of NaN with the reason in :attr:`MethodScores.not_applicable`.
        progress: called with a line before each method is scored.
    """
    if scenes < 1:
        raise ConfigurationError(f"scenes must be >= 1, got {scenes}")
    methods = deterministic_methods() if methods is None else list(methods)
    model = load_model()
    config = DataConfig.from_model(model)
    images, labels, boxes = _scenes(range(EVAL_SEED_START, EVAL_SEED_START + scenes), None)
    multi_count = max(1, scenes // 2)
    multi = _scenes(range(MULTI_SEED_START, MULTI_SEED_START + multi_count), 2)
    batch = torch.stack([config.to_tensor(image) for image in images])
    multi_batch = torch.stack([config.to_tensor(image) for image in multi[0]])
    targets = torch.tensor(labels)
    scorer = Scorer(model)
    with torch.no_grad():
        predicted = model(batch).argmax(dim=1)
    accuracy = float((predicted == targets).float().mean())
    results = []
    for index, method in enumerate(methods):
        if progress is not None:
            progress(f"{method} ({index + 1}/{len(methods)})")
        explainer = Explainer(model, method=method, device="cpu")
        try:
            cams = _cams(explainer, batch, labels)
        except MethodNotApplicableError as error:
            nan = float("nan")
            results.append(
                MethodScores(method, accuracy, nan, nan, nan, nan, nan, nan, nan, str(error))
            )
            continue
        results.append(
            MethodScores(
                method=method,
                accuracy=accuracy,
                pointing=float(pointing_game(cams, boxes).float().mean()),
                energy=float(energy_pointing_game(cams, boxes).mean()),
                average_drop=float(
                    scorer.average_drop(batch, cams, targets, mean=config.mean, std=config.std)
                ),
                increase_in_confidence=float(
                    scorer.increase_in_confidence(
                        batch, cams, targets, mean=config.mean, std=config.std
                    )
                ),
                deletion=float(scorer.deletion_auc(batch, cams, targets, steps=steps).mean()),
                insertion=float(scorer.insertion_auc(batch, cams, targets, steps=steps).mean()),
                multi_instance=_instance_share(_cams(explainer, multi_batch, multi[1]), multi[2]),
            )
        )
    return results


def format_table(results: Sequence[MethodScores], scenes: int) -> str:
    """A Markdown table of the scores."""
    lines = [
        f"Demo model, {scenes} held-out scenes (seeds {EVAL_SEED_START}..), true class explained; "
        f"multi-instance on {max(1, scenes // 2)} two-instance scenes.",
        "",
        "| method | pointing ↑ | energy ↑ | Avg Drop % ↓ | Incr Conf % ↑ | deletion ↓ "
        f"| insertion ↑ | instances ≥{INSTANCE_MASS:.0%} mass ↑ |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        if r.not_applicable is not None:
            lines.append(f"| {r.method} | not applicable to this model (see below) |||||||")
            continue
        lines.append(
            f"| {r.method} | {r.pointing:.3f} | {r.energy:.3f} | {r.average_drop:.2f} | "
            f"{r.increase_in_confidence:.1f} | {r.deletion:.3f} | {r.insertion:.3f} | "
            f"{r.multi_instance:.3f} |"
        )
    lines.append("")
    lines.append(f"Model accuracy on these scenes: {results[0].accuracy:.3f}")
    for r in results:
        if r.not_applicable is not None:
            lines.append(f"{r.method}: {r.not_applicable}")
    return "\n".join(lines)
