"""PostgresDatabase against a real PostgreSQL with scram-sha-256 and log_statement=all,
through an admin login that is a CREATEROLE non-superuser (as on AWS RDS or Cloud SQL)."""

from __future__ import annotations

import re
import secrets
import uuid

import psycopg
import pytest

from sandbox.postgres import PostgresInfo, ensure_admin
from secretops.adapters.postgres import PostgresDatabase, check_role, scram_verifier
from secretops.errors import NotRetryable
from secretops.models import SecretValue

ADMIN = "adapter_admin"


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


def _connect(pg: PostgresInfo, dbname: str = "postgres") -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(pg.admin_conninfo(dbname), autocommit=True)


def _verifier_of(pg: PostgresInfo, role: str) -> object:
    with _connect(pg) as superuser:
        row = superuser.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (role,))
        return row.fetchone()


@pytest.fixture(scope="module")
def admin_pg(pg: PostgresInfo) -> PostgresInfo:
    """The server as a LOGIN CREATEROLE CREATEDB NOSUPERUSER admin sees it."""
    return ensure_admin(pg, ADMIN)


@pytest.fixture(scope="module")
def database(admin_pg: PostgresInfo) -> PostgresDatabase:
    """The adapter with the non-superuser admin login, as the flows use it."""
    return PostgresDatabase(admin_pg.host, admin_pg.port, "postgres", admin_pg.admin_user,
                            SecretValue(admin_pg.admin_password), admin_credential="pg-admin")


def test_the_admin_is_not_a_superuser(admin_pg: PostgresInfo) -> None:
    with _connect(admin_pg) as admin:
        row = admin.execute("SELECT rolsuper, rolcreaterole FROM pg_roles"
                            " WHERE rolname = current_user").fetchone()
        assert row == (False, True)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            admin.execute("ALTER ROLE postgres PASSWORD NULL")


def test_set_password_changes_the_login_and_never_logs_the_plaintext(
    pg: PostgresInfo, admin_pg: PostgresInfo, database: PostgresDatabase
) -> None:
    """A role the admin made gets a libpq-computed verifier: it logs in with scram-sha-256
    only, the old password is refused, and the statement log holds neither password."""
    role = _role()
    old, new = _password(), _password()
    with _connect(admin_pg) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{old.reveal()}'")
        iterations = (admin.pgconn.parameter_status(b"scram_iterations") or b"4096").decode()
    assert _login(pg, role, old)

    database.set_password(role, new)

    assert _login(pg, role, new)
    assert not _login(pg, role, old)
    assert database.can_login(role, new)
    assert not database.can_login(role, old)
    psycopg.connect(pg.conninfo(role, new.reveal()) + " require_auth=scram-sha-256").close()
    stored = str(_verifier_of(pg, role)[0])  # type: ignore[index]
    assert stored.startswith(f"SCRAM-SHA-256${iterations}:")
    log = pg.log_path.read_text()
    assert "ALTER ROLE" in log and role in log
    assert new.reveal() not in log


def test_scram_verifier_comes_from_libpq(pg: PostgresInfo, admin_pg: PostgresInfo) -> None:
    """A fresh salt each time, in PostgreSQL's format, with the iteration count the server
    announces: a session's ``scram_iterations`` (16+) is followed."""
    role = _role()
    password = _password()
    with _connect(admin_pg) as admin:
        first = scram_verifier(admin, role, password)
        assert re.fullmatch(r"SCRAM-SHA-256\$\d+:[A-Za-z0-9+/=]{24}\$[A-Za-z0-9+/=]{44}:"
                            r"[A-Za-z0-9+/=]{44}", first), "not PostgreSQL's verifier format"
        assert first != scram_verifier(admin, role, password)
        assert password.reveal() not in first
        if admin.info.server_version < 160000:
            return
        admin.execute("SET scram_iterations = 5000")
        stronger = scram_verifier(admin, role, password)
        assert stronger.startswith("SCRAM-SHA-256$5000:")
        admin.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{stronger}'")
    assert _login(pg, role, password)


def test_ensure_login_role_is_idempotent_and_inherits(
    pg: PostgresInfo, admin_pg: PostgresInfo, database: PostgresDatabase
) -> None:
    owner, login = _role(), _role()
    with _connect(admin_pg) as admin:
        admin.execute(f"CREATE ROLE {owner} NOLOGIN")
    with _connect(pg) as superuser:
        superuser.execute(f"CREATE TABLE {owner}_data (x int)")
        superuser.execute(f"ALTER TABLE {owner}_data OWNER TO {owner}")
    assert database.ensure_login_role(login, owner) is True
    assert database.ensure_login_role(login, owner) is False
    password = _password()
    database.set_password(login, password)
    with psycopg.connect(
        host=pg.host, port=pg.port, user=login, password=password.reveal(), dbname="postgres"
    ) as connection:
        connection.execute(f"INSERT INTO {owner}_data VALUES (1)")
    with _connect(pg) as superuser:
        member = superuser.execute("SELECT pg_has_role(%s, %s, 'USAGE')",
                                   (login, owner)).fetchone()
    assert member == (True,)


def test_terminate_sessions_and_disable_password(
    pg: PostgresInfo, admin_pg: PostgresInfo, database: PostgresDatabase
) -> None:
    role = _role()
    password = _password()
    with _connect(admin_pg) as admin:
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
    assert _verifier_of(pg, role) == (None,)


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


def test_can_use_application_reads_the_tables(pg: PostgresInfo, admin_pg: PostgresInfo) -> None:
    dbname, owner, login, stranger, other = _role(), _role(), _role(), _role(), _role()
    with _connect(admin_pg) as admin:
        admin.execute(f"CREATE ROLE {owner} NOLOGIN")
        admin.execute(f"CREATE ROLE {other} NOLOGIN")
    with _connect(pg) as superuser:
        superuser.execute(f"CREATE DATABASE {dbname} OWNER {owner}")
    with _connect(pg, dbname) as superuser:
        superuser.execute("CREATE TABLE items (id int)")
        superuser.execute(f"ALTER TABLE items OWNER TO {owner}")
    database = PostgresDatabase(
        admin_pg.host, admin_pg.port, dbname, admin_pg.admin_user,
        SecretValue(admin_pg.admin_password)
    )
    password = _password()
    database.ensure_login_role(login, owner)
    database.set_password(login, password)
    database.ensure_login_role(stranger, other)
    database.set_password(stranger, password)

    assert database.can_use_application(login, password)
    assert not database.can_use_application(login, _password())
    assert not database.can_use_application(stranger, password)


def _one_clear_line(failure: pytest.ExceptionInfo[NotRetryable], *secret: SecretValue) -> str:
    text = str(failure.value)
    assert "\n" not in text and failure.value.__cause__ is None
    assert failure.value.__context__ is None or failure.value.__suppress_context__
    for value in secret:
        assert value.reveal() not in text
    assert "SCRAM" not in text
    return text


def test_a_role_the_admin_holds_no_admin_option_on_is_refused_in_one_line(
    pg: PostgresInfo, admin_pg: PostgresInfo, database: PostgresDatabase
) -> None:
    """On 16+, a role the superuser made: every change is refused with one line naming the
    role, the admin login and the privilege it lacks, and nothing changes; once granted
    ADMIN OPTION, the admin alters it."""
    role, old, new = _role(), _password(), _password()
    with _connect(pg) as superuser:
        if superuser.info.server_version < 160000:
            pytest.skip("PostgreSQL 15: CREATEROLE alters every role that is not a superuser")
        superuser.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{old.reveal()}'")
    before = _verifier_of(pg, role)

    with pytest.raises(NotRetryable) as failure:
        database.set_password(role, new)
    text = _one_clear_line(failure, new, old)
    assert text.startswith(f"PostgreSQL set password for role {role} failed: the admin login "
                           f"{ADMIN} (credential pg-admin) lacks the privilege (42501 ")
    assert f"ADMIN OPTION on role {role}" in text
    assert f"GRANT {role} TO {ADMIN} WITH ADMIN OPTION" in text
    with pytest.raises(NotRetryable, match=f"disable password for role {role} failed: .*"
                                           "ADMIN OPTION"):
        database.disable_password(role)
    with pytest.raises(NotRetryable, match=f"ensure login role for role {role} failed: .*"
                                           f"ADMIN OPTION on role {role} "):
        database.ensure_login_role(role, _role())
    login = _role()
    with pytest.raises(NotRetryable) as joining:
        database.ensure_login_role(login, role)
    text = _one_clear_line(joining)
    assert text.startswith(f"PostgreSQL ensure login role for role {login} failed: ")
    assert text.endswith(f"ADMIN OPTION on role {role} (GRANT {role} TO {ADMIN} WITH ADMIN "
                         "OPTION)")
    assert not database.role_exists(login)
    assert _verifier_of(pg, role) == before
    assert _login(pg, role, old) and not _login(pg, role, new)
    assert new.reveal() not in pg.log_path.read_text()

    with _connect(pg) as superuser:
        superuser.execute(f"GRANT {role} TO {ADMIN} WITH ADMIN OPTION, INHERIT FALSE, SET FALSE")
    database.set_password(role, new)
    assert _login(pg, role, new) and not _login(pg, role, old)


def test_a_superuser_role_is_refused_in_one_line(
    pg: PostgresInfo, database: PostgresDatabase
) -> None:
    new = _password()
    with pytest.raises(NotRetryable) as failure:
        database.set_password("postgres", new)
    text = _one_clear_line(failure, new)
    assert text.startswith("PostgreSQL set password for role postgres failed: the admin login "
                           f"{ADMIN} (credential pg-admin) lacks the privilege (42501 ")
    assert text.endswith("role postgres is a superuser, which only a superuser may alter")
    with psycopg.connect(pg.admin_conninfo()) as session:
        with pytest.raises(NotRetryable) as failure:
            database.terminate_sessions("postgres")
        assert session.execute("SELECT 1").fetchone() == (1,)
    text = _one_clear_line(failure)
    assert text.startswith("PostgreSQL terminate sessions for role postgres failed: the admin "
                           f"login {ADMIN} (credential pg-admin) lacks the privilege (42501 ")
    assert text.endswith("role postgres is a superuser, whose sessions only a superuser may end")


def test_sessions_that_began_before_a_time_need_pg_read_all_stats(
    pg: PostgresInfo, database: PostgresDatabase
) -> None:
    """Which of a role's sessions began before the password change is hidden from an admin
    without ``pg_read_all_stats``: it ends none and says what it lacks; with it (and
    ``pg_signal_backend``) it ends exactly the older ones."""
    role, password = _role(), _password()
    narrow_pg = ensure_admin(pg, "narrow_admin")
    with _connect(pg) as superuser:
        superuser.execute("REVOKE pg_read_all_stats FROM narrow_admin")
    narrow = PostgresDatabase(narrow_pg.host, narrow_pg.port, "postgres", narrow_pg.admin_user,
                              SecretValue(narrow_pg.admin_password))
    with _connect(narrow_pg) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN")
    narrow.set_password(role, password)
    older = psycopg.connect(pg.conninfo(role, password.reveal()))
    with _connect(pg) as superuser:
        cut = superuser.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
    newer = psycopg.connect(pg.conninfo(role, password.reveal()))
    try:
        with pytest.raises(NotRetryable) as failure:
            narrow.terminate_sessions(role, started_before=cut)
        text = _one_clear_line(failure, password)
        assert text == (f"PostgreSQL terminate sessions for role {role} failed: the admin login "
                        f"narrow_admin lacks the privilege to see when 2 session(s) of {role} "
                        "began, so none was ended; it needs pg_read_all_stats "
                        "(GRANT pg_read_all_stats TO narrow_admin)")
        assert older.execute("SELECT 1").fetchone() == (1,)
        assert database.terminate_sessions(role, started_before=cut) == 1
        with pytest.raises(psycopg.OperationalError):
            older.execute("SELECT 1")
        assert newer.execute("SELECT 1").fetchone() == (1,)
    finally:
        older.close()
        newer.close()
