"""secretops setup + prefect deploy --all + a process worker, on the session's Prefect server:
scheduled-style runs of every rotation deployment complete against the sandbox, a failed run
notifies the webhook, setup is idempotent, and no value reached a deployment, a job variable,
a block document field that is not secret, or anything else Prefect keeps."""

from __future__ import annotations

import time
from typing import Any

import pytest
import yaml

from deployments.catalogue import catalogue
from secretops import automations
from secretops.credentials import resolve_credential
from secretops.inventory import load_inventory
from secretops.models import SecretValue, Stage
from secretops.setup import KUBERNETES_POOL, PROCESS_POOL
from secretops.wiring import Wiring
from tests.deploy.stack import ROOT, Stack

RUN_TIMEOUT = 180


def deployments_by_flow() -> dict[str, Any]:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        found = client.read_deployments()
        flows = {flow.id: flow.name for flow in client.read_flows()}
    return {flows[d.flow_id]: d for d in found}


def current(wiring: Wiring, secret: str, environment: str) -> list[SecretValue]:
    values = []
    for store in wiring.stores(secret, environment):
        credential = store.read(Stage.current)
        assert credential is not None, store.name
        values.append(credential.secret)
    return values


def test_setup_creates_pools_blocks_limits_and_automations(deployed: Stack) -> None:
    first = deployed.outputs["setup"]
    for line in (f"created work pool {PROCESS_POOL} (process)",
                 f"created work pool {KUBERNETES_POOL} (kubernetes)",
                 "created Secret block openai-admin-key from OPENAI_ADMIN_KEY",
                 "created notification block secretops-notify",
                 f"created automation {automations.ZOMBIE!r}"):
        assert line in first, first
    assert f"created automation {automations.LEAK!r}" in deployed.outputs["setup-again"]
    for value in deployed.credentials_env.values():
        assert value not in first + deployed.outputs["setup-again"]

    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        pool = client.read_work_pool(KUBERNETES_POOL)
        defaults = {k: v.get("default") for k, v in
                    pool.base_job_template["variables"]["properties"].items()}
        assert defaults["service_account_name"] == "secretops"
        assert defaults["image"].startswith("ghcr.io/")
        assert set(defaults["env"]) == {"SECRETOPS_INVENTORY", "PREFECT_FLOWS_HEARTBEAT_FREQUENCY"}
        zombie = client.read_automations_by_name(automations.ZOMBIE)[0]
        assert {"prefect.flow-run.Paused", "prefect.flow-run.Suspended"} <= zombie.trigger.expect
        assert str(zombie.actions[0].state.value) == "CRASHED"


def test_setup_again_changes_nothing(deployed: Stack) -> None:
    output = deployed.secretops("setup", "--project-dir", str(ROOT)).stdout
    assert "created" not in output and "updated" not in output, output
    assert output.count("up to date") >= 6, output


def test_deployments_are_what_prefect_yaml_and_the_catalogue_say(deployed: Stack) -> None:
    found = deployments_by_flow()
    declared = yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]
    assert len(found) == len(declared)
    runs = catalogue(load_inventory(ROOT / "inventory.yaml"))
    for flow, deployment in found.items():
        assert deployment.name == "intelliprompt"
        limit = deployment.global_concurrency_limit
        assert limit is not None and limit.limit == 1
        assert deployment.work_pool_name == PROCESS_POOL
        assert deployment.job_variables == {}
        want = {run.slug: run for run in runs if run.flow == flow}
        have = {s.slug: s for s in deployment.schedules}
        assert set(have) == set(want), flow
        for slug, schedule in have.items():
            assert schedule.schedule.cron == want[slug].cron
            assert str(schedule.schedule.timezone) == want[slug].timezone
            assert schedule.parameters == want[slug].parameters
    properties = found["rotate-api-key"].parameter_openapi_schema["properties"]
    definitions = found["rotate-api-key"].parameter_openapi_schema["definitions"]
    # the secret is any id of the inventory (the run checks it there); no list of today's
    assert properties["secret"]["type"] == "string" and "pattern" in properties["secret"]
    assert definitions["Environment"]["enum"] == ["development", "staging", "production"]
    assert "$ref" in str(properties["environment"])


@pytest.mark.parametrize(("flow", "slug"), [
    ("rotate-api-key", "openai-production"),
    ("rotate-db-password", "db-password-staging"),
])
def test_scheduled_run_of_each_rotation_completes(
    deployed: Stack, assert_prefect_clean: Any, flow: str, slug: str
) -> None:
    from prefect.deployments import run_deployment

    inventory = load_inventory(deployed.inventory)
    wiring = Wiring(inventory)
    deployment = deployments_by_flow()[flow]
    schedule = next(s for s in deployment.schedules if s.slug == slug)
    secret, environment = schedule.parameters["secret"], schedule.parameters["environment"]
    old = current(wiring, secret, environment)

    started = time.monotonic()
    run = run_deployment(f"{flow}/intelliprompt", parameters=schedule.parameters,
                         timeout=RUN_TIMEOUT)
    elapsed = time.monotonic() - started
    assert run.state is not None and run.state.is_completed(), (run.state, deployed.worker_log)
    print(f"{flow} {slug}: run_deployment -> Completed in {elapsed:.1f} s")

    new = current(wiring, secret, environment)
    assert new[0] != old[0] and all(value == new[0] for value in new)
    if flow == "rotate-api-key":
        provider = wiring.provider(secret)
        assert provider.check_key(new[0]) and not provider.check_key(old[0])
    admin = [resolve_credential(inventory, name) for name in inventory.credentials
             if inventory.credentials[name].block is not None]
    assert_prefect_clean([*old, *new, *admin], run.id)


def test_rotate_all_runs_from_its_deployment(deployed: Stack, assert_prefect_clean: Any) -> None:
    from prefect.deployments import run_deployment

    inventory = load_inventory(deployed.inventory)
    wiring = Wiring(inventory)
    old = current(wiring, "openai", "staging") + current(wiring, "db-password", "staging")
    run = run_deployment("rotate-all/intelliprompt", timeout=RUN_TIMEOUT,
                         parameters={"environments": ["staging"], "force": True,
                                     "secrets": ["openai", "anthropic", "db-password"]})
    assert run.state is not None and run.state.is_completed(), (run.state, deployed.worker_log)
    assert (run.state.message or "").startswith("2 rotated, 0 failed"), run.state.message
    new = current(wiring, "openai", "staging") + current(wiring, "db-password", "staging")
    assert set(new).isdisjoint(old)
    assert not wiring.provider("openai").check_key(old[0])
    admin = [resolve_credential(inventory, name) for name in inventory.credentials
             if inventory.credentials[name].block is not None]
    assert_prefect_clean([*old, *new, *admin], run.id)


def test_a_failed_run_notifies_the_webhook(deployed: Stack) -> None:
    from prefect.deployments import run_deployment

    run = run_deployment("rotate-api-key/intelliprompt", timeout=RUN_TIMEOUT, parameters={
        "secret": "openai", "environment": "staging", "inventory": "/nonexistent/inventory.yaml",
    })
    assert run.state is not None and run.state.is_failed()
    body = deployed.receiver.wait_for(str(run.name), timeout=30)
    assert set(body) == {"text"}
    assert "rotate-api-key" in body["text"] and "Failed" in body["text"]


def test_secretops_scan_finds_no_value(deployed: Stack) -> None:
    """The CLI check of the issue: every store value, run on the whole server."""
    output = deployed.secretops("scan").stdout
    assert "clean" in output.lower() or "no value" in output.lower(), output
