"""One assertion, two API servers: the sandbox's own and the real kube-apiserver answer the
calls secretops makes alike (through the official Python client), so the sandbox's API server
cannot drift from the real one where secretops depends on it: conflicts and Status bodies,
merge patches that remove with null, selectors, access reviews, and a Deployment's restart."""

from __future__ import annotations

import base64
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config
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
