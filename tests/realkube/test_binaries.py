"""Finding the control plane's binaries (the envtest convention first, then the cache), the
one line when one is missing, and a control plane that fails to start being torn down whole
with the log named."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from sandbox.realkube import binaries

ROOT = Path(__file__).resolve().parents[2]
ENVTEST = ("KUBEBUILDER_ASSETS", *(b.envtest_variable for b in binaries.BINARIES.values()))


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ENVTEST}
    return {**env, **extra}


def up(directory: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli", "sandbox", "up", "--dir", str(directory),
         "--kubernetes", "real"], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=240)


def test_a_missing_binary_is_one_line_and_nothing_starts(tmp_path: Path) -> None:
    result = up(tmp_path / "world", clean_env(XDG_CACHE_HOME=str(tmp_path / "cache")))
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert "etcd v3.6.16 not found" in line and str(tmp_path / "cache") in line
    assert "secretops sandbox build-binaries" in line and "KUBEBUILDER_ASSETS" in line
    assert "Traceback" not in result.stderr + result.stdout
    assert not (tmp_path / "world" / "sandbox.json").exists()


def test_the_envtest_variables_come_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                          ) -> None:
    assets = tmp_path / "assets"
    assets.mkdir()
    for name in binaries.BINARIES:
        (assets / name).write_text("#!/bin/sh\n")
        (assets / name).chmod(0o755)
    monkeypatch.setenv("KUBEBUILDER_ASSETS", str(assets))
    monkeypatch.setenv("TEST_ASSET_ETCD", str(tmp_path / "etcd-elsewhere"))
    assert binaries.find("kube-apiserver") == assets / "kube-apiserver"
    assert binaries.find("etcd") == assets / "etcd"  # the variable names nothing usable
    (tmp_path / "etcd-elsewhere").write_text("#!/bin/sh\n")
    (tmp_path / "etcd-elsewhere").chmod(0o755)
    assert binaries.find("etcd") == tmp_path / "etcd-elsewhere"


def test_a_control_plane_that_fails_is_torn_down_whole(tmp_path: Path) -> None:
    try:
        real = binaries.find_all()
        crds = binaries.eso_crds_dir()
    except binaries.MissingBinary as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(str(exc), pytrace=False)
        pytest.skip(str(exc))
    assets = tmp_path / "assets"
    assets.mkdir()
    for name, path in real.items():
        (assets / name).symlink_to(path)
    (assets / "external-secrets-crds").symlink_to(crds)
    (assets / "kube-apiserver").unlink()
    (assets / "kube-apiserver").write_text("#!/bin/sh\necho 'no apiserver here' >&2\nexit 3\n")
    (assets / "kube-apiserver").chmod(0o755)
    world = tmp_path / "world"
    result = up(world, clean_env(KUBEBUILDER_ASSETS=str(assets)))
    assert result.returncode == 1
    assert "kube-apiserver exited with code 3" in result.stderr
    assert str(world / "realkube" / "kube-apiserver.log") in result.stderr
    deadline = time.monotonic() + 10
    while True:
        left = [p.info["cmdline"] for p in psutil.process_iter(["cmdline"])
                if any(str(world) in arg for arg in p.info["cmdline"] or [])]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert not left, left


def test_down_ends_the_control_plane_even_after_the_supervisor_was_killed(
        tmp_path: Path) -> None:
    """SIGKILL leaves no chance to clean up: ``down`` finds etcd, the API server, the
    controller manager and ESO by the sandbox folder and ends them."""
    try:
        binaries.find_all()
    except binaries.MissingBinary as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(str(exc), pytrace=False)
        pytest.skip(str(exc))
    import signal

    from sandbox import manager

    world = tmp_path / "world"
    info, _ = manager.up(world, kubernetes="real")
    plane = {name: info["pids"][name] for name in binaries.BINARIES}
    os.kill(info["pids"]["supervisor"], signal.SIGKILL)
    time.sleep(0.5)
    assert all(psutil.pid_exists(pid) for pid in plane.values())
    manager.down(world)

    def alive(pid: int) -> str:
        try:
            status = psutil.Process(pid).status()
        except psutil.NoSuchProcess:
            return ""
        return "" if status in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD) else status

    deadline = time.monotonic() + 5  # ended processes are reaped by whoever adopted them
    while any(alive(pid) for pid in plane.values()) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = {name: alive(pid) for name, pid in plane.items() if alive(pid)}
    assert not left, left
