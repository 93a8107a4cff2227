"""KubernetesSecretStore against the sandbox API server; the world is checked with kubectl."""

from __future__ import annotations

import base64
import json
import threading
import uuid
from collections.abc import Callable

import pytest

from secretops.adapters.kube import KubeCluster
from secretops.adapters.kube_store import KubernetesSecretStore
from secretops.errors import PendingConflict
from secretops.models import Credential, SecretValue, Stage
from tests.adapters.kube_world import KubeWorld

NS = "intelliprompt-staging"


def _make_secret(kube: KubeWorld, values: dict[str, str]) -> str:
    name = f"t-{uuid.uuid4().hex[:8]}"
    kube.sandbox.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "Opaque",
            "metadata": {"name": name, "namespace": NS},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in values.items()},
        }
    )
    return name


def _data(kubectl_in: Callable[..., str], name: str) -> dict[str, str]:
    secret = json.loads(kubectl_in("get", "secret", name, "-n", NS, "-o", "json"))
    return {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}


def _labels(kubectl_in: Callable[..., str], name: str) -> dict[str, str]:
    secret = json.loads(kubectl_in("get", "secret", name, "-n", NS, "-o", "json"))
    return dict(secret["metadata"].get("labels") or {})


def test_full_rotation_with_username(
    kube: KubeWorld, cluster: KubeCluster, kubectl_in: Callable[..., str]
) -> None:
    name = _make_secret(kube, {"username": "app_a", "password": "old-password-0001"})
    store = KubernetesSecretStore(cluster, NS, name, "password", "username")
    assert store.name == f"k8s:{NS}/{name}#password"
    assert store.read() == Credential(SecretValue("old-password-0001"), "app_a")
    assert store.read(Stage.pending) is None

    new = Credential(SecretValue("new-password-0002"), "app_b")
    staged = store.stage_pending(new)
    assert store.stage_pending(new) == staged
    with pytest.raises(PendingConflict):
        store.stage_pending(Credential(SecretValue("other-password-03"), "app_b"))
    assert _data(kubectl_in, f"{name}-secretops-pending") == {
        "password": "new-password-0002",
        "username": "app_b",
    }
    assert _labels(kubectl_in, f"{name}-secretops-pending") == {
        "app.kubernetes.io/managed-by": "secretops"
    }

    promoted = store.promote_pending()
    assert promoted.fingerprint == SecretValue("new-password-0002").fingerprint()
    assert _data(kubectl_in, name) == {"password": "new-password-0002", "username": "app_b"}
    assert _data(kubectl_in, f"{name}-secretops-previous") == {
        "password": "old-password-0001",
        "username": "app_a",
    }
    assert store.read(Stage.pending) == new  # until the rotation finishes
    assert store.promote_pending() == promoted

    store.restore_previous(new)
    assert _data(kubectl_in, name) == {"password": "old-password-0001", "username": "app_a"}
    assert store.restore_previous(new).username == "app_a"
    store.clear_pending()
    assert _data(kubectl_in, f"{name}-secretops-pending") == {}


def test_stores_of_one_secret_share_the_companions(
    kube: KubeWorld, cluster: KubeCluster, kubectl_in: Callable[..., str]
) -> None:
    name = _make_secret(kube, {"openai": "sk-openai-old-01", "anthropic": "sk-ant-old-0001"})
    openai = KubernetesSecretStore(cluster, NS, name, "openai")
    anthropic = KubernetesSecretStore(cluster, NS, name, "anthropic")
    openai.stage_pending(Credential(SecretValue("sk-openai-new-02")))
    anthropic.stage_pending(Credential(SecretValue("sk-ant-new-00002")))
    openai.promote_pending()
    openai.clear_pending()
    assert _data(kubectl_in, name) == {"openai": "sk-openai-new-02", "anthropic": "sk-ant-old-0001"}
    assert _data(kubectl_in, f"{name}-secretops-pending") == {"anthropic": "sk-ant-new-00002"}
    anthropic.clear_pending()
    anthropic.clear_pending()
    assert anthropic.read(Stage.pending) is None
    assert _data(kubectl_in, name)["anthropic"] == "sk-ant-old-0001"


def test_promotion_resumes_after_a_crash(
    kube: KubeWorld, cluster: KubeCluster, kubectl_in: Callable[..., str]
) -> None:
    name = _make_secret(kube, {"openai": "sk-openai-old-01"})
    store = KubernetesSecretStore(cluster, NS, name, "openai")
    store.stage_pending(Credential(SecretValue("sk-openai-new-02")))
    # the run died after writing PREVIOUS, before (or while) writing the target
    previous = base64.b64encode(b"sk-openai-old-01").decode()
    current = base64.b64encode(b"sk-openai-new-02").decode()
    kube.sandbox.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": f"{name}-secretops-previous", "namespace": NS},
            "data": {"openai": previous},
        }
    )
    kubectl_in("patch", "secret", name, "-n", NS, "-p", json.dumps({"data": {"openai": current}}))

    store.promote_pending()
    assert _data(kubectl_in, name) == {"openai": "sk-openai-new-02"}
    assert _data(kubectl_in, f"{name}-secretops-previous") == {"openai": "sk-openai-old-01"}
    store.clear_pending()
    assert store.read(Stage.pending) is None


def test_update_redone_after_a_concurrent_write(
    kube: KubeWorld, cluster: KubeCluster, kubectl_in: Callable[..., str]
) -> None:
    name = _make_secret(kube, {"a": "first-value-01", "b": "first-value-02"})
    calls: list[int] = []

    def change(current: dict[str, SecretValue]) -> dict[str, SecretValue | None]:
        if not calls:  # someone else writes between our read and our patch
            patch = {"data": {"b": base64.b64encode(b"their-value-02").decode()}}
            kubectl_in("patch", "secret", name, "-n", NS, "-p", json.dumps(patch))
        calls.append(1)
        return {"a": SecretValue("our-value-0001")}

    cluster.update_secret(NS, name, change)
    assert len(calls) == 2
    assert _data(kubectl_in, name) == {"a": "our-value-0001", "b": "their-value-02"}


def test_parallel_stores_never_lose_a_write(kube: KubeWorld, cluster: KubeCluster) -> None:
    name = _make_secret(kube, {"seed": "seed-value-0001"})
    keys = [f"k{n}" for n in range(6)]
    stores = [KubernetesSecretStore(cluster, NS, name, key) for key in keys]
    threads = [
        threading.Thread(target=s.stage_pending, args=(Credential(SecretValue(f"value-{k}-xx")),))
        for s, k in zip(stores, keys, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    pending = cluster.read_secret(NS, f"{name}-secretops-pending") or {}
    assert {k: v.reveal() for k, v in pending.items()} == {k: f"value-{k}-xx" for k in keys}


def test_writes_survive_injected_conflicts(
    kube: KubeWorld, cluster: KubeCluster, kubectl_in: Callable[..., str]
) -> None:
    name = _make_secret(kube, {"openai": "sk-openai-old-01"})
    store = KubernetesSecretStore(cluster, NS, name, "openai")
    kube.faults.set("kubernetes", conflict_rate=0.5)
    try:
        store.stage_pending(Credential(SecretValue("sk-openai-new-02")))
        store.promote_pending()
    finally:
        kube.faults.reset("kubernetes")
    assert _data(kubectl_in, name) == {"openai": "sk-openai-new-02"}
    assert _data(kubectl_in, f"{name}-secretops-previous") == {"openai": "sk-openai-old-01"}


def test_unavailable_api_is_retryable(kube: KubeWorld, cluster: KubeCluster) -> None:
    from secretops.adapters.kube_api import KubeUnavailable
    from secretops.adapters.retry import is_transient

    kube.faults.set("kubernetes", error_rate=1.0, codes=[503])
    try:
        with pytest.raises(KubeUnavailable) as failure:
            cluster.read_secret(NS, "anything")
    finally:
        kube.faults.reset("kubernetes")
    assert is_transient(failure.value)
    assert (
        str(failure.value)
        == f"Kubernetes get secret {NS}/anything failed: HTTP 503 ServiceUnavailable"
    )


def test_a_rotation_asks_the_api_server_no_more_than_it_needs(
    kube: KubeWorld, cluster: KubeCluster, kubectl_in: Callable[..., str]
) -> None:
    """From the API server's audit log: a companion Secret is created with its value (and
    the key's id) in one request, a Secret just read is written without being read again,
    and a write that does not depend on what a Secret held is one patch; the id moves to
    the Secret in the patch that makes the value current."""
    name = _make_secret(kube, {"openai": "sk-old-value-000001"})
    store = KubernetesSecretStore(cluster, NS, name, "openai")
    pending, previous = f"{name}-secretops-pending", f"{name}-secretops-previous"

    def rotation(value: SecretValue, key_id: str) -> list[tuple[str, str]]:
        before = len(kube.audit_log.read_text().splitlines())
        store.stage_pending(Credential(value, key_id=key_id))
        store.promote_pending()
        store.clear_pending()
        lines = kube.audit_log.read_text().splitlines()[before:]
        return [(e["verb"], e["requestURI"].split("?")[0].rsplit("/", 1)[-1])
                for e in map(json.loads, lines) if e["stage"] == "ResponseComplete"]

    first = rotation(SecretValue("sk-first-value-00003"), "key_first")
    assert first == [("get", pending), ("create", "secrets"),  # stage_pending
                     ("get", pending), ("get", name),  # promote_pending: what is there
                     ("patch", previous), ("create", "secrets"),  # the old value kept
                     ("patch", name),  # the new value current, with its id
                     ("patch", pending)]  # clear_pending
    new = SecretValue("sk-new-value-000002")
    assert rotation(new, "key_new") == [
        ("get", pending), ("patch", pending),  # stage_pending, the companion there now
        ("get", pending), ("get", name), ("patch", previous), ("patch", name),
        ("patch", pending)]
    assert _data(kubectl_in, name) == {"openai": "sk-new-value-000002"}
    assert _data(kubectl_in, previous) == {"openai": "sk-first-value-00003"}
    assert _data(kubectl_in, pending) == {}
    assert store.key_ids() == {new.fingerprint(): "key_new",  # the old value has no id
                               SecretValue("sk-first-value-00003").fingerprint(): "key_first"}
    companion = json.loads(kubectl_in("get", "secret", pending, "-n", NS, "-o", "json"))
    assert "secretops.io/key-ids.openai" not in (companion["metadata"].get("annotations")
                                                 or {})
