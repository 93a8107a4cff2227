"""The sandbox API server as kubectl and the official Python client see it: discovery, get /
list / watch, selectors, conflicts, Status bodies, audit, logs. Server-side dry run and the
three patch types are asserted against this server and the real one alike, in
tests/realkube/test_api_contract.py."""

from __future__ import annotations

import base64
import json
import ssl
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from kubernetes import client as k8s
from kubernetes import watch
from kubernetes.client.rest import ApiException

from sandbox.kube.jsondoc import clone
from sandbox.kube.patch import json_patch, merge_patch, strategic_merge
from sandbox.kube.selectors import field_matcher, label_matcher
from tests.sandbox.kube_fixture import DEV_TOKEN, PROD, STAGING, TOKEN, KubeWorld, kube_world

TEST_NS = "kube-api-test"


@pytest.fixture(scope="module")
def world() -> Iterator[KubeWorld]:
    w = kube_world()
    core = k8s.CoreV1Api(w.api())
    core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=TEST_NS)))
    yield w
    core.delete_namespace(TEST_NS)


def _core(world: KubeWorld) -> k8s.CoreV1Api:
    return k8s.CoreV1Api(world.api())


def _http(world: KubeWorld, token: str | None = TOKEN) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    ca = str(world.kubeconfig.parent / "tls" / "ca.crt")
    return httpx.Client(base_url=world.server, headers=headers,
                        verify=ssl.create_default_context(cafile=ca))


def test_kubectl_reads_a_secret_value_with_jsonpath(world: KubeWorld) -> None:
    out = world.kubectl("get", "secret", "api-keys", "-n", STAGING, "-o",
                        "jsonpath={.data.openai}").stdout
    assert base64.b64decode(out).decode() == world.keys["staging"]["openai"]


def test_kubectl_table_yaml_and_rolebindings(world: KubeWorld) -> None:
    table = world.kubectl("get", "pods", "-l", "app=backend", "-n", PROD).stdout
    assert table.splitlines()[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert len(table.splitlines()) == 4 and "Running" in table
    bindings = world.kubectl("get", "rolebindings", "-n", PROD).stdout
    assert "developers-read-secrets" in bindings and "Role/secret-reader" in bindings
    as_yaml = world.kubectl("get", "deployment", "backend", "-n", PROD, "-o", "yaml").stdout
    assert "maxUnavailable: 0" in as_yaml and "secretKeyRef" in as_yaml
    resources = world.kubectl("api-resources").stdout
    assert "externalsecrets" in resources and " es " in resources


def test_discovery_documents(world: KubeWorld) -> None:
    with _http(world) as http:
        assert http.get("/version").json()["minor"] == "32"
        groups = {g["name"] for g in http.get("/apis").json()["groups"]}
        assert {"apps", "rbac.authorization.k8s.io", "external-secrets.io"} <= groups
        for gv in ("/apis/external-secrets.io/v1", "/apis/external-secrets.io/v1beta1"):
            names = {r["name"] for r in http.get(gv).json()["resources"]}
            assert {"externalsecrets", "secretstores"} <= names
        assert http.get("/openapi/v2").status_code == 404
        es = http.get(f"/apis/external-secrets.io/v1beta1/namespaces/{PROD}/externalsecrets"
                      "/intelliprompt-secrets").json()
        assert es["apiVersion"] == "external-secrets.io/v1beta1"


def test_unknown_token_is_401(world: KubeWorld) -> None:
    for token in (None, "nope"):
        with _http(world, token) as http:
            response = http.get(f"/api/v1/namespaces/{PROD}/secrets")
        assert response.status_code == 401
        assert response.json()["reason"] == "Unauthorized"


def test_not_found_and_unsupported_media_bodies(world: KubeWorld) -> None:
    with _http(world) as http:
        missing = http.get(f"/api/v1/namespaces/{PROD}/secrets/nope")
        assert missing.status_code == 404
        assert missing.json() == {
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": 'secrets "nope" not found', "reason": "NotFound",
            "details": {"name": "nope", "kind": "secrets"}, "code": 404}
        bad = http.patch(f"/api/v1/namespaces/{PROD}/secrets/api-keys", content=b"{}",
                         headers={"Content-Type": "text/plain"})
        assert bad.status_code == 415 and bad.json()["reason"] == "UnsupportedMediaType"
        crd = http.patch(
            f"/apis/external-secrets.io/v1/namespaces/{PROD}/externalsecrets/intelliprompt-db",
            content=b"{}", headers={"Content-Type": "application/strategic-merge-patch+json"})
        assert crd.status_code == 415
        deploy = http.get(f"/apis/apps/v1/namespaces/{PROD}/deployments/nope").json()
        assert deploy["message"] == 'deployments.apps "nope" not found'


def test_kubectl_create_sends_protobuf_and_the_server_reads_it(world: KubeWorld) -> None:
    """The runbook's own first command (``kubectl create secret generic``) and its kin: kubectl
    sends these kinds as protobuf; the stored objects are what the command asked for."""
    world.kubectl("create", "secret", "generic", "runbook-keys", "-n", TEST_NS,
                  "--from-literal=openai=sk-proto", "--from-literal=anthropic=sk-ant-proto")
    secret = _core(world).read_namespaced_secret("runbook-keys", TEST_NS)
    assert {k: base64.b64decode(v).decode() for k, v in secret.data.items()} == {
        "openai": "sk-proto", "anthropic": "sk-ant-proto"}
    assert secret.type == "Opaque" and secret.metadata.resource_version
    world.kubectl("create", "configmap", "runbook-settings", "-n", TEST_NS,
                  "--from-literal=model=gpt")
    world.kubectl("create", "serviceaccount", "runbook-reader", "-n", TEST_NS)
    world.kubectl("create", "rolebinding", "runbook-read", "-n", TEST_NS, "--role=reader",
                  "--serviceaccount", f"{TEST_NS}:runbook-reader")
    binding = json.loads(world.kubectl("get", "rolebinding", "runbook-read", "-n", TEST_NS,
                                       "-o", "json").stdout)
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": "reader"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "runbook-reader",
                                    "namespace": TEST_NS}]
    assert "generateName" not in binding["metadata"]
    settings = _core(world).read_namespaced_config_map("runbook-settings", TEST_NS)
    assert settings.data == {"model": "gpt"}
    # a kind the server cannot read from protobuf is refused as the media type, clearly
    refused = world.kubectl("create", "deployment", "web", "--image=nginx", "-n", TEST_NS,
                            check=False)
    assert refused.returncode != 0 and "unknown format" in refused.stderr


def test_malformed_protobuf_body_is_a_bad_request(world: KubeWorld) -> None:
    with _http(world) as http:
        for body in (b"not-protobuf", b"k8s\x00\x0a\xff"):
            answer = http.post(f"/api/v1/namespaces/{TEST_NS}/secrets", content=body,
                               headers={"Content-Type": "application/vnd.kubernetes.protobuf"})
            assert answer.status_code == 400, answer.text
            assert answer.json()["reason"] == "BadRequest"


def test_kubectl_apply_with_its_default_validation(world: KubeWorld, tmp_path: Any) -> None:
    """``kubectl apply -f`` reads the OpenAPI v3 documents to see that the server checks the
    fields itself, then creates, and on a second apply patches."""
    manifest = tmp_path / "settings.yaml"
    for model, said in (("gpt-4o", "created"), ("gpt-5", "configured"), ("gpt-5", "unchanged")):
        manifest.write_text(f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: applied\n"
                            f"  namespace: {TEST_NS}\ndata:\n  model: {model}\n")
        out = world.kubectl("apply", "-f", str(manifest)).stdout
        assert said in out, out
    assert _core(world).read_namespaced_config_map("applied", TEST_NS).data == {"model": "gpt-5"}
    with _http(world) as http:
        root = http.get("/openapi/v3").json()["paths"]
        assert {"api/v1", "apis/apps/v1", "apis/external-secrets.io/v1beta1"} <= set(root)
        doc = http.get(root["apis/apps/v1"]["serverRelativeURL"]).json()
        patch = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
        assert patch["x-kubernetes-group-version-kind"]["kind"] == "Deployment"
        assert "fieldValidation" in {p["name"] for p in patch["parameters"]}
        assert http.get("/openapi/v3/apis/nope/v1").status_code == 404


def test_create_update_and_stale_resource_version_conflict(world: KubeWorld) -> None:
    core = _core(world)
    made = core.create_namespaced_secret(TEST_NS, k8s.V1Secret(
        metadata=k8s.V1ObjectMeta(name="conflict"), string_data={"k": "one"}))
    assert base64.b64decode(made.data["k"]) == b"one"
    stale = made.metadata.resource_version
    made.string_data = {"k": "two"}
    updated = core.replace_namespaced_secret("conflict", TEST_NS, made)
    assert int(updated.metadata.resource_version) > int(stale)
    made.metadata.resource_version = stale
    with pytest.raises(ApiException) as err:
        core.replace_namespaced_secret("conflict", TEST_NS, made)
    body = json.loads(err.value.body)
    assert err.value.status == 409 and body["reason"] == "Conflict"
    assert body["message"] == (
        'Operation cannot be fulfilled on secrets "conflict": the object has been modified; '
        "please apply your changes to the latest version and try again")
    with pytest.raises(ApiException) as err:
        core.patch_namespaced_secret("conflict", TEST_NS, {
            "metadata": {"resourceVersion": stale}, "data": {"k": "eA=="}})
    assert err.value.status == 409
    assert base64.b64decode(core.read_namespaced_secret("conflict", TEST_NS).data["k"]) == b"two"


def test_label_and_field_selectors(world: KubeWorld) -> None:
    core = _core(world)
    for name, tier in (("sel-a", "web"), ("sel-b", "db"), ("sel-c", None)):
        labels = {"group": "sel", **({"tier": tier} if tier else {})}
        core.create_namespaced_config_map(TEST_NS, k8s.V1ConfigMap(
            metadata=k8s.V1ObjectMeta(name=name, labels=labels)))

    def names(**kw: Any) -> set[str]:
        return {c.metadata.name for c in core.list_namespaced_config_map(TEST_NS, **kw).items}

    assert names(label_selector="tier=web") == {"sel-a"}
    assert names(label_selector="group==sel,tier!=web") == {"sel-b", "sel-c"}
    assert names(label_selector="tier in (web,db)") == {"sel-a", "sel-b"}
    assert names(label_selector="group,tier notin (web)") == {"sel-b", "sel-c"}
    assert names(label_selector="group,!tier") == {"sel-c"}
    assert names(field_selector="metadata.name=sel-b") == {"sel-b"}
    assert names(label_selector="group", field_selector="metadata.name!=sel-b") == {
        "sel-a", "sel-c"}
    running = core.list_namespaced_pod(PROD, field_selector="status.phase=Running").items
    assert len(running) >= 3
    assert core.list_namespaced_pod(PROD, field_selector="status.phase=Failed").items == []


def test_watch_with_the_python_client(world: KubeWorld) -> None:
    core = _core(world)
    start = core.list_namespaced_secret(TEST_NS).metadata.resource_version
    seen: list[tuple[str, str]] = []

    def follow() -> None:
        w = watch.Watch()
        for event in w.stream(core.list_namespaced_secret, TEST_NS, resource_version=start,
                              label_selector="watched=yes", timeout_seconds=5):
            seen.append((event["type"], event["object"].metadata.name))
            if event["type"] == "DELETED":
                w.stop()

    thread = threading.Thread(target=follow)
    thread.start()
    body = k8s.V1Secret(metadata=k8s.V1ObjectMeta(name="watched", labels={"watched": "yes"}),
                        string_data={"a": "b"})
    core.create_namespaced_secret(TEST_NS, body)
    core.patch_namespaced_secret("watched", TEST_NS, {"stringData": {"a": "c"}})
    core.create_namespaced_secret(TEST_NS, k8s.V1Secret(metadata=k8s.V1ObjectMeta(
        name="unwatched")))
    core.delete_namespaced_secret("watched", TEST_NS)
    thread.join(10)
    assert seen == [("ADDED", "watched"), ("MODIFIED", "watched"), ("DELETED", "watched")]


def test_watch_timeout_and_initial_events(world: KubeWorld) -> None:
    with _http(world) as http:
        response = http.get(f"/api/v1/namespaces/{PROD}/secrets",
                            params={"watch": "1", "timeoutSeconds": "1"}, timeout=5)
    events = [json.loads(line) for line in response.text.splitlines()]
    assert {e["object"]["metadata"]["name"] for e in events} == {"api-keys", "db-credentials"}
    assert {e["type"] for e in events} == {"ADDED"}


def test_audit_log_records_secret_reads_without_values(world: KubeWorld) -> None:
    world.kubectl("--context", "developer", "get", "secret", "api-keys", "-n", PROD, "-o",
                  "name")
    events = [json.loads(line) for line in world.audit_log.read_text().splitlines()]
    reads = [e for e in events if e["user"]["username"] == "alice@intelliprompt.dev"
             and e["verb"] == "get" and e["objectRef"].get("name") == "api-keys"]
    assert reads, "the developer's read is in the audit log"
    event = reads[-1]
    assert event["apiVersion"] == "audit.k8s.io/v1" and event["level"] == "Metadata"
    assert event["objectRef"] == {"resource": "secrets", "namespace": PROD, "name": "api-keys",
                                  "apiVersion": "v1"}
    assert event["user"]["groups"] == ["developers"] and event["responseStatus"]["code"] == 200
    assert event["userAgent"].startswith("kubectl/")
    text = world.audit_log.read_text()
    for env in world.keys.values():
        for value in env.values():
            assert value not in text
            assert base64.b64encode(value.encode()).decode() not in text
    assert DEV_TOKEN not in text


def test_pod_logs_by_deployment_label_and_params(world: KubeWorld) -> None:
    out = world.kubectl("logs", "deployment/backend", "-n", STAGING).stdout
    assert out.splitlines()[-1] == "API initialized"
    assert "Connecting to PostgreSQL as intelliprompt_staging" in out
    by_label = world.kubectl("logs", "-l", "app=backend", "-n", STAGING, "--prefix").stdout
    assert by_label.count("API initialized") == 3
    pod = _core(world).list_namespaced_pod(STAGING).items[0].metadata.name
    with _http(world) as http:
        tail = http.get(f"/api/v1/namespaces/{STAGING}/pods/{pod}/log",
                        params={"tailLines": "1", "timestamps": "true", "container": "backend"})
        assert tail.headers["content-type"].startswith("text/plain")
        stamp, line = tail.text.strip().split(" ", 1)
        assert line == "API initialized" and stamp.endswith("Z")
        later = http.get(f"/api/v1/namespaces/{STAGING}/pods/{pod}/log",
                         params={"sinceTime": "2999-01-01T00:00:00Z"})
        assert later.text == ""


def test_patch_functions() -> None:
    assert merge_patch({"a": {"b": 1, "c": 2}}, {"a": {"b": None, "d": 3}}) == {
        "a": {"c": 2, "d": 3}}
    target = {"containers": [{"name": "x", "image": "1"}, {"name": "y", "image": "1"}]}
    assert strategic_merge(target, {"containers": [{"name": "y", "$patch": "delete"}]}) == {
        "containers": [{"name": "x", "image": "1"}]}
    assert strategic_merge({"a": {"b": 1}}, {"a": {"$patch": "replace", "c": 2}}) == {
        "a": {"c": 2}}
    doc = {"a": [1, 2], "b": {"c": "x"}}
    assert json_patch(doc, [{"op": "add", "path": "/a/-", "value": 3},
                            {"op": "move", "from": "/b/c", "path": "/d"},
                            {"op": "remove", "path": "/a/0"}]) == {"a": [2, 3], "b": {},
                                                                    "d": "x"}
    assert field_matcher("metadata.name=a")({"metadata": {"name": "a"}})
    assert not label_matcher("x in (a, b)")({"x": "c"})


def test_clone_shares_nothing_mutable() -> None:
    doc = {"metadata": {"labels": {"a": "1"}}, "items": [{"n": 1}, [2, None, True, 1.5]]}
    copied = clone(doc)
    assert copied == doc
    copied["metadata"]["labels"]["a"] = "2"
    copied["items"][0]["n"] = 9
    copied["items"][1].append(3)
    assert doc == {"metadata": {"labels": {"a": "1"}}, "items": [{"n": 1}, [2, None, True, 1.5]]}
    odd = {"t": ({"x": 1},)}  # not JSON: still a deep copy
    assert clone(odd)["t"][0] is not odd["t"][0]
