"""The schedule catalogue, the prefect.yaml check (CI runs it here), the worker image and the
Kubernetes manifests: parsed and checked offline, then applied to a sandbox's API server with
the real kubectl."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import yaml

from deployments.catalogue import CatalogueError, catalogue, clashes, staggered
from deployments.check import check
from sandbox import manager
from secretops.inventory import load_inventory

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "deployments" / "kubernetes"
APP_SECRETS = {"api-keys", "db-credentials", "ci-aws-key"}
ALERTS = "secretops-alerts"


def manifests() -> list[dict[str, Any]]:
    return [doc for path in sorted(MANIFESTS.glob("*.yaml"))
            for doc in yaml.safe_load_all(path.read_text()) if doc]


def manifest(kind: str, name: str) -> dict[str, Any]:
    """The one object of ``kind`` named ``name`` (several files hold a Deployment)."""
    (found,) = [d for d in manifests() if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


def write_variant(tmp_path: Path, change: Any) -> Path:
    data = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    change(data["deployments"])
    path = tmp_path / "prefect.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_prefect_yaml_agrees_with_the_inventory() -> None:
    problems = check(ROOT / "prefect.yaml", load_inventory(ROOT / "inventory.yaml"))
    missing = [p for p in problems if p.endswith("does not exist")]
    assert [p for p in problems if p not in missing] == []


def test_rotations_are_staggered_by_environment() -> None:
    runs = catalogue(load_inventory(ROOT / "inventory.yaml"))
    assert clashes(runs) == []
    assert {r.slug: r.cron for r in runs}["openai-production"] == "40 3 1 * *"
    assert all(r.timezone for r in runs)
    assert staggered("50 23 1 * *", 0) == "50 23 1 * *"
    with pytest.raises(CatalogueError):
        staggered("50 23 1 * *", 20)
    with pytest.raises(CatalogueError):
        staggered("*/5 3 1 * *", 20)


def test_check_finds_each_kind_of_disagreement(tmp_path: Path) -> None:
    inventory = load_inventory(ROOT / "inventory.yaml")

    def same_minute(deployments: list[dict[str, Any]]) -> None:
        deployments[0]["schedules"][1]["cron"] = "0 3 1 * *"
        deployments[0]["concurrency_limit"] = 2
        deployments[0]["work_pool"] = {"name": "secretops-process", "job_variables": {
            "env": {"OPENAI_ADMIN_KEY": "{{ prefect.blocks.secret.openai-admin-key }}"}}}
        on_demand = next(d for d in deployments if "respond_to_leak" in d["entrypoint"])
        on_demand["schedules"] = [{"slug": "x", "cron": "0 1 * * *", "timezone": "UTC"}]
        del deployments[1]["schedules"][0]["timezone"]

    problems = "\n".join(check(write_variant(tmp_path, same_minute), inventory))
    for expected in ("schedule 'openai-staging' has cron '0 3 1 * *'",
                     "concurrency_limit must be 1", "block template", "env.OPENAI_ADMIN_KEY",
                     "runs on demand only", "has no explicit timezone"):
        assert expected in problems, problems


def test_dockerfile_runs_the_kubernetes_worker_without_values() -> None:
    text = (ROOT / "deployments" / "Dockerfile").read_text()
    assert "WORKDIR /opt/secretops" in text and "USER 10001" in text
    assert "--type\", \"kubernetes\"" in text
    for word in ("API_KEY=", "PASSWORD=", "ARG "):
        assert word not in text


def test_role_is_least_privilege() -> None:
    roles = {(d["metadata"]["namespace"], d["metadata"]["name"]): d for d in manifests()
             if d["kind"] == "Role"}
    for namespace in ("intelliprompt", "intelliprompt-staging"):
        rules = roles[(namespace, "secretops-rotation")]["rules"]
        for rule in rules:
            assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"]
            assert not {"create", "delete", "deletecollection", "escalate", "bind",
                        "impersonate"} & set(rule["verbs"])
        secrets = [r for r in rules if "secrets" in r["resources"]]
        assert len(secrets) == 1 and set(secrets[0]["resourceNames"]) >= APP_SECRETS
        assert all(name.startswith(tuple(APP_SECRETS)) for name in secrets[0]["resourceNames"])
        deployments = next(r for r in rules if "deployments" in r["resources"])
        assert deployments["resourceNames"] == ["backend", "ci-runner"]
        assert "patch" in deployments["verbs"]
        for resource in ("pods", "pods/log"):
            rule = next(r for r in rules if r["resources"] == [resource])
            assert set(rule["verbs"]) <= {"get", "list", "watch"}
    production = roles[("intelliprompt", "secretops-rotation")]["rules"]
    eso = next(r for r in production if r["apiGroups"] == ["external-secrets.io"])
    assert set(eso["verbs"]) == {"get", "patch"}
    assert set(eso["resourceNames"]) == {"intelliprompt-secrets", "intelliprompt-db",
                                            "intelliprompt-ci"}
    assert next(r for r in production if "secrets" in r["resources"])["verbs"] == ["get"]


def test_bindings_and_worker_use_the_two_service_accounts() -> None:
    docs = manifests()
    bindings = [d for d in docs if d["kind"] == "RoleBinding"]
    subjects = {(b["metadata"]["namespace"], s["name"]) for b in bindings for s in b["subjects"]}
    assert subjects == {("intelliprompt", "secretops"), ("intelliprompt-staging", "secretops"),
                        ("secretops", "secretops-worker")}
    # The one cluster-wide grant is the access audit's: it reads RBAC objects, nothing else.
    cluster = [d for d in docs if d["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    assert {(d["kind"], d["metadata"]["name"]) for d in cluster} == {
        ("ClusterRole", "secretops-access-audit"), ("ClusterRoleBinding", "secretops-access-audit")}
    role = next(d for d in cluster if d["kind"] == "ClusterRole")
    assert all(set(r["verbs"]) <= {"get", "list", "watch"}
               and r["apiGroups"] == ["rbac.authorization.k8s.io"] for r in role["rules"])
    worker = manifest("Deployment", "secretops-worker")
    spec = worker["spec"]["template"]["spec"]
    assert spec["serviceAccountName"] == "secretops-worker"
    container = spec["containers"][0]
    assert "secretops-kubernetes" in container["args"]
    assert all("value" not in e or "KEY" not in e["name"] for e in container.get("env", []))


def env_credentials() -> dict[str, str]:
    """The inventory's credentials read from an environment variable: name -> variable."""
    inventory = load_inventory(ROOT / "inventory.yaml")
    return {name: ref.env for name, ref in inventory.credentials.items() if ref.env}


def test_alert_receiver_runs_like_the_worker_behind_its_service() -> None:
    from starlette.testclient import TestClient

    from secretops.alerts.app import ReceiverConfig, create_app
    from secretops.models import SecretValue

    worker = manifest("Deployment", "secretops-worker")["spec"]["template"]["spec"]
    alerts = manifest("Deployment", ALERTS)
    spec = alerts["spec"]["template"]["spec"]
    assert spec["serviceAccountName"] == "secretops"  # the flows' identity (docs/alerts.md)
    assert spec["securityContext"] == worker["securityContext"]
    (container,) = spec["containers"]
    assert container["image"] == worker["containers"][0]["image"]
    args = container["args"]
    assert args[:3] == ["secretops", "alerts", "serve"]
    port = args[args.index("--port") + 1]
    assert f"--port {port}" in (ROOT / "docs" / "alerts.md").read_text()
    assert args[args.index("--host") + 1] == "0.0.0.0"
    assert container["ports"] == [{"name": "http", "containerPort": int(port), "protocol": "TCP"}]
    paths = {container[probe]["httpGet"]["path"] for probe in ("readinessProbe", "livenessProbe")}
    assert {container[probe]["httpGet"]["port"] for probe in ("readinessProbe",
                                                              "livenessProbe")} == {"http"}
    config = ReceiverConfig(webhook_secret=SecretValue("unused-webhook-secret"),
                            report_token=None, read_alert=lambda *_: None,
                            responder=cast(Any, None))
    with TestClient(create_app(config)) as client:
        for path in paths:
            assert client.get(path).status_code == 200, path

    service = manifest("Service", ALERTS)
    selector = service["spec"]["selector"]
    assert selector == alerts["spec"]["selector"]["matchLabels"]
    assert selector.items() <= alerts["spec"]["template"]["metadata"]["labels"].items()
    worker_labels = manifest("Deployment", "secretops-worker")["spec"]["template"]["metadata"]
    assert not selector.items() <= worker_labels["labels"].items()
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http"]


def test_alert_receiver_reads_every_variable_credential_from_its_secret() -> None:
    from secretops.alerts.serve import TOKEN_CREDENTIAL, WEBHOOK_CREDENTIAL

    credentials = env_credentials()
    assert {WEBHOOK_CREDENTIAL, TOKEN_CREDENTIAL} <= credentials.keys()
    (container,) = manifest("Deployment", ALERTS)["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    for name, variable in credentials.items():
        assert env[variable] == {"name": variable, "valueFrom": {
            "secretKeyRef": {"name": ALERTS, "key": name}}}, variable
    assert [e["name"] for e in container["env"] if "valueFrom" not in e] == ["PREFECT_API_URL"]
    assert "envFrom" not in container


@pytest.fixture(scope="module")
def fresh_sandbox() -> Iterator[dict[str, Any]]:
    """A sandbox of its own: the manifests add a binding the access audit would report."""
    directory = Path(tempfile.mkdtemp(prefix="secretops-manifests-"))
    info, _ = manager.up(directory)
    try:
        yield info
    finally:
        manager.down(directory)
        shutil.rmtree(directory, ignore_errors=True)


def test_manifests_apply_to_the_sandbox_api_server(
    fresh_sandbox: dict[str, Any], kubectl_bin: str
) -> None:
    def kubectl(*args: str) -> str:
        result = subprocess.run([kubectl_bin, "--kubeconfig", fresh_sandbox["kubeconfig"],
                                 *args], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        return result.stdout

    for path in sorted(MANIFESTS.glob("*.yaml"), key=lambda p: p.name != "namespace.yaml"):
        kubectl("apply", "--validate=false", "-f", str(path))
    again = kubectl("apply", "--validate=false", "-f", str(MANIFESTS))
    assert "created" not in again and "configured" not in again, again
    stored = yaml.safe_load(kubectl("get", "role", "secretops-rotation", "-n", "intelliprompt",
                                    "-o", "yaml"))
    assert stored["rules"][0]["resourceNames"] == ["api-keys", "db-credentials", "ci-aws-key"]
    assert "secretops-worker" in kubectl("get", "deployments", "-n", "secretops")


def test_alert_receiver_applies_and_its_service_selects_its_pods(
    fresh_sandbox: dict[str, Any], kubectl_bin: str, tmp_path: Path
) -> None:
    def kubectl(*args: str) -> str:
        result = subprocess.run([kubectl_bin, "--kubeconfig", fresh_sandbox["kubeconfig"],
                                 "-n", "secretops", *args],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        return result.stdout

    def get(*args: str) -> Any:
        return json.loads(kubectl("get", *args, "-o", "json"))

    def pods(selector: dict[str, str]) -> list[dict[str, Any]]:
        return list(get("pods", "-l", ",".join(f"{k}={v}" for k, v in selector.items()))
                    ["items"])

    def wait_for(what: str, check: Callable[[], list[dict[str, Any]] | None]) -> Any:
        deadline = time.monotonic() + 30
        while (found := check()) is None:
            assert time.monotonic() < deadline, what
            time.sleep(0.2)
        return found

    for name in ("namespace.yaml", "serviceaccounts.yaml", "alerts.yaml"):
        kubectl("apply", "--validate=false", "-f", str(MANIFESTS / name))
    service, deployment = get("service", ALERTS), get("deployment", ALERTS)
    selector = service["spec"]["selector"]
    assert service["spec"]["ports"][0]["targetPort"] == "http"

    def owned() -> list[dict[str, Any]] | None:
        """The Deployment's pods (through its ReplicaSets), once they all exist."""
        sets = {rs["metadata"]["uid"] for rs in get("replicasets")["items"]
                if any(o["uid"] == deployment["metadata"]["uid"]
                       for o in rs["metadata"].get("ownerReferences", []))}
        found = [p for p in get("pods")["items"]
                 if any(o["uid"] in sets for o in p["metadata"].get("ownerReferences", []))]
        return found if len(found) == deployment["spec"]["replicas"] else None

    ours = wait_for("the receiver's pods", owned)
    assert {p["metadata"]["name"] for p in pods(selector)} == {
        p["metadata"]["name"] for p in ours}

    # The credentials come only from the Secret: the pods wait until it exists.
    def waiting() -> list[dict[str, Any]] | None:
        found = pods(selector)
        states = [cs["state"].get("waiting", {}) for p in found
                  for cs in p["status"].get("containerStatuses", [])]
        return found if states and all(s.get("reason") == "CreateContainerConfigError"
                                       for s in states) else None

    message = wait_for("pods waiting for the Secret", waiting)[0]["status"][
        "containerStatuses"][0]["state"]["waiting"]["message"]
    assert message == f'secret "{ALERTS}" not found'
    (container,) = ours[0]["spec"]["containers"]
    by_reference = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]
                    if "valueFrom" in e}
    for name, variable in env_credentials().items():
        assert by_reference[variable] == {"name": ALERTS, "key": name}
    assert all("valueFrom" in e or e["name"] == "PREFECT_API_URL" for e in container["env"])

    # docs/alerts.md: the Secret is made from files, never from values on a command line
    files = []
    for name in env_credentials():
        path = tmp_path / name
        path.write_text(f"sandbox-{name}-0123456789")  # no newline: a variable keeps it
        files.append(f"--from-file={name}={path}")
    kubectl("create", "secret", "generic", ALERTS, *files)

    def running() -> list[dict[str, Any]] | None:
        found = pods(selector)
        return found if found and all(
            cs.get("ready") for p in found
            for cs in p["status"].get("containerStatuses", [{}])) else None

    assert wait_for("the receiver's pods running", running)
    again = kubectl("apply", "--validate=false", "-f", str(MANIFESTS / "alerts.yaml"))
    assert "created" not in again and "configured" not in again, again
