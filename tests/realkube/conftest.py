"""The real Kubernetes world: the same sandbox with etcd, kube-apiserver,
kube-controller-manager and External Secrets Operator in place of the sandbox's API server
(``secretops sandbox up --kubernetes real``). Its binaries are found or built by
``secretops sandbox build-binaries``; without them these tests are skipped with the one line
that says how to get them, and in CI (``CI=true``) they fail with it."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox import manager
from sandbox.realkube import binaries
from tests.flows.conftest import clean_prefect, kubectl_logs, load, world

__all__ = ["clean_prefect", "load", "world"]
BOOT_SECONDS: list[float] = []


@pytest.fixture(scope="session")
def sandbox() -> Iterator[dict[str, Any]]:
    """The running real-Kubernetes sandbox (``kubernetes.kind`` is ``real``)."""
    try:
        binaries.find_all()
        binaries.eso_crds_dir()
    except binaries.MissingBinary as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(str(exc), pytrace=False)
        pytest.skip(str(exc))
    directory = Path(tempfile.mkdtemp(prefix="secretops-realkube-"))
    started = time.monotonic()
    info, _ = manager.up(directory, kubernetes="real")
    BOOT_SECONDS.append(time.monotonic() - started)
    try:
        yield info
    finally:
        manager.down(directory)
        shutil.rmtree(directory, ignore_errors=True)


def deployment_logs(kubectl: Any, namespace: str, attempts: int = 10) -> str:
    """``kubectl logs -n NAMESPACE deployment/backend``, as the runbook runs it. kubectl picks
    the oldest ready pod, which just after a rollout can be one of the old ReplicaSet that the
    kubelet deletes before kubectl asks for its log (NotFound): asked again, as a person
    would."""
    return kubectl_logs(kubectl, namespace, "deployment/backend", attempts=attempts)
