"""The objects the sandbox seeds for IntelliPrompt: namespaces, the ``backend`` and
``ci-runner`` Deployments, their Secrets, the ExternalSecrets and SecretStore of
production, RBAC (including the ``developers-read-secrets`` RoleBinding that breaks the
runbook's policy) and a ServiceAccount."""

from __future__ import annotations

from typing import Any

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


def api_keys(ns: str, openai: str, anthropic: str) -> Obj:
    return secret(ns, "api-keys", {"openai": openai, "anthropic": anthropic})


def db_credentials(ns: str, username: str, password: str) -> Obj:
    return secret(ns, "db-credentials", {"username": username, "password": password})


def _secret_env(var: str, name: str, key: str) -> Obj:
    return {"name": var, "valueFrom": {"secretKeyRef": {"name": name, "key": key}}}


def _rolling_deployment(ns: str, app: str, replicas: int, progress_deadline_seconds: int,
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
    ns: str, *, db_host: str, db_port: int, db_name: str, openai_base_url: str,
    anthropic_base_url: str, replicas: int = 3, progress_deadline_seconds: int = 8,
) -> Obj:
    """Deployment ``backend``: env from ``api-keys`` and ``db-credentials``, rolling update
    with maxUnavailable 0 and maxSurge 1."""
    env = [
        _secret_env("OPENAI_API_KEY", "api-keys", "openai"),
        _secret_env("ANTHROPIC_API_KEY", "api-keys", "anthropic"),
        _secret_env("DB_USER", "db-credentials", "username"),
        _secret_env("DB_PASSWORD", "db-credentials", "password"),
        {"name": "DB_HOST", "value": db_host},
        {"name": "DB_PORT", "value": str(db_port)},
        {"name": "DB_NAME", "value": db_name},
        {"name": "OPENAI_BASE_URL", "value": openai_base_url},
        {"name": "ANTHROPIC_BASE_URL", "value": anthropic_base_url},
    ]
    return _rolling_deployment(ns, "backend", replicas, progress_deadline_seconds, {
        "serviceAccountName": "backend",
        "containers": [{
            "name": "backend", "image": "intelliprompt/backend:1.4.2",
            "ports": [{"containerPort": 8000, "protocol": "TCP"}],
            "env": env,
            "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8000}},
        }],
    })


def ci_aws_key(ns: str, access_key_id: str, secret_access_key: str) -> Obj:
    """Secret ``ci-aws-key``: the CI runner's AWS access key, as the AWS SDKs' variables."""
    return secret(ns, "ci-aws-key", {"AWS_ACCESS_KEY_ID": access_key_id,
                                     "AWS_SECRET_ACCESS_KEY": secret_access_key},
                  labels={"app": "ci-runner"})


def ci_runner_deployment(ns: str, *, endpoint_url: str, region: str, replicas: int = 1,
                         progress_deadline_seconds: int = 8) -> Obj:
    """Deployment ``ci-runner``: the AWS key from ``ci-aws-key``, the CI account's endpoint
    (``AWS_ENDPOINT_URL``, as the AWS SDKs read it) and region."""
    env = [
        _secret_env("AWS_ACCESS_KEY_ID", "ci-aws-key", "AWS_ACCESS_KEY_ID"),
        _secret_env("AWS_SECRET_ACCESS_KEY", "ci-aws-key", "AWS_SECRET_ACCESS_KEY"),
        {"name": "AWS_ENDPOINT_URL", "value": endpoint_url},
        {"name": "AWS_REGION", "value": region},
    ]
    return _rolling_deployment(ns, "ci-runner", replicas, progress_deadline_seconds, {
        "containers": [{"name": "ci-runner", "image": "intelliprompt/ci-runner:2.3.0",
                        "env": env}],
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


def _external_secret(ns: str, name: str, target: str, data: list[Obj], refresh: str) -> Obj:
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


def external_secrets(ns: str, refresh_interval: str = "5m") -> list[Obj]:
    """``intelliprompt-secrets`` -> ``api-keys`` and ``intelliprompt-db`` ->
    ``db-credentials``, from Secrets Manager."""
    return [
        _external_secret(ns, "intelliprompt-secrets", "api-keys", [
            {"secretKey": "openai", "remoteRef": {"key": "prod/intelliprompt/openai"}},
            {"secretKey": "anthropic", "remoteRef": {"key": "prod/intelliprompt/anthropic"}},
        ], refresh_interval),
        _external_secret(ns, "intelliprompt-db", "db-credentials", [
            {"secretKey": "username",
             "remoteRef": {"key": "prod/intelliprompt/db", "property": "username"}},
            {"secretKey": "password",
             "remoteRef": {"key": "prod/intelliprompt/db", "property": "password"}},
        ], refresh_interval),
    ]


def ci_external_secret(ns: str, refresh_interval: str = "5m") -> Obj:
    """``intelliprompt-ci`` -> ``ci-aws-key``, from ``prod/intelliprompt/ci-aws-key``'s
    ``access_key_id`` and ``secret_access_key`` (not in :func:`intelliprompt`: a world
    without the CI account's secret has no use for it)."""
    remote = "prod/intelliprompt/ci-aws-key"
    return _external_secret(ns, "intelliprompt-ci", "ci-aws-key", [
        {"secretKey": "AWS_ACCESS_KEY_ID",
         "remoteRef": {"key": remote, "property": "access_key_id"}},
        {"secretKey": "AWS_SECRET_ACCESS_KEY",
         "remoteRef": {"key": remote, "property": "secret_access_key"}},
    ], refresh_interval)


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
) -> list[Obj]:
    """Namespaces, ServiceAccounts, RBAC, the SecretStore and the ExternalSecrets. Add the
    Secrets and the Deployments (they need values and endpoints) with the builders above."""
    return [
        namespace(production, "production"), namespace(staging, "staging"),
        service_account(production), service_account(staging),
        *rbac(production, staging),
        secret_store(production, aws_region),
        *external_secrets(production, refresh_interval),
    ]
