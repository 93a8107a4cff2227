"""The gates that keep main releasable: lint, types, import layers, and a fast `--help`."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_ruff_is_clean() -> None:
    result = run(sys.executable, "-m", "ruff", "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_on_the_library_flows_tasks_and_sandbox() -> None:
    result = run(sys.executable, "-m", "mypy")  # the packages pyproject.toml names
    assert result.returncode == 0, result.stdout + result.stderr


def test_import_layers_hold() -> None:
    result = run("lint-imports", "--no-cache")
    assert result.returncode == 0, result.stdout + result.stderr


def test_help_lists_every_command_quickly() -> None:
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        result = run(sys.executable, "-m", "cli", "--help")
        best = min(best, time.perf_counter() - started)
        assert result.returncode == 0, result.stderr
    for command in ("quickstart", "sandbox", "inventory", "dev", "rotate", "scan"):
        assert command in result.stdout
    assert best < 0.3, f"--help took {best:.3f} s"
