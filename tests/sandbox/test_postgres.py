"""The PostgreSQL sandbox: a real server, scram-sha-256 only, every statement logged."""

from __future__ import annotations

import hashlib
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil  # type: ignore[import-untyped]
import psycopg
import pytest
from psycopg import sql

from sandbox.postgres import ADMIN_ROLE, SUPERUSER, PostgresInfo, PostgresSandbox

ROLES = {
    "intelliprompt": ("intelliprompt", "prod-password-0123456789"),
    "intelliprompt_staging": ("intelliprompt_staging", "staging-password-0123456789"),
}
LEGACY = {"legacy_app": ("legacy_app", "legacy-password-0123456789")}
# the wheel's PostgreSQL, and any a distribution installed (Debian's 15, say)
BINARIES = [None, *sorted(p.parent for p in Path("/usr/lib/postgresql").glob("*/bin/postgres"))]


def gone(pid: int) -> bool:
    """The process has ended (a zombie waiting for a reaper counts as ended)."""
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


@pytest.fixture
def pg_dir() -> Iterator[Path]:
    """A directory the unprivileged PostgreSQL user can reach. Not under pytest's tmp_path:
    every pytest run as root resets /tmp/pytest-of-root to mode 0700, which would cut off a
    server started by a concurrent run."""
    with tempfile.TemporaryDirectory(prefix="secretops-pg-") as directory:
        yield Path(directory)


@pytest.fixture(scope="module", params=BINARIES,
                ids=lambda b: "wheel" if b is None else f"pg{b.parent.name}")
def cluster(request: pytest.FixtureRequest) -> Iterator[PostgresSandbox]:
    directory = tempfile.TemporaryDirectory(prefix="secretops-pg-")
    sandbox = PostgresSandbox(Path(directory.name), bin_dir=request.param)
    info = sandbox.start()
    with psycopg.connect(info.admin_conninfo(), autocommit=True) as superuser:
        # a role and a database someone made with the superuser before the admin existed
        superuser.execute("CREATE ROLE legacy_app LOGIN")
        superuser.execute("CREATE DATABASE legacy_app")
    sandbox.seed(ROLES | LEGACY)
    sandbox.seed(ROLES | LEGACY)  # idempotent
    yield sandbox
    sandbox.stop()
    assert gone(info.pid)
    directory.cleanup()


@pytest.fixture(scope="module")
def server(cluster: PostgresSandbox) -> PostgresInfo:
    """The cluster as its bootstrap superuser sees it."""
    assert cluster.info is not None
    return cluster.info


@pytest.fixture(scope="module")
def admin(cluster: PostgresSandbox) -> PostgresInfo:
    """The cluster as the admin login handed to secretops sees it."""
    assert cluster.admin is not None
    return cluster.admin


def test_scram_login_and_items(server: PostgresInfo) -> None:
    with psycopg.connect(
        server.conninfo("intelliprompt", ROLES["intelliprompt"][1], "intelliprompt")
    ) as conn:
        assert conn.execute("SELECT count(*) FROM items").fetchone() == (3,)
        conn.execute("INSERT INTO items (name) VALUES ('rotation-check')")
        assert conn.execute("SELECT current_user").fetchone() == ("intelliprompt",)
    with pytest.raises(psycopg.OperationalError, match=r"permission denied|not permitted"):
        psycopg.connect(
            server.conninfo(
                "intelliprompt_staging", ROLES["intelliprompt_staging"][1], "intelliprompt"
            )
        )


def test_wrong_password_refused(server: PostgresInfo) -> None:
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(server.conninfo("intelliprompt", "not-the-password", "intelliprompt"))
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(server.conninfo("postgres", "not-the-password"))
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(server.conninfo(ADMIN_ROLE, "not-the-password"))


def test_only_scram(server: PostgresInfo) -> None:
    with psycopg.connect(server.admin_conninfo(), autocommit=True) as admin:
        assert admin.execute("SHOW password_encryption").fetchone() == ("scram-sha-256",)
        assert admin.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)
        methods = {row[0] for row in admin.execute("SELECT auth_method FROM pg_hba_file_rules")}
        assert methods == {"scram-sha-256"}
        stored = admin.execute(
            "SELECT rolpassword FROM pg_authid WHERE rolname = 'intelliprompt'"
        ).fetchone()
        assert stored is not None and stored[0].startswith("SCRAM-SHA-256$4096:")
        md5 = "md5" + hashlib.md5(b"legacy-pw-1234legacy").hexdigest()
        admin.execute(f"CREATE ROLE legacy LOGIN PASSWORD '{md5}'")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(server.conninfo("legacy", "legacy-pw-1234"))
    password = ROLES["intelliprompt"][1]
    for method in ("password", "md5"):
        with pytest.raises(psycopg.OperationalError, match=r"SASL|sasl|scram"):
            psycopg.connect(
                server.conninfo("intelliprompt", password, "intelliprompt")
                + f" require_auth={method}"
            )
    psycopg.connect(
        server.conninfo("intelliprompt", password, "intelliprompt") + " require_auth=scram-sha-256"
    ).close()


def test_the_admin_is_a_createrole_non_superuser(server: PostgresInfo,
                                                 admin: PostgresInfo) -> None:
    """As the master user of RDS or Cloud SQL: it logs in, may create roles and databases, is
    refused what only a superuser may do, and holds ADMIN OPTION on the application's roles
    (those it made and the one the superuser made before it) on 16+."""
    assert (server.admin_user, admin.admin_user) == (SUPERUSER, ADMIN_ROLE)
    with psycopg.connect(admin.admin_conninfo(), autocommit=True) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (ADMIN_ROLE,)
        attributes = conn.execute(
            "SELECT rolsuper, rolcreaterole, rolcreatedb, rolcanlogin, rolreplication,"
            " rolbypassrls FROM pg_roles WHERE rolname = current_user").fetchone()
        assert attributes == (False, True, True, True, False, False)
        version = conn.info.server_version
        for refused in ("SELECT rolpassword FROM pg_authid",
                        "ALTER ROLE postgres PASSWORD NULL",
                        "CREATE ROLE would_be_root SUPERUSER",
                        "ALTER ROLE current_user SUPERUSER"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(refused)
    with psycopg.connect(server.admin_conninfo(), autocommit=True) as superuser:
        owners = dict(superuser.execute(
            "SELECT datname, pg_get_userbyid(datdba) FROM pg_database"
            " WHERE datname = ANY(%s)", ([*ROLES, *LEGACY],)).fetchall())
        assert owners == {role: role for role in [*ROLES, *LEGACY]}
        for database in [*ROLES, *LEGACY]:
            assert superuser.execute("SELECT has_database_privilege(%s, %s, 'CONNECT')",
                                     (ADMIN_ROLE, database)).fetchone() == (True,)
        for granted in ("pg_signal_backend", "pg_read_all_stats"):
            assert superuser.execute(
                "SELECT pg_has_role(%s, %s, 'MEMBER')", (ADMIN_ROLE, granted)
            ).fetchone() == (True,)
        if version >= 160000:
            held = dict(superuser.execute(
                "SELECT roleid::regrole::text, (admin_option, inherit_option, set_option)::text"
                " FROM pg_auth_members WHERE member = %s::regrole", (ADMIN_ROLE,)).fetchall())
            for role in [*ROLES, *LEGACY]:
                assert held[role] == "(t,f,f)", held
            assert "postgres" not in held


def test_the_admin_alters_every_application_role(server: PostgresInfo,
                                                 admin: PostgresInfo) -> None:
    """ALTER ROLE ... PASSWORD with a libpq verifier, as the admin, on a role it made and on
    the role the superuser made; each logs in with the new password (scram only), and the
    log holds neither password."""
    new_password = f"rotated-{uuid.uuid4()}"
    for role in ("intelliprompt", "legacy_app"):
        database = (ROLES | LEGACY)[role][0]
        with psycopg.connect(admin.admin_conninfo(), autocommit=True) as conn:
            verifier = conn.pgconn.encrypt_password(
                new_password.encode(), role.encode(), b"scram-sha-256").decode()
            conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                sql.Identifier(role), sql.Literal(verifier)))
        psycopg.connect(server.conninfo(role, new_password, database)
                        + " require_auth=scram-sha-256").close()
        with psycopg.connect(admin.admin_conninfo(), autocommit=True) as conn:
            verifier = conn.pgconn.encrypt_password(
                (ROLES | LEGACY)[role][1].encode(), role.encode(), b"scram-sha-256").decode()
            conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                sql.Identifier(role), sql.Literal(verifier)))
    with psycopg.connect(server.conninfo("legacy_app", LEGACY["legacy_app"][1],
                                         "legacy_app")) as conn:
        assert conn.execute("SELECT count(*) FROM items").fetchone() == (3,)
    log = server.log_path.read_text()
    assert new_password not in log
    assert LEGACY["legacy_app"][1] not in log


def test_statements_logged_without_passwords(server: PostgresInfo,
                                             admin: PostgresInfo) -> None:
    marker = f"marker-{uuid.uuid4()}"
    with psycopg.connect(server.admin_conninfo()) as conn:
        conn.execute(f"SELECT '{marker}'")
    deadline = time.monotonic() + 5
    while marker not in server.log_path.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    log = server.log_path.read_text()
    assert f"statement: SELECT '{marker}'" in log
    for _, password in ROLES.values():
        assert password not in log
    assert server.admin_password not in log
    assert admin.admin_password not in log


def test_runs_unprivileged_on_loopback(server: PostgresInfo) -> None:
    process = psutil.Process(server.pid)
    if psutil.Process().username() == "root":
        assert process.username() == "embedded_postgres"
    ports = {
        conn.laddr
        for conn in process.net_connections(kind="inet")
        if conn.status == psutil.CONN_LISTEN
    }
    assert {address.ip for address in ports} == {"127.0.0.1"}
    assert {address.port for address in ports} == {server.port}


def test_fresh_start_is_fast_and_empty(pg_dir: Path) -> None:
    sandbox = PostgresSandbox(pg_dir / "fresh")
    started = time.perf_counter()
    first = sandbox.start()
    first_seconds = time.perf_counter() - started
    assert sandbox.admin is not None
    first_admin = sandbox.admin.admin_password
    sandbox.seed({"app": ("app", "app-password-0123456789")})
    started = time.perf_counter()
    second = sandbox.start()
    second_seconds = time.perf_counter() - started
    try:
        assert gone(first.pid)
        assert second.admin_password != first.admin_password
        assert sandbox.admin is not None and sandbox.admin.admin_password != first_admin
        with psycopg.connect(sandbox.admin.admin_conninfo()) as conn:
            assert conn.execute("SELECT current_user").fetchone() == (ADMIN_ROLE,)
        with psycopg.connect(second.admin_conninfo(), autocommit=True) as admin:
            assert admin.execute("SELECT 1 FROM pg_roles WHERE rolname = 'app'").fetchone() is None
        assert not list(pg_dir.glob("fresh/.pwfile-*"))
    finally:
        sandbox.stop()
    print(f"fresh start {first_seconds:.2f} s, restart {second_seconds:.2f} s")
    assert first_seconds < 3 and second_seconds < 3
