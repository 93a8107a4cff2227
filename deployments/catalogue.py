"""The schedule catalogue: which flow runs when, in which environment, with which parameters.

The inventory gives each secret one monthly cron (``schedule.cron``, with its timezone). The
catalogue turns it into one schedule per environment, staggered by environment so that two
rotations of the application never start in the same minute and development goes first
(a problem shows there before it reaches production):

    development   the inventory's minute
    staging       + 20 minutes
    production    + 40 minutes

The access audit runs weekly; rotate-all (everything that is due), the leak response and
break-glass run on demand only. The
names below are the contract between ``prefect.yaml``, ``secretops setup`` and the docs;
``deployments/check.py`` verifies that ``prefect.yaml`` says exactly what this module derives.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from secretops.inventory import Inventory, SecretSpec
from secretops.models import Environment

ENVIRONMENT_OFFSET_MINUTES = {
    Environment.development: 0,
    Environment.staging: 20,
    Environment.production: 40,
}

# A person creates the key of a provider without a key API (Anthropic) in its console: a
# scheduled run waits a working day for the form to be answered (it changes nothing until
# then, and is cancelled after).
PERSON_TIMEOUT_SECONDS = 8 * 3600

AUDIT_CRON = "0 6 * * 1"
AUDIT_TIMEZONE = "UTC"


def rotation_flow(secret: SecretSpec) -> str:
    """The flow that rotates ``secret``: every provider's keys have the one flow."""
    return "rotate-db-password" if secret.is_password else "rotate-api-key"


@dataclass(frozen=True)
class FlowEntry:
    """One flow of the runbook and its deployment."""

    flow: str
    entrypoint: str
    scheduled: bool
    description: str


FLOWS = [
    FlowEntry("rotate-api-key", "flows/rotate_api_key.py:rotate_api_key", True,
              "Runbook: Rotate API Keys (monthly per key and environment; on demand from the UI)"),
    FlowEntry("rotate-db-password", "flows/rotate_db_password.py:rotate_db_password", True,
              "Runbook: Rotate Database Password (monthly per environment; on demand)"),
    FlowEntry("rotate-all", "flows/rotate_all.py:rotate_all", False,
              "Runbook: Secret Rotation, every secret that is due (on demand: to catch up after "
              "an outage; force=true rotates all)"),
    FlowEntry("audit-access", "flows/audit_access.py:audit_access", True,
              "Runbook: Access Audit (weekly)"),
    FlowEntry("respond-to-leak", "flows/respond_to_leak.py:respond_to_leak", False,
              "Runbook: If a Secret is Leaked (on demand; run by secretops.leak.reported)"),
    FlowEntry("break-glass", "flows/break_glass.py:break_glass", False,
              "Runbook: Emergency Access (on demand only)"),
]


@dataclass(frozen=True)
class ScheduledRun:
    """One schedule of one deployment: a slug, a cron in an explicit timezone, parameters."""

    flow: str
    slug: str
    cron: str
    timezone: str
    parameters: dict[str, Any] = field(default_factory=dict)

    def as_yaml(self) -> dict[str, Any]:
        """The schedule as ``prefect.yaml`` writes it."""
        return {"slug": self.slug, "cron": self.cron, "timezone": self.timezone,
                "parameters": dict(self.parameters)}


class CatalogueError(ValueError):
    """The inventory's schedules cannot be staggered as the catalogue needs."""


def deployment_name(inventory: Inventory) -> str:
    """Every flow has one deployment, named after the application:
    ``rotate-api-key/intelliprompt``."""
    return inventory.application


def staggered(cron: str, minutes: int) -> str:
    """``cron`` moved ``minutes`` later; its minute and hour must be plain numbers, and the
    move must stay within the same day (the day, month and weekday fields are kept)."""
    fields = cron.split()
    if len(fields) != 5 or not (fields[0].isdigit() and fields[1].isdigit()):
        raise CatalogueError(f"cron {cron!r}: the minute and hour must be plain numbers")
    total = int(fields[1]) * 60 + int(fields[0]) + minutes
    if total >= 24 * 60:
        raise CatalogueError(f"cron {cron!r} + {minutes} min runs past midnight")
    return " ".join([str(total % 60), str(total // 60), *fields[2:]])


def catalogue(inventory: Inventory) -> list[ScheduledRun]:
    """Every schedule the inventory implies, rotations first (in inventory order, then by
    environment), then the weekly access audit."""
    runs = []
    for secret in inventory.secrets:
        if secret.schedule is None:
            continue
        for env in inventory.environments_of(secret.id):
            parameters: dict[str, Any] = {"secret": secret.id, "environment": env.value}
            if not secret.is_password and not inventory.provider_of(secret.id).creates_keys:
                parameters["person_timeout_seconds"] = PERSON_TIMEOUT_SECONDS
            runs.append(ScheduledRun(
                flow=rotation_flow(secret),
                slug=f"{secret.id}-{env.value}",
                cron=staggered(secret.schedule.cron, ENVIRONMENT_OFFSET_MINUTES[env]),
                timezone=secret.schedule.timezone,
                parameters=parameters,
            ))
    runs.append(ScheduledRun("audit-access", "weekly", AUDIT_CRON, AUDIT_TIMEZONE))
    return runs


def clashes(runs: list[ScheduledRun]) -> list[str]:
    """Rotations that would start in the same minute (same timezone, day, hour and minute)."""
    seen: dict[tuple[str, ...], str] = {}
    found = []
    for run in runs:
        if not run.flow.startswith("rotate-"):
            continue
        minute, hour, day, month, weekday = run.cron.split()
        key = (run.timezone, minute, hour, day, month, weekday)
        if key in seen:
            found.append(f"{run.slug} starts in the same minute as {seen[key]} ({run.cron})")
        seen[key] = run.slug
    return found
