"""Revoking a leaked credential at its target: the first step of the leak response, as a plain
library so the CLI can do it before it loads Prefect (a leak is revoked within seconds of the
command) and the flow's first task can do it again, idempotently.

Which credential is the leaked one, in each environment: the one its stores hold as current,
with two exceptions that make a rerun or a second report safe:

* a rotation is in progress (a PENDING version is staged): the pending credential is the
  replacement and is never revoked; the leaked one is whichever of CURRENT and PREVIOUS is
  not the pending one;
* a leak response already replaced it: each response records the fingerprint of the
  replacement it staged and when (a :data:`Record`). A current credential staged by a
  response *after* the exposure began cannot be the one that leaked: nothing left to do.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from secretops.errors import VerificationFailed
from secretops.models import Credential, SecretKind, Stage
from secretops.ports import SecretStore
from secretops.wiring import Wiring

LAST_USE = "last use of the leaked key"
ALREADY_HANDLED = ("already handled: the current credential was staged by a leak response "
                   "after the exposure began")

Record = dict[str, Any]
"""``{"replacement": fingerprint, "staged_at": ISO time, "postmortem": path}``: no value."""

RecordReader = Callable[[str, str], Record | None]
"""``read(secret, environment)``: the environment's record, or None."""


def record_name(secret: str, environment: str) -> str:
    """The Prefect variable that holds an environment's :data:`Record`."""
    return f"secretops-leak-{secret}-{environment}"


def read_stage(stores: list[SecretStore], stage: Stage) -> Credential | None:
    for store in stores:
        credential = store.read(stage)
        if credential is not None:
            return credential
    return None


def leaked_credential(stores: list[SecretStore], record: Record | None,
                      since: datetime) -> Credential | None:
    """The credential a report of exposure since ``since`` is about, or None when a leak
    response has already replaced it (see the module doc)."""
    current, pending = read_stage(stores, Stage.current), read_stage(stores, Stage.pending)
    if pending is not None:
        if current is not None and current != pending:
            return current
        return read_stage(stores, Stage.previous)
    if current is None:
        return None
    replaced = bool(record) and record is not None and (
        record.get("replacement") == current.secret.fingerprint()
        and datetime.fromisoformat(str(record.get("staged_at"))) >= since)
    return None if replaced else current


def _revoke_key(wiring: Wiring, secret: str, leaked: Credential) -> list[str]:
    provider = wiring.provider(secret)
    fingerprint = leaked.secret.fingerprint()
    key = provider.find_key(leaked.secret)
    evidence = []
    if key is not None:
        used = key.last_used_at.isoformat() if key.last_used_at else "never"
        evidence.append(f"{LAST_USE}: key {key.id} ({key.name}) last used at {used}")
        revoked = provider.revoke_key(key.id)
        what = "deleted" if provider.can_create_keys else "set inactive"
        evidence.append(f"key {key.id} ({fingerprint}) {what if revoked else 'already revoked'}")
    if provider.check_key(leaked.secret):
        raise VerificationFailed(f"the leaked {secret} key {fingerprint} still works and the "
                                 "provider lists no key that matches it")
    evidence.append(f"the provider refuses the leaked key {fingerprint}")
    return evidence


def _revoke_password(wiring: Wiring, secret: str, environment: str,
                     leaked: Credential) -> list[str]:
    database = wiring.database(environment)
    user = leaked.username or wiring.inventory.role_for(secret, environment)
    database.disable_password(user)
    ended = database.terminate_sessions(user)
    if database.can_login(user, leaked.secret):
        raise VerificationFailed(f"{user} still logs in with the leaked password")
    return [f"{user}: password invalidated (PASSWORD NULL), {ended} session(s) ended",
            f"PostgreSQL refuses {user} with the leaked password {leaked.secret.fingerprint()}"]


def revoke(wiring: Wiring, secret: str, environment: str, record: Record | None,
           since: datetime) -> list[str]:
    """Make the target refuse the leaked credential of ``environment``: OpenAI key deleted,
    Anthropic key set inactive, database password invalidated and the role's sessions ended.
    Returns the evidence (ids, fingerprints, last use). Idempotent."""
    leaked = leaked_credential(wiring.stores(secret, environment), record, since)
    if leaked is None:
        return [ALREADY_HANDLED]
    if wiring.inventory.secret(secret).kind is SecretKind.postgres_password:
        return _revoke_password(wiring, secret, environment, leaked)
    return _revoke_key(wiring, secret, leaked)


def revoke_everywhere(wiring: Wiring, secret: str, environments: list[str],
                      read_record: RecordReader, since: datetime) -> dict[str, list[str]]:
    """:func:`revoke` in every environment at once (one thread each)."""
    def one(environment: str) -> list[str]:
        return revoke(wiring, secret, environment, read_record(secret, environment), since)

    with ThreadPoolExecutor(max_workers=max(1, len(environments))) as pool:
        return dict(zip(environments, pool.map(one, environments), strict=True))
