"""Each failure is retried in one layer, with one budget (``secretops.adapters.retry``).

A runbook step that calls a system which keeps failing is run by Prefect exactly as the flows
run theirs (``tasks.common.runbook_step``), against the sandbox's emulators with every answer
an error. What the world saw is counted: the errors the emulator answered (its fault
registry's ``injected``) and the times the step's body ran.

- A call whose client retries (the OpenAI client, the Kubernetes adapter) is asked
  ``CALL_ATTEMPTS`` times, and the step is not run again: 8 requests, not 8 x 5.
- A key creation, which no client repeats (the key may have been made), is repeated by the
  step: ``RETRIES + 1`` runs of one request each, and no key is left behind.
- A PostgreSQL connection, which psycopg does not retry, is retried by the step:
  ``RETRIES + 1`` runs.
"""

from __future__ import annotations

import asyncio
import socket
from collections import Counter
from typing import Any

import httpx
import pytest
from prefect import flow

from secretops.adapters.postgres import PostgresDatabase
from secretops.adapters.retry import CALL_ATTEMPTS
from secretops.models import SecretValue, Stage
from tasks.common import RETRIES, runbook_step, wiring_for
from tests.flows.api_key_world import faults
from tests.flows.conftest import World

RUNS: Counter[str] = Counter()
PROBE_KEY = "secretops-retry-budget-probe"


@runbook_step("List the provider's keys")
def list_provider_keys(inventory: str) -> list[str]:
    RUNS["list"] += 1
    return [f"{len(wiring_for(inventory).provider('openai').list_keys())} keys"]


@runbook_step("Create a provider key")
def create_provider_key(inventory: str) -> list[str]:
    RUNS["create"] += 1
    created = wiring_for(inventory).provider("openai").create_key(PROBE_KEY, "staging")
    return [created.key.id]


@runbook_step("Read the Secret")
def read_secret(inventory: str) -> list[str]:
    RUNS["read"] += 1
    store = wiring_for(inventory).stores("openai", "staging")[0]
    store.version(Stage.current)
    return [store.name]


@runbook_step("Look up the application's role")
def look_up_role(port: int) -> list[str]:
    RUNS["role"] += 1
    database = PostgresDatabase("127.0.0.1", port, "intelliprompt", "postgres",
                                SecretValue("no-such-server-password", remember=False),
                                connect_timeout=2)
    return [str(database.role_exists("intelliprompt"))]


@flow(name="retry-budget-probe", persist_result=False)
async def probe(step: str, inventory: str, port: int = 0) -> None:
    if step == "list":
        list_provider_keys(inventory)
    elif step == "create":
        create_provider_key(inventory)
    elif step == "read":
        read_secret(inventory)
    else:
        look_up_role(port)


def run(step: str, inventory: str, **params: Any) -> str:
    RUNS.clear()
    state = asyncio.run(probe(step, inventory, return_state=True, **params))
    assert state.is_failed(), state.message
    return str(state.message)


def injected(world: World, emulator: str) -> int:
    shown = httpx.get(f"{world.info['control']}/faults", timeout=10).json()
    return int(shown[emulator]["injected"])


def closed_port() -> int:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        port: int = listener.getsockname()[1]
    return port


@pytest.mark.usefixtures("clean_prefect")
def test_a_call_its_client_retries_is_not_retried_by_the_step(world: World) -> None:
    knobs = {"error_rate": 1.0, "codes": [503], "retry_after_ms": 10}
    with faults(world, openai=knobs):
        message = run("list", world.path)
        answered = injected(world, "openai")
    assert "HTTP 503" in message, message
    assert RUNS["list"] == 1
    assert answered == CALL_ATTEMPTS


@pytest.mark.usefixtures("clean_prefect")
def test_a_kubernetes_request_is_retried_by_the_adapter_alone(world: World) -> None:
    with faults(world, kubernetes={"error_rate": 1.0, "codes": [503]}):
        message = run("read", world.path)
        answered = injected(world, "kubernetes")
    assert "HTTP 503" in message, message
    assert RUNS["read"] == 1
    assert answered == CALL_ATTEMPTS


@pytest.mark.usefixtures("clean_prefect")
def test_a_key_creation_is_repeated_by_the_step_not_by_its_client(world: World) -> None:
    knobs = {"error_rate": 1.0, "codes": [500], "retry_after_ms": 10}
    with faults(world, openai=knobs):
        message = run("create", world.path)
        answered = injected(world, "openai")
    assert "create service account key failed: HTTP 500" in message, message
    assert RUNS["create"] == RETRIES + 1
    assert answered == RETRIES + 1
    provider = world.wiring.provider("openai")
    assert [key.id for key in provider.list_keys() if key.name == PROBE_KEY] == []


@pytest.mark.usefixtures("clean_prefect")
def test_a_postgres_connection_is_retried_by_the_step(world: World) -> None:
    message = run("role", world.path, port=closed_port())
    assert "could not connect" in message, message
    assert RUNS["role"] == RETRIES + 1
