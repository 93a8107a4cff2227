"""The two halves of a SIGKILL test: run a flow in a process that kills itself at a step
boundary (:mod:`tests.flows.kill_driver`), then do what the zombie automation and
``secretops unlock`` do for a run whose process died."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from prefect.client.orchestration import get_client
from prefect.states import Crashed

from secretops.prefect_setup import release_lock

ROOT = Path(__file__).resolve().parents[2]


def run_until_killed(entrypoint: str, after: str, params: dict[str, Any],
                     timeout: float) -> str:
    """Run ``entrypoint`` (``module:flow``) in a subprocess that SIGKILLs itself at ``after``;
    returns the killed run's id."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.flows.kill_driver", entrypoint, after, "--params",
         json.dumps(params)],
        cwd=ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=timeout,
    )
    assert done.returncode == -signal.SIGKILL, (done.returncode, done.stdout, done.stderr[-3000:])
    lines = [line for line in done.stdout.splitlines() if line.startswith("FLOW_RUN_ID ")]
    assert lines, done.stdout
    return lines[-1].split()[1]


def mark_crashed_and_unlock(flow_run_id: str, secret: str) -> None:
    """What the zombie automation and ``secretops unlock`` do for a run whose process died."""
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(uuid.UUID(flow_run_id),
                                  Crashed(message="the flow run's process was killed"),
                                  force=True)
    release_lock(secret)
