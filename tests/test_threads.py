"""The model's CPU threads during a folder run (:mod:`camkit.tools.threads`)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tiny_models import SmallCNN

from camkit import Explainer
from camkit.errors import ConfigurationError, ImageSkippedWarning
from camkit.tools import threads as threads_module
from camkit.tools.batch import explain_files, find_images, iter_explain_files, plan_outputs
from camkit.tools.cli import main
from camkit.tools.threads import AUTO, ModelThreads, check_threads

CPU = torch.device("cpu")


class FakeTorch:
    """torch's thread count as a plain number: what the code under test sets, recorded."""

    def __init__(self, own: int) -> None:
        self.count = own
        self.calls: list[int] = []

    def get(self) -> int:
        return self.count

    def set(self, count: int) -> None:
        self.calls.append(count)
        self.count = count


@pytest.fixture
def fake_torch(monkeypatch: pytest.MonkeyPatch) -> FakeTorch:
    fake = FakeTorch(4)
    monkeypatch.setattr(threads_module.torch, "get_num_threads", fake.get)
    monkeypatch.setattr(threads_module.torch, "set_num_threads", fake.set)
    return fake


def run_batches(
    chooser: ModelThreads, periods: list[float], monkeypatch: pytest.MonkeyPatch
) -> list[int]:
    """Feed ``chooser`` batches that take ``periods`` seconds (the first one untimed); return
    the thread count each batch ran at."""
    clock = iter(np.cumsum([0.0, *periods]).tolist())
    monkeypatch.setattr(threads_module.time, "perf_counter", lambda: next(clock))
    seen = []
    for _ in range(len(periods) + 1):
        seen.append(threads_module.torch.get_num_threads())
        chooser.batch_done()
    return seen


@pytest.mark.parametrize("bad", [0, -1, 1.5, "two", True, "AUTO"])
def test_bad_thread_counts_are_refused(bad: object) -> None:
    with pytest.raises(ConfigurationError, match="threads must be an int >= 1, 'auto'"):
        check_threads(bad)
    assert check_threads(None) is None and check_threads(AUTO) == AUTO and check_threads(3) == 3


def test_a_given_count_holds_for_the_run_and_is_restored(fake_torch: FakeTorch) -> None:
    with ModelThreads(2, workers=1, device=CPU) as chooser:
        assert fake_torch.count == 2 and chooser.chosen == 2
    assert fake_torch.count == 4


def test_none_leaves_torch_alone(fake_torch: FakeTorch, monkeypatch: pytest.MonkeyPatch) -> None:
    with ModelThreads(None, workers=2, device=CPU) as chooser:
        run_batches(chooser, [1.0] * 10, monkeypatch)
    assert fake_torch.calls == [] and chooser.chosen is None


def test_auto_keeps_the_lower_count_when_it_is_faster(
    fake_torch: FakeTorch, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batches 1-3 at torch's 4 threads take 1 s, the ones at 4 - 1 worker = 3 threads
    0.9 s: 3 is kept for the rest of the run, and 4 restored afterwards."""
    with ModelThreads(AUTO, workers=1, device=CPU) as chooser:
        periods = [1.0, 1.0, 1.0, 1.0, 0.9, 0.9, 0.9, 1.0, 1.0]
        seen = run_batches(chooser, periods, monkeypatch)
        assert chooser.chosen == 3
    assert seen == [4, 4, 4, 4, 3, 3, 3, 3, 3, 3]
    assert fake_torch.count == 4


def test_auto_keeps_torch_s_count_unless_the_lower_one_is_clearly_faster(
    fake_torch: FakeTorch, monkeypatch: pytest.MonkeyPatch
) -> None:
    """0.97 of the time is within the margin (0.95): torch's count stays."""
    with ModelThreads(AUTO, workers=2, device=CPU) as chooser:
        seen = run_batches(chooser, [1.0, 1.0, 1.0, 1.0, 0.97, 0.97, 1.0, 1.0], monkeypatch)
        assert chooser.chosen == 4
    assert seen == [4, 4, 4, 4, 2, 2, 2, 4, 4]


def test_auto_gives_up_after_one_clearly_slower_batch(
    fake_torch: FakeTorch, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A model-bound run (ResNet-50 on two cores): the first batch at the lower count takes
    twice as long, and the trial ends there."""
    with ModelThreads(AUTO, workers=2, device=CPU) as chooser:
        seen = run_batches(chooser, [1.0, 1.1, 0.9, 2.0, 1.0, 1.0], monkeypatch)
        assert chooser.chosen == 4
    assert seen == [4, 4, 4, 4, 2, 4, 4]


def test_a_short_run_ends_the_trial_at_torch_s_count(
    fake_torch: FakeTorch, monkeypatch: pytest.MonkeyPatch
) -> None:
    with ModelThreads(AUTO, workers=1, device=CPU) as chooser:
        run_batches(chooser, [1.0, 1.0, 1.0, 0.5], monkeypatch)
        assert chooser.chosen is None and fake_torch.count == 3  # measuring
    assert fake_torch.count == 4


@pytest.mark.parametrize(
    ("device", "workers", "own"),
    [(torch.device("cuda"), 2, 4), (CPU, 0, 4), (CPU, 2, 1)],
    ids=["accelerator", "no-workers", "one-thread"],
)
def test_auto_changes_nothing_where_it_cannot_help(
    fake_torch: FakeTorch,
    monkeypatch: pytest.MonkeyPatch,
    device: torch.device,
    workers: int,
    own: int,
) -> None:
    fake_torch.count = own
    with ModelThreads(AUTO, workers=workers, device=device) as chooser:
        run_batches(chooser, [1.0, 1.0, 1.0, 1.0, 0.1, 0.1, 0.1], monkeypatch)
        assert chooser.chosen == own
    assert fake_torch.calls == []


def write_images(folder: Path, count: int) -> list[tuple[Path, Path]]:
    rng = np.random.default_rng(0)
    for i in range(count):
        pixels = rng.integers(0, 256, (20 + i % 3, 24, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:02d}.png")
    return find_images([folder])


def test_a_folder_run_sets_the_count_and_restores_torch_s_own(tmp_path: Path) -> None:
    """threads=1 for the run, real torch: the model ran on one thread, and the count is
    torch's own again afterwards, also when the run stops early."""
    jobs = plan_outputs(write_images(tmp_path, 4), tmp_path / "out")
    explainer = Explainer(SmallCNN(), device="cpu")
    seen: list[int] = []
    original = explainer.run

    def run(*args: object, **kwargs: object) -> object:
        seen.append(torch.get_num_threads())
        return original(*args, **kwargs)  # type: ignore[arg-type]

    explainer.run = run  # type: ignore[method-assign]
    own = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        explain_files(explainer, jobs, batch_size=2, save=False, threads=1, workers=1)
        assert seen == [1, 1] and torch.get_num_threads() == 2
        results = iter_explain_files(explainer, jobs, batch_size=1, save=False, threads=1)
        next(results)
        assert torch.get_num_threads() == 1
        results.close()  # stopped early
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(own)


def test_the_cli_passes_threads_and_checks_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "in").mkdir()
    write_images(tmp_path / "in", 2)
    passed: list[object] = []

    def explain(*args: object, **kwargs: object) -> list[object]:
        passed.append(kwargs["threads"])
        return []

    monkeypatch.setattr("camkit.tools.cli.explain_files", explain)
    model = ["--model", "resnet18", "--input-size", "32", "32"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ImageSkippedWarning)
        for extra in ([], ["--threads", "3"], ["--threads", "auto"]):
            out = ["--out", str(tmp_path / "out")]
            assert main(["explain", str(tmp_path / "in"), *model, *out, *extra]) == 0
    assert passed == ["auto", 3, "auto"]
    for bad in ("0", "many"):
        with pytest.raises(SystemExit) as info:
            main(["explain", str(tmp_path / "in"), *model, "--threads", bad])
        assert info.value.code == 2
    err = capsys.readouterr().err
    assert "--threads: must be 'auto' or a count >= 1, got '0'" in err
    assert "--threads: must be 'auto' or a count >= 1, got 'many'" in err
