"""IntelliPrompt's CI credential in the world: the access key of each environment's CI user
in the CI's AWS account (:mod:`sandbox.iam`), kept in Secrets Manager
(``{prod,staging}/intelliprompt/ci-aws-key``, JSON ``access_key_id`` / ``secret_access_key``)
and in Secret ``ci-aws-key`` of each namespace (production's owned by ExternalSecret
``intelliprompt-ci``), and used by Deployment ``ci-runner``, whose pods check the pair with
``sts:GetCallerIdentity`` at start."""

from __future__ import annotations

import json
from typing import Any

from sandbox import aws as aws_sandbox
from sandbox.iam import CI_USERS, AccountState, KeyPair
from sandbox.kube import manifests

SECRET_IDS = {"production": "prod/intelliprompt/ci-aws-key",
              "staging": "staging/intelliprompt/ci-aws-key"}
K8S_SECRET = "ci-aws-key"
DEPLOYMENT = "ci-runner"


def pair(state: AccountState, environment: str) -> KeyPair:
    """The CI user's initial key pair in ``environment``."""
    return state.users[CI_USERS[environment]]


def seed_secrets(endpoint_url: str, state: AccountState) -> dict[str, str]:
    """Secrets Manager's copies of the CI keys (through the main AWS's recording proxy, as
    :func:`sandbox.aws.seed` writes production's secrets). Returns their ARNs by name."""
    secretsmanager = aws_sandbox.client(endpoint_url, "secretsmanager")
    arns = {}
    for environment, name in SECRET_IDS.items():
        key = pair(state, environment)
        created = secretsmanager.create_secret(
            Name=name, Description=f"AWS access key of IAM user {CI_USERS[environment]}",
            SecretString=json.dumps({"access_key_id": key.access_key_id,
                                     "secret_access_key": key.secret_access_key}))
        arns[name] = created["ARN"]
    return arns


def cluster_objects(state: AccountState, namespaces: dict[str, str],
                    refresh_interval: str = "5m",
                    progress_deadline_seconds: int = 8) -> list[dict[str, Any]]:
    """Production's ExternalSecret, then each namespace's Secret and Deployment."""
    objects = [manifests.ci_external_secret(namespaces["production"], refresh_interval)]
    for environment, namespace in namespaces.items():
        key = pair(state, environment)
        objects.append(manifests.ci_aws_key(namespace, key.access_key_id,
                                            key.secret_access_key))
        objects.append(manifests.ci_runner_deployment(
            namespace, endpoint_url=state.endpoint_url, region=aws_sandbox.REGION,
            progress_deadline_seconds=progress_deadline_seconds))
    return objects


def credentials(state: AccountState) -> dict[str, str]:
    """The rotator's key pair, as files under ``DIR/credentials/``."""
    return {"iam-rotator-access-key-id": state.rotator.access_key_id,
            "iam-rotator-secret-access-key": state.rotator.secret_access_key}


def info(state: AccountState) -> dict[str, Any]:
    """``sandbox.json``'s ``iam``: where the CI account is, and who is in it (no secrets)."""
    return {"endpoint_url": state.endpoint_url, "region": aws_sandbox.REGION,
            "account_id": state.account_id,
            "users": {env: {"user": user, "arn": state.user_arn(user),
                            "initial_access_key_id": state.users[user].access_key_id}
                      for env, user in CI_USERS.items()},
            "rotator": {"user": "secretops-rotator",
                        "arn": state.user_arn("secretops-rotator")}}
