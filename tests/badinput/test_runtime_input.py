"""Input that arrives from outside while a flow runs: the key a person gives in the pause form,
parameters of a flow run created by hand through the Prefect API, and values read back from
stores someone edited by hand. Each is refused with one line that names what is wrong (never
the value), and the world is as it was (``snapshot`` of the corpus: every store's versions,
every provider key, the backend pods).

A key refused in the form is asked for again, as a password prompt does: the next pause's
form says why the last key was refused, nothing is stored meanwhile, and after
``PERSON_ATTEMPTS`` refusals the run fails with one line."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import boto3
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.exceptions import PrefectHTTPStatusError
from prefect.flow_engine import run_flow_async
from prefect.flow_runs import resume_flow_run

from flows.rotate_api_key import PAUSE_KEY, PERSON_ATTEMPTS, rotate_api_key
from flows.rotate_db_password import rotate_db_password
from secretops.models import SecretValue, Stage
from tests.badinput.test_corpus import snapshot
from tests.flows.api_key_world import (
    assert_converged,
    flow_runs_named,
    mint_console_key,
    remember_all,
    start_in_thread,
)
from tests.flows.conftest import World

pytestmark = pytest.mark.usefixtures("clean_prefect")


# -- the pause form --------------------------------------------------------------------------


def _wait_for_pause(run_id: UUID, pause_key: str, timeout: float = 30) -> FlowRun:
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            run = client.read_flow_run(run_id)
            if (run.state_type == StateType.PAUSED and run.state is not None
                    and run.state.state_details.pause_key == pause_key):
                return run
            time.sleep(0.1)
    raise AssertionError(f"run {run_id} did not pause for {pause_key} within {timeout} s")


def _first_paused_run(name: str, before: set[UUID], timeout: float = 30) -> UUID:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = [r for r in flow_runs_named(name)
                if r.id not in before and r.state_type == StateType.PAUSED]
        if runs:
            return runs[0].id
        time.sleep(0.1)
    raise AssertionError(f"no new run {name} paused within {timeout} s")


def _logs(run_id: UUID) -> list[str]:
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    with get_client(sync_client=True) as client:
        logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))
    return [log.message for log in logs]


def _revoked_console_key(world: World, environment: str) -> SecretValue:
    """An Anthropic key made in the console, then deactivated."""
    value = mint_console_key(world, environment)
    provider = world.wiring.provider("anthropic")
    found = provider.find_key(value)
    assert found is not None
    provider.revoke_key(found.id)
    return value


def _answer_form(world: World, answers: list[str]) -> tuple[UUID, list[Any]]:
    """Start rotate-anthropic-staging, give ``answers`` one pause after the other, checking
    before each further answer that nothing was stored; the run's id and its outcome."""
    name = "rotate-anthropic-staging"
    before = {r.id for r in flow_runs_named(name)}
    thread, outcome = start_in_thread(secret="anthropic", environment="staging",
                                      inventory=world.path, person_timeout_seconds=60)
    run_id = _first_paused_run(name, before)
    stores = world.wiring.stores("anthropic", "staging")
    for attempt, answer in enumerate(answers, start=1):
        key = PAUSE_KEY if attempt == 1 else f"{PAUSE_KEY}-{attempt}"
        _wait_for_pause(run_id, key)
        assert [s.name for s in stores if s.read(Stage.pending)] == [], "a refused key was stored"
        resume_flow_run(run_id, run_input={"key": answer})
    thread.join(60)
    assert not thread.is_alive()
    return run_id, outcome


def test_keys_refused_in_the_form_are_asked_again_then_the_run_fails(world: World) -> None:
    old = assert_converged(world, "anthropic", "staging")
    world.seen.append(old)
    before = snapshot(world)
    started = time.monotonic()
    run_id, outcome = _answer_form(world, ["", " \t ", "xk-ant-api03-" + "0" * 40])
    assert time.monotonic() - started < 30
    said = f"{type(outcome[0]).__name__}: {outcome[0]}"
    assert type(outcome[0]).__name__ == "KeyRefused", said
    assert f"refused {PERSON_ATTEMPTS} times" in said and "'sk-ant-api03-'" in said, said
    assert len(said.splitlines()) == 1 and "xk-ant" not in said
    logs = _logs(run_id)
    assert any("no key was given" in m for m in logs), logs
    assert any("contains white space" in m or "no key was given" in m for m in logs[1:]), logs
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(run_id)
    assert run.state_type == StateType.FAILED
    assert "nothing was changed" in (run.state.message or "")  # type: ignore[union-attr]
    assert snapshot(world) == before
    assert assert_converged(world, "anthropic", "staging") == old


def test_other_provider_and_revoked_keys_are_refused_and_a_good_one_then_taken(
        world: World) -> None:
    old = assert_converged(world, "anthropic", "staging")
    world.seen.append(old)
    openai_key = assert_converged(world, "openai", "staging")  # a real key, of the other provider
    world.seen.append(openai_key)
    revoked = _revoked_console_key(world, "staging")
    openai_keys = snapshot(world)["keys"]["openai"]
    good = mint_console_key(world, "staging")
    run_id, outcome = _answer_form(world, [openai_key.reveal(), revoked.reveal(), good.reveal()])
    assert not isinstance(outcome[0], BaseException), outcome
    logs = _logs(run_id)
    assert any("it looks like an OpenAI key" in m for m in logs), logs
    assert any("the provider refuses that key" in m for m in logs), logs
    for value in (openai_key, revoked, good):
        assert not any(value.reveal() in m for m in logs)
    remember_all(world, "anthropic", "staging")
    assert assert_converged(world, "anthropic", "staging") == good
    provider = world.wiring.provider("anthropic")
    assert not provider.check_key(old) and not provider.check_key(revoked)
    assert snapshot(world)["keys"]["openai"] == openai_keys


# -- parameters of a flow run created by hand ------------------------------------------------


@pytest.fixture(scope="module")
def by_hand_deployment(world: World) -> Iterator[tuple[UUID, UUID]]:
    """rotate-api-key deployed twice: as prefect.yaml deploys it (the server checks a run's
    parameters against the flow's schema) and with that check off (the run itself must
    refuse them)."""
    ids = []
    for enforce in (True, False):
        checked = "enforced" if enforce else "unchecked"
        deployment = rotate_api_key.to_deployment(
            name=f"badinput-by-hand-{checked}-{uuid.uuid4().hex[:6]}",
            enforce_parameter_schema=enforce)
        ids.append(deployment.apply())
    yield ids[0], ids[1]
    with get_client(sync_client=True) as client:
        for deployment_id in ids:
            client.delete_deployment(deployment_id)


BY_HAND = [
    pytest.param({"secret": "openai", "environment": "moon"}, "environment", id="unknown-env"),
    pytest.param({"secret": "Git Hub!", "environment": "staging"}, "secret", id="not-a-secret-id"),
    pytest.param({"secret": "anthropic", "environment": "staging",
                  "person_timeout_seconds": -5}, "person_timeout_seconds",
                 id="negative-timeout"),
    pytest.param({"secret": "openai", "environment": "staging", "dry_run": "perhaps"},
                 "dry_run", id="dry-run-not-bool"),
]


@pytest.mark.parametrize(("parameters", "named"), BY_HAND)
def test_parameters_set_by_hand_fail_fast_naming_the_parameter(
        world: World, by_hand_deployment: tuple[UUID, UUID], parameters: dict[str, Any],
        named: str) -> None:
    before = snapshot(world)
    enforced, unchecked = by_hand_deployment
    parameters = {**parameters, "inventory": world.path}
    with get_client(sync_client=True) as client:
        # as prefect.yaml deploys: the server refuses to create the run, saying which field
        with pytest.raises(PrefectHTTPStatusError) as refused:
            client.create_flow_run_from_deployment(enforced, parameters=parameters)
        assert named in str(refused.value), refused.value
        # with the server's check off the run is created; run as a worker runs it, it fails
        run = client.create_flow_run_from_deployment(unchecked, parameters=parameters)
    started = time.monotonic()
    with pytest.raises(Exception) as failure:
        asyncio.run(run_flow_async(rotate_api_key, flow_run=run, parameters=run.parameters))
    assert time.monotonic() - started < 5
    said = f"{type(failure.value).__name__}: {failure.value}"
    assert type(failure.value).__name__ == "ParameterTypeError" and named in said, said
    with get_client(sync_client=True) as client:
        failed = client.read_flow_run(run.id)
    assert failed.state_type == StateType.FAILED
    assert named in (failed.state.message or "")  # type: ignore[union-attr]
    assert snapshot(world) == before


# -- stores edited by hand -------------------------------------------------------------------


def _edit_secret(kubectl: Any, namespace: str, patch: list[dict[str, Any]]) -> None:
    kubectl("patch", "secret", "api-keys", "-n", namespace, "--type", "json",
            "-p", json.dumps(patch))


def _put_back(kubectl: Any, namespace: str, entry: str) -> None:
    _edit_secret(kubectl, namespace, [{"op": "add", "path": "/data/openai", "value": entry}])


@pytest.fixture()
def staging_secret(world: World, kubectl: Any) -> Iterator[tuple[str, str]]:
    """The staging api-keys Secret's namespace and its openai entry; put back afterwards."""
    namespace = world.inventory.namespace("staging")
    assert namespace is not None
    data = json.loads(kubectl("get", "secret", "api-keys", "-n", namespace, "-o",
                              "json").stdout)["data"]
    yield namespace, data["openai"]
    _put_back(kubectl, namespace, data["openai"])


def _refused(world: World, flow: Any, **params: Any) -> str:
    with pytest.raises(Exception) as failure:
        asyncio.run(flow(inventory=world.path, **params))
    said = f"{type(failure.value).__name__}: {failure.value}"
    assert len(said.splitlines()) == 1 and "Traceback" not in said, said
    return said


@pytest.mark.parametrize("edit", ["missing-key", "not-utf-8"])
def test_a_secret_edited_by_hand_stops_the_rotation(world: World, kubectl: Any,
                                                    staging_secret: tuple[str, str],
                                                    edit: str) -> None:
    namespace, entry = staging_secret
    before = snapshot(world)
    if edit == "missing-key":
        _edit_secret(kubectl, namespace, [{"op": "remove", "path": "/data/openai"}])
    else:
        raw = base64.b64encode(b"\xff\xfe\x80 not text").decode()
        _edit_secret(kubectl, namespace, [{"op": "replace", "path": "/data/openai",
                                           "value": raw}])
    said = _refused(world, rotate_api_key, secret="openai", environment="staging")
    assert "api-keys" in said and "openai" in said, said
    assert ("not base64 of UTF-8" if edit == "not-utf-8" else "holds no current value") in said
    assert "\\xff" not in said and "not text" not in said
    _put_back(kubectl, namespace, entry)  # nothing else changed: no key, no store, no pod
    assert snapshot(world) == before


def test_an_aws_secret_that_is_not_json_stops_the_db_rotation(world: World) -> None:
    store = next(s for s in world.wiring.stores("db-password", "production")
                 if s.name.startswith("aws"))
    secret_id = store._secret_id  # type: ignore[attr-defined]
    aws = boto3.client("secretsmanager", endpoint_url=world.info["aws"]["endpoint_url"],
                       region_name=world.info["aws"]["region"], aws_access_key_id="testing",
                       aws_secret_access_key="testing")
    stages = {v["VersionId"]: v.get("VersionStages", []) for v in
              aws.list_secret_version_ids(SecretId=secret_id)["Versions"]}
    current = next(v for v, s in stages.items() if "AWSCURRENT" in s)
    previous = next((v for v, s in stages.items() if "AWSPREVIOUS" in s), None)
    before = snapshot(world)
    edited = aws.put_secret_value(SecretId=secret_id, SecretString="password=hunter2-by-hand")
    try:
        said = _refused(world, rotate_db_password, environment="production")
        assert store.name in said and "not a JSON document" in said, said
        assert "hunter2" not in said
    finally:
        aws.update_secret_version_stage(SecretId=secret_id, VersionStage="AWSCURRENT",
                                        MoveToVersionId=current,
                                        RemoveFromVersionId=edited["VersionId"])
        # moving AWSCURRENT back gave the edited version AWSPREVIOUS: hand it back too
        aws.update_secret_version_stage(SecretId=secret_id, VersionStage="AWSPREVIOUS",
                                        RemoveFromVersionId=edited["VersionId"],
                                        **({"MoveToVersionId": previous} if previous else {}))
    assert snapshot(world) == before


def test_a_dotenv_without_the_key_stops_the_rotation(world: World) -> None:
    store = next(s for s in world.wiring.stores("openai", "development")
                 if s.name.startswith("dotenv"))
    path: Path = store.path  # type: ignore[attr-defined]
    text = path.read_text()
    before = snapshot(world)
    path.write_text("".join(line for line in text.splitlines(keepends=True)
                            if not line.startswith("OPENAI_API_KEY=")))
    try:
        said = _refused(world, rotate_api_key, secret="openai", environment="development")
        assert "OPENAI_API_KEY" in said and str(path) in said, said
    finally:
        path.write_text(text)
    assert snapshot(world) == before
