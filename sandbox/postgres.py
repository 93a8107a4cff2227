"""A real PostgreSQL server for the sandbox: a :class:`~secretops.local_postgres.LocalPostgres`
cluster that looks like a managed one (AWS RDS, Cloud SQL): scram-sha-256 authentication
everywhere, TCP on 127.0.0.1 only, every statement logged to ``DIR/postgres.log``, and an
admin login that is *not* a superuser.

Two logins, as a cloud provider keeps them:

- the bootstrap superuser ``postgres`` (:meth:`PostgresSandbox.start` returns its
  :class:`PostgresInfo`) sets the cluster up and is never handed to secretops;
- ``secretops_admin`` (:attr:`PostgresSandbox.admin`), LOGIN CREATEROLE CREATEDB NOSUPERUSER
  and a member of ``pg_signal_backend`` and ``pg_read_all_stats``, like RDS's master user:
  the application's roles and databases are made by it, and it is the admin login the
  inventory names.

PostgreSQL 16 and later let a CREATEROLE role alter only the roles it holds ADMIN OPTION on,
which it gets for the roles it creates; :meth:`PostgresSandbox.seed` grants it that option on
application roles that someone else made. PostgreSQL 15 lets CREATEROLE alter any role that
is not a superuser.

Passwords set here never reach the server's log: roles get a SCRAM verifier computed by
libpq on the client, and the superuser's password goes to ``initdb`` through a 0600 file
deleted after use.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from secretops.local_postgres import ADMIN_USER, LocalPostgres, PostgresInfo, free_port

__all__ = ["ADMIN_ROLE", "ADMIN_USER", "SUPERUSER", "PostgresInfo", "PostgresSandbox",
           "ensure_admin", "free_port"]

SUPERUSER = ADMIN_USER
ADMIN_ROLE = "secretops_admin"
# end the sessions of the roles it manages, and see when they began
ADMIN_GRANTS = ("pg_signal_backend", "pg_read_all_stats")
ROLE_OPTIONS_FROM = 160000  # PostgreSQL 16: ADMIN OPTION governs CREATEROLE; INHERIT/SET options

LOGGING = {
    "log_statement": "'all'",
    "log_connections": "on",
    "log_line_prefix": "'%m [%p] %q%u@%d '",
    "logging_collector": "off",
}

Connection = psycopg.Connection[Any]


def _verifier(conn: Connection, role: str, password: str) -> str:
    """The SCRAM-SHA-256 verifier for ``password``, computed by libpq (the server's
    ``scram_iterations`` on 16+)."""
    return conn.pgconn.encrypt_password(password.encode(), role.encode(), b"scram-sha-256").decode()


def _exists(conn: Connection, role: str) -> bool:
    return conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is not None


def ensure_admin(cluster: PostgresInfo, role: str = ADMIN_ROLE) -> PostgresInfo:
    """As the cluster's superuser, make ``role`` a LOGIN CREATEROLE CREATEDB NOSUPERUSER role
    with a new generated password, member of ``pg_signal_backend`` and ``pg_read_all_stats``
    (to end the sessions of the roles it manages, and see when they began); the same
    server's :class:`PostgresInfo` with ``role`` as admin."""
    password = secrets.token_urlsafe(24)
    with psycopg.connect(cluster.admin_conninfo(), autocommit=True) as superuser:
        verb = "ALTER" if _exists(superuser, role) else "CREATE"
        superuser.execute(
            sql.SQL(verb + " ROLE {} LOGIN CREATEROLE CREATEDB NOSUPERUSER NOREPLICATION "
                    "NOBYPASSRLS PASSWORD {}").format(
                sql.Identifier(role), sql.Literal(_verifier(superuser, role, password))))
        for granted in ADMIN_GRANTS:
            member = superuser.execute("SELECT pg_has_role(%s, %s, 'MEMBER')",
                                       (role, granted)).fetchone()
            if member != (True,):
                superuser.execute(sql.SQL("GRANT {} TO {}").format(
                    sql.Identifier(granted), sql.Identifier(role)))
    return dataclasses.replace(cluster, admin_user=role, admin_password=password)


def _hand_over(superuser: Connection, admin: str, roles: dict[str, tuple[str, str]]) -> None:
    """What someone else made before the admin existed, handed to it: on 16+ ADMIN OPTION
    for ``admin`` on each role that exists and that it cannot administer yet, without the
    role's privileges (INHERIT FALSE) or the right to become it (SET FALSE), as CREATE ROLE
    gives its creator; and each database that exists to its role."""
    for role, (database, _) in roles.items():
        if not _exists(superuser, role):
            continue
        if superuser.info.server_version >= ROLE_OPTIONS_FROM and superuser.execute(
            "SELECT 1 FROM pg_auth_members WHERE roleid = %s::regrole AND member = %s::regrole"
            " AND admin_option", (role, admin)).fetchone() is None:
            superuser.execute(
                sql.SQL("GRANT {} TO {} WITH ADMIN OPTION, INHERIT FALSE, SET FALSE").format(
                    sql.Identifier(role), sql.Identifier(admin)))
        owner = superuser.execute(
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s",
            (database,)).fetchone()
        if owner is not None and owner != (role,):
            superuser.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(
                sql.Identifier(database), sql.Identifier(role)))


@contextmanager
def _acting_as(admin: Connection, role: str) -> Iterator[None]:
    """The admin may hand ``role`` a database only while it can SET ROLE to it (16+) or is a
    member of it (15): a membership it grants itself for the moment and revokes after."""
    recent = admin.info.server_version >= ROLE_OPTIONS_FROM
    mode = "SET" if recent else "MEMBER"
    if admin.execute("SELECT pg_has_role(current_user, %s, %s)",
                     (role, mode)).fetchone() == (True,):
        yield
        return
    options = " WITH INHERIT FALSE, SET TRUE" if recent else ""
    admin.execute(sql.SQL("GRANT {} TO CURRENT_USER" + options).format(sql.Identifier(role)))
    try:
        yield
    finally:
        admin.execute(sql.SQL("REVOKE {} FROM CURRENT_USER").format(sql.Identifier(role)))


class PostgresSandbox(LocalPostgres):
    """The sandbox's cluster under ``directory`` (``pgdata/``, ``postgres.log``)."""

    def __init__(self, directory: Path, bin_dir: Path | None = None) -> None:
        super().__init__(directory, LOGGING, bin_dir)
        self.admin: PostgresInfo | None = None

    def start(self) -> PostgresInfo:
        """A fresh cluster; returns the superuser's view of it. The admin login secretops is
        given is :attr:`admin`."""
        cluster = super().start()
        self.admin = ensure_admin(cluster)
        return cluster

    def stop(self) -> None:
        super().stop()
        self.admin = None

    def _admin_info(self) -> PostgresInfo:
        self._running()
        assert self.admin is not None
        return self.admin

    def seed(self, roles: dict[str, tuple[str, str]]) -> None:
        """For each ``role: (database, password)``: a LOGIN role owning ``database``, which
        holds the ``items`` table the application uses, all made by the admin login; only
        the role and the admin login may connect to it. Idempotent."""
        cluster, admin_info = self._running(), self._admin_info()
        with psycopg.connect(cluster.admin_conninfo(), autocommit=True) as superuser:
            _hand_over(superuser, admin_info.admin_user, roles)
        with psycopg.connect(admin_info.admin_conninfo(), autocommit=True) as admin:
            for role, (database, password) in roles.items():
                verb = "ALTER" if _exists(admin, role) else "CREATE"
                admin.execute(sql.SQL(verb + " ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(role), sql.Literal(_verifier(admin, role, password))))
                if admin.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                 (database,)).fetchone() is None:
                    with _acting_as(admin, role):
                        admin.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(
                            sql.Identifier(database), sql.Identifier(role)))
        for role, (database, password) in roles.items():
            with psycopg.connect(cluster.conninfo(role, password, database),
                                 autocommit=True) as conn:
                conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(
                    sql.Identifier(database)))
                conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                    sql.Identifier(database), sql.Identifier(admin_info.admin_user)))
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS items (id bigserial PRIMARY KEY, "
                    "name text NOT NULL, created_at timestamptz NOT NULL DEFAULT now())"
                )
                conn.execute(
                    "INSERT INTO items (name) SELECT n FROM unnest(%s::text[]) AS n "
                    "WHERE NOT EXISTS (SELECT 1 FROM items)",
                    (["prompt-template", "completion-cache", "usage-report"],),
                )
