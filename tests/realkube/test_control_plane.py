"""The real control plane as the runbook, kubectl and the official client see it: the
server's version, RBAC answered by the real authorizer (``kubectl auth can-i``), least
privilege of the flows' ServiceAccount, container logs through the API server to the
sandbox's kubelet, the runbook's kubectl commands verbatim, ESO serving ``v1`` only."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import kubernetes
import pytest
import yaml

from secretops.adapters.kube import KubeCluster
from secretops.adapters.kube_api import KubeRefused
from tests.realkube.conftest import BOOT_SECONDS, deployment_logs

PROD, STAGING = "intelliprompt", "intelliprompt-staging"
FLOWS = ""  # the kubeconfig's current context: the flows' ServiceAccount


def can_i(kubectl: Any, context: str, *args: str) -> bool:
    extra = ["--context", context] if context else []
    result = kubectl(*extra, "auth", "can-i", *args, check=False)
    answer = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    assert answer in ("yes", "no"), result.stderr
    return answer == "yes"


def test_the_world_says_it_is_real(sandbox: dict[str, Any], kubectl: Any) -> None:
    assert sandbox["kubernetes"]["kind"] == "real"
    assert sandbox["kubernetes"]["gitVersion"].startswith("v1.")
    assert set(sandbox["pids"]) >= {"etcd", "kube-apiserver", "kube-controller-manager",
                                    "external-secrets"}
    version = kubectl("version", "-o", "json", check=False)
    assert json.loads(version.stdout)["serverVersion"]["gitVersion"] == \
        sandbox["kubernetes"]["gitVersion"]
    print(f"\n[figure] real world up in {BOOT_SECONDS[0]:.1f} s")


@pytest.mark.parametrize(("context", "args", "allowed"), [
    # the flows' ServiceAccount: what deployments/kubernetes grants, nothing more
    (FLOWS, ("get", "secret/api-keys", "-n", PROD), True),
    (FLOWS, ("patch", "secret/api-keys", "-n", PROD), False),  # ESO writes it
    (FLOWS, ("patch", "secret/api-keys", "-n", STAGING), True),
    (FLOWS, ("list", "secrets", "-n", PROD), False),
    (FLOWS, ("get", "secret/aws-credentials", "-n", PROD), False),
    (FLOWS, ("create", "secrets", "-n", STAGING), False),
    (FLOWS, ("get", "secrets", "-n", "kube-system"), False),
    (FLOWS, ("patch", "deployment/backend", "-n", PROD), True),
    (FLOWS, ("delete", "deployment/backend", "-n", PROD), False),
    (FLOWS, ("patch", "externalsecret/intelliprompt-secrets", "-n", PROD), True),
    (FLOWS, ("delete", "externalsecret/intelliprompt-secrets", "-n", PROD), False),
    (FLOWS, ("get", "pods", "--subresource=log", "-n", PROD), True),
    (FLOWS, ("list", "clusterroles"), True),  # the access audit's ClusterRole
    (FLOWS, ("list", "clusterrolebindings"), True),
    (FLOWS, ("create", "clusterrolebindings"), False),
    (FLOWS, ("*", "*"), False),
    # a developer: staging by policy, production through the planted breach
    ("developer", ("get", "secrets", "-n", STAGING), True),
    ("developer", ("get", "secrets", "-n", PROD), True),
    ("developer", ("patch", "deployment/backend", "-n", PROD), False),
    # break glass
    ("emergency-admin", ("*", "*"), True),
])
def test_can_i_answers_from_the_real_rbac(kubectl: Any, context: str, args: tuple[str, ...],
                                          allowed: bool) -> None:
    assert can_i(kubectl, context, *args) is allowed


def test_the_flows_identity_is_refused_what_it_must_not_do(sandbox: dict[str, Any]) -> None:
    """Through the official client, as the flows call it: 403 on what RBAC does not grant."""
    cluster = KubeCluster(sandbox["kubeconfig"], "sandbox")
    with pytest.raises(KubeRefused) as refused:
        cluster.call("list secrets", PROD, cluster.core.list_namespaced_secret, PROD)
    assert refused.value.status == 403
    body = kubernetes.client.V1Secret(metadata=kubernetes.client.V1ObjectMeta(name="x"),
                                      string_data={"k": "v"})
    with pytest.raises(KubeRefused) as refused:
        cluster.call("create secret", STAGING, cluster.core.create_namespaced_secret,
                     STAGING, body)
    assert refused.value.status == 403
    assert cluster.read_secret(PROD, "api-keys")  # and may do what it needs


def test_kubectl_logs_go_through_the_api_server_to_the_kubelet(kubectl: Any) -> None:
    logs = deployment_logs(kubectl, PROD)
    assert "API initialized" in logs
    node = json.loads(kubectl("--context", "emergency-admin", "get", "node", "sandbox-node",
                              "-o", "json").stdout)
    assert node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"] > 0


def test_the_runbooks_kubectl_commands_verbatim(sandbox: dict[str, Any], kubectl: Any,
                                                kubectl_bin: str, tmp_path: Path) -> None:
    """The runbook's own commands, as a devops engineer runs them (the break-glass one as
    written: switch context, list Secrets)."""
    assert "developers-read-secrets" in kubectl("get", "rolebindings", "-n", PROD).stdout
    kubectl("rollout", "restart", "deployment/backend", "-n", PROD)
    kubectl("rollout", "status", "deployment/backend", "-n", PROD, "--timeout=60s")
    logs = deployment_logs(kubectl, PROD)
    assert [line for line in logs.splitlines() if "API initialized" in line]
    config = tmp_path / "kubeconfig"
    shutil.copyfile(sandbox["kubeconfig"], config)
    for command in (["config", "use-context", "emergency-admin"],
                    ["get", "secrets", "-n", PROD]):
        done = subprocess.run([kubectl_bin, "--kubeconfig", str(config), *command],
                              capture_output=True, text=True, timeout=60, check=True)
    assert "api-keys" in done.stdout and "db-credentials" in done.stdout
    # the runbook's `kubectl create secret generic api-keys ...`, in a namespace of its own
    admin = ["--context", "emergency-admin"]
    kubectl(*admin, "create", "namespace", "runbook-drill")
    kubectl(*admin, "create", "secret", "generic", "api-keys", "--from-literal=openai=sk-xxx",
            "--from-literal=anthropic=sk-ant-xxx", "-n", "runbook-drill")
    kubectl(*admin, "patch", "secret", "api-keys", "-n", "runbook-drill", "-p",
            json.dumps({"data": {"openai": base64.b64encode(b"sk-yyy").decode()}}))
    got = yaml.safe_load(kubectl(*admin, "get", "secret", "api-keys", "-n", "runbook-drill",
                                 "-o", "yaml").stdout)
    assert base64.b64decode(got["data"]["openai"]) == b"sk-yyy"
    kubectl(*admin, "delete", "namespace", "runbook-drill", "--wait=false")


def test_eso_serves_v1_only_and_the_adapter_uses_it(sandbox: dict[str, Any]) -> None:
    """As ESO serves from 0.17 on: ``v1beta1`` is not served, and force-sync works on
    ``v1`` alone."""
    config = yaml.safe_load(Path(sandbox["kubeconfig"]).read_text())
    token = next(u["user"]["token"] for u in config["users"] if u["name"] == "emergency-admin")
    ca = Path(sandbox["dir"]) / "tls" / "ca.crt"
    base = f"{sandbox['kubernetes']['server']}/apis/external-secrets.io"
    headers = {"authorization": f"Bearer {token}"}
    assert httpx.get(f"{base}/v1beta1", headers=headers, verify=str(ca)).status_code == 404
    assert httpx.get(f"{base}/v1", headers=headers, verify=str(ca)).status_code == 200
    cluster = KubeCluster(sandbox["kubeconfig"], "sandbox")
    before = cluster.force_sync_external_secret(PROD, "intelliprompt-secrets")
    assert cluster.wait_external_secret_synced(PROD, "intelliprompt-secrets", before, 30)
    assert cluster.eso_version == "v1"
