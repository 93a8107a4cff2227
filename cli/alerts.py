"""``secretops alerts serve``, ``secretops leak --from-report FILE`` and the drill ``secretops
leak --drill --via github`` (docs/alerts.md)."""

from __future__ import annotations

import argparse
import contextvars
import sys
import threading
from pathlib import Path
from typing import Any

from secretops.errors import SecretopsError

MAX_REPORT = 16 * 1024 * 1024


def serve(args: argparse.Namespace) -> int:
    from secretops.alerts.serve import serve as run
    from secretops.inventory import load_inventory

    run(load_inventory(args.inventory), args.host, args.port, args.github_api)
    return 0


def leak_arguments_error(args: argparse.Namespace) -> str | None:
    """Which combination of the leak command's arguments is wrong, in one line."""
    if args.from_report and (args.secret or args.env or args.all_envs or args.via):
        return "--from-report finds the secret and environments itself: give it alone"
    if args.via and not args.drill:
        return "--via github is a drill: add --drill"
    if args.dry_run and not args.from_report:
        return "--dry-run goes with --from-report"
    if not args.from_report and not args.via:
        if not args.secret:
            return "name the leaked secret (or give --from-report FILE)"
        if not (args.env or args.all_envs):
            return "one of the arguments --env --all-envs is required"
    return None


def _read_report(path: str) -> bytes:
    file = Path(path)
    try:
        if file.stat().st_size > MAX_REPORT:
            raise SecretopsError(f"{path}: larger than {MAX_REPORT // 2**20} MB")
        return file.read_bytes()
    except OSError as exc:
        raise SecretopsError(f"{path}: cannot read the report ({exc.strerror})") from None


def leak_from_report(args: argparse.Namespace) -> int:
    """Match every finding of the report against the stores; with ``--dry-run`` say what
    would be done, else respond to each live value (revoke first, then the leak flow)."""
    from secretops.alerts.findings import parse_report
    from secretops.alerts.matching import FingerprintIndex, Match, Verdict, inventory_stores
    from secretops.inventory import load_inventory
    from secretops.wiring import Wiring

    findings = parse_report(_read_report(args.from_report))
    inv = load_inventory(args.inventory)
    with Wiring(inv) as wiring:
        index = FingerprintIndex(inventory_stores(wiring))
        matches = [index.match(finding) for finding in findings]
    live: dict[tuple[str, tuple[str, ...], str], Match] = {}
    for match in matches:
        print(match.describe(), flush=True)
        if match.verdict is Verdict.live:
            live.setdefault((str(match.secret), tuple(match.environments),
                             match.fingerprint), match)
    print(f"{len(findings)} finding(s): {len(live)} live value(s), "
          f"{sum(m.verdict is Verdict.rotated for m in matches)} already rotated, "
          f"{sum(m.verdict is Verdict.not_ours for m in matches)} not ours", flush=True)
    if args.dry_run:
        for (secret, envs, _), match in live.items():
            print(f"would revoke the leaked {secret} value in {', '.join(envs)} at once, then "
                  f"replace it there ({match.finding.where()})", flush=True)
        return 0
    code = 0
    for (secret, envs, _), match in live.items():
        code = max(code, _respond(args, secret, list(envs), match))
    return code


def _respond(args: argparse.Namespace, secret: str, environments: list[str], match: Any) -> int:
    """The leak CLI's response for one live value: revoke it first, then run the flow."""
    from datetime import UTC, datetime

    from cli import runs

    reported_at = datetime.now(UTC)
    path = runs._prepare(args.inventory)
    fingerprint = _own_fingerprint(path, secret, environments, match)
    from secretops.inventory import load_inventory
    from secretops.revocation import revoke
    from secretops.wiring import Wiring

    with Wiring(load_inventory(path)) as wiring:
        revoked = {env: revoke(wiring, secret, env, None, reported_at, fingerprint)
                   for env in environments}
    for env, lines in revoked.items():
        for line in lines:
            print(f"revoked in {env}: {line}", flush=True)
    revoked_at = datetime.now(UTC)
    from flows.common import run_in_process
    from flows.respond_to_leak import respond_to_leak as flow
    from secretops.models import Environment

    runs._ask_for_leak_keys(secret, environments, path, revoked)
    alert = {"source": match.finding.source, **match.finding.location}
    return runs._finish(run_in_process(flow(
        secret=secret, environments=[Environment(e) for e in environments],
        reason=f"{match.finding.where()}"[:200],
        drill=args.drill, reported_at=reported_at, postmortem_dir=args.postmortem_dir,
        inventory=path, revoked_before=revoked, revoked_before_at=revoked_at,
        leaked_fingerprint=fingerprint, alert=alert)))


def _own_fingerprint(inventory: str, secret: str, environments: list[str], match: Any) -> str:
    """The leaked value's fingerprint (a detect-secrets finding holds only its SHA-1)."""
    from secretops.alerts.matching import live_fingerprint
    from secretops.inventory import load_inventory
    from secretops.wiring import Wiring

    with Wiring(load_inventory(inventory)) as wiring:
        found = live_fingerprint(wiring, match)
    if found is None:
        raise SecretopsError(f"the {secret} value of {match.finding.where()} is no longer "
                             f"held in {', '.join(environments)}: already rotated")
    return found


class BackgroundReceiver:
    """The receiver served by uvicorn in a thread of this process, on 127.0.0.1."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0,
                                                    log_level="warning", lifespan="off",
                                                    access_log=False))
        # the thread runs in a copy of this context: the Prefect settings in effect here
        # (a profile or temporary settings) are the ones the receiver emits events with
        context = contextvars.copy_context()
        self.thread = threading.Thread(target=context.run, args=(self.server.run,), daemon=True)

    def __enter__(self) -> str:
        import time

        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise SecretopsError("the alert receiver did not start")
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def main_error(message: str) -> int:
    print(f"secretops leak: error: {message} (see secretops leak --help)", file=sys.stderr)
    return 2
