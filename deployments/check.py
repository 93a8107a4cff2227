"""Check that ``prefect.yaml`` says what the inventory and the schedule catalogue imply.

    python -m deployments.check [--prefect-yaml prefect.yaml] [--inventory inventory.yaml]

Exits 1 and lists every disagreement: a flow without exactly one deployment, a wrong
entrypoint, a schedule missing, extra or different (cron, timezone, parameters), a schedule
without an explicit timezone, two rotations in the same minute, a schedule on an on-demand
flow, a deployment without a concurrency limit of one, a work pool other than the process
pool, or a job variable that could carry a secret (a block template, which ``prefect deploy``
resolves and stores in plain text, or an environment variable other than the inventory path).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from deployments.catalogue import (
    FLOWS,
    CatalogueError,
    ScheduledRun,
    catalogue,
    clashes,
    deployment_name,
)
from secretops.inventory import Inventory, load_inventory
from secretops.setup import PROCESS_POOL

ROOT = Path(__file__).resolve().parent.parent
ALLOWED_ENV = {"SECRETOPS_INVENTORY"}


def load_deployments(prefect_yaml: Path) -> list[dict[str, Any]]:
    """The ``deployments:`` list of a ``prefect.yaml`` (anchors resolved)."""
    data = yaml.safe_load(prefect_yaml.read_text(encoding="utf-8")) or {}
    deployments = data.get("deployments") or []
    if not isinstance(deployments, list):
        raise ValueError(f"{prefect_yaml}: deployments must be a list")
    return deployments


def flow_of(entrypoint: str) -> str | None:
    """The flow name of a catalogue entrypoint (``None`` for one the catalogue does not know)."""
    for entry in FLOWS:
        if entry.entrypoint == entrypoint:
            return entry.flow
    return None


def _job_variable_problems(where: str, variables: Any) -> list[str]:
    problems = []
    if "{{" in yaml.safe_dump(variables) and "prefect.blocks" in yaml.safe_dump(variables):
        problems.append(f"{where}: job variables use a block template; prefect deploy would "
                        "store the resolved value in plain text")
    env = (variables or {}).get("env") or {}
    for name in env:
        if name not in ALLOWED_ENV:
            problems.append(f"{where}: job variable env.{name} is not allowed (only "
                            f"{', '.join(sorted(ALLOWED_ENV))}, a path)")
    return problems


def _schedule_problems(where: str, found: list[dict[str, Any]],
                       expected: list[ScheduledRun]) -> list[str]:
    problems = []
    by_slug = {s.get("slug"): s for s in found}
    for schedule in found:
        if not schedule.get("timezone"):
            problems.append(f"{where}: schedule {schedule.get('slug')!r} has no explicit timezone")
    for run in expected:
        have = by_slug.pop(run.slug, None)
        if have is None:
            problems.append(f"{where}: schedule {run.slug!r} is missing "
                            f"(want {run.as_yaml()})")
            continue
        have = {**have, "parameters": have.get("parameters") or {}}
        want = run.as_yaml()
        for key in ("cron", "timezone", "parameters"):
            if have.get(key) != want[key]:
                problems.append(f"{where}: schedule {run.slug!r} has {key} {have.get(key)!r}, "
                                f"the catalogue says {want[key]!r}")
    for slug in by_slug:
        problems.append(f"{where}: schedule {slug!r} is not in the catalogue")
    return problems


def check(prefect_yaml: Path, inventory: Inventory, root: Path = ROOT) -> list[str]:
    """Every disagreement between ``prefect_yaml`` and the catalogue of ``inventory``."""
    try:
        runs = catalogue(inventory)
    except CatalogueError as exc:
        return [f"inventory: {exc}"]
    problems = clashes(runs)
    deployments = load_deployments(prefect_yaml)
    name = deployment_name(inventory)
    for entry in FLOWS:
        mine = [d for d in deployments if d.get("entrypoint") == entry.entrypoint]
        where = f"{entry.flow}/{name}"
        if len(mine) != 1:
            problems.append(f"{entry.flow}: {len(mine)} deployments with entrypoint "
                            f"{entry.entrypoint} (want exactly one)")
            continue
        deployment = mine[0]
        if deployment.get("name") != name:
            problems.append(f"{where}: deployment is named {deployment.get('name')!r}")
        if deployment.get("concurrency_limit") != 1:
            problems.append(f"{where}: concurrency_limit must be 1")
        pool = deployment.get("work_pool") or {}
        if pool.get("name") != PROCESS_POOL:
            problems.append(f"{where}: work pool {pool.get('name')!r}, want {PROCESS_POOL!r}")
        problems += _job_variable_problems(where, pool.get("job_variables"))
        if not (root / entry.entrypoint.split(":")[0]).is_file():
            problems.append(f"{where}: {entry.entrypoint.split(':')[0]} does not exist")
        schedules = deployment.get("schedules") or []
        expected = [run for run in runs if run.flow == entry.flow]
        if not entry.scheduled and schedules:
            problems.append(f"{where}: runs on demand only, but has schedules")
        problems += _schedule_problems(where, schedules, expected)
    for deployment in deployments:
        if flow_of(str(deployment.get("entrypoint"))) is None:
            problems.append(f"deployment {deployment.get('name')!r}: entrypoint "
                            f"{deployment.get('entrypoint')!r} is not a runbook flow")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prefect-yaml", type=Path, default=ROOT / "prefect.yaml")
    parser.add_argument("--inventory", type=Path, default=ROOT / "inventory.yaml")
    args = parser.parse_args(argv)
    problems = check(args.prefect_yaml, load_inventory(args.inventory))
    for problem in problems:
        print(f"{args.prefect_yaml}: {problem}")
    if not problems:
        print(f"{args.prefect_yaml} agrees with {args.inventory}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
