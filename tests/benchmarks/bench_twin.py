"""Forward speed of a model against camkit's channels-last twin of it, on the CPU, in one run.

Run from the repository root, in the development environment (``pip install -e .[dev]``)::

    python tests/benchmarks/bench_twin.py [--repeats 5] [--batch 16] [--only NAME ...]

For each random-init torchvision model (``torch.manual_seed(0)``) and a random ``(batch, 3, S,
S)`` tensor, under ``torch.no_grad``: the model itself on the default (NCHW) layout, the
channels-last twin alone (:func:`camkit.twin.channels_last_twin`, input converted), and the
twin with its batch norms folded (:func:`camkit.twin.fold_batch_norms`), which is what
``MethodContext.score_inputs`` scores with on the CPU. Rounds are interleaved (each round runs
the three once); the median of the rounds is reported with the ratio ``model / twin`` (above
1: the twin is faster) and the largest difference of the logits.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torchvision
from torch import Tensor, nn

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from camkit.twin import channels_last_twin, fold_batch_norms  # noqa: E402

MODELS = {
    # name: (torchvision builder, input size)
    "resnet18": ("resnet18", 112),
    "resnet18@224": ("resnet18", 224),
    "resnet50": ("resnet50", 112),
    "vgg11_bn": ("vgg11_bn", 112),
    "densenet121": ("densenet121", 112),
    "mobilenet_v3_small": ("mobilenet_v3_small", 224),
    "efficientnet_b0": ("efficientnet_b0", 112),
    "convnext_tiny": ("convnext_tiny", 112),
}


def seconds(run: Callable[[], Tensor], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        run()
    return (time.perf_counter() - start) / calls


@torch.no_grad()
def measure(model: nn.Module, x: Tensor, repeats: int, calls: int) -> dict[str, float]:
    plain_twin = channels_last_twin(model)
    folded_twin = channels_last_twin(model)
    assert plain_twin is not None and folded_twin is not None
    x_last = x.contiguous(memory_format=torch.channels_last)
    folded = fold_batch_norms(folded_twin, x_last)
    runs = {
        "model": lambda: model(x),
        "twin": lambda: plain_twin(x_last),
        "folded": lambda: folded_twin(x_last),
    }
    for run in runs.values():
        run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for round_ in range(repeats):
        names = list(runs)
        names = names[round_ % 3 :] + names[: round_ % 3]
        for name in names:
            times[name].append(seconds(runs[name], calls))
    expected = model(x)
    error = max(float((run() - expected).abs().max()) for run in list(runs.values())[1:])
    result = {name: statistics.median(values) for name, values in times.items()}
    result["folded_count"] = folded
    result["error"] = error
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--calls", type=int, default=3, help="forwards per timing")
    parser.add_argument("--only", nargs="*", choices=sorted(MODELS))
    args = parser.parse_args()
    print(f"CPU, torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}")
    print(
        f"{'model':<20} {'px':>4} {'model s':>8} {'twin s':>8} {'folded s':>9} "
        f"{'twin':>6} {'folded':>7} {'BN folded':>9} {'max |diff|':>10}"
    )
    for name in args.only or MODELS:
        builder, size = MODELS[name]
        torch.manual_seed(0)
        model = getattr(torchvision.models, builder)().eval()
        x = torch.randn(args.batch, 3, size, size)
        r = measure(model, x, args.repeats, args.calls)
        print(
            f"{name:<20} {size:>4} {r['model']:>8.3f} {r['twin']:>8.3f} {r['folded']:>9.3f} "
            f"{r['model'] / r['twin']:>5.2f}x {r['model'] / r['folded']:>6.2f}x "
            f"{int(r['folded_count']):>9} {r['error']:>10.1e}",
            flush=True,
        )


if __name__ == "__main__":
    main()
