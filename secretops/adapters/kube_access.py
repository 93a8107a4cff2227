"""Who may read Secrets in a namespace (RBAC) and who did (the API server's audit log).

RBAC: every RoleBinding in the namespace and every ClusterRoleBinding, resolved to the rules
of its Role or ClusterRole; a rule counts when its apiGroups hold ``""`` or ``*``, its
resources ``secrets`` or ``*``, and its verbs one of get/list/watch or ``*``. A rule limited
by ``resourceNames`` is reported with those names. Audit: ``audit.k8s.io/v1`` Events (JSON
lines) that read a Secret: get of that Secret, list/watch of Secrets in its namespace.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from secretops.adapters.kube_api import Api
from secretops.models import AccessEvent, AccessGrant

READ_VERBS = ("get", "list", "watch")


def _secret_rule(rule: dict[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    """(verbs, resourceNames) when the rule lets one read Secrets, else None."""
    groups = rule.get("apiGroups") or []
    resources = rule.get("resources") or []
    verbs = rule.get("verbs") or []
    if not ("" in groups or "*" in groups):
        return None
    if not ("secrets" in resources or "*" in resources):
        return None
    allowed = READ_VERBS if "*" in verbs else tuple(v for v in READ_VERBS if v in verbs)
    if not allowed:
        return None
    return allowed, tuple(rule.get("resourceNames") or ())


def _subject(subject: dict[str, Any], binding_namespace: str | None) -> tuple[str, str]:
    kind = str(subject.get("kind", ""))
    name = str(subject.get("name", ""))
    if kind == "ServiceAccount":
        namespace = subject.get("namespace") or binding_namespace or ""
        return kind, f"system:serviceaccount:{namespace}:{name}"
    return kind, name


def _grants(
    environment: str,
    binding: dict[str, Any],
    via: str,
    rules: Iterable[dict[str, Any]],
    binding_namespace: str | None,
) -> list[AccessGrant]:
    found: list[AccessGrant] = []
    for rule in rules:
        verdict = _secret_rule(rule)
        if verdict is None:
            continue
        verbs, names = verdict
        for subject in binding.get("subjects") or []:
            kind, name = _subject(subject, binding_namespace)
            found.append(AccessGrant(environment, kind, name, via, verbs, names))
    return found


def _items(cluster: Api, call: str, target: str, method: Any, *args: Any) -> list[Any]:
    listing = cluster.call(call, target, method, *args)
    return list(listing.get("items") or [])


def secret_readers(cluster: Api, namespace: str, environment: str) -> list[AccessGrant]:
    """Every (subject, binding, rule) that lets someone read Secrets in ``namespace``."""
    roles = {
        r["metadata"]["name"]: r.get("rules") or []
        for r in _items(
            cluster, "list roles", namespace, cluster.rbac.list_namespaced_role, namespace
        )
    }
    cluster_roles = {
        r["metadata"]["name"]: r.get("rules") or []
        for r in _items(cluster, "list clusterroles", "", cluster.rbac.list_cluster_role)
    }
    grants: list[AccessGrant] = []
    bindings = _items(
        cluster,
        "list rolebindings",
        namespace,
        cluster.rbac.list_namespaced_role_binding,
        namespace,
    )
    for binding in bindings:
        ref = binding.get("roleRef") or {}
        kind, role = ref.get("kind"), str(ref.get("name", ""))
        rules = roles.get(role, []) if kind == "Role" else cluster_roles.get(role, [])
        via = f"RoleBinding {namespace}/{binding['metadata']['name']} -> {kind} {role}"
        grants.extend(_grants(environment, binding, via, rules, namespace))
    for binding in _items(
        cluster, "list clusterrolebindings", "", cluster.rbac.list_cluster_role_binding
    ):
        ref = binding.get("roleRef") or {}
        role = str(ref.get("name", ""))
        via = f"ClusterRoleBinding {binding['metadata']['name']} -> ClusterRole {role}"
        grants.extend(_grants(environment, binding, via, cluster_roles.get(role, []), None))
    return grants


def _time(event: dict[str, Any]) -> datetime | None:
    raw = event.get("stageTimestamp") or event.get("requestReceivedTimestamp")
    if not raw:
        return None
    moment = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _reads_secret(event: dict[str, Any], namespace: str, name: str) -> bool:
    ref = event.get("objectRef") or {}
    if ref.get("resource") != "secrets" or ref.get("namespace") != namespace:
        return False
    if ref.get("subresource"):
        return False
    verb = event.get("verb")
    if verb == "get":
        return ref.get("name") == name
    return verb in ("list", "watch") and ref.get("name") in (None, "", name)


def audit_reads(path: str, namespace: str, name: str, since: datetime) -> list[AccessEvent]:
    """Reads of Secret ``namespace/name`` in the audit log at or after ``since``: completed
    requests only (one event per request), refused ones marked in ``detail``."""
    since = since if since.tzinfo else since.replace(tzinfo=UTC)
    found: list[AccessEvent] = []
    with Path(path).open(encoding="utf-8") as log:
        for line in log:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if not isinstance(event, dict) or event.get("stage", "ResponseComplete") not in (
                "ResponseComplete",
                "Panic",
            ):
                continue
            moment = _time(event)
            if moment is None or moment < since or not _reads_secret(event, namespace, name):
                continue
            user = event.get("user") or {}
            code = (event.get("responseStatus") or {}).get("code")
            groups = ",".join(user.get("groups") or [])
            detail = f"HTTP {code}" if code else ""
            detail += f" groups={groups}" if groups else ""
            ips = ",".join(event.get("sourceIPs") or [])
            detail += f" from {ips}" if ips else ""
            found.append(
                AccessEvent(
                    source="kubernetes-audit",
                    time=moment,
                    actor=str(user.get("username", "unknown")),
                    action=str(event.get("verb")),
                    target=f"{namespace}/{name}",
                    detail=detail.strip(),
                )
            )
    return sorted(found, key=lambda e: e.time)
