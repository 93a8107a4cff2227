"""The inventory: the shipped file loads, helpers answer the flows' questions, and every bad
inventory under tests/inventories/ is refused with one clear line naming file, field and
problem (the expected line is the file's first comment)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from secretops.credentials import CredentialError, resolve_credential
from secretops.errors import InventoryError
from secretops.inventory import (
    AwsSecretStoreSpec,
    DockerSecretStoreSpec,
    DotenvStoreSpec,
    KubernetesSecretStoreSpec,
    inventory_path,
    load_inventory,
)
from secretops.models import DbStrategy, Environment, SecretValue

HERE = Path(__file__).parent
ROOT = HERE.parent
BAD = sorted(p for p in (HERE / "inventories").glob("*.yaml") if p.name != "valid.yaml")


def test_shipped_inventory_loads() -> None:
    inv = load_inventory(ROOT / "inventory.yaml")
    assert inv.secret_ids() == ["openai", "anthropic", "db-password", "ci-aws-key"]
    assert inv.environments_of("openai") == [
        Environment.development,
        Environment.staging,
        Environment.production,
    ]
    assert inv.namespace("production") == "intelliprompt"
    assert inv.namespace(Environment.staging) == "intelliprompt-staging"
    assert inv.role_for("db-password", "production") == "intelliprompt"
    assert inv.strategy_for("db-password", "production") is DbStrategy.alternating
    assert inv.strategy_for("db-password", "staging") is DbStrategy.single
    assert inv.login_roles("db-password", "production") == ["intelliprompt_a", "intelliprompt_b"]
    assert inv.login_roles("db-password", "development") == ["intelliprompt"]
    assert inv.password_policy("db-password").length == 40
    (backend,) = inv.consumers_of("openai")
    assert (backend.deployment, backend.verify_log) == ("backend", "API initialized")
    assert inv.external_secret_target("production", "intelliprompt-db") == "db-credentials"
    assert inv.namespace("development") is None
    assert inv.allowed_groups("production") == ["devops"]
    assert inv.provider_settings("openai").admin_credential == "openai-admin"
    # the CI key: a third provider's, in staging and production only
    assert inv.environments_of("ci-aws-key") == [Environment.staging, Environment.production]
    assert inv.provider_of("ci-aws-key").name == "aws_iam"
    assert inv.provider_settings("ci-aws-key").users[Environment.production] == "intelliprompt-ci"
    (runner,) = inv.consumers_of("ci-aws-key")
    assert (runner.deployment, runner.verify_log) == ("ci-runner", "CI runner ready")
    assert inv.postgres("production").database == "intelliprompt"
    assert inv.source == (ROOT / "inventory.yaml").absolute()

    (aws,) = inv.stores("openai", "production")
    assert isinstance(aws, AwsSecretStoreSpec)
    assert aws.secret_id == "prod/intelliprompt/openai"
    assert aws.external_secret == "intelliprompt-secrets"
    (kube,) = inv.stores("db-password", "staging")
    assert isinstance(kube, KubernetesSecretStoreSpec)
    assert (kube.name, kube.key, kube.username_key) == ("db-credentials", "password", "username")


def test_relative_paths_resolve_against_the_inventory_folder(tmp_path: Path) -> None:
    text = (HERE / "inventories" / "valid.yaml").read_text()
    text = text.replace("version: 1", "version: 1\nkubernetes: {kubeconfig: kube/config}")
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "inventory.yaml").write_text(text)
    inv = load_inventory(str(folder / "inventory.yaml"))
    dotenv, docker = inv.stores("db-password", "development")
    assert isinstance(dotenv, DotenvStoreSpec) and isinstance(docker, DockerSecretStoreSpec)
    assert dotenv.file == folder / ".env"
    assert dotenv.url_keys == ["DATABASE_URL"]
    assert docker.file == folder / "secrets" / "db_password.txt"
    assert inv.kubernetes.kubeconfig == folder / "kube" / "config"
    assert inv.credential("postgres-admin").file == folder / "credentials" / "postgres-admin"
    assert inv.environment("development").dotenv == folder / ".env"


def test_unknown_names_are_operator_errors() -> None:
    inv = load_inventory(ROOT / "inventory.yaml")
    with pytest.raises(InventoryError, match=r"unknown secret 'redis' \(known: openai, "):
        inv.secret("redis")
    with pytest.raises(InventoryError, match="unknown environment 'qa'"):
        inv.stores("openai", "qa")
    with pytest.raises(InventoryError, match="not a postgres_password"):
        inv.role_for("openai", "production")
    with pytest.raises(InventoryError, match="ExternalSecret 'nope' is not declared"):
        inv.external_secret_target("production", "nope")


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_bad_inventory_is_refused_with_one_clear_line(path: Path) -> None:
    expected = path.read_text().splitlines()[0].removeprefix("# expect: ")
    with pytest.raises(InventoryError) as caught:
        load_inventory(path)
    message = str(caught.value)
    assert message == f"{path}: {expected}"
    assert "pydantic" not in message and "Traceback" not in message


def test_there_are_enough_bad_inventories() -> None:
    assert len(BAD) >= 20


def test_missing_file() -> None:
    with pytest.raises(InventoryError, match=r"nope\.yaml: file not found"):
        load_inventory("nope.yaml")


def test_several_problems_are_each_reported(tmp_path: Path) -> None:
    text = (HERE / "inventories" / "valid.yaml").read_text()
    text = text.replace("timezone: UTC", "timezone: Nowhere").replace("{length: 40}", "{length: 8}")
    path = tmp_path / "inventory.yaml"
    path.write_text(text)
    with pytest.raises(InventoryError) as caught:
        load_inventory(path)
    assert str(caught.value).splitlines() == [
        f"{path}: secrets[0].schedule.timezone: unknown timezone 'Nowhere'",
        f"{path}: secrets[1].password_policy.length: password length 8 is below the minimum of 32",
    ]


def test_inventory_path_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SECRETOPS_INVENTORY", raising=False)
    assert inventory_path(None) == Path("inventory.yaml")
    monkeypatch.setenv("SECRETOPS_INVENTORY", "/etc/secretops/inventory.yaml")
    assert inventory_path(None) == Path("/etc/secretops/inventory.yaml")
    assert inventory_path("other.yaml") == Path("other.yaml")


def _inventory_with_credentials(tmp_path: Path, credentials: str) -> Path:
    text = (HERE / "inventories" / "valid.yaml").read_text()
    start = text.index("credentials:")
    end = text.index("providers:")
    path = tmp_path / "inventory.yaml"
    path.write_text(text[:start] + credentials + text[end:])
    return path


def test_resolve_credential_from_env_and_file(tmp_path: Path) -> None:
    path = _inventory_with_credentials(
        tmp_path,
        "credentials:\n"
        "  openai-admin: {env: SECRETOPS_TEST_OPENAI_ADMIN}\n"
        "  postgres-admin: {file: creds/pg}\n",
    )
    inv = load_inventory(path)
    (tmp_path / "creds").mkdir()
    secret_file = tmp_path / "creds" / "pg"
    secret_file.write_text("pg-admin-password-0123\n")
    secret_file.chmod(0o600)
    os.environ["SECRETOPS_TEST_OPENAI_ADMIN"] = "sk-admin-test-value-0123"
    try:
        assert resolve_credential(inv, "openai-admin") == SecretValue("sk-admin-test-value-0123")
    finally:
        del os.environ["SECRETOPS_TEST_OPENAI_ADMIN"]
    assert resolve_credential(inv, "postgres-admin") == SecretValue("pg-admin-password-0123")

    with pytest.raises(CredentialError) as caught:
        resolve_credential(inv, "openai-admin")
    assert str(caught.value) == (
        "credential 'openai-admin' (environment variable SECRETOPS_TEST_OPENAI_ADMIN): "
        "the variable is not set or empty"
    )
    secret_file.chmod(0o644)
    with pytest.raises(CredentialError) as caught:
        resolve_credential(inv, "postgres-admin")
    assert "mode 0644" in str(caught.value)
    assert "pg-admin-password-0123" not in str(caught.value)
    secret_file.unlink()
    with pytest.raises(CredentialError, match=r"file .*creds/pg\): the file does not exist"):
        resolve_credential(inv, "postgres-admin")
    with pytest.raises(InventoryError, match="credential 'nope' is not defined"):
        resolve_credential(inv, "nope")


def test_resolve_credential_from_a_prefect_block(tmp_path: Path, prefect_server: object) -> None:
    from prefect.blocks.system import Secret

    path = _inventory_with_credentials(
        tmp_path,
        "credentials:\n"
        "  openai-admin: {block: secretops-test-openai-admin}\n"
        "  postgres-admin: {block: secretops-test-missing}\n",
    )
    inv = load_inventory(path)
    Secret(value="sk-admin-from-block-0123").save("secretops-test-openai-admin", overwrite=True)
    assert resolve_credential(inv, "openai-admin") == SecretValue("sk-admin-from-block-0123")
    with pytest.raises(CredentialError) as caught:
        resolve_credential(inv, "postgres-admin")
    assert str(caught.value) == (
        "credential 'postgres-admin' (Prefect Secret block 'secretops-test-missing'): no such block"
    )
