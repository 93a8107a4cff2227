"""What the rotate-api-key tests share: the world as a test sees it (stores, the provider's
keys, the cluster, the service), the sandbox's fault knobs, runs in a thread, the CLI."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName
from prefect.client.schemas.objects import FlowRun, StateType

from flows.rotate_api_key import rotate_api_key
from secretops.models import SecretValue, Stage
from secretops.prefect_setup import lock_name
from secretops.staging import stage_key
from tasks.api_keys import key_name_prefix
from tests.flows.conftest import World
from tests.flows.conftest import mint_console_key as mint_named

ROOT = Path(__file__).resolve().parents[2]
LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)


def current_values(world: World, secret: str, environment: str) -> list[SecretValue]:
    values = []
    for store in world.wiring.stores(secret, environment):
        credential = store.read(Stage.current)
        assert credential is not None, f"{store.name} has no current version"
        values.append(credential.secret)
    return values


def remember_all(world: World, secret: str, environment: str) -> None:
    """Add every value the stores hold now to the values the scan looks for."""
    for store in world.wiring.stores(secret, environment):
        for stage in Stage:
            credential = store.read(stage)
            if credential is not None and credential.secret not in world.seen:
                world.seen.append(credential.secret)


def environment_keys(world: World, secret: str, environment: str) -> list[Any]:
    """Active keys at the provider that belong to the environment: named for it (the seed's
    ``intelliprompt-<env>-``, secretops' ``secretops-intelliprompt-<env>-<secret>-``) or
    holding the value one of its stores has."""
    provider = world.wiring.provider(secret)
    ours = {key.id for value in current_values(world, secret, environment)
            if (key := provider.find_key(value)) is not None}
    prefixes = (f"{world.inventory.application}-{environment}-",
                key_name_prefix(world.inventory.application, environment, secret))
    return [key for key in provider.list_keys() if key.status == "active"
            and (key.id in ours or key.name.startswith(prefixes))]


def mint_console_key(world: World, environment: str) -> SecretValue:
    """What a person does in the Anthropic console, naming the key as the form says."""
    name = key_name_prefix(world.inventory.application, environment, "anthropic") + "console"
    return mint_named(world, name)


def assert_converged(world: World, secret: str, environment: str) -> SecretValue:
    """One working key, the same in every store, nothing pending, exactly one active key of
    the environment at the provider (the stored one); in the cluster the Secret holds it and
    every ready pod started with it logged ``API initialized``; the service answers."""
    values = current_values(world, secret, environment)
    key = values[0]
    assert all(v == key for v in values), "stores disagree on the current key"
    stores = world.wiring.stores(secret, environment)
    assert [s.name for s in stores if s.read(Stage.pending) is not None] == []
    provider = world.wiring.provider(secret)
    assert provider.check_key(key), "the provider refuses the stored key"
    found = provider.find_key(key)
    active = environment_keys(world, secret, environment)
    assert found is not None and [k.id for k in active] == [found.id], (
        f"active {secret} keys of {environment}: {[(k.id, k.name) for k in active]}")
    namespace = world.inventory.namespace(environment)
    if namespace:
        cluster = world.wiring.cluster()
        assert (cluster.read_secret(namespace, "api-keys") or {})[secret] == key
        status = cluster.wait_for_rollout(namespace, "backend", timeout=30)
        assert status.done, status.message
        pods = [p for p in cluster.pods_started_since(namespace, "backend",
                                                       since=LONG_AGO) if p.ready]
        assert len(pods) >= 3 and all("API initialized" in p.log for p in pods)
        response = httpx.get(world.info["services"][environment], timeout=10)
        assert response.status_code == 200, response.text
    return key


def rotate(world: World, secret: str, environment: str, **kwargs: Any) -> Any:
    """Run the flow in this process, staging a console key first for Anthropic."""
    if secret == "anthropic":
        stage_key(world.wiring.stores(secret, environment), mint_console_key(world, environment))
    return asyncio.run(rotate_api_key(secret=secret, environment=environment, inventory=world.path,
                                      **kwargs))


@contextlib.contextmanager
def faults(world: World, **knobs: dict[str, Any]) -> Iterator[None]:
    """Set the sandbox's fault knobs for the block; clear them all afterwards."""
    control = world.info["control"]
    try:
        for name, values in knobs.items():
            httpx.put(f"{control}/faults/{name}", json=values).raise_for_status()
        yield
    finally:
        httpx.delete(f"{control}/faults").raise_for_status()


def flow_runs_named(name: str) -> list[FlowRun]:
    with get_client(sync_client=True) as client:
        return client.read_flow_runs(
            flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[name])))


def lock_slots(secret: str) -> int:
    with get_client(sync_client=True) as client:
        return client.read_global_concurrency_limit_by_name(lock_name(secret)).active_slots


def start_in_thread(**params: Any) -> tuple[threading.Thread, list[Any]]:
    """Run the flow in a thread, as a worker would, with this thread's Prefect settings (they
    live in context variables, which a new thread does not inherit)."""
    outcome: list[Any] = []
    context = contextvars.copy_context()

    def target() -> None:
        try:
            outcome.append(asyncio.run(rotate_api_key(**params)))
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=context.run, args=(target,), daemon=True)
    thread.start()
    return thread, outcome


def wait_for_state(name: str, state: StateType, timeout: float = 30) -> FlowRun:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = [r for r in flow_runs_named(name) if r.state_type == state]
        if runs:
            return runs[0]
        time.sleep(0.1)
    raise AssertionError(f"no run {name} reached {state.value} within {timeout} s")


def secretops_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli", *args], cwd=ROOT,
                          env=os.environ.copy(), capture_output=True, text=True, timeout=120)
