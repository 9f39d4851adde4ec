"""The plain inference pipeline that ``bench_folder.py`` compares camkit's folder run with.

One process classifies every image of a folder: a torch ``DataLoader`` decodes (PIL) and
resizes the files on ``--workers`` worker processes, the batches are normalised, the model
runs under ``torch.inference_mode()`` and the argmax of every row is kept. It prints one
JSON line (``{"images": N, "classes": K}``) so the benchmark can check that every file was
classified. It does not import camkit: its start-up is that of torch, PIL and the model
library alone.

Usage (``bench_folder.py`` runs it as a fresh process and times it whole)::

    python tests/benchmarks/plain_inference.py DIR --model resnet50 --workers 2 \\
        --batch-size 8 --device cpu --input-size 224 224 --interpolation bicubic \\
        --mean 0.485 0.456 0.406 --std 0.229 0.224 0.225

The preprocessing options are camkit's ``DataConfig.from_model(model)`` for the model (the
benchmark reads them and passes them here), so both sides do the same work: stretch the
whole image to the input size with that PIL filter, scale to [0, 1], subtract the mean and
divide by the std.

Why this is the fastest plain pipeline on these inputs (one process, fp32, the same model):

- ``iter(loader)`` starts the workers *before* the model library is imported and the model
  built, so decoding overlaps the start-up, and the fork happens before OpenMP starts;
- the workers return ``uint8`` tensors (a quarter of the bytes of float32 through shared
  memory); the conversion to float and the normalisation run once per batch, in place, on
  the model's device;
- ``pin_memory`` and ``non_blocking`` copies only on CUDA (pinning on the CPU is pure cost);
- ``inference_mode`` (no autograd bookkeeping at all), predictions kept on the device and
  moved to the CPU once at the end;
- with ``--workers 0`` decoding runs in the main process (no worker start-up, no IPC),
  which wins when the model dominates; the benchmark runs both and keeps the better.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
FILTERS = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
}


class Files(Dataset[torch.Tensor]):
    """Decode one file with PIL, stretch it to ``size`` ``(H, W)``: a ``(3, H, W)`` uint8
    tensor."""

    def __init__(self, paths: list[Path], size: tuple[int, int], interpolation: str) -> None:
        self.paths = paths
        self.size = (size[1], size[0])  # PIL wants (W, H)
        self.filter = FILTERS[interpolation]

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        with Image.open(self.paths[index]) as image:
            rgb = image if image.mode == "RGB" else image.convert("RGB")
            if rgb.size != self.size:
                rgb = rgb.resize(self.size, self.filter)
            array = np.array(rgb)  # a writable copy: torch warns on read-only arrays
        return torch.from_numpy(array).permute(2, 0, 1)


def list_images(folder: Path) -> list[Path]:
    """Every image file under ``folder`` (recursively, as camkit's folder run), sorted."""
    found = []
    for root, _dirs, names in os.walk(folder):
        found += [Path(root, n) for n in names if Path(n).suffix.lower() in IMAGE_SUFFIXES]
    return sorted(found)


def build_model(name: str) -> torch.nn.Module:
    """The random-init 1000-class model ``name`` as camkit's ``--model NAME`` builds it:
    timm's when timm has the name, else torchvision's (``timm/NAME``, ``torchvision/NAME``
    pick the library)."""
    library, slash, rest = name.partition("/")
    if (slash and library == "torchvision") or (not slash and not _timm_has(name)):
        import torchvision

        return torchvision.models.get_model(rest if slash else name, weights=None)
    import timm

    return timm.create_model(rest if slash else name, pretrained=False, num_classes=1000)


def _timm_has(name: str) -> bool:
    import timm

    return bool(timm.is_model(name))


def main(argv: list[str] | None = None) -> int:
    """Classify every image under the folder; print ``{"images": N, "classes": K}``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--model", required=True)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--input-size", type=int, nargs=2, default=(224, 224), metavar=("H", "W"))
    parser.add_argument("--interpolation", choices=sorted(FILTERS), default="bilinear")
    parser.add_argument("--mean", type=float, nargs=3, default=(0.485, 0.456, 0.406))
    parser.add_argument("--std", type=float, nargs=3, default=(0.229, 0.224, 0.225))
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    on_cuda = device.type == "cuda"
    paths = list_images(args.folder)
    loader = DataLoader(
        Files(paths, tuple(args.input_size), args.interpolation),
        batch_size=args.batch_size,
        shuffle=False,
        num_workers=args.workers,
        pin_memory=on_cuda,
    )
    batches = iter(loader)  # the workers start decoding now, while the model is built

    model = build_model(args.model).eval().to(device)
    mean = torch.tensor(args.mean, device=device).view(1, 3, 1, 1) * 255.0
    std = torch.tensor(args.std, device=device).view(1, 3, 1, 1) * 255.0
    predictions = []
    with torch.inference_mode():
        for batch in batches:
            x = batch.to(device, non_blocking=on_cuda).float().sub_(mean).div_(std)
            predictions.append(model(x).argmax(dim=1))
    classes = torch.cat(predictions).cpu().tolist() if predictions else []
    print(json.dumps({"images": len(classes), "classes": len(set(classes))}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
