"""Folder throughput: ``camkit explain DIR --report`` against a plain inference pipeline.

Both sides run as whole processes, each run a fresh one, timed from spawn to exit, on the
same folder of JPEGs (500x375, generated deterministically once into a cache folder and
reused). Run from the repository root, in the development environment
(``pip install -e .[dev]``); pytest does not collect this script::

    # the issue's workloads: ResNet-50 on 256 JPEGs, MobileNetV3-small on 1024, 3 rounds
    python tests/benchmarks/bench_folder.py

    # a smoke test (16 images per model, 1 round, 1 start-up run): a minute or two
    python tests/benchmarks/bench_folder.py --quick

    # camkit with options of its own (passed through as given; repeat to compare several)
    python tests/benchmarks/bench_folder.py --camkit-args "" --camkit-args "--workers 2"

    # the Ray engine at 1 and 2 workers too (skipped when ray is not importable)
    python tests/benchmarks/bench_folder.py --engine-compare

    # on a GPU: both sides on it
    python tests/benchmarks/bench_folder.py --device cuda

    # one model, another count, torch threads fixed, results kept as JSON
    python tests/benchmarks/bench_folder.py --models resnet50 --images 512 --threads 2 \\
        --json folder.json

Options: ``--models NAME ...`` (default ``resnet50 mobilenetv3_small_100``, built as camkit's
``--model NAME`` builds them: timm's random-init 1000-class model), ``--images N ...`` (one
count for every model, or one per model; default 256 for ResNet-50 and 1024 for
MobileNetV3-small), ``--repeats R`` (timed rounds, default 3), ``--warmup W`` (untimed
rounds first, default 0), ``--threads N`` (``OMP_NUM_THREADS``/``MKL_NUM_THREADS`` of every
child process; default: inherited), ``--device cpu|cuda|cuda:N``, ``--batch-size B``
(both sides, default 8: camkit's own ``--batch-size`` default), ``--plain-workers N ...``
(DataLoader worker counts tried, default ``0 2``; a ``--workers N`` in a ``--camkit-args``
adds ``N``), ``--camkit-args "..."`` (repeatable; ``""`` is camkit's defaults; one word
starting with ``-`` needs the ``=`` form: ``--camkit-args=--flag``), ``--engine-compare``,
``--startup-repeats K`` (default 5), ``--skip-startup``, ``--skip-throughput``,
``--cache DIR`` (default ``$XDG_CACHE_HOME/camkit-bench/folder``, else
``~/.cache/camkit-bench/folder``), ``--json FILE``, ``--timeout S`` (per process),
``--check`` (exit status 1 when a goal is missed; without it the script only reports).

What runs:

- **camkit**: ``python -m camkit.tools.cli explain DIR --model NAME --report --out OUT
  --no-progress --overwrite --device DEVICE --batch-size B [camkit args]``, with this
  checkout first on ``PYTHONPATH`` (so the checkout the script lives in is measured, not an
  installed camkit). Overlays and the CSV report are written; OUT is deleted before every
  run (not timed). A run counts only if it exits 0 and its report has one row per image and
  no error.
- **plain**: ``tests/benchmarks/plain_inference.py`` (see its docstring for why it is the
  fastest plain pipeline): a torch ``DataLoader`` with N workers decodes (PIL) and
  stretches every file to the model's input size, each batch is normalised, the model runs
  under ``torch.inference_mode()``, argmax. Same model, same batch size, same device, fp32,
  and the same preprocessing as camkit's CLI by default: the benchmark reads
  ``camkit.preprocess.DataConfig.from_model(model)`` for the model (for both default models:
  stretch to 224x224, bicubic, ImageNet mean/std) and passes it on. ``pin_memory`` is on only
  on CUDA. It does not import camkit. Every worker count of ``--plain-workers`` is its own
  contender; the better one is the baseline. A run counts only if it classified every image.

Rounds are interleaved: every round runs every contender once, in an order rotated by one
each round. Per contender the script prints the **best** round (images/s; least disturbed
by other load) and, in brackets, the median. The ratio camkit / plain is camkit's best
over the best plain contender's best (the median ratio follows it), next to the goal of
the issue: on the CPU ResNet-50 >= 0.88x and MobileNetV3-small >= 0.8x; on a GPU >= 0.8x.

CLI start-up, as whole processes, median of ``--startup-repeats`` runs, in ms:
``python -c "import torch"`` (the floor), ``python -m camkit.tools.cli --help``, and
``python -m camkit.tools.cli explain one.jpg --model mobilenetv3_small_100 --device cpu``
(one of the generated JPEGs, into a fresh output folder).

The images: gradients, slow waves, two octaves of texture, 4-9 soft-edged shapes and
sensor noise, JPEG quality 90 (about 33 KiB each). Decoding one takes about what a
photograph of the same size takes (checked against scikit-learn's ``china.jpg`` and
``flower.jpg`` and matplotlib's ``grace_hopper.jpg`` resized to 500x375: 1.1-1.6 ms each
here, the generated ones 1.3-1.6 ms). Before timing, missing images are generated and
every file is read once, so the runs find them in the page cache.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import math
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

REPO_ROOT = Path(__file__).resolve().parents[2]
PLAIN_SCRIPT = Path(__file__).resolve().with_name("plain_inference.py")

DEFAULT_MODELS = ("resnet50", "mobilenetv3_small_100")
DEFAULT_IMAGES = {"resnet50": 256, "mobilenetv3_small_100": 1024}
FALLBACK_IMAGES = 256
QUICK_IMAGES = 16
# Goals of issue 12 (camkit images/s over the best plain pipeline's).
CPU_GOALS = {"resnet50": 0.88, "mobilenetv3_small_100": 0.80}
GPU_GOAL = 0.80
STARTUP_MODEL = "mobilenetv3_small_100"

IMAGE_WIDTH, IMAGE_HEIGHT = 500, 375
JPEG_QUALITY = 90
GENERATOR = "v1"  # change when make_scene changes: the cache is keyed on it
SEED = 20261201
OVERLAY_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}


# --------------------------------------------------------------------------- images


def make_scene(index: int) -> Image.Image:
    """A deterministic natural-looking 500x375 RGB scene: a colour gradient with slow
    undulations, a mid-frequency texture, a few soft-edged shapes and sensor noise (so JPEG
    decoding does about the work of a photograph's, unlike flat colour or pure noise)."""
    rng = np.random.default_rng([SEED, index])
    h, w = IMAGE_HEIGHT, IMAGE_WIDTH
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    y /= h
    x /= w
    angle = rng.uniform(0.0, 2.0 * math.pi)
    t = math.cos(angle) * x + math.sin(angle) * y
    t = (t - t.min()) / (t.max() - t.min())
    start, end = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    image = start + t[..., None] * (end - start)
    for _ in range(3):
        fx, fy = rng.uniform(0.5, 3.0, 2)
        wave = np.sin(2.0 * math.pi * (fx * x + fy * y) + rng.uniform(0, 2 * math.pi))
        image += wave[..., None] * rng.uniform(-25, 25, 3)
    for step, low, high in ((6, 6, 16), (2, 3, 8)):  # two octaves of texture
        coarse = rng.normal(0.0, 1.0, (h // step + 1, w // step + 1)).astype(np.float32)
        resized = Image.fromarray(coarse, mode="F").resize((w, h), Image.Resampling.BICUBIC)
        image += np.asarray(resized)[..., None] * rng.uniform(low, high) * rng.uniform(0.6, 1, 3)
    scene = Image.fromarray(np.clip(image, 0, 255).astype(np.uint8))

    draw = ImageDraw.Draw(scene)
    for _ in range(int(rng.integers(4, 10))):
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        rx, ry = rng.uniform(15, w / 4), rng.uniform(15, h / 4)
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        outline = tuple(int(v) for v in rng.integers(0, 256, 3))
        box = (cx - rx, cy - ry, cx + rx, cy + ry)
        kind = int(rng.integers(0, 3))
        if kind == 0:
            draw.ellipse(box, fill=colour, outline=outline, width=int(rng.integers(1, 5)))
        elif kind == 1:
            draw.rectangle(box, fill=colour, outline=outline, width=int(rng.integers(1, 5)))
        else:
            corners = int(rng.integers(3, 7))
            angles = np.sort(rng.uniform(0, 2 * math.pi, corners))
            points = [(cx + rx * math.cos(a), cy + ry * math.sin(a)) for a in angles]
            draw.polygon(points, fill=colour, outline=outline)
    scene = scene.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(0.6, 1.6))))
    noisy = np.asarray(scene, dtype=np.float32) + rng.normal(0.0, 3.0, (h, w, 3))
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def ensure_images(cache: Path, count: int) -> Path:
    """A folder holding exactly ``count`` generated JPEGs (``img_00000.jpg``...).

    The images live once in ``cache/jpeg-500x375-<generator>/pool`` (generated when missing,
    each written atomically) and each count's folder holds hard links to the first
    ``count`` of them (copies where links are refused).
    """
    root = cache / f"jpeg-{IMAGE_WIDTH}x{IMAGE_HEIGHT}-{GENERATOR}"
    pool = root / "pool"
    pool.mkdir(parents=True, exist_ok=True)
    folder = root / f"n{count}"
    marker = root / f"n{count}.complete"
    if marker.is_file() and folder.is_dir():
        return folder
    made = 0
    for index in range(count):
        target = pool / f"img_{index:05d}.jpg"
        if not target.is_file():
            partial = target.with_suffix(".partial")
            make_scene(index).save(partial, format="JPEG", quality=JPEG_QUALITY)
            os.replace(partial, target)
            made += 1
    if made:
        print(f"generated {made} JPEGs in {pool}", file=sys.stderr)
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir()
    for index in range(count):
        name = f"img_{index:05d}.jpg"
        try:
            os.link(pool / name, folder / name)
        except OSError:
            shutil.copyfile(pool / name, folder / name)
    marker.write_text(f"{count} images, generator {GENERATOR}\n")
    return folder


def read_all(folder: Path) -> int:
    """Read every file of ``folder`` once (into the page cache); the bytes read."""
    return sum(len(path.read_bytes()) for path in sorted(folder.iterdir()))


# --------------------------------------------------------------------------- processes


@dataclass
class Outcome:
    """One finished child process."""

    seconds: float
    returncode: int
    stdout: str
    stderr: str


def child_env(threads: int | None) -> dict[str, str]:
    """The environment of every child: this checkout first on ``PYTHONPATH``, and the
    thread count when one is given."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), *filter(None, [env.get("PYTHONPATH")])])
    if threads is not None:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    return env


def run_timed(command: Sequence[str], env: dict[str, str], timeout: float) -> Outcome:
    """Run ``command`` as a fresh process; the seconds from spawn to exit."""
    start = time.perf_counter()
    try:
        done = subprocess.run(
            list(command),
            env=env,
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as expired:
        stderr = expired.stderr or b""
        text = stderr.decode(errors="replace") if isinstance(stderr, bytes) else stderr
        return Outcome(time.perf_counter() - start, -1, "", f"timed out after {timeout} s\n{text}")
    return Outcome(time.perf_counter() - start, done.returncode, done.stdout, done.stderr)


def camkit_command(*arguments: str) -> list[str]:
    """``python -m camkit.tools.cli ARGUMENTS`` with this interpreter."""
    return [sys.executable, "-m", "camkit.tools.cli", *arguments]


def tail(text: str, lines: int = 6) -> str:
    """The last lines of ``text``, indented."""
    return "\n".join("      " + line for line in text.strip().splitlines()[-lines:])


# --------------------------------------------------------------------------- contenders


@dataclass
class Contender:
    """One side of the comparison with its timed rounds."""

    label: str
    kind: str  # "plain" or "camkit"
    command: list[str]
    out: Path | None = None  # camkit's output folder, deleted before every run
    rates: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    failure: str | None = None

    @property
    def best(self) -> float | None:
        return max(self.rates) if self.rates else None

    @property
    def median(self) -> float | None:
        return statistics.median(self.rates) if self.rates else None


def check_plain(outcome: Outcome, count: int) -> str | None:
    """Why the plain run does not count, or ``None``."""
    if outcome.returncode != 0:
        return f"exit status {outcome.returncode}\n{tail(outcome.stderr)}"
    try:
        summary = json.loads(outcome.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        return f"no summary line on stdout\n{tail(outcome.stdout + outcome.stderr)}"
    if summary.get("images") != count:
        return f"classified {summary.get('images')} images, not {count}"
    return None


def check_camkit(outcome: Outcome, out: Path, count: int) -> str | None:
    """Why the camkit run does not count, or ``None``: it must exit 0 and report every
    image once, without errors."""
    if outcome.returncode != 0:
        return f"exit status {outcome.returncode}\n{tail(outcome.stderr)}"
    report = out / "gradcam_report.csv"
    if not report.is_file():
        return f"no report at {report}\n{tail(outcome.stderr)}"
    with report.open(newline="", encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    images = {row.get("image") for row in rows}
    errors = [row for row in rows if row.get("error")]
    if len(images) != count or errors:
        return f"report has {len(images)} images (not {count}) and {len(errors)} error rows"
    overlays = sum(1 for path in out.rglob("*") if path.suffix.lower() in OVERLAY_SUFFIXES)
    if overlays < count:
        return f"{overlays} overlays written in {out}, not {count}"
    return None


def workers_in(arguments: str) -> int | None:
    """The ``N`` of a ``--workers N`` (or ``--workers=N``) in camkit's arguments."""
    words = shlex.split(arguments)
    for i, word in enumerate(words):
        if word == "--workers" and i + 1 < len(words) and words[i + 1].isdigit():
            return int(words[i + 1])
        if word.startswith("--workers=") and word.partition("=")[2].isdigit():
            return int(word.partition("=")[2])
    return None


def preprocessing(model_name: str) -> dict[str, Any]:
    """camkit's CLI default preprocessing for ``model_name``
    (``DataConfig.from_model`` of the model the CLI builds)."""
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    from camkit.compat.checkpoints import load_classifier
    from camkit.preprocess import DataConfig

    model, _ = load_classifier(model_name, None, None, 1000)
    config = DataConfig.from_model(model)
    if config.resize != "stretch":
        raise SystemExit(
            f"camkit preprocesses {model_name} with resize={config.resize!r}; "
            "plain_inference.py implements only 'stretch': extend it first"
        )
    return {
        "input_size": list(config.input_size),
        "interpolation": config.interpolation,
        "mean": list(config.mean),
        "std": list(config.std),
        "describe": config.describe(),
    }


def contenders_for(
    args: argparse.Namespace, model: str, folder: Path, prep: dict[str, Any]
) -> list[Contender]:
    """The plain pipelines (one per worker count) and the camkit runs of one workload."""
    common = ["--device", args.device, "--batch-size", str(args.batch_size)]
    worker_counts = set(args.plain_workers)
    for extra in args.camkit_args:
        n = workers_in(extra)
        if n is not None:
            worker_counts.add(n)
    result = []
    for n in sorted(worker_counts):
        command = [
            sys.executable,
            str(PLAIN_SCRIPT),
            str(folder),
            "--model",
            model,
            "--workers",
            str(n),
            *common,
            "--input-size",
            *map(str, prep["input_size"]),
            "--interpolation",
            prep["interpolation"],
            "--mean",
            *map(repr, prep["mean"]),
            "--std",
            *map(repr, prep["std"]),
        ]
        result.append(Contender(f"plain, {n} workers", "plain", command))
    camkit_extras = list(args.camkit_args)
    if args.engine_compare:
        if importlib.util.find_spec("ray") is None:
            print("--engine-compare: ray is not importable, the Ray engine is skipped")
        else:
            camkit_extras += ["--engine ray --workers 1", "--engine ray --workers 2"]
    for i, extra in enumerate(camkit_extras):
        out = args.cache / "out" / f"{model}-{i}"
        command = camkit_command(
            "explain",
            str(folder),
            "--model",
            model,
            "--report",
            "--out",
            str(out),
            "--no-progress",
            "--overwrite",
            *common,
            *shlex.split(extra),
        )
        label = f"camkit {extra}".strip()
        result.append(Contender(label, "camkit", command, out=out))
    return result


def run_workload(
    args: argparse.Namespace, model: str, count: int, env: dict[str, str]
) -> dict[str, Any]:
    """Time every contender of one workload over interleaved rounds; print and return it."""
    folder = ensure_images(args.cache, count)
    size = read_all(folder)
    prep = preprocessing(model)
    contenders = contenders_for(args, model, folder, prep)
    rounds = args.warmup + args.repeats
    print(
        f"\n== {model}, {count} JPEGs {IMAGE_WIDTH}x{IMAGE_HEIGHT} "
        f"({size / count / 1024:.0f} KiB each), {args.device}, batch {args.batch_size}, "
        f"{args.repeats} round{'s' if args.repeats > 1 else ''} (+{args.warmup} warm-up)"
    )
    print(f"   preprocessing (camkit's default for the model): {prep['describe']}")
    for r in range(rounds):
        shift = r % len(contenders)
        for contender in contenders[shift:] + contenders[:shift]:
            if contender.failure is not None:
                continue
            if contender.out is not None and contender.out.exists():
                shutil.rmtree(contender.out)
            outcome = run_timed(contender.command, env, args.timeout)
            if contender.kind == "plain":
                failure = check_plain(outcome, count)
            else:
                assert contender.out is not None
                failure = check_camkit(outcome, contender.out, count)
            if failure is not None:
                contender.failure = failure
                print(f"   {contender.label}: FAILED, left out: {failure}")
                continue
            if r >= args.warmup:
                contender.seconds.append(outcome.seconds)
                contender.rates.append(count / outcome.seconds)
            note = " (warm-up)" if r < args.warmup else ""
            rate = count / outcome.seconds
            print(
                f"   round {r + 1}/{rounds}{note}: {contender.label:<34} "
                f"{outcome.seconds:8.2f} s {rate:8.1f} img/s",
                flush=True,
            )
    return summarise(args, model, count, prep, contenders)


def summarise(
    args: argparse.Namespace,
    model: str,
    count: int,
    prep: dict[str, Any],
    contenders: list[Contender],
) -> dict[str, Any]:
    """Print the workload's table and ratios; the same as a dict (for ``--json``)."""
    goal = GPU_GOAL if args.device.startswith("cuda") else CPU_GOALS.get(model)
    print(f"\n   {'contender':<34} {'best img/s':>10} {'(median)':>10} {'best s':>8}")
    for c in contenders:
        if c.best is None:
            print(f"   {c.label:<34} {'failed':>10}")
            continue
        print(f"   {c.label:<34} {c.best:10.1f} {f'({c.median:.1f})':>10} {min(c.seconds):8.2f}")
    plain = [c for c in contenders if c.kind == "plain" and c.best is not None]
    baseline = max(plain, key=lambda c: c.best or 0.0, default=None)
    ratios: dict[str, dict[str, float]] = {}
    missed = False
    if baseline is None:
        print("   no plain run succeeded: no ratio")
    else:
        plain_median = max(c.median or 0.0 for c in plain)
        print(f"   baseline: {baseline.label} (the best plain pipeline)")
        for c in contenders:
            if c.kind != "camkit" or c.best is None or c.median is None:
                continue
            best = c.best / (baseline.best or 1.0)
            median = c.median / plain_median
            ratios[c.label] = {"best": best, "median": median}
            verdict = ""
            if goal is not None:
                met = best >= goal
                missed |= not met
                verdict = f"   goal >= {goal:.2f}x: {'met' if met else 'MISSED'}"
            print(f"   {c.label} / plain: {best:.2f}x (medians: {median:.2f}x){verdict}")
    ray1 = next((c for c in contenders if c.label.endswith("--engine ray --workers 1")), None)
    ray2 = next((c for c in contenders if c.label.endswith("--engine ray --workers 2")), None)
    if ray1 and ray2 and ray1.best and ray2.best:
        print(f"   Ray engine, 2 workers / 1 worker: {ray2.best / ray1.best:.2f}x")
    return {
        "model": model,
        "images": count,
        "device": args.device,
        "batch_size": args.batch_size,
        "preprocessing": prep["describe"],
        "goal": goal,
        "goal_missed": missed,
        "contenders": [
            {
                "label": c.label,
                "kind": c.kind,
                "command": c.command,
                "images_per_s": c.rates,
                "seconds": c.seconds,
                "failure": c.failure,
            }
            for c in contenders
        ],
        "baseline": baseline.label if baseline else None,
        "ratios": ratios,
    }


# --------------------------------------------------------------------------- start-up


def measure_startup(args: argparse.Namespace, env: dict[str, str]) -> dict[str, Any]:
    """Median wall time, in ms, of the CLI's start-up commands (whole processes)."""
    one = ensure_images(args.cache, 1) / "img_00000.jpg"
    out = args.cache / "out" / "startup"
    commands = {
        'python -c "import torch" (floor)': [sys.executable, "-c", "import torch"],
        "camkit --help": camkit_command("--help"),
        f"camkit explain one.jpg --model {STARTUP_MODEL} --device cpu": camkit_command(
            "explain",
            str(one),
            "--model",
            STARTUP_MODEL,
            "--device",
            "cpu",
            "--out",
            str(out),
            "--overwrite",
            "--no-progress",
        ),
    }
    times: dict[str, list[float]] = {label: [] for label in commands}
    for _ in range(args.startup_repeats):
        for label, command in commands.items():  # interleaved
            if out.exists():
                shutil.rmtree(out)
            outcome = run_timed(command, env, args.timeout)
            if outcome.returncode != 0:
                print(f"   {label}: FAILED (exit {outcome.returncode})\n{tail(outcome.stderr)}")
                continue
            times[label].append(outcome.seconds * 1000.0)
    print(f"\n== CLI start-up, whole processes, median of {args.startup_repeats} (ms)")
    result = {}
    for label, values in times.items():
        if values:
            result[label] = statistics.median(values)
            spread = f"({min(values):.0f}-{max(values):.0f})" if len(values) > 1 else ""
            print(f"   {label:<64} {result[label]:8.0f} ms {spread}")
        else:
            print(f"   {label:<64} failed")
    return {"median_ms": result, "runs_ms": times}


# --------------------------------------------------------------------------- main


def default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "camkit-bench" / "folder"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="camkit's folder run against a plain inference pipeline, as processes.",
        epilog="See the module docstring (or docs/benchmarks.md) for what is measured.",
    )
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS), metavar="NAME")
    parser.add_argument("--images", nargs="+", type=int, metavar="N")
    parser.add_argument("--repeats", type=int, help="timed rounds (default 3; --quick 1)")
    parser.add_argument("--warmup", type=int, default=0, help="untimed rounds first")
    parser.add_argument("--threads", type=int, help="OMP/MKL threads of every child")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    parser.add_argument("--batch-size", type=int, default=8, help="both sides (default 8)")
    parser.add_argument(
        "--plain-workers", nargs="+", type=int, default=[0, 2], metavar="N",
        help="DataLoader worker counts tried (default 0 2)",
    )  # fmt: skip
    parser.add_argument(
        "--camkit-args", action="append", metavar="ARGS",
        help='extra camkit arguments, e.g. "--workers 2"; repeat to compare several',
    )  # fmt: skip
    parser.add_argument(
        "--engine-compare", action="store_true",
        help="also camkit --engine ray --workers 1 and 2 (when ray is importable)",
    )  # fmt: skip
    parser.add_argument("--startup-repeats", type=int, help="default 5; --quick 1")
    parser.add_argument("--skip-startup", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--quick", action="store_true", help="16 images, 1 round: a smoke test")
    parser.add_argument("--cache", type=Path, default=default_cache(), metavar="DIR")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the results here")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per process")
    parser.add_argument("--check", action="store_true", help="exit 1 when a goal is missed")
    args = parser.parse_args(argv)

    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    if args.startup_repeats is None:
        args.startup_repeats = 1 if args.quick else 5
    if args.camkit_args is None:
        args.camkit_args = [""]
    if args.images is None:
        args.images = [
            QUICK_IMAGES if args.quick else DEFAULT_IMAGES.get(m, FALLBACK_IMAGES)
            for m in args.models
        ]
    elif len(args.images) == 1:
        args.images = args.images * len(args.models)
    if len(args.images) != len(args.models):
        parser.error(f"--images takes one count or one per model ({len(args.models)})")
    for name in ("repeats", "startup_repeats", "batch_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.warmup < 0 or min(args.images) < 1 or min(args.plain_workers) < 0:
        parser.error("--warmup and --plain-workers must be >= 0, --images >= 1")
    args.cache = args.cache.resolve()
    return args


def describe_machine(args: argparse.Namespace) -> dict[str, Any]:
    """The software and hardware the figures come from."""
    import torch

    info: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpus": os.cpu_count(),
        "threads": args.threads or os.environ.get("OMP_NUM_THREADS") or "torch default",
        "device": args.device,
    }
    if args.device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise SystemExit(f"--device {args.device}: torch sees no CUDA device here")
        info["gpu"] = torch.cuda.get_device_name(torch.device(args.device))
    return info


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    machine = describe_machine(args)
    print("machine: " + ", ".join(f"{key} {value}" for key, value in machine.items()))
    print(f"images cached in {args.cache}")
    env = child_env(args.threads)
    results: dict[str, Any] = {"machine": machine, "workloads": []}
    if not args.skip_startup:
        results["startup"] = measure_startup(args, env)
    if not args.skip_throughput:
        for model, count in zip(args.models, args.images, strict=True):
            results["workloads"].append(run_workload(args, model, count, env))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        print(f"\nresults written to {args.json}")
    missed = any(w["goal_missed"] for w in results["workloads"])
    failed = any(c["failure"] for w in results["workloads"] for c in w["contenders"])
    return 1 if args.check and (missed or failed) else 0


if __name__ == "__main__":
    sys.exit(main())
