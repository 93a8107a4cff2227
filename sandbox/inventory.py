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
    """``endpoints``: openai, anthropic, console, aws, region, pg_host, pg_port, pg_admin, and
    openai_accounts (each environment's OpenAI service account id)."""

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
        },
        "providers": {
            "openai": {"base_url": endpoints["openai"], "admin_credential": "openai-admin",
                       "project_id": "proj_intelliprompt",
                       "service_accounts": endpoints.get("openai_accounts", {})},
            "anthropic": {"base_url": endpoints["anthropic"],
                          "admin_credential": "anthropic-admin",
                          "console_url": endpoints["console"], "key_prefix": "sk-ant-api03-"},
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
                                     "intelliprompt-db": {"target": "db-credentials"}},
                "postgres": postgres("production"),
            },
        },
        "consumers": {"backend": {"deployment": "backend", "verify_log": "API initialized",
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
