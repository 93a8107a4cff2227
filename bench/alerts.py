"""Benchmark: alert to refused. From the signed webhook POST of a GitHub secret scanning alert
(the sandbox's GitHub delivering to ``secretops alerts serve``'s app, served here) to the
provider refusing the leaked key, with a warm worker: ``secretops setup``, the
``respond-to-leak`` deployment and a process worker polling every second are in place before
the clock starts, as in production. The run the alert starts (replacement, audit,
post-mortem) is timed to its end too. Goal: refused within 2 s."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from bench.common import ROOT, Bench, median, table
from bench.revoke import RefusalWatcher

ENV = "staging"
GOAL_S = 2.0


def _secretops(bench: Bench, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "cli", *args, "--inventory",
                    bench.info["inventory"]], cwd=ROOT, check=True, capture_output=True,
                   timeout=300)


@contextmanager
def warm_worker(bench: Bench) -> Iterator[None]:
    """setup, the leak deployment, setup again (the alert automation), a polling worker."""
    _secretops(bench, "setup", "--project-dir", str(ROOT))
    subprocess.run(["prefect", "--no-prompt", "deploy", "--name",
                    "respond-to-leak/intelliprompt"], cwd=ROOT, check=True,
                   capture_output=True, timeout=300)
    _secretops(bench, "setup", "--project-dir", str(ROOT))
    log = (bench.directory / "bench-worker.log").open("ab")
    worker = subprocess.Popen(
        ["prefect", "worker", "start", "--pool", "secretops-process", "--type", "process"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        env={**os.environ, "PREFECT_WORKER_QUERY_SECONDS": "1"}, start_new_session=True)
    try:
        time.sleep(5)  # the worker has started and polls
        yield
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=30)
        log.close()


def _leak_run(fingerprint: str, timeout: float = 240) -> Any:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            runs = [r for r in client.read_flow_runs(flow_filter=FlowFilter(
                name=FlowFilterName(any_=["respond-to-leak"])), limit=50)
                if r.parameters.get("leaked_fingerprint") == fingerprint]
            if runs and runs[0].state is not None and runs[0].state.is_final():
                return runs[0]
            time.sleep(0.2)
    raise RuntimeError("the alert's leak run did not finish")


def one(bench: Bench, receiver_url: str, repeat: int) -> dict[str, float]:
    from secretops.inventory import load_inventory
    from secretops.models import Stage
    from secretops.wiring import Wiring

    with Wiring(load_inventory(bench.info["inventory"])) as wiring:
        held = wiring.stores("openai", ENV)[0].read(Stage.current)
    assert held is not None
    watcher = RefusalWatcher(f"{bench.info['providers']['openai']}/v1/models",
                             held.secret.reveal())
    watcher.start()
    began = time.monotonic()
    httpx.post(f"{bench.info['github']}/sandbox/alerts", timeout=60, json={
        "repository": f"intelliprompt/bench-{repeat}-{int(time.time())}",
        "secret": held.secret.reveal(), "secret_type": "openai_api_key", "path": "app.env",
        "line": 3, "hook_url": f"{receiver_url}/github"}).raise_for_status()
    run = _leak_run(held.secret.fingerprint())
    done = time.monotonic()
    watcher.stop.set()
    watcher.join(5)
    if watcher.refused_at is None:
        raise RuntimeError("the leaked key still works after the alert")
    assert run.state is not None and run.state.is_completed(), run.state
    return {"to_refused_s": watcher.refused_at - began, "to_run_completed_s": done - began}


def run(bench: Bench, repeats: int) -> dict[str, Any]:
    from cli.alerts import BackgroundReceiver
    from secretops.alerts.app import create_app
    from secretops.alerts.serve import build_receiver
    from secretops.inventory import load_inventory

    with warm_worker(bench):
        receiver = build_receiver(load_inventory(bench.info["inventory"]),
                                  bench.info["github"])
        try:
            with BackgroundReceiver(create_app(receiver.config)) as url:
                results = [one(bench, url, n) for n in range(repeats)]
        finally:
            receiver.close()
    refused = median([r["to_refused_s"] for r in results])
    completed = median([r["to_run_completed_s"] for r in results])
    print(table(f"Alert to refused, OpenAI key in {ENV} (median of {repeats}, warm worker)",
                ["from the signed webhook POST to", "s", "goal (s)"],
                [["the provider refusing the key", refused,
                  f"{GOAL_S} ({'met' if refused <= GOAL_S else 'not met'})"],
                 ["the leak run Completed (replaced, audited, post-mortem)", completed, "-"]]))
    return {"runs": results, "to_refused_s": refused, "to_run_completed_s": completed,
            "goal_s": GOAL_S}
