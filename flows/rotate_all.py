"""Runbook: Secret Rotation, for every secret that is due (the monthly run).

    1. Find what is due        find_due_rotations (schedule vs the store's last rotation)
    2. Rotate the API keys     rotate_keys, per group of keys that share a consumer
                               Deployment: environment by environment, each key generated,
                               checked, stored, verified and its old key revoked, each
                               Deployment restarted once per batch; the revocations share
                               one listing of each provider's keys
    3. Rotate the logins       rotate-db-password as a subflow per database login, after the
                               keys (it restarts the same Deployments), environment by
                               environment
    4. Report                  one markdown artifact: every secret, due or not, and how it went

The groups are dealt into at most ``max_concurrency`` lanes, one task run per lane, each
lane rotating its groups one after another under its secrets' locks (all taken at once when
no other run holds one, else group by group). One rotation
failing (and rolling back) does not stop the others; the run fails at the end if any did,
after the report is published. Keys only a person can create (Anthropic) are listed as
waiting for a person unless a key is already staged.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from prefect import Task, flow, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State
from prefect.futures import PrefectFuture
from prefect.states import Completed, Failed
from prefect.task_runners import ThreadPoolTaskRunner

from flows.common import SecretId, inventory_path, publish
from flows.rotate_db_password import rotate_db_password
from secretops.errors import SecretopsError
from secretops.models import Environment, RotationStatus
from secretops.providers import is_key
from secretops.report import RunReport
from tasks.api_keys import shared_listings
from tasks.common import one_prefect_client
from tasks.fleet import (
    ENVIRONMENT_ORDER,
    Due,
    Outcome,
    consumer_groups,
    each_group,
    find_due_rotations,
    lane_label,
    lanes,
    rotate_keys,
)


class FleetRotationFailed(SecretopsError):
    """At least one rotation of the fleet run failed (each was rolled back)."""


def _said(outcome: Outcome) -> str:
    """How a rotation went, its status first (once)."""
    if outcome.detail.startswith(outcome.status):
        return outcome.detail
    return f"{outcome.status}: {outcome.detail}"


def due_table(found: list[Due], outcomes: list[Outcome]) -> list[str]:
    """One line per (secret, environment): when it was last rotated, whether it was due and
    how its rotation went. Ids and times only."""
    done = {(o.secret, o.environment): o for o in outcomes}
    lines = []
    for d in found:
        outcome = done.get((d.secret, d.environment))
        result = (f"{_said(outcome)} ({outcome.seconds:.1f} s)" if outcome
                  else ("due" if d.due else "not due"))
        lines.append(f"{d.secret} in {d.environment}: last rotated {d.last_rotated}, schedule "
                     f"last fired {d.last_fire} ({d.note}): {result}")
    return lines


LaneTask = Task[[str, list[list[Due]], str], list[Outcome]]


def _run_all(task: LaneTask, due: list[Due], inventory: str, max_concurrency: int
             ) -> list[Outcome]:
    """``due`` in consumer groups, dealt into at most ``max_concurrency`` lanes: one run of
    ``task`` per lane, all at once; every outcome."""
    groups = consumer_groups(inventory, sorted({d.secret for d in due}))
    dealt = lanes([[d for d in due if d.secret in group] for group in groups], max_concurrency)
    if not dealt:
        return []
    runner: ThreadPoolTaskRunner[Any]
    with ThreadPoolTaskRunner(max_workers=len(dealt)) as runner:
        submit: Callable[..., PrefectFuture[list[Outcome]]] = runner.submit
        futures = [submit(task, {"label": lane_label(lane), "groups": lane,
                                 "inventory": inventory}) for lane in dealt]
        outcomes: list[Outcome] = []
        for future, lane in zip(futures, dealt, strict=True):
            try:
                outcomes += future.result()
            except Exception as exc:  # the lane's task failed before it could say how each went
                outcomes += [Outcome(d.secret, d.environment, RotationStatus.failed, 0.0,
                                     f"its task failed ({type(exc).__name__}: {exc}); rerun "
                                     "rotate-all") for group in lane for d in group]
        return outcomes


@flow(name="rotate-all", flow_run_name="rotate-all", log_prints=False)
async def rotate_all(
    environments: list[Environment] | None = None,
    max_concurrency: int = 8,
    force: bool = False,
    dry_run: bool = False,
    inventory: str | None = None,
    secrets: list[SecretId] | None = None,
) -> State[str]:
    """Rotate every secret that is due in ``environments`` (all when empty), at most
    ``max_concurrency`` consumer groups at a time; ``force`` rotates everything; ``secrets``
    limits the run to those ids of the inventory (all when empty); see the module doc."""
    with one_prefect_client():
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        path = inventory_path(inventory)
        wanted = [Environment(e).value for e in environments or list(Environment)]
        found = find_due_rotations(path, wanted, force, secrets)
        due = [d for d in found if d.due]
        report = RunReport("Rotate every secret that is due",
                           {"environments": ", ".join(wanted), "due": f"{len(due)} of {len(found)}",
                            "max concurrency": str(max_concurrency)})
        outcomes: list[Outcome] = []
        if not dry_run:
            keys = [d for d in due if is_key(d.kind)]
            logins = [d for d in due if not is_key(d.kind)]
            with shared_listings():
                outcomes = _run_all(rotate_keys, keys, path, max_concurrency)
            outcomes += _run_all(rotate_logins, logins, path, max_concurrency)
        failed = [o for o in outcomes if o.status is RotationStatus.failed]
        waiting = [o for o in outcomes if o.status is RotationStatus.needs_person]
        report.outcome = ("dry run: nothing changed" if dry_run else
                          f"{len(outcomes) - len(failed) - len(waiting)} rotated, {len(failed)} "
                          f"failed and rolled back, {len(waiting)} waiting for a person")
        report.notes += due_table(found, outcomes)
        markdown = await publish(report, "rotate-all-plan" if dry_run else "rotate-all")
        if failed:
            return Failed(message=f"{len(failed)} of {len(outcomes)} rotations did not complete "
                                  "(each was rolled back); see the rotate-all report",
                          data=FleetRotationFailed(report.outcome))
        return Completed(message=report.outcome, data=markdown)


@task(name="rotate_logins", task_run_name="Rotate {label}", persist_result=False,
      cache_policy=NO_CACHE, log_prints=False)
def rotate_logins(label: str, groups: list[list[Due]], inventory: str) -> list[Outcome]:
    """:func:`rotate_group_logins` for each consumer group of ``groups``, one after another."""
    return [outcome for due in groups
            for outcome in each_group(rotate_group_logins, due, inventory)]


def rotate_group_logins(due: list[Due], inventory: str) -> list[Outcome]:
    """The rotate-db-password flow (as a subflow, with its strategy from the inventory) for
    each due database login of one consumer group, one after the other, environment by
    environment; a login that failed (and was rolled back) in one environment is not rotated
    in the next. Failures become outcomes."""
    outcomes: list[Outcome] = []
    failed: set[str] = set()
    for environment in ENVIRONMENT_ORDER:
        for d in [d for d in due if d.environment == environment]:
            began = time.monotonic()
            if d.secret in failed:
                outcomes.append(Outcome(d.secret, environment, RotationStatus.failed, 0.0,
                                        "not attempted: it failed in an earlier environment"))
                continue
            try:
                asyncio.run(rotate_db_password(environment=Environment(environment),
                                               secret=d.secret, inventory=inventory))
            except Exception as exc:
                failed.add(d.secret)
                outcomes.append(Outcome(d.secret, environment, RotationStatus.failed,
                                        time.monotonic() - began, str(exc)))
                continue
            outcomes.append(Outcome(d.secret, environment, RotationStatus.rotated,
                                    time.monotonic() - began,
                                    "rotated: new credentials current and verified, old "
                                    "refused"))
    return outcomes
