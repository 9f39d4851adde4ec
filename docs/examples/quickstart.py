"""camkit quick start: explain an image with Grad-CAM++ and save the overlay.

Runs offline: it uses a randomly initialised ResNet-18 (no weights can be downloaded), so the
map shows the mechanics, not a trained model's reasoning. Use your own trained model and
images in practice.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
import torchvision

from camkit import Explainer


def main(out_dir: str = "cam_output") -> Path:
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=10).eval()
    rng = np.random.default_rng(0)
    image = (rng.random((240, 320, 3)) * 60).astype(np.uint8)
    image[60:180, 180:300] = (230, 200, 40)  # a bright block on a dark, noisy background

    explainer = Explainer(model)  # Grad-CAM++, layer found automatically, JET overlay
    explanation = explainer.explain(image)
    path = explanation.save(Path(out_dir) / "quickstart_gradcam.jpg", alpha=0.5)
    print(
        f"layer={explanation.layer} method={explanation.method} "
        f"pred_class={explanation.pred_class} confidence={explanation.confidence:.3f}"
    )
    print(f"overlay written to {path}")
    return path


if __name__ == "__main__":
    main(*sys.argv[1:])
