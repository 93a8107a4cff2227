"""Checks on the names and expressions an inventory holds.

Every name that ends up in a Kubernetes object, an SQL statement, an environment or a schedule
is checked here with the rule of the system that receives it, so a bad name is refused when
the inventory is loaded and never reaches a command or a query. Each function returns the
value when it is valid and raises ``ValueError`` with an operator-facing message otherwise.
"""

from __future__ import annotations

import re
import zoneinfo
from datetime import datetime
from pathlib import PurePosixPath

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_PG_ROLE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_ENV_VAR = re.compile(r"^[A-Z_][A-Z0-9_]*$")
_SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_BLOCK_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_ID = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")



def _q(value: str, limit: int = 60) -> str:
    """``value`` quoted for an error line: escaped, and shortened past ``limit``."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."

def _shown(value: str) -> str:
    """``value`` quoted, with non-ASCII characters escaped so look-alikes are visible."""
    return "'" + value.encode("ascii", "backslashreplace").decode() + "'"


def dns_label(value: str, what: str = "name") -> str:
    """A DNS-1123 label (namespaces, Deployments, ExternalSecrets): at most 63 characters of
    lower-case letters, digits and ``-``, starting and ending with a letter or digit."""
    if len(value) > 63 or not _DNS_LABEL.match(value):
        raise ValueError(
            f"{what} {_shown(value)} is not a DNS-1123 label (lower-case letters, digits and "
            "'-', starting and ending with a letter or digit, at most 63 characters)"
        )
    return value


def dns_subdomain(value: str, what: str = "name") -> str:
    """A DNS-1123 subdomain (Secret names): dot-separated labels, at most 253 characters."""
    if len(value) > 253 or not all(_DNS_LABEL.match(part) for part in value.split(".")):
        raise ValueError(
            f"{what} {_shown(value)} is not a DNS-1123 subdomain (lower-case letters, digits, "
            "'-' and '.', starting and ending with a letter or digit, at most 253 characters)"
        )
    return value


def secret_key(value: str) -> str:
    """A key inside a Kubernetes Secret's ``data``."""
    if len(value) > 253 or not _SECRET_KEY.match(value):
        raise ValueError(
            f"Secret key {_shown(value)} is not valid (letters, digits, '-', '_' and '.')"
        )
    return value


def pg_role(value: str) -> str:
    """A PostgreSQL role name safe to use anywhere: ASCII lower case, digits and ``_``."""
    if not _PG_ROLE.match(value):
        raise ValueError(
            f"unsafe PostgreSQL role name {_shown(value)} (must match ^[a-z_][a-z0-9_]{{0,62}}$)"
        )
    return value


def env_var(value: str) -> str:
    """An environment variable name as shells and ``.env`` files take it: ``[A-Z_][A-Z0-9_]*``."""
    if not _ENV_VAR.match(value):
        raise ValueError(
            f"environment variable name {_shown(value)} is not valid (must match [A-Z_][A-Z0-9_]*)"
        )
    return value


def block_name(value: str) -> str:
    """A Prefect block document name: lower-case letters, digits and ``-``."""
    if not _BLOCK_NAME.match(value):
        raise ValueError(
            f"Prefect block name {_shown(value)} is not valid (lower-case letters, digits and '-')"
        )
    return value


def identifier(value: str, what: str) -> str:
    """An id used in flow-run names, concurrency limits and drop-downs (secret ids, consumer
    and credential names): lower-case letters, digits and ``-``."""
    if len(value) > 63 or not _ID.match(value):
        raise ValueError(
            f"{what} {_shown(value)} is not valid (lower-case letters, digits and '-', "
            "at most 63 characters)"
        )
    return value


def cron(value: str) -> str:
    """A standard five-field cron expression (minute hour day-of-month month day-of-week)."""
    from cronsim import CronSim, CronSimError

    fields = value.split()
    if len(fields) != 5:
        raise ValueError(f"cron {_q(value)} must have 5 fields, found {len(fields)}")
    try:
        CronSim(value, datetime(2000, 1, 1))
    except CronSimError as exc:
        raise ValueError(f"cron {_q(value)} does not parse: {exc}") from None
    return value


def timezone(value: str) -> str:
    """An IANA time-zone name (``UTC``, ``Europe/Berlin``)."""
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"unknown timezone {_q(value)}") from None
    return value


def relative_file_name(value: str) -> str:
    """A path below a folder: relative, without ``..``, not the folder itself."""
    path = PurePosixPath(value)
    if not value or path.is_absolute() or ".." in path.parts or str(path) == ".":
        raise ValueError(f"path {_q(value)} escapes the secrets folder (use a name inside it)")
    return value
