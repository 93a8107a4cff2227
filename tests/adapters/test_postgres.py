"""PostgresDatabase against a real PostgreSQL with scram-sha-256 and log_statement=all."""

from __future__ import annotations

import secrets
import uuid

import psycopg
import pytest

from sandbox.postgres import PostgresInfo
from secretops.adapters.postgres import PostgresDatabase, check_role, scram_verifier
from secretops.errors import NotRetryable
from secretops.models import SecretValue


def _password() -> SecretValue:
    return SecretValue(secrets.token_urlsafe(30))


def _role() -> str:
    return f"app_{uuid.uuid4().hex[:10]}"


def _login(pg: PostgresInfo, role: str, password: SecretValue) -> bool:
    try:
        with psycopg.connect(
            host=pg.host, port=pg.port, user=role, password=password.reveal(), dbname="postgres"
        ):
            return True
    except psycopg.OperationalError:
        return False


def _admin(pg: PostgresInfo) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(
        host=pg.host,
        port=pg.port,
        user=pg.admin_user,
        password=pg.admin_password,
        dbname="postgres",
        autocommit=True,
    )


def test_set_password_changes_the_login_and_never_logs_the_plaintext(
    pg: PostgresInfo, database: PostgresDatabase
) -> None:
    role = _role()
    old, new = _password(), _password()
    with _admin(pg) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{old.reveal()}'")
    assert _login(pg, role, old)

    database.set_password(role, new)

    assert _login(pg, role, new)
    assert not _login(pg, role, old)
    assert database.can_login(role, new)
    assert not database.can_login(role, old)
    with _admin(pg) as admin:
        row = admin.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (role,))
        stored = str(row.fetchone()[0])  # type: ignore[index]
    assert stored.startswith("SCRAM-SHA-256$4096:")
    log = pg.log_path.read_text()
    assert "ALTER ROLE" in log and role in log
    assert new.reveal() not in log


def test_scram_verifier_known_vector() -> None:
    salt = bytes(range(16))
    verifier = scram_verifier(SecretValue("pencil-and-paper"), salt=salt)
    assert verifier.startswith("SCRAM-SHA-256$4096:AAECAwQFBgcICQoLDA0ODw==$")
    assert verifier == scram_verifier(SecretValue("pencil-and-paper"), salt=salt)
    assert verifier != scram_verifier(SecretValue("pencil-and-paper"))


def test_ensure_login_role_is_idempotent_and_inherits(
    pg: PostgresInfo, database: PostgresDatabase
) -> None:
    owner, login = _role(), _role()
    with _admin(pg) as admin:
        admin.execute(f"CREATE ROLE {owner} NOLOGIN")
        admin.execute(f"CREATE TABLE {owner}_data (x int)")
        admin.execute(f"ALTER TABLE {owner}_data OWNER TO {owner}")
    assert database.ensure_login_role(login, owner) is True
    assert database.ensure_login_role(login, owner) is False
    password = _password()
    database.set_password(login, password)
    with psycopg.connect(
        host=pg.host, port=pg.port, user=login, password=password.reveal(), dbname="postgres"
    ) as connection:
        connection.execute(f"INSERT INTO {owner}_data VALUES (1)")
    with _admin(pg) as admin:
        member = admin.execute("SELECT pg_has_role(%s, %s, 'USAGE')", (login, owner)).fetchone()
    assert member == (True,)


def test_terminate_sessions_and_disable_password(
    pg: PostgresInfo, database: PostgresDatabase
) -> None:
    role = _role()
    password = _password()
    with _admin(pg) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN")
    database.set_password(role, password)
    session = psycopg.connect(
        host=pg.host, port=pg.port, user=role, password=password.reveal(), dbname="postgres"
    )
    assert database.terminate_sessions(role) == 1
    with pytest.raises(psycopg.OperationalError):
        session.execute("SELECT 1")
    session.close()
    assert database.terminate_sessions(role) == 0

    database.disable_password(role)
    assert not database.can_login(role, password)
    with _admin(pg) as admin:
        row = admin.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (role,))
        assert row.fetchone() == (None,)


def test_bad_role_names_never_reach_sql(database: PostgresDatabase) -> None:
    for bad in ("Robert'); DROP TABLE x;--", "UPPER", "9abc", "", "a" * 64, 'x"y'):
        with pytest.raises(NotRetryable):
            check_role(bad)
        with pytest.raises(NotRetryable):
            database.set_password(bad, SecretValue("whatever-password"))
    assert check_role("intelliprompt_a") == "intelliprompt_a"


def test_errors_name_the_role_not_the_password(database: PostgresDatabase) -> None:
    password = _password()
    with pytest.raises(NotRetryable) as failure:
        database.set_password("no_such_role_here", password)
    text = str(failure.value)
    assert "no_such_role_here" in text
    assert password.reveal() not in text
    assert "SCRAM" not in text


def test_can_use_application_reads_the_tables(pg: PostgresInfo) -> None:
    dbname, owner, login, stranger = _role(), _role(), _role(), _role()
    with _admin(pg) as admin:
        admin.execute(f"CREATE ROLE {owner} NOLOGIN")
        admin.execute(f"CREATE DATABASE {dbname} OWNER {owner}")
    with psycopg.connect(
        host=pg.host,
        port=pg.port,
        user=pg.admin_user,
        password=pg.admin_password,
        dbname=dbname,
        autocommit=True,
    ) as admin:
        admin.execute("CREATE TABLE items (id int)")
        admin.execute(f"ALTER TABLE items OWNER TO {owner}")
    database = PostgresDatabase(
        pg.host, pg.port, dbname, pg.admin_user, SecretValue(pg.admin_password)
    )
    password = _password()
    database.ensure_login_role(login, owner)
    database.set_password(login, password)
    database.ensure_login_role(stranger, "pg_monitor")
    database.set_password(stranger, password)

    assert database.can_use_application(login, password)
    assert not database.can_use_application(login, _password())
    assert not database.can_use_application(stranger, password)
