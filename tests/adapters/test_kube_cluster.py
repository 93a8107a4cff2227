"""KubeCluster against the sandbox API server and its controllers: rollouts as kubectl sees
them, the pods' environment, External Secrets Operator syncs, RBAC and the audit log."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from secretops.adapters.aws import AwsConfig
from secretops.adapters.kube import RESTARTED_AT, KubeCluster
from secretops.adapters.kube_store import KubernetesSecretStore
from secretops.models import Credential, SecretValue
from tests.adapters.kube_world import KubeWorld

NS = "intelliprompt-staging"


def _app(kube: KubeWorld, secret_key: str = "token", replicas: int = 2,
         deadline: int = 3) -> tuple[str, str]:
    """A Deployment whose pods read ``token`` of Secret ``<name>-config`` at start, with a
    progress deadline of ``deadline`` seconds."""
    name = f"app-{uuid.uuid4().hex[:6]}"
    secret = f"{name}-config"
    kube.sandbox.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": secret, "namespace": NS},
            "data": {"token": base64.b64encode(b"token-value-0001").decode()},
        }
    )
    labels = {"app": name}
    env = [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": secret, "key": secret_key}}}]
    kube.sandbox.apply(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": NS, "labels": labels},
            "spec": {
                "replicas": replicas,
                "progressDeadlineSeconds": deadline,
                "selector": {"matchLabels": labels},
                "strategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
                },
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "app", "image": "app:1", "env": env}]},
                },
            },
        }
    )
    return name, secret


def _envs(kube: KubeWorld, app: str) -> list[str]:
    pods = kube.sandbox.kubelet.ready_pods(NS, {"app": app})
    return [pod.env.get("TOKEN", "") for pod in pods]


def test_restart_and_rollout_pick_up_the_new_value(
    kube: KubeWorld, cluster: KubeCluster, kubectl_in: Callable[..., str]
) -> None:
    app, secret = _app(kube)
    assert cluster.wait_for_rollout(NS, app, timeout=20).done
    assert _envs(kube, app) == ["token-value-0001"] * 2

    store = KubernetesSecretStore(cluster, NS, secret, "token")
    store.stage_pending(Credential(SecretValue("token-value-0002")))
    store.promote_pending()
    assert _envs(kube, app) == ["token-value-0001"] * 2  # a restart is needed

    since = datetime.now(UTC)
    stamp = cluster.restart_deployment(NS, app)
    status = cluster.wait_for_rollout(NS, app, timeout=30)
    assert status.done, status.message
    assert status.message == f'deployment "{app}" successfully rolled out'
    assert status.updated_replicas == 2 and status.available_replicas == 2
    assert "successfully rolled out" in kubectl_in(
        "rollout", "status", f"deployment/{app}", "-n", NS, "--timeout=20s"
    )
    deployment = json.loads(kubectl_in("get", "deployment", app, "-n", NS, "-o", "json"))
    assert deployment["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT] == stamp
    assert _envs(kube, app) == ["token-value-0002"] * 2

    started = cluster.pods_started_since(NS, app, since)
    assert len(started) == 2
    assert all(pod.ready and pod.started_at is not None for pod in started)
    assert all("Starting IntelliPrompt backend" in pod.log for pod in started)
    assert cluster.pods_started_since(NS, app, datetime.now(UTC) + timedelta(hours=1)) == []


def test_rollout_deadline_timeout_and_recovery(kube: KubeWorld, cluster: KubeCluster) -> None:
    # the deadline leaves a slow machine time to ask before it passes
    app, secret = _app(kube, secret_key="missing-key", replicas=1, deadline=8)
    early = cluster.wait_for_rollout(NS, app, timeout=0.5)
    assert not early.done and early.message.startswith("timed out after 0.5s")
    failed = cluster.wait_for_rollout(NS, app, timeout=30)
    assert failed.deadline_exceeded and not failed.done
    assert failed.message == f'deployment "{app}" exceeded its progress deadline'

    store = KubernetesSecretStore(cluster, NS, secret, "missing-key")
    store.stage_pending(Credential(SecretValue("now-it-exists-01")))
    store.promote_pending()
    cluster.restart_deployment(NS, app)
    recovered = cluster.wait_for_rollout(NS, app, timeout=30)
    assert recovered.done, recovered.message


def _api_keys(kubectl_in: Callable[..., str]) -> dict[str, str]:
    raw = json.loads(kubectl_in("get", "secret", "api-keys", "-n", "intelliprompt", "-o", "json"))
    return {k: base64.b64decode(v).decode() for k, v in raw["data"].items()}


def test_external_secret_force_sync(
    cluster: KubeCluster, aws_config: AwsConfig, kubectl_in: Callable[..., str]
) -> None:
    first = cluster.force_sync_external_secret("intelliprompt", "intelliprompt-secrets")
    synced = cluster.wait_external_secret_synced(
        "intelliprompt", "intelliprompt-secrets", first, timeout=20
    )
    assert synced > first
    value = f"sk-openai-{uuid.uuid4().hex}"
    aws_config.secretsmanager().put_secret_value(
        SecretId="prod/intelliprompt/openai", SecretString=value
    )
    before = cluster.force_sync_external_secret("intelliprompt", "intelliprompt-secrets")
    assert before >= synced  # a sync still queued from the ExternalSecret's creation may land
    after = cluster.wait_external_secret_synced(
        "intelliprompt", "intelliprompt-secrets", before, timeout=20
    )
    assert after > before
    assert _api_keys(kubectl_in)["openai"] == value


def test_secret_readers_resolve_bindings(cluster: KubeCluster) -> None:
    grants = cluster.secret_readers("intelliprompt")
    found = {(g.subject_kind, g.subject, g.via) for g in grants}
    assert (
        "Group",
        "developers",
        "RoleBinding intelliprompt/developers-read-secrets -> Role secret-reader",
    ) in found
    assert (
        "Group",
        "devops",
        "RoleBinding intelliprompt/devops-read-secrets -> Role secret-reader",
    ) in found
    assert all(g.environment == "production" for g in grants)
    assert not any("deployment-restarter" in g.via for g in grants)
    staging = cluster.secret_readers(NS)
    assert {g.environment for g in staging} == {"staging"}


def test_audit_log_shows_who_read_the_secret(
    cluster: KubeCluster, kubectl_in: Callable[..., str]
) -> None:
    since = datetime.now(UTC) - timedelta(seconds=1)
    kubectl_in(
        "get", "secret", "api-keys", "-n", "intelliprompt", "-o", "name", context="developer"
    )
    events: list[Any] = cluster.secret_read_events("intelliprompt", "api-keys", since)
    readers = {(e.actor, e.action) for e in events}
    assert ("dev-alice", "get") in readers
    assert all(e.source == "kubernetes-audit" and e.time >= since for e in events)
    assert (
        cluster.secret_read_events("intelliprompt", "api-keys", datetime.now(UTC) + timedelta(1))
        == []
    )


def test_two_restarts_in_the_same_second_both_roll_out(
    kube: KubeWorld, cluster: KubeCluster, kubectl_in: Callable[..., str]
) -> None:
    """A rotation right after another (a rerun, a fleet) restarts again: its pods must read
    the new value even when the first restart was less than a second before."""
    app, _ = _app(kube, replicas=1)
    assert cluster.wait_for_rollout(NS, app, timeout=20).done

    def revision() -> str:
        deployment = json.loads(kubectl_in("get", "deployment", app, "-n", NS, "-o", "json"))
        return str(deployment["metadata"]["annotations"]["deployment.kubernetes.io/revision"])

    revisions = [revision()]
    for _ in range(2):
        cluster.restart_deployment(NS, app)
        assert cluster.wait_for_rollout(NS, app, timeout=30).done
        revisions.append(revision())
    assert revisions == [revisions[0], str(int(revisions[0]) + 1), str(int(revisions[0]) + 2)]
