"""A real PostgreSQL server for the sandbox: a :class:`~secretops.local_postgres.LocalPostgres`
cluster that looks like production (scram-sha-256 authentication everywhere, a ``postgres``
superuser with a generated password, TCP on 127.0.0.1 only) with every statement logged to
``DIR/postgres.log``, seeded with the application's login roles and databases.

Passwords set here never reach the server's log: roles get a SCRAM verifier computed on
the client, and the admin password goes to ``initdb`` through a 0600 file deleted after use.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
from psycopg import sql

from secretops.local_postgres import ADMIN_USER, LocalPostgres, PostgresInfo, free_port

__all__ = ["ADMIN_USER", "PostgresInfo", "PostgresSandbox", "free_port"]

LOGGING = {
    "log_statement": "'all'",
    "log_connections": "on",
    "log_line_prefix": "'%m [%p] %q%u@%d '",
    "logging_collector": "off",
}


class PostgresSandbox(LocalPostgres):
    """The sandbox's cluster under ``directory`` (``pgdata/``, ``postgres.log``)."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory, LOGGING)

    def seed(self, roles: dict[str, tuple[str, str]]) -> None:
        """For each ``role: (database, password)``: a LOGIN role owning ``database``, which
        holds the ``items`` table the application uses. Idempotent."""
        info = self._running()
        with psycopg.connect(info.admin_conninfo(), autocommit=True) as admin:
            for role, (database, password) in roles.items():
                verifier = admin.pgconn.encrypt_password(
                    password.encode(), role.encode(), b"scram-sha-256"
                ).decode()
                exists = admin.execute(
                    "SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)
                ).fetchone()
                verb = "ALTER" if exists else "CREATE"
                admin.execute(
                    sql.SQL(verb + " ROLE {} LOGIN PASSWORD {}").format(
                        sql.Identifier(role), sql.Literal(verifier)
                    )
                )
                has_db = admin.execute(
                    "SELECT 1 FROM pg_database WHERE datname = %s", (database,)
                ).fetchone()
                if not has_db:
                    admin.execute(
                        sql.SQL("CREATE DATABASE {} OWNER {}").format(
                            sql.Identifier(database), sql.Identifier(role)
                        )
                    )
                admin.execute(
                    sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(
                        sql.Identifier(database)
                    )
                )
        for role, (database, _) in roles.items():
            with psycopg.connect(info.admin_conninfo(database), autocommit=True) as conn:
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS items (id bigserial PRIMARY KEY, "
                    "name text NOT NULL, created_at timestamptz NOT NULL DEFAULT now())"
                )
                conn.execute(sql.SQL("ALTER TABLE items OWNER TO {}").format(sql.Identifier(role)))
                conn.execute(
                    sql.SQL("GRANT ALL ON SCHEMA public TO {}").format(sql.Identifier(role))
                )
                conn.execute(
                    "INSERT INTO items (name) SELECT n FROM unnest(%s::text[]) AS n "
                    "WHERE NOT EXISTS (SELECT 1 FROM items)",
                    (["prompt-template", "completion-cache", "usage-report"],),
                )
