"""A key near its provider expiry is due whatever its schedule says: ``rotate all`` (its
``find_due_rotations`` step) and ``inventory check --keys`` read ``expires_at`` from the
provider. The expiry is set through OpenAI's own client, as an operator could set it."""

from __future__ import annotations

import subprocess
import sys

import openai
import pytest

from secretops.models import Stage, keys_with_value
from tasks.fleet import find_due_rotations
from tests.flows.api_key_world import remember_all, rotate
from tests.flows.conftest import World


def _set_expiry(world: World, environment: str, seconds: int) -> None:
    settings = world.inventory.providers.openai
    assert settings is not None
    admin = world.wiring.credential(settings.admin_credential)
    current = world.wiring.stores("openai", environment)[0].read(Stage.current)
    assert current is not None
    keys = keys_with_value(world.wiring.provider("openai").list_keys(), current.secret)
    assert len(keys) == 1
    with openai.OpenAI(admin_api_key=admin.reveal(), api_key="",
                       base_url=f"{settings.base_url}/v1") as client:
        client.admin.organization.projects.api_keys.update(
            keys[0].id, project_id=settings.project_id, expires_in_seconds=seconds)


@pytest.mark.usefixtures("clean_prefect")
def test_a_key_that_expires_within_the_margin_is_due(world: World) -> None:
    rotate(world, "openai", "staging")  # rotated just now: not due by its schedule
    remember_all(world, "openai", "staging")
    before = {(d.secret, d.environment): d.due
              for d in find_due_rotations.fn(world.path, ["staging"], False)}
    assert before[("openai", "staging")] is False
    _set_expiry(world, "staging", 2 * 86400)
    try:
        due = {(d.secret, d.environment): d for d in
               find_due_rotations.fn(world.path, ["staging"], False)}
        shown = subprocess.run(
            [sys.executable, "-m", "cli", "inventory", "check", "--keys",
             "--inventory", world.path], capture_output=True, text=True, timeout=120)
    finally:
        _set_expiry(world, "staging", 300 * 86400)  # beyond the margin: due by schedule only
    staging = due[("openai", "staging")]
    assert staging.due and "expires at" in staging.note, staging
    assert shown.returncode == 0, shown.stderr
    line = next(text for text in shown.stdout.splitlines()
                if text.split()[:2] == ["openai", "staging"])
    assert "due: within the expiry margin" in line
