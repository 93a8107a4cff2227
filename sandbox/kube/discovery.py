"""Discovery documents: ``/version``, ``/api``, ``/apis`` and each group version."""

from __future__ import annotations

from typing import Any

from sandbox.kube.resources import groups, in_version, resource_list

VERSION = {
    "major": "1", "minor": "32", "gitVersion": "v1.32.0-sandbox",
    "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
    "buildDate": "2025-01-01T00:00:00Z", "goVersion": "go1.23.4", "compiler": "gc",
    "platform": "linux/amd64",
}


def api_versions(server_address: str) -> dict[str, Any]:
    return {
        "kind": "APIVersions", "versions": ["v1"],
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }


def _group(name: str, versions: tuple[str, ...]) -> dict[str, Any]:
    entries = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": entries, "preferredVersion": entries[0]}


def api_group_list() -> dict[str, Any]:
    return {
        "kind": "APIGroupList", "apiVersion": "v1",
        "groups": [_group(n, v) for n, v in groups().items()],
    }


def api_group(name: str) -> dict[str, Any] | None:
    versions = groups().get(name)
    if versions is None:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(name, versions)}


def group_version(group: str, version: str) -> dict[str, Any] | None:
    if group and version not in groups().get(group, ()):
        return None
    if not group and version != "v1":
        return None
    return resource_list(group, version)


# OpenAPI v3, as much as kubectl reads before a write: for each kind, its write operations and
# the query parameters they take. kubectl finds ``fieldValidation`` there and so leaves the
# checking of fields to the server (``kubectl apply`` and ``create -f`` work without
# ``--validate=false``). There are no schemas: ``kubectl explain`` has nothing to show.
_WRITE_PARAMETERS = ("dryRun", "fieldManager", "fieldValidation")
OPENAPI_HASH = "sandbox-1"


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def openapi_v3_root() -> dict[str, Any]:
    """``/openapi/v3``: where each group version's document is."""
    versions = [("", "v1")] + [(g, v) for g, vs in groups().items() for v in vs]
    return {"paths": {_gv_path(g, v): {
        "serverRelativeURL": f"/openapi/v3/{_gv_path(g, v)}?hash={OPENAPI_HASH}"}
        for g, v in versions}}


def _write_operation(verb: str, kind: str, gvk: dict[str, str]) -> dict[str, Any]:
    parameters = [{"name": n, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
                  for n in _WRITE_PARAMETERS]
    return {"operationId": f"{verb}{kind}", "parameters": parameters,
            "x-kubernetes-action": verb, "x-kubernetes-group-version-kind": gvk,
            "responses": {"200": {"description": "OK"}}}


def openapi_v3(group: str, version: str) -> dict[str, Any] | None:
    """``/openapi/v3/{api/v1 | apis/GROUP/VERSION}``: the write operations of each kind."""
    resources = in_version(group, version)
    if not resources:
        return None
    paths: dict[str, Any] = {}
    for r in resources:
        gvk = {"group": group, "version": version, "kind": r.kind}
        scope = "/namespaces/{namespace}" if r.namespaced else ""
        base = f"/{_gv_path(group, version)}{scope}/{r.plural}"
        paths[base] = {"post": _write_operation("post", r.kind, gvk)}
        paths[base + "/{name}"] = {verb: _write_operation(verb, r.kind, gvk)
                                   for verb in ("put", "patch")}
    return {"openapi": "3.0.0",
            "info": {"title": "Kubernetes", "version": VERSION["gitVersion"]},
            "paths": paths, "components": {"schemas": {}}}
