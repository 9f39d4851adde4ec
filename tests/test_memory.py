"""The command's allocator settings (:mod:`camkit.tools.memory`)."""

from __future__ import annotations

import platform
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from camkit.tools import cli, memory
from camkit.tools.memory import MMAP_THRESHOLD, TRIM_THRESHOLD, keep_freed_memory


class FakeLibc:
    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

        def mallopt(option: int, value: int) -> int:
            self.calls.append((option, value))
            return 1

        self.mallopt = mallopt


@pytest.fixture
def fake_glibc(monkeypatch: pytest.MonkeyPatch) -> FakeLibc:
    libc = FakeLibc()
    monkeypatch.setattr(memory.ctypes, "CDLL", lambda name: libc)
    monkeypatch.setattr(memory.platform, "system", lambda: "Linux")
    monkeypatch.setattr(memory.platform, "libc_ver", lambda: ("glibc", "2.36"))
    for name in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES"):
        monkeypatch.delenv(name, raising=False)
    return libc


def test_glibc_thresholds_are_raised(fake_glibc: FakeLibc) -> None:
    assert keep_freed_memory() is True
    assert fake_glibc.calls == [(-3, 32 << 20), (-1, 256 << 20)]
    assert (MMAP_THRESHOLD, TRIM_THRESHOLD) == (32 << 20, 256 << 20)


@pytest.mark.parametrize(
    "name", ["MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES"]
)
def test_the_users_own_malloc_settings_stand(
    fake_glibc: FakeLibc, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setenv(name, "1000000")
    assert keep_freed_memory() is False and fake_glibc.calls == []


def test_other_c_libraries_are_left_alone(
    fake_glibc: FakeLibc, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(memory.platform, "libc_ver", lambda: ("", ""))
    assert keep_freed_memory() is False
    monkeypatch.setattr(memory.platform, "libc_ver", lambda: ("glibc", "2.36"))
    monkeypatch.setattr(memory.platform, "system", lambda: "Darwin")
    assert keep_freed_memory() is False and fake_glibc.calls == []


def test_a_missing_libc_is_no_error(fake_glibc: FakeLibc, monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str) -> object:
        raise OSError(f"{name}: cannot open shared object file")

    monkeypatch.setattr(memory.ctypes, "CDLL", missing)
    assert keep_freed_memory() is False


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="needs glibc")
def test_the_real_mallopt_accepts_the_values(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES"):
        monkeypatch.delenv(name, raising=False)
    assert keep_freed_memory() is True


def test_camkit_explain_sets_them_for_its_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")
    called: list[bool] = []
    monkeypatch.setattr(cli, "keep_freed_memory", lambda: called.append(True) or True)
    monkeypatch.setattr(cli, "explain_files", lambda *args, **kwargs: [])
    model = ["--model", "resnet18", "--input-size", "32", "32"]
    assert cli.main(["explain", str(tmp_path / "a.png"), *model, "--out", str(tmp_path / "o")]) == 0
    assert called == [True]
