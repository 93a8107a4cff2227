"""Runbook: Emergency Procedures / Secret Leaked.

    1. Immediate: revoke compromised secret   revoke_leaked (every environment at once)
    2. Generate new secret                    \\ rotate_in_environment, environments in parallel,
    3. Update all environments                / with the rotation flows' own tasks
    4. Audit access logs                      audit_access_logs, list_readers
    5. Post-mortem                            a markdown artifact and a file with the timeline

The one procedure that revokes before verifying: the consumers fail from step 1 until their
new credential is in place (the runbook accepts that downtime). Revocation runs before the
per-secret lock is taken, so nothing delays it; it never revokes a staged replacement (see
``tasks/leak.py``). Everything after it runs under the lock.

Two reports of the same leak give one response: the second revokes nothing new, waits for the
lock, finds every environment already on a replacement staged after the exposure began and a
post-mortem written, and ends with "nothing left to do". A run killed at any point and rerun
(with the same ``exposed_since``) finishes the job: revocation is idempotent and is never
undone, rotation resumes from the pending version, and the post-mortem is written if missing.

Triggers: ``secretops leak SECRET --all-envs --since ...``, the Prefect UI (a deployment), the
event :data:`LEAK_EVENT` through an automation (``secretops.prefect_setup``), and a detector's
alert through ``secretops alerts serve`` (``secretops.alerts``): then ``leaked_fingerprint``
names the leaked value (only it is revoked, wherever it is staged) and ``alert`` where it was
found, which the post-mortem and the audit give as the exposure's source and time.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

from prefect import flow, get_run_logger
from prefect.artifacts import acreate_markdown_artifact
from prefect.futures import PrefectFuture
from prefect.runtime import flow_run
from pydantic import Field

from flows.common import SecretId, inventory_path, secret_lock
from flows.rotate_api_key import PAUSE_KEY, wait_for_person_if_needed
from secretops import locks
from secretops.errors import SecretopsError
from secretops.models import Environment
from secretops.postmortem import PostMortem, TimedStep
from secretops.redaction import redact
from secretops.report import RunReport, StepResult
from tasks.audit import audit_access_logs, list_readers
from tasks.common import inventory_at, one_prefect_client
from tasks.leak import (
    needs_rotation,
    postmortem_of,
    record_postmortem,
    revoke_leaked,
    rotate_in_environment,
)

LEAK_EVENT = "secretops.leak.reported"
"""The event that starts a leak response through an automation. Its shape:

- ``resource``: ``{"prefect.resource.id": "secretops.secret.<id>", "secretops.secret": "<id>"}``
- ``payload``: ``{"secret": "<id>", "environments": ["production", ...] or null (every
  environment), "exposed_since": "<ISO 8601>" or null, "reason": "<text>", "drill": false}``

The automation (``secretops.automations.leak_automation``) maps the payload onto the flow's
parameters; ``reported_at`` is the event's time.
"""

LEAK_EVENT_RESOURCE_PREFIX = "secretops.secret."
AUDIT_WINDOW_WITHOUT_SINCE = timedelta(days=30)


class LeakResponseFailed(SecretopsError):
    """Part of the response failed; revocation stands. Fix the cause and rerun."""


def leak_event(secret: str, environments: list[str] | None = None,
               exposed_since: datetime | None = None, reason: str = "leak reported",
               drill: bool = False) -> dict[str, Any]:
    """The resource and payload of a :data:`LEAK_EVENT` (for ``emit_event(**...)``)."""
    return {
        "event": LEAK_EVENT,
        "resource": {"prefect.resource.id": f"{LEAK_EVENT_RESOURCE_PREFIX}{secret}",
                     "secretops.secret": secret},
        "payload": {"secret": secret, "environments": environments,
                    "exposed_since": exposed_since.isoformat() if exposed_since else None,
                    "reason": reason, "drill": drill},
    }


def _outcomes(futures: Mapping[str, PrefectFuture[Any]]) -> dict[str, Any]:
    """Each future's result, or the exception that failed it."""
    found: dict[str, Any] = {}
    for environment, future in futures.items():
        try:
            found[environment] = future.result()
        except Exception as exc:
            found[environment] = exc
    return found


def _reported_at(explicit: datetime | None) -> datetime:
    if explicit is not None:
        return explicit if explicit.tzinfo else explicit.replace(tzinfo=UTC)
    started = flow_run.scheduled_start_time
    return datetime.fromisoformat(started.isoformat()) if started else datetime.now(UTC)


@flow(name="respond-to-leak", flow_run_name="leak-{secret}", log_prints=False)
async def respond_to_leak(
    secret: SecretId,
    environments: list[Environment] | None = None,
    exposed_since: datetime | None = None,
    reason: str = "leak reported",
    drill: bool = False,
    reported_at: datetime | None = None,
    postmortem_dir: str | None = None,
    inventory: str | None = None,
    person_timeout_seconds: Annotated[int, Field(ge=1)] = 3600,
    revoked_before: dict[str, list[str]] | None = None,
    revoked_before_at: datetime | None = None,
    leaked_fingerprint: str | None = None,
    alert: dict[str, str] | None = None,
) -> str:
    """Respond to a leaked secret in the given environments (default: every environment that
    holds it); see the module doc. ``revoked_before`` is the evidence (ids, fingerprints,
    last use; never a value) of a revocation the CLI did before the run started, at
    ``revoked_before_at``; ``leaked_fingerprint`` the leaked value's fingerprint and ``alert``
    the detector's alert (source, number, repository, location, time), when a detector
    reported it. Returns the post-mortem file's path."""
    with one_prefect_client():
        path = inventory_path(inventory)
        secret_id = inventory_at(path).secret(secret).id
        envs = [Environment(e).value for e in environments or inventory_at(path).environments_of(
            secret_id)]
        reported = _reported_at(reported_at)
        since = exposed_since or reported
        if since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        window_start = exposed_since or reported - AUDIT_WINDOW_WITHOUT_SINCE
        pm = PostMortem(secret_id, envs, reported, window_start, reason, drill, str(flow_run.id),
                        alert=dict(alert or {}))
        if revoked_before and revoked_before_at:
            took = (revoked_before_at - reported).total_seconds()
            for env, evidence in revoked_before.items():
                pm.add(env, StepResult("1. Revoke compromised secret (before the run)",
                                       reported, took, "ok", tuple(evidence)))
        revoked = _outcomes({env: revoke_leaked.submit(secret_id, env, path, since,
                                                       leaked_fingerprint) for env in envs})
        failed = _record(pm, revoked)
        with locks.hold([secret_lock(secret_id)]):
            todo = [env for env in envs
                    if needs_rotation(secret_id, env, path, since, leaked_fingerprint)]
            done_before = {postmortem_of(secret_id, env) for env in envs if env not in todo}
            if not todo and not failed and None not in done_before:
                message = ("nothing left to do: an earlier response replaced the credential "
                           f"(post-mortem: {', '.join(sorted(str(p) for p in done_before))})")
                get_run_logger().info(message)
                return message
            failed += await _people(secret_id, todo, path, person_timeout_seconds, pm)
            todo = [env for env in todo if env not in failed]
            failed += _record(pm, _outcomes({env: rotate_in_environment.submit(secret_id, env, path)
                                             for env in todo}))
            if pm.alert:
                pm.add("all", StepResult("4. Audit access logs: exposure source", pm.reported_at,
                                         0.0, "ok", (pm.source_line(),)))
            _record(pm, _outcomes({env: audit_access_logs.submit(secret_id, env, path,
                                                                 pm.exposed_since)
                                   for env in envs}))
            _record(pm, _outcomes({env: list_readers.submit(secret_id, env, path) for env in envs}))
            pm.outcome = (f"failed in {', '.join(sorted(set(failed)))}: revocation stands; rerun "
                          "to finish" if failed else "revoked, replaced and verified everywhere")
            folder = Path(postmortem_dir) if postmortem_dir else Path(path).parent / "postmortems"
            written = pm.write(folder)
            await acreate_markdown_artifact(markdown=pm.markdown(), key=f"postmortem-{secret_id}",
                                            description=f"Post-mortem draft: leak of {secret_id}")
            if not failed:
                record_postmortem(secret_id, envs, str(written))
        if failed:
            raise LeakResponseFailed(f"the leak response for {secret_id} failed in "
                                     f"{', '.join(sorted(set(failed)))}; the leaked credential "
                                     f"stays revoked. See {written}, fix the cause and rerun.")
        return str(written)


def _record(pm: PostMortem, outcomes: Mapping[str, Any]) -> list[str]:
    """Add each environment's step results to the post-mortem; returns where it failed."""
    failed = []
    for environment, outcome in outcomes.items():
        if isinstance(outcome, BaseException):
            message = redact(str(outcome)) or type(outcome).__name__
            pm.add(environment, StepResult(f"failed ({type(outcome).__name__})",
                                           datetime.now(UTC), 0.0, f"failed: {message}"))
            failed.append(environment)
        else:
            for result in outcome if isinstance(outcome, list) else [outcome]:
                pm.add(environment, result)
    return failed


async def _people(secret: str, environments: list[str], inventory: str, timeout: int,
            pm: PostMortem) -> list[str]:
    """A key only a person can create (Anthropic): one pause form per environment that has
    none staged yet (the CLI answers it from a hidden prompt). Returns where nobody did."""
    if inventory_at(inventory).secret(secret).is_password:
        return []
    missing = []
    for environment in environments:
        report = RunReport(f"new {secret} key for {environment}")
        if not await wait_for_person_if_needed(secret, environment, inventory, timeout, report,
                                         pause_key=f"{PAUSE_KEY}-{environment}"):
            pm.steps += [TimedStep(environment, step) for step in report.steps]
            missing.append(environment)
    return missing
