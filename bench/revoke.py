"""Benchmark 2: time to revoke a leaked key, from the command to the provider refusing it,
against the floor of one bare revoke call made directly to the admin API.

A watcher thread sends ``GET /v1/models`` with the leaked key every 10 ms and notes the first
refusal; the clock starts when the command starts. ``secretops leak openai --env staging``
(the CLI, a cold Python process) and the ``respond-to-leak`` flow called in a warm process
are both measured; the rest of the leak response (replace everywhere, audit, post-mortem)
goes on after the key is refused and is timed separately.

Each is held to its own budget, 2x the floor plus Prefect's own run start, measured the same
way: the warm flow against the bare call from this process and the run start of an empty flow
in it while the watcher polls, as it does during the measured response (the quiet figure of
the overhead benchmark is printed beside it);
the cold CLI against the bare call from a new process (``curl -X DELETE``, as the runbook has
it) and the start of a flow run in a new Python process (Prefect's import included)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from bench.common import ROOT, Bench, median, table

ENV = "staging"


def _admin(bench: Bench) -> tuple[str, dict[str, str]]:
    key = (Path(bench.info["dir"]) / "credentials" / "openai-admin-key").read_text().strip()
    base = f"{bench.info['providers']['openai']}/v1/organization/projects/proj_intelliprompt"
    return base, {"Authorization": f"Bearer {key}"}


class RefusalWatcher(threading.Thread):
    """Polls the provider with ``value`` until it is refused; ``refused_at`` is monotonic."""

    def __init__(self, models_url: str, value: str) -> None:
        super().__init__(daemon=True)
        self.url, self.value = models_url, value
        self.refused_at: float | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=5) as client:
            while not self.stop.is_set():
                status = client.get(self.url, headers={"Authorization": f"Bearer {self.value}"})
                if status.status_code in (401, 403):
                    self.refused_at = time.monotonic()
                    return
                time.sleep(0.01)


def floor(bench: Bench) -> float:
    """Mint a key, then time one DELETE from this process and the first refusal."""
    base, headers = _admin(bench)
    value, key_id = _mint(bench)
    began = time.monotonic()
    httpx.delete(f"{base}/api_keys/{key_id}", headers=headers).raise_for_status()
    _refused(bench, value)
    return time.monotonic() - began


def _mint(bench: Bench) -> tuple[str, str]:
    """A new key at the provider: its value and its id."""
    base, headers = _admin(bench)
    created = httpx.post(f"{base}/service_accounts", headers=headers,
                         json={"name": "bench-floor"}).json()
    return created["api_key"]["value"], created["api_key"]["id"]


def _refused(bench: Bench, value: str) -> None:
    models = f"{bench.info['providers']['openai']}/v1/models"
    while httpx.get(models, headers={"Authorization": f"Bearer {value}"}).status_code == 200:
        time.sleep(0.005)


def cold_floor(bench: Bench) -> float:
    """The bare call from a new process, as a responder types it: ``curl -X DELETE`` (the
    admin key read from a header file, as the by-hand baseline does), to the first refusal."""
    base, headers = _admin(bench)
    header = Path(bench.info["dir"]) / "bench-admin-header"
    header.touch(mode=0o600)
    header.write_text(f"Authorization: {headers['Authorization']}\n")
    value, key_id = _mint(bench)
    began = time.monotonic()
    subprocess.run(["curl", "-sS", "--fail", "-X", "DELETE", "-H", f"@{header}",
                    f"{base}/api_keys/{key_id}"], check=True, capture_output=True, timeout=30)
    _refused(bench, value)
    return time.monotonic() - began


COLD_FLOW = """
import asyncio, time
from prefect import flow

@flow(name="bench-cold-start")
async def started() -> None:
    print(time.time(), flush=True)

asyncio.run(started())
"""


def cold_run_start(bench: Bench) -> float:
    """From a new Python process's start to the body of a flow run in it: Prefect's import
    and its run start, what a command that runs a flow pays before its first step."""
    began = time.time()
    out = subprocess.run([sys.executable, "-c", COLD_FLOW], cwd=ROOT, check=True,
                         capture_output=True, text=True, timeout=120).stdout
    return float(out.split()[0]) - began


def run_start_while_watched(bench: Bench, repeats: int) -> list[float]:
    """The run start of an empty flow in this process (call to body) while a watcher polls a
    live key every 10 ms, as during a measured response."""
    from bench.overhead import empty, phases

    value, key_id = _mint(bench)
    watcher = RefusalWatcher(f"{bench.info['providers']['openai']}/v1/models", value)
    watcher.start()
    try:
        return [phases(empty)["start"] for _ in range(max(5, repeats))]
    finally:
        watcher.stop.set()
        watcher.join(5)
        base, headers = _admin(bench)
        httpx.delete(f"{base}/api_keys/{key_id}", headers=headers).raise_for_status()


def _leaked(bench: Bench) -> str:
    from secretops.inventory import load_inventory
    from secretops.models import Stage
    from secretops.wiring import Wiring

    store = Wiring(load_inventory(bench.info["inventory"])).stores("openai", ENV)[0]
    credential = store.read(Stage.current)
    assert credential is not None
    return credential.secret.reveal()


def _cli(bench: Bench) -> None:
    subprocess.run([sys.executable, "-m", "cli", "leak", "openai", "--env", ENV,
                    "--drill", "--inventory", bench.info["inventory"]],
                   cwd=ROOT, check=True, capture_output=True, timeout=300)


def _flow(bench: Bench) -> None:
    from flows.common import run_in_process
    from flows.respond_to_leak import respond_to_leak

    run_in_process(respond_to_leak(secret="openai", environments=[ENV], drill=True,
                                   inventory=bench.info["inventory"]))


def leak(bench: Bench, command: Callable[[Bench], None]) -> dict[str, float]:
    watcher = RefusalWatcher(f"{bench.info['providers']['openai']}/v1/models", _leaked(bench))
    began = time.monotonic()
    watcher.start()
    command(bench)
    done = time.monotonic()
    watcher.stop.set()
    watcher.join(5)
    if watcher.refused_at is None:
        raise RuntimeError("the leaked key still works after the leak response")
    return {"to_refused_s": watcher.refused_at - began, "whole_response_s": done - began}


def run(bench: Bench, repeats: int, run_start_s: float | None) -> dict[str, Any]:
    floors = [floor(bench) for _ in range(max(5, repeats))]
    watched_starts = run_start_while_watched(bench, repeats)
    cold_floors = [cold_floor(bench) for _ in range(max(5, repeats))]
    cold_starts = [cold_run_start(bench) for _ in range(repeats)]
    cli = [leak(bench, _cli) for _ in range(repeats)]
    flow = [leak(bench, _flow) for _ in range(repeats)]
    base, cold_base, cold_start = median(floors), median(cold_floors), median(cold_starts)
    watched_start = median(watched_starts)
    budget = 2 * base + watched_start
    cold_budget = 2 * cold_base + cold_start
    cli_s, flow_s = (median([r["to_refused_s"] for r in runs]) for runs in (cli, flow))
    rows = [["bare revoke call, this process (floor)", base, "-", "-"],
            ["curl -X DELETE, new process (cold floor)", cold_base, "-", "-"],
            ["respond-to-leak flow (warm)", flow_s,
             median([r["whole_response_s"] for r in flow]),
             f"{budget:.2f} ({'met' if flow_s <= min(budget, 3) else 'not met'})"],
            ["secretops leak (CLI, cold)", cli_s, median([r["whole_response_s"] for r in cli]),
             f"{cold_budget:.2f} ({'met' if cli_s <= min(cold_budget, 3) else 'not met'})"]]
    print(table(f"Time to revoke a leaked OpenAI key in {ENV} (median of {repeats})",
                ["how", "to refused (s)", "whole response (s)", "budget (s)"], rows))
    quiet = f"{run_start_s:.3f} s" if run_start_s is not None else "not measured"
    print(f"\nTarget: within 3 s, and within 2x the floor plus Prefect's own run start. Warm: "
          f"2 x {base:.3f} + {watched_start:.3f} (an empty flow's run start in this process "
          f"while the watcher polls; {quiet} without it) = {budget:.2f} s. Cold: 2 x "
          f"{cold_base:.3f} + "
          f"{cold_start:.2f} (a new Python process to its flow's body) = {cold_budget:.2f} s; "
          f"the warm budget for the CLI would be {budget:.2f} s.")
    return {"floor_s": floors, "run_start_while_watched_s": watched_starts,
            "cold_floor_s": cold_floors, "cold_run_start_s": cold_starts,
            "cli": cli, "flow": flow, "prefect_run_start_s": run_start_s,
            "budget_s": round(budget, 3), "cold_budget_s": round(cold_budget, 3)}
