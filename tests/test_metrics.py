"""camkit.metrics: hand-built maps and models whose metric values are known in closed form."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from camkit.errors import InputError, TargetError
from camkit.metrics import Scorer, energy_pointing_game, pointing_game
from camkit.targets import select_logits, target_scores, validate_targets


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


class Recording(nn.Module):
    """Records, for every forward call, the batch size, training flag and grad mode."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[int, bool, bool]] = []
        self.dropout = nn.Dropout(0.5)  # would randomise the outputs in training mode

    def record(self, x: Tensor) -> Tensor:
        self.calls.append((x.shape[0], self.training, torch.is_grad_enabled()))
        out: Tensor = self.dropout(x)
        return out


class MeanLogit(Recording):
    """logits = (a · mean(x), 0), so p_0 = sigmoid(a · mean(x)) and p_1 = 1 − p_0."""

    def __init__(self, a: float = 2.0) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.tensor(a))

    def forward(self, x: Tensor) -> Tensor:
        m = self.record(x).mean(dim=(1, 2, 3))
        return torch.stack([self.a * m, torch.zeros_like(m)], dim=1)


class RegionShare(Recording):
    """p_0 = s, the mean of channel 0 over a region (softmax of (log s, log(1 − s)))."""

    region: Tensor

    def __init__(self, region: Tensor) -> None:
        super().__init__()
        self.register_buffer("region", region.float())
        self.scale = nn.Parameter(torch.tensor(1.0))

    def forward(self, x: Tensor) -> Tensor:
        region = self.region
        s = (self.record(x)[:, 0] * region).sum(dim=(1, 2)) / region.sum()
        s = (self.scale * s).clamp(0.0, 1.0)
        return torch.stack([torch.log(s), torch.log1p(-s)], dim=1)


def left_half(height: int = 4, width: int = 4) -> Tensor:
    region = torch.zeros(height, width)
    region[:, : width // 2] = 1.0
    return region


# ---- pointing game -------------------------------------------------------------------------


def peak_map(row: int, col: int, height: int = 5, width: int = 6) -> Tensor:
    cam = torch.full((height, width), 0.1)
    cam[row, col] = 1.0
    return cam


def test_pointing_game_hit_miss_and_two_boxes() -> None:
    cams = torch.stack([peak_map(2, 3)] * 3)  # peak at x = 3, y = 2
    boxes = [
        [(3, 2, 4, 3)],  # exactly the peak pixel
        [(0, 0, 3, 5)],  # columns 0..2: x1 = 3 is exclusive, the peak is just outside
        [(0, 0, 1, 1), (2, 1, 5, 4)],  # the second box holds the peak
    ]
    assert pointing_game(cams, boxes).tolist() == [True, False, True]
    assert pointing_game(cams, boxes).dtype == torch.bool
    assert pointing_game(cams, boxes).float().mean().item() == pytest.approx(2 / 3)


def test_pointing_game_tolerance_is_a_euclidean_radius() -> None:
    cams = torch.stack([peak_map(2, 3), peak_map(3, 3)])
    side = [(0, 0, 3, 5)]  # one column left of the peak: distance 1
    corner = [(0, 0, 2, 2)]  # nearest box pixel (1, 1) is at distance sqrt(2² + 2²) = 2.83
    assert pointing_game(cams, [side, corner]).tolist() == [False, False]
    assert pointing_game(cams, [side, corner], tolerance=1).tolist() == [True, False]
    assert pointing_game(cams, [side, corner], tolerance=2).tolist() == [True, False]
    assert pointing_game(cams, [side, corner], tolerance=3).tolist() == [True, True]


def test_pointing_game_ties_take_the_first_maximum_in_row_major_order() -> None:
    cam = torch.zeros(4, 5)
    cam[0, 4] = cam[3, 1] = 1.0  # two equal maxima; (row 0, col 4) comes first
    cams = torch.stack([cam, cam, torch.zeros(4, 5)])
    boxes = [[(4, 0, 5, 1)], [(1, 3, 2, 4)], [(0, 0, 1, 1)]]  # a constant map points at (0, 0)
    assert pointing_game(cams, boxes).tolist() == [True, False, True]


def test_boxes_may_be_int_tensors_or_arrays() -> None:
    cams = torch.stack([peak_map(2, 3)] * 2)
    boxes: list[Any] = [torch.tensor([[0, 0, 1, 1], [2, 1, 5, 4]]), np.array([[0, 0, 3, 5]])]
    assert pointing_game(cams, boxes).tolist() == [True, False]
    with pytest.raises(InputError, match="four ints"):
        pointing_game(cams, [torch.tensor([[0.0, 0, 1, 1]]), [(0, 0, 1, 1)]])


@pytest.mark.parametrize(
    ("boxes", "tolerance", "message"),
    [
        ([[(0, 0, 1, 1)]], 0, "boxes for 1 images but 2 maps"),
        ([[(0, 0, 1, 1)], []], 0, "image 1 has no box"),
        ([[(0, 0, 1, 1)], [(0, 0, 7, 1)]], 0, "outside the 5x6 map"),
        ([[(0, 0, 1, 1)], [(2, 0, 2, 1)]], 0, "empty or outside"),
        ([[(0, 0, 1, 1)], [(0.0, 0, 1, 1)]], 0, "four ints"),
        ([[(0, 0, 1, 1)], [(0, 0, 1)]], 0, "four ints"),
        ([[(0, 0, 1, 1)], [(0, 0, 1, 1)]], -1, "tolerance must be an int >= 0"),
    ],
)
def test_pointing_game_rejects_bad_boxes(boxes: Any, tolerance: int, message: str) -> None:
    cams = torch.stack([peak_map(2, 3)] * 2)
    with pytest.raises(InputError, match=message):
        pointing_game(cams, boxes, tolerance=tolerance)


def test_maps_must_be_finite_3d_floats() -> None:
    with pytest.raises(InputError, match=r"shape \(B, H, W\)"):
        pointing_game(torch.zeros(5, 6), [[(0, 0, 1, 1)]])
    with pytest.raises(InputError, match="floating-point"):
        pointing_game(torch.zeros(1, 5, 6, dtype=torch.long), [[(0, 0, 1, 1)]])
    with pytest.raises(InputError, match="NaN"):
        energy_pointing_game(torch.full((1, 5, 6), math.nan), [[(0, 0, 1, 1)]])


# ---- energy-based pointing game ------------------------------------------------------------


def test_energy_is_the_share_of_mass_inside_the_union_of_boxes() -> None:
    cam = torch.zeros(4, 4)
    cam[:2, :2] = 3.0  # 12 inside the box
    cam[3, :] = 1.0  # 4 outside
    cams = torch.stack([cam, cam, torch.zeros(4, 4)])
    boxes = [
        [(0, 0, 2, 2)],
        [(0, 0, 2, 2), (1, 0, 2, 2)],  # overlapping boxes: the overlap counts once
        [(0, 0, 4, 4)],  # an all-zero map scores 0
    ]
    assert energy_pointing_game(cams, boxes).tolist() == [0.75, 0.75, 0.0]
    whole = energy_pointing_game(cam[None], [[(0, 0, 2, 2), (0, 3, 4, 4)]])
    assert whole.tolist() == [1.0]


def test_energy_rejects_negative_maps() -> None:
    with pytest.raises(InputError, match="non-negative"):
        energy_pointing_game(torch.full((1, 4, 4), -0.5), [[(0, 0, 1, 1)]])


# ---- Average Drop and Increase in Confidence -----------------------------------------------


def test_confidences_average_drop_and_increase_in_closed_form() -> None:
    model = MeanLogit(a=2.0)
    images = torch.ones(2, 3, 4, 4)
    cam = torch.full((4, 4), 0.25)
    cam[:, 2:] = 0.75  # mean 0.5: the masked image has mean 0.5
    cams = torch.stack([cam, cam])
    targets = torch.tensor([0, 1])

    y, o = Scorer(model).confidence_drop(images, cams, targets)
    expected_y = [sigmoid(2.0), 1 - sigmoid(2.0)]
    expected_o = [sigmoid(1.0), 1 - sigmoid(1.0)]
    torch.testing.assert_close(y, torch.tensor(expected_y))
    torch.testing.assert_close(o, torch.tensor(expected_o))

    # image 0 loses confidence; image 1 (class 1 gains as the mean falls) drops by 0
    drop0 = (sigmoid(2.0) - sigmoid(1.0)) / sigmoid(2.0)
    drop = Scorer(model).average_drop(images, cams, targets)
    assert drop.ndim == 0
    assert drop.item() == pytest.approx(100 * drop0 / 2, rel=1e-5)
    assert Scorer(model).increase_in_confidence(images, cams, targets).item() == pytest.approx(50.0)


def test_a_map_of_ones_changes_nothing() -> None:
    model = MeanLogit(a=1.5)
    images = torch.rand(3, 3, 5, 5, generator=torch.Generator().manual_seed(0))
    cams = torch.ones(3, 5, 5)
    targets = [0, 1, 0]
    assert Scorer(model).average_drop(images, cams, targets).item() == 0.0
    assert Scorer(model).increase_in_confidence(images, cams, targets).item() == 0.0


def test_pixel_space_multiplication_with_mean_and_std() -> None:
    model = MeanLogit(a=1.0)
    mean, std = [0.5, 0.5, 0.5], [0.25]
    images = torch.full((1, 3, 4, 4), 2.0)  # pixel value 1.0 after un-normalising
    cams = torch.full((1, 4, 4), 0.5)  # pixel 0.5 -> normalised 0
    y, o = Scorer(model).confidence_drop(images, cams, [0], mean=mean, std=std)
    torch.testing.assert_close(y, torch.tensor([sigmoid(2.0)]))
    torch.testing.assert_close(o, torch.tensor([0.5]))
    drop = Scorer(model).average_drop(images, cams, [0], mean=mean, std=std)
    assert drop.item() == pytest.approx(100 * (sigmoid(2.0) - 0.5) / sigmoid(2.0), rel=1e-5)
    # default: multiplied in the given space, 2 · 0.5 = 1
    _, o_default = Scorer(model).confidence_drop(images, cams, [0])
    torch.testing.assert_close(o_default, torch.tensor([sigmoid(1.0)]))


def test_average_drop_is_zero_when_the_probability_underflows() -> None:
    model = MeanLogit(a=-200.0)  # p_0 = sigmoid(-200) and sigmoid(-100): 0 in float32
    drop = Scorer(model).average_drop(torch.ones(1, 1, 2, 2), torch.full((1, 2, 2), 0.5), [0])
    assert drop.item() == 0.0


def test_confidence_metrics_validate_their_inputs() -> None:
    model = MeanLogit()
    images = torch.ones(2, 3, 4, 4)
    cams = torch.full((2, 4, 4), 0.5)
    with pytest.raises(InputError, match=r"lie in \[0, 1\]"):
        Scorer(model).average_drop(images, cams * 3, [0, 0])
    with pytest.raises(InputError, match=r"to match images"):
        Scorer(model).average_drop(images, cams[:, :3], [0, 0])
    with pytest.raises(InputError, match="both mean and std"):
        Scorer(model).average_drop(images, cams, [0, 0], mean=[0.5])
    with pytest.raises(InputError, match="1 or 3 values"):
        Scorer(model).average_drop(images, cams, [0, 0], mean=[0.5, 0.5], std=[0.2, 0.2])
    with pytest.raises(InputError, match="std must be positive"):
        Scorer(model).average_drop(images, cams, [0, 0], mean=[0.5], std=[0.0])
    with pytest.raises(TargetError, match=r"shape \(2,\)"):
        Scorer(model).average_drop(images, cams, [0])
    with pytest.raises(TargetError, match="integer class indices"):
        Scorer(model).average_drop(images, cams, torch.tensor([0.0, 1.0]))
    with pytest.raises(TargetError, match="out of range"):
        Scorer(model).average_drop(images, cams, [0, 2])


# ---- deletion and insertion ----------------------------------------------------------------


def region_maps() -> tuple[Tensor, Tensor]:
    good = left_half()  # ranks the region the model looks at first
    return good, 1.0 - good


def test_deletion_and_insertion_rank_a_good_map_above_a_reversed_one_exactly() -> None:
    model = RegionShare(left_half())
    images = torch.ones(2, 1, 4, 4)
    good, reversed_ = region_maps()
    cams = torch.stack([good, reversed_])
    # steps = 16: one pixel per step. Deleting the 8 region pixels first drops p linearly
    # to 0 over the first half (area 1/4); deleting them last keeps p = 1 for half the
    # pixels first (area 1/2 + 1/4).
    deletion = Scorer(model).deletion_auc(images, cams, [0, 0], steps=16)
    torch.testing.assert_close(deletion, torch.tensor([0.25, 0.75]))
    insertion = Scorer(model).insertion_auc(images, cams, [0, 0], steps=16, baseline=0.0)
    torch.testing.assert_close(insertion, torch.tensor([0.75, 0.25]))
    # class 1 has p = 1 − p_0: its curves are the mirror images
    mirrored = Scorer(model).deletion_auc(images, cams, [1, 1], steps=16)
    torch.testing.assert_close(mirrored, torch.tensor([0.75, 0.25]))


def test_uneven_steps_use_the_true_fraction_of_pixels_on_the_x_axis() -> None:
    model = RegionShare(left_half())
    good, _ = region_maps()
    # steps = 3 on 16 pixels: k = 0, 5, 10, 16. Row-major among the equal region pixels,
    # 5 deleted leaves 3 of 8, so p = 1, 3/8, 0, 0 at x = 0, 5/16, 10/16, 1.
    expected = 5 / 16 * (1 + 3 / 8) / 2 + 5 / 16 * (3 / 8) / 2
    auc = Scorer(model).deletion_auc(torch.ones(1, 1, 4, 4), good[None], [0], steps=3)
    assert auc.item() == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("steps", [1, 5, 7, 16, 40])
def test_a_probability_linear_in_the_deleted_fraction_gives_area_one_half(steps: int) -> None:
    model = RegionShare(torch.ones(4, 4))  # p_0 = share of pixels still at 1
    cams = torch.rand(2, 4, 4, generator=torch.Generator().manual_seed(steps))
    images = torch.ones(2, 3, 4, 4)
    torch.testing.assert_close(
        Scorer(model).deletion_auc(images, cams, [0, 0], steps=steps), torch.tensor([0.5, 0.5])
    )
    torch.testing.assert_close(
        Scorer(model).insertion_auc(images, cams, [0, 0], steps=steps, baseline=0.0),
        torch.tensor([0.5, 0.5]),
    )


def test_equal_map_values_are_ranked_in_row_major_order() -> None:
    model = RegionShare(left_half())
    images = torch.ones(1, 1, 4, 4)
    row_major = -torch.arange(16.0).view(1, 4, 4)  # strictly decreasing in row-major order
    column_major = -torch.arange(16.0).view(1, 4, 4).transpose(1, 2)
    constant = torch.zeros(1, 4, 4)
    first = Scorer(model).deletion_auc(images, constant, [0], steps=16)
    assert first.item() == Scorer(model).deletion_auc(images, row_major, [0], steps=16).item()
    assert first.item() != Scorer(model).deletion_auc(images, column_major, [0], steps=16).item()
    # row-major deletes 2 region pixels per row of 4: p falls by 1/4 every 4 pixels
    expected = sum((1 - 0.25 * (k // 4) - 0.125 * min(k % 4, 2)) for k in range(17))
    expected = (expected - 0.5 * (1.0 + 0.0)) / 16
    assert first.item() == pytest.approx(expected, abs=1e-6)


def test_insertion_starts_from_a_blurred_image_by_default() -> None:
    model = RegionShare(left_half(6, 6))
    constant = torch.full((1, 1, 6, 6), 0.6)  # the blur of a constant image is itself
    cams = torch.rand(1, 6, 6, generator=torch.Generator().manual_seed(3))
    auc = Scorer(model).insertion_auc(constant, cams, [0], steps=4)
    assert auc.item() == pytest.approx(0.6, abs=1e-6)
    # a bright region on a dark image: the blurred start is neither the image nor zero
    image = torch.zeros(1, 1, 6, 6)
    image[:, :, :, :3] = 1.0
    good = left_half(6, 6)[None]
    blurred = Scorer(model).insertion_auc(image, good, [0], steps=2)
    zero_start = Scorer(model).insertion_auc(image, good, [0], steps=2, baseline=0.0)
    assert 0.0 < blurred.item() < 1.0
    assert blurred.item() > zero_start.item()


def test_chunks_bound_the_forward_batch_without_changing_results() -> None:
    model = RegionShare(left_half())
    cams = torch.rand(3, 4, 4, generator=torch.Generator().manual_seed(1))
    images = torch.rand(3, 2, 4, 4, generator=torch.Generator().manual_seed(2))
    whole = Scorer(model, batch_size=1000).deletion_auc(images, cams, [0, 1, 0], steps=5)
    assert [n for n, _, _ in model.calls] == [18]
    model.calls.clear()
    chunked = Scorer(model, batch_size=4).deletion_auc(images, cams, [0, 1, 0], steps=5)
    assert [n for n, _, _ in model.calls] == [4, 4, 4, 4, 2]
    torch.testing.assert_close(chunked, whole, rtol=0, atol=0)


def test_deletion_validates_its_inputs() -> None:
    model = RegionShare(left_half())
    images = torch.ones(1, 1, 4, 4)
    cams = torch.zeros(1, 4, 4)
    with pytest.raises(InputError, match="steps must be a positive int"):
        Scorer(model).deletion_auc(images, cams, [0], steps=0)
    with pytest.raises(InputError, match="does not broadcast"):
        Scorer(model).deletion_auc(images, cams, [0], baseline=torch.zeros(3, 1, 1))
    with pytest.raises(InputError, match="to match images"):
        Scorer(model).deletion_auc(images, torch.zeros(1, 2, 2), [0])
    with pytest.raises(InputError, match=r"floating \(B, C, H, W\)"):
        Scorer(model).deletion_auc(images[0], cams, [0])


# ---- the maps' dtype and device -----------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_cams_of_another_floating_dtype_give_the_same_scores(dtype: torch.dtype) -> None:
    # the closed-form maps hold values exact in every dtype: the numbers cannot move
    model = MeanLogit(a=2.0)
    images = torch.ones(2, 3, 4, 4)
    cam = torch.full((4, 4), 0.25)
    cam[:, 2:] = 0.75
    cams = torch.stack([cam, cam])
    y, o = Scorer(model).confidence_drop(images, cams.to(dtype), [0, 1])
    assert y.dtype == o.dtype == torch.float32
    torch.testing.assert_close(y, torch.tensor([sigmoid(2.0), 1 - sigmoid(2.0)]))
    torch.testing.assert_close(o, torch.tensor([sigmoid(1.0), 1 - sigmoid(1.0)]))

    region = RegionShare(left_half())
    good, reversed_ = region_maps()
    maps = torch.stack([good, reversed_]).to(dtype)
    scorer = Scorer(region)
    torch.testing.assert_close(
        scorer.deletion_auc(torch.ones(2, 1, 4, 4), maps, [0, 0], steps=16),
        torch.tensor([0.25, 0.75]),
    )
    torch.testing.assert_close(
        scorer.insertion_auc(torch.ones(2, 1, 4, 4), maps, [0, 0], steps=16, baseline=0.0),
        torch.tensor([0.75, 0.25]),
    )


def test_float64_images_take_float16_maps() -> None:
    model = MeanLogit(a=1.0).double()
    images = torch.full((1, 3, 4, 4), 2.0, dtype=torch.float64)
    cams = torch.full((1, 4, 4), 0.5, dtype=torch.float16)
    y, o = Scorer(model).confidence_drop(images, cams, [0], mean=[0.5], std=[0.25])
    torch.testing.assert_close(y, torch.tensor([sigmoid(2.0)]))
    torch.testing.assert_close(o, torch.tensor([0.5]))


def test_maps_are_ranked_in_their_own_precision_not_the_images() -> None:
    # in float16 the region's 1 + 2^-12 rounds to 1: ranking in the images' float16 would
    # see equal values and delete in row-major order; the maps' float32 order wins
    model = RegionShare(left_half())
    images = torch.ones(1, 1, 4, 4, dtype=torch.float16)
    cams = (1.0 + left_half() * 2.0**-12)[None]
    assert torch.unique(cams.half()).numel() == 1
    auc = Scorer(model).deletion_auc(images, cams, [0], steps=16)
    torch.testing.assert_close(auc, torch.tensor([0.25]))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cams_on_another_device_are_moved_to_the_images() -> None:
    model = RegionShare(left_half()).cuda()
    good, reversed_ = region_maps()
    cams = torch.stack([good, reversed_]).half()  # on the CPU, in float16
    images = torch.ones(2, 1, 4, 4, device="cuda")
    deletion = Scorer(model).deletion_auc(images, cams, torch.tensor([0, 0]), steps=16)
    assert deletion.device.type == "cuda"
    torch.testing.assert_close(deletion.cpu(), torch.tensor([0.25, 0.75]))
    y, _ = Scorer(model).confidence_drop(images, cams.cuda(), [0, 0])
    assert y.device.type == "cuda"
    assert pointing_game(cams.cuda(), [[(0, 0, 2, 4)], [(2, 0, 4, 4)]]).tolist() == [True, True]


# ---- the Scorer ----------------------------------------------------------------------------


@pytest.mark.parametrize("batch_size", [0, -1, True, 2.0])
def test_scorer_rejects_a_batch_size_below_one(batch_size: Any) -> None:
    with pytest.raises(InputError, match="batch_size must be a positive int"):
        Scorer(MeanLogit(), batch_size=batch_size)


def test_scorer_is_a_small_frozen_value() -> None:
    model = MeanLogit()
    scorer = Scorer(model)
    assert scorer.output is select_logits and scorer.batch_size == 64
    assert Scorer(model, output=None).output is select_logits
    assert scorer == Scorer(model) and scorer != Scorer(model, batch_size=8)
    assert repr(scorer) == "Scorer(model=MeanLogit, output=select_logits, batch_size=64)"
    with pytest.raises(AttributeError):
        scorer.batch_size = 8  # type: ignore[misc]
    with pytest.raises(InputError, match="torch.nn.Module"):
        Scorer(lambda x: x)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="output must be a callable"):
        Scorer(model, output="logits")  # type: ignore[arg-type]


def test_scorer_reads_the_logits_with_its_output_selector() -> None:
    class Wrapped(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = MeanLogit(a=2.0)

        def forward(self, x: Tensor) -> dict[str, Tensor]:
            return {"scores": self.inner(x)}

    images, cams = torch.ones(1, 3, 4, 4), torch.full((1, 4, 4), 0.5)
    y, o = Scorer(Wrapped(), output=lambda out: out["scores"]).confidence_drop(images, cams, [0])
    torch.testing.assert_close(y, torch.tensor([sigmoid(2.0)]))
    torch.testing.assert_close(o, torch.tensor([sigmoid(1.0)]))
    with pytest.raises(InputError, match=r"class scores must have shape \(2, K\)"):
        Scorer(MeanLogit(), output=lambda out: out[:, 0]).average_drop(
            torch.ones(1, 3, 4, 4), cams, [0]
        )


# ---- targets, shared with the Explainer ----------------------------------------------------

BAD_TARGETS = [
    ([0, 2], r"target 2 is out of range: the model has 2 classes \(valid targets are 0..1\)"),
    (torch.tensor([2, 0]), "target 2 is out of range: the model has 2 classes"),
    ([0, 1.0], "a target must be an int class index, got float 1.0"),
    ([True, 0], "a target must be an int class index, got bool True"),
    (torch.tensor([0.0, 1.0]), "targets must hold integer class indices"),
    ([0], r"got 1 targets for a batch of 2 images; .* shape \(2,\)"),
    ([0, 1, 1], "got 3 targets for a batch of 2 images"),
    (torch.tensor([[0, 1]]), "got 1 targets for a batch of 2 images"),
]


@pytest.mark.parametrize(("targets", "message"), BAD_TARGETS)
def test_scorer_and_target_scores_share_the_target_checks(targets: Any, message: str) -> None:
    model = MeanLogit()  # 2 classes
    images = torch.ones(2, 3, 4, 4)
    with pytest.raises(TargetError, match=message) as from_scorer:
        Scorer(model).average_drop(images, torch.full((2, 4, 4), 0.5), targets)
    with pytest.raises(TargetError, match=message) as from_explainer:
        target_scores(torch.zeros(2, 2), targets)
    assert str(from_scorer.value) == str(from_explainer.value)


def test_malformed_targets_fail_before_the_model_runs() -> None:
    model = MeanLogit()
    with pytest.raises(TargetError, match="target -1 is out of range"):
        Scorer(model).deletion_auc(torch.ones(2, 1, 2, 2), torch.zeros(2, 2, 2), [0, -1])
    with pytest.raises(TargetError, match="integer class indices"):
        Scorer(model).confidence_drop(
            torch.ones(2, 1, 2, 2), torch.zeros(2, 2, 2), torch.tensor([0.0, 1.0])
        )
    with pytest.raises(TargetError, match=r"targets must be a \(B,\) tensor or a sequence"):
        Scorer(model).average_drop(torch.ones(2, 1, 2, 2), torch.zeros(2, 2, 2), "01")  # type: ignore[arg-type]
    assert model.calls == []
    with pytest.raises(TargetError, match="target -1 is out of range: the model has 2"):
        target_scores(torch.zeros(2, 2), [0, -1])


def test_validate_targets_returns_a_long_tensor() -> None:
    checked = validate_targets([np.int64(1), torch.tensor(0), 3], batch=3, num_classes=4)
    assert checked.dtype == torch.long and checked.tolist() == [1, 0, 3]
    assert validate_targets(np.array([2, 1], dtype=np.uint8)).tolist() == [2, 1]
    assert validate_targets(torch.tensor([[1], [0]]), batch=2).tolist() == [1, 0]
    assert validate_targets(torch.tensor([1, 0], dtype=torch.int32)).dtype == torch.long
    assert validate_targets([]).tolist() == []
    with pytest.raises(TargetError, match="0-d tensor"):
        validate_targets(torch.tensor(1))
    with pytest.raises(TargetError, match="target -3 is out of range: class indices are >= 0"):
        validate_targets([1, -3])
    with pytest.raises(TargetError, match="got int"):
        validate_targets(3)  # type: ignore[arg-type]


# ---- side effects --------------------------------------------------------------------------


Metric = Callable[[Scorer, Tensor, Tensor, list[int]], Tensor]

MODEL_METRICS: list[tuple[str, Metric]] = [
    ("confidence_drop", lambda s, x, c, t: s.confidence_drop(x, c, t)[0]),
    ("average_drop", lambda s, x, c, t: s.average_drop(x, c, t)),
    ("increase_in_confidence", lambda s, x, c, t: s.increase_in_confidence(x, c, t)),
    ("deletion_auc", lambda s, x, c, t: s.deletion_auc(x, c, t, steps=4)),
    ("insertion_auc", lambda s, x, c, t: s.insertion_auc(x, c, t, steps=4)),
]


@pytest.mark.parametrize("metric", [f for _, f in MODEL_METRICS], ids=[n for n, _ in MODEL_METRICS])
def test_model_runs_in_eval_without_grad_and_is_restored(metric: Metric) -> None:
    inner = MeanLogit()
    model = nn.Sequential(inner)
    model.train()
    inner.dropout.eval()  # a submodule's own flag must survive too
    images = torch.rand(2, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    images.requires_grad_()
    cams = torch.rand(2, 4, 4, generator=torch.Generator().manual_seed(1))

    metric(Scorer(model), images, cams, [0, 1])

    calls = inner.calls
    assert calls and all(not training and not grad for _, training, grad in calls)
    assert model.training and inner.training and not inner.dropout.training
    assert torch.is_grad_enabled()
    assert all(p.grad is None for p in model.parameters())
    assert images.grad is None


def test_model_is_restored_after_an_error() -> None:
    model = MeanLogit().train()
    with pytest.raises(TargetError, match="out of range"):
        Scorer(model).deletion_auc(torch.ones(1, 1, 2, 2), torch.zeros(1, 2, 2), [5], steps=2)
    assert model.training and model.dropout.training
    assert torch.is_grad_enabled()
