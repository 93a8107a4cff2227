"""Benchmark 2: time to revoke a leaked key, from the command to the provider refusing it,
against the floor of one bare revoke call made directly to the admin API.

A watcher thread sends ``GET /v1/models`` with the leaked key every 10 ms and notes the first
refusal; the clock starts when the command starts. ``secretops leak openai --env staging``
(the CLI, a cold Python process) and the ``respond-to-leak`` flow called in a warm process
are both measured; the rest of the leak response (replace everywhere, audit, post-mortem)
goes on after the key is refused and is timed separately."""

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
    """Mint a key, then time one DELETE and the first refusal."""
    base, headers = _admin(bench)
    created = httpx.post(f"{base}/service_accounts", headers=headers,
                         json={"name": "bench-floor"}).json()
    value, key_id = created["api_key"]["value"], created["api_key"]["id"]
    models = f"{bench.info['providers']['openai']}/v1/models"
    began = time.monotonic()
    httpx.delete(f"{base}/api_keys/{key_id}", headers=headers).raise_for_status()
    while httpx.get(models, headers={"Authorization": f"Bearer {value}"}).status_code == 200:
        time.sleep(0.005)
    return time.monotonic() - began


def _leaked(bench: Bench) -> str:
    from secretops.inventory import load_inventory
    from secretops.models import Stage
    from secretops.wiring import Wiring

    store = Wiring(load_inventory(bench.info["inventory"])).stores("openai", ENV)[0]
    credential = store.read(Stage.current)
    assert credential is not None
    return credential.secret.reveal()


def _cli(bench: Bench) -> None:
    subprocess.run([sys.executable, "-m", "secretops.cli", "leak", "openai", "--env", ENV,
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
    cli = [leak(bench, _cli) for _ in range(repeats)]
    flow = [leak(bench, _flow) for _ in range(repeats)]
    base = median(floors)
    budget = 2 * base + (run_start_s or 0.0)
    rows = [["bare revoke call (floor)", base, "-"],
            ["secretops leak (CLI, cold)", median([r["to_refused_s"] for r in cli]),
             median([r["whole_response_s"] for r in cli])],
            ["respond-to-leak flow (warm)", median([r["to_refused_s"] for r in flow]),
             median([r["whole_response_s"] for r in flow])]]
    print(table(f"Time to revoke a leaked OpenAI key in {ENV} (median of {repeats})",
                ["how", "to refused (s)", "whole response (s)"], rows))
    print(f"\nTarget: within 3 s, and within 2x the floor plus Prefect's own run start "
          f"({run_start_s if run_start_s is not None else '?'} s) = {budget:.2f} s")
    return {"floor_s": floors, "cli": cli, "flow": flow, "prefect_run_start_s": run_start_s,
            "budget_s": round(budget, 3)}
