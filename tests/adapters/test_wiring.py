"""Wiring: the inventory (pointed at the test servers, credentials in 0600 files) builds
working adapters of the right kind for every store, provider and database."""

from __future__ import annotations

import base64
from pathlib import Path

import yaml

from sandbox.anthropic_api import AnthropicState
from sandbox.aws import ADMIN_ACCESS_KEY_ID, SECRET_ACCESS_KEY
from sandbox.openai_api import OpenAIState
from sandbox.postgres import PostgresInfo
from secretops.adapters.anthropic_admin import AnthropicProvider
from secretops.adapters.aws import AwsConfig, AwsSecretStore
from secretops.adapters.aws_iam import AwsIamProvider
from secretops.adapters.files import DockerSecretStore, DotenvStore
from secretops.adapters.kube_store import KubernetesSecretStore
from secretops.adapters.openai_admin import OpenAIProvider
from secretops.inventory import load_inventory
from secretops.models import SecretValue
from secretops.wiring import Wiring
from tests.adapters.kube_world import KubeWorld

REPO_INVENTORY = Path(__file__).parents[2] / "inventory.yaml"


def _credential(directory: Path, name: str, value: str) -> dict[str, str]:
    path = directory / "credentials" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(value + "\n")
    path.chmod(0o600)
    return {"file": str(path)}


def test_wiring_builds_working_adapters(
    tmp_path: Path,
    kube: KubeWorld,
    aws_config: AwsConfig,
    pg: PostgresInfo,
    openai_world: tuple[OpenAIState, str],
    anthropic_world: tuple[AnthropicState, str],
) -> None:
    openai_state, openai_url = openai_world
    anthropic_state, anthropic_url = anthropic_world
    data = yaml.safe_load(REPO_INVENTORY.read_text())
    data["credentials"] = {
        "openai-admin": _credential(tmp_path, "openai", openai_state.create_admin_key()),
        "anthropic-admin": _credential(tmp_path, "anthropic", anthropic_state.create_admin_key()),
        "postgres-admin": _credential(tmp_path, "postgres", pg.admin_password),
        "aws-access-key-id": _credential(tmp_path, "aws-id", ADMIN_ACCESS_KEY_ID),
        "aws-secret-access-key": _credential(tmp_path, "aws-key", SECRET_ACCESS_KEY),
        "iam-rotator-access-key-id": _credential(tmp_path, "iam-id", "AKIAROTATOR000000000"),
        "iam-rotator-secret-access-key": _credential(tmp_path, "iam-key", SECRET_ACCESS_KEY),
    }
    data["providers"]["openai"]["base_url"] = openai_url
    data["providers"]["anthropic"]["base_url"] = anthropic_url
    data["aws"].update(
        endpoint_url=aws_config.endpoint_url, cloudtrail_endpoint_url=aws_config.endpoint_url
    )
    data["kubernetes"].update(
        kubeconfig=str(kube.kubeconfig), context="sandbox", audit_log=str(kube.audit_log)
    )
    for environment in data["environments"].values():
        environment["postgres"].update(host=pg.host, port=pg.port, database="postgres")
    path = tmp_path / "inventory.yaml"
    path.write_text(yaml.safe_dump(data))
    (tmp_path / ".env").write_text("OPENAI_API_KEY=sk-dev-value-00001\n")
    kube.sandbox.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "api-keys", "namespace": "intelliprompt-staging"},
            "data": {"openai": base64.b64encode(b"sk-staging-value-01").decode()},
        }
    )
    with Wiring(load_inventory(path)) as wiring:
        _check(wiring, pg)


def _check(wiring: Wiring, pg: PostgresInfo) -> None:

    development = wiring.stores("db-password", "development")
    assert [type(s) for s in development] == [DotenvStore, DockerSecretStore]
    dev_openai = wiring.stores("openai", "development")[0]
    assert dev_openai.read() is not None
    staging = wiring.stores("openai", "staging")
    assert [type(s) for s in staging] == [KubernetesSecretStore]
    current = staging[0].read()
    assert current is not None and current.secret == SecretValue("sk-staging-value-01")
    production = wiring.stores("db-password", "production")
    assert [type(s) for s in production] == [AwsSecretStore]
    assert production[0].name == "aws:prod/intelliprompt/db#password"
    db = production[0].read()
    assert db is not None and db.username == "intelliprompt_a"

    openai = wiring.provider("openai")
    assert isinstance(openai, OpenAIProvider)
    assert wiring.provider("openai_api_key") is openai
    assert isinstance(wiring.provider("anthropic_api_key"), AnthropicProvider)
    assert isinstance(openai.list_keys(), list)
    # a third provider, through its entry point alone (the secret's id names it)
    assert isinstance(wiring.provider("ci-aws-key"), AwsIamProvider)
    assert wiring.provider("aws_iam") is wiring.provider("ci-aws-key")

    assert wiring.database("staging").can_login("postgres", SecretValue(pg.admin_password))
    assert wiring.cluster().read_secret("intelliprompt-staging", "api-keys") is not None
    readers = wiring.aws().secret_readers("prod/intelliprompt/openai")
    assert all(g.environment == "production" for g in readers)
