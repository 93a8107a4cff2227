"""One Prefect server for the whole test session (a pytest plugin).

Load it from ``tests/conftest.py`` with ``pytest_plugins = ["tests.fixtures_prefect"]`` and ask
for the ``prefect_server`` fixture; ``assert_prefect_clean`` runs ``secretops scan`` after a
flow, and :func:`settle` waits for a finished run's logs and events to reach the database.

The server is the real Prefect API application (``prefect.server.api.server:create_app``, what
``prefect server start`` serves) run by uvicorn in a subprocess, on a socket this process binds
to 127.0.0.1 port 0 and hands over with ``--fd``: no port is guessed, so there is no race with
other servers. Its database is a SQLite file in a temporary ``PREFECT_HOME``, so ``secretops
scan`` can read the file directly, and its own output goes to ``server.log`` beside it (a file
the scan can search too). It runs the services an ephemeral server runs (event persister,
task run recorder, automations' triggers and actions, log and event distributors) but not the
scheduler or the telemetry service.

Measured on 2 cores: about 11 s to answer ``/api/health`` (4 s of imports, the rest database
migrations), the same as ``prefect_test_harness`` (12-14 s) and ``prefect server start``
(11 s); stopping takes under 0.3 s (a full-services server takes 5 s). The server is booted
in the background as soon as collection shows a test needs it. With heartbeats off a small
flow run takes about 0.4 s (1.2 s the first time a flow is registered).

For the session the fixture points this process at the server (``PREFECT_API_URL`` through
``temporary_settings``, for code in this process, and in ``os.environ``, for subprocesses such
as a worker or the ``secretops`` CLI), turns flow-run heartbeats off and sends logs to the API
in short batches so tests can read them back quickly.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from secretops.models import SecretValue
from secretops.scan import ScanReport, format_report
from secretops.scan_api import scan_prefect

STARTUP_TIMEOUT = 90.0
STOP_TIMEOUT = 10.0


@dataclass(frozen=True)
class PrefectServer:
    """A running Prefect server: where its API answers and where it keeps its data."""

    api_url: str
    database_path: Path
    home: Path
    log_path: Path
    pid: int

    @property
    def storage_path(self) -> Path:
        """Where flows of this session persist results (``PREFECT_LOCAL_STORAGE_PATH``)."""
        return self.home / "storage"


def _server_env(home: Path, database_path: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("PREFECT_")
    }
    env.update(
        {
            "PREFECT_HOME": str(home),
            "PREFECT_SERVER_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{database_path}",
            "PREFECT_UI_ENABLED": "false",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
            "PREFECT__SERVER_EPHEMERAL": "1",
            "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_FLUSH_INTERVAL": "0.2",
        }
    )
    return env


class ServerProcess:
    """A Prefect server subprocess that has been started and may not answer yet."""

    def __init__(self, home: Path) -> None:
        home.mkdir(parents=True, exist_ok=True)
        self.home = home
        self.database_path = home / "prefect.db"
        self.log_path = home / "server.log"
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        listener.listen(128)
        self.api_url = f"http://127.0.0.1:{listener.getsockname()[1]}/api"
        command = [
            sys.executable, "-m", "uvicorn",
            "--fd", str(listener.fileno()),
            "--factory", "prefect.server.api.server:create_app",
            "--lifespan", "on",
            "--log-level", "warning",
        ]  # fmt: skip
        env = _server_env(home, self.database_path)
        # the UI (tests/ui) calls the API where this server really answers
        # (an ephemeral server serves no UI: run as a standing one, without the scheduler)
        env.pop("PREFECT__SERVER_EPHEMERAL")
        env.update({"PREFECT_UI_ENABLED": "true", "PREFECT_UI_API_URL": self.api_url,
                    "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false"})
        with listener, self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                env=env,
                pass_fds=(listener.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def ready(self) -> PrefectServer:
        """Wait until the API answers ``/health``."""
        deadline = time.monotonic() + STARTUP_TIMEOUT
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"the Prefect server exited with code {self.process.returncode};"
                        f" see {self.log_path}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(f"{self.api_url}/health").status_code == 200:
                        return PrefectServer(
                            self.api_url,
                            self.database_path,
                            self.home,
                            self.log_path,
                            self.process.pid,
                        )
                time.sleep(0.1)
        raise RuntimeError(f"the Prefect server did not answer within {STARTUP_TIMEOUT:.0f} s")

    def stop(self) -> None:
        """Stop the server and anything it started (its whole process group)."""
        if self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


@contextlib.contextmanager
def run_prefect_server(home: Path) -> Iterator[PrefectServer]:
    """Start a Prefect server keeping its files in ``home``; stop it on exit."""
    server = ServerProcess(home)
    try:
        yield server.ready()
    finally:
        server.stop()


FINAL_EVENTS = frozenset(
    f"prefect.flow-run.{name}" for name in ("Completed", "Failed", "Crashed", "Cancelled")
)


def settle(flow_run_id: object, timeout: float = 20.0) -> None:
    """Wait until what a finished flow run sent has reached the server's database: its logs
    (sent in batches by the client) and its events (persisted in batches by the server, the
    run's final state event last)."""
    from prefect.client.orchestration import get_client
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=10)
    EventsWorker.drain_all(timeout=10)
    query = {
        "filter": {
            "resource": {"id": [f"prefect.flow-run.{flow_run_id}"]},
            "event": {"name": sorted(FINAL_EVENTS)},
        },
        "limit": 1,
    }
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            if client.request("POST", "/events/filter", json=query).json()["events"]:
                return
            time.sleep(0.1)
    raise AssertionError(f"flow run {flow_run_id} has no final state event after {timeout} s")


@contextlib.contextmanager
def client_settings(server: PrefectServer) -> Iterator[None]:
    """Point this process (and subprocesses started meanwhile) at ``server``, heartbeats
    off, logs sent in short batches, results persisted under the server's home."""
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        PREFECT_LOCAL_STORAGE_PATH,
        PREFECT_LOGGING_TO_API_BATCH_INTERVAL,
        temporary_settings,
    )

    api_url = server.api_url
    env = {
        "PREFECT_API_URL": api_url,
        "PREFECT_LOCAL_STORAGE_PATH": str(server.storage_path),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_TO_API_BATCH_INTERVAL": "0.3",
    }
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        with temporary_settings(
            updates={
                PREFECT_API_URL: api_url,
                PREFECT_LOCAL_STORAGE_PATH: server.storage_path,
                PREFECT_LOGGING_TO_API_BATCH_INTERVAL: 0.3,
                PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None,
            }
        ):
            yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


_booted: list[ServerProcess] = []


def pytest_collection_finish(session: pytest.Session) -> None:
    """Boot the server as soon as the tests are known to need it, so its ~11 s start
    overlaps with whatever runs before the first test that asks for it."""
    if session.config.option.collectonly:
        return
    if any("prefect_server" in getattr(item, "fixturenames", ()) for item in session.items):
        _booted.append(ServerProcess(Path(tempfile.mkdtemp(prefix="secretops-prefect-"))))


def pytest_unconfigure(config: pytest.Config) -> None:
    """Stop a server booted early and remove its files (the fixture has stopped it already
    when it was used)."""
    while _booted:
        process = _booted.pop()
        process.stop()
        shutil.rmtree(process.home, ignore_errors=True)


@pytest.fixture()
def assert_prefect_clean(prefect_server: PrefectServer) -> Callable[..., ScanReport]:
    """``assert_prefect_clean(values, flow_run_id)``: wait for the run's logs and events to
    land (when a run id is given), then scan the server (API, SQLite file, server log) and
    every persisted result file for the values; fail with the report unless it is clean."""

    def check(values: Iterable[SecretValue], flow_run_id: object = None,
              since: datetime | None = None) -> ScanReport:
        if flow_run_id is not None:
            settle(flow_run_id)
        report = scan_prefect(
            values,
            since=since,
            api_url=prefect_server.api_url,
            database_path=prefect_server.database_path,
            extra_files=[
                prefect_server.log_path,
                *(p for p in prefect_server.storage_path.rglob("*") if p.is_file()),
            ],
        )
        assert report.ok, format_report(report)
        return report

    return check


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """The session's Prefect server, with this process pointed at it."""
    process = _booted[0] if _booted else ServerProcess(tmp_path_factory.mktemp("prefect"))
    try:
        server = process.ready()
        with client_settings(server):
            yield server
    finally:
        process.stop()
