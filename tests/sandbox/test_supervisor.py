"""`secretops sandbox up/status/down` as a user runs them: idempotent, fast, and leaving
nothing behind."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil
import yaml

from secretops.inventory import load_inventory


def secretops(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli", *args],
                          capture_output=True, text=True, timeout=120)


def listening_ports(pids: set[int]) -> set[int]:
    return {c.laddr.port for c in psutil.net_connections("inet")
            if c.status == psutil.CONN_LISTEN and c.pid in pids}


def test_up_twice_status_and_down_leave_nothing() -> None:
    directory = Path(tempfile.mkdtemp(prefix="secretops-updown-"))
    try:
        started = time.monotonic()
        first = secretops("sandbox", "up", "--dir", str(directory))
        boot = time.monotonic() - started
        assert first.returncode == 0, first.stderr
        assert boot < 10, f"boot took {boot:.1f} s"
        info = json.loads((directory / "sandbox.json").read_text())
        supervisor = info["pids"]["supervisor"]
        family = {supervisor, info["pids"]["postgres"]}
        family |= {c.pid for c in psutil.Process(supervisor).children(recursive=True)}
        family |= {c.pid for c in psutil.Process(info["pids"]["postgres"]).children(True)}
        ports = listening_ports(family)
        assert len(ports) >= 9, ports

        second = secretops("sandbox", "up", "--dir", str(directory))
        assert second.returncode == 0 and "already running" in second.stdout
        assert json.loads((directory / "sandbox.json").read_text())["pids"] == info["pids"]

        status = secretops("sandbox", "status", "--dir", str(directory))
        assert status.returncode == 0 and info["kubernetes"]["server"] in status.stdout
        for key in ("kubeconfig", "inventory"):
            assert Path(info[key]).exists()
        for key in ("openai", "anthropic", "console"):
            assert info["providers"][key].startswith("http://127.0.0.1:")
        assert set(info["services"]) == {"staging", "production"}
        assert load_inventory(info["inventory"]).secret_ids()
        config = yaml.safe_load(Path(info["kubeconfig"]).read_text())
        assert {c["name"] for c in config["contexts"]} >= {"sandbox", "emergency-admin"}
        for name in (directory / "credentials").iterdir():
            assert name.stat().st_mode & 0o077 == 0, name

        down = secretops("sandbox", "down", "--dir", str(directory))
        assert down.returncode == 0, down.stderr
        assert not [p for p in family if psutil.pid_exists(p)
                    and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
        assert not listening_ports(family)
        assert not (directory / "sandbox.json").exists()
        assert secretops("sandbox", "status", "--dir", str(directory)).returncode == 1
        with_no_sandbox = secretops("sandbox", "down", "--dir", str(directory))
        assert with_no_sandbox.returncode == 0 and "no sandbox" in with_no_sandbox.stdout
    finally:
        secretops("sandbox", "down", "--dir", str(directory))
        shutil.rmtree(directory, ignore_errors=True)


def test_service_endpoint_latency(sandbox: dict[str, object]) -> None:
    """Every request is a new PostgreSQL login and two provider checks, at a ready pod."""
    services = sandbox["services"]
    assert isinstance(services, dict)
    timings = []
    with httpx.Client() as client:
        for _ in range(50):
            begun = time.perf_counter()
            response = client.get(services["production"])
            timings.append(time.perf_counter() - begun)
            assert response.status_code == 200, response.text
    timings.sort()
    median, p95 = timings[len(timings) // 2], timings[int(len(timings) * 0.95)]
    print(f"service endpoint: median {median * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms")
    assert median < 0.25
