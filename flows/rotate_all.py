"""Runbook: Secret Rotation, for every secret that is due (the monthly run).

    1. Find what is due        find_due_rotations (schedule vs the store's last rotation)
    2. Rotate each one         rotate_key (API keys) / rotate-db-password (database logins),
                               at most ``max_concurrency`` at a time, each under its lock
    3. Report                  one markdown artifact: every secret, due or not, and how it went

One rotation failing (and rolling back) does not stop the others; the run fails at the end if
any did, after the report is published. Keys only a person can create (Anthropic) are listed
as waiting for a person unless a key is already staged.
"""

from __future__ import annotations

import time
from typing import Any

from prefect import Task, flow, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State
from prefect.futures import PrefectFuture
from prefect.states import Completed, Failed
from prefect.task_runners import ThreadPoolTaskRunner

from flows.common import inventory_path, publish
from flows.rotate_db_password import rotate_db_password
from secretops.errors import SecretopsError
from secretops.models import Environment, SecretKind
from secretops.report import RunReport
from tasks.fleet import API_KEY_KINDS, Due, Outcome, find_due_rotations, rotate_key


class FleetRotationFailed(SecretopsError):
    """At least one rotation of the fleet run failed (each was rolled back)."""


def due_table(found: list[Due], outcomes: list[Outcome]) -> list[str]:
    """One line per (secret, environment): when it was last rotated, whether it was due and
    how its rotation went. Ids and times only."""
    done = {(o.secret, o.environment): o for o in outcomes}
    lines = []
    for d in found:
        outcome = done.get((d.secret, d.environment))
        result = (f"{outcome.status}: {outcome.detail} ({outcome.seconds:.1f} s)" if outcome
                  else ("due" if d.due else "not due"))
        lines.append(f"{d.secret} in {d.environment}: last rotated {d.last_rotated}, schedule "
                     f"last fired {d.last_fire} ({d.note}): {result}")
    return lines


@flow(name="rotate-all", flow_run_name="rotate-all", log_prints=False)
def rotate_all(
    environments: list[Environment] | None = None,
    max_concurrency: int = 8,
    force: bool = False,
    dry_run: bool = False,
    inventory: str | None = None,
) -> State[str]:
    """Rotate every secret that is due in ``environments`` (all when empty), at most
    ``max_concurrency`` at a time; ``force`` rotates everything; see the module doc."""
    if max_concurrency < 1:
        raise ValueError("max_concurrency must be at least 1")
    path = inventory_path(inventory)
    wanted = [Environment(e).value for e in environments or list(Environment)]
    found = find_due_rotations(path, wanted, force)
    due = [d for d in found if d.due]
    report = RunReport("Rotate every secret that is due",
                       {"environments": ", ".join(wanted), "due": f"{len(due)} of {len(found)}",
                        "max concurrency": str(max_concurrency)})
    outcomes: list[Outcome] = []
    if not dry_run and due:
        runner: ThreadPoolTaskRunner[Any]
        with ThreadPoolTaskRunner(max_workers=max_concurrency) as runner:
            futures: list[PrefectFuture[Outcome]] = [runner.submit(_rotation(d), {"secret": d.secret,
                                                    "environment": d.environment,
                                                    "inventory": path}) for d in due]
            outcomes = [future.result() for future in futures]
    failed = [o for o in outcomes if o.status == "failed"]
    waiting = [o for o in outcomes if o.status == "needs a person"]
    report.outcome = ("dry run: nothing changed" if dry_run else
                      f"{len(outcomes) - len(failed) - len(waiting)} rotated, {len(failed)} "
                      f"failed and rolled back, {len(waiting)} waiting for a person")
    report.notes += due_table(found, outcomes)
    publish(report, "rotate-all-plan" if dry_run else "rotate-all")
    markdown = report.markdown()
    if failed:
        return Failed(message=f"{len(failed)} of {len(outcomes)} rotations did not complete "
                              "(each was rolled back); see the rotate-all report",
                      data=FleetRotationFailed(report.outcome))
    return Completed(message=report.outcome, data=markdown)


def _rotation(due: Due) -> Task[[str, str, str], Outcome]:
    """The task that rotates one due secret."""
    if SecretKind(due.kind) in API_KEY_KINDS:
        return rotate_key
    return rotate_database_login


@task(name="rotate_database_login", task_run_name="Rotate {secret} ({environment})",
      persist_result=False, cache_policy=NO_CACHE, log_prints=False)
def rotate_database_login(secret: str, environment: str, inventory: str) -> Outcome:
    """The rotate-db-password flow (as a subflow, with its strategy from the inventory);
    its failure, already rolled back, becomes an outcome."""
    began = time.monotonic()
    try:
        rotate_db_password(environment=Environment(environment), secret=secret,
                           inventory=inventory)
    except Exception as exc:
        return Outcome(secret, environment, "failed", time.monotonic() - began, str(exc))
    return Outcome(secret, environment, "rotated", time.monotonic() - began,
                   "rotated: new credentials current and verified, old refused")
