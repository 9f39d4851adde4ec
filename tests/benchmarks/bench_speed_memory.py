"""Speed and peak-memory benchmark: camkit's Grad-CAM++ against its peers.

Run from the repository root, in the development environment (``pip install -e .[dev]``)::

    python tests/benchmarks/bench_speed_memory.py

Options: ``--repeats 7`` (timed rounds), ``--warmup 2`` (untimed rounds), ``--batch 8``
(speed), ``--memory-batch 32``, ``--memory-repeats 3`` (processes per contender),
``--threads N`` (``torch.set_num_threads``; default: torch's own), ``--device cuda``
(default ``cpu``), ``--skip-memory``, ``--per-call-models mobilenet_v3_small,resnet50``,
``--per-call-batches 8,64``, ``--skip-per-call``, ``--skip-speed`` (no contest with the
peers), ``--check`` (exit 1 if a target fails; without it the script is a report and always
exits 0).

What is measured, on a random-init torchvision ResNet-50 (``torch.manual_seed(0)``) at the
``layer4`` block, with a ``(B, 3, 224, 224)`` tensor as input (no image preprocessing):

* ``plain``: ``model(x)`` under ``torch.no_grad()``, the physical limit;
* ``camkit``: ``Explainer(model, layer="layer4", device=...).explain_batch(x)``, then every
  explanation's ``cam`` (the normalised map on the original, numpy), as the peers return;
* ``gradcam``: pytorch-grad-cam's ``GradCAMPlusPlus(model=model,
  target_layers=[model.layer4])`` called with ``input_tensor=x, targets=None``;
* ``torchcam``: ``GradCAMpp(model, target_layer="layer4")``; per run ``out = model(x)``
  with grad enabled, then ``cam_extractor(out.argmax(1).tolist(), out)``, then the maps
  upsampled to the input size and moved to NumPy, as camkit and pytorch-grad-cam do.

Speed: all contenders run in this process, interleaved (each round runs every contender
once, in an order rotated by one each round); the median per contender is reported.
Each contender owns a deep copy of the model (same weights), so hooks one library leaves
on its model never run inside another contender's forward. camkit's ``Explainer`` and
pytorch-grad-cam's extractor are created once, before timing; torchcam's extractor is
created before each of its runs and its hooks removed after it (creation is not timed:
it builds a name-to-module dict and registers two hooks, well under a millisecond; its
median is printed).

Cost per call: for each model of ``--per-call-models`` (random-init torchvision models,
the target layer camkit's own choice) and each batch size of ``--per-call-batches``, the
same interleaved rounds time ``plain`` (``model(x)`` under ``torch.no_grad()``), ``call``
(``explain_batch(x)`` alone: the results stay on the device, placed lazily) and ``cams``
(``explain_batch(x)`` and then every explanation's ``cam``), on ``(B, 3, 224, 224)`` tensors;
each is reported with its ratio to ``plain``. A fast model at batch 8 is where the fixed
cost of a call (Python around the capture, device synchronisations, building the results)
shows; the goal on a GPU is ``call`` <= 1.2x ``plain`` at batch 8. On CUDA, the
synchronisations of one call are counted too (``torch.cuda.set_sync_debug_mode``).

Memory: fresh processes (this script's hidden ``_memory`` subcommand), by default three
per contender, interleaved, median reported (the allocator makes one figure vary by
about 10 %). Each builds the model, runs the contender once at batch 1 to load lazy
libraries and kernels, then measures the peak increase over that baseline during one
run at the memory batch size: on the CPU the resident set size (Linux ``VmHWM`` reset
through ``/proc/self/clear_refs``; elsewhere a sampling thread plus ``ru_maxrss``), on
CUDA ``torch.cuda.max_memory_allocated``.
"""

from __future__ import annotations

import argparse
import copy
import importlib.metadata
import json
import platform
import resource
import statistics
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

LAYER = "layer4"
MIB = 1024.0 * 1024.0

# Targets from the issue.
TARGET_TIME_VS_PLAIN = 1.10  # camkit time <= 1.10x plain forward
TARGET_SPEEDUP_VS_GRADCAM = 2.5  # pytorch-grad-cam time >= 2.5x camkit's
TARGET_SPEEDUP_VS_TORCHCAM = 1.0  # torchcam time >= camkit's
TARGET_MEMORY_VS_PLAIN = 1.3  # camkit extra peak memory <= 1.3x plain forward's
TARGET_CALL_VS_PLAIN = 1.2  # explain_batch <= 1.2x plain forward at batch 8 (on a GPU)
PER_CALL_SIZE = 224


# --------------------------------------------------------------------------- contenders


class Runner:
    """One contender: ``prepare`` and ``finish`` are untimed, ``run`` is timed."""

    def prepare(self) -> None:
        """Per-run setup, outside the timed region."""

    def run(self, x: Tensor) -> object:
        """Explain (or just classify) the batch ``x``."""
        raise NotImplementedError

    def finish(self) -> None:
        """Per-run teardown, outside the timed region."""


class PlainForward(Runner):
    def __init__(self, model: nn.Module, device: torch.device) -> None:
        self.model = model.eval()

    def run(self, x: Tensor) -> object:
        with torch.no_grad():
            return self.model(x)


class Camkit(Runner):
    def __init__(self, model: nn.Module, device: torch.device) -> None:
        from camkit import Explainer

        self.explainer = Explainer(model, layer=LAYER, device=device)

    def run(self, x: Tensor) -> object:
        # the maps on the originals as numpy arrays, what the peers return (results are
        # placed lazily since Engine v2, so asking for them is part of the timed work)
        return [explanation.cam for explanation in self.explainer.explain_batch(x)]


class PytorchGradCam(Runner):
    def __init__(self, model: nn.Module, device: torch.device) -> None:
        from pytorch_grad_cam import GradCAMPlusPlus

        model.eval()
        layer = model.get_submodule(LAYER)
        self.cam = GradCAMPlusPlus(model=model, target_layers=[layer])

    def run(self, x: Tensor) -> object:
        return self.cam(input_tensor=x, targets=None)


class Torchcam(Runner):
    def __init__(self, model: nn.Module, device: torch.device) -> None:
        self.model = model.eval()
        self.extractor: Any = None
        self.creation_seconds: list[float] = []

    def prepare(self) -> None:
        from torchcam.methods import GradCAMpp

        start = time.perf_counter()
        self.extractor = GradCAMpp(self.model, target_layer=LAYER)
        self.creation_seconds.append(time.perf_counter() - start)

    def run(self, x: Tensor) -> object:
        with torch.enable_grad():
            out = self.model(x)
            (cams,) = self.extractor(out.argmax(1).tolist(), out)
        maps = F.interpolate(cams.unsqueeze(1), size=x.shape[-2:], mode="bilinear")
        return maps.squeeze(1).cpu().numpy()

    def finish(self) -> None:
        if self.extractor is not None:
            self.extractor.remove_hooks()
            self.extractor.reset_hooks()
            self.extractor = None


@dataclass(frozen=True)
class Contender:
    key: str
    label: str
    make: Callable[[nn.Module, torch.device], Runner]
    distribution: str | None  # the package that must be installed, if any


CONTENDERS = (
    Contender("plain", "plain forward (no_grad)", PlainForward, None),
    Contender("camkit", "camkit Grad-CAM++", Camkit, None),
    Contender("gradcam", "pytorch-grad-cam GradCAMPlusPlus", PytorchGradCam, "grad-cam"),
    Contender("torchcam", "torchcam GradCAMpp", Torchcam, "torchcam"),
)
BY_KEY = {contender.key: contender for contender in CONTENDERS}


def version_of(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def available(contender: Contender) -> bool:
    return contender.distribution is None or version_of(contender.distribution) is not None


def label_of(contender: Contender) -> str:
    if contender.distribution is None:
        return contender.label
    return f"{contender.label} {version_of(contender.distribution)}"


# --------------------------------------------------------------------------- helpers


def build_model(device: torch.device, arch: str = "resnet50") -> nn.Module:
    import torchvision

    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model: nn.Module = getattr(torchvision.models, arch)(weights=None)
    return model.eval().to(device)


def make_input(batch: int, device: torch.device, size: int = 224) -> Tensor:
    generator = torch.Generator().manual_seed(1)
    return torch.randn(batch, 3, size, size, generator=generator).to(device)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_run(runner: Runner, x: Tensor, device: torch.device) -> float:
    runner.prepare()
    try:
        synchronize(device)
        start = time.perf_counter()
        runner.run(x)
        synchronize(device)
        return time.perf_counter() - start
    finally:
        runner.finish()


def resolve_device(name: str) -> torch.device:
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--device {name}: CUDA is not available on this machine")
    return device


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "FAIL")


# --------------------------------------------------------------------------- speed


def measure_speed(
    contenders: list[Contender], batch: int, repeats: int, warmup: int, device: torch.device
) -> dict[str, list[float]]:
    """Interleaved timing: round ``r`` runs every contender once, rotated by ``r``."""
    base = build_model(device)
    runners = {c.key: c.make(copy.deepcopy(base), device) for c in contenders}
    del base
    x = make_input(batch, device)
    times: dict[str, list[float]] = {c.key: [] for c in contenders}
    keys = [c.key for c in contenders]
    took: dict[str, float] = {}
    for round_index in range(warmup + repeats):
        shift = round_index % len(keys)
        for key in keys[shift:] + keys[:shift]:
            seconds = timed_run(runners[key], x, device)
            if round_index >= warmup:
                times[key].append(seconds)
            took[key] = seconds
        phase = "warm-up" if round_index < warmup else "timed"
        figures = "  ".join(f"{key} {took[key]:.3f}" for key in keys)
        print(f"  round {round_index + 1}/{warmup + repeats} ({phase}): {figures} s", flush=True)
    torchcam = runners.get("torchcam")
    if isinstance(torchcam, Torchcam) and torchcam.creation_seconds:
        creation = statistics.median(torchcam.creation_seconds)
        print(f"  torchcam extractor creation (untimed): median {creation * 1e3:.3f} ms")
    return times


# --------------------------------------------------------------------------- cost per call


class CamkitCall(Runner):
    """``explain_batch`` with camkit's own layer (resolved before timing); with ``cams``,
    every explanation's map on the original is then asked for too."""

    def __init__(self, model: nn.Module, device: torch.device, cams: bool) -> None:
        from camkit import Explainer

        self.explainer = Explainer(model, device=device)
        self.explainer.resolve_layer()
        self.cams = cams

    def run(self, x: Tensor) -> object:
        results = self.explainer.explain_batch(x)
        return [explanation.cam for explanation in results] if self.cams else results


PER_CALL_KEYS = ("plain", "call", "cams")


def count_synchronisations(runner: Runner, x: Tensor) -> int:
    """The CUDA synchronisations of one run, as ``torch.cuda.set_sync_debug_mode`` reports
    them (one warning each)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            runner.run(x)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(warning.message) for warning in caught)


def measure_per_call(
    arch: str, batch: int, repeats: int, warmup: int, device: torch.device
) -> dict[str, list[float]]:
    """Interleaved timing of ``plain``, ``call`` and ``cams`` (see the module docstring)
    for one model and batch size."""
    model = build_model(device, arch)
    runners: dict[str, Runner] = {
        "plain": PlainForward(model, device),
        "call": CamkitCall(model, device, cams=False),
        "cams": CamkitCall(model, device, cams=True),
    }
    x = make_input(batch, device, PER_CALL_SIZE)
    times: dict[str, list[float]] = {key: [] for key in PER_CALL_KEYS}
    for round_index in range(warmup + repeats):
        shift = round_index % len(PER_CALL_KEYS)
        for key in PER_CALL_KEYS[shift:] + PER_CALL_KEYS[:shift]:
            seconds = timed_run(runners[key], x, device)
            if round_index >= warmup:
                times[key].append(seconds)
    if device.type == "cuda":
        syncs = {key: count_synchronisations(runners[key], x) for key in ("call", "cams")}
        print(
            f"  {arch} batch {batch}: CUDA synchronisations per call: explain_batch "
            f"{syncs['call']}, with the cams {syncs['cams']}"
        )
    return times


def report_per_call(
    models: list[str], batches: list[int], repeats: int, warmup: int, device: torch.device
) -> list[tuple[str, str, bool | None]]:
    """Print the cost-per-call table; return the target checks (batch 8 rows)."""
    print(
        f"\nCost per call: explain_batch against the plain forward, 3x{PER_CALL_SIZE}x"
        f"{PER_CALL_SIZE} tensors, camkit's layer, {repeats} interleaved rounds after "
        f"{warmup} warm-up rounds (medians; x plain: per-round ratios' median)"
    )
    print(
        f"{'model':<20} {'batch':>5} {'plain ms':>9} {'call ms':>9} {'x plain':>8} "
        f"{'cams ms':>9} {'x plain':>8} {'call-plain ms/img':>18}"
    )
    checks: list[tuple[str, str, bool | None]] = []
    for arch in models:
        for batch in batches:
            times = measure_per_call(arch, batch, repeats, warmup, device)
            med = {key: statistics.median(values) for key, values in times.items()}

            def paired(key: str, times: dict[str, list[float]] = times) -> float:
                pairs = zip(times[key], times["plain"], strict=True)
                return statistics.median(a / b for a, b in pairs)

            extra = (med["call"] - med["plain"]) / batch * 1e3
            print(
                f"{arch:<20} {batch:>5} {med['plain'] * 1e3:>9.2f} {med['call'] * 1e3:>9.2f} "
                f"{paired('call'):>7.2f}x {med['cams'] * 1e3:>9.2f} {paired('cams'):>7.2f}x "
                f"{extra:>18.3f}",
                flush=True,
            )
            if batch == 8:
                ratio = med["call"] / med["plain"]
                checks.append(
                    (
                        f"{arch} explain_batch <= {TARGET_CALL_VS_PLAIN:.1f}x plain, batch 8"
                        + ("" if device.type == "cuda" else " (GPU goal)"),
                        f"{ratio:.2f}x",
                        ratio <= TARGET_CALL_VS_PLAIN if device.type == "cuda" else None,
                    )
                )
    return checks


# --------------------------------------------------------------------------- memory


def _rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize()


def _hwm_bytes() -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise OSError("no VmHWM in /proc/self/status")


def _reset_hwm() -> bool:
    """Reset the kernel's peak-RSS mark to the current RSS (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return _hwm_bytes() <= _rss_bytes() + 64 * 1024
    except OSError:
        return False


def _maxrss_bytes() -> int:
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss if sys.platform == "darwin" else maxrss * 1024


class PeakRss:
    """Peak resident set size while the ``with`` block runs, in bytes over its start."""

    def __init__(self) -> None:
        self.extra = 0
        self.how = ""
        self._stop = threading.Event()
        self._sampled = 0

    def _sample(self) -> None:
        while not self._stop.wait(0.0005):
            self._sampled = max(self._sampled, _rss_bytes())

    def __enter__(self) -> PeakRss:
        self._procfs = Path("/proc/self/statm").exists()
        self._exact = self._procfs and _reset_hwm()
        self.baseline = _rss_bytes() if self._procfs else _maxrss_bytes()
        self._maxrss_before = _maxrss_bytes()
        self._sampled = self.baseline
        self._thread = None
        if not self._exact and self._procfs:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
        if self._exact:
            peak, self.how = _hwm_bytes(), "VmHWM (exact)"
        else:
            maxrss = _maxrss_bytes()
            grew = maxrss if maxrss > self._maxrss_before else 0
            peak, self.how = max(self._sampled, grew), "sampled RSS + ru_maxrss"
        self.extra = max(0, peak - self.baseline)


def memory_child(key: str, batch: int, device_name: str, threads: int | None) -> None:
    """The hidden ``_memory`` subcommand: print one JSON line with the extra peak bytes."""
    if threads is not None:
        torch.set_num_threads(threads)
    device = resolve_device(device_name)
    model = build_model(device)
    runner = BY_KEY[key].make(model, device)
    x = make_input(batch, device)
    timed_run(runner, x[:1], device)  # load lazy libraries and kernels
    runner.prepare()
    try:
        if device.type == "cuda":
            synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
            baseline = torch.cuda.memory_allocated(device)
            runner.run(x)
            synchronize(device)
            extra, how = torch.cuda.max_memory_allocated(device) - baseline, "cuda allocator"
        else:
            with PeakRss() as peak:
                runner.run(x)
            extra, how = peak.extra, peak.how
    finally:
        runner.finish()
    print(json.dumps({"key": key, "extra_bytes": extra, "how": how}))


@dataclass(frozen=True)
class MemoryResult:
    samples_mib: list[float]
    how: str

    @property
    def median_mib(self) -> float:
        return statistics.median(self.samples_mib)


def memory_process(
    key: str, batch: int, device: torch.device, threads: int | None
) -> dict[str, Any]:
    """Run the ``_memory`` subcommand for ``key`` in a fresh interpreter."""
    command = [sys.executable, str(Path(__file__).resolve()), "_memory", key]
    command += ["--batch", str(batch), "--device", str(device)]
    if threads is not None:
        command += ["--threads", str(threads)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"memory process for {key} failed ({done.returncode}):\n{done.stderr}")
    record: dict[str, Any] = json.loads(lines[-1])
    return record


def measure_memory(
    contenders: list[Contender],
    batch: int,
    repeats: int,
    device: torch.device,
    threads: int | None,
) -> dict[str, MemoryResult]:
    """``repeats`` fresh processes per contender, interleaved; the median is reported."""
    samples: dict[str, list[float]] = {c.key: [] for c in contenders}
    how: dict[str, str] = {}
    failed: set[str] = set()
    for round_index in range(repeats):
        figures = []
        for contender in contenders:
            if contender.key in failed:
                continue
            try:
                record = memory_process(contender.key, batch, device, threads)
            except RuntimeError as error:
                print(f"  {str(error)[-2000:]}")
                failed.add(contender.key)
                continue
            samples[contender.key].append(record["extra_bytes"] / MIB)
            how[contender.key] = record["how"]
            figures.append(f"{contender.key} {samples[contender.key][-1]:.0f}")
        print(f"  process round {round_index + 1}/{repeats}: {'  '.join(figures)} MiB", flush=True)
    return {key: MemoryResult(values, how[key]) for key, values in samples.items() if values}


# --------------------------------------------------------------------------- report


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_memory"]:
        child = argparse.ArgumentParser(prog="bench_speed_memory.py _memory")
        child.add_argument("key", choices=sorted(BY_KEY))
        child.add_argument("--batch", type=int, required=True)
        child.add_argument("--device", default="cpu")
        child.add_argument("--threads", type=int, default=None)
        opts = child.parse_args(argv[1:])
        memory_child(opts.key, opts.batch, opts.device, opts.threads)
        return 0

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed rounds (default 7)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed rounds (default 2)")
    parser.add_argument("--batch", type=int, default=8, help="speed batch size (default 8)")
    parser.add_argument("--memory-batch", type=int, default=32, help="(default 32)")
    parser.add_argument(
        "--memory-repeats", type=int, default=3, help="processes per contender (default 3)"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N")
    parser.add_argument("--skip-memory", action="store_true", help="speed only")
    parser.add_argument(
        "--per-call-models",
        default="mobilenet_v3_small,resnet50",
        help="torchvision models of the cost-per-call table (default mobilenet_v3_small,resnet50)",
    )
    parser.add_argument(
        "--per-call-batches", default="8,64", help="batch sizes of that table (default 8,64)"
    )
    parser.add_argument("--skip-per-call", action="store_true", help="no cost-per-call table")
    parser.add_argument(
        "--skip-speed", action="store_true", help="no ResNet-50 contest with the peers"
    )
    parser.add_argument("--check", action="store_true", help="exit 1 if a target fails")
    opts = parser.parse_args(argv)

    if opts.threads is not None:
        torch.set_num_threads(opts.threads)
    device = resolve_device(opts.device)
    contenders = [c for c in CONTENDERS if available(c)]
    for missing in (c for c in CONTENDERS if not available(c)):
        print(f"note: {missing.distribution} is not installed; {missing.key} is skipped")

    where = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    print(
        f"torch {torch.__version__}, python {platform.python_version()}, device {device} "
        f"({where or platform.machine()}), torch threads {torch.get_num_threads()}"
    )
    times: dict[str, list[float]] = {}
    if not opts.skip_speed:
        print(
            f"\nSpeed: ResNet-50 (random init), {LAYER}, batch {opts.batch}, 3x224x224, "
            f"{opts.repeats} interleaved rounds after {opts.warmup} warm-up rounds"
        )
        times = measure_speed(contenders, opts.batch, opts.repeats, opts.warmup, device)
    median = {key: statistics.median(values) for key, values in times.items()}

    def ratio(top: str, bottom: str) -> tuple[float | None, float | None]:
        """The ratio of the medians and the median of the per-round ratios."""
        if top not in times or bottom not in times:
            return None, None
        paired = [a / b for a, b in zip(times[top], times[bottom], strict=True)]
        return median[top] / median[bottom], statistics.median(paired)

    def show(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.2f}x"

    ratio_plain, paired_plain = ratio("camkit", "plain")
    ratio_gradcam, paired_gradcam = ratio("gradcam", "camkit")
    ratio_torchcam, paired_torchcam = ratio("torchcam", "camkit")
    if times:
        print(f"\n{'contender':<40} {'median s':>9} {'min s':>8} {'max s':>8}")
        for contender in contenders:
            values = times[contender.key]
            print(
                f"{label_of(contender):<40} {median[contender.key]:>9.3f} "
                f"{min(values):>8.3f} {max(values):>8.3f}"
            )
        print(f"\n{'ratio':<40} {'medians':>9} {'per-round':>10}")
        print(f"{'camkit / plain forward':<40} {show(ratio_plain):>9} {show(paired_plain):>10}")
        print(
            f"{'pytorch-grad-cam / camkit':<40} {show(ratio_gradcam):>9} {show(paired_gradcam):>10}"
        )
        print(f"{'torchcam / camkit':<40} {show(ratio_torchcam):>9} {show(paired_torchcam):>10}")
        print(
            "('medians': ratio of the median times, used for the targets; 'per-round': median "
            "of the ratios within each round, less sensitive to load that comes and goes)"
        )

    per_call_checks: list[tuple[str, str, bool | None]] = []
    if not opts.skip_per_call:
        per_call_checks = report_per_call(
            [name for name in opts.per_call_models.split(",") if name],
            [int(batch) for batch in opts.per_call_batches.split(",") if batch],
            opts.repeats,
            opts.warmup,
            device,
        )

    memory: dict[str, MemoryResult] = {}
    if not opts.skip_memory:
        kind = "CUDA allocator" if device.type == "cuda" else "RSS"
        print(
            f"\nPeak memory ({kind}) over the post-model baseline, batch {opts.memory_batch}, "
            f"median of {opts.memory_repeats} fresh processes per contender"
        )
        memory = measure_memory(
            contenders, opts.memory_batch, opts.memory_repeats, device, opts.threads
        )
        plain_mib = memory["plain"].median_mib if "plain" in memory else 0.0
        print(f"\n{'contender':<40} {'extra MiB':>9} {'x plain':>8} {'range MiB':>12}")
        for contender in contenders:
            if contender.key in memory:
                result = memory[contender.key]
                times_plain = f"{result.median_mib / plain_mib:.2f}x" if plain_mib > 0 else "n/a"
                spread = f"{min(result.samples_mib):.0f}-{max(result.samples_mib):.0f}"
                print(
                    f"{label_of(contender):<40} {result.median_mib:>9.0f} {times_plain:>8} "
                    f"{spread:>12}   [{result.how}]"
                )
    mem_ratio = None
    if "camkit" in memory and "plain" in memory and memory["plain"].median_mib > 0:
        mem_ratio = memory["camkit"].median_mib / memory["plain"].median_mib

    checks = [
        (
            f"camkit time <= {TARGET_TIME_VS_PLAIN:.2f}x plain forward",
            show(ratio_plain),
            None if ratio_plain is None else ratio_plain <= TARGET_TIME_VS_PLAIN,
        ),
        (
            f"camkit >= {TARGET_SPEEDUP_VS_GRADCAM:.1f}x faster than pytorch-grad-cam",
            show(ratio_gradcam),
            None if ratio_gradcam is None else ratio_gradcam >= TARGET_SPEEDUP_VS_GRADCAM,
        ),
        (
            "camkit not slower than torchcam",
            show(ratio_torchcam),
            None if ratio_torchcam is None else ratio_torchcam >= TARGET_SPEEDUP_VS_TORCHCAM,
        ),
        (
            f"camkit extra peak memory <= {TARGET_MEMORY_VS_PLAIN:.1f}x plain forward's",
            show(mem_ratio),
            None if mem_ratio is None else mem_ratio <= TARGET_MEMORY_VS_PLAIN,
        ),
        *per_call_checks,
    ]
    print("\nTargets:")
    for text, figure, ok in checks:
        print(f"  {text:<66} {figure:>7}  {verdict(ok)}")
    failed = any(ok is False for _, _, ok in checks)
    return 1 if opts.check and failed else 0


if __name__ == "__main__":
    sys.exit(main())
