"""The embedded demo: procedural scenes, the shipped DemoNet weights and their quality."""

from __future__ import annotations

from collections.abc import Iterator
from importlib import resources
from typing import Any

import numpy as np
import pytest
import torch
from numpy.typing import NDArray

import camkit.demo.scenes as scenes
from camkit import DataConfig, Explainer
from camkit.demo import CLASS_NAMES, SCENE_SIZE, DemoNet, load_model, make_scene
from camkit.demo import train as demo_train
from camkit.demo.model import WEIGHTS_FILE

#: Held-out seeds: training uses seeds below 1_000_000 only.
HELD_OUT = 1_000_000


@pytest.fixture(scope="module")
def model() -> DemoNet:
    return load_model()


def _in_box(x: int, y: int, boxes: list[tuple[int, int, int, int]]) -> bool:
    return any(x0 <= x < x1 and y0 <= y < y1 for x0, y0, x1, y1 in boxes)


# ---- scenes -------------------------------------------------------------------------------


def test_same_seed_gives_identical_bytes_whatever_the_global_rng() -> None:
    np.random.seed(1)
    torch.manual_seed(1)
    first = make_scene(HELD_OUT + 7)
    np.random.seed(2)
    torch.manual_seed(2)
    np.random.random(100)
    second = make_scene(HELD_OUT + 7)
    assert first[0].tobytes() == second[0].tobytes()
    assert first[1:] == second[1:]


def test_different_seeds_give_different_scenes() -> None:
    images = [make_scene(HELD_OUT + i)[0] for i in range(5)]
    for i in range(5):
        for j in range(i + 1, 5):
            assert not np.array_equal(images[i], images[j])


def test_scene_format_labels_and_boxes() -> None:
    labels = set()
    for seed in range(HELD_OUT, HELD_OUT + 200):
        image, label, boxes = make_scene(seed)
        assert image.shape == (SCENE_SIZE, SCENE_SIZE, 3) and image.dtype == np.uint8
        assert 0 <= label < len(CLASS_NAMES)
        labels.add(label)
        assert 1 <= len(boxes) <= 2
        for x0, y0, x1, y1 in boxes:
            assert 0 <= x0 < x1 <= SCENE_SIZE and 0 <= y0 < y1 <= SCENE_SIZE
            assert 12 <= x1 - x0 <= 44 and 12 <= y1 - y0 <= 44
        if len(boxes) == 2:
            (a0, b0, a1, b1), (c0, d0, c1, d1) = boxes
            assert a1 <= c0 or c1 <= a0 or b1 <= d0 or d1 <= b0, "instances overlap"
    assert labels == set(range(len(CLASS_NAMES)))


def test_overrides_set_instances_and_distractor_and_keep_the_label() -> None:
    for seed in range(HELD_OUT, HELD_OUT + 20):
        label = make_scene(seed)[1]
        for instances in (1, 2):
            for distractor in (False, True):
                _, forced_label, boxes = make_scene(
                    seed, instances=instances, distractor=distractor
                )
                assert forced_label == label
                assert len(boxes) == instances


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="instances"):
        make_scene(0, instances=3)
    with pytest.raises(ValueError, match="seed"):
        make_scene(-1)


@pytest.fixture
def drawn_masks(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[int, bool, Any]]]:
    """Record the coverage mask of every shape make_scene draws: (class, hollow, mask)."""
    recorded: list[tuple[int, bool, Any]] = []
    original = scenes._shape_mask

    def recording(kind: int, cx: float, cy: float, r: float, hollow: bool, rng: Any) -> Any:
        mask = original(kind, cx, cy, r, hollow, rng)
        recorded.append((kind, hollow, mask))
        return mask

    monkeypatch.setattr(scenes, "_shape_mask", recording)
    yield recorded


def test_random_choices_have_the_documented_rates(
    drawn_masks: list[tuple[int, bool, Any]],
) -> None:
    count = 400
    two = distractors = 0
    for seed in range(HELD_OUT, HELD_OUT + count):
        drawn_masks.clear()
        two += len(make_scene(seed)[2]) == 2
        distractors += any(hollow for _, hollow, _ in drawn_masks)
    assert 0.18 < two / count < 0.32  # TWO_INSTANCES_P = 0.25
    assert 0.23 < distractors / count < 0.37  # DISTRACTOR_P = 0.3


def _mask_box(mask: NDArray[np.uint8]) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def test_boxes_are_tight_around_the_drawn_instances(
    drawn_masks: list[tuple[int, bool, Any]],
) -> None:
    for seed in range(HELD_OUT, HELD_OUT + 60):
        drawn_masks.clear()
        image, label, boxes = make_scene(seed, distractor=seed % 2 == 0)
        filled = [(kind, mask) for kind, hollow, mask in drawn_masks if not hollow]
        hollow = [(kind, mask) for kind, is_hollow, mask in drawn_masks if is_hollow]
        assert {kind for kind, _ in filled} == {label}
        assert len(hollow) == (1 if seed % 2 == 0 else 0)
        assert all(kind != label for kind, _ in hollow)
        # Every drawn pixel of an instance lies in a returned box, and each box is tight.
        assert sorted(_mask_box(mask) for _, mask in filled) == boxes
        # No two shapes (instances or distractor) share a pixel or a box.
        masks = [mask for _, _, mask in drawn_masks]
        for i in range(len(masks)):
            for j in range(i + 1, len(masks)):
                assert not np.any((masks[i] > 0) & (masks[j] > 0))
                a, b = _mask_box(masks[i]), _mask_box(masks[j])
                assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]
        # The shape stands out from the background just around its box.
        for _, mask in filled:
            x0, y0, x1, y1 = _mask_box(mask)
            ring = np.zeros(mask.shape, dtype=bool)
            ring[max(y0 - 3, 0) : y1 + 3, max(x0 - 3, 0) : x1 + 3] = True
            ring[y0:y1, x0:x1] = False
            for _, other in filled + hollow:
                ring &= other == 0
            inside = image[mask == 255].astype(np.float64).mean(axis=0)
            around = image[ring].astype(np.float64).mean(axis=0)
            assert np.linalg.norm(inside - around) > 40


# ---- the shipped model --------------------------------------------------------------------


def test_weights_file_is_small_package_data() -> None:
    weights = resources.files("camkit.demo").joinpath(WEIGHTS_FILE)
    assert weights.is_file()
    size = len(weights.read_bytes())
    assert size < 2 * 1024 * 1024


def test_load_model_is_ready_to_explain(model: DemoNet) -> None:
    assert isinstance(model, DemoNet) and not model.training
    assert model.class_names == list(CLASS_NAMES)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    config = DataConfig.from_model(model)
    assert config.input_size == (SCENE_SIZE, SCENE_SIZE)
    assert config.mean == tuple(model.pretrained_cfg["mean"])
    assert config.std == tuple(model.pretrained_cfg["std"])


def test_training_normalisation_matches_camkit_preprocessing(model: DemoNet) -> None:
    image = make_scene(HELD_OUT)[0]
    ours = DataConfig.from_model(model).to_tensor(image)
    batch = torch.from_numpy(image.transpose(2, 0, 1).copy())[None]
    theirs = demo_train._normalise(model, batch)[0]
    torch.testing.assert_close(theirs, ours, rtol=0, atol=1e-5)


def test_shipped_model_accuracy_on_held_out_scenes(model: DemoNet) -> None:
    drawn = [make_scene(seed) for seed in range(HELD_OUT, HELD_OUT + 300)]
    explainer = Explainer(model, device="cpu")
    results = explainer.explain_batch([image for image, _, _ in drawn])
    accuracy = np.mean(
        [r.pred_class == label for r, (_, label, _) in zip(results, drawn, strict=True)]
    )
    assert accuracy >= 0.95, f"held-out accuracy {accuracy:.3f}"


def test_gradcampp_points_into_the_box(model: DemoNet) -> None:
    drawn = [make_scene(seed, instances=1) for seed in range(HELD_OUT, HELD_OUT + 50)]
    explainer = Explainer(model, device="cpu", class_names=model.class_names)
    results = explainer.explain_batch([image for image, _, _ in drawn])
    assert explainer.layer == "layer2"
    hits = []
    for result, (image, _, boxes) in zip(results, drawn, strict=True):
        assert result.cam.shape == image.shape[:2]
        y, x = np.unravel_index(int(np.argmax(result.cam)), result.cam.shape)
        hits.append(_in_box(int(x), int(y), boxes))
    assert np.mean(hits) >= 0.9, f"pointing accuracy {np.mean(hits):.2f}"


def test_explain_a_single_scene_with_no_configuration(model: DemoNet) -> None:
    image, label, _ = make_scene(HELD_OUT + 1, instances=1, distractor=False)
    explanation = Explainer(model, device="cpu", class_names=model.class_names).explain(image)
    assert explanation.pred_class == label
    assert explanation.pred_name == CLASS_NAMES[label]
    assert explanation.layer == "layer2"


# ---- the training script ------------------------------------------------------------------


def test_training_smoke_run_is_deterministic() -> None:
    kwargs: dict[str, Any] = {
        "epochs": 1,
        "train_seeds": range(32),
        "val_seeds": range(HELD_OUT, HELD_OUT + 8),
        "verbose": False,
    }
    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    try:
        with torch.random.fork_rng():
            first, _ = demo_train.train(**kwargs)
            second, _ = demo_train.train(**kwargs)
    finally:
        torch.use_deterministic_algorithms(deterministic)
        torch.set_num_threads(threads)
    for name, value in first.state_dict().items():
        assert torch.equal(value, second.state_dict()[name]), name


def test_seed_ranges_are_disjoint() -> None:
    assert max(demo_train.TRAIN_SEEDS) < HELD_OUT <= min(demo_train.VAL_SEEDS)
