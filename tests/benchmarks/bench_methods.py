"""Speed of every camkit CAM method against the peers' same method, in one run.

Run from the repository root, in the development environment (``pip install -e .[dev]``)::

    python tests/benchmarks/bench_methods.py [--repeats 5] [--warmup 1] [--only NAME ...]
                                             [--threads N]

Two settings, both on the CPU, random-init torchvision models (``torch.manual_seed(0)``),
``layer4``, random ``(B, 3, S, S)`` tensors, explaining the predicted classes:

* **gradient methods** (one forward and one backward each): ResNet-50, batch 4, 224×224;
* **perturbation methods** (a forward per channel or per sample): ResNet-18, batch 1,
  112×112, so that a round takes seconds, with the same number of samples on both sides.

camkit runs ``Explainer(model, method=name, layer="layer4").explain_batch(x)`` and reads every
explanation's ``cam`` (the normalised map on the input, numpy), as the peers return maps at
input resolution; pytorch-grad-cam 1.5.7 runs its class of the same method with
``targets=None``; torchcam 0.5.0 runs its extractor on the logits of a forward with grad
enabled, then upsamples the maps to the input and moves them to numpy. Each contender owns a
deep copy of the model. Rounds are interleaved (each round runs every contender of a method
once, in an order rotated each round); the median is reported, with the ratio
``peer time / camkit time`` (above 1: camkit is faster). As camkit and the peer run next to
each other in every round, the script also reports the median of the per-round ratios
(``paired``: what slow drifts of the machine's speed disturb least) and in how many rounds
camkit was the faster.

Goals (issue "The field's CAM methods"): every gradient method >= 2x faster than
pytorch-grad-cam's; scorecam, sscam and iscam at least as fast as the peers'; ablationcam
faster than pytorch-grad-cam's. Methods camkit does not register are skipped.
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
from typing import Any

import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from camkit import Explainer, list_methods  # noqa: E402

GRADIENT = {
    # camkit name: pytorch-grad-cam class name
    "gradcam": "GradCAM",
    "gradcam++": "GradCAMPlusPlus",
    "hirescam": "HiResCAM",
    "gradcamelementwise": "GradCAMElementWise",
    "xgradcam": "XGradCAM",
    "layercam": "LayerCAM",
    "eigengradcam": "EigenGradCAM",
    "eigencam": "EigenCAM",
    "kpcacam": "KPCA_CAM",
    "fullgrad": "FullGrad",
    "shapleycam": "ShapleyCAM",
    "finercam": "FinerCAM",
}
PERTURBATION = {
    # camkit name: (peer library, class name, keyword arguments for both sides)
    "scorecam": ("pytorch_grad_cam", "ScoreCAM", {}),
    "ablationcam": ("pytorch_grad_cam", "AblationCAM", {}),
    "sscam": ("torchcam", "SSCAM", {"num_samples": 4}),
    "iscam": ("torchcam", "ISCAM", {"num_samples": 4}),
    "smoothgradcam++": ("torchcam", "SmoothGradCAMpp", {"num_samples": 4}),
}
GRADIENT_FREE = {"eigencam", "kpcacam"}  # one forward, no gradient: no goal, for reference
GOALS = {
    "gradient": 2.0,
    "scorecam": 1.0,
    "sscam": 1.0,
    "iscam": 1.0,
    "ablationcam": 1.0,
    "smoothgradcam++": 1.0,
}


def _grad_cam_runner(name: str, model: nn.Module, **kwargs: Any) -> Callable[[Tensor], object]:
    import pytorch_grad_cam

    cls = getattr(pytorch_grad_cam, name)
    if name == "FullGrad":
        cam = cls(model=model, target_layers=[])
    else:
        cam = cls(model=model, target_layers=[model.layer4], **kwargs)
    return lambda x: cam(input_tensor=x, targets=None)


def _torchcam_runner(name: str, model: nn.Module, **kwargs: Any) -> Callable[[Tensor], object]:
    import torchcam.methods

    cls = getattr(torchcam.methods, name)

    def run(x: Tensor) -> object:
        extractor = cls(model, target_layer="layer4", **kwargs)
        try:
            with torch.enable_grad():
                out = model(x)
                maps = extractor(out.argmax(1).tolist(), out)[0]
        finally:
            extractor.remove_hooks()
        resized = F.interpolate(maps.unsqueeze(1), size=x.shape[-2:], mode="bilinear")
        return resized.squeeze(1).detach().cpu().numpy()

    return run


def _camkit_runner(name: str, model: nn.Module, **kwargs: Any) -> Callable[[Tensor], object]:
    from camkit.plugins import create_method

    method = create_method(name)
    for key, value in kwargs.items():  # the same number of samples as the peer
        if hasattr(method, key):
            setattr(method, key, value)
    explainer = Explainer(model, method=method, layer="layer4", device="cpu")
    return lambda x: [e.cam for e in explainer.explain_batch(x)]


def _measure(
    runners: dict[str, Callable[[Tensor], object]], x: Tensor, warmup: int, repeats: int
) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in runners}
    names = list(runners)
    for round_ in range(warmup + repeats):
        order = names[round_ % len(names) :] + names[: round_ % len(names)]
        for name in order:
            start = time.perf_counter()
            with torch.no_grad() if name == "plain" else _nothing():
                runners[name](x)
            if round_ >= warmup:
                times[name].append(time.perf_counter() - start)
    return times


_Row = tuple[str, str, dict[str, list[float]], float | None]


def _summary(times: dict[str, list[float]]) -> tuple[float, float, float, float, int]:
    """Median plain, camkit and peer seconds, the median per-round ratio peer/camkit, and
    the rounds camkit won."""
    pairs = [peer / ours for peer, ours in zip(times["peer"], times["camkit"], strict=True)]
    wins = sum(ratio > 1.0 for ratio in pairs)
    medians = [statistics.median(times[key]) for key in ("plain", "camkit", "peer")]
    return medians[0], medians[1], medians[2], statistics.median(pairs), wins


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *_: object) -> None:
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--only", nargs="*", default=None, metavar="NAME")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    registered = set(list_methods())
    wanted = set(args.only) if args.only else None
    rows: list[_Row] = []
    warnings.simplefilter("ignore")

    torch.manual_seed(0)
    resnet50 = torchvision.models.resnet50(weights=None).eval()
    x = torch.randn(4, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    for name, peer in GRADIENT.items():
        if name not in registered or (wanted and name not in wanted):
            continue
        runners = {
            "plain": (lambda m: lambda t: m(t))(copy.deepcopy(resnet50)),
            "camkit": _camkit_runner(name, copy.deepcopy(resnet50)),
            "peer": _grad_cam_runner(peer, copy.deepcopy(resnet50)),
        }
        found = _measure(runners, x, args.warmup, args.repeats)
        goal = GOALS["gradient"] if name not in GRADIENT_FREE else None
        rows.append((name, f"pytorch-grad-cam {peer}", found, goal))
        _progress(name, found)

    torch.manual_seed(0)
    resnet18 = torchvision.models.resnet18(weights=None).eval()
    small = torch.randn(1, 3, 112, 112, generator=torch.Generator().manual_seed(1))
    for name, (library, peer, kwargs) in PERTURBATION.items():
        if name not in registered or (wanted and name not in wanted):
            continue
        make = _grad_cam_runner if library == "pytorch_grad_cam" else _torchcam_runner
        runners = {
            "plain": (lambda m: lambda t: m(t))(copy.deepcopy(resnet18)),
            "camkit": _camkit_runner(name, copy.deepcopy(resnet18), **kwargs),
            "peer": make(peer, copy.deepcopy(resnet18), **kwargs),
        }
        found = _measure(runners, small, args.warmup, args.repeats)
        rows.append((name, f"{library} {peer}", found, GOALS[name]))
        _progress(name, found)

    print()
    print(
        f"CPU, torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"median of {args.repeats} rounds"
    )
    print(
        f"{'method':<20} {'peer':<34} {'plain s':>8} {'camkit s':>9} {'peer s':>8} "
        f"{'peer/camkit':>11} {'paired':>7} {'won':>6} {'goal':>6}"
    )
    for name, peer, found, goal in rows:
        plain, ours, theirs, paired, wins = _summary(found)
        ratio = theirs / ours
        verdict = "-" if goal is None else ("met" if ratio >= goal else "MISSED")
        wanted = "-" if goal is None else f">={goal}"
        won = f"{wins}/{len(found['camkit'])}"
        print(
            f"{name:<20} {peer:<34} {plain:8.3f} {ours:9.3f} {theirs:8.3f} {ratio:10.2f}x "
            f"{paired:6.2f}x {won:>6} {wanted:>6} {verdict}"
        )
    return 0


def _progress(name: str, found: dict[str, list[float]]) -> None:
    _, ours, theirs, paired, wins = _summary(found)
    print(
        f"{name}: camkit {ours:.3f} s, peer {theirs:.3f} s (paired {paired:.2f}x, camkit faster "
        f"in {wins} of {len(found['camkit'])} rounds)",
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
