"""IntelliPrompt's CI credential in the world: the access key of each environment's CI user
in the CI's AWS account (:mod:`sandbox.iam`), kept in Secrets Manager
(``{prod,staging}/intelliprompt/ci-aws-key``, JSON ``access_key_id`` / ``secret_access_key``)
and in Secret ``ci-aws-key`` of each namespace (production's owned by ExternalSecret
``intelliprompt-ci``), and used by Deployment ``ci-runner``, whose pods check the pair with
``sts:GetCallerIdentity`` at start. The world reaches it through its emulator,
:mod:`sandbox.emulators.aws_iam`."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sandbox.emulators import InventoryPart
from sandbox.iam import CI_USERS, REGION, AccountState, KeyPair
from sandbox.kube import manifests

SECRET_IDS = {"production": "prod/intelliprompt/ci-aws-key",
              "staging": "staging/intelliprompt/ci-aws-key"}
K8S_SECRET = "ci-aws-key"
DEPLOYMENT = "ci-runner"
EXTERNAL_SECRET = "intelliprompt-ci"


def pair(state: AccountState, environment: str) -> KeyPair:
    """The CI user's initial key pair in ``environment``."""
    return state.users[CI_USERS[environment]]


def seed_secrets(endpoint_url: str, state: AccountState) -> dict[str, str]:
    """Secrets Manager's copies of the CI keys (through the main AWS's recording proxy, as
    :func:`sandbox.aws.seed` writes production's secrets). Returns their ARNs by name."""
    from sandbox import aws as aws_sandbox

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


def cluster_objects(state: AccountState, namespaces: Mapping[str, str],
                    refresh_interval: str = "5m",
                    progress_deadline_seconds: int = 8) -> list[dict[str, Any]]:
    """Production's ExternalSecret, then each namespace's Secret and Deployment."""
    objects = [external_secret(namespaces["production"], refresh_interval)]
    for environment, namespace in namespaces.items():
        key = pair(state, environment)
        objects.append(aws_key_secret(namespace, key.access_key_id, key.secret_access_key))
        objects.append(runner_deployment(
            namespace, endpoint_url=state.endpoint_url, region=REGION,
            progress_deadline_seconds=progress_deadline_seconds))
    return objects


def credentials(state: AccountState) -> dict[str, str]:
    """The rotator's key pair, as files under ``DIR/credentials/``."""
    return {"iam-rotator-access-key-id": state.rotator.access_key_id,
            "iam-rotator-secret-access-key": state.rotator.secret_access_key}


def info(state: AccountState) -> dict[str, Any]:
    """``sandbox.json``'s ``iam``: where the CI account is, and who is in it (no secrets)."""
    return {"endpoint_url": state.endpoint_url, "region": REGION,
            "account_id": state.account_id,
            "users": {env: {"user": user, "arn": state.user_arn(user),
                            "initial_access_key_id": state.users[user].access_key_id}
                      for env, user in CI_USERS.items()},
            "rotator": {"user": "secretops-rotator",
                        "arn": state.user_arn("secretops-rotator")}}


def inventory_part(state: AccountState) -> InventoryPart:
    """The inventory's ``providers.aws_iam``, the rotator's credentials, secret
    ``ci-aws-key`` and its consumer ``ci-runner`` (production's copy through ExternalSecret
    ``intelliprompt-ci``)."""
    from sandbox.inventory import schedule

    return InventoryPart(
        settings={"endpoint_url": state.endpoint_url, "region": REGION,
                  "access_key_id_credential": "iam-rotator-access-key-id",
                  "secret_access_key_credential": "iam-rotator-secret-access-key",
                  "users": {"staging": CI_USERS["staging"],
                            "production": CI_USERS["production"]}},
        credentials={name: f"credentials/{name}" for name in credentials(state)},
        secrets=[{
            "id": K8S_SECRET, "kind": "aws_iam_access_key",
            "description": "AWS access key of the CI runner (IAM users intelliprompt-ci, "
                           "intelliprompt-ci-staging)",
            "schedule": schedule(4), "consumers": [DEPLOYMENT],
            "environments": ["staging", "production"],
            "stores": {
                "staging": [
                    {"type": "aws_secretsmanager", "secret_id": SECRET_IDS["staging"],
                     "json_key": "secret_access_key", "username_json_key": "access_key_id"},
                    {"type": "kubernetes_secret", "name": K8S_SECRET,
                     "key": "AWS_SECRET_ACCESS_KEY", "username_key": "AWS_ACCESS_KEY_ID"},
                ],
                "production": [
                    {"type": "aws_secretsmanager", "secret_id": SECRET_IDS["production"],
                     "external_secret": EXTERNAL_SECRET, "json_key": "secret_access_key",
                     "username_json_key": "access_key_id"},
                ],
            },
        }],
        consumers={DEPLOYMENT: {"deployment": DEPLOYMENT, "verify_log": "CI runner ready",
                                "rollout_timeout_seconds": 60}},
        external_secrets={EXTERNAL_SECRET: {"target": K8S_SECRET}},
    )


def aws_key_secret(ns: str, access_key_id: str, secret_access_key: str) -> manifests.Obj:
    """Secret ``ci-aws-key``: the CI runner's AWS access key, as the AWS SDKs' variables."""
    return manifests.secret(ns, K8S_SECRET, {"AWS_ACCESS_KEY_ID": access_key_id,
                                             "AWS_SECRET_ACCESS_KEY": secret_access_key},
                            labels={"app": DEPLOYMENT})


def runner_deployment(ns: str, *, endpoint_url: str, region: str, replicas: int = 1,
                      progress_deadline_seconds: int = 8) -> manifests.Obj:
    """Deployment ``ci-runner``: the AWS key from ``ci-aws-key``, the CI account's endpoint
    (``AWS_ENDPOINT_URL``, as the AWS SDKs read it) and region."""
    env = [
        manifests.secret_env("AWS_ACCESS_KEY_ID", K8S_SECRET, "AWS_ACCESS_KEY_ID"),
        manifests.secret_env("AWS_SECRET_ACCESS_KEY", K8S_SECRET, "AWS_SECRET_ACCESS_KEY"),
        {"name": "AWS_ENDPOINT_URL", "value": endpoint_url},
        {"name": "AWS_REGION", "value": region},
    ]
    return manifests.rolling_deployment(ns, DEPLOYMENT, replicas, progress_deadline_seconds, {
        "containers": [{"name": DEPLOYMENT, "image": "intelliprompt/ci-runner:2.3.0",
                        "env": env}],
    })


def external_secret(ns: str, refresh_interval: str = "5m") -> manifests.Obj:
    """``intelliprompt-ci`` -> ``ci-aws-key``, from ``prod/intelliprompt/ci-aws-key``'s
    ``access_key_id`` and ``secret_access_key``."""
    remote = SECRET_IDS["production"]
    return manifests.external_secret(ns, EXTERNAL_SECRET, K8S_SECRET, [
        {"secretKey": "AWS_ACCESS_KEY_ID",
         "remoteRef": {"key": remote, "property": "access_key_id"}},
        {"secretKey": "AWS_SECRET_ACCESS_KEY",
         "remoteRef": {"key": remote, "property": "secret_access_key"}},
    ], refresh_interval)
