"""audit-access against the sandbox: the planted policy-breaking RoleBinding fails the run and
shows in the table artifact; without it the run passes. Also through the CLI."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

from flows.audit_access import PolicyBroken, audit_access
from tests.flows.conftest import World

ROOT = Path(__file__).resolve().parents[2]
PLANTED = "RoleBinding intelliprompt/developers-read-secrets"


def latest_table() -> str:
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["access-audit"])))
    assert found
    return str(max(found, key=lambda a: a.created or 0).data)


@pytest.mark.usefixtures("clean_prefect")
def test_planted_binding_breaks_the_policy(world: World) -> None:
    with pytest.raises(PolicyBroken) as raised:
        asyncio.run(audit_access(inventory=world.path))
    message = str(raised.value)
    assert f"production: Group developers via {PLANTED}" in message
    assert "staging:" not in message  # the dev team may read staging's secrets
    table = latest_table()
    assert PLANTED in table and "VIOLATION" in table
    assert "intelliprompt-secrets-reader" in table  # the IAM role, with its trusted principal
    assert "Federated:" in table and "workload" in table
    assert "Group devops" in table and "allowed" in table


@pytest.mark.usefixtures("clean_prefect")
def test_policy_respected_without_the_binding(world: World, kubectl: Any,
                                             tmp_path: Path) -> None:
    saved = tmp_path / "binding.json"
    binding = json.loads(kubectl("get", "rolebinding", "developers-read-secrets", "-n",
                                 "intelliprompt", "-o", "json").stdout)
    binding["metadata"] = {"name": "developers-read-secrets", "namespace": "intelliprompt"}
    saved.write_text(json.dumps(binding))
    kubectl("delete", "rolebinding", "developers-read-secrets", "-n", "intelliprompt")
    try:
        message = asyncio.run(audit_access(inventory=world.path))
    finally:
        kubectl("create", "--validate=false", "-f", str(saved))  # the sandbox has no OpenAPI
    assert "policy respected" in message
    assert PLANTED not in latest_table()


@pytest.mark.usefixtures("clean_prefect")
def test_cli_exits_non_zero_on_a_broken_policy(world: World) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cli", "audit", "--inventory", world.path],
        cwd=ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    assert PLANTED in result.stdout + result.stderr
