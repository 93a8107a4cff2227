"""respond-to-leak against the sandbox from the command line: the CLI as a real subprocess, the
target polled until it refuses the old credential (the time is the figure the issue asks for),
then the world afterwards (new credentials everywhere, the app healthy), the audit findings
and the post-mortem file; two reports of the same leak at once; the hidden prompt for a key
only a person can create."""

from __future__ import annotations

import os
import select
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from secretops.models import Stage
from tests.flows.conftest import World
from tests.flows.leak_world import (
    REVOKE_BUDGET_SECONDS,
    ROOT,
    current,
    currents,
    forget_leak_responses,
    leak_command,
    mint_console_key,
    run_leak_cli,
    stage_console_keys,
    works,
)
from tests.flows.leak_world import assert_replaced_everywhere as replaced_everywhere

EXPOSED_SINCE = datetime.now(UTC) - timedelta(hours=1)
FIGURES: dict[str, str] = {}


@pytest.fixture(autouse=True, scope="module")
def no_earlier_responses(world: World) -> None:
    """This module's leaks start from no recorded response (see forget_leak_responses)."""
    forget_leak_responses(world)


@pytest.mark.usefixtures("clean_prefect")
@pytest.mark.parametrize("secret", ["openai", "anthropic", "db-password"])
def test_leak_from_the_cli(world: World, kubectl: Any, tmp_path: Path, secret: str) -> None:
    old = currents(world, secret)
    if secret == "anthropic":
        stage_console_keys(world)

    run = run_leak_cli(world, secret, old, EXPOSED_SINCE, tmp_path)

    assert run.returncode == 0, run.output
    FIGURES[f"time to revoke {secret} (3 environments)"] = (
        f"{run.seconds_to_refusal:.2f} s, load average {os.getloadavg()[0]:.1f}")
    replaced_everywhere(world, kubectl, secret, old)
    [postmortem] = tmp_path.glob("*.md")
    text = postmortem.read_text()
    assert str(postmortem) in run.output
    assert text.startswith(f"# Post-mortem: leak of `{secret}`")
    assert "## Timeline" in text and "1. Revoke compromised secret" in text
    assert "\n### Root cause\n" in text and "\n### Action items\n" in text
    for value in world.values():
        assert value.reveal() not in text
    if secret == "openai":
        assert "contractor-laptop" in text and "GetSecretValue" in text
        assert "dev-laptop@intelliprompt.dev get intelliprompt/api-keys" in text
        assert "last use of the leaked key" in text
        assert "VIOLATION: Group developers via RoleBinding intelliprompt/developers-read" in text
    assert run.seconds_to_refusal < REVOKE_BUDGET_SECONDS, f"{run.seconds_to_refusal:.2f} s"


@pytest.mark.usefixtures("clean_prefect")
def test_two_reports_at_once_give_one_response(world: World, kubectl: Any,
                                               tmp_path: Path) -> None:
    """Both revoke (idempotently); one rotates under the lock; the other waits for the lock,
    finds every environment replaced after the exposure began and ends without a post-mortem."""
    old = currents(world, "openai")
    command = leak_command(world, "openai", datetime.now(UTC), tmp_path, "--all-envs")
    reports = [subprocess.Popen(command, cwd=ROOT, env=dict(os.environ), text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
               for _ in range(2)]
    outputs = [report.communicate(timeout=240)[0] for report in reports]

    assert [report.returncode for report in reports] == [0, 0], outputs
    assert sum("nothing left to do" in output for output in outputs) == 1, outputs
    [postmortem] = tmp_path.glob("*.md")
    assert sum(str(postmortem) in output for output in outputs) == 2  # the second names it
    replaced_everywhere(world, kubectl, "openai", old)


@pytest.mark.usefixtures("clean_prefect")
def test_cli_asks_a_person_for_the_anthropic_key(world: World, tmp_path: Path) -> None:
    """In a terminal, the CLI revokes, then asks for the new key with a hidden prompt."""
    environment = "development"
    old = current(world, "anthropic", environment)
    primary, secondary = os.openpty()
    command = leak_command(world, "anthropic", datetime.now(UTC), tmp_path, "--env",
                           environment)
    process = subprocess.Popen(command, cwd=ROOT, env=dict(os.environ), stdin=secondary,
                               stdout=secondary, stderr=secondary, start_new_session=True)
    os.close(secondary)
    shown = read_until(primary, b"new anthropic key: ", timeout=60)
    assert not works(world, "anthropic", environment, old), "revoked before the prompt"
    key = mint_console_key(world, f"secretops-intelliprompt-{environment}-anthropic")
    os.write(primary, key.reveal().encode() + b"\n")
    shown += read_until(primary, None, timeout=180)
    assert process.wait(timeout=120) == 0, shown.decode(errors="replace")
    os.close(primary)

    assert key.reveal().encode() not in shown
    new = world.wiring.stores("anthropic", environment)[0].read(Stage.current)
    assert new is not None and new.secret == key
    assert works(world, "anthropic", environment, new)
    assert not works(world, "anthropic", environment, old)


def read_until(fd: int, marker: bytes | None, timeout: float) -> bytes:
    """What the process behind the terminal ``fd`` printed, up to and including ``marker``
    (None: until it closes the terminal)."""
    seen = b""
    deadline = time.monotonic() + timeout
    while (marker is None or marker not in seen) and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the other side closed
                chunk = b""
            if not chunk:
                break
            seen += chunk
    assert marker is None or marker in seen, seen.decode(errors="replace")
    return seen


def test_figures() -> None:
    """Print what the tests above measured (pytest -s shows it)."""
    for name, figure in FIGURES.items():
        print(f"{name}: {figure}")
