"""Fixtures for flow tests: the sandbox's inventory, its adapters, the Prefect server with the
per-secret limits, a load generator on the service endpoints, and the scan after every test."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sandbox import manager
from sandbox.load import Load
from secretops.inventory import Inventory, load_inventory
from secretops.models import SecretValue
from secretops.prefect_setup import ensure_concurrency_limits, lock_name, release_lock
from secretops.scan import collect_store_values, format_report
from secretops.scan_api import scan_prefect
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
    try:
        assert_prefect_clean(world.values(), since=started)
    finally:
        left = free_held_locks()
    assert not left, f"the test ended with these secrets' locks still held: {left}"


def free_held_locks() -> list[str]:
    """Free every per-secret lock still held, and name their secrets. A run that ends frees
    its lock; a test that fails between killing a run and freeing its lock would otherwise
    make every later test of the secret wait out the 5-minute lease."""
    from prefect.client.orchestration import get_client

    prefix = lock_name("")
    with get_client(sync_client=True) as client:
        limits = client.read_global_concurrency_limits(limit=200)
    held = sorted(limit.name.removeprefix(prefix) for limit in limits
                  if limit.name.startswith(prefix) and limit.active_slots > 0)
    for secret in held:
        release_lock(secret)
    return held




@pytest.fixture()
def load(world: World) -> Callable[[str], Load]:
    """``with load("staging") as result: ...`` then ``result.failed``."""
    return lambda environment: Load(world.info["services"][environment])


def mint_console_key(world: World, name: str) -> SecretValue:
    """What a person does in the Anthropic console; the value is kept for the leak scans."""
    value = SecretValue(manager.mint_console_key(world.info, name))
    world.seen.append(value)
    return value


def backend_logs(kubectl: Any, namespace: str) -> str:
    """``kubectl logs -l app=backend --tail -1``: every backend pod's log. kubectl lists the
    pods, then asks for each one's log; a pod of the old ReplicaSet still terminating when
    the list is taken can be gone by then (NotFound). Asked again, as a person would."""
    return kubectl_logs(kubectl, namespace, "-l", "app=backend", "--tail", "-1")


def kubectl_logs(kubectl: Any, namespace: str, *target: str, attempts: int = 10) -> str:
    """``kubectl logs -n NAMESPACE TARGET...``, asked again while it names a pod that was
    deleted between kubectl picking it and reading its log (NotFound)."""
    while True:
        result = kubectl("logs", "-n", namespace, *target, check=False)
        attempts -= 1
        if result.returncode == 0:
            return str(result.stdout)
        if "NotFound" not in result.stderr or not attempts:
            raise AssertionError(f"kubectl logs -n {namespace} {' '.join(target)} failed: "
                                 f"{result.stderr}")
        time.sleep(0.5)
