"""IntelliPrompt's inventory, pointed at a running sandbox (``DIR/inventory.yaml``).

The same secrets, stores, consumers and policy as the shipped ``inventory.yaml``; only the
endpoints differ, and the credentials the flows use are files under ``DIR/credentials/``.
One PostgreSQL server stands in for the three environments' servers, so each environment's
application role has its own name.
"""

from __future__ import annotations

from typing import Any

ROLES = {"development": "intelliprompt_dev", "staging": "intelliprompt_staging",
         "production": "intelliprompt"}
NAMESPACES = {"staging": "intelliprompt-staging", "production": "intelliprompt"}


def sandbox_inventory(endpoints: dict[str, Any]) -> dict[str, Any]:
    """``endpoints``: openai, anthropic, console, aws, region, pg_host, pg_port, pg_admin,
    openai_accounts (each environment's OpenAI service account id) and iam (the CI's AWS
    account, :mod:`sandbox.iam`)."""

    def postgres(env: str) -> dict[str, Any]:
        return {"host": endpoints["pg_host"], "port": endpoints["pg_port"],
                "database": ROLES[env], "admin_user": endpoints["pg_admin"],
                "admin_credential": "postgres-admin"}

    def schedule(day: int) -> dict[str, str]:
        return {"cron": f"0 3 {day} * *", "timezone": "UTC"}

    return {
        "version": 1,
        "application": "intelliprompt",
        "credentials": {
            "openai-admin": {"file": "credentials/openai-admin-key"},
            "anthropic-admin": {"file": "credentials/anthropic-admin-key"},
            "postgres-admin": {"file": "credentials/postgres-admin-password"},
            "aws-access-key-id": {"file": "credentials/aws-access-key-id"},
            "aws-secret-access-key": {"file": "credentials/aws-secret-access-key"},
            "github-webhook-secret": {"file": "credentials/github-webhook-secret"},
            "github-token": {"file": "credentials/github-token"},
            "alerts-report-token": {"file": "credentials/alerts-report-token"},
            "iam-rotator-access-key-id": {"file": "credentials/iam-rotator-access-key-id"},
            "iam-rotator-secret-access-key": {
                "file": "credentials/iam-rotator-secret-access-key"},
        },
        "providers": {
            "openai": {"base_url": endpoints["openai"], "admin_credential": "openai-admin",
                       "project_id": "proj_intelliprompt",
                       "service_accounts": endpoints.get("openai_accounts", {})},
            "anthropic": {"base_url": endpoints["anthropic"],
                          "admin_credential": "anthropic-admin",
                          "console_url": endpoints["console"], "key_prefix": "sk-ant-api03-"},
            "aws_iam": {"endpoint_url": endpoints["iam"], "region": "us-east-1",
                        "access_key_id_credential": "iam-rotator-access-key-id",
                        "secret_access_key_credential": "iam-rotator-secret-access-key",
                        "users": {"staging": "intelliprompt-ci-staging",
                                  "production": "intelliprompt-ci"}},
        },
        "aws": {"region": endpoints["region"], "endpoint_url": endpoints["aws"],
                "access_key_id_credential": "aws-access-key-id",
                "secret_access_key_credential": "aws-secret-access-key",
                "cloudtrail_endpoint_url": endpoints["aws"]},
        "kubernetes": {"kubeconfig": "kubeconfig", "context": "sandbox",
                       "emergency_context": "emergency-admin", "audit_log": "kube-audit.log"},
        "environments": {
            "development": {"dotenv": "dev/.env", "dotenv_example": "dev/.env.example",
                            "secrets_dir": "dev/secrets", "postgres": postgres("development")},
            "staging": {"namespace": NAMESPACES["staging"], "postgres": postgres("staging")},
            "production": {
                "namespace": NAMESPACES["production"],
                "external_secrets": {"intelliprompt-secrets": {"target": "api-keys"},
                                     "intelliprompt-db": {"target": "db-credentials"},
                                     "intelliprompt-ci": {"target": "ci-aws-key"}},
                "postgres": postgres("production"),
            },
        },
        "consumers": {"backend": {"deployment": "backend", "verify_log": "API initialized",
                                  "rollout_timeout_seconds": 60},
                      "ci-runner": {"deployment": "ci-runner", "verify_log": "CI runner ready",
                                    "rollout_timeout_seconds": 60}},
        "secrets": [
            _api_key("openai", "openai_api_key", "OPENAI_API_KEY", schedule(1)),
            _api_key("anthropic", "anthropic_api_key", "ANTHROPIC_API_KEY", schedule(2)),
            {
                "id": "db-password", "kind": "postgres_password",
                "description": "PostgreSQL login of the backend", "schedule": schedule(3),
                "consumers": ["backend"], "role": dict(ROLES),
                "strategy": {"development": "single", "staging": "single",
                             "production": "alternating"},
                "password_policy": {"length": 40},
                "stores": {
                    "development": [
                        {"type": "dotenv", "key": "DB_PASSWORD", "url_keys": ["DATABASE_URL"]},
                        {"type": "docker_secret", "path": "db_password.txt"},
                    ],
                    "staging": [{"type": "kubernetes_secret", "name": "db-credentials",
                                 "key": "password", "username_key": "username"}],
                    "production": [{"type": "aws_secretsmanager",
                                    "secret_id": "prod/intelliprompt/db",
                                    "external_secret": "intelliprompt-db",
                                    "json_key": "password", "username_json_key": "username"}],
                },
            },
            {
                "id": "ci-aws-key", "kind": "aws_iam_access_key",
                "description": "AWS access key of the CI runner (IAM users intelliprompt-ci, "
                               "intelliprompt-ci-staging)",
                "schedule": schedule(4), "consumers": ["ci-runner"],
                "environments": ["staging", "production"],
                "stores": {
                    "staging": [
                        {"type": "aws_secretsmanager",
                         "secret_id": "staging/intelliprompt/ci-aws-key",
                         "json_key": "secret_access_key", "username_json_key": "access_key_id"},
                        {"type": "kubernetes_secret", "name": "ci-aws-key",
                         "key": "AWS_SECRET_ACCESS_KEY", "username_key": "AWS_ACCESS_KEY_ID"},
                    ],
                    "production": [
                        {"type": "aws_secretsmanager", "secret_id": "prod/intelliprompt/ci-aws-key",
                         "external_secret": "intelliprompt-ci", "json_key": "secret_access_key",
                         "username_json_key": "access_key_id"},
                    ],
                },
            },
        ],
        "access_policy": {"production": {"groups": ["devops"]},
                          "staging": {"groups": ["devops", "developers"]},
                          "development": {"groups": ["devops", "developers"]}},
    }


def _api_key(secret: str, kind: str, variable: str, schedule: dict[str, str]) -> dict[str, Any]:
    return {
        "id": secret, "kind": kind, "description": f"{secret} API key of the backend",
        "schedule": schedule, "consumers": ["backend"],
        "stores": {
            "development": [{"type": "dotenv", "key": variable}],
            "staging": [{"type": "kubernetes_secret", "name": "api-keys", "key": secret}],
            "production": [{"type": "aws_secretsmanager",
                            "secret_id": f"prod/intelliprompt/{secret}",
                            "external_secret": "intelliprompt-secrets"}],
        },
    }
