"""The fault proxy in front of the real kube-apiserver (sandbox/realkube/faultproxy.py): the
users' kubeconfig goes through it, the control plane's components do not; with no faults
kubectl, a watch and ``kubectl logs`` work through it and the API server audits the real
caller; with ``secretops sandbox fault kubernetes --conflict-rate 1.0`` every write of
secretops' clients answers the 409 Status the real API server sends for a conflict, which the
official client raises as ``ApiException(409)``, until the knobs are cleared."""

from __future__ import annotations

import base64
import json
import queue
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.rest import ApiException

from secretops.adapters.kube import KubeCluster
from secretops.adapters.kube_api import KubeUnavailable
from tests.realkube.conftest import deployment_logs

PROD, STAGING = "intelliprompt", "intelliprompt-staging"
FLOWS_USER = "system:serviceaccount:secretops:secretops"
ROOT = Path(__file__).resolve().parents[2]


def server_of(kubeconfig: Path | str) -> str:
    return str(yaml.safe_load(Path(kubeconfig).read_text())["clusters"][0]["cluster"]["server"])


def audit_since(sandbox: dict[str, Any], since: datetime) -> list[dict[str, Any]]:
    text = Path(sandbox["kubernetes"]["audit_log"]).read_text()
    events = [json.loads(line) for line in text.splitlines() if line.strip()]
    return [e for e in events
            if datetime.fromisoformat(e["stageTimestamp"].replace("Z", "+00:00")) >= since]


def secret(name: str, value: str) -> k8s.V1Secret:
    return k8s.V1Secret(metadata=k8s.V1ObjectMeta(name=name),
                        data={"key": base64.b64encode(value.encode()).decode()})


@pytest.fixture()
def namespace(sandbox: dict[str, Any]) -> Iterator[tuple[k8s.ApiClient, str]]:
    """The break-glass identity's client (through the proxy) and a namespace of its own."""
    api = k8s_config.new_client_from_config(sandbox["kubeconfig"], context="emergency-admin")
    name = f"proxy-{uuid.uuid4().hex[:6]}"
    k8s.CoreV1Api(api).create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=name)))
    yield api, name
    httpx.delete(f"{sandbox['control']}/faults").raise_for_status()
    k8s.CoreV1Api(api).delete_namespace(name)


def test_only_the_users_kubeconfig_goes_through_the_proxy(sandbox: dict[str, Any]) -> None:
    realkube = Path(sandbox["dir"]) / "realkube"
    direct = server_of(realkube / "admin.kubeconfig")
    assert server_of(sandbox["kubeconfig"]) == sandbox["kubernetes"]["server"] != direct
    for component in ("controller-manager", "external-secrets", "kubelet"):
        assert server_of(realkube / f"{component}.kubeconfig") == direct


def test_kubectl_a_watch_and_logs_through_the_proxy_as_the_real_user(
        sandbox: dict[str, Any], kubectl: Any, kubectl_bin: str,
        namespace: tuple[k8s.ApiClient, str]) -> None:
    api, ns = namespace
    since = datetime.now(UTC) - timedelta(seconds=1)
    assert kubectl("get", "secret", "api-keys", "-n", PROD, "-o", "name").stdout.strip() == \
        "secret/api-keys"  # as the flows' ServiceAccount
    assert "api-keys" in kubectl("--context", "developer", "get", "secrets", "-n",
                                 STAGING).stdout
    assert "API initialized" in deployment_logs(kubectl, PROD)
    # a watch: each event reaches kubectl as the API server sends it, while the watch is open
    core = k8s.CoreV1Api(api)
    core.create_namespaced_config_map(ns, k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(
        name="first")))
    watch = subprocess.Popen([kubectl_bin, "--kubeconfig", sandbox["kubeconfig"], "--context",
                              "emergency-admin", "get", "configmaps", "-n", ns, "--watch",
                              "-o", "name"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    lines: queue.Queue[str] = queue.Queue()
    assert watch.stdout is not None
    threading.Thread(target=lambda: [lines.put(line.strip()) for line in watch.stdout],
                     daemon=True).start()

    def seen(name: str, timeout: float = 10.0) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if lines.get(timeout=max(0.01, deadline - time.monotonic())) == name:
                    return time.monotonic()
            except queue.Empty:
                break
        raise AssertionError(f"{name} not seen by kubectl --watch; stderr: "
                             f"{watch.stderr.read() if watch.poll() is not None else ''}")

    try:
        seen("configmap/first")
        created = time.monotonic()
        core.create_namespaced_config_map(ns, k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(
            name="second")))
        assert seen("configmap/second") - created < 3.0
        assert watch.poll() is None  # still watching: the event was not held for the end
    finally:
        watch.kill()
        watch.wait(10)
    time.sleep(0.5)
    events = audit_since(sandbox, since)
    flows = [e for e in events if e["user"]["username"] == FLOWS_USER]
    read = [e for e in flows if e["verb"] == "get" and e["objectRef"].get("name") == "api-keys"]
    logged = [e for e in flows if e["objectRef"].get("subresource") == "log"]
    # the developer's listing above (a test just before may have left the developer's reads
    # elsewhere within the window's first second)
    developer = [e for e in events if e["user"]["username"] == "dev-laptop@intelliprompt.dev"
                 and e["verb"] == "list" and e["objectRef"].get("namespace") == STAGING]
    assert read and logged and developer, flows
    assert read[0]["responseStatus"]["code"] == 200
    assert all(e["userAgent"].startswith("kubectl/") for e in read + logged + developer)


def test_a_conflict_storm_answers_the_real_409_status_until_cleared(
        sandbox: dict[str, Any], namespace: tuple[k8s.ApiClient, str]) -> None:
    api, ns = namespace
    core = k8s.CoreV1Api(api)
    created = core.create_namespaced_secret(ns, secret("s", "one"))
    core.patch_namespaced_secret("s", ns, {"data": {"key": base64.b64encode(b"two").decode()}})
    with pytest.raises(ApiException) as stale:  # a real conflict, from the real API server
        core.replace_namespaced_secret("s", ns, created)
    real = json.loads(stale.value.body)
    fault = subprocess.run([sys.executable, "-m", "cli", "sandbox", "fault",
                            "kubernetes", "--conflict-rate", "1.0", "--dir", sandbox["dir"]],
                           cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert fault.returncode == 0, fault.stderr
    since = datetime.now(UTC)
    assert core.read_namespaced_secret("s", ns).data["key"]  # reads still pass
    with pytest.raises(ApiException) as storm:
        core.patch_namespaced_secret("s", ns, {"data": {"key": "dGhyZWU="}})
    assert storm.value.status == 409
    assert storm.value.headers["content-type"] == "application/json"
    faked = json.loads(storm.value.body)
    assert faked == real, (faked, real)  # the same Status, message and details
    flows = KubeCluster(sandbox["kubeconfig"], "sandbox")
    with pytest.raises(KubeUnavailable) as adapter:  # the flows see a retryable conflict
        flows.call("patch deployment", PROD, flows.apps.patch_namespaced_deployment, "backend",
                   PROD, {"metadata": {"annotations": {"x": "y"}}})
    assert adapter.value.status == 409 and "Conflict" in str(adapter.value)
    # the controllers and the sandbox's machinery reach kube-apiserver directly: unaffected
    direct = k8s_config.new_client_from_config(
        str(Path(sandbox["dir"]) / "realkube" / "admin.kubeconfig"))
    k8s.CoreV1Api(direct).patch_namespaced_secret("s", ns, {"metadata": {"labels": {"d": "1"}}})
    time.sleep(0.3)
    assert not [e for e in audit_since(sandbox, since) if e["user"]["username"] ==
                "emergency-admin" and e["verb"] == "patch"]  # never reached the API server
    httpx.delete(f"{sandbox['control']}/faults").raise_for_status()
    patched = core.patch_namespaced_secret("s", ns, {"data": {"key": "dGhyZWU="}})
    assert base64.b64decode(patched.data["key"]) == b"three"
    assert patched.metadata.labels == {"d": "1"}
