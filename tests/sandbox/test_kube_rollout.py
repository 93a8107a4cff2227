"""Rollouts, backend pods, External Secrets Operator and the service endpoint, driven with the
real kubectl and checked against the world (Secrets, pods' logs, PostgreSQL, providers)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator

import httpx
import psycopg
import pytest
from kubernetes import client as k8s
from psycopg import sql

from tests.sandbox.kube_fixture import PROD, STAGING, KubeWorld, kube_world


@pytest.fixture(scope="module")
def world() -> Iterator[KubeWorld]:
    yield kube_world()


def _secret(world: KubeWorld, ns: str, name: str) -> dict[str, str]:
    obj = world.kube.store.get("secrets", ns, name) or {}
    return {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}


def _pods(world: KubeWorld, ns: str) -> list[k8s.V1Pod]:
    return k8s.CoreV1Api(world.api()).list_namespaced_pod(ns, label_selector="app=backend").items


def test_rollout_restart_replaces_every_pod(world: KubeWorld) -> None:
    before = {p.metadata.name for p in _pods(world, STAGING)}
    started = time.monotonic()
    world.rollout_restart(STAGING)
    out = world.kubectl("rollout", "status", "deployment/backend", "-n", STAGING,
                        "--timeout=60s").stdout
    assert out.strip().endswith('deployment "backend" successfully rolled out')
    assert time.monotonic() - started < 10
    world.wait(lambda: not before & {p.metadata.name for p in _pods(world, STAGING)}, 10,
               "old pods gone")
    dep = k8s.AppsV1Api(world.api()).read_namespaced_deployment("backend", STAGING)
    assert "kubectl.kubernetes.io/restartedAt" in dep.spec.template.metadata.annotations
    reasons = {c.type: c.reason for c in dep.status.conditions}
    assert reasons == {"Available": "MinimumReplicasAvailable",
                       "Progressing": "NewReplicaSetAvailable"}
    assert dep.status.observed_generation == dep.metadata.generation
    assert dep.metadata.annotations["deployment.kubernetes.io/revision"] == "2"


def test_revoked_key_stalls_the_rollout_until_the_deadline(world: KubeWorld) -> None:
    core = k8s.CoreV1Api(world.api())
    good = _secret(world, STAGING, "api-keys")["openai"]
    serving = {p.metadata.name for p in _pods(world, STAGING)}
    core.patch_namespaced_secret("api-keys", STAGING, {"stringData": {"openai": "sk-revoked"}})
    world.rollout_restart(STAGING)
    failed = world.kubectl("rollout", "status", "deployment/backend", "-n", STAGING,
                           "--timeout=60s", check=False)
    assert failed.returncode != 0
    assert 'deployment "backend" exceeded its progress deadline' in failed.stderr
    pods = _pods(world, STAGING)
    stuck = [p for p in pods if p.metadata.name not in serving]
    assert len(stuck) == 1 and len(pods) == 4, "maxSurge 1, maxUnavailable 0: old pods stay"
    ready = {c.type: c.status for c in stuck[0].status.conditions}
    assert stuck[0].status.phase == "Running" and ready["Ready"] == "False"
    log = world.kubectl("logs", stuck[0].metadata.name, "-n", STAGING).stdout
    assert "FATAL: OpenAI API key refused (401 invalid_api_key)" in log
    assert "API initialized" not in log and "sk-revoked" not in log
    core.patch_namespaced_secret("api-keys", STAGING, {"stringData": {"openai": good}})
    world.rollout_restart(STAGING)
    out = world.kubectl("rollout", "status", "deployment/backend", "-n", STAGING,
                        "--timeout=60s").stdout
    assert "successfully rolled out" in out


def test_force_sync_brings_the_new_aws_value_into_the_secret(world: KubeWorld) -> None:
    sm = world.secretsmanager()
    old = _secret(world, PROD, "api-keys")["openai"]
    es = world.kube.store.get("externalsecrets.external-secrets.io", PROD,
                              "intelliprompt-secrets")
    assert es is not None
    before = es["status"]["refreshTime"]
    sm.put_secret_value(SecretId="prod/intelliprompt/openai", SecretString="sk-from-aws-2")
    try:
        world.kubectl("annotate", "es", "intelliprompt-secrets", "-n", PROD,
                      f"force-sync={time.time()}", "--overwrite")
        world.wait(lambda: _secret(world, PROD, "api-keys")["openai"] == "sk-from-aws-2", 10,
                   "secret synced")
        status = world.kube.store.get("externalsecrets.external-secrets.io", PROD,
                                      "intelliprompt-secrets")["status"]  # type: ignore[index]
        assert status["refreshTime"] >= before  # to the second, as ESO's: may be the same
        assert status["conditions"][0]["reason"] == "SecretSynced"
        secret = world.kube.store.get("secrets", PROD, "api-keys")
        assert secret is not None
        assert secret["metadata"]["ownerReferences"][0]["kind"] == "ExternalSecret"
        assert "reconcile.external-secrets.io/created-with-hash" in secret["metadata"]["labels"]
        world.kubectl("patch", "secret", "api-keys", "-n", PROD, "-p",
                      json.dumps({"stringData": {"openai": "sk-direct-patch"}}))
        assert _secret(world, PROD, "api-keys")["openai"] == "sk-direct-patch"
        world.kubectl("annotate", "es", "intelliprompt-secrets", "-n", PROD,
                      f"force-sync={time.time()}", "--overwrite")
        world.wait(lambda: _secret(world, PROD, "api-keys")["openai"] == "sk-from-aws-2", 10,
                   "direct patch undone by the next sync")
    finally:
        sm.put_secret_value(SecretId="prod/intelliprompt/openai", SecretString=old)
        world.kubectl("annotate", "es", "intelliprompt-secrets", "-n", PROD,
                      f"force-sync={time.time()}", "--overwrite")
        world.wait(lambda: _secret(world, PROD, "api-keys")["openai"] == old, 10, "restored")
    db = _secret(world, PROD, "db-credentials")
    assert db == {"username": "intelliprompt", "password": world.pg_passwords["intelliprompt"]}


def test_sync_error_is_reported_without_values(world: KubeWorld) -> None:
    k8s.CustomObjectsApi(world.api()).create_namespaced_custom_object(
        "external-secrets.io", "v1", PROD, "externalsecrets", {
            "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
            "metadata": {"name": "broken"},
            "spec": {"refreshInterval": "1h",
                     "secretStoreRef": {"name": "aws-secrets-manager", "kind": "SecretStore"},
                     "target": {"name": "broken"},
                     "data": [{"secretKey": "x", "remoteRef": {"key": "prod/missing"}}]}})

    def condition() -> dict[str, str]:
        es = world.kube.store.get("externalsecrets.external-secrets.io", PROD, "broken") or {}
        return ((es.get("status") or {}).get("conditions") or [{}])[0]

    world.wait(lambda: condition().get("reason") == "SecretSyncedError", 10, "sync error")
    assert "prod/missing" in condition()["message"]
    assert condition()["status"] == "False"
    assert world.kube.store.get("secrets", PROD, "broken") is None


def test_service_fails_when_the_db_password_changes_under_the_pods(world: KubeWorld) -> None:
    url = world.services[STAGING]
    with httpx.Client(base_url=url, timeout=10) as http:
        answers = [http.get("/") for _ in range(6)]
        assert all(a.status_code == 200 and a.json()["ok"] for a in answers)
        assert len({a.json()["pod"] for a in answers}) == 3, "round robin over ready pods"
        role = "intelliprompt_staging"
        with psycopg.connect(world.pg.admin_conninfo(), autocommit=True) as admin:
            admin.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                sql.Identifier(role), sql.Literal("a-new-password-nobody-has")))
            try:
                failed = http.get("/")
                assert failed.status_code == 503
                assert failed.json()["error"] == (
                    'PostgreSQL login failed for user "intelliprompt_staging"')
            finally:
                verifier = admin.pgconn.encrypt_password(
                    world.pg_passwords[role].encode(), role.encode(), b"scram-sha-256").decode()
                admin.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                    sql.Identifier(role), sql.Literal(verifier)))
        assert http.get("/").status_code == 200


def test_a_pod_takes_the_start_time_its_annotation_gives(world: KubeWorld) -> None:
    apps = k8s.AppsV1Api(world.api())
    labels = {"app": "slow-start"}
    apps.create_namespaced_deployment(STAGING, {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "slow-start", "labels": labels},
        "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels, "annotations": {
                     "sandbox.secretops.dev/start-seconds": "1.5"}},
                     "spec": {"containers": [{"name": "app", "image": "slow/app:1"}]}}}})
    started = time.monotonic()
    try:
        world.kubectl("rollout", "status", "deployment/slow-start", "-n", STAGING,
                      "--timeout=30s")
        took = time.monotonic() - started
        assert 1.5 <= took < 10, took
    finally:
        apps.delete_namespaced_deployment("slow-start", STAGING)
