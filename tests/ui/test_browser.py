"""The Prefect UI, as a person uses it: headless Chromium (the distribution's) driven by
Playwright starts rotate-api-key for Anthropic in staging from the deployment page, answers
the pause form with a key minted in the sandbox's Anthropic console, and sees the run
Completed; then the world is checked (every store holds the minted key, the provider accepts
it and refuses the old one), the form's answer is gone from the run's inputs, and nothing
Prefect keeps holds a value. Screenshots of the deployment page, the pause form (before the
key is typed) and the completed run go to the test's temporary folder.

The browser is never downloaded: without ``chromium`` the test is skipped on a workstation,
and fails under CI (``CI`` set), where ``.ci/run`` installs the package.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from sandbox.manager import mint_console_key
from secretops.credentials import resolve_credential
from secretops.inventory import load_inventory
from secretops.models import SecretValue, Stage
from secretops.wiring import Wiring
from tests.deploy.stack import BLOCK_CREDENTIALS, Stack
from tests.flows.conftest import World

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]
SECRET, ENVIRONMENT = "anthropic", "staging"
RUN_TIMEOUT_MS = 90_000

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists() and not os.environ.get("CI"),
    reason="chromium is not installed (apt-get install chromium); under CI this fails instead",
)


def pick(page: Any, parameter: str, option: str) -> None:
    """Choose ``option`` in the drop-down of a deployment parameter. Prefect's select opens
    from the keyboard (a synthetic mouse click in headless Chromium leaves it closed)."""
    label = page.locator(".schema-form-property__label", has_text=parameter)
    field = page.locator(".schema-form-property").filter(has=label).first
    field.locator(".p-select-button__control").focus()
    page.keyboard.press("ArrowDown")
    page.get_by_role("option", name=option, exact=True).click()


def type_in(page: Any, parameter: str, text: str) -> None:
    """Type ``text`` into the text field of a deployment parameter (a secret's id: any id of
    the inventory, which the run checks)."""
    label = page.locator(".schema-form-property__label", has_text=parameter)
    field = page.locator(".schema-form-property").filter(has=label).first
    field.locator("textarea, input").first.fill(text)


def created_run(deployment_id: Any, seconds: float) -> str:
    """The id of the custom run started from the form (not one of the schedules' runs), or ""
    when none appears within ``seconds``."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    deadline = time.monotonic() + seconds
    while True:
        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs(deployment_filter=DeploymentFilter(
                id=DeploymentFilterId(any_=[deployment_id])))
        started = [r for r in runs if not r.auto_scheduled
                   and r.parameters.get("secret") == SECRET
                   and r.parameters.get("environment") == ENVIRONMENT]
        if started or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    return str(max(started, key=lambda r: r.created or r.expected_start_time).id) if started else ""


def start_custom_run(page: Any, ui: str, deployment_id: Any, server_log: Path,
                     shots: Path) -> str:
    """On the deployment page: Run -> Custom run (``secret`` and ``environment`` have no
    default, so Quick run cannot start it), type the secret, choose the environment, submit, and
    follow the toast to the new run's page. Returns the flow run id.

    As a person would: when the form stays put and no run appears (the server answered with
    an error toast, or not at all), submit again, up to three times; while a submission is in
    flight the form is disabled, so a second click waits for it instead of starting a second
    run. The toast goes away on its own after a few seconds; when it is gone before it can be
    clicked, the run is opened from the deployment's runs."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page.get_by_role("button", name="Run", exact=True).click()
    page.get_by_text("Custom run").click()
    type_in(page, "secret", SECRET)
    pick(page, "environment", ENVIRONMENT)
    seen: list[str] = []
    for attempt in range(1, 4):
        page.get_by_role("button", name="Submit").click(timeout=60_000)
        try:
            # the toast is drawn twice, one over the other: click the one on top
            page.get_by_role("button", name="View run").last.click(timeout=10_000)
            page.wait_for_url("**/runs/flow-run/*")
            return str(page.url.rsplit("/", 1)[-1])
        except PlaywrightTimeout:
            pass
        run_id = created_run(deployment_id, seconds=20)
        if run_id:
            page.goto(f"{ui}/runs/flow-run/{run_id}")
            return run_id
        page.screenshot(path=str(shots / f"submit-{attempt}.png"))
        seen.append(f"attempt {attempt} at {page.url}: "
                    + " | ".join(page.locator(".p-toast__card").all_inner_texts())[:300])
    tail = "\n".join(server_log.read_text(errors="replace").splitlines()[-30:])
    raise AssertionError("the custom run was not created; what the page showed:\n"
                         + "\n".join(seen) + f"\nthe Prefect server's log ends:\n{tail}")


def current(world: World) -> list[SecretValue]:
    values = []
    for store in world.wiring.stores(SECRET, ENVIRONMENT):
        credential = store.read(Stage.current)
        assert credential is not None, store.name
        values.append(credential.secret)
    return values


def cancel_if_unfinished(run_id: str) -> None:
    """After a failure, leave no run paused on the session's server holding the lock."""
    from prefect.client.orchestration import get_client
    from prefect.states import Cancelling

    with get_client(sync_client=True) as client:
        state = client.read_flow_run(run_id).state
        if state is not None and not state.is_final():
            client.set_flow_run_state(run_id, Cancelling(), force=True)


def test_rotate_anthropic_from_the_ui(deployed: Stack, prefect_server: Any,
                                      assert_prefect_clean: Any, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright
    from prefect.client.orchestration import get_client

    from tests.deploy.test_deployed import deployments_by_flow

    inventory = load_inventory(deployed.sandbox["inventory"])
    world = World(deployed.sandbox, deployed.sandbox["inventory"], inventory, Wiring(inventory))
    deployment = deployments_by_flow()["rotate-api-key"]
    ui = prefect_server.api_url.removesuffix("/api")
    old = current(world)[0]
    world.seen.append(old)
    run_id, key = "", ""
    seconds: dict[str, float] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{ui}/deployments/deployment/{deployment.id}")
            schedule = page.get_by_text(f"{SECRET}-{ENVIRONMENT}", exact=True)
            expect(schedule).to_be_visible(timeout=30_000)
            page.screenshot(path=str(tmp_path / "1-deployment.png"))

            clicked = time.monotonic()
            run_id = start_custom_run(page, ui, deployment.id, prefect_server.log_path,
                                      tmp_path)
            badge = page.locator(".page-heading-flow-run__meta .state-badge")
            expect(badge).to_have_text("Paused", timeout=RUN_TIMEOUT_MS)
            seconds["Run -> Paused"] = time.monotonic() - clicked

            page.get_by_role("button", name="Resume").click()
            form = page.get_by_role("dialog")
            expect(form.get_by_text(f"A new {SECRET} key is needed for {ENVIRONMENT}")
                   ).to_be_visible()
            expect(form.get_by_text("The new key, exactly as the console showed it.")
                   ).to_be_visible()
            page.screenshot(path=str(tmp_path / "2-pause-form.png"))
            key = mint_console_key(world.info, f"secretops-intelliprompt-{ENVIRONMENT}-{SECRET}")
            world.seen.append(SecretValue(key))
            form.get_by_role("textbox").fill(key)
            resumed = time.monotonic()
            form.get_by_role("button", name="Submit").click()

            expect(badge).to_have_text("Completed", timeout=RUN_TIMEOUT_MS)
            seconds["Resume -> Completed"] = time.monotonic() - resumed
            seconds["Run -> Completed"] = time.monotonic() - clicked
            page.locator(".p-tab", has_text="Task Runs").click()
            expect(page.get_by_text(f"Revoke old key at provider ({ENVIRONMENT})").first
                   ).to_be_visible()
            page.screenshot(path=str(tmp_path / "3-completed.png"))
            assert key not in page.content()
        finally:
            browser.close()
            if run_id and "Run -> Completed" not in seconds:
                cancel_if_unfinished(run_id)
    print(f"UI rotation of {SECRET} in {ENVIRONMENT}: "
          + ", ".join(f"{name} {value:.1f} s" for name, value in seconds.items())
          + f"; screenshots in {tmp_path}")

    assert all(value == SecretValue(key) for value in current(world))
    assert all(store.read(Stage.pending) is None
               for store in world.wiring.stores(SECRET, ENVIRONMENT))
    provider = world.wiring.provider(SECRET)
    assert provider.check_key(SecretValue(key)) and not provider.check_key(old)

    with get_client(sync_client=True) as client:
        inputs = client.filter_flow_run_input(flow_run_id=run_id, key_prefix="", limit=100,
                                              exclude_keys=set())
    assert not [i.key for i in inputs if i.key.endswith("-response")]
    assert all(key not in i.value for i in inputs)

    admin = [resolve_credential(inventory, name) for name in BLOCK_CREDENTIALS]
    assert_prefect_clean([*world.values(), *admin], run_id)
