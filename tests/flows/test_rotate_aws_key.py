"""The CI runner's AWS access key (provider ``aws_iam``, added through its entry point alone)
rotated, made room for under AWS's quota of two keys, and leaked, in the sandbox's CI account
(moto with IAM authentication on): the same flows as every key, the world afterwards."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from flows.respond_to_leak import respond_to_leak
from flows.rotate_all import rotate_all
from flows.rotate_api_key import rotate_api_key
from secretops.models import Credential, Stage
from secretops.ports import KeyProvider
from tasks.api_keys import key_name_prefix
from tests.flows.conftest import World, kubectl_logs

SECRET = "ci-aws-key"
USERS = {"staging": "intelliprompt-ci-staging", "production": "intelliprompt-ci"}


def current(world: World, environment: str) -> list[Credential]:
    found = [store.read(Stage.current) for store in world.wiring.stores(SECRET, environment)]
    assert all(c is not None for c in found)
    return [c for c in found if c is not None]


def user_keys(provider: KeyProvider, environment: str) -> dict[str, str]:
    """The access keys of the environment's CI user: id -> status."""
    return {key.id: key.status for key in provider.list_keys()
            if key.extra["user"] == USERS[environment]}


@contextmanager
def runner_availability(world: World, environment: str) -> Iterator[list[int]]:
    """The ci-runner Deployment's available replicas, sampled every 0.1 s meanwhile."""
    namespace = world.inventory.namespace(environment)
    apps = world.wiring.cluster().apps
    seen: list[int] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            status = apps.read_namespaced_deployment("ci-runner", namespace).status
            seen.append(status.available_replicas or 0)
            stop.wait(0.1)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        stop.set()
        thread.join()


def assert_rotated(world: World, kubectl: Any, environment: str, old: Credential) -> Credential:
    """The pair is new in every store and in the runner's Secret, AWS accepts it and refuses
    the old one, the old key is gone, and the runner restarted with it."""
    provider = world.wiring.provider(SECRET)
    new = current(world, environment)
    assert all(c == new[0] and c.username == new[0].username for c in new)
    pair = new[0]
    world.seen += [pair.secret]
    assert pair.username is not None and pair.username != old.username
    assert provider.check_key(pair) and not provider.check_key(old)
    assert user_keys(provider, environment) == {pair.username: "active"}
    namespace = world.inventory.namespace(environment)
    assert namespace is not None
    deadline = time.monotonic() + 30
    while True:  # production's Secret is written by External Secrets Operator
        data = world.wiring.cluster().read_secret(namespace, "ci-aws-key") or {}
        if data.get("AWS_SECRET_ACCESS_KEY") == pair.secret or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert data["AWS_SECRET_ACCESS_KEY"] == pair.secret
    assert data["AWS_ACCESS_KEY_ID"].reveal() == pair.username
    logs = kubectl_logs(kubectl, namespace, "-l", "app=ci-runner", "--tail", "-1")
    assert "CI runner ready" in logs and "FATAL" not in logs
    return pair


@pytest.mark.usefixtures("clean_prefect", "ci_key_alone")
@pytest.mark.parametrize("environment", ["staging", "production"])
def test_the_ci_key_rotates_with_the_runner_available(world: World, kubectl: Any,
                                                     environment: str) -> None:
    old = current(world, environment)[0]
    world.seen.append(old.secret)
    assert world.wiring.provider(SECRET).check_key(old)

    with runner_availability(world, environment) as available:
        asyncio.run(rotate_api_key(secret=SECRET, environment=environment,
                                   inventory=world.path))

    assert_rotated(world, kubectl, environment, old)
    assert available and min(available) >= 1, available


@pytest.mark.usefixtures("clean_prefect", "ci_key_alone")
def test_a_full_quota_is_made_room_for(world: World, kubectl: Any) -> None:
    """The user already has two keys: an inactive one a person left, then, once that is
    gone, an active one an interrupted run created and never stored. Each rotation makes
    room (the inactive key deleted, the orphan revoked) and completes."""
    environment = "staging"
    provider = world.wiring.provider(SECRET)
    old = current(world, environment)[0]
    world.seen.append(old.secret)
    left = provider.create_key("made by hand", environment=environment)
    world.seen.append(left.value)
    provider.revoke_key(left.key.id)
    assert user_keys(provider, environment) == {old.username: "active", left.key.id: "inactive"}

    asyncio.run(rotate_api_key(secret=SECRET, environment=environment, inventory=world.path))
    old = assert_rotated(world, kubectl, environment, old)

    stamp = (datetime.now(UTC) - timedelta(minutes=5)).strftime("%Y%m%dT%H%M%SZ")
    prefix = key_name_prefix(world.inventory.application, environment, SECRET)
    orphan = provider.create_key(f"{prefix}{stamp}", environment=environment)
    world.seen.append(orphan.value)
    time.sleep(1.1)  # the orphan is older than the run that sweeps it
    asyncio.run(rotate_api_key(secret=SECRET, environment=environment, inventory=world.path))
    assert_rotated(world, kubectl, environment, old)
    assert not provider.check_key(orphan.credential())


@pytest.mark.usefixtures("clean_prefect", "ci_key_alone")
def test_a_leaked_ci_key_is_deactivated_first_then_replaced(world: World, kubectl: Any,
                                                            tmp_path: Any) -> None:
    environment = "production"
    provider = world.wiring.provider(SECRET)
    leaked = current(world, environment)[0]
    world.seen.append(leaked.secret)

    written = asyncio.run(respond_to_leak(
        secret=SECRET, environments=[environment], reason="pasted in a CI log",
        inventory=world.path, postmortem_dir=str(tmp_path)))

    assert_rotated(world, kubectl, environment, leaked)
    assert provider.get_key(str(leaked.username)) is None  # deactivated, refused, deleted
    text = Path(written).read_text()
    assert f"key {leaked.username} ({leaked.secret.fingerprint()}) deleted" in text
    assert f"the provider refuses the leaked key {leaked.secret.fingerprint()}" in text
    assert leaked.secret.reveal() not in text


@pytest.mark.usefixtures("clean_prefect", "ci_key_alone")
def test_rotate_all_rotates_the_ci_key(world: World) -> None:
    environment = "staging"
    old = current(world, environment)[0]
    world.seen.append(old.secret)
    state = asyncio.run(rotate_all(environments=[environment], inventory=world.path, force=True,
                                   secrets=[SECRET], return_state=True))
    report = str(state.result())
    line = next(row for row in report.splitlines() if row.lstrip("-* ").startswith(
        f"{SECRET} in {environment}:"))
    assert line.rstrip().endswith("s)") and ": rotated" in line, line
    new = current(world, environment)[0]
    world.seen.append(new.secret)
    assert new.username != old.username and world.wiring.provider(SECRET).check_key(new)
