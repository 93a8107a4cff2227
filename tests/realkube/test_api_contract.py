"""One assertion, two API servers: the sandbox's own and the real kube-apiserver answer the
calls secretops makes alike (through the official Python client), so the sandbox's API server
cannot drift from the real one where secretops depends on it: conflicts and Status bodies,
merge patches that remove with null, selectors, access reviews, and a Deployment's restart."""

from __future__ import annotations

import base64
import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes import watch
from kubernetes.client.rest import ApiException

from sandbox.kubectl import kubectl_path
from tests.sandbox.kube_fixture import kube_world


@pytest.fixture(params=["sandbox", "real"])
def api(request: pytest.FixtureRequest) -> Iterator[k8s.ApiClient]:
    """An admin's client of either API server, with a namespace of its own for the test."""
    if request.param == "sandbox":
        kubeconfig, context = str(kube_world().kubeconfig), "sandbox"
    else:
        sandbox: dict[str, Any] = request.getfixturevalue("sandbox")
        kubeconfig, context = sandbox["kubeconfig"], "emergency-admin"
    client = k8s_config.new_client_from_config(kubeconfig, context=context)
    client.kubectl = [kubectl_path(), "--kubeconfig", kubeconfig,  # type: ignore[attr-defined]
                      "--context", context]
    namespace = f"contract-{uuid.uuid4().hex[:6]}"
    k8s.CoreV1Api(client).create_namespace(
        k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=namespace)))
    client.namespace = namespace  # type: ignore[attr-defined]
    yield client
    k8s.CoreV1Api(client).delete_namespace(namespace)


def _secret(name: str, **data: str) -> k8s.V1Secret:
    return k8s.V1Secret(metadata=k8s.V1ObjectMeta(name=name, labels={"app": "contract"}),
                        data={k: base64.b64encode(v.encode()).decode() for k, v in data.items()})


def test_a_stale_write_is_a_409_conflict_and_a_missing_secret_a_404_status(
        api: k8s.ApiClient) -> None:
    core, ns = k8s.CoreV1Api(api), api.namespace  # type: ignore[attr-defined]
    created = core.create_namespaced_secret(ns, _secret("s", key="one"))
    core.patch_namespaced_secret("s", ns, {"data": {"key": base64.b64encode(b"two").decode()}})
    with pytest.raises(ApiException) as stale:
        core.replace_namespaced_secret("s", ns, created)  # its resourceVersion is old
    assert stale.value.status == 409
    assert '"reason":"Conflict"' in stale.value.body.replace(" ", "")
    with pytest.raises(ApiException) as missing:
        core.read_namespaced_secret("nosuch", ns)
    assert missing.value.status == 404
    body = missing.value.body.replace(" ", "")
    assert '"kind":"Status"' in body and '"reason":"NotFound"' in body
    assert '"name":"nosuch"' in body


def test_a_merge_patch_removes_with_null(api: k8s.ApiClient) -> None:
    core, ns = k8s.CoreV1Api(api), api.namespace  # type: ignore[attr-defined]
    core.create_namespaced_secret(ns, _secret("m", keep="a", drop="b"))
    core.patch_namespaced_secret("m", ns, {"metadata": {"annotations": {"x": "1", "y": "2"}}})
    patched = core.patch_namespaced_secret(
        "m", ns, {"metadata": {"annotations": {"x": None}}, "data": {"drop": None}})
    assert patched.metadata.annotations == {"y": "2"}
    assert set(patched.data) == {"keep"}


def test_label_selectors_list_only_what_they_match(api: k8s.ApiClient) -> None:
    core, ns = k8s.CoreV1Api(api), api.namespace  # type: ignore[attr-defined]
    core.create_namespaced_secret(ns, _secret("labelled", k="v"))
    other = _secret("other", k="v")
    other.metadata.labels = {"app": "else"}
    core.create_namespaced_secret(ns, other)
    names = {s.metadata.name for s in
             core.list_namespaced_secret(ns, label_selector="app=contract").items}
    assert names == {"labelled"}
    names = {s.metadata.name for s in
             core.list_namespaced_secret(ns, label_selector="app!=contract").items}
    assert "other" in names and "labelled" not in names


def test_an_access_review_answers_for_the_caller(api: k8s.ApiClient) -> None:
    ns = api.namespace  # type: ignore[attr-defined]
    review = k8s.AuthorizationV1Api(api).create_self_subject_access_review(
        k8s.V1SelfSubjectAccessReview(spec=k8s.V1SelfSubjectAccessReviewSpec(
            resource_attributes=k8s.V1ResourceAttributes(
                namespace=ns, verb="get", resource="secrets"))))
    assert review.status.allowed is True
    can_i = subprocess.run([*api.kubectl, "auth", "can-i", "patch",  # type: ignore[attr-defined]
                            "deployments", "-n", ns], capture_output=True, text=True, timeout=60)
    assert (can_i.returncode, can_i.stdout.strip()) == (0, "yes"), can_i.stderr


def test_a_restart_patch_makes_a_new_generation(api: k8s.ApiClient) -> None:
    apps, ns = k8s.AppsV1Api(api), api.namespace  # type: ignore[attr-defined]
    labels = {"app": "contract"}
    container = k8s.V1Container(name="c", image="example.invalid/contract:1")
    apps.create_namespaced_deployment(ns, k8s.V1Deployment(
        metadata=k8s.V1ObjectMeta(name="d"),
        spec=k8s.V1DeploymentSpec(
            replicas=0, selector=k8s.V1LabelSelector(match_labels=labels),
            template=k8s.V1PodTemplateSpec(metadata=k8s.V1ObjectMeta(labels=labels),
                                           spec=k8s.V1PodSpec(containers=[container])))))
    before = apps.read_namespaced_deployment("d", ns).metadata.generation
    stamp = {"kubectl.kubernetes.io/restartedAt": "2026-12-07T00:00:00Z"}
    restarted = apps.patch_namespaced_deployment(
        "d", ns, {"spec": {"template": {"metadata": {"annotations": stamp}}}})
    assert restarted.metadata.generation == before + 1
    assert restarted.spec.template.metadata.annotations == stamp
    assert restarted.spec.template.spec.containers[0].image == "example.invalid/contract:1"


def _kubectl(api: k8s.ApiClient, *args: str, check: bool = True
             ) -> subprocess.CompletedProcess[str]:
    """``kubectl ARGS -n NAMESPACE`` as the test's admin; with ``check``, it must succeed."""
    done = subprocess.run([*api.kubectl, *args, "-n", api.namespace],  # type: ignore[attr-defined]
                          capture_output=True, text=True, timeout=60)
    assert not check or done.returncode == 0, done.stderr
    return done


def test_a_missing_object_is_a_404_status_naming_its_kind_and_name(api: k8s.ApiClient) -> None:
    """The whole Status body of a missing Secret, and the group in a Deployment's message."""
    ns = api.namespace  # type: ignore[attr-defined]
    with pytest.raises(ApiException) as missing:
        k8s.CoreV1Api(api).read_namespaced_secret("nope", ns)
    assert missing.value.status == 404
    assert json.loads(missing.value.body) == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": 'secrets "nope" not found', "reason": "NotFound",
        "details": {"name": "nope", "kind": "secrets"}, "code": 404}
    with pytest.raises(ApiException) as deployment:
        k8s.AppsV1Api(api).read_namespaced_deployment("nope", ns)
    assert deployment.value.status == 404
    assert json.loads(deployment.value.body)["message"] == 'deployments.apps "nope" not found'


def test_a_server_side_dry_run_shows_the_change_and_stores_nothing(api: k8s.ApiClient) -> None:
    """``--dry-run=server`` patch, delete and create: the answer shows the change, the stored
    Secret and its resourceVersion stay as they were, and errors are still errors."""
    core, ns = k8s.CoreV1Api(api), api.namespace  # type: ignore[attr-defined]
    core.create_namespaced_secret(ns, _secret("dry", openai="sk-before"))
    before = core.read_namespaced_secret("dry", ns)
    shown = json.loads(_kubectl(api, "patch", "secret", "dry", "-p",
                                '{"stringData": {"openai": "sk-after"}}', "--dry-run=server",
                                "-o", "json").stdout)
    assert base64.b64decode(shown["data"]["openai"]) == b"sk-after"
    _kubectl(api, "delete", "secret", "dry", "--dry-run=server")
    _kubectl(api, "create", "secret", "generic", "dry-new", "--from-literal=a=b",
             "--dry-run=server")
    after = core.read_namespaced_secret("dry", ns)
    assert after.data == before.data
    assert after.metadata.resource_version == before.metadata.resource_version
    with pytest.raises(ApiException) as missing:
        core.read_namespaced_secret("dry-new", ns)
    assert missing.value.status == 404
    again = _kubectl(api, "create", "secret", "generic", "dry", "--from-literal=a=b",
                     "--dry-run=server", check=False)
    assert again.returncode != 0 and "already exists" in again.stderr


def test_a_stale_resource_version_conflicts_on_replace_and_on_patch(api: k8s.ApiClient) -> None:
    """A replace or a patch carrying an old resourceVersion is a 409 Conflict with the
    server's own message, and the stored value is the newer one."""
    core, ns = k8s.CoreV1Api(api), api.namespace  # type: ignore[attr-defined]
    made = core.create_namespaced_secret(ns, _secret("conflict", k="one"))
    stale = made.metadata.resource_version
    made.data = {"k": base64.b64encode(b"two").decode()}
    updated = core.replace_namespaced_secret("conflict", ns, made)
    assert int(updated.metadata.resource_version) > int(stale)
    made.metadata.resource_version = stale
    with pytest.raises(ApiException) as replaced:
        core.replace_namespaced_secret("conflict", ns, made)
    body = json.loads(replaced.value.body)
    assert replaced.value.status == 409 and body["reason"] == "Conflict"
    assert body["message"] == (
        'Operation cannot be fulfilled on secrets "conflict": the object has been modified; '
        "please apply your changes to the latest version and try again")
    with pytest.raises(ApiException) as patched:
        core.patch_namespaced_secret("conflict", ns, {
            "metadata": {"resourceVersion": stale}, "data": {"k": "eA=="}})
    assert patched.value.status == 409
    assert base64.b64decode(core.read_namespaced_secret("conflict", ns).data["k"]) == b"two"


def test_kubectl_patch_types_strategic_merge_and_json(api: k8s.ApiClient) -> None:
    """Strategic merge merges a container's env by name (a new generation); merge and json
    patches change metadata only; a failed json ``test`` op is refused and changes nothing."""
    apps, ns = k8s.AppsV1Api(api), api.namespace  # type: ignore[attr-defined]
    apps.create_namespaced_deployment(ns, {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "patchme"},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "patchme"}},
                 "template": {"metadata": {"labels": {"app": "patchme"}}, "spec": {
                     "containers": [{"name": "c", "image": "example.invalid/c:1", "env": [
                         {"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}]}}}})
    gen = apps.read_namespaced_deployment("patchme", ns).metadata.generation
    _kubectl(api, "patch", "deployment", "patchme", "--type", "strategic", "-p", json.dumps(
        {"spec": {"template": {"spec": {"containers": [
            {"name": "c", "env": [{"name": "B", "value": "3"}, {"name": "C", "value": "4"}]}]}}}}))
    dep = apps.read_namespaced_deployment("patchme", ns)
    assert {e.name: e.value for e in dep.spec.template.spec.containers[0].env} == {
        "A": "1", "B": "3", "C": "4"}
    assert dep.metadata.generation == gen + 1
    _kubectl(api, "patch", "deployment", "patchme", "--type", "merge", "-p",
             '{"metadata": {"labels": {"team": "x"}}}')
    _kubectl(api, "patch", "deployment", "patchme", "--type", "json", "-p",
             '[{"op": "test", "path": "/metadata/labels/team", "value": "x"},'
             ' {"op": "replace", "path": "/spec/replicas", "value": 0}]')
    failed = _kubectl(api, "patch", "deployment", "patchme", "--type", "json", "-p",
                      '[{"op": "test", "path": "/spec/replicas", "value": 5}]', check=False)
    # a 422 Invalid whose message does not name the failed op
    assert failed.returncode != 0 and failed.stderr.strip() == (
        "The request is invalid: the server rejected our request due to an error in our "
        "request")
    dep = apps.read_namespaced_deployment("patchme", ns)
    assert dep.metadata.labels == {"team": "x"} and dep.metadata.generation == gen + 1


def test_set_based_label_and_field_selectors_on_secrets(api: k8s.ApiClient) -> None:
    """Equality, set-based and existence label selectors, and metadata.name field selectors,
    alone and together, on a Secrets list."""
    core, ns = k8s.CoreV1Api(api), api.namespace  # type: ignore[attr-defined]
    for name, tier in (("sel-a", "web"), ("sel-b", "db"), ("sel-c", None)):
        secret = _secret(name, k="v")
        secret.metadata.labels = {"group": "sel", **({"tier": tier} if tier else {})}
        core.create_namespaced_secret(ns, secret)

    def names(**selectors: str) -> set[str]:
        return {s.metadata.name for s in core.list_namespaced_secret(ns, **selectors).items}

    assert names(label_selector="tier=web") == {"sel-a"}
    assert names(label_selector="group==sel,tier!=web") == {"sel-b", "sel-c"}
    assert names(label_selector="tier in (web,db)") == {"sel-a", "sel-b"}
    assert names(label_selector="group,tier notin (web)") == {"sel-b", "sel-c"}
    assert names(label_selector="group,!tier") == {"sel-c"}
    assert names(field_selector="metadata.name=sel-b") == {"sel-b"}
    assert names(label_selector="group", field_selector="metadata.name!=sel-b") == {
        "sel-a", "sel-c"}


def test_a_watch_with_timeout_seconds_lists_what_exists_then_ends(api: k8s.ApiClient) -> None:
    """A watch from no resourceVersion starts with an ADDED event for each Secret there is,
    and with ``timeout_seconds`` the server ends it cleanly, on time."""
    core, ns = k8s.CoreV1Api(api), api.namespace  # type: ignore[attr-defined]
    for name in ("first", "second"):
        core.create_namespaced_secret(ns, _secret(name, k="v"))
    started = time.monotonic()
    events = list(watch.Watch().stream(core.list_namespaced_secret, ns, timeout_seconds=1))
    assert time.monotonic() - started < 10
    assert sorted((e["type"], e["object"].metadata.name) for e in events) == [
        ("ADDED", "first"), ("ADDED", "second")]


def test_an_unknown_dry_run_value_is_a_422_on_the_writes_options(api: k8s.ApiClient) -> None:
    """``dryRun`` takes only ``All``: another value is refused on the DeleteOptions, with the
    field's cause, and nothing is deleted."""
    core, ns = k8s.CoreV1Api(api), api.namespace  # type: ignore[attr-defined]
    core.create_namespaced_secret(ns, _secret("dry-wrong", k="v"))
    with pytest.raises(ApiException) as refused:
        core.delete_namespaced_secret("dry-wrong", ns, dry_run="Yes")
    unsupported = 'Unsupported value: ["Yes"]: supported values: "All"'
    body = json.loads(refused.value.body)
    assert (refused.value.status, body["reason"]) == (422, "Invalid")
    assert body["message"] == f'DeleteOptions.meta.k8s.io "" is invalid: dryRun: {unsupported}'
    assert body["details"] == {"group": "meta.k8s.io", "kind": "DeleteOptions", "causes": [
        {"reason": "FieldValueNotSupported", "message": unsupported, "field": "dryRun"}]}
    assert core.read_namespaced_secret("dry-wrong", ns).data == {"k": "dg=="}
