"""rotate-all against the sandbox: every due secret of staging rotated in one run, the keys
that share the backend Deployment restarted together, the rotation time recorded in the
Kubernetes Secret so that the next run finds nothing due; a fleet run that keeps going while
the provider throttles half of its requests; a key refused after the restart rolled back
while the rest of the run goes on; a run that waits for a secret another run holds; the
listing of a provider's keys shared by a fleet's revocations; a run killed in a lane, after
the new key became current, and a rerun that finishes the job though nothing is due."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from flows.rotate_all import rotate_all
from secretops import locks
from secretops.models import Stage
from secretops.prefect_setup import lock_name, release_lock
from secretops.staging import stage_key
from tasks.api_keys import shared_listings
from tasks.fleet import lanes
from tests.faults.test_matrix import assert_db_converged, remember_db
from tests.flows.api_key_world import (
    assert_converged,
    faults,
    lock_slots,
    mint_console_key,
    remember_all,
    secretops_cli,
)
from tests.flows.conftest import World
from tests.flows.kills import mark_crashed_and_unlock, run_until_killed
from tests.flows.test_rotate_api_key_faults import RevokeWhenPromoted, snapshot

ENV = "staging"
# the backend's secrets: the CI key has tests of its own (tests/flows/test_rotate_aws_key.py)
BACKEND = ["openai", "anthropic", "db-password"]
REVISION = "deployment.kubernetes.io/revision"


def backend_revision(world: World) -> int:
    """The backend Deployment's rollout revision: one more for every restart."""
    namespace = world.inventory.namespace(ENV)
    deployment = world.wiring.cluster().apps.read_namespaced_deployment("backend", namespace)
    return int(deployment.metadata.annotations[REVISION])


def run(world: World, **params: Any) -> Any:
    state = asyncio.run(rotate_all(environments=[ENV], inventory=world.path, return_state=True,
                                   secrets=BACKEND, **params))
    assert state.is_completed(), state.message
    return state


@pytest.mark.usefixtures("clean_prefect")
def test_rotate_all_restarts_shared_consumers_once_and_records_the_time(world: World) -> None:
    old = {secret: assert_converged(world, secret, ENV) for secret in ("openai", "anthropic")}
    old_db = assert_db_converged(world, ENV)
    world.seen += [*old.values(), old_db.secret]
    stage_key(world.wiring.stores("anthropic", ENV), mint_console_key(world, ENV))
    revision = backend_revision(world)
    began = datetime.now(UTC) - timedelta(seconds=1)

    state = run(world, force=True, max_concurrency=4)

    assert state.message == "3 rotated, 0 failed and rolled back, 0 waiting for a person"
    report = str(state.result())
    assert "(forced): rotated: new key current and verified, old key revoked (" in report, report
    assert "rotated: rotated" not in report
    for secret in old:
        remember_all(world, secret, ENV)
        assert assert_converged(world, secret, ENV) != old[secret]
        assert not world.wiring.provider(secret).check_key(old[secret])
        assert lock_slots(secret) == 0
    remember_db(world, ENV)
    assert assert_db_converged(world, ENV, old_db).secret != old_db.secret
    # openai and anthropic share the backend: one restart for both, one for the database login
    assert backend_revision(world) == revision + 2
    for secret in ("openai", "anthropic", "db-password"):
        version = world.wiring.stores(secret, ENV)[0].version(Stage.current)
        assert version is not None and version.created_at is not None
        assert began <= version.created_at <= datetime.now(UTC)

    again = run(world)

    assert again.message == "0 rotated, 0 failed and rolled back, 0 waiting for a person"
    assert backend_revision(world) == revision + 2


@pytest.mark.usefixtures("clean_prefect")
def test_rotate_all_rides_out_a_throttling_provider(world: World) -> None:
    """Half of the provider's answers are 429 or 503: the adapter's own retries (with the
    provider's Retry-After) carry every call through and the key rotates in the first run."""
    old = assert_converged(world, "openai", ENV)
    world.seen.append(old)
    knobs = {"error_rate": 0.5, "codes": [429, 503], "retry_after_ms": 20}
    with faults(world, openai=knobs):
        state = run(world, force=True)
    remember_all(world, "openai", ENV)
    remember_db(world, ENV)
    assert state.message == "2 rotated, 0 failed and rolled back, 1 waiting for a person"
    assert assert_converged(world, "openai", ENV) != old
    assert not world.wiring.provider("openai").check_key(old)


@pytest.mark.usefixtures("clean_prefect")
def test_rotate_all_rolls_back_a_key_refused_after_the_restart(world: World) -> None:
    """The new OpenAI key is revoked as soon as it is current: the batch's restart fails, the
    previous key is put back and the backend restarted on it; the database login, in its own
    task, still rotates; the run fails at the end with the report saying which."""
    old = assert_converged(world, "openai", ENV)
    world.seen.append(old)
    watcher = RevokeWhenPromoted(world, "openai", ENV, old)
    watcher.start()
    try:
        state = asyncio.run(rotate_all(environments=[ENV], inventory=world.path, return_state=True,
                                       force=True, secrets=BACKEND))
    finally:
        watcher.stop.set()
        watcher.join(10)
    assert watcher.revoked is not None, "the store's current key never changed"
    world.seen.append(watcher.revoked)
    remember_db(world, ENV)
    assert state.is_failed(), state.message
    assert "1 of 3 rotations did not complete" in (state.message or "")
    assert assert_converged(world, "openai", ENV) == old
    assert not world.wiring.provider("openai").check_key(watcher.revoked)
    assert lock_slots("openai") == 0
    assert_db_converged(world, ENV)


@pytest.mark.usefixtures("clean_prefect")
def test_rotate_all_waits_for_a_secret_another_run_holds(world: World) -> None:
    """Another run holds the OpenAI key's lock for two seconds: the lane cannot take all its
    locks at once, takes its groups' locks one group at a time, waits for the busy one and
    then rotates it."""
    old = assert_converged(world, "openai", ENV)
    world.seen.append(old)
    holding = threading.Event()

    def other_run() -> None:
        with locks.hold([lock_name("openai")]):
            holding.set()
            time.sleep(2)

    other = threading.Thread(target=contextvars.copy_context().run, args=(other_run,))
    other.start()
    assert holding.wait(20)
    began = time.monotonic()
    state = run(world, force=True)
    waited = time.monotonic() - began
    other.join(20)
    remember_all(world, "openai", ENV)
    remember_db(world, ENV)
    assert state.message == "2 rotated, 0 failed and rolled back, 1 waiting for a person"
    assert waited > 1.5
    assert assert_converged(world, "openai", ENV) != old
    assert not world.wiring.provider("openai").check_key(old)
    assert lock_slots("openai") == 0


def test_a_shared_listing_is_taken_again_only_for_a_key_it_does_not_have(world: World) -> None:
    provider = world.wiring.provider("openai")
    with shared_listings() as listings:
        first = listings.keys(provider, [], {})
        new = provider.create_key("secretops-test-shared-listing")
        world.seen.append(new.value)
        try:
            assert listings.keys(provider, [], {}) is first
            again = listings.keys(provider, [new.value], {})
            assert new.key.id not in {key.id for key in first}
            assert new.key.id in {key.id for key in again}
            assert listings.keys(provider, [new.value], {}) is again
        finally:
            assert provider.revoke_key(new.key.id)


def test_groups_are_dealt_round_robin_into_at_most_the_concurrency_lanes() -> None:
    groups = [[f"g{i}"] for i in range(7)]
    assert lanes(groups, 3) == [[["g0"], ["g3"], ["g6"]], [["g1"], ["g4"]], [["g2"], ["g5"]]]
    assert lanes(groups[:2], 8) == [[["g0"]], [["g1"]]]
    assert lanes([], 4) == []


@pytest.mark.usefixtures("clean_prefect")
def test_cli_dry_run_reports_every_secret_and_changes_nothing(world: World, kubectl: Any) -> None:
    before = {secret: snapshot(world, kubectl, secret, ENV) for secret in ("openai", "anthropic")}
    done = secretops_cli("rotate", "all", "--env", ENV, "--force", "--dry-run",
                         "--inventory", world.path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "dry run: nothing changed" in done.stdout
    for secret in ("openai", "anthropic", "db-password"):
        assert f"{secret} in {ENV}: last rotated" in done.stdout, done.stdout
    assert {secret: snapshot(world, kubectl, secret, ENV)
            for secret in ("openai", "anthropic")} == before
    refused = secretops_cli("rotate", "all", "--max-concurrency", "0", "--inventory", world.path)
    assert refused.returncode == 2
    assert "--max-concurrency: must be at least 1, not 0" in refused.stderr


@pytest.mark.usefixtures("clean_prefect")
@pytest.mark.parametrize("after", ["update_secret", "restart_pods"])
def test_rotate_all_killed_in_a_lane_then_rerun_finishes_the_rotation(world: World,
                                                                       after: str) -> None:
    """SIGKILL right after a lane's step: the new OpenAI key is current (or staged) and the
    old one still works. The rerun, not forced, finds the key not due by its schedule but
    holding a pending version, finishes the rotation and revokes the old key."""
    old = assert_converged(world, "openai", ENV)
    world.seen.append(old)
    run_id = run_until_killed("flows.rotate_all:rotate_all", f"step:{after}", {
        "environments": [ENV], "force": True, "inventory": world.path, "max_concurrency": 2,
        "secrets": BACKEND}, timeout=180)
    remember_all(world, "openai", ENV)
    assert world.wiring.stores("openai", ENV)[0].read(Stage.pending) is not None
    assert world.wiring.provider("openai").check_key(old)
    mark_crashed_and_unlock(run_id, "openai")
    release_lock("anthropic")  # the lane held the locks of its whole group

    state = run(world)

    remember_all(world, "openai", ENV)
    remember_db(world, ENV)
    report = str(state.result())
    assert "openai in staging" in report and "a pending version is staged" in report, report
    assert assert_converged(world, "openai", ENV) != old
    assert not world.wiring.provider("openai").check_key(old)
    assert lock_slots("openai") == lock_slots("anthropic") == 0
    assert_db_converged(world, ENV)
