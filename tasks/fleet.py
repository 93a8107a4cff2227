"""Steps of a fleet rotation: find what is due, rotate the due API keys of a consumer group.

A secret is due in an environment when its schedule (cron, in its time zone) has fired since
the last rotation, which is the ``created_at`` of the current version in the environment's
primary store (a Kubernetes Secret records it in an annotation when a rotation promotes a
value), or when the provider says its current API key expires soon (:mod:`tasks.key_expiry`).
A store that records no time for its current version counts as due, and so does one
that holds a pending version: a rotation was interrupted (its run killed, say, after the new
value became current but before the old one was revoked), and this run finishes it.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar
from zoneinfo import ZoneInfo

from cronsim import CronSim
from prefect import task
from prefect.cache_policies import NO_CACHE

from secretops import locks
from secretops.expiry import expiring
from secretops.inventory import SecretSpec
from secretops.models import Environment, RotationStatus, Stage
from secretops.prefect_setup import lock_name
from tasks.common import inventory_at, wiring_for
from tasks.fleet_keys import rotate_batch_of_keys

T = TypeVar("T")
READERS = 8


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
    status: RotationStatus
    seconds: float
    detail: str


def _last_fire(spec: SecretSpec, now: datetime) -> datetime | None:
    schedule = spec.schedule
    return last_fire(schedule.cron, schedule.timezone, now) if schedule else None


def last_fire(cron: str, timezone: str, now: datetime) -> datetime:
    """The latest time at or before ``now`` at which ``cron`` fires, in UTC."""
    local = now.astimezone(ZoneInfo(timezone)).replace(microsecond=0) + timedelta(seconds=1)
    fired: datetime = next(CronSim(cron, local, reverse=True))
    return fired.astimezone(UTC)


@task(name="find_due_rotations", task_run_name="Find the rotations that are due",
      persist_result=False, cache_policy=NO_CACHE, retries=2, retry_delay_seconds=1)
def find_due_rotations(inventory: str, environments: list[str], force: bool,
                       secrets: list[str] | None = None) -> list[Due]:
    """Every (secret, environment) of the inventory in ``environments`` (of ``secrets`` only,
    when given: each must be in the inventory), due or not, with the
    last rotation time read from the primary store's current version, and for those not on
    schedule whether it holds a pending version (``READERS`` stores read at a time)."""
    inv, wiring = inventory_at(inventory), wiring_for(inventory)
    now = datetime.now(UTC)
    wanted = [inv.secret(secret_id).id for secret_id in secrets] if secrets else inv.secret_ids()
    pairs = [(secret_id, env) for secret_id in wanted
             for env in inv.environments_of(secret_id) if env.value in environments]
    with ThreadPoolExecutor(max_workers=READERS) as pool:
        versions = list(pool.map(
            lambda pair: wiring.stores(*pair)[0].version(Stage.current), pairs))
        fires = [_last_fire(inv.secret(secret_id), now) for secret_id, _ in pairs]
        scheduled = [force or version is None or version.created_at is None
                     or (fire is not None and version.created_at < fire)
                     for version, fire in zip(versions, fires, strict=True)]

        def unfinished(pair: tuple[str, Environment], on_schedule: bool) -> bool:
            """Whether a rotation that is not on schedule was interrupted (one read)."""
            return not on_schedule and (
                wiring.stores(*pair)[0].version(Stage.pending) is not None)

        interrupted = list(pool.map(unfinished, pairs, scheduled))
    expires = expiring(inv, wiring, [pair for pair, on in zip(pairs, scheduled, strict=True)
                                     if not on], now)
    found = []
    for (secret_id, env), version, fire, on_schedule, resume in zip(
            pairs, versions, fires, scheduled, interrupted, strict=True):
        spec = inv.secret(secret_id)
        last = version.created_at if version is not None else None
        expiry = expires.get((secret_id, env))
        due = on_schedule or resume or expiry is not None
        note = "forced" if force else (
            "no rotation time recorded in the store" if last is None and version
            else "no current version" if version is None
            else "schedule fired since the last rotation" if on_schedule
            else "a pending version is staged (an interrupted rotation, or a key a person "
                 "staged): rotate with it" if resume
            else f"the provider says the key expires at {expiry:%Y-%m-%d %H:%M} UTC, within "
                 "the expiry margin" if expiry is not None else "not due")
        found.append(Due(secret_id, env.value, spec.kind,
                         f"{last:%Y-%m-%d %H:%M}" if last else "unknown",
                         f"{fire:%Y-%m-%d %H:%M}" if fire else "no schedule", due, note))
    return found


ENVIRONMENT_ORDER = [env.value for env in Environment]


def consumer_groups(inventory: str, secrets: list[str]) -> list[list[str]]:
    """``secrets`` in groups that share a consumer Deployment (directly or through another
    secret of the group): a group's rotations must not restart the same Deployment at once."""
    inv = inventory_at(inventory)
    group_of: dict[str, int] = {}
    groups: list[set[str]] = []
    for secret in sorted(secrets):
        deployments = {consumer.deployment for consumer in inv.consumers_of(secret)}
        joined = {group_of[d] for d in deployments if d in group_of}
        merged = {secret}.union(*(groups[i] for i in joined))
        groups.append(merged)
        for member in merged:
            for consumer in inv.consumers_of(member):
                group_of[consumer.deployment] = len(groups) - 1
        for i in joined:
            groups[i] = set()
    return [sorted(group) for group in groups if group]


def lanes(groups: list[T], width: int) -> list[list[T]]:
    """``groups`` dealt round-robin into at most ``width`` lanes: a fleet run is one task per
    lane, each lane rotating its groups one after another. (A task run per group cost the
    Prefect server about 13 ms of CPU and the flow's process about 5 ms, more than a key's
    whole rotation takes at the API server; a fleet of 200 paid it 200 times.)"""
    width = max(1, min(width, len(groups)))
    return [groups[i::width] for i in range(width) if groups[i::width]]


def lane_label(groups: list[list[Due]]) -> str:
    """How a lane's task run is named in the UI: its groups' secrets, the first few."""
    names = [", ".join(sorted({d.secret for d in group})) for group in groups]
    shown = "; ".join(names[:3])
    return shown if len(names) <= 3 else f"{shown} and {len(names) - 3} more groups"


@task(name="rotate_keys", task_run_name="Rotate {label}", persist_result=False,
      cache_policy=NO_CACHE, log_prints=False)
def rotate_keys(label: str, groups: list[list[Due]], inventory: str) -> list[Outcome]:
    """Rotate the due API keys of each consumer group (see :func:`consumer_groups`) in
    ``groups``, one group after another. The lane takes the locks of all its secrets at once
    when none is held elsewhere, else each group takes its own, waiting for a busy one.
    Returns every outcome instead of raising, so one failure does not stop the lane or the
    fleet."""
    names = [lock_name(d.secret) for due in groups for d in due]
    with locks.hold_if_free(names) as locked:
        rotate = functools.partial(rotate_group, locked=locked)
        return [outcome for due in groups for outcome in each_group(rotate, due, inventory)]


def each_group(rotate: Callable[[list[Due], str], list[Outcome]], due: list[Due],
               inventory: str) -> list[Outcome]:
    """``rotate(due, inventory)``, or, when it raised before it could say how each rotation
    went (a lock that could not be taken), a failed outcome for each."""
    try:
        return rotate(due, inventory)
    except Exception as exc:
        return [Outcome(d.secret, d.environment, RotationStatus.failed, 0.0,
                        f"its group was not rotated ({type(exc).__name__}: {exc}); rerun "
                        "rotate-all") for d in due]


def rotate_group(due: list[Due], inventory: str, locked: bool = False) -> list[Outcome]:
    """Rotate the due API keys of one consumer group under their locks (taken here unless
    ``locked``), environment by environment (development, staging, production), one batch
    per environment (:mod:`tasks.fleet_keys`). A key that failed in one environment is not
    rotated in the next."""
    outcomes: list[Outcome] = []
    failed: set[str] = set()
    with contextlib.nullcontext() if locked else locks.hold([lock_name(d.secret) for d in due]):
        for environment in ENVIRONMENT_ORDER:
            here = [d.secret for d in due if d.environment == environment]
            for secret in [s for s in here if s in failed]:
                outcomes.append(Outcome(secret, environment, RotationStatus.failed, 0.0,
                                        "not attempted: it failed in an earlier environment"))
            batch = [s for s in here if s not in failed]
            if not batch:
                continue
            for secret, rotation in rotate_batch_of_keys(batch, environment, inventory).items():
                status = rotation.status or RotationStatus.failed
                outcomes.append(Outcome(secret, environment, status, rotation.seconds,
                                        rotation.detail))
                if status is RotationStatus.failed:
                    failed.add(secret)
    return outcomes
