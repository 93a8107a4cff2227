"""What each `secretops` command does. Heavy imports happen inside the functions."""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from cli.installed import require_sandbox

if TYPE_CHECKING:
    from secretops.inventory import Inventory


def _out(text: str = "") -> None:
    print(text, flush=True)


# -- sandbox ----------------------------------------------------------------------------------

def sandbox_up(args: argparse.Namespace) -> int:
    require_sandbox()
    from sandbox import manager

    info, started = manager.up(Path(args.dir), faults=args.fault, progress=_out,
                               kubernetes=args.kubernetes)
    if not started:
        _out(f"sandbox already running in {info['dir']}")
    _out(manager.describe(info))
    return 0


def sandbox_down(args: argparse.Namespace) -> int:
    require_sandbox()
    from sandbox import manager

    stopped = manager.down(Path(args.dir))
    _out(f"sandbox stopped ({stopped} process(es) ended)" if stopped else "no sandbox running")
    return 0


def sandbox_build_binaries(args: argparse.Namespace) -> int:
    require_sandbox()
    from sandbox.realkube import binaries

    names = args.only or list(binaries.EVERYTHING)
    if args.force or binaries.missing(names):
        binaries.build(names, force=args.force, progress=_out)
    for name in names:
        _out(f"{name:<24} {binaries.find(name)}")
    return 0


def sandbox_status(args: argparse.Namespace) -> int:
    require_sandbox()
    from sandbox import manager

    info = manager.status(Path(args.dir))
    if info is None:
        _out(f"no sandbox running in {args.dir}")
        return 1
    _out(manager.describe(info))
    return 0


def sandbox_fault(args: argparse.Namespace) -> int:
    require_sandbox()
    from sandbox import manager

    knobs = {
        "error_rate": args.error_rate,
        "codes": [int(c) for c in args.codes.split(",") if c],
        "latency_ms": args.latency_ms,
        "down_seconds": args.down_seconds,
        "conflict_rate": args.conflict_rate,
    }
    if args.redaction is not None:
        knobs["redaction"] = args.redaction
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
        _out(f"  {secret.id:<14} {secret.kind:<20} {envs}")
    code = _key_expiries(inv) if args.keys else 0
    return max(code, _external_secrets(inv)) if getattr(args, "cluster", False) else code


def _key_expiries(inv: Inventory) -> int:
    """One line per API key: when it expires, and whether that makes it due now."""
    from datetime import UTC

    from secretops.expiry import expiry_margin, key_expiries
    from secretops.wiring import Wiring

    now = datetime.now(UTC)
    with Wiring(inv) as wiring:
        pairs = [(s, env) for s in inv.secret_ids() for env in inv.environments_of(s)]
        found = key_expiries(inv, wiring, pairs)
    _out("API keys:")
    for (secret, env), expires in found.items():
        margin = expiry_margin(inv, inv.secret(secret).kind)
        when = "no expiry" if expires is None else f"expires {expires:%Y-%m-%d %H:%M} UTC"
        due = expires is not None and margin is not None and expires <= now + margin
        _out(f"  {secret:<14} {env.value:<12} {when}" + ("  (due: within the expiry margin)"
                                                        if due else ""))
    return 0


def _external_secrets(inv: Inventory) -> int:
    """One line per ExternalSecret the rotations force-sync: whether External Secrets
    Operator will sync it on request (not with refreshInterval 0 or CreatedOnce)."""
    from secretops.errors import SecretopsError
    from secretops.wiring import Wiring

    refused, seen = 0, set()
    _out("ExternalSecrets:")
    with Wiring(inv) as wiring:
        for secret in inv.secret_ids():
            for env in inv.environments_of(secret):
                namespace = inv.namespace(env)
                for spec in inv.stores(secret, env):
                    name = getattr(spec, "external_secret", None)
                    if not name or namespace is None or (namespace, name) in seen:
                        continue
                    seen.add((namespace, name))
                    try:
                        wiring.cluster().check_external_secret_syncable(namespace, name)
                    except SecretopsError as exc:
                        refused += 1
                        _out(f"  {exc}")
                        continue
                    _out(f"  ExternalSecret {namespace}/{name} can be force-synced")
    return 1 if refused else 0


def dev_init(args: argparse.Namespace) -> int:
    from secretops.devinit import init_dev_from_inventory
    from secretops.inventory import load_inventory

    inv = load_inventory(args.inventory)
    report = init_dev_from_inventory(inv, force=args.force)
    _out(str(report))
    return 0


# -- rotations ---------------------------------------------------------------------------------


def rotate_api_key(args: argparse.Namespace) -> int:
    from cli import runs

    return runs.rotate_api_key(args)


def rotate_db_password(args: argparse.Namespace) -> int:
    from cli import runs

    return runs.rotate_db_password(args)


def rotate_all(args: argparse.Namespace) -> int:
    from cli import runs

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
    from cli import alerts, runs

    wrong = alerts.leak_arguments_error(args)
    if wrong:
        return alerts.main_error(wrong)
    if args.from_report:
        return alerts.leak_from_report(args)
    if args.via:
        from cli import drill

        return drill.run(args)
    return runs.leak(args)


def alerts_serve(args: argparse.Namespace) -> int:
    from cli import alerts

    return alerts.serve(args)


def audit(args: argparse.Namespace) -> int:
    from cli import runs

    return runs.audit(args)


def break_glass(args: argparse.Namespace) -> int:
    from cli import runs

    return runs.break_glass(args)


def unlock(args: argparse.Namespace) -> int:
    from secretops.errors import SecretopsError
    from secretops.inventory import load_inventory
    from secretops.prefect_setup import lock_holders, release_lock

    known = load_inventory(args.inventory).secret_ids()
    if args.secret not in known:
        raise SecretopsError(f"no secret {args.secret!r} in the inventory (its secrets: "
                             f"{', '.join(known)})")
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
    from secretops.scan import format_report
    from secretops.scan_api import scan_prefect
    from secretops.scan_values import values_to_scan

    values = values_to_scan(load_inventory(args.inventory))
    report = scan_prefect(
        values,
        api_url=args.api_url,
        database_path=Path(args.database) if args.database else None,
        extra_files=[Path(p) for p in args.extra_file],
        since=args.since,
    )
    _out(format_report(report))
    return 0 if report.ok else 1


# -- quickstart --------------------------------------------------------------------------------


def quickstart(args: argparse.Namespace) -> int:
    from cli import quickstart as qs

    if args.stop:
        return qs.stop(Path(args.dir))
    return qs.run(Path(args.dir))

