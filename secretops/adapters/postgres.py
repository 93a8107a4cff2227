"""PostgreSQL through an admin login (implements ``Database``).

A new password never travels to the server: :func:`scram_verifier` computes the
SCRAM-SHA-256 verifier on the client (RFC 5802 / RFC 7677, as PostgreSQL stores it) and
``ALTER ROLE ... PASSWORD`` sends that, so neither the statement log nor ``pg_stat_activity``
ever holds the plain text. Role names are checked against a strict pattern before any SQL and
quoted as identifiers. Connection strings are built with ``make_conninfo`` and never printed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from secretops import redaction
from secretops.errors import NotRetryable, Retryable
from secretops.models import SecretValue

ROLE_PATTERN = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
SCRAM_ITERATIONS = 4096
APPLICATION_TABLES = 20
_REFUSED_STATES = ("28000", "28P01")
_REFUSED_TEXTS = ("authentication failed", "not permitted to log in", "no pg_hba.conf entry")


def check_role(role: str) -> str:
    """Return ``role`` if it is a plain lower-case PostgreSQL name, else raise NotRetryable."""
    if not isinstance(role, str) or not ROLE_PATTERN.fullmatch(role):
        raise NotRetryable(f"not a valid role name: {role!r}")
    return role


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def scram_verifier(
    password: SecretValue, salt: bytes | None = None, iterations: int = SCRAM_ITERATIONS
) -> str:
    """The ``SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`` string PostgreSQL
    keeps in ``pg_authid.rolpassword`` for ``password``."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.reveal().encode("utf-8"), salt, iterations)
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.digest(salted, b"Server Key", "sha256")
    return f"SCRAM-SHA-256${iterations}:{_b64(salt)}${_b64(stored_key)}:{_b64(server_key)}"


def _driver_text(exc: psycopg.Error) -> str:
    """The first line of the driver's message (the server's reason for a failed connection);
    redact the sentence it goes into."""
    return (str(exc).splitlines() or [""])[0][:200]


def _failure(action: str, role: str, exc: psycopg.Error) -> Exception:
    """Our error for a failed statement: names the action, the role and the server's reason."""
    from secretops.adapters.retry import is_transient

    # a connection that failed or was cut has no diagnostics: its reason is only in the text
    reason = exc.diag.message_primary if exc.diag and exc.diag.message_primary else ""
    state = exc.sqlstate or type(exc).__name__
    message = redaction.redact(f"PostgreSQL {action} for role {role} failed ({state}) "
                               f"{reason or _driver_text(exc)}")
    return Retryable(message.strip()) if is_transient(exc) else NotRetryable(message.strip())


@dataclass(frozen=True)
class PostgresDatabase:
    """One PostgreSQL server and database, reached with an admin login."""

    host: str
    port: int
    database: str
    admin_user: str
    admin_password: SecretValue
    connect_timeout: int = 5
    admin_credential: str | None = None

    def __repr__(self) -> str:
        return f"PostgresDatabase({self.host}:{self.port}/{self.database} as {self.admin_user})"

    def _conninfo(self, user: str, password: SecretValue) -> str:
        return make_conninfo(
            host=self.host,
            port=str(self.port),
            dbname=self.database,
            user=user,
            password=password.reveal(),
            connect_timeout=str(self.connect_timeout),
            application_name="secretops",
        )

    def _admin_login_failure(self, action: str, role: str, exc: psycopg.Error) -> Exception:
        """Our error for an admin login that did not open: a refused one names the admin
        login and the inventory credential holding its password (never the password), so
        the person knows which credential to fix; any other is the server being away."""
        if not isinstance(exc, psycopg.OperationalError):
            return _failure(action, role, exc)
        credential = f" (credential {self.admin_credential})" if self.admin_credential else ""
        login = f"the admin login {self.admin_user}{credential}"
        where = f"{self.host}:{self.port}/{self.database}"
        head = f"PostgreSQL {action} for role {role} failed"
        if self._refused(exc):
            return NotRetryable(f"{head}: {where} refused {login} (authentication failed); "
                                "check the password that credential holds")
        reason = redaction.redact(_driver_text(exc))
        return Retryable(f"{head}: could not connect to {where} as {login}: {reason}")

    @contextmanager
    def _admin(self, action: str, role: str) -> Iterator[psycopg.Cursor[tuple[object, ...]]]:
        try:
            connection = psycopg.connect(
                self._conninfo(self.admin_user, self.admin_password), autocommit=True
            )
        except psycopg.Error as exc:
            raise self._admin_login_failure(action, role, exc) from None
        try:
            with connection, connection.cursor() as cursor:
                yield cursor
        except psycopg.Error as exc:
            raise _failure(action, role, exc) from None

    def set_password(self, role: str, password: SecretValue) -> None:
        check_role(role)
        verifier = scram_verifier(password)
        statement = sql.SQL("ALTER ROLE {} PASSWORD {}").format(
            sql.Identifier(role), sql.Literal(verifier)
        )
        with self._admin("set password", role) as cursor:
            cursor.execute(statement)

    def can_login(self, role: str, password: SecretValue) -> bool:
        """Open a new connection as ``role``: True if the server accepts the password, False
        if it refuses it; any other failure (server down) raises."""
        check_role(role)
        try:
            with psycopg.connect(self._conninfo(role, password)) as connection:
                connection.execute("SELECT 1")
        except psycopg.OperationalError as exc:
            if self._refused(exc):
                return False
            raise _failure("login", role, exc) from None
        except psycopg.Error as exc:
            raise _failure("login", role, exc) from None
        return True

    def can_use_application(self, role: str, password: SecretValue) -> bool:
        """A new connection as ``role`` that can read every table of the database's own
        schemas (up to ``APPLICATION_TABLES`` of them): what the application does first.
        False if the login or a read is refused; other failures raise."""
        check_role(role)
        try:
            with psycopg.connect(self._conninfo(role, password), autocommit=True) as connection:
                tables = connection.execute(
                    "SELECT schemaname, tablename FROM pg_catalog.pg_tables"
                    " WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"
                    " ORDER BY 1, 2 LIMIT %s",
                    (APPLICATION_TABLES,),
                ).fetchall()
                for schema, table in tables:
                    connection.execute(
                        sql.SQL("SELECT 1 FROM {}.{} LIMIT 1").format(
                            sql.Identifier(schema), sql.Identifier(table)
                        )
                    )
        except psycopg.errors.InsufficientPrivilege:
            return False
        except psycopg.OperationalError as exc:
            if self._refused(exc):
                return False
            raise _failure("use application", role, exc) from None
        except psycopg.Error as exc:
            raise _failure("use application", role, exc) from None
        return True

    @staticmethod
    def _refused(exc: psycopg.OperationalError) -> bool:
        text = str(exc)
        return exc.sqlstate in _REFUSED_STATES or any(t in text for t in _REFUSED_TEXTS)

    def terminate_sessions(self, role: str, started_before: datetime | None = None) -> int:
        """End every session of ``role`` (``pg_terminate_backend``), or only those that began
        before ``started_before`` (the ones that logged in with a password since replaced);
        returns how many."""
        check_role(role)
        with self._admin("terminate sessions", role) as cursor:
            cursor.execute(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE usename = %s AND pid <> pg_backend_pid()"
                " AND (%s::timestamptz IS NULL OR backend_start < %s::timestamptz)",
                (role, started_before, started_before),
            )
            row = cursor.fetchone()
        return int(str(row[0])) if row else 0

    def ensure_login_role(self, role: str, member_of: str) -> bool:
        """Make ``role`` a LOGIN, INHERIT member of ``member_of``; True if it was created."""
        check_role(role)
        check_role(member_of)
        created = False
        with self._admin("ensure login role", role) as cursor:
            cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
            if cursor.fetchone() is None:
                try:
                    cursor.execute(
                        sql.SQL("CREATE ROLE {} LOGIN INHERIT IN ROLE {}").format(
                            sql.Identifier(role), sql.Identifier(member_of)
                        )
                    )
                    created = True
                except psycopg.errors.DuplicateObject:
                    created = False
            cursor.execute(sql.SQL("ALTER ROLE {} LOGIN INHERIT").format(sql.Identifier(role)))
            cursor.execute("SELECT pg_has_role(%s, %s, 'MEMBER')", (role, member_of))
            member = cursor.fetchone()
            if not (member and member[0]):
                cursor.execute(
                    sql.SQL("GRANT {} TO {}").format(
                        sql.Identifier(member_of), sql.Identifier(role)
                    )
                )
        return created

    def disable_password(self, role: str) -> None:
        check_role(role)
        with self._admin("disable password", role) as cursor:
            cursor.execute(sql.SQL("ALTER ROLE {} PASSWORD NULL").format(sql.Identifier(role)))

    def role_exists(self, role: str) -> bool:
        check_role(role)
        with self._admin("look up role", role) as cursor:
            cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
            return cursor.fetchone() is not None
