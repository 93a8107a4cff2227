"""Run a flow from the command line, in this process, against the Prefect API in
``$PREFECT_API_URL`` (or a temporary local one). Prefect's console log shows each runbook step
as it starts and ends; the run's report is printed at the end."""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from secretops.errors import SecretopsError


def _prepare(inventory: str) -> str:
    from secretops import redaction
    from secretops.inventory import load_inventory
    from secretops.prefect_setup import ensure_concurrency_limits

    path = str(Path(inventory).resolve())
    redaction.install()
    for line in ensure_concurrency_limits(load_inventory(path)):
        print(line, flush=True)
    return path


def _finish(run: object) -> int:
    from prefect.client.schemas.objects import State

    if isinstance(run, State):
        print(run.message or run.name, flush=True)
        return 0 if run.is_completed() else 1
    print(run, flush=True)
    return 0


def rotate_api_key(args: argparse.Namespace) -> int:
    from flows.rotate_api_key import rotate_api_key as flow

    path = _prepare(args.inventory)
    if not args.dry_run:
        _ask_for_key_if_needed(args.secret, args.env, path)
    result = flow(secret=args.secret, environment=args.env, reason=args.reason,
                  dry_run=args.dry_run, inventory=path)
    return _finish(result)


def rotate_db_password(args: argparse.Namespace) -> int:
    from flows.rotate_db_password import rotate_db_password as flow

    path = _prepare(args.inventory)
    result = flow(environment=args.env, strategy=args.strategy,
                  terminate_old_sessions=args.terminate_old_sessions, reason=args.reason,
                  dry_run=args.dry_run, secret=args.secret, inventory=path)
    return _finish(result)


def leak(args: argparse.Namespace) -> int:
    """The flow starts at once and revokes before anything else; the report time is this
    command's start, so the post-mortem shows the time from the command to revocation."""
    from datetime import UTC, datetime

    reported_at = datetime.now(UTC)
    since = datetime.fromisoformat(args.since) if args.since else None
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    from flows.respond_to_leak import respond_to_leak as flow

    path = _prepare(args.inventory)
    result = flow(secret=args.secret, environments=None if args.all_envs else args.env,
                  exposed_since=since, reason=args.reason, drill=args.drill,
                  reported_at=reported_at, postmortem_dir=args.postmortem_dir, inventory=path)
    return _finish(result)


def audit(args: argparse.Namespace) -> int:
    from flows.audit_access import audit_access as flow

    path = _prepare(args.inventory)
    state = flow(inventory=path, return_state=True)
    print(state.message or state.name, flush=True)
    return 0 if state.is_completed() else 1


def break_glass(args: argparse.Namespace) -> int:
    from flows.break_glass import break_glass as flow

    path = _prepare(args.inventory)
    return _finish(flow(who=args.who, why=args.why, inventory=path))


def _ask_for_key_if_needed(secret: str, environment: str, inventory: str) -> None:
    """A provider without a key API (Anthropic): read the new key with a hidden prompt and
    stage it as pending before the flow starts, so it never becomes a parameter."""
    from secretops.inventory import load_inventory
    from secretops.models import SecretValue, Stage
    from secretops.staging import check_shape, person_instructions, stage_key
    from secretops.wiring import Wiring

    inv = load_inventory(inventory)
    wiring = Wiring(inv)
    provider = wiring.provider(secret)
    stores = wiring.stores(secret, environment)
    if provider.can_create_keys or any(s.read(Stage.pending) for s in stores):
        return
    person = person_instructions(inv, secret, environment)
    if not sys.stdin.isatty():
        raise SecretopsError(
            f"a new {secret} key must be created by a person at {person.console_url}; run this "
            "command in a terminal to paste it, or start the run from the Prefect UI and use "
            "its form"
        )
    print(f"Create a key named {person.key_name} at {person.console_url}, then paste it "
          "(input is hidden).", flush=True)
    value = SecretValue(getpass.getpass(f"new {secret} key: ").strip())
    check_shape(value, person.key_prefix)
    if not provider.check_key(value):
        raise SecretopsError(f"the provider refuses that key ({value.fingerprint()}); "
                             "nothing was changed")
    for line in stage_key(stores, value):
        print(line, flush=True)
