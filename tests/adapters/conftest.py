"""Real servers for the adapter tests, from the sandbox's own parts: AWS (moto behind the
recording proxy), PostgreSQL, the OpenAI and Anthropic emulators and the Kubernetes API server
with its controllers, each started once per session on 127.0.0.1."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sandbox.anthropic_api import AnthropicState, anthropic_app
from sandbox.aws import (
    ADMIN_ACCESS_KEY_ID,
    ESO_ACCESS_KEY_ID,
    REGION,
    SECRET_ACCESS_KEY,
    AwsSandbox,
)
from sandbox.kube import AwsConfig as KubeAwsConfig
from sandbox.kube import manifests
from sandbox.kubectl import kubectl_path
from sandbox.openai_api import OpenAIState, openai_app
from sandbox.postgres import PostgresInfo, PostgresSandbox
from secretops.adapters.aws import AwsConfig
from secretops.adapters.kube import KubeCluster
from secretops.adapters.openai_admin import OpenAIProvider
from secretops.adapters.postgres import PostgresDatabase
from secretops.models import SecretValue
from tests.adapters.kube_world import KubeWorld, kube_world
from tests.sandbox.asgi_server import serve


@pytest.fixture(scope="session")
def aws_sandbox() -> Iterator[tuple[AwsSandbox, str]]:
    """moto behind the sandbox's proxy, which records CloudTrail and answers LookupEvents."""
    aws = AwsSandbox()
    aws.start()
    with serve(aws.app) as url:
        yield aws, url
    aws.stop()


@pytest.fixture(scope="session")
def aws_config(aws_sandbox: tuple[AwsSandbox, str]) -> AwsConfig:
    _, url = aws_sandbox
    return AwsConfig(
        region=REGION,
        access_key_id=SecretValue(ADMIN_ACCESS_KEY_ID),
        secret_access_key=SecretValue(SECRET_ACCESS_KEY),
        endpoint_url=url,
        cloudtrail_endpoint_url=url,
    )


@pytest.fixture()
def secretsmanager(aws_config: AwsConfig) -> Any:
    return aws_config.secretsmanager()


@pytest.fixture()
def secret_id() -> str:
    return f"test/{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresInfo]:
    """The sandbox's PostgreSQL: scram-sha-256 on 127.0.0.1, log_statement=all."""
    with PostgresSandbox(tmp_path_factory.mktemp("postgres")) as info:
        yield info


@pytest.fixture(scope="session")
def database(pg: PostgresInfo) -> PostgresDatabase:
    return PostgresDatabase(
        pg.host, pg.port, "postgres", pg.admin_user, SecretValue(pg.admin_password)
    )


@pytest.fixture(scope="session")
def openai_world() -> Iterator[tuple[OpenAIState, str]]:
    state = OpenAIState()
    with serve(openai_app(state)) as url:
        yield state, url


@pytest.fixture(scope="session")
def anthropic_world() -> Iterator[tuple[AnthropicState, str]]:
    state = AnthropicState()
    with serve(anthropic_app(state)) as url:
        yield state, url


@pytest.fixture(scope="session")
def kube(tmp_path_factory: pytest.TempPathFactory, aws_config: AwsConfig) -> Iterator[KubeWorld]:
    """The Kubernetes sandbox with IntelliPrompt's namespaces, RBAC and ExternalSecrets; ESO
    reads the AWS fixture's Secrets Manager."""
    sm = aws_config.secretsmanager()
    for name in ("openai", "anthropic"):
        sm.create_secret(Name=f"prod/intelliprompt/{name}", SecretString=f"sk-{name}-seed-0001")
    sm.create_secret(
        Name="prod/intelliprompt/db",
        SecretString=json.dumps({"username": "intelliprompt_a", "password": "db-seed-0001"}),
    )
    eso_aws = KubeAwsConfig(
        endpoint_url=str(aws_config.endpoint_url),
        region=REGION,
        access_key_id=ESO_ACCESS_KEY_ID,
        secret_access_key=SECRET_ACCESS_KEY,
    )
    with kube_world(tmp_path_factory.mktemp("kube"), eso_aws) as world:
        objects = manifests.intelliprompt(refresh_interval="1h",
                                          api_keys=("openai", "anthropic"))
        for obj in objects:
            world.sandbox.apply(obj)
        _wait_for_synced_targets(world, objects)
        yield world


def _wait_for_synced_targets(world: KubeWorld, objects: list[dict[str, Any]]) -> None:
    """Every test starts with the Secrets External Secrets Operator writes already there."""
    targets = [
        (obj["metadata"]["namespace"], obj["spec"]["target"]["name"])
        for obj in objects
        if obj["kind"] == "ExternalSecret"
    ]
    deadline = time.monotonic() + 30
    while missing := [t for t in targets if world.sandbox.store.get("secrets", *t) is None]:
        assert time.monotonic() < deadline, f"ESO never wrote {missing}"
        time.sleep(0.05)


@pytest.fixture(scope="session")
def cluster(kube: KubeWorld) -> Iterator[KubeCluster]:
    environments = {"intelliprompt": "production", "intelliprompt-staging": "staging"}
    built = KubeCluster(
        str(kube.kubeconfig), "sandbox", audit_log=str(kube.audit_log), environments=environments
    )
    yield built
    built.close()


@pytest.fixture()
def kubectl_in(kube: KubeWorld) -> Callable[..., str]:
    """Run the real kubectl against the Kubernetes sandbox; returns its stdout."""

    def run(*args: str, context: str = "sandbox") -> str:
        result = subprocess.run(
            [kubectl_path(), "--kubeconfig", str(kube.kubeconfig), "--context", context, *args],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr}"
        return result.stdout

    return run


@pytest.fixture()
def provider(openai_world: tuple[OpenAIState, str]) -> Iterator[OpenAIProvider]:
    """The OpenAI adapter on the emulator, with a fresh admin key, for project
    ``proj_intelliprompt``."""
    state, url = openai_world
    built = OpenAIProvider(url, SecretValue(state.create_admin_key()), "proj_intelliprompt")
    yield built
    built.close()
