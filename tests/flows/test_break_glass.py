"""break-glass against the sandbox: the emergency context lists Secret names (never data),
the run waits in its form until a person confirms access is back, then every secret the
emergency identity could read is rotated and the old credentials are refused."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterName,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import StateType
from prefect.flow_runs import resume_flow_run

from flows.break_glass import break_glass, exposed_secrets
from secretops.staging import stage_key
from tests.flows.conftest import World
from tests.flows.leak_world import current, mint_console_key, works


def answer_form_when_paused(run_name: str, answer: dict[str, Any]) -> threading.Thread:
    """A person, in the UI: waits for the run to pause, then submits the form."""

    def person() -> None:
        deadline = time.monotonic() + 60
        with get_client(sync_client=True) as client:
            while time.monotonic() < deadline:
                runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(
                    name=FlowRunFilterName(any_=[run_name]),
                    state=FlowRunFilterState(type=FlowRunFilterStateType(
                        any_=[StateType.PAUSED]))))
                if runs:
                    resume_flow_run(runs[0].id, run_input=answer)
                    return
                time.sleep(0.2)

    context = contextvars.copy_context()  # the session's Prefect settings live in context
    thread = threading.Thread(target=context.run, args=(person,), daemon=True)
    thread.start()
    return thread


@pytest.mark.usefixtures("clean_prefect", "ci_key_alone")
def test_break_glass_rotates_what_the_emergency_identity_could_read(
        world: World, kubectl: Any) -> None:
    exposed = exposed_secrets(world.path)
    assert {env for _, env in exposed} == {"staging", "production"}
    old = {(secret, env): current(world, secret, env) for secret, env in exposed}
    for secret, env in exposed:
        if secret == "anthropic":
            stage_key(world.wiring.stores(secret, env),
                      mint_console_key(world, f"secretops-intelliprompt-{env}-anthropic"))
    person = answer_form_when_paused("break-glass-alice",
                                     {"restored": True, "note": "SSO is back"})

    report = asyncio.run(break_glass(who="alice", why="SSO outage", inventory=world.path))

    person.join(5)
    assert "emergency identity lists" in report and "api-keys" in report
    assert "access restored: True; note: SSO is back" in report
    for (secret, env), leaked in old.items():
        new = current(world, secret, env)
        assert new.secret != leaked.secret, (secret, env)
        assert works(world, secret, env, new), (secret, env)
        assert not works(world, secret, env, leaked), (secret, env)
    for value in world.values():
        assert value.reveal() not in report
    audit = kubectl("get", "rolebindings", "-n", "intelliprompt").stdout
    assert "developers-read-secrets" in audit
