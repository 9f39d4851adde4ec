"""Speed on vision transformers: camkit + camkit-vit against pytorch-grad-cam.

Run from the repository root, with camkit, the plugin and the dev extras installed
(``pip install -e ".[dev]" -e plugins/camkit-vit``)::

    python tests/benchmarks/bench_vit.py [--repeats 7] [--warmup 2] [--batch 8] [--device cpu]

For each model (random-init timm ``vit_small_patch16_224``, ``deit_small_distilled_patch16_224``
and ``swin_tiny_patch4_window7_224``) three contenders run interleaved on a
``(B, 3, 224, 224)`` tensor, and the median of the timed rounds is printed:

* ``plain``: ``model(x)`` under ``torch.no_grad()``;
* ``camkit``: ``Explainer(model).explain_batch(x)``, with no layer and no reshape given
  (the plugin picks ``blocks[-1].norm1`` or the last Swin stage);
* ``gradcam``: pytorch-grad-cam's ``GradCAMPlusPlus`` at the same layer, with the
  ``reshape_transform`` its users write by hand.

The timing loop and the plain-forward contender are those of ``bench_speed_memory.py``.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_speed_memory import BY_KEY as CNN_CONTENDERS
from bench_speed_memory import (
    PlainForward,
    Runner,
    label_of,
    make_input,
    resolve_device,
    timed_run,
)

MODELS = (
    "vit_small_patch16_224",
    "deit_small_distilled_patch16_224",
    "swin_tiny_patch4_window7_224",
)


class CamkitAuto(Runner):
    def __init__(self, model: nn.Module, device: torch.device) -> None:
        from camkit import Explainer

        self.explainer = Explainer(model, device=device)
        self.layer = self.explainer.resolve_layer()

    def run(self, x: Tensor) -> object:
        return self.explainer.explain_batch(x)


def reshape_for(model: nn.Module):  # type: ignore[no-untyped-def]
    """The reshape_transform a pytorch-grad-cam user writes for this model."""
    prefix = int(getattr(model, "num_prefix_tokens", 0))
    grid = getattr(model.patch_embed, "grid_size", None)

    def reshape(tensor: Tensor) -> Tensor:
        if tensor.ndim == 4:  # Swin: (B, h, w, C)
            return tensor.permute(0, 3, 1, 2)
        height, width = grid
        patches = tensor[:, prefix:, :].reshape(tensor.size(0), height, width, tensor.size(2))
        return patches.permute(0, 3, 1, 2)

    return reshape


class GradCamReshape(Runner):
    def __init__(self, model: nn.Module, device: torch.device, layer: str) -> None:
        from pytorch_grad_cam import GradCAMPlusPlus

        target = model.eval().get_submodule(layer)
        self.cam = GradCAMPlusPlus(model, [target], reshape_transform=reshape_for(model))

    def run(self, x: Tensor) -> object:
        return self.cam(input_tensor=x, targets=None)


def bench_model(name: str, args: argparse.Namespace, device: torch.device) -> dict[str, float]:
    import timm

    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        base = timm.create_model(name, pretrained=False).eval().to(device)
    camkit = CamkitAuto(copy.deepcopy(base), device)
    runners: dict[str, Runner] = {
        "plain": PlainForward(copy.deepcopy(base), device),
        "camkit": camkit,
        "gradcam": GradCamReshape(copy.deepcopy(base), device, camkit.layer),
    }
    x = make_input(args.batch, device)
    keys = list(runners)
    times: dict[str, list[float]] = {key: [] for key in keys}
    for round_index in range(args.warmup + args.repeats):
        shift = round_index % len(keys)
        for key in keys[shift:] + keys[:shift]:
            seconds = timed_run(runners[key], x, device)
            if round_index >= args.warmup:
                times[key].append(seconds)
    print(f"{name} (layer {camkit.layer})")
    medians = {key: statistics.median(values) for key, values in times.items()}
    for key in keys:
        print(f"  {key:<8} median {medians[key]:.3f} s")
    print(
        f"  camkit / plain = {medians['camkit'] / medians['plain']:.2f}x, "
        f"pytorch-grad-cam / camkit = {medians['gradcam'] / medians['camkit']:.2f}x"
    )
    return medians


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    print(
        f"torch {torch.__version__}, {label_of(CNN_CONTENDERS['gradcam'])}, device {device}, "
        f"batch {args.batch}, {args.warmup} warm-up + {args.repeats} timed rounds"
    )
    for name in MODELS:
        bench_model(name, args, device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
