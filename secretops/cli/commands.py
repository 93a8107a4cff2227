"""What each `secretops` command does. Heavy imports happen inside the functions."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path


def _out(text: str = "") -> None:
    print(text, flush=True)


# -- sandbox ----------------------------------------------------------------------------------


def sandbox_up(args: argparse.Namespace) -> int:
    from sandbox import manager

    info, started = manager.up(Path(args.dir), faults=args.fault, progress=_out)
    if not started:
        _out(f"sandbox already running in {info['dir']}")
    _out(manager.describe(info))
    return 0


def sandbox_down(args: argparse.Namespace) -> int:
    from sandbox import manager

    stopped = manager.down(Path(args.dir))
    _out(f"sandbox stopped ({stopped} process(es) ended)" if stopped else "no sandbox running")
    return 0


def sandbox_status(args: argparse.Namespace) -> int:
    from sandbox import manager

    info = manager.status(Path(args.dir))
    if info is None:
        _out(f"no sandbox running in {args.dir}")
        return 1
    _out(manager.describe(info))
    return 0


def sandbox_fault(args: argparse.Namespace) -> int:
    from sandbox import manager

    knobs = {
        "error_rate": args.error_rate,
        "codes": [int(c) for c in args.codes.split(",") if c],
        "latency_ms": args.latency_ms,
        "down_seconds": args.down_seconds,
        "conflict_rate": args.conflict_rate,
    }
    result = manager.set_fault(Path(args.dir), args.target, knobs)
    _out(json.dumps(result, indent=2))
    return 0


# -- inventory and development ----------------------------------------------------------------


def inventory_check(args: argparse.Namespace) -> int:
    from secretops.inventory import load_inventory

    inv = load_inventory(args.inventory)
    _out(f"{args.inventory}: ok")
    for secret in inv.secrets:
        envs = ", ".join(inv.environments_of(secret.id))
        _out(f"  {secret.id:<14} {secret.kind.value:<18} {envs}")
    return 0


def dev_init(args: argparse.Namespace) -> int:
    from secretops.devinit import init_dev_from_inventory
    from secretops.inventory import load_inventory

    inv = load_inventory(args.inventory)
    report = init_dev_from_inventory(inv, force=args.force)
    _out(str(report))
    return 0


# -- rotations ---------------------------------------------------------------------------------


def rotate_api_key(args: argparse.Namespace) -> int:
    from secretops.cli import runs

    return runs.rotate_api_key(args)


def rotate_db_password(args: argparse.Namespace) -> int:
    from secretops.cli import runs

    return runs.rotate_db_password(args)


def rotate_all(args: argparse.Namespace) -> int:
    from secretops.cli import runs

    return runs.rotate_all(args)


def setup(args: argparse.Namespace) -> int:
    from secretops.inventory import load_inventory
    from secretops.setup import KubernetesJob, run_setup

    inv = load_inventory(args.inventory)
    defaults = KubernetesJob()
    job = KubernetesJob(image=args.image or defaults.image,
                        service_account=args.service_account or defaults.service_account,
                        namespace=args.namespace or defaults.namespace)
    report = run_setup(inv, Path(args.inventory), Path(args.project_dir), job)
    for line in report.lines():
        _out(line)
    return 0


def leak(args: argparse.Namespace) -> int:
    from secretops.cli import runs

    return runs.leak(args)


def audit(args: argparse.Namespace) -> int:
    from secretops.cli import runs

    return runs.audit(args)


def break_glass(args: argparse.Namespace) -> int:
    from secretops.cli import runs

    return runs.break_glass(args)


def unlock(args: argparse.Namespace) -> int:
    from secretops.errors import SecretopsError
    from secretops.prefect_setup import lock_holders, release_lock

    holders = lock_holders(args.secret)
    if holders and not args.force:
        raise SecretopsError(
            f"runs of {args.secret} are live: {'; '.join(holders)}. Cancel them, or mark them "
            "crashed, or pass --force if you know their process is gone"
        )
    release_lock(args.secret)
    _out(f"lock of {args.secret} released")
    return 0


# -- hygiene -----------------------------------------------------------------------------------


def scan(args: argparse.Namespace) -> int:
    from secretops.inventory import load_inventory
    from secretops.scan import format_report, scan_prefect
    from secretops.scan_values import values_to_scan

    values = values_to_scan(load_inventory(args.inventory))
    report = scan_prefect(
        values,
        api_url=args.api_url,
        database_path=Path(args.database) if args.database else None,
        extra_files=[Path(p) for p in args.extra_file],
        since=_iso_time(args.since) if args.since else None,
    )
    _out(format_report(report))
    return 0 if report.ok else 1


def _iso_time(text: str) -> datetime:
    from secretops.errors import SecretopsError

    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise SecretopsError(f"not an ISO 8601 time: {text!r} (e.g. 2026-11-29T10:00Z)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# -- quickstart --------------------------------------------------------------------------------


def quickstart(args: argparse.Namespace) -> int:
    from secretops.cli import quickstart as qs

    if args.stop:
        return qs.stop(Path(args.dir))
    return qs.run(Path(args.dir))

