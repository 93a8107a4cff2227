"""The resource types the sandbox API server serves, and how a request path names them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Resource:
    """One REST resource (``deployments`` in ``apps/v1``)."""

    group: str
    versions: tuple[str, ...]
    kind: str
    plural: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    custom: bool = False  # a CustomResourceDefinition: no strategic-merge patch

    @property
    def key(self) -> str:
        """Store key: ``secrets`` for the core group, ``deployments.apps`` otherwise."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def singular(self) -> str:
        return self.kind.lower()

    def api_version(self, version: str | None = None) -> str:
        v = version or self.versions[0]
        return f"{self.group}/{v}" if self.group else v


_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]

RESOURCES: tuple[Resource, ...] = (
    Resource("", ("v1",), "Namespace", "namespaces", False, ("ns",), ("status",)),
    Resource("", ("v1",), "Secret", "secrets", True),
    Resource("", ("v1",), "ConfigMap", "configmaps", True, ("cm",)),
    Resource("", ("v1",), "Pod", "pods", True, ("po",), ("log", "status")),
    Resource("", ("v1",), "Event", "events", True, ("ev",)),
    Resource("", ("v1",), "ServiceAccount", "serviceaccounts", True, ("sa",)),
    Resource("", ("v1",), "Service", "services", True, ("svc",), ("status",)),
    Resource("apps", ("v1",), "Deployment", "deployments", True, ("deploy",), ("status", "scale")),
    Resource("apps", ("v1",), "ReplicaSet", "replicasets", True, ("rs",), ("status", "scale")),
    Resource("rbac.authorization.k8s.io", ("v1",), "Role", "roles", True),
    Resource("rbac.authorization.k8s.io", ("v1",), "RoleBinding", "rolebindings", True),
    Resource("rbac.authorization.k8s.io", ("v1",), "ClusterRole", "clusterroles", False),
    Resource(
        "rbac.authorization.k8s.io", ("v1",), "ClusterRoleBinding", "clusterrolebindings", False
    ),
    Resource(
        "external-secrets.io", ("v1", "v1beta1"), "ExternalSecret", "externalsecrets", True,
        ("es",), ("status",), custom=True,
    ),
    Resource(
        "external-secrets.io", ("v1", "v1beta1"), "SecretStore", "secretstores", True,
        ("ss",), ("status",), custom=True,
    ),
    Resource(
        "external-secrets.io", ("v1", "v1beta1"), "ClusterSecretStore", "clustersecretstores",
        False, ("css",), ("status",), custom=True,
    ),
)

_BY_PATH = {(r.group, v, r.plural): r for r in RESOURCES for v in r.versions}
_BY_KIND = {(r.group, r.kind): r for r in RESOURCES}


def groups() -> dict[str, tuple[str, ...]]:
    """Every API group (not the core group) and its versions, preferred first."""
    out: dict[str, tuple[str, ...]] = {}
    for r in RESOURCES:
        if r.group:
            out.setdefault(r.group, r.versions)
    return out


def by_path(group: str, version: str, plural: str) -> Resource | None:
    return _BY_PATH.get((group, version, plural))


def by_key(key: str) -> Resource:
    plural, _, group = key.partition(".")
    return _BY_PATH[(group, by_group_versions(group)[0], plural)]


def by_group_versions(group: str) -> tuple[str, ...]:
    return ("v1",) if not group else groups()[group]


def by_kind(api_version: str, kind: str) -> Resource:
    """The resource of an object, from its ``apiVersion`` and ``kind``."""
    group = api_version.rpartition("/")[0]
    found = _BY_KIND.get((group, kind))
    if found is None:
        raise KeyError(f"no resource for {api_version} {kind}")
    return found


def in_version(group: str, version: str) -> list[Resource]:
    return [r for r in RESOURCES if r.group == group and version in r.versions]


def resource_list(group: str, version: str) -> dict[str, object]:
    """The ``APIResourceList`` of one group version, as ``/apis/{group}/{version}`` serves it."""
    items: list[dict[str, object]] = []
    for r in in_version(group, version):
        entry: dict[str, object] = {
            "name": r.plural, "singularName": r.singular, "namespaced": r.namespaced,
            "kind": r.kind, "verbs": _VERBS,
        }
        if r.short_names:
            entry["shortNames"] = list(r.short_names)
        if r.plural in ("pods", "services", "deployments", "replicasets"):
            entry["categories"] = ["all"]
        items.append(entry)
        for sub in r.subresources:
            sub_entry: dict[str, object] = {
                "name": f"{r.plural}/{sub}", "singularName": "", "namespaced": r.namespaced,
                "kind": "Scale" if sub == "scale" else r.kind,
                "verbs": ["get"] if sub == "log" else ["get", "patch", "update"],
            }
            if sub == "scale":
                sub_entry["group"] = "autoscaling"
                sub_entry["version"] = "v1"
            items.append(sub_entry)
    gv = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": items}
