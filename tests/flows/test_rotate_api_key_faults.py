"""rotate-api-key under trouble, against the sandbox: steady load, SIGKILL at every step
boundary, a flaky provider and API server, a key the provider refuses, a person who answers
(or not) the pause form, dry runs, the CLI and the scan.

Every test ends by checking the world (stores, the provider's keys, the Secret, the pods, the
service) and, through ``clean_prefect``, that no value reached Prefect.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import VariableCreate
from prefect.client.schemas.objects import StateType
from prefect.exceptions import CancelledRun, PrefectHTTPStatusError
from prefect.flow_runs import resume_flow_run
from prefect.input.run_input import keyset_from_base_key

from flows.rotate_api_key import PAUSE_KEY, rotate_api_key
from secretops.models import Credential, SecretValue, Stage
from secretops.wiring import Wiring
from tests.flows.api_key_world import (
    assert_converged,
    faults,
    flow_runs_named,
    lock_slots,
    mint_console_key,
    remember_all,
    rotate,
    secretops_cli,
    start_in_thread,
    wait_for_state,
)
from tests.flows.conftest import World, backend_logs
from tests.flows.kills import mark_crashed_and_unlock, run_until_killed

TASK_BOUNDARIES = ["generate_new_key", "check_new_key", "update_secret", "sync_external_secret",
                   "restart_pods", "verify_logs", "verify_new_key", "revoke_old_key"]
IN_STEP_BOUNDARIES = ["key-created", "pending-stored"]
# the world a kill leaves behind: (a pending version is stored, the stores' current key changed)
AT_KILL = {"key-created": (False, False), "pending-stored": (True, False),
           "generate_new_key": (True, False), "check_new_key": (True, False),
           "revoke_old_key": (False, True)}
FIGURES: dict[str, Any] = {}


# -- zero failed requests under load ------------------------------------------------------------


@pytest.mark.usefixtures("clean_prefect")
@pytest.mark.parametrize("environment", ["staging", "production"])
@pytest.mark.parametrize("secret", ["openai", "anthropic"])
def test_no_failed_request_under_load(world: World, load: Any, secret: str,
                                      environment: str) -> None:
    old = assert_converged(world, secret, environment)
    world.seen.append(old)
    began = time.monotonic()
    with load(environment) as result:
        time.sleep(0.3)
        rotate(world, secret, environment)
        time.sleep(0.3)
    FIGURES[f"load {secret} {environment}"] = {
        "rotation_s": round(time.monotonic() - began - 0.6, 2), "sent": result.sent,
        "failed": result.failed}
    remember_all(world, secret, environment)
    assert result.sent > 50
    assert result.failed == 0, result.errors
    assert assert_converged(world, secret, environment) != old
    assert not world.wiring.provider(secret).check_key(old)


# -- SIGKILL at every step boundary --------------------------------------------------------------


def run_and_kill(world: World, secret: str, environment: str, after: str) -> str:
    """Run the flow in a subprocess that SIGKILLs itself at ``after``; returns the run id."""
    params = {"secret": secret, "environment": environment, "inventory": world.path}
    return run_until_killed("flows.rotate_api_key:rotate_api_key", after, params, timeout=120)


@pytest.mark.usefixtures("clean_prefect")
@pytest.mark.parametrize("after", IN_STEP_BOUNDARIES + TASK_BOUNDARIES)
def test_killed_at_each_step_then_rerun_converges(world: World, after: str) -> None:
    secret, environment = "openai", "production"
    old = assert_converged(world, secret, environment)
    world.seen.append(old)
    began = time.monotonic()
    flow_run_id = run_and_kill(world, secret, environment, after)
    killed_at = time.monotonic()
    remember_all(world, secret, environment)
    store = world.wiring.stores(secret, environment)[0]
    promoted = store.read(Stage.current) != Credential(old)
    assert (store.read(Stage.pending) is not None, promoted) == AT_KILL.get(after, (True, True))
    mark_crashed_and_unlock(flow_run_id, secret)

    rotate(world, secret, environment)

    FIGURES[f"kill after {after}"] = {"killed_run_s": round(killed_at - began, 2),
                                      "rerun_s": round(time.monotonic() - killed_at, 2)}
    remember_all(world, secret, environment)
    new = assert_converged(world, secret, environment)
    assert new != old and not world.wiring.provider(secret).check_key(old)
    with get_client(sync_client=True) as client:
        killed = client.read_flow_run(uuid.UUID(flow_run_id))
    assert killed.state_type == StateType.CRASHED
    assert lock_slots(secret) == 0


# -- a flaky provider and API server ----------------------------------------------------------


@pytest.mark.usefixtures("clean_prefect")
@pytest.mark.parametrize("environment", ["staging", "production"])
def test_rotation_succeeds_with_30_percent_errors(world: World, environment: str) -> None:
    secret = "openai"
    old = assert_converged(world, secret, environment)
    world.seen.append(old)
    knobs = {"error_rate": 0.3, "codes": [429, 500, 503], "retry_after_ms": 50}
    began = time.monotonic()
    with faults(world, openai=knobs, kubernetes=knobs):
        rotate(world, secret, environment)
    FIGURES[f"30% errors {environment}"] = {"rotation_s": round(time.monotonic() - began, 2)}
    remember_all(world, secret, environment)
    assert assert_converged(world, secret, environment) != old
    assert not world.wiring.provider(secret).check_key(old)


# -- a key the provider refuses: rollback -----------------------------------------------------


class RevokeWhenPromoted(threading.Thread):
    """Watches the store; as soon as its current key changes, revokes the new key through the
    admin API, before the restarted pods check it (about 0.3 s after they are created)."""

    def __init__(self, world: World, secret: str, environment: str, old: SecretValue) -> None:
        super().__init__(daemon=True)
        self.wiring = Wiring(world.inventory)
        self.secret, self.environment, self.old = secret, environment, old
        self.revoked: SecretValue | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        store = self.wiring.stores(self.secret, self.environment)[0]
        provider = self.wiring.provider(self.secret)
        while not self.stop.is_set():
            credential = store.read(Stage.current)
            if credential is not None and credential.secret != self.old:
                key = provider.find_key(credential.secret)
                assert key is not None
                provider.revoke_key(key.id)
                self.revoked = credential.secret
                return
            time.sleep(0.01)


@pytest.mark.usefixtures("clean_prefect")
def test_refused_key_rolls_back_and_app_stays_healthy(world: World, kubectl: Any) -> None:
    secret, environment = "openai", "staging"
    old = assert_converged(world, secret, environment)
    world.seen.append(old)
    watcher = RevokeWhenPromoted(world, secret, environment, old)
    watcher.start()
    began = time.monotonic()
    try:
        with pytest.raises(Exception, match="previous key was restored") as failure:
            rotate(world, secret, environment)
    finally:
        watcher.stop.set()
        watcher.join(10)
    FIGURES["refused key: rotation and rollback"] = {"s": round(time.monotonic() - began, 2)}
    assert watcher.revoked is not None, "the store's current key never changed"
    world.seen.append(watcher.revoked)
    message = str(failure.value)
    assert "rerun" in message and "application is healthy" in message
    assert assert_converged(world, secret, environment) == old
    provider = world.wiring.provider(secret)
    assert not provider.check_key(watcher.revoked)
    namespace = world.inventory.namespace(environment)
    logs = backend_logs(kubectl, namespace)
    assert "API initialized" in logs and "FATAL" not in logs
    runs = sorted(flow_runs_named(f"rotate-{secret}-{environment}"), key=lambda r: r.created)
    run = runs[-1]
    assert run.state_type == StateType.FAILED and run.state is not None
    assert "previous key was restored" in (run.state.message or "")


# -- Anthropic through the pause form ---------------------------------------------------------


@pytest.mark.usefixtures("clean_prefect")
def test_anthropic_key_through_the_pause_form(world: World) -> None:
    secret, environment = "anthropic", "staging"
    old = assert_converged(world, secret, environment)
    world.seen.append(old)
    name = f"rotate-{secret}-{environment}"
    before = {r.id for r in flow_runs_named(name)}
    thread, outcome = start_in_thread(secret=secret, environment=environment,
                                      inventory=world.path)
    paused = wait_for_state(name, StateType.PAUSED)
    assert paused.id not in before
    key = mint_console_key(world, environment)
    resume_flow_run(paused.id, run_input={"key": key.reveal()})
    thread.join(60)
    assert not thread.is_alive() and not isinstance(outcome[0], BaseException), outcome
    response_key = keyset_from_base_key(f"paused-{PAUSE_KEY}")["response"]
    with get_client(sync_client=True) as client, pytest.raises(PrefectHTTPStatusError,
                                                               match="404 Not Found"):
        client.read_flow_run_input(paused.id, response_key)
    remember_all(world, secret, environment)
    assert assert_converged(world, secret, environment) == key
    assert not world.wiring.provider(secret).check_key(old)


@pytest.mark.usefixtures("clean_prefect")
def test_nobody_answers_the_pause_form(world: World) -> None:
    secret, environment = "anthropic", "staging"
    old = assert_converged(world, secret, environment)
    world.seen.append(old)
    keys_before = [(k.id, k.status) for k in world.wiring.provider(secret).list_keys()]
    thread, outcome = start_in_thread(secret=secret, environment=environment,
                                      inventory=world.path, person_timeout_seconds=2)
    thread.join(60)
    assert not thread.is_alive()
    assert isinstance(outcome[0], CancelledRun), outcome
    name = f"rotate-{secret}-{environment}"
    runs = sorted(flow_runs_named(name), key=lambda r: r.created)
    assert runs[-1].state_type == StateType.CANCELLED, runs[-1].state
    assert "no key was provided in time" in (runs[-1].state.message or "")  # type: ignore[union-attr]
    assert assert_converged(world, secret, environment) == old
    assert [(k.id, k.status) for k in world.wiring.provider(secret).list_keys()] == keys_before
    assert lock_slots(secret) == 0


# -- dry run -----------------------------------------------------------------------------------


def snapshot(world: World, kubectl: Any, secret: str, environment: str) -> dict[str, Any]:
    """What a dry run must not change: every store's versions, the provider's keys, and the
    cluster's Deployment (generation, restartedAt) and Secret (resourceVersion)."""
    stores = {store.name: [store.version(stage) for stage in Stage]
              for store in world.wiring.stores(secret, environment)}
    keys = sorted((k.id, k.status) for k in world.wiring.provider(secret).list_keys())
    cluster: dict[str, Any] = {}
    namespace = world.inventory.namespace(environment)
    if namespace:
        deployment = json.loads(kubectl("get", "deployment", "backend", "-n", namespace,
                                        "-o", "json").stdout)
        secret_obj = json.loads(kubectl("get", "secret", "api-keys", "-n", namespace,
                                        "-o", "json").stdout)
        template = deployment["spec"]["template"]["metadata"].get("annotations") or {}
        cluster = {"generation": deployment["metadata"]["generation"],
                   "restartedAt": template.get("kubectl.kubernetes.io/restartedAt"),
                   "secret": secret_obj["metadata"]["resourceVersion"],
                   "secrets": sorted(
                       s["metadata"]["name"] for s in json.loads(kubectl(
                           "get", "secrets", "-n", namespace, "-o", "json").stdout)["items"])}
    return {"stores": stores, "keys": keys, "cluster": cluster}


@pytest.mark.usefixtures("clean_prefect")
@pytest.mark.parametrize("environment", ["staging", "production"])
def test_dry_run_changes_nothing(world: World, kubectl: Any, environment: str) -> None:
    secret = "openai"
    assert_converged(world, secret, environment)
    before = snapshot(world, kubectl, secret, environment)
    plan = asyncio.run(rotate_api_key(secret=secret, environment=environment, inventory=world.path,
                                      dry_run=True))
    assert "would run: 5. Revoke old key at provider" in plan
    done = secretops_cli("rotate", "api-key", secret, "--env", environment, "--dry-run",
                         "--inventory", world.path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "would run: 1. Generate new key at provider" in done.stdout
    assert "dry run: nothing changed" in done.stdout
    assert snapshot(world, kubectl, secret, environment) == before


# -- the command line ---------------------------------------------------------------------------


@pytest.mark.usefixtures("clean_prefect")
def test_cli_rotates_and_prints_the_report(world: World) -> None:
    secret, environment = "openai", "staging"
    old = assert_converged(world, secret, environment)
    world.seen.append(old)
    began = time.monotonic()
    done = secretops_cli("rotate", "api-key", secret, "--env", environment,
                         "--inventory", world.path)
    FIGURES["cli rotate openai staging"] = {"s": round(time.monotonic() - began, 2)}
    remember_all(world, secret, environment)
    assert done.returncode == 0, done.stderr[-3000:]
    output = done.stdout + done.stderr
    for step in ("Generate new key at provider", "Update secret", "Restart pods", "Verify",
                 "Revoke old key at provider"):
        assert step in output, step
    assert "rotated: the new key is current and verified" in done.stdout
    assert assert_converged(world, secret, environment) != old


def test_scan_cli_is_clean_and_names_a_planted_value(world: World, prefect_server: Any) -> None:
    scan = ("scan", "--inventory", world.path, "--api-url", prefect_server.api_url,
            "--database", str(prefect_server.database_path))
    clean = secretops_cli(*scan)
    assert clean.returncode == 0, clean.stdout + clean.stderr[-3000:]
    assert "clean" in clean.stdout
    planted = SecretValue("sk-svcacct-planted-" + uuid.uuid4().hex)
    store = world.wiring.stores("openai", "staging")[0]
    store.stage_pending(Credential(planted))
    name = "planted-" + uuid.uuid4().hex[:8]
    try:
        with get_client(sync_client=True) as client:
            client.create_variable(VariableCreate(name=name, value=planted.reveal()))
        found = secretops_cli(*scan)
        assert found.returncode == 1, found.stdout
        assert planted.fingerprint() in found.stdout and "variable" in found.stdout
        assert planted.reveal() not in found.stdout + found.stderr
    finally:
        with get_client(sync_client=True) as client:
            client.delete_variable_by_name(name)
        store.clear_pending()


def test_figures(capsys: pytest.CaptureFixture[str]) -> None:
    """Print the figures measured above (run with -s to see them)."""
    with capsys.disabled():
        for what, figures in FIGURES.items():
            print(f"\n{what}: {figures}", end="")
        print()
