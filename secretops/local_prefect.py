"""A local Prefect server for the quickstart, drills and benchmarks: ``prefect server start``
on loopback, its home under a folder of ours, recorded in ``DIR/prefect.json``.

Its database is SQLite (``DIR/prefect/prefect.db``, which ``secretops scan --database`` reads
directly) or, with ``postgres=True``, a PostgreSQL cluster of its own
(:mod:`secretops.local_postgres`, under ``DIR/prefect-postgres``). PostgreSQL is what Prefect
recommends once runs work concurrently: SQLite answers concurrent writes (a fleet's tasks
taking their locks at once) with 503s that the client retries about two seconds later."""

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


POSTGRES_DIR = "prefect-postgres"


def server_environment(home: Path, api_url: str | None = None,
                       database_url: str | None = None) -> dict[str, str]:
    env = {
        "PREFECT_HOME": str(home),
        "PREFECT_API_DATABASE_CONNECTION_URL":
            database_url or f"sqlite+aiosqlite:///{home / 'prefect.db'}",
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


def start(directory: Path, port: int | None = None, timeout: float = 90.0,
          postgres: bool = False) -> dict[str, Any]:
    """Start (or find) the server; returns ``{"api_url", "ui_url", "pid", "database"}``
    (``database``: the SQLite file, or ``postgresql``)."""
    directory = directory.resolve()
    running = status(directory)
    if running is not None:
        return running
    home = directory / "prefect"
    home.mkdir(parents=True, exist_ok=True)
    if port is None:
        port = DEFAULT_PORT if _free(DEFAULT_PORT) else _ephemeral_port()
    api_url = f"http://127.0.0.1:{port}/api"
    database_url = None
    if postgres:
        from secretops.local_postgres import LocalPostgres

        cluster = LocalPostgres(directory / POSTGRES_DIR)
        cluster.start()
        database_url = cluster.create_database("prefect")
    try:
        return _serve(directory, home, port, api_url, database_url, timeout)
    except BaseException:
        _stop_postgres(directory)
        raise


def _serve(directory: Path, home: Path, port: int, api_url: str, database_url: str | None,
           timeout: float) -> dict[str, Any]:
    env = {**os.environ, **server_environment(home, api_url, database_url)}
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
            database = "postgresql" if database_url else str(home / "prefect.db")
            info = {"api_url": api_url, "ui_url": f"http://127.0.0.1:{port}", "pid": proc.pid,
                    "database": database, "home": str(home)}
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
    _stop_postgres(directory.resolve())
    return True


def _stop_postgres(directory: Path) -> None:
    if (directory / POSTGRES_DIR).is_dir():
        from secretops.local_postgres import LocalPostgres

        LocalPostgres(directory / POSTGRES_DIR).stop()
