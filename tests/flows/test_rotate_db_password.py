"""rotate-db-password against the sandbox: real PostgreSQL, real Secrets, real pods, real kills.

Each test asserts the world afterwards: what PostgreSQL accepts (fresh psycopg logins), what
every store holds, what the pods that started after the restart logged, what PostgreSQL's
own statement log contains, and (``clean_prefect``) that no value reached Prefect.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from dotenv import dotenv_values
from psycopg.conninfo import make_conninfo

from flows.rotate_db_password import rotate_db_password
from secretops.adapters.postgres import PostgresDatabase
from secretops.errors import InventoryError, NotRetryable
from secretops.inventory import load_inventory
from secretops.models import Credential, SecretValue, Stage
from secretops.prefect_setup import release_lock
from tests.flows.conftest import World

SECRET = "db-password"
ROOT = Path(__file__).resolve().parents[2]
CASES = [("development", "single"), ("staging", "single"), ("staging", "alternating"),
         ("production", "single"), ("production", "alternating")]
BOUNDARIES = ["pending-stored", "create_new_password", "update_in_database", "update_secret",
              "sync_external_secret", "restart_pods", "verify_logs", "verify_new_login",
              "invalidate_old_password"]


def current(world: World, environment: str) -> Credential:
    """The one current credential: every store holds the same password (and user, where the
    store keeps one) and no pending version is left."""
    stores = world.wiring.stores(SECRET, environment)
    found = [store.read(Stage.current) for store in stores]
    assert all(c is not None for c in found), [s.name for s in stores]
    credentials = [c for c in found if c is not None]
    assert len({c.secret for c in credentials}) == 1, "stores disagree on the password"
    assert len({c.username for c in credentials if c.username}) <= 1, "stores disagree on user"
    assert all(store.read(Stage.pending) is None for store in stores)
    user = next((c.username for c in credentials if c.username),
                world.inventory.role_for(SECRET, environment))
    world.seen.append(credentials[0].secret)
    return Credential(credentials[0].secret, user)


def conninfo(world: World, environment: str, user: str, password: str) -> str:
    settings = world.inventory.postgres(environment)
    return make_conninfo(host=settings.host, port=str(settings.port), dbname=settings.database,
                         user=user, password=password, connect_timeout="5")


def reads_items(world: World, environment: str, credential: Credential) -> bool:
    """A fresh psycopg login with ``credential`` that reads the application's table."""
    assert credential.username
    try:
        with psycopg.connect(conninfo(world, environment, credential.username,
                                      credential.secret.reveal())) as connection:
            return bool(connection.execute("SELECT count(*) FROM items").fetchone())
    except psycopg.OperationalError as exc:
        assert "authentication failed" in str(exc) or "password" in str(exc), str(exc)
        return False


def admin(world: World) -> psycopg.Connection[Any]:
    info = world.info["postgres"]
    password = world.wiring.credential("postgres-admin").reveal()
    return psycopg.connect(make_conninfo(host=info["host"], port=str(info["port"]),
                                         dbname="postgres", user=info["admin_user"],
                                         password=password), autocommit=True)


def roles(world: World) -> list[tuple[Any, ...]]:
    """Every role of the server with its password verifier and login flag."""
    with admin(world) as connection:
        return connection.execute(
            "SELECT rolname, rolpassword, rolcanlogin FROM pg_authid ORDER BY 1").fetchall()


def assert_pods_healthy(world: World, kubectl: Any, environment: str, since: datetime) -> None:
    """Every pod of the backend started after ``since`` and logged ``API initialized``."""
    namespace = world.inventory.namespace(environment)
    if namespace is None:
        return
    pods = json.loads(kubectl("get", "pods", "-n", namespace, "-l", "app=backend",
                              "-o", "json").stdout)["items"]
    live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    assert len(live) >= 3, [p["metadata"]["name"] for p in pods]
    for pod in live:
        started = datetime.fromisoformat(pod["status"]["startTime"].replace("Z", "+00:00"))
        assert started >= since.replace(microsecond=0), pod["metadata"]["name"]
        log = kubectl("logs", "-n", namespace, pod["metadata"]["name"]).stdout
        assert "API initialized" in log, log


def assert_dotenv_agrees(world: World, new: Credential) -> None:
    """``.env`` DB_PASSWORD and DATABASE_URL and ``secrets/db_password.txt`` hold ``new``."""
    dev = Path(world.info["dir"]) / "dev"
    env = dotenv_values(dev / ".env")
    password = new.secret.reveal()
    assert env["DB_PASSWORD"] == password
    url = psycopg.conninfo.conninfo_to_dict(str(env["DATABASE_URL"]))
    assert url["password"] == password and url["user"] == new.username
    assert (dev / "secrets" / "db_password.txt").read_text().strip() == password


def assert_not_in_postgres_log(world: World) -> None:
    text = Path(world.info["postgres"]["log"]).read_text(errors="replace")
    assert "PASSWORD" in text  # the statements are logged, with verifiers only
    leaked = [v.fingerprint() for v in world.seen if v.reveal() in text]
    assert not leaked, f"passwords in PostgreSQL's log: {leaked}"


def assert_rotated(world: World, kubectl: Any, environment: str, old: Credential,
                   since: datetime) -> Credential:
    new = current(world, environment)
    assert new.secret != old.secret
    assert reads_items(world, environment, new)
    assert not reads_items(world, environment, old)
    assert_pods_healthy(world, kubectl, environment, since)
    if environment == "development":
        assert_dotenv_agrees(world, new)
    assert_not_in_postgres_log(world)
    return new


def figure(line: str) -> None:
    """A measured figure, printed past pytest's capture so the run shows it."""
    sys.__stdout__.write(f"\n[figure] {line}\n")
    sys.__stdout__.flush()


@pytest.mark.usefixtures("clean_prefect")
@pytest.mark.parametrize(("environment", "strategy"), CASES)
def test_rotation_end_to_end_under_load(world: World, kubectl: Any, load: Any,
                                        environment: str, strategy: str) -> None:
    """A rotation under steady requests at the service endpoint, with a session held open
    with the old credentials and ``terminate_old_sessions``: the new login works, the old one
    is refused and its session is gone, every store agrees, the new pods are healthy."""
    old = current(world, environment)
    held = psycopg.connect(conninfo(world, environment, str(old.username), old.secret.reveal()))
    since = datetime.now(UTC)
    service = world.info["services"].get(environment)
    begun = time.monotonic()
    if service:
        with load(environment) as traffic:
            rotate_db_password(environment=environment, strategy=strategy,
                               terminate_old_sessions=True, inventory=world.path)
        figure(f"{environment}/{strategy}: {time.monotonic() - begun:.1f} s, "
               f"{traffic.failed} of {traffic.sent} requests failed {traffic.errors}")
        if strategy == "alternating":
            assert traffic.failed == 0, traffic.errors
    else:
        rotate_db_password(environment=environment, strategy=strategy,
                           terminate_old_sessions=True, inventory=world.path)
        figure(f"{environment}/{strategy}: {time.monotonic() - begun:.1f} s")
    assert_rotated(world, kubectl, environment, old, since)
    with pytest.raises(psycopg.OperationalError):
        held.execute("SELECT 1")
    held.close()
