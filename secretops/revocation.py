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

When the leaked value itself is known (a detector's alert gives its fingerprint), that value
is the leaked one, wherever it is staged: current, or pending (then the pending version is
dropped once revoked, so the replacement is a new one); a value found only as previous was
already rotated out, and nothing is revoked.

A key the provider refuses before secretops revokes it (GitHub's secret scanning partner
program has OpenAI revoke keys pushed to public repositories) is recorded as such
(:data:`ALREADY_REFUSED`): the response goes straight on to the replacement.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from secretops.errors import VerificationFailed
from secretops.models import Credential, Stage
from secretops.ports import SecretStore
from secretops.staging import recorded_key_ids
from secretops.wiring import Wiring

LAST_USE = "last use of the leaked key"
ALREADY_HANDLED = ("already handled: the current credential was staged by a leak response "
                   "after the exposure began")
ALREADY_REFUSED = "already refused by the provider before secretops revoked it"
ROTATED_OUT = "already rotated out: the leaked value is no longer current or pending"

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


def held_as(stores: list[SecretStore], fingerprint: str) -> tuple[Stage, Credential] | None:
    """Where the value with this fingerprint is staged (current before pending before
    previous), or None when no store holds it."""
    for stage in Stage:
        found = read_stage(stores, stage)
        if found is not None and found.secret.fingerprint() == fingerprint:
            return stage, found
    return None


def leaked_credential(stores: list[SecretStore], record: Record | None,
                      since: datetime, fingerprint: str | None = None) -> Credential | None:
    """The credential a report of exposure since ``since`` is about, or None when a leak
    response has already replaced it (see the module doc)."""
    if fingerprint is not None:
        held = held_as(stores, fingerprint)
        return held[1] if held is not None and held[0] is not Stage.previous else None
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


def _revoke_key(wiring: Wiring, secret: str, leaked: Credential,
                stores: list[SecretStore]) -> list[str]:
    """The leaked key found by the id its stores recorded with it (a key secretops created),
    else by its redacted hint; deleted or archived, then checked refused."""
    provider = wiring.provider(secret)
    fingerprint = leaked.secret.fingerprint()
    key_id = recorded_key_ids(stores).get(fingerprint)
    key = provider.get_key(key_id) if key_id else provider.find_key(leaked)
    evidence: list[str] = []
    if key is None and not provider.check_key(leaked):
        return [f"{ALREADY_REFUSED}: the provider lists no key that matches {fingerprint} "
                "and refuses it", f"the provider refuses the leaked key {fingerprint}"]
    if key is not None:
        used = key.last_used_at.isoformat() if key.last_used_at else "never"
        evidence.append(f"{LAST_USE}: key {key.id} ({key.name}) last used at {used}")
        refused_before = key.status != "active" and not provider.check_key(leaked)
        # for good at once (AWS: deactivated first, then deleted; Anthropic: archived)
        revoked = provider.revoke_key(key.id, final=True)
        what = "deleted" if provider.can_create_keys else "archived"
        evidence.append(f"key {key.id} ({fingerprint}) {what if revoked else 'already revoked'}")
        if refused_before:
            evidence.insert(0, f"{ALREADY_REFUSED}: key {key.id} was {key.status}")
    if provider.check_key(leaked):
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
           since: datetime, fingerprint: str | None = None) -> list[str]:
    """Make the target refuse the leaked credential of ``environment``: OpenAI key deleted,
    Anthropic key archived (final), database password invalidated and the role's sessions ended.
    Returns the evidence (ids, fingerprints, last use). Idempotent."""
    stores = wiring.stores(secret, environment)
    leaked = leaked_credential(stores, record, since, fingerprint)
    if leaked is None:
        return [ROTATED_OUT if fingerprint is not None else ALREADY_HANDLED]
    if wiring.inventory.secret(secret).is_password:
        evidence = _revoke_password(wiring, secret, environment, leaked)
    else:
        evidence = _revoke_key(wiring, secret, leaked, stores)
    pending = read_stage(stores, Stage.pending)
    current = read_stage(stores, Stage.current)
    if pending is not None and pending == leaked and current != leaked:
        for store in stores:
            store.clear_pending()
        evidence.append(f"the leaked pending version {leaked.secret.fingerprint()} was dropped")
    return evidence


def revoke_everywhere(wiring: Wiring, secret: str, environments: list[str],
                      read_record: RecordReader, since: datetime,
                      fingerprint: str | None = None) -> dict[str, list[str]]:
    """:func:`revoke` in every environment at once (one thread each)."""
    def one(environment: str) -> list[str]:
        return revoke(wiring, secret, environment, read_record(secret, environment), since,
                      fingerprint)

    with ThreadPoolExecutor(max_workers=max(1, len(environments))) as pool:
        return dict(zip(environments, pool.map(one, environments), strict=True))
