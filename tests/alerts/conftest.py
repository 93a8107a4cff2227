"""Fixtures for the alert tests: the sandbox world and the Prefect server of tests/flows, a
receiver served by uvicorn on loopback (``Alerts``), and what GitHub (the sandbox's emulator)
is asked to raise."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from cli.alerts import BackgroundReceiver
from secretops.alerts.app import create_app
from secretops.alerts.serve import Receiver, build_receiver
from secretops.inventory import load_inventory
from secretops.models import SecretValue
from tests.flows.conftest import World, clean_prefect, free_held_locks, world

__all__ = ["World", "clean_prefect", "free_held_locks", "world"]


@dataclass
class Alerts:
    """A running receiver and the sandbox's GitHub."""

    url: str
    github: str
    receiver: Receiver
    credentials: Path

    def credential(self, name: str) -> str:
        return (self.credentials / name).read_text().removesuffix("\n")

    def raise_alert(self, repository: str, value: SecretValue, partner: bool = False,
                    path: str = "settings.py", line: int = 1) -> dict[str, Any]:
        """GitHub finds ``value`` pushed to ``repository`` and delivers its webhooks."""
        answer = httpx.post(f"{self.github}/sandbox/alerts", timeout=120, json={
            "repository": repository, "secret": value.reveal(), "secret_type": "openai_api_key",
            "path": path, "line": line, "hook_url": f"{self.url}/github", "partner": partner})
        answer.raise_for_status()
        return dict(answer.json())

    def redeliver(self, guid: str) -> int:
        answer = httpx.post(f"{self.github}/sandbox/deliveries/{guid}", timeout=60)
        return int(answer.json()["status"])


def start_receiver(inventory: str, github: str, credentials: Path) -> Iterator[Alerts]:
    receiver = build_receiver(load_inventory(inventory), github)
    try:
        with BackgroundReceiver(create_app(receiver.config)) as url:
            yield Alerts(url, github, receiver, credentials)
    finally:
        receiver.close()


@pytest.fixture(scope="module")
def alerts(world: World) -> Iterator[Alerts]:
    """A receiver on the sandbox's inventory (its credentials are files)."""
    yield from start_receiver(world.path, world.info["github"],
                              Path(world.info["dir"]) / "credentials")


def alert_events(since: datetime) -> list[dict[str, Any]]:
    """Every ``secretops.*`` event since then."""
    from prefect.client.orchestration import get_client

    query = {"filter": {"occurred": {"since": since.isoformat(),
                                     "until": datetime.now(UTC).isoformat()},
                        "event": {"prefix": ["secretops."]}}, "limit": 50}
    with get_client(sync_client=True) as client:
        return list(client.request("POST", "/events/filter", json=query).json()["events"])


@pytest.fixture()
def alert_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="secretops.alerts")
    return caplog
