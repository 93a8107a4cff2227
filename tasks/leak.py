"""Runbook: Emergency Procedures / Secret Leaked, the steps that are not rotation steps.

Which credential is the leaked one? In each environment it is the credential its stores hold
as current, with two exceptions that make a rerun or a second report safe:

* a rotation is in progress (a PENDING version is staged): the pending credential is the
  replacement and is never revoked; the leaked one is whichever of CURRENT and PREVIOUS is
  not the pending one;
* a leak response already replaced it: each response records, in the Prefect variable
  ``secretops-leak-<secret>-<environment>``, the fingerprint of the replacement it staged and
  when. A current credential staged by a response *after* the exposure began (the report's
  ``exposed_since``, else the time it was reported) cannot be the one that leaked, so there is
  nothing left to do.

The record holds a fingerprint (12 hex digits of SHA-256) and a time: never a value.
"""

from __future__ import annotations

from datetime import UTC, datetime

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.variables import Variable

from secretops.errors import NotRetryable, SecretopsError, VerificationFailed
from secretops.models import Credential, SecretKind, Stage
from secretops.ports import SecretStore
from secretops.report import StepResult
from tasks.api_keys import (
    check_new_key,
    generate_new_key,
    revoke_new_key,
    revoke_old_key,
    verify_new_key,
)
from tasks.common import inventory_at, runbook_step, wiring_for
from tasks.consumers import restart_pods, sync_external_secret, verify_logs
from tasks.database import (
    create_new_password,
    invalidate_old_password,
    update_in_database,
    verify_new_login,
)
from tasks.stores import update_secret

LAST_USE = "last use of the leaked key"


def record_name(secret: str, environment: str) -> str:
    return f"secretops-leak-{secret}-{environment}"


def _read(stores: list[SecretStore], stage: Stage) -> Credential | None:
    for store in stores:
        credential = store.read(stage)
        if credential is not None:
            return credential
    return None


def _replaced_since(secret: str, environment: str, credential: Credential,
                    since: datetime) -> bool:
    record = Variable.get(record_name(secret, environment), default=None)
    if not isinstance(record, dict) or record.get("replacement") != credential.secret.fingerprint():
        return False
    staged_at = datetime.fromisoformat(str(record.get("staged_at")))
    return staged_at >= since


def leaked_credential(secret: str, environment: str, inventory: str,
                      since: datetime) -> Credential | None:
    """The credential this report is about in ``environment``, or None when a leak response
    has already replaced it (see the module doc)."""
    stores = wiring_for(inventory).stores(secret, environment)
    current, pending = _read(stores, Stage.current), _read(stores, Stage.pending)
    if pending is not None:
        return current if current is not None and current != pending else _read(
            stores, Stage.previous)
    if current is None or _replaced_since(secret, environment, current, since):
        return None
    return current


def _revoke_key(secret: str, inventory: str, leaked: Credential) -> list[str]:
    provider = wiring_for(inventory).provider(secret)
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


def _revoke_password(secret: str, environment: str, inventory: str,
                     leaked: Credential) -> list[str]:
    inv, wiring = inventory_at(inventory), wiring_for(inventory)
    database = wiring.database(environment)
    user = leaked.username or inv.role_for(secret, environment)
    database.disable_password(user)
    ended = database.terminate_sessions(user)
    if database.can_login(user, leaked.secret):
        raise VerificationFailed(f"{user} still logs in with the leaked password")
    return [f"{user}: password invalidated (PASSWORD NULL), {ended} session(s) ended",
            f"PostgreSQL refuses {user} with the leaked password {leaked.secret.fingerprint()}"]


@runbook_step("1. Revoke compromised secret")
def revoke_leaked(secret: str, environment: str, inventory: str, since: datetime) -> list[str]:
    """Make the target refuse the leaked credential at once: OpenAI key deleted, Anthropic
    key set inactive, database password invalidated and the role's sessions ended. The
    consumers fail until the replacement is in place: the runbook accepts that downtime.
    Idempotent: an already revoked credential is only checked."""
    leaked = leaked_credential(secret, environment, inventory, since)
    if leaked is None:
        return ["already handled: the current credential was staged by a leak response after "
                "the exposure began"]
    kind = inventory_at(inventory).secret(secret).kind
    if kind is SecretKind.postgres_password:
        return _revoke_password(secret, environment, inventory, leaked)
    return _revoke_key(secret, inventory, leaked)


@runbook_step("Record the replacement", retries=2)
def record_replacement(secret: str, environment: str, inventory: str) -> list[str]:
    """Remember the staged replacement's fingerprint, so a rerun or a second report of the
    same leak never takes the replacement for the leaked credential."""
    pending = _read(wiring_for(inventory).stores(secret, environment), Stage.pending)
    if pending is None:
        raise NotRetryable(f"no pending {secret} credential staged in {environment}")
    fingerprint = pending.secret.fingerprint()
    Variable.set(record_name(secret, environment),
                 {"replacement": fingerprint, "staged_at": datetime.now(UTC).isoformat()},
                 overwrite=True)
    return [f"replacement {fingerprint} recorded in {record_name(secret, environment)}"]


def needs_rotation(secret: str, environment: str, inventory: str, since: datetime) -> bool:
    """Whether the environment still needs its replacement (after revocation)."""
    return leaked_credential(secret, environment, inventory, since) is not None


def postmortem_of(secret: str, environment: str) -> str | None:
    """The post-mortem file of the response that replaced the credential, once written."""
    record = Variable.get(record_name(secret, environment), default=None)
    found = record.get("postmortem") if isinstance(record, dict) else None
    return str(found) if found else None


@runbook_step("5. Post-mortem recorded", retries=2)
def record_postmortem(secret: str, environments: list[str], postmortem: str) -> list[str]:
    """Note the post-mortem in each environment's record: a later report of the same leak
    finds the job done."""
    for environment in environments:
        name = record_name(secret, environment)
        record = Variable.get(name, default=None)
        if isinstance(record, dict):
            Variable.set(name, {**record, "postmortem": postmortem}, overwrite=True)
    return [f"post-mortem {postmortem}"]


@task(name="rotate_in_environment", task_run_name="2-3. New credential for {environment}",
      persist_result=False, cache_policy=NO_CACHE, log_prints=False)
def rotate_in_environment(secret: str, environment: str, inventory: str) -> list[StepResult]:
    """Steps 2 and 3 in one environment, with the rotation flows' own tasks: a new credential
    staged as pending, set at the target, made current in every store, the consumers restarted
    and verified, the old credential's revocation checked. Never rolls back: the leaked
    credential is revoked and must stay so."""
    if inventory_at(inventory).secret(secret).kind is SecretKind.postgres_password:
        return _new_password(secret, environment, inventory)
    return _new_key(secret, environment, inventory)


def _propagate(secret: str, environment: str, inventory: str) -> list[StepResult]:
    steps = [update_secret(secret, environment, inventory),
             sync_external_secret(secret, environment, inventory)]
    restart = restart_pods(secret, environment, inventory)
    return [*steps, restart, verify_logs(secret, environment, inventory, since=restart.started_at)]


def _new_key(secret: str, environment: str, inventory: str) -> list[StepResult]:
    steps = [generate_new_key(secret, environment, inventory),
             record_replacement(secret, environment, inventory)]
    try:
        steps.append(check_new_key(secret, environment, inventory))
    except SecretopsError:
        revoke_new_key(secret, environment, inventory)
        raise
    steps += _propagate(secret, environment, inventory)
    return [*steps, verify_new_key(secret, environment, inventory),
            revoke_old_key(secret, environment, inventory)]


def _new_password(secret: str, environment: str, inventory: str) -> list[StepResult]:
    strategy = inventory_at(inventory).strategy_for(secret, environment).value
    steps = [create_new_password(secret, environment, inventory, strategy),
             record_replacement(secret, environment, inventory),
             update_in_database(secret, environment, inventory)]
    steps += _propagate(secret, environment, inventory)
    return [*steps, verify_new_login(secret, environment, inventory),
            invalidate_old_password(secret, environment, inventory, True)]
