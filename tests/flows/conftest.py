"""Fixtures for flow tests: the sandbox's inventory, its adapters, the Prefect server with the
per-secret limits, a load generator on the service endpoints, and the scan after every test."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from secretops.inventory import Inventory, load_inventory
from secretops.models import SecretValue
from secretops.prefect_setup import ensure_concurrency_limits
from secretops.scan import collect_store_values, format_report, scan_prefect
from secretops.wiring import Wiring


@dataclass
class World:
    """The sandbox as the flows see it."""

    info: dict[str, Any]
    path: str
    inventory: Inventory
    wiring: Wiring
    seen: list[SecretValue] = field(default_factory=list)

    def values(self) -> list[SecretValue]:
        """Every value held in any store now, plus every value a test remembered."""
        stores = [store for sid in self.inventory.secret_ids()
                  for env in self.inventory.environments_of(sid)
                  for store in self.wiring.stores(sid, env)]
        found = collect_store_values(stores)
        return found + [v for v in self.seen if v not in found]


@pytest.fixture(scope="session")
def world(sandbox: dict[str, Any], prefect_server: Any) -> Iterator[World]:
    """The sandbox as the flows see it. After the session's last flow test, the whole Prefect
    database, API and server log are scanned for every value ever seen."""
    inventory = load_inventory(sandbox["inventory"])
    ensure_concurrency_limits(inventory)
    world = World(sandbox, sandbox["inventory"], inventory, Wiring(inventory))
    yield world
    report = scan_prefect(world.values(), api_url=prefect_server.api_url,
                          database_path=prefect_server.database_path,
                          extra_files=[prefect_server.log_path])
    assert report.ok, format_report(report)


@pytest.fixture()
def clean_prefect(world: World, assert_prefect_clean: Callable[..., Any]) -> Iterator[None]:
    """After the test: no value held in any store (or remembered) is anywhere in Prefect
    that was written during the test (the session's last flow test scans everything)."""
    started = datetime.now(UTC) - timedelta(seconds=2)
    yield
    assert_prefect_clean(world.values(), since=started)


@dataclass
class LoadResult:
    sent: int = 0
    failed: int = 0
    errors: dict[str, int] = field(default_factory=dict)


class Load:
    """Steady requests to a service endpoint from a background thread, counting failures."""

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
                    reason = response.json().get("error", str(response.status_code))
                except httpx.HTTPError as exc:
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


@pytest.fixture()
def load(world: World) -> Callable[[str], Load]:
    """``with load("staging") as result: ...`` then ``result.failed``."""
    return lambda environment: Load(world.info["services"][environment])
