"""IntelliPrompt's inventory, pointed at a running sandbox (``DIR/inventory.yaml``).

The same secrets, stores, consumers and policy as the shipped ``inventory.yaml``; only the
endpoints differ, and the credentials the flows use are files under ``DIR/credentials/``.
One PostgreSQL server stands in for the three environments' servers, so each environment's
application role has its own name.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sandbox.emulators import InventoryPart

ROLES = {"development": "intelliprompt_dev", "staging": "intelliprompt_staging",
         "production": "intelliprompt"}
NAMESPACES = {"staging": "intelliprompt-staging", "production": "intelliprompt"}


def schedule(day: int) -> dict[str, str]:
    return {"cron": f"0 3 {day} * *", "timezone": "UTC"}


def sandbox_inventory(endpoints: dict[str, Any],
                      parts: Sequence[tuple[str, InventoryPart]]) -> dict[str, Any]:
    """``endpoints``: aws, region, pg_host, pg_port, pg_admin. ``parts``: each emulator's
    (:mod:`sandbox.emulators`), by provider name, in order: its ``providers:`` section, its
    credentials, its secrets (the backend's before the database password, the others'
    after), consumers and production ExternalSecrets."""

    def postgres(env: str) -> dict[str, Any]:
        return {"host": endpoints["pg_host"], "port": endpoints["pg_port"],
                "database": ROLES[env], "admin_user": endpoints["pg_admin"],
                "admin_credential": "postgres-admin"}

    credentials = {name: {"file": file} for _, part in parts
                   for name, file in part.credentials.items()}
    backend = [s for _, part in parts for s in part.secrets if s["consumers"] == ["backend"]]
    others = [s for _, part in parts for s in part.secrets if s["consumers"] != ["backend"]]
    return {
        "version": 1,
        "application": "intelliprompt",
        "credentials": {
            **credentials,
            "postgres-admin": {"file": "credentials/postgres-admin-password"},
            "aws-access-key-id": {"file": "credentials/aws-access-key-id"},
            "aws-secret-access-key": {"file": "credentials/aws-secret-access-key"},
            "github-webhook-secret": {"file": "credentials/github-webhook-secret"},
            "github-token": {"file": "credentials/github-token"},
            "alerts-report-token": {"file": "credentials/alerts-report-token"},
        },
        "providers": {name: part.settings for name, part in parts},
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
                                     **{name: target for _, part in parts for name, target
                                        in part.external_secrets.items()}},
                "postgres": postgres("production"),
            },
        },
        "consumers": {"backend": {"deployment": "backend", "verify_log": "API initialized",
                                  "rollout_timeout_seconds": 60},
                      **{name: c for _, part in parts for name, c in part.consumers.items()}},
        "secrets": [
            *backend,
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
            *others,
        ],
        "access_policy": {"production": {"groups": ["devops"]},
                          "staging": {"groups": ["devops", "developers"]},
                          "development": {"groups": ["devops", "developers"]}},
    }


def api_key_secret(secret: str, kind: str, variable: str, day: int) -> dict[str, Any]:
    """A key of the backend (``kind``, issued by provider ``secret``): ``variable`` of the
    development ``.env``, key ``secret`` of Secret ``api-keys`` in staging, Secrets Manager's
    ``prod/intelliprompt/<secret>`` in production; rotated on ``day`` of each month."""
    return {
        "id": secret, "kind": kind, "description": f"{secret} API key of the backend",
        "schedule": schedule(day), "consumers": ["backend"],
        "stores": {
            "development": [{"type": "dotenv", "key": variable}],
            "staging": [{"type": "kubernetes_secret", "name": "api-keys", "key": secret}],
            "production": [{"type": "aws_secretsmanager",
                            "secret_id": f"prod/intelliprompt/{secret}",
                            "external_secret": "intelliprompt-secrets"}],
        },
    }
