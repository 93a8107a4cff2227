"""`secretops quickstart`: boot the sandbox and a local Prefect server, run every runbook
procedure against the sandbox, prove nothing leaked, and say where to look."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from secretops.errors import SecretopsError
from secretops.models import Environment


def _say(text: str = "") -> None:
    print(text, flush=True)


def run(directory: Path) -> int:
    from cli.installed import require_sandbox

    require_sandbox()
    from sandbox import manager
    from secretops import local_prefect

    directory = directory.resolve()
    _say("1/4  the sandbox: IntelliPrompt's Kubernetes, AWS, PostgreSQL, OpenAI and Anthropic")
    info, _ = manager.up(directory, progress=lambda line: _say(f"     {line}"))
    if os.environ.get("PREFECT_API_URL"):
        api_url, ui_url = os.environ["PREFECT_API_URL"], os.environ["PREFECT_API_URL"][:-4]
        _say(f"2/4  Prefect: using {api_url}")
    else:
        _say("2/4  Prefect: starting a local server (the first start takes about half a minute)")
        server = local_prefect.start(directory)
        api_url, ui_url = server["api_url"], server["ui_url"]
        _say(f"     Prefect UI at {ui_url}")
    os.environ["PREFECT_API_URL"] = api_url
    os.environ["SECRETOPS_INVENTORY"] = info["inventory"]
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    _say("3/4  running the runbook's procedures against the sandbox")
    results = _procedures(info)
    _say("4/4  scanning Prefect for any secret value")
    clean = _scan(info, directory)
    _say()
    _say(f"{'procedure':<44} {'seconds':>8}  outcome")
    for name, seconds, outcome in results:
        _say(f"{name:<44} {seconds:>8.1f}  {outcome}")
    _say()
    _say(f"Every run, its steps and its report (Artifacts tab): {ui_url}/runs")
    _say("To go on from another shell, point secretops at this world (otherwise each command")
    _say("starts a temporary Prefect server and its runs are not in that UI):")
    _say(f"  export PREFECT_API_URL={api_url} SECRETOPS_INVENTORY={info['inventory']}")
    _say("  secretops rotate api-key openai --env staging     rotate one key")
    _say("  secretops leak openai --all-envs --drill          practise a leak response")
    _say(f"  kubectl --kubeconfig {info['kubeconfig']} get pods -A")
    _say(f"Stop everything: secretops quickstart --stop --dir {directory}")
    failed = [r for r in results if not r[2].startswith(("rotated", "ok"))]
    return 0 if clean and not failed else 1


def _procedures(info: dict[str, Any]) -> list[tuple[str, float, str]]:
    from flows.common import run_in_process
    from flows.rotate_api_key import rotate_api_key
    from flows.rotate_db_password import rotate_db_password
    from secretops import redaction
    from secretops.inventory import load_inventory
    from secretops.prefect_setup import ensure_concurrency_limits

    redaction.install()
    inventory = info["inventory"]
    inv = load_inventory(inventory)
    ensure_concurrency_limits(inv)
    plan: list[tuple[str, Callable[[], Any]]] = []
    for env in Environment:
        for spec in inv.secrets:
            if env not in inv.environments_of(spec.id):
                continue
            if spec.is_password:
                plan.append((f"rotate-db-password ({env})", partial(
                    rotate_db_password, env, secret=spec.id, inventory=inventory)))
            elif inv.provider_of(spec.id).creates_keys:
                plan.append((f"rotate-api-key {spec.id} ({env})", partial(
                    rotate_api_key, spec.id, env, inventory=inventory)))
            else:  # the sandbox's console stands in for the person who creates the key
                plan.append((f"rotate-api-key {spec.id} ({env})", partial(
                    _rotate_anthropic, info, env)))
    results = []
    for name, call in plan:
        begun = time.monotonic()
        try:
            report = str(run_in_process(call()))
            outcome = next((line.split("**outcome**: ", 1)[1] for line in report.splitlines()
                            if "**outcome**" in line), "done")
        except Exception as exc:
            outcome = f"failed: {exc}"
        seconds = time.monotonic() - begun
        _say(f"     {name:<40} {seconds:5.1f} s  {outcome.split(':')[0]}")
        results.append((name, seconds, outcome))
    return results


def _rotate_anthropic(info: dict[str, Any], environment: Environment) -> Any:
    """Anthropic keys are created by a person in the console: the sandbox's console stands in
    for that person, and the key is staged as the CLI's hidden prompt would stage it."""
    from flows.rotate_api_key import rotate_api_key
    from sandbox.manager import mint_console_key
    from secretops.inventory import load_inventory
    from secretops.models import SecretValue
    from secretops.staging import stage_key
    from secretops.wiring import Wiring

    key = SecretValue(mint_console_key(info, f"secretops-intelliprompt-{environment}-anthropic"))
    wiring = Wiring(load_inventory(info["inventory"]))
    stage_key(wiring.stores("anthropic", environment), key, wiring.provider("anthropic"))
    return rotate_api_key("anthropic", environment, inventory=info["inventory"])


def _scan(info: dict[str, Any], directory: Path) -> bool:
    from secretops import local_prefect
    from secretops.inventory import load_inventory
    from secretops.scan import format_report
    from secretops.scan_api import scan_prefect
    from secretops.scan_values import values_to_scan

    server = local_prefect.status(directory)
    report = scan_prefect(
        values_to_scan(load_inventory(info["inventory"])),
        api_url=os.environ["PREFECT_API_URL"],
        database_path=Path(server["database"])
        if server and server["database"] != "postgresql" else None,
    )
    _say("     " + format_report(report).replace("\n", "\n     "))
    return report.ok


def stop(directory: Path) -> int:
    from cli.installed import require_sandbox

    require_sandbox()
    from sandbox import manager
    from secretops import local_prefect

    directory = directory.resolve()
    if not manager.read_info(directory) and not local_prefect.status(directory):
        raise SecretopsError(f"nothing from quickstart runs in {directory}")
    ended = manager.down(directory)
    stopped = local_prefect.stop(directory)
    _say(f"sandbox stopped ({ended} process(es)); Prefect server "
         f"{'stopped' if stopped else 'was not ours'}")
    return 0
