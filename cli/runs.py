"""Run a flow from the command line, in this process, against the Prefect API in
``$PREFECT_API_URL`` (or a temporary local one). Prefect's console log shows each runbook step
as it starts and ends; the run's report is printed at the end."""

from __future__ import annotations

import argparse
import getpass
import sys
from datetime import datetime
from pathlib import Path

from secretops.errors import SecretopsError
from secretops.inventory import Inventory


def _checked(inventory: str, secret: str | None, want: str | None = None) -> Inventory:
    """The inventory, once it loads and names ``secret`` (a provider's ``key`` or a database
    ``password`` when ``want`` says which)."""
    from secretops.inventory import load_inventory

    inv = load_inventory(inventory)
    if secret is not None:
        wanted = [s for s in inv.secret_ids()
                  if want is None or inv.secret(s).is_password == (want == "password")]
        if secret not in wanted:
            what = want or "secret"
            raise SecretopsError(f"no {what} {secret!r} in the inventory (its {what}s: "
                                 f"{', '.join(wanted) or 'none'})")
    return inv


def _prepare(inventory: str, secret: str | None = None, want: str | None = None) -> str:
    """The inventory's absolute path, once it loads (and names ``secret``, a ``key`` or a
    ``password`` when ``want`` says which), with the Prefect concurrency limits its secrets
    need."""
    from secretops import redaction
    from secretops.prefect_setup import ensure_concurrency_limits

    path = str(Path(inventory).resolve())
    inv = _checked(path, secret, want)
    redaction.install()
    for line in ensure_concurrency_limits(inv):
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
    from flows.common import run_in_process
    from flows.rotate_api_key import rotate_api_key as flow

    path = _prepare(args.inventory, args.secret, "key")
    if not args.dry_run:
        _ask_for_key_if_needed(args.secret, args.env, path)
    result = run_in_process(flow(secret=args.secret, environment=args.env, reason=args.reason,
                                 dry_run=args.dry_run, inventory=path))
    return _finish(result)


def rotate_db_password(args: argparse.Namespace) -> int:
    from flows.common import run_in_process
    from flows.rotate_db_password import rotate_db_password as flow

    path = _prepare(args.inventory, args.secret, "password")
    result = run_in_process(flow(environment=args.env, strategy=args.strategy,
                                 terminate_old_sessions=args.terminate_old_sessions,
                                 reason=args.reason, dry_run=args.dry_run, secret=args.secret,
                                 inventory=path))
    return _finish(result)


def rotate_all(args: argparse.Namespace) -> int:
    """Prints the run's report (every secret, due or not, and how it went). Keys only a person
    can create are not asked for here: the report lists them as waiting for a person
    (``secretops rotate api-key`` asks for each)."""
    from flows.common import run_in_process
    from flows.rotate_all import rotate_all as flow
    from secretops.inventory import load_inventory

    if args.max_concurrency < 1:
        raise SecretopsError("--max-concurrency must be at least 1")
    inv = load_inventory(args.inventory)
    for secret in args.secret or []:  # an unknown id: one line, before Prefect is started
        inv.secret(secret)
    path = _prepare(args.inventory)
    state = run_in_process(flow(environments=args.env, max_concurrency=args.max_concurrency,
                                force=args.force, dry_run=args.dry_run, inventory=path,
                                secrets=args.secret, return_state=True))
    if state.is_completed():
        print(state.result(), flush=True)
    return _finish(state)


def leak(args: argparse.Namespace) -> int:
    """The flow starts at once and revokes before anything else; the report time is this
    command's start, so the post-mortem shows the time from the command to revocation."""
    from datetime import UTC

    reported_at = datetime.now(UTC)
    since: datetime | None = args.since  # parsed, in UTC, not in the future
    _checked(args.inventory, args.secret)
    revoked = _revoke_first(args.secret, args.env, str(Path(args.inventory).resolve()),
                            since or reported_at)
    revoked_at = datetime.now(UTC)
    from flows.common import run_in_process
    from flows.respond_to_leak import respond_to_leak as flow

    path = _prepare(args.inventory)
    _ask_for_leak_keys(args.secret, args.env, path, revoked)
    result = run_in_process(flow(
        secret=args.secret, environments=None if args.all_envs else args.env,
        exposed_since=since, reason=args.reason, drill=args.drill, reported_at=reported_at,
        postmortem_dir=args.postmortem_dir, inventory=path, revoked_before=revoked,
        revoked_before_at=revoked_at if revoked else None))
    return _finish(result)


def _revoke_first(secret: str, environments: list[str] | None, inventory: str,
                  since: datetime) -> dict[str, list[str]] | None:
    """Revoke before Prefect is even imported (it takes seconds to load): the flow's first
    step then finds the credential revoked and records it. Needs the Prefect API's address in
    ``$PREFECT_API_URL`` (with ``$PREFECT_API_KEY`` or ``$PREFECT_API_AUTH_STRING`` if it asks
    for one) to read the responses' records, which keep a rerun from revoking a replacement;
    without it (a Prefect profile instead) the flow's first step does the revocation. Only
    the standard library, the inventory and the adapters the secret's stores use are loaded:
    see ``python -X importtime``."""
    import base64
    import json
    import os
    import urllib.error
    import urllib.request

    from secretops.inventory import load_inventory
    from secretops.revocation import Record, record_name, revoke_everywhere
    from secretops.wiring import Wiring

    api_url = os.environ.get("PREFECT_API_URL")
    if not api_url:
        return None
    inv = load_inventory(inventory)
    envs = environments or [e.value for e in inv.environments_of(secret)]

    headers = {}
    if os.environ.get("PREFECT_API_KEY"):
        headers["Authorization"] = f"Bearer {os.environ['PREFECT_API_KEY']}"
    elif os.environ.get("PREFECT_API_AUTH_STRING"):
        auth = base64.b64encode(os.environ["PREFECT_API_AUTH_STRING"].encode()).decode()
        headers["Authorization"] = f"Basic {auth}"

    def read_record(secret_id: str, environment: str) -> Record | None:
        url = f"{api_url.rstrip('/')}/variables/name/{record_name(secret_id, environment)}"
        request = urllib.request.Request(url, headers=headers)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
                value = json.load(answer).get("value")
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise
        return value if isinstance(value, dict) else None

    with Wiring(inv) as wiring:
        revoked = revoke_everywhere(wiring, secret, envs, read_record, since)
    for environment, evidence in revoked.items():
        for line in evidence:
            print(f"revoked in {environment}: {line}", flush=True)
    return revoked


def audit(args: argparse.Namespace) -> int:
    from flows.audit_access import audit_access as flow
    from flows.common import run_in_process

    path = _prepare(args.inventory)
    state = run_in_process(flow(inventory=path, return_state=True))
    print(state.message or state.name, flush=True)
    return 0 if state.is_completed() else 1


def break_glass(args: argparse.Namespace) -> int:
    from flows.break_glass import break_glass as flow
    from flows.common import run_in_process

    path = _prepare(args.inventory)
    return _finish(run_in_process(flow(who=args.who, why=args.why, inventory=path)))


def _ask_for_leak_keys(secret: str, environments: list[str] | None, inventory: str,
                       revoked: dict[str, list[str]] | None) -> None:
    """A leaked key only a person can replace (Anthropic): with a terminal, the hidden prompt
    of ``rotate api-key`` for each environment still to be replaced (not one an earlier
    response already handled). Without one, the run's pause form in the UI asks instead."""
    from secretops.inventory import load_inventory
    from secretops.revocation import ALREADY_HANDLED

    inv = load_inventory(inventory)
    if inv.secret(secret).is_password or not sys.stdin.isatty():
        return
    for environment in environments or [e.value for e in inv.environments_of(secret)]:
        if revoked is None or ALREADY_HANDLED not in revoked.get(environment, []):
            _ask_for_key_if_needed(secret, environment, inventory)


def _ask_for_key_if_needed(secret: str, environment: str, inventory: str) -> None:
    """A provider without a key API (Anthropic): read the new key with a hidden prompt and
    stage it as pending before the flow starts, so it never becomes a parameter."""
    from secretops.inventory import load_inventory
    from secretops.models import SecretValue
    from secretops.staging import check_shape, needs_person, person_instructions, stage_key
    from secretops.wiring import Wiring

    inv = load_inventory(inventory)
    wiring = Wiring(inv)
    provider = wiring.provider(secret)
    stores = wiring.stores(secret, environment)
    if not needs_person(provider, stores):
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
    for line in stage_key(stores, value, provider):
        print(line, flush=True)
