"""The objects the sandbox seeds for IntelliPrompt: namespaces, the ``backend``
Deployment, its Secrets, the ExternalSecrets and SecretStore of production, RBAC (including
the ``developers-read-secrets`` RoleBinding that breaks the runbook's policy) and a
ServiceAccount. The backend's keys are those of the emulators of :mod:`sandbox.emulators`
whose keys it holds (``api_keys``); an emulator's own application (the CI runner) brings its
objects, made with the builders here."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

Obj = dict[str, Any]
ES_API = "external-secrets.io/v1"
RBAC_API = "rbac.authorization.k8s.io/v1"


def namespace(name: str, environment: str) -> Obj:
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": {"environment": environment,
                                                  "kubernetes.io/metadata.name": name}}}


def secret(ns: str, name: str, values: dict[str, str], labels: dict[str, str] | None = None
           ) -> Obj:
    """A Secret with ``values`` (plain text; stored base64 like the real server)."""
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": name, "namespace": ns, "labels": labels or {"app": "backend"}},
            "stringData": dict(values)}


class ApiKeyEnv(NamedTuple):
    """One key of the backend's pods: ``variable`` from key ``name`` of Secret ``api-keys``,
    and its provider's base URL in ``url_variable``."""

    name: str
    variable: str
    url_variable: str
    url: str


def api_keys(ns: str, keys: Mapping[str, str]) -> Obj:
    """Secret ``api-keys``: each backend key by its provider's name."""
    return secret(ns, "api-keys", dict(keys))


def db_credentials(ns: str, username: str, password: str) -> Obj:
    return secret(ns, "db-credentials", {"username": username, "password": password})


def secret_env(var: str, name: str, key: str) -> Obj:
    return {"name": var, "valueFrom": {"secretKeyRef": {"name": name, "key": key}}}


def rolling_deployment(ns: str, app: str, replicas: int, progress_deadline_seconds: int,
                        pod: Obj) -> Obj:
    """Deployment ``app`` (label ``app: <app>``) of the pod spec ``pod``, rolling update
    with maxUnavailable 0 and maxSurge 1."""
    labels = {"app": app}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": app, "namespace": ns, "labels": labels},
        "spec": {
            "replicas": replicas,
            "progressDeadlineSeconds": progress_deadline_seconds,
            "revisionHistoryLimit": 10,
            "selector": {"matchLabels": labels},
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {"metadata": {"labels": labels}, "spec": pod},
        },
    }


def backend_deployment(
    ns: str, *, db_host: str, db_port: int, db_name: str, keys: Sequence[ApiKeyEnv],
    replicas: int = 3, progress_deadline_seconds: int = 8,
) -> Obj:
    """Deployment ``backend``: env from ``api-keys`` and ``db-credentials``, rolling update
    with maxUnavailable 0 and maxSurge 1."""
    env = [
        *(secret_env(key.variable, "api-keys", key.name) for key in keys),
        secret_env("DB_USER", "db-credentials", "username"),
        secret_env("DB_PASSWORD", "db-credentials", "password"),
        {"name": "DB_HOST", "value": db_host},
        {"name": "DB_PORT", "value": str(db_port)},
        {"name": "DB_NAME", "value": db_name},
        *({"name": key.url_variable, "value": key.url} for key in keys),
    ]
    return rolling_deployment(ns, "backend", replicas, progress_deadline_seconds, {
        "serviceAccountName": "backend",
        "containers": [{
            "name": "backend", "image": "intelliprompt/backend:1.4.2",
            "ports": [{"containerPort": 8000, "protocol": "TCP"}],
            "env": env,
            "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8000}},
        }],
    })


def service_account(ns: str, name: str = "backend") -> Obj:
    return {"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": name, "namespace": ns}}


def secret_store(ns: str, region: str) -> Obj:
    """SecretStore ``aws-secrets-manager`` (AWS Secrets Manager, credentials from a Secret)."""
    return {
        "apiVersion": ES_API, "kind": "SecretStore",
        "metadata": {"name": "aws-secrets-manager", "namespace": ns},
        "spec": {"provider": {"aws": {
            "service": "SecretsManager", "region": region,
            "auth": {"secretRef": {
                "accessKeyIDSecretRef": {"name": "aws-credentials", "key": "access-key-id"},
                "secretAccessKeySecretRef": {"name": "aws-credentials",
                                             "key": "secret-access-key"}}},
        }}},
    }


def external_secret(ns: str, name: str, target: str, data: list[Obj], refresh: str) -> Obj:
    return {
        "apiVersion": ES_API, "kind": "ExternalSecret",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "refreshInterval": refresh,
            "secretStoreRef": {"name": "aws-secrets-manager", "kind": "SecretStore"},
            "target": {"name": target, "creationPolicy": "Owner"},
            "data": data,
        },
    }


def external_secrets(ns: str, refresh_interval: str, keys: Sequence[str]) -> list[Obj]:
    """``intelliprompt-secrets`` -> ``api-keys`` (each of ``keys`` from
    ``prod/intelliprompt/<key>``) and ``intelliprompt-db`` -> ``db-credentials``, from
    Secrets Manager."""
    return [
        external_secret(ns, "intelliprompt-secrets", "api-keys", [
            {"secretKey": key, "remoteRef": {"key": f"prod/intelliprompt/{key}"}}
            for key in keys], refresh_interval),
        external_secret(ns, "intelliprompt-db", "db-credentials", [
            {"secretKey": "username",
             "remoteRef": {"key": "prod/intelliprompt/db", "property": "username"}},
            {"secretKey": "password",
             "remoteRef": {"key": "prod/intelliprompt/db", "property": "password"}},
        ], refresh_interval),
    ]


def _role(ns: str, name: str, rules: list[Obj]) -> Obj:
    return {"apiVersion": RBAC_API, "kind": "Role",
            "metadata": {"name": name, "namespace": ns}, "rules": rules}


def _binding(ns: str | None, name: str, role_kind: str, role: str, subjects: list[Obj]) -> Obj:
    meta: Obj = {"name": name}
    if ns:
        meta["namespace"] = ns
    return {"apiVersion": RBAC_API, "kind": "RoleBinding" if ns else "ClusterRoleBinding",
            "metadata": meta, "subjects": subjects,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind,
                        "name": role}}


def _group(name: str) -> Obj:
    return {"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": name}


READ_SECRETS = [{"apiGroups": [""], "resources": ["secrets"],
                 "verbs": ["get", "list", "watch"]}]


def rbac(production: str, staging: str) -> list[Obj]:
    """Who may read Secrets: devops in both namespaces, developers in staging, and, against
    the runbook's policy, developers in production through ``developers-read-secrets``."""
    return [
        {"apiVersion": RBAC_API, "kind": "ClusterRole", "metadata": {"name": "secret-auditor"},
         "rules": [{"apiGroups": ["rbac.authorization.k8s.io"],
                    "resources": ["roles", "rolebindings", "clusterroles",
                                  "clusterrolebindings"], "verbs": ["get", "list", "watch"]}]},
        _binding(None, "secret-auditors", "ClusterRole", "secret-auditor", [_group("devops")]),
        _role(production, "secret-reader", READ_SECRETS),
        _role(staging, "secret-reader", READ_SECRETS),
        _role(production, "deployment-restarter", [
            {"apiGroups": ["apps"], "resources": ["deployments"],
             "verbs": ["get", "list", "watch", "patch"]}]),
        _binding(production, "devops-read-secrets", "Role", "secret-reader", [_group("devops")]),
        _binding(staging, "devops-read-secrets", "Role", "secret-reader", [_group("devops")]),
        _binding(staging, "developers-read-secrets", "Role", "secret-reader",
                 [_group("developers")]),
        _binding(production, "developers-read-secrets", "Role", "secret-reader",
                 [_group("developers")]),
        _binding(production, "backend-restarter", "Role", "deployment-restarter",
                 [{"kind": "ServiceAccount", "name": "backend", "namespace": production}]),
    ]


def intelliprompt(
    *, production: str = "intelliprompt", staging: str = "intelliprompt-staging",
    aws_region: str = "us-east-1", refresh_interval: str = "5m",
    api_keys: Sequence[str],
) -> list[Obj]:
    """Namespaces, ServiceAccounts, RBAC, the SecretStore and the ExternalSecrets
    (``api_keys``: the names of the backend's keys in Secret ``api-keys``). Add the Secrets
    and the Deployments (they need values and endpoints) with the builders above."""
    return [
        namespace(production, "production"), namespace(staging, "staging"),
        service_account(production), service_account(staging),
        *rbac(production, staging),
        secret_store(production, aws_region),
        *external_secrets(production, refresh_interval, api_keys),
    ]
