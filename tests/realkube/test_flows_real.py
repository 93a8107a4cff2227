"""The runbook's procedures on the real control plane, as the flows' ServiceAccount: the
real ESO syncing from moto, the real Deployment and ReplicaSet controllers rolling, the
sandbox's kubelet running the backend's start-up checks, the API server's audit log read by
the access audit."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from flows.rotate_api_key import rotate_api_key
from flows.rotate_db_password import rotate_db_password
from secretops.adapters.kube import KubeRefused
from secretops.models import Stage
from tests.flows.conftest import World, backend_logs
from tests.flows.leak_world import (
    assert_replaced_everywhere,
    current,
    currents,
    forget_leak_responses,
    run_leak_cli,
    works,
)
from tests.flows.test_audit import test_planted_binding_breaks_the_policy
from tests.flows.test_break_glass import (
    test_break_glass_rotates_what_the_emergency_identity_could_read,
)
from tests.flows.test_rotate_api_key_faults import (
    test_refused_key_rolls_back_and_app_stays_healthy,
)

# the sandbox world's own tests of these procedures, run here against the real plane too
__all__ = ["test_break_glass_rotates_what_the_emergency_identity_could_read",
           "test_planted_binding_breaks_the_policy",
           "test_refused_key_rolls_back_and_app_stays_healthy"]
PROD = "intelliprompt"
ROOT = Path(__file__).resolve().parents[2]
FIGURES: dict[str, str] = {}


def replicasets(kubectl: Any) -> set[str]:
    found = json.loads(kubectl("--context", "emergency-admin", "get", "rs", "-n", PROD,
                               "-o", "json").stdout)
    return {rs["metadata"]["name"] for rs in found["items"]}


@pytest.mark.usefixtures("clean_prefect")
def test_rotate_openai_in_production_under_load(world: World, kubectl: Any, load: Any) -> None:
    old = current(world, "openai", "production")
    world.seen.append(old.secret)
    sets_before = replicasets(kubectl)
    began = time.monotonic()
    with load("production") as traffic:
        asyncio.run(rotate_api_key(secret="openai", environment="production",
                                   inventory=world.path))
    seconds = time.monotonic() - began
    FIGURES["rotate api-key openai --env production"] = (
        f"{seconds:.2f} s, {traffic.failed} of {traffic.sent} requests failed")
    assert traffic.failed == 0, traffic.errors
    new = current(world, "openai", "production")
    world.seen.append(new.secret)
    assert new.secret != old.secret
    assert works(world, "openai", "production", new)
    assert not works(world, "openai", "production", old)
    held = world.wiring.cluster().read_secret(PROD, "api-keys") or {}
    assert held["openai"] == new.secret  # written by the real ESO
    assert replicasets(kubectl) - sets_before  # a new ReplicaSet, by the real controller
    assert backend_logs(kubectl, PROD).count("API initialized") >= 3


@pytest.mark.usefixtures("clean_prefect")
def test_rotate_db_password_in_production_under_load(world: World, kubectl: Any,
                                                     load: Any) -> None:
    old = world.wiring.stores("db-password", "production")[0].read(Stage.current)
    assert old is not None
    world.seen.append(old.secret)
    began = time.monotonic()
    with load("production") as traffic:
        asyncio.run(rotate_db_password(environment="production", inventory=world.path))
    FIGURES["rotate db-password --env production (alternating)"] = (
        f"{time.monotonic() - began:.2f} s, {traffic.failed} of {traffic.sent} requests failed")
    assert traffic.failed == 0, traffic.errors
    new = world.wiring.stores("db-password", "production")[0].read(Stage.current)
    assert new is not None and new.secret != old.secret
    world.seen.append(new.secret)
    held = world.wiring.cluster().read_secret(PROD, "db-credentials") or {}
    assert held["password"] == new.secret


@pytest.mark.usefixtures("clean_prefect")
def test_leak_of_the_openai_key_from_the_cli(world: World, kubectl: Any,
                                             tmp_path: Path) -> None:
    forget_leak_responses(world)
    old = currents(world, "openai")
    run = run_leak_cli(world, "openai", old, datetime.now(UTC) - timedelta(hours=1), tmp_path)
    assert run.returncode == 0, run.output
    FIGURES["leak openai --all-envs: time to revoke"] = f"{run.seconds_to_refusal:.2f} s"
    assert_replaced_everywhere(world, kubectl, "openai", old)
    [postmortem] = tmp_path.glob("*.md")
    text = postmortem.read_text()
    # the planted read of production's api-keys, found in the real API server's audit log
    assert "dev-laptop@intelliprompt.dev get intelliprompt/api-keys" in text
    assert "VIOLATION: Group developers via RoleBinding intelliprompt/developers-read" in text
    for value in world.values():
        assert value.reveal() not in text


@pytest.mark.usefixtures("clean_prefect")
def test_an_external_secret_eso_will_not_resync_fails_fast(world: World, kubectl: Any) -> None:
    """``refreshInterval: 0``: the real ESO would ignore the force-sync and the rotation
    would wait out its timeout; it is refused first, saying why, and nothing changes."""
    admin = ("--context", "emergency-admin", "-n", PROD)
    patch = '{"spec":{"refreshInterval":"0"}}'
    kubectl(*admin, "patch", "externalsecret", "intelliprompt-db", "--type=merge", "-p", patch)
    before = world.wiring.stores("db-password", "production")[0].read(Stage.current)
    began = time.monotonic()
    try:
        with pytest.raises(KubeRefused, match="refreshInterval is 0"):
            asyncio.run(rotate_db_password(environment="production", inventory=world.path))
        seconds = time.monotonic() - began
        check = subprocess.run([sys.executable, "-m", "secretops.cli", "inventory", "check",
                                "--cluster", "--inventory", world.path], cwd=ROOT,
                               capture_output=True, text=True, timeout=60)
        assert check.returncode == 1, check.stdout + check.stderr
        assert ("ExternalSecret intelliprompt/intelliprompt-db cannot be force-synced: its "
                "refreshInterval is 0") in check.stdout
        assert "ExternalSecret intelliprompt/intelliprompt-secrets can be force-synced" in \
            check.stdout
    finally:
        kubectl(*admin, "patch", "externalsecret", "intelliprompt-db", "--type=merge", "-p",
                '{"spec":{"refreshInterval":"5m"}}')
    assert seconds < 15
    after = world.wiring.stores("db-password", "production")[0].read(Stage.current)
    assert after is not None and before is not None and after.secret == before.secret


def test_figures(capsys: pytest.CaptureFixture[str]) -> None:
    with capsys.disabled():
        for name, value in FIGURES.items():
            print(f"\n[figure] real control plane: {name}: {value}", flush=True)
