"""AwsSecretStore against moto's server: labels move the AWS way and the world shows it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from secretops.adapters.aws import AwsSecretStore
from secretops.errors import PendingConflict
from secretops.models import Credential, SecretValue, Stage


def _value(client: Any, secret_id: str, stage: str) -> str:
    return str(client.get_secret_value(SecretId=secret_id, VersionStage=stage)["SecretString"])


def _stages(client: Any, secret_id: str) -> dict[str, list[str]]:
    return dict(client.describe_secret(SecretId=secret_id)["VersionIdsToStages"])


def test_plain_secret_full_rotation(secretsmanager: Any, secret_id: str) -> None:
    secretsmanager.create_secret(Name=secret_id, SecretString="sk-old-value-0001")
    store = AwsSecretStore(secretsmanager, secret_id)
    assert store.read() == Credential(SecretValue("sk-old-value-0001"))
    assert store.read(Stage.pending) is None

    staged = store.stage_pending(Credential(SecretValue("sk-new-value-0002")))
    again = store.stage_pending(Credential(SecretValue("sk-new-value-0002")))
    assert staged.version_id == again.version_id
    assert staged.fingerprint == SecretValue("sk-new-value-0002").fingerprint()
    assert _value(secretsmanager, secret_id, "AWSPENDING") == "sk-new-value-0002"
    assert _value(secretsmanager, secret_id, "AWSCURRENT") == "sk-old-value-0001"
    with pytest.raises(PendingConflict) as conflict:
        store.stage_pending(Credential(SecretValue("sk-other-value-03")))
    assert "sk-other" not in str(conflict.value)

    promoted = store.promote_pending()
    assert promoted.version_id == staged.version_id
    assert _value(secretsmanager, secret_id, "AWSCURRENT") == "sk-new-value-0002"
    assert _value(secretsmanager, secret_id, "AWSPREVIOUS") == "sk-old-value-0001"
    # PENDING stays on the promoted version until the rotation finishes
    assert sorted(_stages(secretsmanager, secret_id)[staged.version_id]) == [
        "AWSCURRENT",
        "AWSPENDING",
    ]
    assert store.promote_pending().version_id == staged.version_id  # idempotent

    failed = store.read(Stage.pending)
    assert failed is not None
    restored = store.restore_previous(failed)
    assert restored.fingerprint == SecretValue("sk-old-value-0001").fingerprint()
    assert _value(secretsmanager, secret_id, "AWSCURRENT") == "sk-old-value-0001"
    assert store.restore_previous(failed).version_id == restored.version_id
    store.clear_pending()
    assert store.read(Stage.pending) is None
    assert not any("AWSPENDING" in s for s in _stages(secretsmanager, secret_id).values())


def test_json_secret_keeps_other_keys_and_username(secretsmanager: Any, secret_id: str) -> None:
    document = {"username": "app_a", "password": "old-password-0001", "host": "db"}
    secretsmanager.create_secret(Name=secret_id, SecretString=json.dumps(document))
    store = AwsSecretStore(secretsmanager, secret_id, "password", "username")
    assert store.name == f"aws:{secret_id}#password"
    current = store.read()
    assert current is not None and current.username == "app_a"

    store.stage_pending(Credential(SecretValue("new-password-0002"), "app_b"))
    store.promote_pending()
    store.clear_pending()
    now = json.loads(_value(secretsmanager, secret_id, "AWSCURRENT"))
    assert now == {"username": "app_b", "password": "new-password-0002", "host": "db"}
    before = json.loads(_value(secretsmanager, secret_id, "AWSPREVIOUS"))
    assert before == document
    version = store.version()
    assert version is not None and version.username == "app_b"


def test_crash_between_label_moves_converges(secretsmanager: Any, secret_id: str) -> None:
    secretsmanager.create_secret(Name=secret_id, SecretString="sk-old-value-0001")
    store = AwsSecretStore(secretsmanager, secret_id)
    staged = store.stage_pending(Credential(SecretValue("sk-new-value-0002")))
    current_id = next(v for v, s in _stages(secretsmanager, secret_id).items() if "AWSCURRENT" in s)
    # the first half of a promotion happened, then the run died
    secretsmanager.update_secret_version_stage(
        SecretId=secret_id,
        VersionStage="AWSCURRENT",
        MoveToVersionId=staged.version_id,
        RemoveFromVersionId=current_id,
    )
    promoted = store.promote_pending()
    assert promoted.version_id == staged.version_id
    assert _value(secretsmanager, secret_id, "AWSCURRENT") == "sk-new-value-0002"
    assert _value(secretsmanager, secret_id, "AWSPREVIOUS") == "sk-old-value-0001"


def test_clear_pending_and_restage(secretsmanager: Any, secret_id: str) -> None:
    secretsmanager.create_secret(Name=secret_id, SecretString="sk-old-value-0001")
    store = AwsSecretStore(secretsmanager, secret_id)
    first = store.stage_pending(Credential(SecretValue("sk-new-value-0002")))
    store.clear_pending()
    store.clear_pending()
    assert store.read(Stage.pending) is None
    assert _value(secretsmanager, secret_id, "AWSCURRENT") == "sk-old-value-0001"
    second = store.stage_pending(Credential(SecretValue("sk-new-value-0002")))
    assert second.version_id == first.version_id
    assert _value(secretsmanager, secret_id, "AWSPENDING") == "sk-new-value-0002"


def test_missing_secret_reads_none(secretsmanager: Any) -> None:
    store = AwsSecretStore(secretsmanager, "test/does-not-exist")
    assert store.read() is None
    assert store.version(Stage.previous) is None
