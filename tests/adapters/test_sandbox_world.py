"""The adapters, wired from the sandbox's own ``inventory.yaml``, against the whole seeded
world: every store reads, the seeded credentials work where they are used, the backend is
rolled out and logged ``API initialized``, and the planted reads are found by the audit."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from secretops.inventory import load_inventory
from secretops.models import Credential, Stage
from secretops.wiring import Wiring


@pytest.fixture(scope="module")
def wiring(sandbox: dict[str, Any]) -> Iterator[Wiring]:
    with Wiring(load_inventory(sandbox["inventory"])) as built:
        yield built


def _current(wiring: Wiring, secret: str, environment: str) -> Credential:
    credential = wiring.stores(secret, environment)[0].read(Stage.current)
    assert credential is not None
    return credential


@pytest.mark.parametrize("environment", ["development", "staging", "production"])
def test_seeded_credentials_work_where_they_are_used(wiring: Wiring, environment: str) -> None:
    for secret in wiring.inventory.secret_ids():
        if environment not in wiring.inventory.environments_of(secret):
            continue  # ci-aws-key: staging and production only
        for store in wiring.stores(secret, environment):
            assert store.read() is not None, store.name
            assert store.read(Stage.pending) is None, store.name
    assert wiring.provider("openai").check_key(_current(wiring, "openai", environment).secret)
    anthropic = _current(wiring, "anthropic", environment).secret
    assert wiring.provider("anthropic").check_key(anthropic)
    found = wiring.provider("anthropic").find_key(anthropic)
    assert found is not None and found.status == "active"
    database = _current(wiring, "db-password", environment)
    user = database.username or wiring.inventory.role_for("db-password", environment)
    assert wiring.database(environment).can_use_application(user, database.secret)


def test_backend_restart_as_kubectl_does(wiring: Wiring, kubectl: Any) -> None:
    cluster = wiring.cluster()
    namespace = "intelliprompt-staging"
    since = datetime.now(UTC)
    stamp = cluster.restart_deployment(namespace, "backend")
    status = cluster.wait_for_rollout(namespace, "backend", timeout=60)
    assert status.done, status.message
    assert (
        "successfully rolled out"
        in kubectl(
            "rollout", "status", "deployment/backend", "-n", namespace, "--timeout=30s"
        ).stdout
    )
    pods = cluster.pods_started_since(namespace, "backend", since)
    assert len(pods) == 3
    assert all(pod.ready and "API initialized" in pod.log for pod in pods)
    annotations = kubectl(
        "get",
        "deployment",
        "backend",
        "-n",
        namespace,
        "-o",
        "jsonpath={.spec.template.metadata.annotations}",
    ).stdout
    assert stamp in annotations


def test_audit_finds_the_planted_reads(wiring: Wiring) -> None:
    cluster = wiring.cluster()
    since = datetime.now(UTC) - timedelta(hours=1)
    readers = cluster.secret_readers("intelliprompt")
    assert any(g.subject == "developers" and "developers-read-secrets" in g.via for g in readers)
    events = cluster.secret_read_events("intelliprompt", "api-keys", since)
    assert any(e.actor == "dev-laptop@intelliprompt.dev" for e in events)
    aws = wiring.aws()
    trail = aws.secret_read_events("prod/intelliprompt/openai", since)
    assert any("contractor-laptop" in e.actor for e in trail)
    roles = aws.secret_readers("prod/intelliprompt/openai")
    assert any("intelliprompt-secrets-reader" in g.via for g in roles)
