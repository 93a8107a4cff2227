"""Session-wide fixtures: one sandbox (the outside world) and one Prefect server per test run."""

from __future__ import annotations

import fcntl
import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox import manager
from sandbox.kubectl import kubectl_path

pytest_plugins = ["tests.fixtures_prefect", "tests.deploy.stack"]


@pytest.fixture(scope="session")
def sandbox() -> Iterator[dict[str, Any]]:
    """The running sandbox: the parsed ``DIR/sandbox.json`` (docs/sandbox.md). Its folder is
    outside pytest's temporary tree, which pytest keeps at mode 0700: PostgreSQL runs as an
    unprivileged user and must reach its data folder."""
    directory = Path(tempfile.mkdtemp(prefix="secretops-sandbox-"))
    info, _ = manager.up(directory)
    try:
        yield info
    finally:
        manager.down(directory)
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture()
def ci_key_alone(sandbox: dict[str, Any]) -> Iterator[None]:
    """The test has the CI key (``ci-aws-key``) to itself: the tests that rotate it or read
    its IAM users' keys (on whichever worker) take this lock one at a time. A flow's own lock
    covers one rotation, not a test's reads around it."""
    with open(Path(sandbox["dir"]) / "ci-aws-key.tests.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def kubectl_bin() -> str:
    return kubectl_path()


@pytest.fixture()
def kubectl(sandbox: dict[str, Any], kubectl_bin: str) -> Any:
    """Run the real kubectl against the sandbox: ``kubectl("get", "pods", "-n", ns)``."""

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [kubectl_bin, "--kubeconfig", sandbox["kubeconfig"], *args],
            capture_output=True, text=True, timeout=120,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr}")
        return result

    return run


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """With ``-n`` (pytest-xdist, ``--dist loadgroup``) each test module runs on one worker,
    in order, with its module fixtures set up once; the deployment and UI tests share the
    deployed stack (setup, ``prefect deploy``, a worker), so they run on the same worker."""
    for item in items:
        module = item.nodeid.split("::")[0]
        group = "deployed" if module.startswith(("tests/deploy/", "tests/ui/")) else module
        if module.startswith("tests/realkube/"):  # one real control plane for them all
            group = "realkube"
        item.add_marker(pytest.mark.xdist_group(group))
