"""Hostile images, tensors and values: decompression bombs and the pixel limit, the memory of
overlays of large images, NaN and infinity, 16-bit and float images, EXIF orientation,
integer tensors and empty images (issue 11, reliability root causes 3, 5, 7, 8, 12, 13, 15).
"""

from __future__ import annotations

import struct
import tracemalloc
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from doc_blocks import run_page
from numpy.typing import NDArray
from PIL import Image, ImageFile
from tiny_models import SmallCNN
from torch import Tensor

import camkit.pipeline.place as place
import camkit.preprocess as preprocess
from camkit import CAMMethod, DataConfig, Explainer, Renderer
from camkit.errors import (
    ConfigurationError,
    ImageSkippedWarning,
    InputError,
    MethodError,
    ModelOutputError,
    TargetError,
)
from camkit.methods import MethodContext
from camkit.preprocess import DEFAULT_MAX_PIXELS, load_rgb
from camkit.render import JetRenderer, check_render_inputs
from camkit.tools.batch import explain_files, find_images, plan_outputs


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header(path: Path, width: int, height: int) -> Path:
    """A PNG that declares ``width × height`` RGB pixels and holds almost no data: what a
    corrupt header or a decompression bomb looks like before decoding."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 16)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", idat)
        + _chunk(b"IEND", b"")
    )
    return path


def pixels(height: int, width: int, seed: int = 0) -> NDArray[np.uint8]:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def explainer(**kwargs: object) -> Explainer:
    torch.manual_seed(0)
    return Explainer(SmallCNN(), device="cpu", **kwargs)  # type: ignore[arg-type]


# --- 3. decompression bombs and the pixel limit ------------------------------------------------


def test_a_bomb_header_is_an_input_error_that_says_how_to_raise_the_limit(tmp_path: Path) -> None:
    bomb = png_header(tmp_path / "bomb.png", 100_000, 100_000)  # 10 Gpx declared, 100 bytes
    with pytest.raises(Image.DecompressionBombError):
        Image.open(bomb)  # what escaped load_rgb before
    for call in (lambda: load_rgb(bomb), lambda: explainer().explain(bomb)):
        with pytest.raises(InputError, match="too large to decode") as caught:
            call()
        message = str(caught.value)
        assert "(PIL: Image size (10000000000 pixels) exceeds limit" in message
        assert f"pixel limit is {DEFAULT_MAX_PIXELS:,}" in message
        assert "max_pixels=N" in message and "None for no limit" in message
    # a corrupt header under the limit: decoding fails on the missing data, cleanly
    with pytest.raises(InputError, match="cannot read .* as an image"):
        load_rgb(png_header(tmp_path / "cut.png", 3000, 3000), max_pixels=None)


def test_a_folder_run_makes_a_bomb_an_error_row_and_keeps_the_good_images(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a.png", "c.png"):
        Image.fromarray(pixels(24, 32)).save(folder / name)
    png_header(folder / "b.png", 100_000, 100_000)
    jobs = plan_outputs(find_images([folder]), tmp_path / "out")
    with pytest.warns(ImageSkippedWarning):
        results = explain_files(explainer(), jobs, batch_size=3, progress=False)
    assert [r.image.name for r in results] == ["a.png", "b.png", "c.png"]
    assert [r.ok for r in results] == [True, False, True]
    assert results[1].error is not None and results[1].error.startswith("InputError: ")
    assert "pixel limit" in results[1].error
    assert all(r.heatmap is not None and r.heatmap.is_file() for r in results if r.ok)


def test_folder_runs_and_the_cli_use_the_explainers_pixel_limit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``Explainer(max_pixels=...)`` and ``camkit explain --max-pixels`` limit folder runs:
    the image over the limit is an error row, the one under it is explained."""
    from camkit.tools.cli import main

    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(pixels(20, 30)).save(folder / "small.png")  # 600 pixels
    Image.fromarray(pixels(40, 50)).save(folder / "large.png")  # 2,000 pixels
    jobs = plan_outputs(find_images([folder]), tmp_path / "out")
    with pytest.warns(ImageSkippedWarning):
        results = explain_files(explainer(max_pixels=1_000), jobs, save=False, progress=False)
    assert [(r.image.name, r.ok) for r in results] == [("large.png", False), ("small.png", True)]
    assert "2,000 pixels" in str(results[0].error)
    args = ["explain", str(folder), "--model", "resnet18", "--device", "cpu", "--no-progress"]
    assert main([*args, "--out", str(tmp_path / "cli"), "--max-pixels", "1000"]) == 1
    err = capsys.readouterr().err
    assert "large.png" in err and "pixel limit" in err
    assert main([*args, "--out", str(tmp_path / "cli2"), "--max-pixels", "0"]) == 0


def test_the_limit_is_checked_from_the_header_before_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = pixels(200, 300)
    path = tmp_path / "photo.png"
    Image.fromarray(image).save(path)

    def no_decoding(self: ImageFile.ImageFile) -> None:
        raise AssertionError("decoded an image over the limit")

    with monkeypatch.context() as patched:
        patched.setattr(ImageFile.ImageFile, "load", no_decoding)
        with pytest.raises(InputError, match="declares 300×200 = 60,000 pixels"):
            load_rgb(path, max_pixels=59_999)
    np.testing.assert_array_equal(load_rgb(path, max_pixels=60_000), image)
    # PIL images (decoded lazily) are limited too; numpy arrays are already decoded
    with pytest.raises(InputError, match="the PIL image is too large"):
        load_rgb(Image.fromarray(image), max_pixels=59_999)
    np.testing.assert_array_equal(load_rgb(image, max_pixels=1), image)


def test_a_limit_above_pils_own_reads_what_pil_refuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = pixels(100, 100)
    path = tmp_path / "big.png"
    Image.fromarray(image).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # PIL refuses over 2000 pixels
    with pytest.raises(Image.DecompressionBombError):
        Image.open(path)
    for limit in (None, 10_000, DEFAULT_MAX_PIXELS):
        np.testing.assert_array_equal(load_rgb(path, max_pixels=limit), image)
    with pytest.raises(InputError, match=r"PIL: Image size \(10000 pixels\).*limit is 1,500"):
        load_rgb(path, max_pixels=1500)
    assert Image.MAX_IMAGE_PIXELS == 1000  # lifted for the header only, and restored


def test_the_explainer_takes_and_checks_max_pixels(tmp_path: Path) -> None:
    image = pixels(200, 300)
    path = tmp_path / "photo.png"
    Image.fromarray(image).save(path)
    assert DEFAULT_MAX_PIXELS == 2 * 89_478_485  # PIL's own refusal limit by default
    assert explainer().max_pixels == DEFAULT_MAX_PIXELS
    for bad in (0, -5, True, 2.5, "many"):
        with pytest.raises(ConfigurationError, match="max_pixels must be an int >= 1 or None"):
            explainer(max_pixels=bad)
        with pytest.raises(ConfigurationError, match="max_pixels must be"):
            load_rgb(path, max_pixels=bad)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="60,000 pixels"):
        explainer(max_pixels=59_999).explain(path)
    assert explainer(max_pixels=None).max_pixels is None
    allowed = explainer(max_pixels=60_000).explain(path)
    np.testing.assert_array_equal(allowed.raw, explainer().explain(image).raw)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "P", "CMYK"])
def test_large_images_are_decoded_band_by_band_to_the_same_pixels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    original = Image.fromarray(pixels(50, 70)).convert(mode)
    path = tmp_path / ("photo.tif" if mode == "CMYK" else "photo.png")
    original.save(path)
    expected = np.asarray(Image.open(path).convert("RGB"))
    monkeypatch.setattr(preprocess, "_BAND_BYTES", 70 * 3 * 8)  # bands of 8 rows
    np.testing.assert_array_equal(load_rgb(path), expected)
    np.testing.assert_array_equal(load_rgb(original), np.asarray(original.convert("RGB")))


# --- 15. overlays of large images at bounded memory ---------------------------------------------


def test_overlay_grid_is_bounded_and_keeps_the_aspect_ratio() -> None:
    assert place.OVERLAY_PIXELS == 2048 * 2048
    assert place.overlay_grid((240, 320)) == (240, 320)
    assert place.overlay_grid((2048, 2048)) == (2048, 2048)
    assert place.overlay_grid((12_000, 12_000)) == (2048, 2048)
    assert place.overlay_grid((6000, 9000)) == (1672, 2508)
    rows, columns = place.overlay_grid((1, 10**7))
    assert rows == 1 and columns == place.OVERLAY_PIXELS
    assert place.overlay_grid((300, 400), max_pixels=300 * 4) == (30, 40)


def test_a_large_overlay_is_full_size_within_a_small_multiple_of_the_image() -> None:
    # smooth content, so the comparison below is about the map, not about noise
    ramp = np.linspace(0, 255, 6000).astype(np.uint8)
    image = np.empty((6000, 6000, 3), dtype=np.uint8)
    image[..., 0], image[..., 1], image[..., 2] = ramp[:, None], ramp[None, :], 128
    explanation = explainer(data_config=DataConfig(input_size=(64, 64))).explain(image)
    assert explanation.image is image  # nothing copied before the overlay
    tracemalloc.start()
    try:
        overlay = explanation.overlay(0.5)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert overlay.shape == image.shape and overlay.dtype == np.uint8
    # the exact path held about 20 float32 copies (60 bytes per pixel); now the result, a
    # band of rows and the 2048×2048 map
    assert peak < 1.5 * image.nbytes, peak / image.nbytes
    # the same picture as the exact renderer on the full-size map, band by band
    cam = explanation.cam
    for rows in (slice(0, 200), slice(2900, 3100), slice(5800, 6000)):
        exact = explanation.renderer.render(image[rows], cam[rows], 0.5)
        difference = np.abs(overlay[rows].astype(np.int16) - exact)
        assert difference.mean() < 0.01 and difference.max() <= 4


def test_the_coarse_overlay_matches_the_exact_one(monkeypatch: pytest.MonkeyPatch) -> None:
    image = pixels(240, 320)
    explanation = explainer(data_config=DataConfig(input_size=(32, 32))).explain(image)
    exact = explanation.renderer.render(image, explanation.cam, 0.4)
    np.testing.assert_array_equal(explanation.overlay(0.4), exact)  # small: the exact path
    monkeypatch.setattr(place, "OVERLAY_PIXELS", 120 * 160)  # a 16×16 map on 120×160 cells
    coarse = explanation.overlay(0.4)
    assert coarse.shape == exact.shape
    difference = np.abs(coarse.astype(np.int16) - exact)
    assert difference.mean() < 0.3 and np.percentile(difference, 99) <= 4
    np.testing.assert_array_equal(explanation.overlay(0.0), image)
    # the coarse map holds the values of the full-size map at the cells' centres
    grid = explanation.batch.coarse_cam(0, (120, 160))
    np.testing.assert_allclose(
        grid, cv2.resize(explanation.cam, (160, 120), interpolation=cv2.INTER_AREA), atol=0.03
    )
    assert grid.min() >= 0.0 and grid.max() <= 1.0


def test_a_plugin_renderer_gets_the_coarse_map_resized_to_the_image(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Grey(Renderer):
        name = "grey-test"

        def render(
            self, image: NDArray[np.uint8], cam: NDArray[np.floating], alpha: float = 0.5
        ) -> NDArray[np.uint8]:
            levels = np.rint(check_render_inputs(image, cam, alpha) * 255).astype(np.uint8)
            return np.repeat(levels[:, :, None], 3, axis=2)

    image = pixels(240, 320)
    explanation = explainer(renderer=Grey(), data_config=DataConfig(input_size=(32, 32))).explain(
        image
    )
    exact = explanation.overlay()
    monkeypatch.setattr(place, "OVERLAY_PIXELS", 120 * 160)
    coarse = explanation.overlay()
    assert coarse.shape == exact.shape  # a full-size map: the grey levels are its values
    difference = np.abs(coarse.astype(np.int16) - exact)
    assert difference.mean() < 0.5 and difference.max() <= 8


# --- 5. NaN and infinity ------------------------------------------------------------------------


def test_non_finite_tensor_inputs_are_input_errors() -> None:
    batch = torch.randn(3, 3, 32, 32)
    batch[1, 0, 5, 5] = float("nan")
    batch[2, 2, 0, 0] = float("-inf")
    with pytest.raises(InputError, match=r"image\(s\) \[1, 2\] of the batch hold NaN"):
        explainer().explain_batch(batch)
    with pytest.raises(InputError, match=r"image\(s\) \[0\] .* \(in the tensor\)"):
        explainer().explain(batch[1])
    # a float numpy image is not an accepted image at all
    with pytest.raises(InputError, match="numpy images must be uint8"):
        explainer().explain(np.full((8, 8, 3), np.nan, dtype=np.float32))


def test_a_transform_must_give_finite_float_tensors() -> None:
    def nan_transform(image: Image.Image) -> Tensor:
        return torch.full((3, 16, 16), float("nan"))

    def integer_transform(image: Image.Image) -> Tensor:
        return torch.from_numpy(np.array(image)).permute(2, 0, 1).contiguous()

    image = pixels(20, 20)
    with pytest.raises(InputError, match=r"\[0\] .* \(in the transform's output\)"):
        explainer(transform=nan_transform).explain(image)
    with pytest.raises(InputError, match="the transform returned a torch.uint8 tensor"):
        explainer(transform=integer_transform).explain(image)
    with pytest.raises(ConfigurationError, match="std needs positive finite values"):
        DataConfig(std=(0.2, 0.0, 0.2))


def test_inputs_the_models_dtype_cannot_hold_are_input_errors() -> None:
    torch.manual_seed(0)
    half = Explainer(SmallCNN().half(), device="cpu")
    inputs = torch.zeros(2, 3, 16, 16)
    inputs[1, 0, 0, 0] = 1e6  # finite in float32, infinite in float16
    with pytest.raises(InputError, match=r"\[1\] .* once cast to the model's torch.float16"):
        half.explain_batch(inputs)


def test_non_finite_logits_name_the_images_and_the_broken_weights() -> None:
    model = SmallCNN()
    with torch.no_grad():
        model.head[2].weight[1, 7] = float("nan")
    broken = Explainer(model, device="cpu")
    with pytest.raises(ModelOutputError, match=r"logits of SmallCNN for image\(s\) \[0, 1\]") as e:
        broken.explain_batch([pixels(32, 32, 1), pixels(32, 32, 2)])
    assert "1 of its parameters and buffers hold NaN" in str(e.value)
    assert "'head.2.weight'" in str(e.value)

    class Overflowing(SmallCNN):
        def forward(self, x: Tensor) -> Tensor:
            logits = super().forward(x)
            return logits / (x.flatten(1).amax(dim=1, keepdim=True) > 0).float()  # 1/0 for black

    torch.manual_seed(0)
    zero = Explainer(Overflowing(), device="cpu")
    with pytest.raises(ModelOutputError, match=r"\[1\] .* its weights are finite"):
        zero.explain_batch(torch.stack([torch.ones(3, 16, 16), -torch.ones(3, 16, 16)]))


def test_a_callable_target_giving_nan_is_a_target_error() -> None:
    def nan_for_the_second(logits: Tensor) -> Tensor:
        scores = logits[:, 0].clone()
        return torch.where(torch.arange(len(scores)) == 1, float("nan"), scores)

    with pytest.raises(TargetError, match=r"score for image\(s\) \[1\] is NaN"):
        explainer().explain_batch([pixels(32, 32, 1), pixels(32, 32, 2)], nan_for_the_second)


def test_the_first_problem_of_a_call_is_the_one_reported() -> None:
    """Values are checked on the device and read at the end of the call: when the call fails
    on the way, the problems found before are reported first, as checked on the spot."""
    model = SmallCNN()
    with torch.no_grad():
        model.head[2].weight[0, 3] = float("inf")

    class WrongShape(CAMMethod):
        def compute(self, context: MethodContext) -> Tensor:
            return context.activations.sum(dim=1)[:1]

    def refuses_nan(logits: Tensor) -> Tensor:
        if not bool(torch.isfinite(logits).all()):
            raise ValueError("a NaN reached the target")
        return logits[:, 0]

    inputs = [pixels(32, 32, 1), pixels(32, 32, 2)]
    for kwargs, target in [({"method": WrongShape()}, None), ({}, refuses_nan)]:
        torch.manual_seed(0)
        broken = Explainer(model, device="cpu", **kwargs)  # type: ignore[arg-type]
        with pytest.raises(ModelOutputError, match=r"\[0, 1\] .*\(first 'head\.2\.weight'\)"):
            broken.explain_batch(inputs, target)
    # and the second problem alone is reported as itself
    with pytest.raises(MethodError, match=r"WrongShape\.compute returned \(1, 112, 112\)"):
        explainer(method=WrongShape(), layer="body.2").explain_batch(inputs)


def test_large_finite_values_are_not_mistaken_for_infinite() -> None:
    """The device-side test of finite values is a sum, which large finite values overflow:
    such a false alarm is looked at closely and passes."""
    base = explainer()
    batch = torch.zeros(2, 3, 16, 16)
    batch[:, :, :4] = 3e38  # finite float32 values whose sum is not
    assert torch.equal(base.prepare(batch).inputs, batch)

    class Offset(SmallCNN):
        def forward(self, x: Tensor) -> Tensor:
            return super().forward(x) + 3e38  # finite logits, an infinite sum

    torch.manual_seed(0)
    offset = Explainer(Offset(), layer="body.2", device="cpu")
    plain = explainer(layer="body.2")
    inputs = torch.randn(2, 3, 16, 16)
    found = offset.explain_batch(inputs, 1)
    expected = plain.explain_batch(inputs, 1)
    assert torch.equal(found.maps, expected.maps)
    assert [e.target_score for e in found] == [float(torch.tensor(3e38))] * 2


def test_a_non_finite_map_names_the_method_and_the_layer() -> None:
    class Broken(CAMMethod):
        name = "broken-test"

        def compute(self, context: MethodContext) -> Tensor:
            maps = context.activations.sum(dim=1).relu()
            maps[1::2] = float("inf")  # image 1 (and its augmented copies)
            return maps

    for aug_smooth in (False, True):
        broken = explainer(method=Broken(), layer="body.2", aug_smooth=aug_smooth)
        with pytest.raises(
            MethodError,
            match=r"Broken.compute returned NaN or infinite values: the map of broken-test at "
            r"layer 'body.2' for image\(s\) \[1\]",
        ):
            broken.explain_batch([pixels(32, 32, 1), pixels(32, 32, 2)])


def test_no_overlay_is_drawn_from_a_non_finite_map() -> None:
    image = pixels(4, 6)
    for renderer in (JetRenderer(), explainer(renderer="viridis").renderer):
        cam = np.zeros((4, 6), dtype=np.float32)
        cam[2, 3] = np.nan
        with pytest.raises(InputError, match="no overlay is drawn from such a map"):
            renderer.render(image, cam)
        with pytest.raises(InputError, match="no overlay is drawn"):
            renderer.render_upsampled(image, cam[1:3, 2:4])


# --- 7. 16-bit and float images -----------------------------------------------------------------

LEVELS = np.array([[0, 128, 129, 385, 386], [32896, 65279, 65406, 65407, 65535]], np.uint16)
# round(v / 257): 128 → 0 (0.498), 129 → 1, 385 → 1 (1.498), 386 → 2, 32896 → 128,
# 65279 → 254, 65406 → 254 (254.498), 65407 → 255 (254.502), 65535 → 255
SCALED = np.array([[0, 0, 1, 1, 2], [128, 254, 254, 255, 255]], np.uint8)


def test_16_bit_grey_images_are_scaled_by_their_range(tmp_path: Path) -> None:
    path = tmp_path / "grey16.png"
    assert cv2.imwrite(str(path), LEVELS)
    assert Image.open(path).mode == "I;16"  # convert("RGB") makes this all white
    expected = np.repeat(SCALED[:, :, None], 3, axis=2)
    np.testing.assert_array_equal(load_rgb(path), expected)
    big_endian = Image.frombytes("I;16B", (5, 2), LEVELS.astype(">u2").tobytes())
    np.testing.assert_array_equal(load_rgb(big_endian), expected)
    as_int32 = Image.fromarray(LEVELS.astype(np.int32))  # mode I, as older Pillows read it
    assert as_int32.mode == "I"
    np.testing.assert_array_equal(load_rgb(as_int32), expected)
    signed = Image.fromarray(np.array([[-100, 0], [100, 155]], dtype=np.int32))
    np.testing.assert_array_equal(load_rgb(signed)[:, :, 0], [[0, 100], [200, 255]])  # min-max
    np.testing.assert_array_equal(load_rgb(LEVELS), expected)  # a uint16 numpy array
    np.testing.assert_array_equal(load_rgb(LEVELS.astype(">u2")), expected)
    colour = np.stack([LEVELS, LEVELS[::-1], np.zeros_like(LEVELS)], axis=2)
    np.testing.assert_array_equal(
        load_rgb(colour), np.stack([SCALED, SCALED[::-1], np.zeros_like(SCALED)], axis=2)
    )


def test_16_bit_rgb_pngs_keep_their_colours(tmp_path: Path) -> None:
    rgb = np.zeros((2, 3, 3), dtype=np.uint16)
    rgb[..., 0], rgb[..., 1] = 65535, 30000
    path = tmp_path / "rgb16.png"
    assert cv2.imwrite(str(path), rgb[:, :, ::-1])  # OpenCV writes BGR
    loaded = load_rgb(path).astype(int)
    assert np.abs(loaded - np.array([255, 30000 / 257, 0])).max() <= 1


def test_float_images_are_scaled_by_their_range(tmp_path: Path) -> None:
    unit = np.array([[0.0, 0.25, 0.5], [0.75, 0.999, 1.0]], dtype=np.float32)
    path = tmp_path / "unit.tif"
    Image.fromarray(unit, "F").save(path)
    assert Image.open(path).mode == "F"
    np.testing.assert_array_equal(
        load_rgb(path)[:, :, 1], [[0, 64, 128], [191, 255, 255]]
    )  # [0, 1] × 255, rounded
    wide = Image.fromarray(unit * 1000 - 200, "F")  # outside [0, 1]: min-max
    np.testing.assert_array_equal(load_rgb(wide)[:, :, 2], [[0, 64, 128], [191, 255, 255]])
    flat = Image.fromarray(np.full((2, 2), 7.0, dtype=np.float32), "F")
    np.testing.assert_array_equal(load_rgb(flat), np.zeros((2, 2, 3), np.uint8))
    broken = unit.copy()
    broken[1, 1] = np.nan
    Image.fromarray(broken, "F").save(tmp_path / "nan.tif")
    with pytest.raises(InputError, match="float image holding NaN or infinite values"):
        load_rgb(tmp_path / "nan.tif")


# --- 8. EXIF orientation ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("orientation", "upright"),
    [
        (3, lambda a: np.rot90(a, 2)),
        (6, lambda a: np.rot90(a, -1)),  # the camera held upright: turn clockwise
        (8, lambda a: np.rot90(a, 1)),
        (2, lambda a: a[:, ::-1]),
    ],
)
def test_exif_orientation_is_applied_on_load(
    tmp_path: Path, orientation: int, upright: object
) -> None:
    stored = pixels(40, 60)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "photo.png"
    Image.fromarray(stored).save(path, exif=exif)
    expected = upright(stored)  # type: ignore[operator]
    np.testing.assert_array_equal(load_rgb(path), expected)
    explanation = explainer().explain(path)
    assert explanation.cam.shape == expected.shape[:2]
    np.testing.assert_array_equal(explanation.image, expected)
    np.testing.assert_array_equal(explanation.raw, explainer().explain(expected).raw)


def test_exif_orientation_of_a_jpeg_and_pil_images_as_given(tmp_path: Path) -> None:
    stored = np.zeros((40, 60, 3), dtype=np.uint8)
    stored[:, :30] = 255  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "photo.jpg"
    Image.fromarray(stored).save(path, exif=exif, quality=95)
    loaded = load_rgb(path)
    assert loaded.shape == (60, 40, 3)
    assert loaded[:28].min() > 230 and loaded[32:].max() < 25  # the white half is on top
    opened = Image.open(path)
    np.testing.assert_array_equal(load_rgb(opened).shape, (40, 60, 3))  # taken as given
    assert opened.size == (60, 40) and opened.getexif()[0x0112] == 6  # and not changed


# --- 12. integer tensors ------------------------------------------------------------------------


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_a_uint8_image_tensor_is_explained_as_the_numpy_image(channels: int) -> None:
    array = np.random.default_rng(channels).integers(0, 256, (30, 40, channels), dtype=np.uint8)
    tensor = torch.from_numpy(array).permute(2, 0, 1)  # torchvision.io.read_image's layout
    by_tensor, by_array = explainer().explain(tensor), explainer().explain(array)
    np.testing.assert_array_equal(by_tensor.raw, by_array.raw)
    np.testing.assert_array_equal(by_tensor.cam, by_array.cam)
    np.testing.assert_array_equal(by_tensor.image, by_array.image)
    assert by_tensor.confidence == by_array.confidence
    assert by_tensor.cam.shape == (30, 40)  # placed on the image, not on a 30×40 "input"


def test_a_uint8_batch_tensor_is_a_batch_of_images() -> None:
    arrays = [pixels(30, 40, seed) for seed in (1, 2)]
    batch = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)
    by_tensor = explainer().explain_batch(batch)
    by_arrays = explainer().explain_batch(arrays)
    for got, want in zip(by_tensor, by_arrays, strict=True):
        np.testing.assert_array_equal(got.raw, want.raw)
        np.testing.assert_array_equal(got.image, want.image)


@pytest.mark.parametrize(
    "dtype", [torch.int64, torch.int32, torch.int16, torch.int8, torch.bool, torch.complex64]
)
def test_other_integer_bool_and_complex_tensors_are_refused(dtype: torch.dtype) -> None:
    tensor = torch.ones(3, 16, 16).to(dtype)
    with pytest.raises(InputError, match=rf"image 0 is a {dtype} tensor.*uint8 tensor"):
        explainer().explain(tensor)
    with pytest.raises(InputError, match=rf"image 0 is a {dtype} tensor"):
        explainer().explain_batch(tensor[None].expand(2, -1, -1, -1))


def test_a_uint8_tensor_needs_one_three_or_four_channels() -> None:
    with pytest.raises(InputError, match=r"C = 1, 3 or 4 channels.*got shape \(30, 40, 3\)"):
        explainer().explain(torch.zeros(30, 40, 3, dtype=torch.uint8))


# --- 13. empty images ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((0, 0, 3), np.uint8),
        np.zeros((0, 5, 3), np.uint8),
        np.zeros((5, 0), np.uint8),
        np.zeros((5, 0, 4), np.uint16),
        torch.zeros(3, 0, 5),
        torch.zeros(3, 5, 0),
        torch.zeros(0, 5, 5),
        torch.zeros(1, 3, 0, 0),
        torch.zeros(3, 0, 5, dtype=torch.uint8),
        Image.new("RGB", (0, 5)),
    ],
    ids=lambda image: f"{type(image).__name__}{tuple(getattr(image, 'shape', ()))}",
)
def test_empty_images_are_input_errors(image: object) -> None:
    with pytest.raises(InputError, match="no pixels|empty tensor"):
        explainer().explain(image)  # type: ignore[arg-type]


def test_empty_batches_are_input_errors() -> None:
    with pytest.raises(InputError, match="got no images"):
        explainer().explain_batch(torch.zeros(0, 3, 8, 8))
    with pytest.raises(InputError, match="empty tensor"):
        explainer().explain_batch(torch.zeros(2, 3, 0, 8))


# --- the documentation of all this --------------------------------------------------------------


def test_the_inputs_page_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert run_page("inputs.md") >= 2
