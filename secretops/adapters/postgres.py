"""PostgreSQL through an admin login (implements ``Database``).

The admin login needs no superuser: a ``CREATEROLE`` role, as the master user of AWS RDS or
Cloud SQL is, will do. On PostgreSQL 16 and later it alters only the roles it holds
``ADMIN OPTION`` on (it has it on the roles it created; ``GRANT role TO admin WITH ADMIN
OPTION`` gives it on others), and ends their sessions as a member of ``pg_signal_backend``
(and of ``pg_read_all_stats``, to see when they began). On PostgreSQL 15 ``CREATEROLE``
alone lets it alter every role that is not a superuser.

A new password never travels to the server: :func:`scram_verifier` has libpq compute the
SCRAM-SHA-256 verifier on the client (``PQencryptPasswordConn``, with the iteration count the
server announces) and ``ALTER ROLE ... PASSWORD`` sends that, so neither the statement log nor
``pg_stat_activity`` ever holds the plain text. Role names are checked against a strict
pattern before any SQL and quoted as identifiers. Connection strings are built with
``make_conninfo`` and never printed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from secretops import redaction
from secretops.errors import NotRetryable, Retryable
from secretops.models import SecretValue

ROLE_PATTERN = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
APPLICATION_TABLES = 20
_REFUSED_STATES = ("28000", "28P01")
_NAMED_ROLE = re.compile(r'role "([a-z_][a-z0-9_]{0,62})"')
_REFUSED_TEXTS = ("authentication failed", "not permitted to log in", "no pg_hba.conf entry")


def check_role(role: str) -> str:
    """Return ``role`` if it is a plain lower-case PostgreSQL name, else raise NotRetryable."""
    if not isinstance(role, str) or not ROLE_PATTERN.fullmatch(role):
        raise NotRetryable(f"not a valid role name: {role!r}")
    return role


def scram_verifier(
    connection: psycopg.Connection[Any], role: str, password: SecretValue
) -> str:
    """The ``SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`` string PostgreSQL
    keeps in ``pg_authid.rolpassword`` for ``role`` and ``password``, computed by libpq on
    ``connection``'s client side with a fresh salt and the iteration count the server
    announces (``scram_iterations`` on 16+, else 4096)."""
    verifier = connection.pgconn.encrypt_password(
        password.reveal().encode("utf-8"), role.encode("utf-8"), b"scram-sha-256"
    )
    return verifier.decode("ascii")


def _one_line(text: str) -> str:
    return " ".join(text.split())


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
        login = self._admin_login()
        where = f"{self.host}:{self.port}/{self.database}"
        head = f"PostgreSQL {action} for role {role} failed"
        if self._refused(exc):
            return NotRetryable(f"{head}: {where} refused {login} (authentication failed); "
                                "check the password that credential holds")
        reason = redaction.redact(_driver_text(exc))
        return Retryable(f"{head}: could not connect to {where} as {login}: {reason}")

    def _admin_login(self) -> str:
        credential = f" (credential {self.admin_credential})" if self.admin_credential else ""
        return f"the admin login {self.admin_user}{credential}"

    def _statement_failure(self, action: str, role: str, exc: psycopg.Error) -> Exception:
        """Our error for a statement the server refused. A missing privilege names the role,
        the admin login and the privilege it lacks, in one line."""
        if not isinstance(exc, psycopg.errors.InsufficientPrivilege):
            return _failure(action, role, exc)
        diag = exc.diag
        reason = ": ".join(_one_line(part) for part in (diag.message_primary, diag.message_detail)
                           if part) or _driver_text(exc)
        if "SUPERUSER" in reason.upper():
            needed = (f"role {role} is a superuser, whose sessions only a superuser may end"
                      if action == "terminate sessions" else
                      f"role {role} is a superuser, which only a superuser may alter")
        elif action == "terminate sessions":
            needed = (f"it needs membership in pg_signal_backend "
                      f"(GRANT pg_signal_backend TO {self.admin_user})")
        else:
            # the server names the role it wants the option on (the owner role, when a
            # login role joins it): name that one
            named = _NAMED_ROLE.search(reason)
            subject = named.group(1) if named else role
            needed = (f"it needs CREATEROLE and, on PostgreSQL 16 and later, ADMIN OPTION on "
                      f"role {subject} (GRANT {subject} TO {self.admin_user} WITH ADMIN OPTION)")
        message = (f"PostgreSQL {action} for role {role} failed: {self._admin_login()} lacks "
                   f"the privilege ({exc.sqlstate} {reason}); {needed}")
        return NotRetryable(redaction.redact(message))

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
            raise self._statement_failure(action, role, exc) from None

    def set_password(self, role: str, password: SecretValue) -> None:
        check_role(role)
        with self._admin("set password", role) as cursor:
            verifier = scram_verifier(cursor.connection, role, password)
            cursor.execute(
                sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                    sql.Identifier(role), sql.Literal(verifier)
                )
            )

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
        returns how many. Telling when another role's session began takes the privileges of
        ``pg_read_all_stats`` (or of the role): without them, none is ended and the error
        says so."""
        check_role(role)
        with self._admin("terminate sessions", role) as cursor:
            if started_before is not None:
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE usename = %s"
                    " AND pid <> pg_backend_pid() AND backend_start IS NULL",
                    (role,),
                )
                hidden = cursor.fetchone()
                if hidden and int(str(hidden[0])):
                    raise NotRetryable(
                        f"PostgreSQL terminate sessions for role {role} failed: "
                        f"{self._admin_login()} lacks the privilege to see when {hidden[0]} "
                        f"session(s) of {role} began, so none was ended; it needs "
                        f"pg_read_all_stats (GRANT pg_read_all_stats TO {self.admin_user})"
                    )
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
