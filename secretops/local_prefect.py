"""A local Prefect server for the quickstart and drills: ``prefect server start`` on loopback,
its home and SQLite database under a folder of ours, recorded in ``DIR/prefect.json``."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from secretops.errors import SecretopsError

DEFAULT_PORT = 4200


def _free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def _ephemeral_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _healthy(api_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=2) as response:  # noqa: S310
            return bool(response.status == 200)
    except OSError:
        return False


def server_environment(home: Path, api_url: str | None = None) -> dict[str, str]:
    env = {
        "PREFECT_HOME": str(home),
        "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home / 'prefect.db'}",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT": "false",
    }
    if api_url:
        env["PREFECT_API_URL"] = api_url
        env["PREFECT_UI_API_URL"] = api_url
    return env


def status(directory: Path) -> dict[str, Any] | None:
    try:
        info: dict[str, Any] = json.loads((directory / "prefect.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return info if _healthy(info["api_url"]) else None


def start(directory: Path, port: int | None = None, timeout: float = 90.0) -> dict[str, Any]:
    """Start (or find) the server; returns ``{"api_url", "ui_url", "pid", "database"}``."""
    directory = directory.resolve()
    running = status(directory)
    if running is not None:
        return running
    home = directory / "prefect"
    home.mkdir(parents=True, exist_ok=True)
    if port is None:
        port = DEFAULT_PORT if _free(DEFAULT_PORT) else _ephemeral_port()
    api_url = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, **server_environment(home, api_url)}
    log = open(directory / "prefect-server.log", "ab")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
         "--port", str(port)],
        env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _healthy(api_url):
            info = {"api_url": api_url, "ui_url": f"http://127.0.0.1:{port}", "pid": proc.pid,
                    "database": str(home / "prefect.db"), "home": str(home)}
            (directory / "prefect.json").write_text(json.dumps(info, indent=2))
            return info
        if proc.poll() is not None:
            raise SecretopsError(f"the Prefect server exited (code {proc.returncode}); see "
                                 f"{directory / 'prefect-server.log'}")
        time.sleep(0.25)
    proc.terminate()
    raise SecretopsError(f"the Prefect server did not answer within {timeout:.0f} s")


def stop(directory: Path) -> bool:
    path = directory.resolve() / "prefect.json"
    try:
        info = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(info["pid"], signal.SIGTERM)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            os.killpg(info["pid"], 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        os.killpg(info["pid"], signal.SIGKILL)
    path.unlink(missing_ok=True)
    return True
