"""Discovery documents: ``/version``, ``/api``, ``/apis`` and each group version."""

from __future__ import annotations

from typing import Any

from sandbox.kube.resources import groups, resource_list

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
