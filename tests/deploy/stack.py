"""The deployed stack, once per session (a pytest plugin loaded by tests/conftest.py): the
session's Prefect server set up by ``secretops setup``, every deployment of ``prefect.yaml``
deployed by ``prefect deploy --all``, and a process worker serving the process pool.

The flows read the inventory ``DIR/inventory-blocks.yaml``: the sandbox's inventory with its
provider and database admin credentials moved into Prefect Secret blocks (as production does),
which ``secretops setup`` creates from environment variables, plus a notification webhook that
points at a receiver in this process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from deployments.catalogue import FLOWS

ROOT = Path(__file__).resolve().parents[2]
BLOCK_CREDENTIALS = {
    "openai-admin": "openai-admin-key",
    "anthropic-admin": "anthropic-admin-key",
    "postgres-admin": "postgres-admin-password",
}


class Receiver:
    """A webhook endpoint on 127.0.0.1 that keeps every JSON body posted to it."""

    def __init__(self) -> None:
        bodies: list[Any] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                bodies.append(json.loads(self.rfile.read(length) or b"null"))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return

        self.bodies = bodies
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/secretops"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait_for(self, text: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for body in self.bodies:
                if text in json.dumps(body):
                    return dict(body)
            time.sleep(0.2)
        raise AssertionError(f"no notification containing {text!r} in {timeout} s: "
                             f"{self.bodies}")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Stack:
    """What the deploy and UI tests share."""

    sandbox: dict[str, Any]
    inventory: Path
    credentials_env: dict[str, str]
    receiver: Receiver
    worker_log: Path
    outputs: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def secretops(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run the ``secretops`` command line with the stack's inventory."""
        return run([sys.executable, "-m", "cli", *args, "--inventory",
                    str(self.inventory)], {**os.environ, **self.credentials_env})


def run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=240, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} exited {result.returncode}:\n"
                             f"{result.stdout}\n{result.stderr}")
    return result


def blocks_inventory(sandbox: dict[str, Any], webhook: str) -> tuple[Path, dict[str, str]]:
    """The sandbox inventory with block credentials, and the variables setup reads them from."""
    source = Path(sandbox["inventory"])
    data = yaml.safe_load(source.read_text())
    env = {}
    for name, block in BLOCK_CREDENTIALS.items():
        path = source.parent / data["credentials"][name]["file"]
        env[block.upper().replace("-", "_")] = path.read_text().removesuffix("\n")
        data["credentials"][name] = {"block": block}
    data["credentials"]["notify-webhook"] = {"block": "secretops-notify-webhook"}
    env["SECRETOPS_NOTIFY_WEBHOOK"] = webhook
    target = source.parent / "inventory-blocks.yaml"
    target.write_text(yaml.safe_dump(data, sort_keys=False))
    return target, env


def deploy_selection() -> list[str]:
    """``--all``; while a runbook flow's file is still missing from the tree, the deployments
    of the flows that exist, by name."""
    present = [e for e in FLOWS if (ROOT / e.entrypoint.split(":")[0]).is_file()]
    if len(present) == len(FLOWS):
        return ["--all"]
    return [arg for e in present for arg in ("--name", f"{e.flow}/intelliprompt")]


@pytest.fixture(scope="session")
def deployed(sandbox: dict[str, Any], prefect_server: Any,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """setup -> deploy --all -> setup again (idempotent; adds the leak automation) -> worker."""
    receiver = Receiver()
    inventory, credentials = blocks_inventory(sandbox, receiver.url)
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    stack = Stack(sandbox, inventory, credentials, receiver, log)
    started = time.monotonic()
    stack.outputs["setup"] = stack.secretops("setup", "--project-dir", str(ROOT)).stdout
    stack.seconds["setup"] = time.monotonic() - started
    started = time.monotonic()
    stack.outputs["deploy"] = run(["prefect", "--no-prompt", "deploy", *deploy_selection()],
                                  dict(os.environ)).stdout
    stack.seconds["deploy"] = time.monotonic() - started
    started = time.monotonic()
    stack.outputs["setup-again"] = stack.secretops("setup", "--project-dir", str(ROOT)).stdout
    stack.seconds["setup-again"] = time.monotonic() - started
    print(f"secretops setup, prefect deploy, setup again: {stack.seconds}")
    env = {**os.environ, "PREFECT_WORKER_QUERY_SECONDS": "1",
           "PREFECT_WORKER_PREFETCH_SECONDS": "5"}
    with log.open("ab") as out:
        worker = subprocess.Popen(
            ["prefect", "worker", "start", "--pool", "secretops-process", "--type", "process",
             "--name", "secretops-test-worker"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
    try:
        yield stack
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
        receiver.close()
