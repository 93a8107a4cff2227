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

from sandbox.postgres import PostgresInfo, PostgresSandbox

ROLES = {
    "intelliprompt": ("intelliprompt", "prod-password-0123456789"),
    "intelliprompt_staging": ("intelliprompt_staging", "staging-password-0123456789"),
}


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


@pytest.fixture(scope="module")
def server() -> Iterator[PostgresInfo]:
    directory = tempfile.TemporaryDirectory(prefix="secretops-pg-")
    sandbox = PostgresSandbox(Path(directory.name))
    info = sandbox.start()
    sandbox.seed(ROLES)
    sandbox.seed(ROLES)  # idempotent
    yield info
    sandbox.stop()
    assert gone(info.pid)
    directory.cleanup()


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


def test_statements_logged_without_passwords(server: PostgresInfo) -> None:
    marker = f"marker-{uuid.uuid4()}"
    with psycopg.connect(server.admin_conninfo()) as admin:
        admin.execute(f"SELECT '{marker}'")
    deadline = time.monotonic() + 5
    while marker not in server.log_path.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    log = server.log_path.read_text()
    assert f"statement: SELECT '{marker}'" in log
    for _, password in ROLES.values():
        assert password not in log
    assert server.admin_password not in log


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
    sandbox.seed({"app": ("app", "app-password-0123456789")})
    started = time.perf_counter()
    second = sandbox.start()
    second_seconds = time.perf_counter() - started
    try:
        assert gone(first.pid)
        assert second.admin_password != first.admin_password
        with psycopg.connect(second.admin_conninfo(), autocommit=True) as admin:
            assert admin.execute("SELECT 1 FROM pg_roles WHERE rolname = 'app'").fetchone() is None
        assert not list(pg_dir.glob("fresh/.pwfile-*"))
    finally:
        sandbox.stop()
    print(f"fresh start {first_seconds:.2f} s, restart {second_seconds:.2f} s")
    assert first_seconds < 3 and second_seconds < 3
