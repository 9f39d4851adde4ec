"""CUDA checks for a machine with a GPU (no GPU in CI): camkit on CUDA gives the CPU's maps.

Run from the repository root, with camkit and camkit-vit installed::

    python tests/benchmarks/check_cuda.py

For a random-init ResNet-50, ViT-S, distilled DeiT-S and Swin-T it checks that
``Explainer(model, device="cuda")`` returns the maps of ``device="cpu"`` (float32, maximum
difference after min-max normalisation), that half precision (float16, bfloat16) gives
non-empty maps close to float32's, and that the model's state is left as it was. It
prints one line per check and exits 1 if any fails.
"""

from __future__ import annotations

import copy
import sys
import warnings

import numpy as np
import torch


def _minmax(maps: np.ndarray) -> np.ndarray:
    low = maps.min(axis=(1, 2), keepdims=True)
    high = maps.max(axis=(1, 2), keepdims=True)
    return (maps - low) / np.maximum(high - low, 1e-12)


def _build(name: str) -> torch.nn.Module:
    import timm
    import torchvision

    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if name == "resnet50":
            return torchvision.models.resnet50(weights=None).eval()
        return timm.create_model(name, pretrained=False).eval()


def main() -> int:
    from camkit import Explainer

    if not torch.cuda.is_available():
        print("CUDA is not available: nothing to check")
        return 1
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name(0)}")
    x = torch.randn(4, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    failures = 0
    for name in [
        "resnet50",
        "vit_small_patch16_224",
        "deit_small_distilled_patch16_224",
        "swin_tiny_patch4_window7_224",
    ]:
        model = _build(name)
        cpu = Explainer(copy.deepcopy(model), device="cpu").explain_batch(x)
        gpu_model = copy.deepcopy(model).cuda()
        flags = [m.training for m in gpu_model.modules()]
        gpu = Explainer(gpu_model, device="cuda").explain_batch(x)
        same_layer = cpu[0].layer == gpu[0].layer
        diff = float(
            np.abs(
                _minmax(np.stack([e.raw for e in cpu])) - _minmax(np.stack([e.raw for e in gpu]))
            ).max()
        )
        classes = [e.pred_class for e in cpu] == [e.pred_class for e in gpu]
        untouched = (
            flags == [m.training for m in gpu_model.modules()]
            and all(p.grad is None for p in gpu_model.parameters())
            and all(not m._forward_hooks for m in gpu_model.modules())
        )
        ok = same_layer and classes and untouched and diff < 2e-3
        failures += not ok
        print(
            f"{'PASS' if ok else 'FAIL'} {name} cuda vs cpu: layer {gpu[0].layer}, "
            f"max map difference {diff:.2e}, same classes {classes}, model untouched {untouched}"
        )
        for dtype in (torch.float16, torch.bfloat16):
            half = Explainer(copy.deepcopy(gpu_model).to(dtype), device="cuda").explain_batch(x)
            maps = _minmax(np.stack([e.raw for e in half]))
            empty = sum(float(e.raw.max()) == 0 for e in half)
            hdiff = float(np.abs(maps - _minmax(np.stack([e.raw for e in gpu]))).max())
            ok = empty == 0 and hdiff < 0.25
            failures += not ok
            print(
                f"{'PASS' if ok else 'FAIL'} {name} {str(dtype).removeprefix('torch.')}: "
                f"{empty} empty maps, max difference to float32 {hdiff:.3f}"
            )
    print("all CUDA checks passed" if failures == 0 else f"{failures} CUDA checks failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
