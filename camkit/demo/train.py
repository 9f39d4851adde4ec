"""Train the demo model deterministically: ``python -m camkit.demo.train``.

Scenes of :data:`TRAIN_SEEDS` are drawn once and augmented on the fly (random horizontal
flips and channel order: neither changes a shape's class); the accuracy is measured on the
held-out scenes of :data:`VAL_SEEDS`, never used in training. The run is seeded and uses
deterministic algorithms on a fixed number of CPU threads, so the same machine gives the
same weights bit for bit (another CPU or torch build may differ slightly; ``--check`` then
compares accuracies). It takes about 3 minutes on 2 CPU cores.

Usage::

    python -m camkit.demo.train                 # writes camkit/demo/demonet.pt
    python -m camkit.demo.train --out my.pt --epochs 8
    python -m camkit.demo.train --check         # retrain; compare with the shipped weights
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from camkit.demo.model import WEIGHTS_FILE, DemoNet, load_model
from camkit.demo.scenes import SCENE_SIZE, make_scene

__all__ = [
    "DEFAULT_EPOCHS",
    "TRAIN_SEEDS",
    "VAL_SEEDS",
    "evaluate",
    "main",
    "render_scenes",
    "save_weights",
    "train",
]

TRAIN_SEEDS = range(0, 8000)
"""Seeds of the training scenes. Seeds below 1_000_000 are reserved for training."""
VAL_SEEDS = range(1_000_000, 1_001_000)
"""Held-out seeds for the accuracy report; tests and demos use seeds from 1_000_000 up."""
DEFAULT_EPOCHS = 8
BATCH_SIZE = 64
LEARNING_RATE = 4e-3
WEIGHT_DECAY = 5e-4
SEED = 0
THREADS = 2
CHECK_TOLERANCE = 1.0
"""Largest accuracy difference (in points) ``--check`` accepts."""


def render_scenes(seeds: Sequence[int]) -> tuple[Tensor, Tensor]:
    """Draw the scenes of ``seeds``: uint8 images ``(N, 3, H, W)`` and labels ``(N,)``."""
    images = np.empty((len(seeds), 3, SCENE_SIZE, SCENE_SIZE), dtype=np.uint8)
    labels = np.empty(len(seeds), dtype=np.int64)
    for i, seed in enumerate(seeds):
        image, label, _ = make_scene(seed)
        images[i] = image.transpose(2, 0, 1)
        labels[i] = label
    return torch.from_numpy(images), torch.from_numpy(labels)


def _normalise(model: DemoNet, images: Tensor) -> Tensor:
    """uint8 ``(N, 3, H, W)`` to the normalised float input, as camkit's DataConfig does."""
    mean = torch.tensor(model.pretrained_cfg["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(model.pretrained_cfg["std"]).view(1, 3, 1, 1)
    x = (images.float() / 255.0 - mean) / std
    return x.contiguous(memory_format=torch.channels_last)


def _augment(images: Tensor, generator: torch.Generator) -> Tensor:
    """Random horizontal flip and channel order per image (neither changes the class, and
    the scene distribution is symmetric under both)."""
    n = images.shape[0]
    flip = torch.rand(n, generator=generator) < 0.5
    out = torch.where(flip.view(n, 1, 1, 1), images.flip(3), images)
    order = torch.argsort(torch.rand(n, 3, generator=generator), dim=1)
    return torch.gather(out, 1, order.view(n, 3, 1, 1).expand_as(out))


@torch.no_grad()
def evaluate(model: DemoNet, images: Tensor, labels: Tensor, batch_size: int = 250) -> float:
    """Top-1 accuracy of ``model`` on uint8 images ``(N, 3, H, W)``; leaves it in eval mode."""
    model.eval()
    correct = 0
    for start in range(0, images.shape[0], batch_size):
        logits = model(_normalise(model, images[start : start + batch_size]))
        correct += int((logits.argmax(1) == labels[start : start + batch_size]).sum())
    return correct / images.shape[0]


def _setup() -> None:
    torch.set_num_threads(THREADS)
    torch.manual_seed(SEED)
    try:
        torch.use_deterministic_algorithms(True)
    except RuntimeError:  # pragma: no cover - every CPU build supports it today
        print("warning: deterministic algorithms unavailable", file=sys.stderr)


def train(
    epochs: int = DEFAULT_EPOCHS,
    train_seeds: Sequence[int] = TRAIN_SEEDS,
    val_seeds: Sequence[int] = VAL_SEEDS,
    verbose: bool = True,
) -> tuple[DemoNet, float]:
    """Train a :class:`DemoNet` from scratch; return it (eval mode) and its held-out accuracy.

    Sets torch's global seed, thread count (:data:`THREADS`) and deterministic mode.
    """
    _setup()
    log = print if verbose else (lambda *_: None)
    started = time.perf_counter()
    train_x, train_y = render_scenes(train_seeds)
    val_x, val_y = render_scenes(val_seeds)
    log(
        f"drew {len(train_seeds)} training and {len(val_seeds)} held-out scenes "
        f"in {time.perf_counter() - started:.1f}s"
    )
    generator = torch.Generator().manual_seed(SEED)
    model = DemoNet().to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
    steps_per_epoch = math.ceil(len(train_seeds) / BATCH_SIZE)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, LEARNING_RATE, epochs=epochs, steps_per_epoch=steps_per_epoch, pct_start=0.2
    )
    loss_fn = nn.CrossEntropyLoss()
    accuracy = 0.0
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(len(train_seeds), generator=generator)
        total, seen = 0.0, 0
        for start in range(0, len(order), BATCH_SIZE):
            index = order[start : start + BATCH_SIZE]
            x = _normalise(model, _augment(train_x[index], generator))
            loss = loss_fn(model(x), train_y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += float(loss.detach()) * len(index)
            seen += len(index)
        accuracy = evaluate(model, val_x, val_y)
        log(
            f"epoch {epoch:2d}/{epochs}  loss {total / seen:.4f}  "
            f"held-out accuracy {100 * accuracy:.2f}%  ({time.perf_counter() - started:.0f}s)"
        )
    return model.to(memory_format=torch.contiguous_format).eval(), accuracy


def save_weights(model: DemoNet, path: Path) -> None:
    """Write ``model``'s float32 state dict, contiguous, to ``path``."""
    state = {name: value.detach().contiguous() for name, value in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m camkit.demo.train", description="Train camkit's demo model."
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).with_name(WEIGHTS_FILE),
        help="where to write the weights (default: the shipped camkit/demo/demonet.pt)",
    )
    parser.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS, help="training epochs")
    parser.add_argument(
        "--check",
        action="store_true",
        help="retrain without writing and check the accuracy matches the shipped weights'",
    )
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error("--epochs must be at least 1")
    started = time.perf_counter()
    model, accuracy = train(args.epochs)
    elapsed = time.perf_counter() - started
    print(f"trained in {elapsed:.0f}s; held-out accuracy {100 * accuracy:.2f}%")
    if not args.check:
        save_weights(model, args.out)
        print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KiB)")
        return 0
    shipped_model = load_model()
    val_x, val_y = render_scenes(VAL_SEEDS)
    shipped = evaluate(shipped_model, val_x, val_y)
    difference = 100 * abs(accuracy - shipped)
    matches = difference <= CHECK_TOLERANCE
    retrained_state = model.state_dict()
    identical = all(
        torch.equal(value, retrained_state[name])
        for name, value in shipped_model.state_dict().items()
    )
    print(
        f"shipped weights: {100 * shipped:.2f}%, retrained: {100 * accuracy:.2f}% "
        f"({difference:.2f} points apart, weights {'identical' if identical else 'differ'}): "
        f"{'OK' if matches else 'MISMATCH'}"
    )
    return 0 if matches else 1


if __name__ == "__main__":
    sys.exit(main())
