"""A steady load on a sandbox service endpoint, counting every failed request.

Each request reaches a ready backend pod, which answers with its start-up credentials (a fresh
PostgreSQL login and a provider call), so a credential that stops working while the load runs
shows up as failed requests. Used by drills, benchmarks and tests:

    with Load(info["services"]["staging"]) as result:
        ...rotate...
    print(result.failed, "of", result.sent)
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import httpx


@dataclass
class LoadResult:
    sent: int = 0
    failed: int = 0
    errors: dict[str, int] = field(default_factory=dict)


class Load:
    """Requests every ``interval`` seconds from a background thread until the block ends."""

    def __init__(self, url: str, interval: float = 0.01) -> None:
        self.url, self.interval = url, interval
        self.result = LoadResult()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=5) as client:
            while not self._stop.is_set():
                self.result.sent += 1
                try:
                    response = client.get(self.url)
                    ok = response.status_code == 200
                    reason = "" if ok else str(response.json().get("error", response.status_code))
                except (httpx.HTTPError, ValueError) as exc:
                    ok, reason = False, type(exc).__name__
                if not ok:
                    self.result.failed += 1
                    self.result.errors[reason] = self.result.errors.get(reason, 0) + 1
                time.sleep(self.interval)

    def __enter__(self) -> LoadResult:
        self._thread.start()
        return self.result

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
