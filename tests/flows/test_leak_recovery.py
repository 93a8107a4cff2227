"""respond-to-leak when things go wrong or start elsewhere: a run SIGKILLed at a step boundary
and rerun finishes the job and never undoes the revocation; the event
``secretops.leak.reported`` starts the deployed flow through the automation."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterDeploymentId
from prefect.client.schemas.objects import StateType
from prefect.events import emit_event

from flows.respond_to_leak import respond_to_leak
from secretops import automations
from secretops.prefect_setup import lock_name
from tasks.api_keys import key_name_prefix
from tests.deploy.stack import Stack
from tests.flows.conftest import World
from tests.flows.kills import mark_crashed_and_unlock, run_until_killed
from tests.flows.leak_world import (
    ENVIRONMENTS,
    assert_replaced_everywhere,
    current,
    currents,
    works,
)

# (secret, where the process dies): after the revocation; inside the first rotation step
# (a key only the provider knows; a pending version stored); after the new credential became
# current, or was set at the target; after the consumers restarted; after the audit; after
# the post-mortem was written and recorded.
KILL_POINTS = [
    ("openai", "revoke_leaked"),
    ("openai", "key-created"),
    ("openai", "pending-stored"),
    ("openai", "tasks.rotation:update_secret"),
    ("openai", "tasks.rotation:restart_pods"),
    ("openai", "list_readers"),
    ("openai", "record_postmortem"),
    ("db-password", "tasks.rotation:update_in_database"),
]
FIGURES: dict[str, str] = {}


def run_and_kill(params: dict[str, Any], after: str) -> str:
    """The leak flow in a subprocess that SIGKILLs itself at ``after``; returns the run id."""
    return run_until_killed("flows.respond_to_leak:respond_to_leak", after, params, timeout=240)


@pytest.mark.usefixtures("clean_prefect")
@pytest.mark.parametrize(("secret", "after"), KILL_POINTS)
def test_killed_then_rerun_finishes_the_job(world: World, kubectl: Any, tmp_path: Path,
                                            secret: str, after: str) -> None:
    old = currents(world, secret)
    params = {"secret": secret, "exposed_since": datetime.now(UTC).isoformat(),
              "reason": f"kill test after {after}", "drill": True, "inventory": world.path,
              "postmortem_dir": str(tmp_path)}
    began = time.monotonic()
    flow_run_id = run_and_kill(params, after)
    killed_at = time.monotonic()

    refused = [env for env, credential in old.items()
               if not works(world, secret, env, credential)]
    assert refused == list(old) or (after == "revoke_leaked" and refused), refused
    mark_crashed_and_unlock(flow_run_id, secret)
    written = asyncio.run(respond_to_leak(**params))  # the rerun, with the same report

    FIGURES[f"kill after {after} ({secret})"] = (
        f"killed run {killed_at - began:.1f} s, rerun {time.monotonic() - killed_at:.1f} s")
    assert_replaced_everywhere(world, kubectl, secret, old)
    if secret == "openai":
        assert active_keys(world) == {env: {world.wiring.provider(secret).find_key(
            current(world, secret, env).secret).id} for env in old}  # no orphan left
    postmortems = list(tmp_path.glob("*.md"))
    assert postmortems and "## Timeline" in postmortems[0].read_text()
    if after == "record_postmortem":
        assert written.startswith("nothing left to do") and str(postmortems[0]) in written
    else:
        assert Path(written) in postmortems
    with get_client(sync_client=True) as client:
        assert client.read_flow_run(uuid.UUID(flow_run_id)).state_type == StateType.CRASHED
        assert client.read_global_concurrency_limit_by_name(
            lock_name(secret)).active_slots == 0


def active_keys(world: World) -> dict[str, set[str]]:
    """The ids of the active OpenAI keys secretops created, by environment."""
    keys = world.wiring.provider("openai").list_keys()
    return {env: {key.id for key in keys if key.status == "active" and key.name.startswith(
        key_name_prefix(world.inventory.application, env, "openai"))} for env in ENVIRONMENTS}


@pytest.mark.usefixtures("clean_prefect")
def test_reported_event_runs_the_deployed_flow(world: World, kubectl: Any,
                                               deployed: Stack) -> None:
    """emit_event(leak_event(...)) -> the automation ``secretops setup`` made -> a run of the
    respond-to-leak deployment on the process worker, with the payload as parameters."""
    from flows.respond_to_leak import leak_event

    with get_client(sync_client=True) as client:
        [automation] = client.read_automations_by_name(automations.LEAK)
    assert automation.actions[0].parameters["environments"]["__prefect_kind"] == "json"
    old = {"staging": currents(world, "openai")["staging"]}
    since = datetime.now(UTC)

    emit_event(**leak_event("openai", ["staging"], since, "event test", drill=True))

    run = wait_for_leak_run(since, timeout=240)
    FIGURES["event to finished leak run (staging)"] = (
        f"{(run.end_time - since).total_seconds():.1f} s")
    assert run.state_type == StateType.COMPLETED, run.state
    assert run.parameters["environments"] == ["staging"]
    assert run.parameters["drill"] is True and run.parameters["reason"] == "event test"
    assert_replaced_everywhere(world, kubectl, "openai", old)


def wait_for_leak_run(since: datetime, timeout: float) -> Any:
    """The first run of the respond-to-leak deployment created after ``since``, once final."""
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name(f"{automations.LEAK_FLOW}/intelliprompt")
        while time.monotonic() < deadline:
            runs = [r for r in client.read_flow_runs(flow_run_filter=FlowRunFilter(
                deployment_id=FlowRunFilterDeploymentId(any_=[deployment.id])))
                    if r.created and r.created >= since]
            if runs and runs[0].state and runs[0].state.is_final():
                return runs[0]
            time.sleep(1)
    raise AssertionError(f"no finished {automations.LEAK_FLOW} run within {timeout} s")


def test_figures() -> None:
    """Print what the tests above measured (pytest -s shows it)."""
    for name, figure in FIGURES.items():
        print(f"{name}: {figure}")
