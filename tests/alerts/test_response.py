"""From a GitHub alert to a finished response, on the deployed stack (``secretops setup``,
``prefect deploy --all``, a process worker): the receiver revokes the leaked value, the event
and the automation start one run of ``respond-to-leak`` that replaces it; a burst of alerts for
one value starts one run; a key the provider revoked first goes straight to replacement; the
post-mortem names the alert; nothing secret reached Prefect."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from secretops import automations
from secretops.credentials import resolve_credential
from secretops.inventory import load_inventory
from secretops.models import Credential, SecretValue, Stage
from tests.alerts.conftest import Alerts, World, start_receiver
from tests.deploy.stack import Stack

FIGURES: dict[str, str] = {}
BURST = 200
RUN_TIMEOUT = 240


@pytest.fixture(scope="module")
def deployed_alerts(world: World, deployed: Stack) -> Iterator[Alerts]:
    """A receiver on the deployed stack's inventory (admin credentials in Prefect blocks)."""
    yield from start_receiver(str(deployed.inventory), world.info["github"],
                              Path(world.info["dir"]) / "credentials")


class Refusal(threading.Thread):
    """Polls the provider with the key until it is refused; ``at`` is monotonic."""

    def __init__(self, world: World, value: SecretValue) -> None:
        super().__init__(daemon=True)
        self.url = f"{world.info['providers']['openai']}/v1/models"
        self.value, self.at, self.halt = value, 0.0, threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=5) as client:
            while not self.halt.is_set():
                answer = client.get(self.url, headers={"Authorization":
                                                       f"Bearer {self.value.reveal()}"})
                if answer.status_code == 401:
                    self.at = time.monotonic()
                    return
                time.sleep(0.005)


def current(world: World, environment: str) -> Credential:
    found = world.wiring.stores("openai", environment)[0].read(Stage.current)
    assert found is not None
    world.seen.append(found.secret)
    return found


def leak_runs(fingerprint: str) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(
            any_=[automations.LEAK_FLOW])), limit=200)
    return [r for r in runs if r.parameters.get("leaked_fingerprint") == fingerprint]


def finished_run(fingerprint: str, timeout: float = RUN_TIMEOUT) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = leak_runs(fingerprint)
        if runs and runs[0].state is not None and runs[0].state.is_final():
            return runs[0]
        time.sleep(0.5)
    raise AssertionError(f"no finished leak run for {fingerprint} within {timeout} s")


def postmortem(world: World, run: Any) -> str:
    folder = Path(world.info["dir"]) / "postmortems"
    [found] = [p for p in folder.glob(f"*-{str(run.id)[:8]}.md")]
    return found.read_text()


def credentials(deployed: Stack) -> list[SecretValue]:
    inventory = load_inventory(deployed.inventory)
    return [resolve_credential(inventory, name) for name in inventory.credentials]


def check_replaced(world: World, environment: str, old: Credential) -> Credential:
    new = current(world, environment)
    provider = world.wiring.provider("openai")
    assert new != old and provider.check_key(new.secret) and not provider.check_key(old.secret)
    return new


def test_an_alert_revokes_at_once_and_its_run_replaces_the_key(
        world: World, deployed_alerts: Alerts, deployed: Stack,
        assert_prefect_clean: Callable[..., Any]) -> None:
    old = current(world, "staging")
    watcher = Refusal(world, old.secret)
    watcher.start()
    started = time.monotonic()
    answer = deployed_alerts.raise_alert("intelliprompt/backend", old.secret,
                                         path="deploy/values.yaml", line=12)
    delivered = time.monotonic()
    watcher.join(timeout=10)
    assert watcher.at, "the leaked key still works"
    FIGURES["alert to refused (signed webhook POST to provider refusal)"] = (
        f"{watcher.at - started:.2f} s")
    assert [d["status"] for d in answer["deliveries"]] == [202, 202]
    run = finished_run(old.secret.fingerprint())
    FIGURES["alert to finished response (staging)"] = f"{time.monotonic() - started:.1f} s"
    FIGURES["webhook deliveries answered"] = f"{delivered - started:.2f} s"
    assert run.state.is_completed(), (run.state, deployed.worker_log)
    assert run.parameters["environments"] == ["staging"]
    assert run.parameters["alert"]["repository"] == "intelliprompt/backend"
    assert run.parameters["alert"]["number"] == str(answer["number"])
    assert len(leak_runs(old.secret.fingerprint())) == 1
    new = check_replaced(world, "staging", old)
    text = postmortem(world, run)
    assert (f"GitHub secret scanning alert #{answer['number']} in intelliprompt/backend at "
            "deploy/values.yaml:12") in text
    assert "exposure source: GitHub secret scanning alert" in text  # the audit's findings
    assert old.secret.reveal() not in text and new.secret.reveal() not in text
    assert_prefect_clean([old.secret, new.secret, *credentials(deployed)], run.id)


def test_a_burst_of_alerts_for_one_value_starts_one_response(
        world: World, deployed_alerts: Alerts, deployed: Stack,
        assert_prefect_clean: Callable[..., Any]) -> None:
    old = current(world, "production")
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=32) as pool:
        answers = list(pool.map(lambda n: deployed_alerts.raise_alert(
            f"forks/backend-{n}", old.secret), range(BURST)))
    FIGURES[f"burst of {BURST} alerts ({2 * BURST} deliveries) answered"] = (
        f"{time.monotonic() - started:.1f} s")
    statuses = [d["status"] for a in answers for d in a["deliveries"]]
    # 202: started or joined the response; 200: once the response has replaced the key, a
    # later alert finds the value rotated out (reported, nothing started)
    assert set(statuses) <= {200, 202} and statuses[:2] == [202, 202], statuses
    FIGURES[f"burst of {BURST} alerts: deliveries joined / found rotated out"] = (
        f"{statuses.count(202) - 1} / {statuses.count(200)}")
    run = finished_run(old.secret.fingerprint())
    assert run.state.is_completed(), (run.state, deployed.worker_log)
    time.sleep(3)  # anything the burst could still start would be scheduled by now
    runs = leak_runs(old.secret.fingerprint())
    FIGURES[f"burst of {BURST} alerts: runs started"] = str(len(runs))
    assert len(runs) == 1, [(r.name, r.state_name) for r in runs]
    new = check_replaced(world, "production", old)
    assert_prefect_clean([old.secret, new.secret, *credentials(deployed)], run.id)


def test_a_key_the_provider_revoked_first_goes_straight_to_replacement(
        world: World, deployed_alerts: Alerts, deployed: Stack,
        assert_prefect_clean: Callable[..., Any]) -> None:
    old = current(world, "development")
    answer = deployed_alerts.raise_alert("intelliprompt/public-demo", old.secret, partner=True)
    assert [d["status"] for d in answer["deliveries"]] == [202, 202]
    run = finished_run(old.secret.fingerprint())
    assert run.state.is_completed(), (run.state, deployed.worker_log)
    new = check_replaced(world, "development", old)
    text = postmortem(world, run)
    assert "The provider had already revoked the key" in text
    assert "already refused by the provider before secretops revoked it" in text
    line = next(li for li in text.splitlines() if "report to replacement verified" in li)
    FIGURES["provider revoked first: report to replacement verified (downtime)"] = (
        line.split(": ")[-1])
    assert_prefect_clean([old.secret, new.secret, *credentials(deployed)], run.id)


def test_figures() -> None:
    for name, figure in FIGURES.items():
        print(f"{name}: {figure}")
