"""What every benchmark shares: a fresh sandbox and Prefect server, a load generator on a
service endpoint, tables on stdout and JSON in ``bench/results/``."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import statistics
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Bench:
    """A running sandbox and Prefect server, with this process pointed at both."""

    directory: Path
    info: dict[str, Any]
    api_url: str
    prefect_pid: int = 0

    def settle(self, timeout: float = 30.0, idle_share: float = 0.05) -> float:
        """Wait until the sandbox and the Prefect server are idle (each under ``idle_share``
        of a core over half a second), so that what one benchmark left behind (the server
        records a burst of events in batches, for seconds) does not slow the next one's
        measurements. Returns the seconds waited."""
        began = time.monotonic()
        while time.monotonic() - began < timeout:
            before = self.cpu_seconds()
            time.sleep(0.5)
            after = self.cpu_seconds()
            if all(after[who] - before[who] < idle_share * 0.5
                   for who in ("sandbox", "Prefect server")):
                break
        return time.monotonic() - began

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time (user + system) used so far by this process, the sandbox (supervisor and
        its children) and the Prefect server (with its children)."""
        import psutil

        def total(pid: int) -> float:
            try:
                root = psutil.Process(pid)
                procs = [root, *root.children(recursive=True)]
            except psutil.Error:
                return 0.0
            used = 0.0
            for proc in procs:
                try:
                    times = proc.cpu_times()
                except psutil.Error:
                    continue
                used += times.user + times.system
            return used

        mine = psutil.Process().cpu_times()
        return {"secretops (this process)": mine.user + mine.system,
                "sandbox": total(int(self.info.get("pids", {}).get("supervisor") or 0)),
                "Prefect server": total(self.prefect_pid)}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def world(keep: bool = False, kubernetes: str = "sandbox") -> Iterator[Bench]:
    """Boot a sandbox and a Prefect server in a fresh folder; stop both afterwards.
    ``kubernetes``: the sandbox's own API server, or ``real`` (docs/sandbox.md)."""
    from sandbox import manager
    from secretops import local_prefect
    from secretops.inventory import load_inventory
    from secretops.prefect_setup import ensure_concurrency_limits

    # a fleet run has more threads than the Kubernetes client keeps connections: it opens
    # extra ones and says so for each; the tables are what this output is for
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
    directory = Path(tempfile.mkdtemp(prefix="secretops-bench-"))
    began = time.monotonic()
    info, _ = manager.up(directory, kubernetes=kubernetes)
    # PostgreSQL, as a production Prefect server has: on SQLite a fleet's concurrent lock
    # requests are answered 503 and retried seconds later
    server = local_prefect.start(directory, port=_free_port(), postgres=True)
    os.environ.update({"PREFECT_API_URL": server["api_url"],
                       "SECRETOPS_INVENTORY": info["inventory"],
                       "PREFECT_LOGGING_LEVEL": "WARNING"})
    from prefect.settings import PREFECT_API_URL, temporary_settings

    try:
        with temporary_settings(updates={PREFECT_API_URL: server["api_url"]}):
            ensure_concurrency_limits(load_inventory(info["inventory"]))
            print(f"sandbox and Prefect server up in {time.monotonic() - began:.1f} s "
                  f"({directory})", flush=True)
            yield Bench(directory, info, server["api_url"], int(server["pid"]))
    finally:
        if not keep:
            # the events of the runs still queued in this process go to this server, not
            # to a retry loop against one that has stopped (which kept the process alive)
            from prefect.events.worker import EventsWorker

            EventsWorker.drain_all(timeout=30, at_exit=False)
            local_prefect.stop(directory)
            manager.down(directory)




def median(values: list[float]) -> float:
    return round(statistics.median(values), 2) if values else float("nan")


def table(title: str, header: list[str], rows: list[list[Any]]) -> str:
    """A plain-text table (also valid markdown)."""
    cells = [header, *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]

    def line(row: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"

    out = [f"\n### {title}\n", line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(row) for row in cells[1:]]
    return "\n".join(out)


def save(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, default=str))
    return path
