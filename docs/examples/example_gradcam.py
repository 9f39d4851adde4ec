"""The seed toolkit's four examples, on camkit: single image, folder, quick mode, models compared.

Run it from any folder: ``python docs/examples/example_gradcam.py [WORKDIR]``. The seed's
examples assume a trained classification project (``models/<backbone>/best_epoch_weights.pth``,
``model_data/cls_classes.txt``, ``datasets/test/1/*.jpg``). Nothing can be downloaded here, so
when WORKDIR has no such project the script first creates one with randomly initialised
weights and synthetic images: the maps then show the mechanics, not a trained model's
reasoning. Point WORKDIR at your own project to use your real checkpoints.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

import numpy as np
import timm
import torch
import torchvision
from PIL import Image

from camkit import generate_gradcam, generate_gradcam_batch, quick_gradcam


def create_demo_project(root: Path) -> None:
    """A classification project as the seed's users have it, with random-init weights."""
    (root / "model_data").mkdir(parents=True, exist_ok=True)
    (root / "model_data" / "cls_classes.txt").write_text("0, normal\n1, abnormal\n")
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        models = {
            "inception_resnet_v2": timm.create_model("inception_resnet_v2", num_classes=2),
            "resnet50": timm.create_model("resnet50", num_classes=2),
            "efficientnet_b0": timm.create_model("efficientnet_b0", num_classes=2),
            "mobilenetv2": torchvision.models.mobilenet_v2(num_classes=2),
        }
    for backbone, model in models.items():
        folder = root / "models" / backbone
        folder.mkdir(parents=True, exist_ok=True)
        checkpoint = {"model_state_dict": model.state_dict(), "epoch": 30, "val_acc": 0.97}
        torch.save(checkpoint, folder / "best_epoch_weights.pth")
    rng = np.random.default_rng(0)
    images = root / "datasets" / "test" / "1"
    images.mkdir(parents=True, exist_ok=True)
    for i in range(4):
        picture = rng.integers(0, 80, (240 + 20 * i, 320, 3), dtype=np.uint8)
        picture[60:160, 40 + 50 * i : 140 + 50 * i] = (220, 60, 60)
        Image.fromarray(picture).save(images / f"sample_{i}.jpg")


def main(workdir: str = "camkit_example") -> None:
    root = Path(workdir)
    if not (root / "models" / "inception_resnet_v2" / "best_epoch_weights.pth").is_file():
        print(f"creating a demo project with random-init weights in {root}/")
        create_demo_project(root)
    os.chdir(root)  # the seed's default paths are relative to the project folder

    # 1. One image, with the seed's parameters
    result = generate_gradcam(
        image_path="datasets/test/1/sample_0.jpg",
        model_path="models/resnet50/best_epoch_weights.pth",
        backbone="resnet50",
        input_shape=(224, 224),
        output_path="cam_output/sample_gradcam.jpg",
        overwrite=True,  # replace the file of an earlier run (camkit never does unasked)
        alpha=0.5,
        cuda=torch.cuda.is_available(),
        return_image=True,
    )
    print(f"1. prediction: {result['pred_name']}, confidence: {result['confidence']:.3f}")
    print(f"   layer {result['layer']}, cam {result['cam'].shape}, -> {result['output_path']}")

    # 2. A whole folder, with a CSV report
    results = generate_gradcam_batch(
        image_dir="datasets/test/1/",
        output_dir="cam_output/batch_analysis",
        save_report=True,
        model_path="models/resnet50/best_epoch_weights.pth",
        backbone="resnet50",
        input_shape=(224, 224),
        cuda=torch.cuda.is_available(),
        progress=False,
        overwrite=True,
    )
    done = sum(r["error"] is None for r in results)
    print(f"2. processed {done} of {len(results)} images -> cam_output/batch_analysis/")

    # 3. Quick mode: every default (inception_resnet_v2, 299x299, model_data/cls_classes.txt)
    result = quick_gradcam("datasets/test/1/sample_1.jpg", "test_gradcam.jpg", overwrite=True)
    print(f"3. quick: {result['pred_name']} ({result['confidence']:.3f}) -> test_gradcam.jpg")

    # 4. Several models compared on one image
    for backbone in ("resnet50", "efficientnet_b0", "mobilenetv2", "inception_resnet_v2"):
        result = generate_gradcam(
            "datasets/test/1/sample_2.jpg",
            model_path=f"models/{backbone}/best_epoch_weights.pth",
            backbone=backbone,
            input_shape=(299, 299) if backbone == "inception_resnet_v2" else (224, 224),
            output_path=f"cam_output/compare/{backbone}_gradcam.jpg",
            overwrite=True,
            cuda=torch.cuda.is_available(),
        )
        print(
            f"4. {backbone:<20} layer {result['layer']:<22} "
            f"{result['pred_name']} ({result['confidence']:.3f})"
        )


if __name__ == "__main__":
    main(*sys.argv[1:])
