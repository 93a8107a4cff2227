"""Benchmark 4: what secretops costs before it does anything: the CLI's start-up (a cold
Python process), a flow run's start against a standing Prefect server, and Prefect's own
overhead per task (a flow of N empty runbook steps against an empty flow). The flows are
async, as secretops' are; an empty sync flow shows what that saves: Prefect 3.9's sync engine
joins its heartbeat thread, which sleeps in 1 s steps, before the call returns."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from typing import Any

from prefect import flow

from bench.common import ROOT, Bench, median, table
from flows.common import run_in_process
from tasks.common import one_prefect_client, runbook_step


@runbook_step("Nothing")
def nothing() -> list[str]:
    """An empty runbook step: what Prefect costs around a task."""
    return []


BODY_STARTED: list[float] = []


@flow(name="bench-empty")
async def empty() -> None:
    """An empty flow: what Prefect costs around a flow run."""
    BODY_STARTED.append(time.time())


@flow(name="bench-empty-sync")
def empty_sync() -> None:
    """The same, as a sync flow."""
    BODY_STARTED.append(time.time())


@flow(name="bench-steps")
async def steps(count: int) -> None:
    with one_prefect_client():
        for _ in range(count):
            nothing()


def phases(call: Any) -> dict[str, float]:
    """Seconds from the call until the flow's body started (``start``, empty flow only),
    until Prefect recorded the run Completed (``completed``) and until the call returned
    (``returned``)."""
    BODY_STARTED.clear()
    began, wall = time.monotonic(), time.time()
    state = call(return_state=True)
    if asyncio.iscoroutine(state):
        state = run_in_process(state)
    returned = time.monotonic() - began
    if not state.is_completed():
        raise RuntimeError(f"benchmark flow did not complete: {state.message}")
    phases = {"completed": state.timestamp.timestamp() - wall, "returned": returned}
    if BODY_STARTED:
        phases["start"] = BODY_STARTED[0] - wall
    return phases


def _cold(*args: str) -> float:
    began = time.monotonic()
    subprocess.run([sys.executable, *args], cwd=ROOT, check=True, capture_output=True,
                   timeout=120)
    return time.monotonic() - began


def run(bench: Bench, repeats: int, tasks_per_flow: int = 50) -> dict[str, Any]:
    inventory = bench.info["inventory"]
    cold = {
        "python -c pass": [_cold("-c", "pass") for _ in range(repeats)],
        "python -c 'import prefect'": [_cold("-c", "import prefect") for _ in range(repeats)],
        "secretops --help": [_cold("-m", "cli", "--help") for _ in range(repeats)],
        "secretops inventory check": [_cold("-m", "cli", "inventory", "check",
                                            "--inventory", inventory) for _ in range(repeats)],
    }
    run_in_process(empty())
    run_in_process(steps(1))
    runs = [phases(empty) for _ in range(max(3, repeats) * 3)]
    sync_runs = [phases(empty_sync) for _ in range(max(3, repeats))]
    with_tasks = [phases(lambda **kw: steps(tasks_per_flow, **kw))
                  for _ in range(max(3, repeats))]
    began = time.monotonic()
    for _ in range(repeats):
        for _ in range(tasks_per_flow):
            nothing.fn()
    direct = (time.monotonic() - began) / repeats
    start = median([r["start"] for r in runs])
    completed = median([r["completed"] for r in runs])
    returned = median([r["returned"] for r in runs])
    per_task = (median([r["completed"] for r in with_tasks]) - completed) / tasks_per_flow
    rows = [[what, median(values)] for what, values in cold.items()]
    rows += [["empty flow, warm process: call to body start (run start)", start],
             ["empty flow: call to Completed", completed],
             ["empty flow: call returns", returned],
             ["empty sync flow: call to Completed",
              median([r["completed"] for r in sync_runs])],
             ["empty sync flow: call returns (after joining the heartbeat thread)",
              median([r["returned"] for r in sync_runs])],
             [f"flow of {tasks_per_flow} empty runbook steps: call to Completed",
              median([r["completed"] for r in with_tasks])],
             ["Prefect overhead per task", round(per_task, 4)],
             ["the same steps called without Prefect, per step",
              round(direct / tasks_per_flow, 6)]]
    print(table(f"Start-up and Prefect overhead (median of {repeats})", ["what", "seconds"],
                rows))
    return {"cold": cold, "empty_flow_s": runs, "empty_sync_flow_s": sync_runs,
            "steps_flow_s": with_tasks,
            "tasks_per_flow": tasks_per_flow, "per_task_s": round(per_task, 4),
            "run_start_s": start, "run_completed_s": completed, "run_returned_s": returned}
