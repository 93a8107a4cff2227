"""Keys known by id: every store records the provider's key id with the value secretops
staged, keeps it through promotion and rollback, never lends it to a value edited by hand,
and drops it once no stage holds the value; revocation and the orphan sweep find a key by
that id even when the provider's listing shows a redacted form nothing can read. Real
servers: moto, the sandbox's Kubernetes API server, the OpenAI emulator, and files."""

from __future__ import annotations

import base64
import dataclasses
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sandbox.openai_api import OpenAIState
from secretops.adapters.aws import AwsSecretStore
from secretops.adapters.files import DockerSecretStore, DotenvStore
from secretops.adapters.kube import KubeCluster
from secretops.adapters.kube_store import KubernetesSecretStore
from secretops.adapters.openai_admin import OpenAIProvider
from secretops.models import Credential, SecretValue, Stage
from secretops.ports import SecretStore
from tasks.api_keys import _revoke, _revoke_orphans
from tests.adapters.kube_world import KubeWorld

PROJECT = "proj_intelliprompt"
PREFIX = "secretops-intelliprompt-staging-openai-"
FIRST, SECOND, THIRD = (f"sk-svcacct-{n}-{'x' * 30}" for n in ("first", "second", "third"))


def _kube_store(kube: KubeWorld, cluster: KubeCluster) -> SecretStore:
    name = f"t-{uuid.uuid4().hex[:8]}"
    kube.sandbox.apply({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                        "metadata": {"name": name, "namespace": "intelliprompt-staging"},
                        "data": {"openai": base64.b64encode(FIRST.encode()).decode()}})
    return KubernetesSecretStore(cluster, "intelliprompt-staging", name, "openai")


def _aws_store(secretsmanager: Any) -> SecretStore:
    secret_id = f"test/{uuid.uuid4().hex[:10]}"
    secretsmanager.create_secret(Name=secret_id, SecretString=FIRST)
    return AwsSecretStore(secretsmanager, secret_id)


def _dotenv_store(folder: Path) -> SecretStore:
    path = folder / ".env"
    path.write_text(f"OPENAI_API_KEY={FIRST}\nANTHROPIC_API_KEY=sk-ant-other-{'y' * 30}\n")
    return DotenvStore(path, "OPENAI_API_KEY")


def _docker_store(folder: Path) -> SecretStore:
    path = folder / "openai_key.txt"
    path.write_text(FIRST)
    return DockerSecretStore(path)


@pytest.fixture(params=["kubernetes", "aws", "dotenv", "docker"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> SecretStore:
    if request.param == "kubernetes":
        return _kube_store(request.getfixturevalue("kube"), request.getfixturevalue("cluster"))
    if request.param == "aws":
        return _aws_store(request.getfixturevalue("secretsmanager"))
    return (_dotenv_store if request.param == "dotenv" else _docker_store)(tmp_path)


def _rotate(store: SecretStore, value: str, key_id: str) -> None:
    store.stage_pending(Credential(SecretValue(value), key_id=key_id))
    store.promote_pending()
    store.clear_pending()


def fp(value: str) -> str:
    return SecretValue(value, remember=False).fingerprint()


def test_a_store_keeps_the_key_id_of_each_value_it_holds(store: SecretStore) -> None:
    assert store.key_ids() == {}  # the seeded value was not made by secretops
    store.stage_pending(Credential(SecretValue(SECOND), key_id="key_second"))
    assert store.key_ids() == {fp(SECOND): "key_second"}  # recorded with the pending value
    store.promote_pending()
    store.clear_pending()
    assert store.key_ids() == {fp(SECOND): "key_second"}  # current now
    _rotate(store, THIRD, "key_third")
    assert store.key_ids() == {fp(SECOND): "key_second", fp(THIRD): "key_third"}
    failed = store.read(Stage.current)
    assert failed is not None
    store.restore_previous(failed)  # a rollback: SECOND is current again, with its id
    store.clear_pending()
    current = store.read(Stage.current)
    assert current is not None and current.secret.reveal() == SECOND
    assert store.key_ids()[fp(SECOND)] == "key_second"


def test_a_value_edited_by_hand_has_no_key_id_and_stale_ids_go(store: SecretStore) -> None:
    _rotate(store, SECOND, "key_second")
    _rotate(store, THIRD, "key_third")  # FIRST (no id) is gone from every stage
    # a person pastes another key over the current one, as a console or editor would
    store.stage_pending(Credential(SecretValue(FIRST)))
    store.promote_pending()
    store.clear_pending()
    ids = store.key_ids()
    assert fp(FIRST) not in ids  # never inherits the id of the key it replaced
    assert fp(SECOND) not in ids  # held by no stage any more
    assert ids == {fp(THIRD): "key_third"}


Unreadable = Callable[[], list[Any]]


@pytest.fixture()
def unreadable(provider: OpenAIProvider) -> Unreadable:
    """The provider's listing in a redacted form no hint matching can read."""
    return lambda: [dataclasses.replace(key, redacted_value="sk-svcacct-[redacted]")
                    for key in provider.list_keys()]


def test_a_key_known_by_id_is_revoked_though_its_hint_is_unreadable(
    openai_world: tuple[OpenAIState, str], provider: OpenAIProvider, unreadable: Unreadable
) -> None:
    state, _ = openai_world
    key_id, value = state.mint_service_account_key(PROJECT, f"{PREFIX}old")
    old = SecretValue(value)
    ids = {old.fingerprint(): key_id}

    evidence = _revoke(provider, old, "old", unreadable(), ids)

    assert f"old key {key_id}" in evidence and "refuses it" in evidence
    assert key_id not in state.keys and not provider.check_key(old)
    # the same key again (a rerun): its id names a key that no longer exists, and it is refused
    assert "no longer exists" in _revoke(provider, old, "old", unreadable(), ids)


def test_the_orphan_sweep_runs_on_ids_and_spares_every_recorded_key(
    openai_world: tuple[OpenAIState, str], provider: OpenAIProvider, unreadable: Unreadable
) -> None:
    state, _ = openai_world
    live_id, live = state.mint_service_account_key(PROJECT, f"{PREFIX}live")
    previous_id, previous = state.mint_service_account_key(PROJECT, f"{PREFIX}previous")
    orphan_id, _ = state.mint_service_account_key(PROJECT, f"{PREFIX}left-by-a-dead-run")
    held = [SecretValue(live), SecretValue(previous)]
    ids = {held[0].fingerprint(): live_id, held[1].fingerprint(): previous_id}

    evidence = _revoke_orphans(provider, held, PREFIX, unreadable(), ids)

    assert any(orphan_id in line for line in evidence), evidence
    assert orphan_id not in state.keys
    assert live_id in state.keys and previous_id in state.keys
    assert provider.check_key(held[0])
