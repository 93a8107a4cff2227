"""Benchmark 4: what secretops costs before it does anything: the CLI's start-up (a cold
Python process), a flow run's start against a standing Prefect server, and Prefect's own
overhead per task (a flow of N empty runbook steps against an empty flow)."""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

from prefect import flow

from bench.common import ROOT, Bench, median, table
from tasks.common import runbook_step


@runbook_step("Nothing")
def nothing() -> list[str]:
    """An empty runbook step: what Prefect costs around a task."""
    return []


@flow(name="bench-empty")
def empty() -> None:
    """An empty flow: what Prefect costs around a flow run."""


@flow(name="bench-steps")
def steps(count: int) -> None:
    for _ in range(count):
        nothing()


def _cold(*args: str) -> float:
    began = time.monotonic()
    subprocess.run([sys.executable, *args], cwd=ROOT, check=True, capture_output=True,
                   timeout=120)
    return time.monotonic() - began


def _timed(call: Any) -> float:
    began = time.monotonic()
    call()
    return time.monotonic() - began


def run(bench: Bench, repeats: int, tasks_per_flow: int = 50) -> dict[str, Any]:
    inventory = bench.info["inventory"]
    cold = {
        "python -c pass": [_cold("-c", "pass") for _ in range(repeats)],
        "python -c 'import prefect'": [_cold("-c", "import prefect") for _ in range(repeats)],
        "secretops --help": [_cold("-m", "secretops.cli", "--help") for _ in range(repeats)],
        "secretops inventory check": [_cold("-m", "secretops.cli", "inventory", "check",
                                            "--inventory", inventory) for _ in range(repeats)],
    }
    empty()
    steps(1)
    runs = [_timed(empty) for _ in range(max(3, repeats) * 3)]
    with_tasks = [_timed(lambda: steps(tasks_per_flow)) for _ in range(max(3, repeats))]
    direct = [_timed(lambda: [nothing.fn() for _ in range(tasks_per_flow)])
              for _ in range(repeats)]
    per_task = (median(with_tasks) - median(runs)) / tasks_per_flow
    rows = [[what, median(values)] for what, values in cold.items()]
    rows += [["flow run start to finish (empty flow, warm process)", median(runs)],
             [f"flow of {tasks_per_flow} empty runbook steps", median(with_tasks)],
             ["Prefect overhead per task", round(per_task, 4)],
             ["the same steps called without Prefect, per step",
              round(median(direct) / tasks_per_flow, 6)]]
    print(table(f"Start-up and Prefect overhead (median of {repeats})", ["what", "seconds"],
                rows))
    return {"cold": cold, "empty_flow_s": runs, "steps_flow_s": with_tasks,
            "tasks_per_flow": tasks_per_flow, "per_task_s": round(per_task, 4),
            "run_start_s": median(runs)}
