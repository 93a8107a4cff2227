"""What the leak tests share: the credentials of the world, whether a target accepts one, the
leak CLI as a real subprocess timed until every target refuses the old credential, and the
converged world afterwards."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from secretops.errors import Retryable
from secretops.models import Credential, Stage
from secretops.staging import stage_key
from tests.flows.conftest import World, mint_console_key

ROOT = Path(__file__).resolve().parents[2]
ENVIRONMENTS = ["development", "staging", "production"]
# from the CLI's start to the provider refusing the key in all three environments: 2.5 s for
# Anthropic on an idle 2-core machine, 1.3 s of it the official anthropic client's import
# (its types); the margin is for the suite's other worker sharing the cores
REVOKE_BUDGET_SECONDS = 4.0


def stage_console_keys(world: World, environments: Iterable[str] = ENVIRONMENTS) -> None:
    for environment in environments:
        key = mint_console_key(world, f"secretops-intelliprompt-{environment}-anthropic")
        stage_key(world.wiring.stores("anthropic", environment), key)


def current(world: World, secret: str, environment: str) -> Credential:
    credential = world.wiring.stores(secret, environment)[0].read(Stage.current)
    assert credential is not None
    world.seen.append(credential.secret)
    return credential


def currents(world: World, secret: str) -> dict[str, Credential]:
    """Each environment's current credential, checked to work (the leak's starting point; the
    check also loads this process's clients, so the timing below measures only the CLI)."""
    found = {env: current(world, secret, env) for env in ENVIRONMENTS}
    for environment, credential in found.items():
        assert works(world, secret, environment, credential), environment
    return found


def works(world: World, secret: str, environment: str, credential: Credential) -> bool:
    """Whether the target accepts the credential right now. A database check the revocation
    itself cut short (it ends the role's sessions, this probe's among them) is asked again."""
    if secret != "db-password":
        return bool(world.wiring.provider(secret).check_key(credential))
    user = credential.username or world.inventory.role_for(secret, environment)
    database = world.wiring.database(environment)
    for _ in range(2):
        with contextlib.suppress(Retryable):
            return database.can_login(user, credential.secret)
        time.sleep(0.05)
    return database.can_login(user, credential.secret)


@dataclass
class CliRun:
    returncode: int
    output: str
    seconds_to_refusal: float


def leak_command(world: World, secret: str, since: datetime, postmortems: Path,
                 *extra: str) -> list[str]:
    return [sys.executable, "-m", "cli", "leak", secret, "--since", since.isoformat(),
            "--inventory", world.path, "--postmortem-dir", str(postmortems), *extra]


def run_leak_cli(world: World, secret: str, old: dict[str, Credential], since: datetime,
                 postmortems: Path, *extra: str) -> CliRun:
    """``secretops leak SECRET --all-envs`` as a subprocess; the time is measured from just
    before the process starts until every target refuses its old credential."""
    command = leak_command(world, secret, since, postmortems, "--all-envs", *extra)
    began = time.monotonic()
    process = subprocess.Popen(command, cwd=ROOT, env=dict(os.environ), text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    pending = dict(old)
    refused_after = float("inf")
    while pending and time.monotonic() - began < 60 and process.poll() is None:
        for environment, credential in list(pending.items()):
            if not works(world, secret, environment, credential):
                del pending[environment]
        if not pending:
            refused_after = time.monotonic() - began
        time.sleep(0.02)
    output, _ = process.communicate(timeout=240)
    if pending and not any(works(world, secret, e, c) for e, c in pending.items()):
        refused_after = time.monotonic() - began
    return CliRun(process.returncode, output, refused_after)


def assert_replaced_everywhere(world: World, kubectl: Any, secret: str,
                               old: dict[str, Credential]) -> None:
    """Every environment is on a new working credential, nothing pending, the app healthy."""
    for environment, leaked in old.items():
        new = current(world, secret, environment)
        assert new.secret != leaked.secret, environment
        assert works(world, secret, environment, new), environment
        assert not works(world, secret, environment, leaked), environment
        for store in world.wiring.stores(secret, environment):
            assert store.read(Stage.pending) is None, store.name
            held = store.read(Stage.current)
            assert held is not None and held.secret == new.secret, store.name
        namespace = world.inventory.namespace(environment)
        if namespace:
            answer = httpx.get(world.info["services"][environment], timeout=10)
            assert answer.status_code == 200, answer.text
            rollout = kubectl("rollout", "status", "deployment/backend", "-n", namespace,
                              "--timeout=30s")
            assert "successfully rolled out" in rollout.stdout


def forget_leak_responses(world: World) -> None:
    """Delete the records earlier leak responses of this session left (Prefect variables).
    A leak reported as exposed since an hour ago is, by design, taken as already answered
    in an environment whose current value a response recorded as its replacement within
    that hour: another test module's response would make this one's a no-op."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    from secretops.revocation import record_name

    with get_client(sync_client=True) as client:
        for secret in world.inventory.secret_ids():
            for environment in world.inventory.environments_of(secret):
                with contextlib.suppress(ObjectNotFound):
                    client.delete_variable_by_name(record_name(secret, environment.value))
