"""Several classes from one forward: camkit's ``explain_classes`` against one ``explain`` and
against pytorch-grad-cam explaining the same classes one call each.

Run from the repository root, in the development environment (``pip install -e .[dev]``)::

    python tests/benchmarks/bench_classes.py [--top 5] [--repeats 7] [--warmup 2]
                                             [--layer layer4] [--threads N]

A random-init torchvision ResNet-50 (``torch.manual_seed(0)``), one ``(3, 224, 224)`` tensor,
CPU. Contenders, interleaved round by round (order rotated each round), median reported:

* ``plain``: ``model(x)`` under ``torch.no_grad()``;
* ``camkit 1``: ``explainer.explain(x)``, the predicted class;
* ``camkit top-k``: ``explainer.explain_classes(x, top=k)``, one forward, ``k`` backward passes
  through the part after the layer, each map placed on the original;
* ``pytorch-grad-cam top-k``: ``GradCAMPlusPlus`` called once per class of the same ``k``.

Goal (issue "Engine v2"): camkit top-5 costs at most 1.2× camkit 1. The script prints the
figures and ratios and exits 0; ``--check`` exits 1 when the goal is missed.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
import torchvision

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from camkit import Explainer  # noqa: E402

GOAL = 1.2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--top", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--layer", default="layer4")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = torchvision.models.resnet50(weights=None).eval()
    x = torch.randn(3, 224, 224, generator=torch.Generator().manual_seed(1))
    explainer = Explainer(copy.deepcopy(model), layer=args.layer, device="cpu")
    with torch.no_grad():
        classes = model(x[None])[0].topk(args.top).indices.tolist()

    contenders: dict[str, Callable[[], object]] = {}

    def plain() -> object:
        with torch.no_grad():
            return model(x[None])

    contenders["plain forward"] = plain
    contenders["camkit, 1 class"] = lambda: explainer.explain(x).cam
    contenders[f"camkit, top-{args.top}"] = lambda: [
        e.cam for e in explainer.explain_classes(x, top=args.top)
    ]
    try:
        from pytorch_grad_cam import GradCAMPlusPlus
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        peer_model = copy.deepcopy(model)
        layer = peer_model.get_submodule(args.layer)
        peer = GradCAMPlusPlus(model=peer_model, target_layers=[layer])

        def peer_top() -> object:
            return [
                peer(input_tensor=x[None], targets=[ClassifierOutputTarget(c)]) for c in classes
            ]

        contenders[f"pytorch-grad-cam, top-{args.top}"] = peer_top
    except ImportError:
        print("pytorch-grad-cam is not installed; its row is skipped")

    times: dict[str, list[float]] = {name: [] for name in contenders}
    names = list(contenders)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for round_ in range(args.warmup + args.repeats):
            order = names[round_ % len(names) :] + names[: round_ % len(names)]
            for name in order:
                start = time.perf_counter()
                contenders[name]()
                elapsed = time.perf_counter() - start
                if round_ >= args.warmup:
                    times[name].append(elapsed)
    medians = {name: statistics.median(values) for name, values in times.items()}
    one = medians["camkit, 1 class"]
    print(
        f"ResNet-50 at {args.layer}, one 224x224 image, CPU ({torch.get_num_threads()} threads), "
        f"median of {args.repeats} rounds"
    )
    print(f"{'contender':<28} {'seconds':>9} {'x camkit 1 class':>17}")
    for name, value in medians.items():
        print(f"{name:<28} {value:9.4f} {value / one:17.2f}")
    ratio = medians[f"camkit, top-{args.top}"] / one
    ok = ratio <= GOAL
    print(
        f"camkit top-{args.top} / camkit 1 class = {ratio:.2f} (goal <= {GOAL}): "
        f"{'met' if ok else 'MISSED'}"
    )
    return 1 if args.check and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
