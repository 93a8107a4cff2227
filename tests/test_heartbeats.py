"""Runs started from the command line heartbeat as often as the zombie automation expects."""

from __future__ import annotations

import os
import subprocess
import sys

from secretops.automations import HEARTBEAT_SECONDS, HEARTBEAT_SETTING, ZOMBIE_AFTER

PROBE = (
    "from secretops.automations import use_heartbeats; use_heartbeats(); "
    "from prefect.settings import get_current_settings; "
    "print(get_current_settings().flows.heartbeat_frequency)"
)


def _frequency(**env: str) -> int:
    clean = {k: v for k, v in os.environ.items() if k != HEARTBEAT_SETTING} | env
    out = subprocess.run([sys.executable, "-c", PROBE], env=clean, capture_output=True,
                         text=True, timeout=60, check=True)
    return int(out.stdout.strip().splitlines()[-1])


def test_cli_runs_heartbeat_within_the_zombie_window() -> None:
    assert _frequency() == HEARTBEAT_SECONDS
    assert ZOMBIE_AFTER.total_seconds() > 2 * HEARTBEAT_SECONDS


def test_an_operator_choice_is_kept() -> None:
    assert _frequency(**{HEARTBEAT_SETTING: "45"}) == 45
