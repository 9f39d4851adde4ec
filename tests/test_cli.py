"""The camkit command: explain, layers, plugins, exit statuses."""

from __future__ import annotations

import csv
import errno
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from PIL import Image

import camkit
from camkit import DataConfig, Explainer
from camkit.errors import PluginConflictError
from camkit.render import ColormapRenderer
from camkit.tools import cli
from camkit.tools.cli import main


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli")
    torch.manual_seed(0)
    model = timm.create_model("resnet18", num_classes=2)
    torch.save(model.state_dict(), root / "weights.pth")
    (root / "classes.txt").write_text("cat\ndog\n")
    good = root / "good"
    good.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a.jpg", "b.png"):
        Image.fromarray(rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)).save(good / name)
    mixed = root / "mixed"
    mixed.mkdir()
    Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(mixed / "ok.jpg")
    (mixed / "bad.jpg").write_text("text")
    return root


def model_args(files: Path) -> list[str]:
    return [
        "--model",
        "resnet18",
        "--weights",
        str(files / "weights.pth"),
        "--classes",
        str(files / "classes.txt"),
        "--input-size",
        "64",
        "64",
        "--device",
        "cpu",
    ]


def test_explain_all_good(files: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    code = main(["explain", str(files / "good"), *model_args(files), "--out", str(out), "--report"])
    assert code == 0
    # named after the method: gradcam++ (the default) is written gradcampp
    assert sorted(p.name for p in out.glob("*.jpg")) == ["a_gradcampp.jpg", "b_gradcampp.jpg"]
    rows = list(csv.DictReader((out / "gradcam_report.csv").open()))
    assert [r["pred_name"] in ("cat", "dog") for r in rows] == [True, True]
    assert "explained 2 of 2 images at layer 'layer4'" in capsys.readouterr().err


def test_method_names_the_files_and_colormap_colours_them(
    files: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    extra = ["--method", "gradcam", "--colormap", "viridis", "--alpha", "1", "--report"]
    code = main(["explain", str(files / "good"), *model_args(files), "--out", str(out), *extra])
    assert code == 0
    assert sorted(p.name for p in out.glob("*.jpg")) == ["a_gradcam.jpg", "b_gradcam.jpg"]
    rows = list(csv.DictReader((out / "gradcam_report.csv").open()))
    assert [Path(r["heatmap"]).name for r in rows] == ["a_gradcam.jpg", "b_gradcam.jpg"]
    assert "with gradcam" in capsys.readouterr().err
    from camkit import Explainer, load_classifier
    from camkit.preprocess import DataConfig

    model, _ = load_classifier("resnet18", files / "weights.pth", files / "classes.txt")
    own = DataConfig.from_model(model)
    config = DataConfig((64, 64), own.mean, own.std, own.interpolation)
    explainer = Explainer(model, method="gradcam", device="cpu", data_config=config)
    explanation = explainer.explain(files / "good" / "a.jpg")
    written = np.asarray(Image.open(out / "a_gradcam.jpg").convert("RGB"), dtype=np.float64)
    viridis = ColormapRenderer("viridis").heatmap(explanation.cam).astype(np.float64)
    jet = ColormapRenderer("jet").heatmap(explanation.cam).astype(np.float64)
    assert np.abs(written - viridis).mean() < 3  # JPEG's loss only
    assert np.abs(written - jet).mean() > 30


def test_colormap_choices_come_from_the_registry(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["explain", "x.jpg", "--model", "resnet18", "--colormap", "virdis"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "--colormap: invalid choice: 'virdis'" in err and "'viridis'" in err
    with pytest.raises(SystemExit) as info:
        main(["explain", "--help"])
    assert info.value.code == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--colormap NAME" in help_text
    assert ", ".join(camkit.list_renderers()) in help_text and "twilight_shifted" in help_text


def test_colormap_option_survives_a_broken_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """A plugin conflict must not break the parser: it is reported when the explainer
    creates the renderer, with exit status 2."""

    def conflict(pattern: str = "*") -> list[str]:
        raise PluginConflictError("renderer name 'jet' is registered twice")

    monkeypatch.setattr(cli, "list_renderers", conflict)
    parser = cli._build_parser()
    args = parser.parse_args(["explain", "x.jpg", "--model", "m", "--colormap", "any"])
    assert args.colormap == "any"


def test_explain_partial_failure_exit_1(
    files: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    code = main(
        [
            "explain",
            str(files / "mixed"),
            *model_args(files),
            "--out",
            str(out),
            "--report",
            "--target",
            "1",
        ]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert "failed" in err and "bad.jpg" in err
    rows = list(csv.DictReader((out / "gradcam_report.csv").open()))
    assert [(Path(r["image"]).name, bool(r["error"]), r["target"]) for r in rows] == [
        ("bad.jpg", True, ""),
        ("ok.jpg", False, "1"),
    ]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--method", "nosuch"], "unknown method 'nosuch'"),
        (["--layer", "layer9"], "'layer9' not found"),
        (["--target", "5"], "target 5 is out of range: the model has 2 classes"),
    ],
)
def test_usage_errors_exit_2(
    files: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    code = main(
        ["explain", str(files / "good"), *model_args(files), "--out", str(tmp_path), *extra]
    )
    assert code == 2
    assert message in capsys.readouterr().err


def test_missing_files_exit_2(
    files: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["explain", str(tmp_path / "nothing"), *model_args(files)]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    args = model_args(files)
    args[3] = str(tmp_path / "missing.pth")
    assert main(["explain", str(files / "good"), *args]) == 2
    assert "weights file not found" in capsys.readouterr().err


def test_bad_option_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["explain", "x.jpg", "--model", "resnet18", "--alpha", "7"])
    assert info.value.code == 2
    assert "must lie in [0, 1]" in capsys.readouterr().err


def test_layers(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["layers", *model_args(files)]) == 0
    out = capsys.readouterr().out
    assert "layer4 " in out and "(1, 512, 2, 2)  <- camkit's choice" in out
    assert "camkit picks 'layer4' for resnet18" in out


def test_plugins(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(
        line.split()[:2] == ["method", "gradcam++"] and line.endswith("camkit") for line in lines
    )
    assert any(line.split()[:2] == ["resolver", "structural"] for line in lines)


def test_console_script_help() -> None:
    for command in ([], ["explain"], ["layers"], ["plugins"]):
        done = subprocess.run(
            [sys.executable, "-m", "camkit.tools.cli", *command, "--help"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0 and "usage: camkit" in done.stdout


def test_evaluate_prints_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", "--scenes", "12", "--steps", "8"]) == 0
    from camkit.demo.evaluate import deterministic_methods

    lines = capsys.readouterr().out.splitlines()
    cells = [line.split("|") for line in lines if line.startswith("| ")]
    rows = {row[1].strip(): row for row in cells if row[1].strip() != "method"}
    assert set(rows) == set(deterministic_methods())  # every deterministic method, by default
    assert {"gradcam++", "gradcam", "hirescam"} <= set(rows)
    assert "smoothgradcam++" not in rows  # stochastic
    pointing = float(rows["gradcam++"][2])
    assert pointing >= 0.9  # the shipped model's Grad-CAM++ maps peak inside the boxes


def test_model_without_weights_or_classes(files: Path, tmp_path: Path) -> None:
    args = ["--model", "resnet18", "--input-size", "64", "64", "--device", "cpu"]
    assert main(["explain", str(files / "good"), *args, "--out", str(tmp_path)]) == 0
    assert main(["explain", str(tmp_path / "missing"), "--model", "resnet18"]) == 2


def test_top_classes_and_several_layers(
    files: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--top 2: one overlay and one report row per class, best first, from the classes the
    Python API gives; repeated --layer: the report names every layer."""
    out = tmp_path / "out"
    code = main(
        [
            "explain",
            str(files / "good"),
            *model_args(files),
            "--out",
            str(out),
            "--report",
            "--top",
            "2",
            "--layer",
            "layer3",
            "--layer",
            "layer4",
        ]
    )
    assert code == 0
    names = sorted(p.name for p in out.glob("*.jpg"))
    assert names == [
        "a_gradcampp_class0.jpg",
        "a_gradcampp_class1.jpg",
        "b_gradcampp_class0.jpg",
        "b_gradcampp_class1.jpg",
    ]
    rows = list(csv.DictReader((out / "gradcam_report.csv").open()))
    assert [Path(r["image"]).name for r in rows] == ["a.jpg", "a.jpg", "b.png", "b.png"]
    assert {r["layer"] for r in rows} == {"layer3+layer4"}
    from camkit import Explainer, load_classifier
    from camkit.preprocess import DataConfig

    model, _ = load_classifier("resnet18", files / "weights.pth", files / "classes.txt")
    own = DataConfig.from_model(model)  # the CLI's preprocessing at --input-size 64 64
    config = DataConfig((64, 64), own.mean, own.std, own.interpolation)
    explainer = Explainer(model, layer=["layer3", "layer4"], device="cpu", data_config=config)
    for image, pair in (("a.jpg", rows[:2]), ("b.png", rows[2:])):
        expected = explainer.explain_classes(files / "good" / image, top=2)
        assert [int(r["target"]) for r in pair] == [e.target for e in expected]
        assert [float(r["confidence"]) for r in pair] == pytest.approx(
            [e.confidence for e in expected], abs=1e-5
        )
    assert "2 classes each" in capsys.readouterr().err


def test_top_must_be_positive(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["explain", str(files / "good"), *model_args(files), "--top", "0"])
    assert exit_info.value.code == 2
    assert "--top: must be >= 1" in capsys.readouterr().err


def test_smoothing_flags(files: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--aug-smooth and --eigen-smooth give the Python API's maps; --eigen-smooth with a
    method it cannot apply to is a usage error (exit 2) that says why."""
    from torch import Tensor

    from camkit import CAMMethod, Explainer, MethodContext, hookimpl, load_classifier
    from camkit import register_plugin as register
    from camkit.preprocess import DataConfig

    out = tmp_path / "out"
    image = files / "good" / "a.jpg"
    args = ["explain", str(image), *model_args(files), "--out", str(out), "--report"]
    assert main([*args, "--aug-smooth", "--eigen-smooth", "--alpha", "1"]) == 0
    model, _ = load_classifier("resnet18", files / "weights.pth", files / "classes.txt")
    own = DataConfig.from_model(model)
    config = DataConfig((64, 64), own.mean, own.std, own.interpolation)
    expected = Explainer(
        model, device="cpu", data_config=config, aug_smooth=True, eigen_smooth=True
    ).explain(image)
    written = np.asarray(Image.open(out / "a_gradcampp.jpg").convert("RGB"), dtype=np.float64)
    assert np.abs(written - expected.overlay(alpha=1.0)).mean() < 3  # JPEG noise only

    class ChannelMean(CAMMethod):
        name = "channel-mean-cli"
        needs_gradients = False

        def compute(self, context: MethodContext) -> Tensor:
            return context.activations.mean(dim=1).relu()

    class Plugin:
        @hookimpl
        def camkit_register_methods(self) -> list[type[CAMMethod]]:
            return [ChannelMean]

    register(Plugin(), name="channel-mean-cli")
    capsys.readouterr()
    code = main([*args, "--method", "channel-mean-cli", "--eigen-smooth", "--overwrite"])
    assert code == 2
    assert "eigen_smooth does not apply to ChannelMean" in capsys.readouterr().err


def run_explain(files: Path, source: Path, out: Path, *extra: str) -> int:
    return main(["explain", str(source), *model_args(files), "--out", str(out), *extra])


def test_existing_outputs_stop_the_run_before_any_work(
    files: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """--out equal to the input folder never overwrites the user's files: exit 2 before the
    model is even built, with the count and one example; --overwrite replaces them."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("a.jpg", "b.png"):
        (folder / name).write_bytes((files / "good" / name).read_bytes())
    (folder / "a_gradcampp.jpg").write_bytes(b"the user's own file")
    built: list[str] = []
    real_load = cli.load_classifier
    monkeypatch.setattr(
        cli, "load_classifier", lambda *a, **k: built.append("model") or real_load(*a, **k)
    )
    assert run_explain(files, folder, folder, "--report") == 2
    err = capsys.readouterr().err
    assert "1 planned output file already exists" in err
    assert repr(str(folder / "a_gradcampp.jpg")) in err and "pass --overwrite" in err
    assert built == []  # stopped before any work
    assert (folder / "a_gradcampp.jpg").read_bytes() == b"the user's own file"
    assert sorted(p.name for p in folder.iterdir()) == ["a.jpg", "a_gradcampp.jpg", "b.png"]
    # a second run into the same --out: every planned file is counted, the report too
    out = tmp_path / "out"
    assert run_explain(files, files / "good", out, "--report") == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert run_explain(files, files / "good", out, "--report") == 2
    assert "3 planned output files already exist" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    (out / "a_gradcampp.jpg").write_bytes(b"stale")
    assert run_explain(files, files / "good", out, "--report", "--overwrite") == 0
    assert (out / "a_gradcampp.jpg").read_bytes() == before["a_gradcampp.jpg"]
    assert len(list(csv.DictReader((out / "gradcam_report.csv").open()))) == 2
    # --top: the class files already there count
    assert run_explain(files, files / "good", out, "--top", "2") == 0
    assert run_explain(files, files / "good", out, "--top", "2") == 2
    assert "4 planned output files already exist" in capsys.readouterr().err


def test_symlinks_in_out_are_never_followed(
    files: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "out"
    out.mkdir()
    (out / "gradcam_report.csv").symlink_to(victim)
    (out / "a_gradcampp.jpg").symlink_to(victim)
    assert run_explain(files, files / "good", out, "--report") == 2
    assert "2 planned output files already exist" in capsys.readouterr().err
    assert run_explain(files, files / "good", out, "--report", "--overwrite") == 0
    assert victim.read_text() == "precious"
    assert not (out / "gradcam_report.csv").is_symlink()
    assert not (out / "a_gradcampp.jpg").is_symlink()
    assert Image.open(out / "a_gradcampp.jpg").size == (70, 50)
    # a linked folder below --out is refused even with --overwrite, before any work
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "a.jpg").write_bytes((files / "good" / "a.jpg").read_bytes())
    out2 = tmp_path / "out2"
    elsewhere = out2 / "elsewhere"  # (a link that leaves --out is not even planned into)
    elsewhere.mkdir(parents=True)
    (out2 / "sub").symlink_to(elsewhere, target_is_directory=True)
    assert run_explain(files, tree, out2, "--recursive", "--report", "--overwrite") == 2
    assert "sub' is a symbolic link; camkit never writes through one" in capsys.readouterr().err
    assert list(elsewhere.iterdir()) == [] and len(list(out2.iterdir())) == 2


def test_output_folders_that_cannot_be_used_exit_2(
    files: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert run_explain(files, files / "good", afile, "--report") == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    assert main(["demo", "--out", str(afile / "sub")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("camkit demo: error: cannot create the output folder")
    assert "is a file, not a folder" in err and "Traceback" not in err
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda p, mode: False if Path(p) == locked else real_access(p, mode)
    )
    assert run_explain(files, files / "good", locked, "--report") == 2
    assert "permission denied: cannot write to the output folder" in capsys.readouterr().err
    assert list(locked.iterdir()) == []


def test_disk_full_while_the_report_grows(
    files: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The third write to the report (its second row) finds the disk full halfway: a clean
    message, exit 2, and the header and first row intact, with no cut-off row."""
    from camkit.tools import output

    out = tmp_path / "out"
    report = out / "gradcam_report.csv"
    real = output._write_all
    report_writes: list[int] = []

    def write_all(fd: int, data: bytes) -> None:
        if report.exists() and os.fstat(fd).st_ino == os.stat(report).st_ino:
            report_writes.append(len(data))
            if len(report_writes) == 3:
                os.write(fd, data[: len(data) // 2])
                raise OSError(errno.ENOSPC, "No space left on device")
        real(fd, data)

    monkeypatch.setattr(output, "_write_all", write_all)
    assert run_explain(files, files / "good", out, "--report") == 2
    err = capsys.readouterr().err
    assert "camkit explain: error: the disk is full: could not write a row of" in err
    assert "1 complete row is kept" in err and "Traceback" not in err
    lines = report.read_bytes().split(b"\r\n")
    assert lines[0].startswith(b"image,pred_class") and lines[-1] == b""
    assert len(lines) == 3 and lines[1].startswith(str(files / "good" / "a.jpg").encode())
    assert len(next(csv.reader([lines[1].decode()]))) == len(lines[0].split(b","))


@pytest.mark.parametrize("device", ["tpu", "cuda:abc"])
def test_unknown_device_exit_2(
    files: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], device: str
) -> None:
    args = [*model_args(files)[:-1], device]
    assert main(["explain", str(files / "good"), *args, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"unknown device {device!r}" in err and "Traceback" not in err


def test_errors_from_the_file_system_exit_2(
    files: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Any CamkitError or OSError (here from selecting the device, and from the file
    system) is a message and exit 2, never a traceback."""
    from camkit import explainer as explainer_module
    from camkit.errors import ConfigurationError

    def refuse(device: object) -> None:
        raise ConfigurationError(f"unknown device {device!r}; use 'auto', 'cpu' or 'cuda:N'")

    monkeypatch.setattr(explainer_module, "select_device", refuse)
    assert run_explain(files, files / "good", tmp_path / "o1") == 2
    assert "camkit explain: error: unknown device 'cpu'" in capsys.readouterr().err
    monkeypatch.undo()

    def broken(*_: object, **__: object) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(cli, "explain_files", broken)
    assert run_explain(files, files / "good", tmp_path / "o2") == 2
    assert "camkit explain: error: [Errno 5] Input/output error" in capsys.readouterr().err


@pytest.mark.skipif(sys.platform != "linux", reason="needs a file system that takes any bytes")
def test_failed_file_with_a_name_that_is_not_utf8_is_printed(
    files: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / os.fsdecode(b"caf\xe9.jpg")).write_text("not an image")
    (folder / "ok.jpg").write_bytes((files / "good" / "a.jpg").read_bytes())
    assert run_explain(files, folder, tmp_path / "out", "--report") == 1
    err = capsys.readouterr().err
    assert "camkit: failed " + str(folder / "caf\\udce9.jpg") in err
    rows = list(csv.DictReader((tmp_path / "out" / "gradcam_report.csv").open(encoding="utf-8")))
    assert [(Path(r["image"]).name, bool(r["error"])) for r in rows] == [
        ("caf\\udce9.jpg", True),
        ("ok.jpg", False),
    ]


def test_demo_refuses_to_overwrite_without_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "index.html").write_text("the user's page")
    assert main(["demo", "--out", str(tmp_path), "--method", "gradcam"]) == 2
    err = capsys.readouterr().err
    assert "1 planned output file already exists" in err and "index.html" in err
    assert [p.name for p in tmp_path.iterdir()] == ["index.html"]
    assert main(["demo", "--out", str(tmp_path), "--method", "gradcam", "--overwrite"]) == 0
    assert "<!DOCTYPE html>" in (tmp_path / "index.html").read_text()


MODEL_FILE = """
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self, classes=3):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU()
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, classes)

    def forward(self, x):
        return self.fc(self.pool(self.features(x)).flatten(1))


def build():
    torch.manual_seed(0)
    return Net()


def build_five():
    return Net(5)


class Registry:
    build = staticmethod(build)


NOT_CALLABLE = 3


def not_a_model():
    return "model.pth"


def needs_arguments(depth):
    return Net()


def labelled():
    model = build()
    model.pretrained_cfg = {"label_names": ["cat", "dog", "fox"]}
    return model


def labelled_wrongly():
    model = build()
    model.pretrained_cfg = {"label_names": ["cat", "dog"]}
    return model
"""


def write_model_file(folder: Path, name: str = "mynet.py") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(MODEL_FILE)
    return path


def reference_net(folder: Path, state: dict[str, torch.Tensor] | None = None) -> torch.nn.Module:
    """The factory's model, built here the way the CLI builds it."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("reference_net", write_model_file(folder))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model: torch.nn.Module = module.build()
    if state is not None:
        model.load_state_dict(state)
    return model.eval()


SMALL = ["--input-size", "32", "32", "--device", "cpu", "--no-progress"]


def test_model_from_a_file_factory(
    files: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--model path/to/file.py:factory builds the user's model; the results are the Python
    API's on the factory's model; no class names: pred_name empty, no '(N)' after pred."""
    spec = f"{write_model_file(tmp_path / 'models')}:build"
    out = tmp_path / "out"
    code = main(
        ["explain", str(files / "good"), "--model", spec, *SMALL, "--out", str(out), "--report"]
    )
    assert code == 0
    captured = capsys.readouterr()
    assert "warning" not in captured.err  # a factory may load its own weights
    rows = list(csv.DictReader((out / "gradcam_report.csv").open()))
    model = reference_net(tmp_path / "ref")
    config = DataConfig((32, 32))
    explainer = Explainer(model, device="cpu", data_config=config)
    for row, name in zip(rows, ("a.jpg", "b.png"), strict=True):
        expected = explainer.explain(files / "good" / name)
        assert int(row["pred_class"]) == expected.pred_class
        assert float(row["confidence"]) == pytest.approx(expected.confidence, abs=1e-5)
        assert row["pred_name"] == "" and row["layer"] == expected.layer
        assert f"pred={expected.pred_class} conf=" in captured.out
    assert "(" not in captured.out.split("pred=")[1].split("conf=")[0]


def test_model_from_a_module_factory_with_weights_and_classes(
    files: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """--model package.module:factory (dotted attributes too) with --weights on top: the
    checkpoint's weights are used, in any of the checkpoint formats, and --classes names
    the predictions in the report and on stdout."""
    package = tmp_path / "site" / "cli_test_models"
    write_model_file(package, "nets.py")
    (package / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    torch.manual_seed(7)
    trained = reference_net(tmp_path / "ref").state_dict()
    trained = {k: torch.randn_like(v) for k, v in trained.items()}
    weights = tmp_path / "trained.pth"
    torch.save({"model_state_dict": {f"module.{k}": v for k, v in trained.items()}}, weights)
    classes = tmp_path / "classes.txt"
    classes.write_text("cat\ndog\nfox\n")
    out = tmp_path / "out"
    args = ["--weights", str(weights), "--classes", str(classes), *SMALL, "--out", str(out)]
    spec = "cli_test_models.nets:Registry.build"
    assert main(["explain", str(files / "good"), "--model", spec, *args, "--report"]) == 0
    captured = capsys.readouterr()
    rows = list(csv.DictReader((out / "gradcam_report.csv").open()))
    explainer = Explainer(
        reference_net(tmp_path / "ref", trained),
        device="cpu",
        data_config=DataConfig((32, 32)),
        class_names=["cat", "dog", "fox"],
    )
    for row, name in zip(rows, ("a.jpg", "b.png"), strict=True):
        expected = explainer.explain(files / "good" / name)
        assert float(row["confidence"]) == pytest.approx(expected.confidence, abs=1e-5)
        assert row["pred_name"] == expected.pred_name and expected.pred_name in captured.out
        assert f"pred={expected.pred_class} ({expected.pred_name}) conf=" in captured.out
    untrained = Explainer(
        reference_net(tmp_path / "ref"), device="cpu", data_config=DataConfig((32, 32))
    )
    assert float(rows[0]["confidence"]) != pytest.approx(
        untrained.explain(files / "good" / "a.jpg").confidence, abs=1e-4
    )


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            "{dir}/missing.py:build",
            "model file '{dir}/missing.py' of '{dir}/missing.py:build' is not found",
        ),
        ("{dir}:build", "is neither a Python file (ending in .py) nor a module name"),
        ("no_such_camkit_models.nets:build", "cannot import module 'no_such_camkit_models.nets'"),
        ("{file}:nosuch", "has no attribute 'nosuch'; name the function (or class) that builds"),
        ("{file}:NOT_CALLABLE", "'NOT_CALLABLE' is a int, not a callable"),
        ("{file}:not_a_model", "returned a str, not a torch.nn.Module"),
        ("{file}:needs_arguments", "raised TypeError: needs_arguments() missing 1 required"),
        ("{broken}:build", "raised NameError: name 'undefined_name' is not defined"),
    ],
)
def test_factory_errors_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], spec: str, message: str
) -> None:
    model_file = write_model_file(tmp_path / "models")
    broken = tmp_path / "broken.py"
    broken.write_text("undefined_name\n")
    values = {"dir": str(tmp_path), "file": str(model_file), "broken": str(broken)}
    image = tmp_path / "x.png"
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(image)
    code = main(
        [
            "explain",
            str(image),
            "--model",
            spec.format(**values),
            *SMALL,
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "camkit explain: error:" in err and message.format(**values) in err
    assert not (tmp_path / "o").exists()


def test_factory_weights_that_do_not_fit_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A checkpoint for another head or architecture, and a class file of another length,
    are usage errors with the counts and keys named."""
    model_file = write_model_file(tmp_path / "models")
    image = tmp_path / "x.png"
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(image)
    five = reference_net(tmp_path / "ref")
    five.fc = torch.nn.Linear(8, 5)
    torch.save(five.state_dict(), tmp_path / "five.pth")
    torch.save({"other.weight": torch.zeros(2)}, tmp_path / "other.pth")
    base = ["explain", str(image), "--model", f"{model_file}:build", *SMALL]
    assert main([*base, "--weights", str(tmp_path / "five.pth")]) == 2
    err = capsys.readouterr().err
    assert "the checkpoint head has 5 classes (fc.weight: 5x8) but the model's head has 3" in err
    assert "Make the factory build the model with the checkpoint's class count" in err
    assert main([*base, "--weights", str(tmp_path / "other.pth")]) == 2
    err = capsys.readouterr().err
    assert "6 keys of the model missing from the checkpoint" in err
    assert "1 unexpected key in the checkpoint: 'other.weight'" in err
    (tmp_path / "two.txt").write_text("a\nb\n")
    assert main([*base, "--classes", str(tmp_path / "two.txt")]) == 2
    assert "lists 2 classes but the head of the model of" in capsys.readouterr().err


def test_missing_weights_warn(
    files: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --weights a named backbone has random weights: one warning line on stderr;
    with --weights, none."""
    args = [
        "--model",
        "resnet18",
        "--input-size",
        "32",
        "32",
        "--device",
        "cpu",
        "--out",
        str(tmp_path),
    ]
    assert main(["explain", str(files / "good" / "a.jpg"), *args]) == 0
    warnings_ = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert warnings_ == [
        "camkit explain: warning: no --weights, so resnet18 has random weights and its "
        "predictions and maps are meaningless; pass --weights FILE (your trained checkpoint), "
        "or --model path/to/file.py:factory for a model that loads its own"
    ]
    assert (
        main(
            [
                "explain",
                str(files / "good" / "a.jpg"),
                *model_args(files),
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 0
    )
    assert "warning" not in capsys.readouterr().err


def test_folders_are_searched_recursively_by_default(
    files: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The seed's datasets/test/<class>/ layout needs no flag; --no-recursive turns that off
    and finding nothing is exit 2 saying why; an --out inside the input is not searched."""
    data = tmp_path / "datasets" / "test"
    for label in ("cat", "dog"):
        (data / label).mkdir(parents=True)
        shutil.copy(files / "good" / "a.jpg", data / label / "x.jpg")
    planted = data / "cam_output" / "old_gradcampp.jpg"  # an earlier run's overlay
    planted.parent.mkdir()
    shutil.copy(files / "good" / "a.jpg", planted)
    monkeypatch.chdir(data)
    assert main(["explain", ".", *model_args(files), "--out", "cam_output", "--report"]) == 0
    with Path("cam_output/gradcam_report.csv").open() as report:
        rows = list(csv.DictReader(report))
    assert [Path(r["image"]).as_posix() for r in rows] == ["cat/x.jpg", "dog/x.jpg"]
    assert sorted(p.as_posix() for p in Path("cam_output").rglob("*_gradcampp.jpg")) == [
        "cam_output/cat/x_gradcampp.jpg",
        "cam_output/dog/x_gradcampp.jpg",
        "cam_output/old_gradcampp.jpg",
    ]
    assert "explained 2 of 2 images" in capsys.readouterr().err
    code = main(["explain", ".", *model_args(files), "--out", str(tmp_path / "o2"), "--recursive"])
    assert code == 0  # the old flag is still accepted
    capsys.readouterr()
    assert main(["explain", ".", *model_args(files), "--no-recursive"]) == 2
    err = capsys.readouterr().err
    assert "camkit explain: error: no images found in '.', searched without subfolders" in err
    assert ".jpg, .png, .tif, .tiff, .webp (any case)" in err
    assert "3 subfolder(s) were not searched: turn recursion back on (drop --no-recursive" in err


def test_names_preprocessing_and_layer_messages(
    files: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No class file: pred_name is empty in the report and stdout prints pred=N alone; the
    summary and every report row give the preprocessing; a layer typo speaks of --layer."""
    out = tmp_path / "out"
    args = [
        "--model",
        "resnet18",
        "--input-size",
        "32",
        "48",
        "--device",
        "cpu",
        "--resize",
        "crop",
    ]
    assert main(["explain", str(files / "mixed"), *args, "--out", str(out), "--report"]) == 1
    captured = capsys.readouterr()
    described = "centre crop to 32x48 (HxW), bicubic, ImageNet mean/std"
    assert f"; preprocessing: {described}; report:" in captured.err
    rows = list(csv.DictReader((out / "gradcam_report.csv").open()))
    assert [r["preprocessing"] for r in rows] == [described, described]  # error row too
    assert rows[1]["pred_class"] and rows[1]["pred_name"] == ""
    pred = rows[1]["pred_class"]
    assert f"pred={pred} conf=" in captured.out and f"({pred})" not in captured.out
    assert main(["explain", str(files / "good"), *model_args(files), "--layer", "layr4"]) == 2
    err = capsys.readouterr().err
    assert "layer 'layr4' not found in ResNet; closest existing names: 'layer4'" in err
    assert "--layer on the command line" in err


def test_a_failing_image_becomes_a_row_and_the_run_goes_on(
    files: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A model that raises on one image of a batch: exit 1, that image's row holds the
    error, the others are explained as a batch without it explains them."""
    model_file = write_model_file(tmp_path / "models")
    with model_file.open("a") as extra:
        extra.write(
            "\n\nclass Picky(Net):\n"
            "    def forward(self, x):\n"
            "        if (x.mean(dim=(1, 2, 3)) > 1.0).any():\n"
            "            raise RuntimeError('too bright')\n"
            "        return super().forward(x)\n\n\n"
            "def picky():\n"
            "    torch.manual_seed(0)\n"
            "    return Picky()\n"
        )
    folder = tmp_path / "images"
    folder.mkdir()
    shutil.copy(files / "good" / "a.jpg", folder / "1.jpg")
    Image.fromarray(np.full((30, 30, 3), 250, np.uint8)).save(folder / "2.png")
    shutil.copy(files / "good" / "b.png", folder / "3.png")
    out = tmp_path / "out"
    args = ["--model", f"{model_file}:picky", *SMALL, "--out", str(out), "--report"]
    assert main(["explain", str(folder), *args]) == 1
    captured = capsys.readouterr()
    assert f"camkit: failed {folder / '2.png'}: RuntimeError: too bright" in captured.err
    assert "explained 2 of 3 images" in captured.err
    rows = list(csv.DictReader((out / "gradcam_report.csv").open()))
    assert [(Path(r["image"]).name, r["error"]) for r in rows] == [
        ("1.jpg", ""),
        ("2.png", "RuntimeError: too bright"),
        ("3.png", ""),
    ]
    explainer = Explainer(
        reference_net(tmp_path / "ref"), device="cpu", data_config=DataConfig((32, 32))
    )
    batch = explainer.explain_batch([folder / "1.jpg", folder / "3.png"])
    assert [float(rows[i]["confidence"]) for i in (0, 2)] == pytest.approx(
        [e.confidence for e in batch], abs=1e-5
    )


def test_model_declared_label_names_and_module_import_errors(
    files: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A model whose pretrained_cfg lists as many label_names as it has classes is named by
    them; a list of another length is ignored. A module that imports a missing package is
    a usage error naming that package."""
    model_file = write_model_file(tmp_path / "models")
    out = tmp_path / "out"
    image = str(files / "good" / "a.jpg")
    for factory, names in (("labelled", {"cat", "dog", "fox"}), ("labelled_wrongly", {""})):
        args = ["--model", f"{model_file}:{factory}", *SMALL, "--out", str(out), "--report"]
        assert main(["explain", image, *args]) == 0
        rows = list(csv.DictReader((out / "gradcam_report.csv").open()))
        assert rows[0]["pred_name"] in names
        shutil.rmtree(out)
    capsys.readouterr()
    site = tmp_path / "site"
    site.mkdir()
    (site / "cli_needs_dependency.py").write_text("import no_such_dependency_xyz\n")
    monkeypatch.syspath_prepend(str(site))
    assert main(["explain", image, "--model", "cli_needs_dependency:build", *SMALL]) == 2
    err = capsys.readouterr().err
    assert "importing module 'cli_needs_dependency' of 'cli_needs_dependency:build' failed: " in err
    assert "it imports 'no_such_dependency_xyz', which is not installed" in err


def test_workers_option_gives_the_same_outputs(
    files: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--workers 0`` (one step after the other) and ``--workers 2`` write the same
    overlays, byte for byte, and the same report, bad file included (with a fixed
    ``--threads``)."""
    outputs = {}
    for workers in ("0", "2"):
        out = tmp_path / f"out{workers}"
        paths = [str(files / "good"), str(files / "mixed")]
        extra = ["--report", "--workers", workers, "--batch-size", "2", "--threads", "1"]
        code = main(["explain", *paths, *model_args(files), "--out", str(out), *extra])
        assert code == 1  # mixed/bad.jpg
        report = (out / "gradcam_report.csv").read_text(encoding="utf-8")
        overlays = {p.name: p.read_bytes() for p in out.glob("*.jpg")}
        outputs[workers] = (report.replace(str(out), "OUT"), overlays)
    assert sorted(outputs["0"][1]) == ["a_gradcampp.jpg", "b_gradcampp.jpg", "ok_gradcampp.jpg"]
    assert outputs["2"] == outputs["0"]
    assert "bad.jpg" in outputs["0"][0]


def test_workers_option_is_checked_and_documented(
    files: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["explain", str(files / "good"), *model_args(files), "--workers", "-1"])
    assert info.value.code == 2
    assert "--workers: must be >= 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["explain", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--workers N local engine: threads that decode images while the model runs" in help_text
    assert "--engine ray: the number of actors" in help_text
    passed: list[object] = []

    def explain(*args: object, **kwargs: object) -> list[object]:
        passed.append(kwargs["workers"])
        return []

    monkeypatch.setattr(cli, "explain_files", explain)
    for extra in ([], ["--workers", "3"]):
        main(["explain", str(files / "good"), *model_args(files), "--out", str(tmp_path), *extra])
    assert passed == [None, 3]  # None: the library's default, half the CPUs (1 to 4)


def test_importing_camkit_loads_what_is_used_only() -> None:
    """``import camkit`` loads neither torch nor the command line (names are imported on
    first use); the top-level names and submodules still resolve, for ``dir`` too."""
    code = (
        "import sys, camkit, camkit.errors, camkit.tools.output\n"
        "print('torch' in sys.modules, 'camkit.tools.cli' in sys.modules)\n"
        "from camkit import Explainer, generate_gradcam_batch\n"
        "print(Explainer.__module__, generate_gradcam_batch.__module__)\n"
        "print(camkit.plugins.__name__, set(camkit.__all__) <= set(dir(camkit)))\n"
        "print('camkit.tools.html_report' in sys.modules)\n"
        "try:\n    camkit.no_such_name\nexcept AttributeError as error:\n    print(error)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.splitlines() == [
        "False False",
        "camkit.explainer camkit.compat.seed",
        "camkit.plugins True",
        "False",  # the HTML page's module: only for --html
        "module 'camkit' has no attribute 'no_such_name'",
    ]


def test_ray_engine_needs_at_least_one_actor(
    files: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["explain", str(files / "good"), *model_args(files), "--out", str(tmp_path / "o")]
    assert main([*args, "--engine", "ray", "--workers", "0"]) == 2
    assert "--engine ray needs at least one actor" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
