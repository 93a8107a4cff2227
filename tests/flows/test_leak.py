"""respond-to-leak against the sandbox: the CLI as a real subprocess, the target polled until it
refuses the old credential, then the world afterwards (new credentials everywhere, the app
healthy), the audit findings and the post-mortem file."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from secretops.models import Credential, SecretValue, Stage
from secretops.staging import stage_key
from tests.flows.conftest import World

ROOT = Path(__file__).resolve().parents[2]
ENVIRONMENTS = ["development", "staging", "production"]
REVOKE_BUDGET_SECONDS = 3.0
EXPOSED_SINCE = datetime.now(UTC) - timedelta(hours=1)


def mint_console_key(world: World, name: str) -> SecretValue:
    """What a person does in the Anthropic console."""
    response = httpx.post(f"{world.info['providers']['console']}/keys", json={"name": name})
    response.raise_for_status()
    value = SecretValue(response.json()["key"])
    world.seen.append(value)
    return value


def current(world: World, secret: str, environment: str) -> Credential:
    credential = world.wiring.stores(secret, environment)[0].read(Stage.current)
    assert credential is not None
    world.seen.append(credential.secret)
    return credential


def works(world: World, secret: str, environment: str, credential: Credential) -> bool:
    """Whether the target accepts the credential right now."""
    if secret == "db-password":
        user = credential.username or world.inventory.role_for(secret, environment)
        return world.wiring.database(environment).can_login(user, credential.secret)
    return world.wiring.provider(secret).check_key(credential.secret)


@dataclass
class CliRun:
    returncode: int
    output: str
    seconds_to_refusal: float


def run_leak_cli(world: World, secret: str, old: dict[str, Credential], postmortems: Path,
                 *extra: str) -> CliRun:
    """``secretops leak SECRET --all-envs`` as a subprocess; the time is measured from just
    before the process starts until every target refuses its old credential."""
    command = [sys.executable, "-m", "secretops.cli", "leak", secret, "--all-envs",
               "--since", EXPOSED_SINCE.isoformat(), "--inventory", world.path,
               "--postmortem-dir", str(postmortems), *extra]
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


def stage_console_keys(world: World) -> None:
    for environment in ENVIRONMENTS:
        key = mint_console_key(world, f"secretops-intelliprompt-{environment}-anthropic")
        stage_key(world.wiring.stores("anthropic", environment), key)


@pytest.mark.usefixtures("clean_prefect")
@pytest.mark.parametrize("secret", ["openai", "anthropic", "db-password"])
def test_leak_from_the_cli(world: World, kubectl: Any, tmp_path: Path, secret: str) -> None:
    old = {env: current(world, secret, env) for env in ENVIRONMENTS}
    if secret == "anthropic":
        stage_console_keys(world)

    run = run_leak_cli(world, secret, old, tmp_path)

    assert run.returncode == 0, run.output
    print(f"\n{secret}: old credential refused in every environment "
          f"{run.seconds_to_refusal:.2f} s after the CLI started")
    assert_replaced_everywhere(world, kubectl, secret, old)
    [postmortem] = tmp_path.glob("*.md")
    text = postmortem.read_text()
    assert str(postmortem) in run.output
    assert text.startswith(f"# Post-mortem: leak of `{secret}`")
    assert "## Timeline" in text and "1. Revoke compromised secret" in text
    assert "\n### Root cause\n" in text and "\n### Action items\n" in text
    for value in world.values():
        assert value.reveal() not in text
    if secret == "openai":
        assert "contractor-laptop" in text and "GetSecretValue" in text
        assert "dev-laptop@intelliprompt.dev get intelliprompt/api-keys" in text
        assert "last use of the leaked key" in text
        assert "VIOLATION: Group developers via RoleBinding intelliprompt/developers-read" in text
    assert run.seconds_to_refusal < REVOKE_BUDGET_SECONDS, f"{run.seconds_to_refusal:.2f} s"
