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
from secretops.adapters.kube_api import KubeRefused
from secretops.models import Stage
from tasks.audit import audit_access_logs, check_emergency_access, list_readers
from tests.faults.test_matrix import test_api_server_409_storm
from tests.flows.api_key_world import assert_converged, rotate
from tests.flows.conftest import World, backend_logs
from tests.flows.leak_world import (
    assert_replaced_everywhere,
    current,
    currents,
    forget_leak_responses,
    run_leak_cli,
    works,
)
from tests.flows.test_audit import (
    test_cli_exits_non_zero_on_a_broken_policy,
    test_planted_binding_breaks_the_policy,
)
from tests.flows.test_break_glass import (
    test_break_glass_rotates_what_the_emergency_identity_could_read,
)
from tests.flows.test_rotate_api_key_faults import (
    RevokeWhenPromoted,
    test_refused_key_rolls_back_and_app_stays_healthy,
    test_rotation_succeeds_with_30_percent_errors,
)

# the sandbox world's own tests of these procedures, run here against the real plane too;
# the fault matrix's 409 storm and the 30% error rate (429, 500, 503 from the provider and
# the API server) through the fault proxy in front of the real API server
__all__ = ["test_api_server_409_storm",
           "test_break_glass_rotates_what_the_emergency_identity_could_read",
           "test_cli_exits_non_zero_on_a_broken_policy",
           "test_planted_binding_breaks_the_policy",
           "test_refused_key_rolls_back_and_app_stays_healthy",
           "test_rotation_succeeds_with_30_percent_errors"]
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
        check = subprocess.run([sys.executable, "-m", "cli", "inventory", "check",
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


@pytest.mark.usefixtures("clean_prefect")
def test_a_key_the_pods_refuse_rolls_production_back_through_the_real_eso(
        world: World, kubectl: Any, load: Any) -> None:
    """The new key is revoked as soon as it is stored, so the restarted pods refuse to start
    with it: the rollout never completes, the old key goes back to AWS, the real ESO syncs it
    into api-keys, and the real controllers roll back to pods that work."""
    old = assert_converged(world, "openai", "production")
    world.seen.append(old)
    watcher = RevokeWhenPromoted(world, "openai", "production", old)
    watcher.start()
    began = time.monotonic()
    try:
        with load("production") as traffic, pytest.raises(
                Exception, match="previous key was restored") as failure:
            rotate(world, "openai", "production")
    finally:
        watcher.stop.set()
        watcher.join(10)
    FIGURES["refused key in production: rotation and rollback"] = (
        f"{time.monotonic() - began:.2f} s, {traffic.failed} of {traffic.sent} requests failed")
    assert watcher.revoked is not None, "the store's current key never changed"
    world.seen.append(watcher.revoked)
    assert "application is healthy" in str(failure.value)
    assert traffic.failed == 0, traffic.errors  # the old pods served throughout
    assert assert_converged(world, "openai", "production") == old  # nothing pending is left
    assert not world.wiring.provider("openai").check_key(watcher.revoked)
    synced = json.loads(kubectl("--context", "emergency-admin", "get", "externalsecret",
                                "intelliprompt-secrets", "-n", PROD, "-o", "json").stdout)
    ready = [c for c in synced["status"]["conditions"] if c["type"] == "Ready"]
    assert ready and ready[0]["status"] == "True", synced["status"]
    logs = backend_logs(kubectl, PROD)
    assert "API initialized" in logs and "FATAL" not in logs


def audit_events(world: World, since: datetime) -> list[dict[str, Any]]:
    """The real API server's audit log (``--audit-log-path``), from ``since`` on."""
    log = Path(world.info["dir"]) / "kube-audit.log"
    events = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    return [e for e in events
            if datetime.fromisoformat(e["stageTimestamp"].replace("Z", "+00:00")) >= since]


@pytest.mark.usefixtures("clean_prefect")
def test_the_audit_finds_the_planted_read_and_the_grant_it_went_through(world: World) -> None:
    """Who did read production's api-keys (step 4 of the leak response, from the real audit
    log) and who can (the access audit, from the real RBAC): the developer's read was
    allowed by the very RoleBinding the audit calls a violation."""
    since = datetime.now(UTC) - timedelta(days=1)
    evidence = audit_access_logs("openai", "production", world.path, since).evidence
    planted = [line for line in evidence
               if line.startswith("kubernetes audit: dev-laptop@intelliprompt.dev get "
                                  "intelliprompt/api-keys at ")]
    assert planted and "HTTP 200 groups=developers" in planted[0], evidence
    raw = [e for e in audit_events(world, since)
           if e["user"]["username"] == "dev-laptop@intelliprompt.dev"
           and (e.get("objectRef") or {}).get("name") == "api-keys"]
    assert raw and all("requestObject" not in e and "responseObject" not in e for e in raw)
    reason = raw[0]["annotations"]["authorization.k8s.io/reason"]
    assert 'RoleBinding "developers-read-secrets/intelliprompt"' in reason, reason
    readers = list_readers("openai", "production", world.path).evidence
    breach = "VIOLATION: Group developers via RoleBinding intelliprompt/developers-read-secrets"
    assert any(line.startswith(breach) for line in readers), readers
    assert any(line.startswith("workload: ServiceAccount") for line in readers), readers


@pytest.mark.usefixtures("clean_prefect")
def test_the_emergency_identity_is_recorded_by_the_api_server(world: World,
                                                              kubectl: Any) -> None:
    """Break-glass: ``kubectl --context emergency-admin get secrets`` lists names (never
    data), and the real API server records who did it, when, in which namespaces."""
    since = datetime.now(UTC) - timedelta(seconds=1)
    listed = {env: check_emergency_access(env, world.path).evidence
              for env in ("staging", "production")}
    assert "api-keys" in listed["production"][0] and "db-credentials" in listed["production"][0]
    for value in world.values():
        assert all(value.reveal() not in line for lines in listed.values() for line in lines)
    by_hand = kubectl("--context", "emergency-admin", "get", "secrets", "-n", PROD).stdout
    assert "api-keys" in by_hand
    refused = kubectl("get", "secrets", "-n", PROD, check=False)  # the flows' own context
    assert refused.returncode != 0 and "forbidden" in refused.stderr.lower()
    time.sleep(0.5)
    mine = [e for e in audit_events(world, since)
            if e["user"]["username"] == "emergency-admin" and e["verb"] == "list"
            and (e.get("objectRef") or {}).get("resource") == "secrets"]
    namespaces = {e["objectRef"]["namespace"] for e in mine}
    assert {world.inventory.namespace("staging"), PROD} <= namespaces, namespaces
    assert all("system:masters" in e["user"]["groups"] for e in mine)
    assert all(e["responseStatus"]["code"] == 200 for e in mine)
    assert all("responseObject" not in e for e in mine)  # Metadata level: never a body


def test_figures(capsys: pytest.CaptureFixture[str]) -> None:
    with capsys.disabled():
        for name, value in FIGURES.items():
            print(f"\n[figure] real control plane: {name}: {value}", flush=True)
