"""rotate-db-password against the sandbox: real PostgreSQL, real Secrets, real pods, real kills.

Each test asserts the world afterwards: what PostgreSQL accepts (fresh psycopg logins), what
every store holds, what the pods that started after the restart logged, what PostgreSQL's
own statement log contains, and (``clean_prefect``) that no value reached Prefect.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import yaml
from dotenv import dotenv_values
from psycopg.conninfo import make_conninfo

from flows.rotate_db_password import RotationFailed, rotate_db_password
from secretops.errors import InventoryError, NotRetryable
from secretops.inventory import load_inventory
from secretops.models import Credential, SecretValue, Stage
from tests.flows.conftest import World
from tests.flows.kills import mark_crashed_and_unlock, run_until_killed

SECRET = "db-password"
CASES = [("development", "single"), ("staging", "single"), ("staging", "alternating"),
         ("production", "single"), ("production", "alternating")]
BOUNDARIES = ["pending-stored", "create_new_password", "update_in_database", "update_secret",
              "sync_external_secret", "restart_pods", "verify_logs", "verify_new_login",
              "invalidate_old_password"]
CLUSTER_ONLY = ("sync_external_secret", "restart_pods", "verify_logs")


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
    """A session as the admin login the flows use, with the credential they resolve."""
    info = world.info["postgres"]
    password = world.wiring.credential("postgres-admin").reveal()
    return psycopg.connect(make_conninfo(host=info["host"], port=str(info["port"]),
                                         dbname="postgres", user=info["admin_user"],
                                         password=password), autocommit=True)


def superuser(world: World) -> psycopg.Connection[Any]:
    """A session as the cluster's bootstrap superuser, which the flows are never given: it
    alone reads ``pg_authid``."""
    info = world.info["postgres"]
    password = (Path(world.info["dir"]) / "credentials" / "postgres-superuser-password"
                ).read_text().strip()
    return psycopg.connect(make_conninfo(host=info["host"], port=str(info["port"]),
                                         dbname="postgres", user=info["superuser"],
                                         password=password), autocommit=True)


def roles(world: World) -> list[tuple[Any, ...]]:
    """Every role of the server with its password verifier and login flag."""
    with superuser(world) as connection:
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


@pytest.fixture()
def figure(capsys: pytest.CaptureFixture[str]) -> Any:
    """``figure(line)``: a measured figure, printed past pytest's capture so the run shows it."""

    def say(line: str) -> None:
        with capsys.disabled():
            print(f"\n[figure] {line}", flush=True)

    return say


@pytest.mark.usefixtures("clean_prefect")
@pytest.mark.parametrize(("environment", "strategy"), CASES)
def test_rotation_end_to_end_under_load(world: World, kubectl: Any, load: Any, figure: Any,
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
            report = asyncio.run(rotate_db_password(
                environment=environment, strategy=strategy, terminate_old_sessions=True,
                inventory=world.path))
        window = ("single-user strategy: new connections made with the old password were "
                  "refused for ")
        assert (window in report) is (strategy == "single"), report
        figure(f"{environment}/{strategy}: {time.monotonic() - begun:.1f} s, "
               f"{traffic.failed} of {traffic.sent} requests failed {traffic.errors}")
        if strategy == "alternating":
            assert traffic.failed == 0, traffic.errors
    else:
        asyncio.run(rotate_db_password(environment=environment, strategy=strategy,
                                       terminate_old_sessions=True, inventory=world.path))
        figure(f"{environment}/{strategy}: {time.monotonic() - begun:.1f} s")
    assert_rotated(world, kubectl, environment, old, since)
    with pytest.raises(psycopg.OperationalError):
        held.execute("SELECT 1")
    held.close()


def killed_at(world: World, environment: str, strategy: str, after: str) -> str:
    """Run the flow in a subprocess that SIGKILLs itself at ``after``; mark the dead run
    Crashed (as the zombie automation would) and free its lock. Returns the run's id."""
    params = {"environment": environment, "strategy": strategy, "inventory": world.path}
    run_id = run_until_killed("flows.rotate_db_password:rotate_db_password", after, params,
                              timeout=120)
    mark_crashed_and_unlock(run_id, SECRET)
    return run_id


@pytest.mark.usefixtures("clean_prefect")
@pytest.mark.parametrize(("environment", "strategy"),
                         [("development", "single"), ("staging", "alternating")])
def test_sigkill_at_every_step_boundary_then_rerun(world: World, kubectl: Any, figure: Any,
                                                   environment: str, strategy: str) -> None:
    """For each step boundary: the run dies there, is marked Crashed, its lock is freed, and a
    normal rerun converges to one working password with the application healthy and the
    previous credentials refused; nobody is locked out at any point."""
    begun = time.monotonic()
    boundaries = BOUNDARIES
    if world.inventory.namespace(environment) is None:
        # without a cluster these three steps touch nothing: dying after them leaves the same
        # world as dying after update_secret
        boundaries = [b for b in BOUNDARIES if b not in CLUSTER_ONLY]
    for after in boundaries:
        old = current(world, environment)
        since = datetime.now(UTC)
        killed_at(world, environment, strategy, after)
        for store in world.wiring.stores(SECRET, environment):
            for stage in Stage:
                credential = store.read(stage)
                if credential is not None:
                    world.seen.append(credential.secret)
        asyncio.run(rotate_db_password(environment=environment, strategy=strategy,
                                       inventory=world.path))
        new = assert_rotated(world, kubectl, environment, old, since)
        if world.inventory.namespace(environment):
            service = world.info["services"][environment]
            assert httpx.get(service, timeout=10).status_code == 200, after
        assert new.username is not None
    figure(f"{environment}/{strategy}: {len(boundaries)} kills and reruns in "
           f"{time.monotonic() - begun:.1f} s")


def world_state(world: World, kubectl: Any) -> dict[str, Any]:
    """Everything a rotation could change: every stage of every store of the secret, the
    roles of the server, and the backend Deployments' pod templates."""
    state: dict[str, Any] = {"roles": roles(world)}
    for environment in world.inventory.environments_of(SECRET):
        for store in world.wiring.stores(SECRET, environment):
            state[store.name] = [store.version(stage) for stage in Stage]
        namespace = world.inventory.namespace(environment)
        if namespace:
            deployment = json.loads(kubectl("get", "deployment", "backend", "-n", namespace,
                                            "-o", "json").stdout)
            state[namespace] = deployment["spec"]["template"]
    return state


@pytest.mark.usefixtures("clean_prefect")
def test_alternating_in_development_is_refused_before_anything_runs(
    world: World, kubectl: Any
) -> None:
    """Development's stores (a ``.env`` key without a user key, a Docker secret file) cannot
    switch the user, so alternating there is refused up front instead of silently rotating
    the single role under an 'alternating' report."""
    before = world_state(world, kubectl)
    with pytest.raises(InventoryError, match="alternating strategy needs every store"):
        asyncio.run(rotate_db_password(environment="development", strategy="alternating",
                                       inventory=world.path))
    assert world_state(world, kubectl) == before


@pytest.mark.usefixtures("clean_prefect")
@pytest.mark.parametrize("environment", ["staging", "production"])
def test_dry_run_changes_nothing(world: World, kubectl: Any, environment: str) -> None:
    before = world_state(world, kubectl)
    report = asyncio.run(rotate_db_password(environment=environment, dry_run=True,
                                            inventory=world.path))
    assert "dry run: nothing changed" in report and "would run: 2. Update in database" in report
    assert world_state(world, kubectl) == before


def test_the_flows_admin_is_a_createrole_non_superuser(world: World, kubectl: Any) -> None:
    """The admin login every environment's inventory names, with the credential the flows
    resolve, is no superuser (as on RDS or Cloud SQL): refused what only a superuser may do,
    and the attempts leave the world unchanged."""
    info = world.info["postgres"]
    before = world_state(world, kubectl)
    assert info["admin_user"] != info["superuser"]
    for environment in world.inventory.environments_of(SECRET):
        assert world.inventory.postgres(environment).admin_user == info["admin_user"]
        assert world.wiring.database(environment).admin_user == info["admin_user"]
    with admin(world) as connection:
        assert connection.execute("SELECT current_user").fetchone() == (info["admin_user"],)
        attributes = connection.execute(
            "SELECT rolsuper, rolcreaterole FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
        assert attributes == (False, True)
        for statement in (f"ALTER ROLE {info['superuser']} PASSWORD NULL",
                          "ALTER ROLE current_user SUPERUSER",
                          "CREATE ROLE would_be_root SUPERUSER",
                          "SELECT rolpassword FROM pg_authid"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                connection.execute(statement)
    assert world_state(world, kubectl) == before


def take_privilege(world: World, role: str, back: bool = False) -> None:
    """As the superuser, take from the admin login (or give ``back``) what it needs to alter
    ``role``: ADMIN OPTION on it (16+), CREATEROLE (15)."""
    login = world.info["postgres"]["admin_user"]
    with superuser(world) as connection:
        if connection.info.server_version >= 160000:
            statement = (f"GRANT {role} TO {login} WITH ADMIN OPTION, INHERIT FALSE, SET FALSE"
                         if back else f"REVOKE ADMIN OPTION FOR {role} FROM {login}")
        else:
            statement = f"ALTER ROLE {login} {'CREATEROLE' if back else 'NOCREATEROLE'}"
        connection.execute(statement)


@pytest.mark.usefixtures("clean_prefect")
def test_an_admin_lacking_the_privilege_fails_in_one_line_and_changes_nothing(
    world: World, kubectl: Any
) -> None:
    """The admin login may not alter the application's role: step 2 fails with one line that
    names the role, the admin login and the privilege it lacks (no password, no chained
    traceback), the run is rolled back and the world is as it was. Given the privilege back,
    the same rotation succeeds."""
    environment = "development"
    role = world.inventory.role_for(SECRET, environment)
    login = world.info["postgres"]["admin_user"]
    before = world_state(world, kubectl)
    old = current(world, environment)
    pending = Credential(SecretValue(secrets.token_urlsafe(30)), role)
    world.seen.append(pending.secret)
    take_privilege(world, role)
    try:
        for store in world.wiring.stores(SECRET, environment):
            store.stage_pending(pending)
        with pytest.raises(RotationFailed) as failure:
            asyncio.run(rotate_db_password(environment=environment, strategy="single",
                                           inventory=world.path))
        text = str(failure.value)
        assert "\n" not in text and failure.value.__cause__ is None, text
        assert (f"PostgreSQL set password for role {role} failed: the admin login {login} "
                "(credential postgres-admin) lacks the privilege (42501 ") in text, text
        assert f"ADMIN OPTION on role {role}" in text or "CREATEROLE" in text, text
        assert not [v.fingerprint() for v in world.seen if v.reveal() in text]
        assert "SCRAM" not in text
        assert world_state(world, kubectl) == before
        assert reads_items(world, environment, old)
        assert not reads_items(world, environment, pending)
        assert_not_in_postgres_log(world)
    finally:
        take_privilege(world, role, back=True)
    since = datetime.now(UTC)
    asyncio.run(rotate_db_password(environment=environment, strategy="single",
                                   inventory=world.path))
    assert_rotated(world, kubectl, environment, old, since)


INJECTIONS = [
    "intelliprompt'; DROP ROLE intelliprompt; --",
    'intelliprompt" SUPERUSER',
    "intelliprompt; ALTER ROLE intelliprompt SUPERUSER",
    "intellipr\u043empt",  # Cyrillic small o
    "\u0131ntelliprompt",  # dotless i
    "\uff49ntelliprompt",  # fullwidth i
    "Intelliprompt",
    "intelliprompt\u200b",  # zero-width space
]


@pytest.mark.usefixtures("clean_prefect")
def test_injected_role_names_are_refused_before_anything_runs(
    world: World, kubectl: Any
) -> None:
    """A role name with quotes, semicolons or look-alike characters stops the inventory from
    loading (so the flow does nothing) and is refused by the adapter before any SQL; the
    server's roles are unchanged and its log never saw the name."""
    before = world_state(world, kubectl)
    document = yaml.safe_load(Path(world.path).read_text())
    database = world.wiring.database("staging")
    for number, role in enumerate(INJECTIONS):
        spec = next(s for s in document["secrets"] if s["id"] == SECRET)
        spec["role"] = {**spec["role"], "staging": role}
        bad = Path(world.path).with_name(f"inventory-injected-{number}.yaml")
        bad.write_text(yaml.safe_dump(document, allow_unicode=True))
        with pytest.raises(InventoryError, match="unsafe PostgreSQL role name"):
            load_inventory(bad)
        with pytest.raises(InventoryError, match="unsafe PostgreSQL role name"):
            asyncio.run(rotate_db_password(environment="staging", inventory=str(bad)))
        password = SecretValue("x" * 40)
        attempts: list[tuple[Any, tuple[Any, ...]]] = [
            (database.set_password, (role, password)),
            (database.can_login, (role, password)),
            (database.ensure_login_role, (role, "intelliprompt_staging")),
            (database.ensure_login_role, ("intelliprompt_staging_a", role)),
            (database.disable_password, (role,)),
            (database.terminate_sessions, (role,)),
        ]
        for method, args in attempts:
            with pytest.raises(NotRetryable, match="not a valid role name"):
                method(*args)
        bad.unlink()
    assert world_state(world, kubectl) == before
    log = Path(world.info["postgres"]["log"]).read_text(errors="replace")
    assert not [role for role in INJECTIONS if role in log]
