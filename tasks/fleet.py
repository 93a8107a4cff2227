"""Steps of a fleet rotation: find what is due, rotate one API key the runbook's way.

A secret is due in an environment when its schedule (cron, in its time zone) has fired since
the last rotation, which is the ``created_at`` of the current version in the environment's
primary store. A store that records no creation time (a Kubernetes Secret key) cannot say
when it was last rotated, so its secret counts as due.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from cronsim import CronSim
from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.concurrency.sync import concurrency

from secretops.errors import SecretopsError
from secretops.models import SecretKind, Stage
from secretops.prefect_setup import lock_name
from tasks.api_keys import (
    check_new_key,
    generate_new_key,
    revoke_new_key,
    revoke_old_key,
    verify_new_key,
)
from tasks.common import inventory_at, wiring_for
from tasks.consumers import restart_pods, sync_external_secret, verify_logs
from tasks.stores import restore_previous, update_secret

API_KEY_KINDS = (SecretKind.openai_api_key, SecretKind.anthropic_api_key)


@dataclass(frozen=True)
class Due:
    """One (secret, environment) and why it is (or is not) rotated now. Ids only."""

    secret: str
    environment: str
    kind: str
    last_rotated: str
    last_fire: str
    due: bool
    note: str = ""


@dataclass(frozen=True)
class Outcome:
    """How one rotation of a fleet run ended."""

    secret: str
    environment: str
    status: str  # rotated | failed | needs a person
    seconds: float
    detail: str


def last_fire(cron: str, timezone: str, now: datetime) -> datetime:
    """The latest time at or before ``now`` at which ``cron`` fires, in UTC."""
    local = now.astimezone(ZoneInfo(timezone)).replace(microsecond=0) + timedelta(seconds=1)
    fired: datetime = next(CronSim(cron, local, reverse=True))
    return fired.astimezone(UTC)


@task(name="find_due_rotations", task_run_name="Find the rotations that are due",
      persist_result=False, cache_policy=NO_CACHE, retries=2, retry_delay_seconds=1)
def find_due_rotations(inventory: str, environments: list[str], force: bool) -> list[Due]:
    """Every (secret, environment) of the inventory in ``environments``, due or not, with the
    last rotation time read from the primary store's current version."""
    inv, wiring = inventory_at(inventory), wiring_for(inventory)
    now = datetime.now(UTC)
    found = []
    for secret_id in inv.secret_ids():
        spec = inv.secret(secret_id)
        for env in inv.environments_of(secret_id):
            if env.value not in environments:
                continue
            version = wiring.stores(secret_id, env)[0].version(Stage.current)
            last = version.created_at if version is not None else None
            fire = last_fire(spec.schedule.cron, spec.schedule.timezone, now) \
                if spec.schedule else None
            due = force or last is None or (fire is not None and last < fire)
            note = "forced" if force else (
                "no rotation time recorded in the store" if last is None and version
                else "no current version" if version is None
                else "schedule fired since the last rotation" if due else "not due")
            found.append(Due(secret_id, env.value, spec.kind.value,
                             f"{last:%Y-%m-%d %H:%M}" if last else "unknown",
                             f"{fire:%Y-%m-%d %H:%M}" if fire else "no schedule", due, note))
    return found


def _roll_back(secret: str, environment: str, inventory: str) -> None:
    restore_previous(secret, environment, inventory)
    sync_external_secret(secret, environment, inventory)
    restart = restart_pods(secret, environment, inventory)
    verify_logs(secret, environment, inventory, since=restart.started_at)
    revoke_new_key(secret, environment, inventory)


@task(name="rotate_key", task_run_name="Rotate {secret} ({environment})",
      persist_result=False, cache_policy=NO_CACHE, log_prints=False)
def rotate_key(secret: str, environment: str, inventory: str) -> Outcome:
    """The rotate-api-key procedure for one key, under the secret's lock: generate, check,
    update, sync, restart, verify, revoke the old key; before the revoke, any failure puts
    the previous key back, restarts, checks health and revokes the new key. Returns the
    outcome instead of raising, so one failure does not stop the fleet."""
    began = time.monotonic()
    provider = wiring_for(inventory).provider(secret)
    stores = wiring_for(inventory).stores(secret, environment)
    if not provider.can_create_keys and not any(s.read(Stage.pending) for s in stores):
        return Outcome(secret, environment, "needs a person", 0.0,
                       "needs a person: run rotate-api-key for it (the UI asks for the key)")
    with concurrency(lock_name(secret), occupy=1, strict=True):
        generate_new_key(secret, environment, inventory)
        try:
            check_new_key(secret, environment, inventory)
        except SecretopsError as exc:
            revoke_new_key(secret, environment, inventory)
            return Outcome(secret, environment, "failed", time.monotonic() - began,
                           f"the new key was refused ({exc}); nothing changed")
        try:
            update_secret(secret, environment, inventory)
            sync_external_secret(secret, environment, inventory)
            restart = restart_pods(secret, environment, inventory)
            verify_logs(secret, environment, inventory, since=restart.started_at)
            verify_new_key(secret, environment, inventory)
        except Exception as exc:
            _roll_back(secret, environment, inventory)
            return Outcome(secret, environment, "failed", time.monotonic() - began,
                           f"failed and rolled back ({exc}); the previous key is current")
        revoke_old_key(secret, environment, inventory)
    return Outcome(secret, environment, "rotated", time.monotonic() - began,
                   "rotated: new key current and verified, old key revoked")
