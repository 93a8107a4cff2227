"""Start, find and stop the sandbox supervisor (``python -m sandbox.server``).

The supervisor writes ``DIR/sandbox.json`` once every emulator answers; that file is the
contract for drills, scripts and tests (docs/sandbox.md). ``up`` is idempotent, ``down`` ends
every process the sandbox started.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sandbox import emulators
from secretops.errors import SecretopsError

BOOT_TIMEOUT = 60.0
REAL_BOOT_TIMEOUT = 180.0
CONTROL_PLANE = ("etcd", "kube-apiserver", "kube-controller-manager", "external-secrets")
STOP_TIMEOUT = 15.0


def _info_path(directory: Path) -> Path:
    return directory / "sandbox.json"


def read_info(directory: Path) -> dict[str, Any] | None:
    path = _info_path(directory)
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return data


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours counts as gone
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def _healthy(info: dict[str, Any]) -> bool:
    try:
        with urllib.request.urlopen(f"{info['control']}/healthz", timeout=2) as response:  # noqa: S310
            return bool(response.status == 200)
    except (OSError, KeyError):
        return False


def status(directory: Path) -> dict[str, Any] | None:
    """The running sandbox's ``sandbox.json``, or None when none runs in ``directory``."""
    info = read_info(directory)
    if info is None or not _alive(info.get("pids", {}).get("supervisor")):
        return None
    return info if _healthy(info) else None


def up(
    directory: Path,
    faults: list[str] | None = None,
    progress: Callable[[str], None] = lambda _: None,
    kubernetes: str = "sandbox",
) -> tuple[dict[str, Any], bool]:
    """Start the sandbox in ``directory`` unless it already runs. Returns (info, started).
    ``kubernetes``: ``sandbox`` (the sandbox's own API server) or ``real`` (a real control
    plane; a missing binary is refused here, in one line, before anything starts)."""
    directory = directory.resolve()
    if kubernetes == "real":
        from sandbox.realkube import binaries

        binaries.find_all()
        binaries.eso_crds_dir()
    running = status(directory)
    if running is not None:
        return running, False
    _kill_leftovers(directory)
    directory.mkdir(parents=True, exist_ok=True)
    _info_path(directory).unlink(missing_ok=True)
    log_path = directory / "sandbox.log"
    command = [sys.executable, "-m", "sandbox.server", "--dir", str(directory)]
    for spec in faults or []:
        command += ["--fault", spec]
    command += ["--kubernetes", kubernetes]
    progress(f"starting the sandbox in {directory} (log: {log_path})")
    started = time.monotonic()
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, cwd=directory,
        )
    deadline = started + (REAL_BOOT_TIMEOUT if kubernetes == "real" else BOOT_TIMEOUT)
    while time.monotonic() < deadline:
        info = read_info(directory)
        if info is not None and info.get("pids", {}).get("supervisor") == proc.pid:
            progress(f"sandbox up in {time.monotonic() - started:.1f} s")
            return info, True
        if proc.poll() is not None:
            raise SecretopsError(
                f"the sandbox supervisor exited with code {proc.returncode} while starting; "
                f"last lines of {log_path}:\n{_tail(log_path)}"
            )
        time.sleep(0.1)
    proc.terminate()
    proc.wait(30)
    _kill_leftovers(directory)
    raise SecretopsError(f"the sandbox did not start in time; see {log_path}")


def down(directory: Path) -> int:
    """Stop the sandbox in ``directory``. Returns how many processes were ended."""
    directory = directory.resolve()
    info = read_info(directory)
    if info is None:
        return 0
    ended = 0
    supervisor = info.get("pids", {}).get("supervisor")
    if _alive(supervisor):
        os.kill(supervisor, signal.SIGTERM)
        ended += 1
        _wait_gone([supervisor], STOP_TIMEOUT)
    ended += _kill_leftovers(directory)
    _info_path(directory).unlink(missing_ok=True)
    return ended


def set_fault(directory: Path, target: str, knobs: dict[str, Any]) -> dict[str, Any]:
    info = status(directory.resolve())
    if info is None:
        raise SecretopsError(f"no sandbox running in {directory}")
    request = urllib.request.Request(  # noqa: S310
        f"{info['control']}/faults/{target}", data=json.dumps(knobs).encode(), method="PUT",
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
        result: dict[str, Any] = json.loads(response.read())
    return result


def describe(info: dict[str, Any]) -> str:
    lines = [f"sandbox in {info['dir']}"]
    lines.append(f"  kubeconfig   {info['kubeconfig']}  (kubectl --kubeconfig ... get pods -A)")
    lines.append(f"  kubernetes   {info['kubernetes']['server']}")
    lines.append(f"  aws          {info['aws']['endpoint_url']} ({info['aws']['region']})")
    for emulator in emulators.registry().values():
        lines += emulator.describe(info)
    pg = info["postgres"]
    lines.append(f"  postgres     {pg['host']}:{pg['port']}/{pg['database']}")
    for name, url in info["providers"].items():
        lines.append(f"  {name:<12} {url}")
    for name, url in info["services"].items():
        lines.append(f"  service      {name}: {url}")
    lines.append(f"  inventory    {info['inventory']}")
    return "\n".join(lines)


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _wait_gone(pids: list[int], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(_alive(p) for p in pids):
            return True
        time.sleep(0.05)
    return False


def _ours(cmdline: list[str], directory: Path) -> bool:
    """A supervisor of this sandbox or a process of one of its emulators (the CI account,
    ``sandbox.iam``), or a PostgreSQL server whose data folder is inside it."""
    modules = ("sandbox.server", *(module for emulator in emulators.registry().values()
                                   for module in emulator.processes))
    if any(module in cmdline for module in modules) and str(directory) in cmdline:
        return True
    if cmdline and Path(cmdline[0]).name in CONTROL_PLANE:
        return any(f"{directory}/" in arg for arg in cmdline)
    if cmdline and Path(cmdline[0]).name == "postgres" and "-D" in cmdline:
        data = cmdline[cmdline.index("-D") + 1] if cmdline.index("-D") + 1 < len(cmdline) else ""
        return data.startswith(f"{directory}/")
    return False


def _our_operator(proc: Any, directory: Path) -> bool:
    """External Secrets Operator of this sandbox: its kubeconfig (in its environment) is in
    the sandbox folder."""
    cmdline = proc.info.get("cmdline") or []
    if not cmdline or Path(cmdline[0]).name != "external-secrets":
        return False
    try:
        return str(proc.environ().get("KUBECONFIG", "")).startswith(f"{directory}/")
    except Exception:  # gone, or not ours to read
        return False


def _kill_leftovers(directory: Path) -> int:
    """End every process recorded in ``sandbox.json`` and every process still using the
    sandbox folder (a PostgreSQL left by a supervisor that was killed)."""
    import psutil

    info = read_info(directory) or {}
    victims: dict[int, psutil.Process] = {}
    for pid in info.get("pids", {}).values():
        if _alive(pid):
            try:
                victims[pid] = psutil.Process(pid)
            except psutil.NoSuchProcess:
                continue
    for proc in psutil.process_iter(["pid", "cmdline"]):
        if _ours(proc.info.get("cmdline") or [], directory) or _our_operator(proc, directory):
            victims[proc.pid] = proc
    for proc in list(victims.values()):
        try:
            for child in proc.children(recursive=True):
                victims[child.pid] = child
        except psutil.NoSuchProcess:
            continue
    for proc in victims.values():
        try:
            proc.terminate()
        except psutil.NoSuchProcess:
            continue
    _, alive = psutil.wait_procs(list(victims.values()), timeout=5)
    for proc in alive:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            continue
    return len(victims)


def mint_console_key(info: dict[str, Any], name: str) -> str:
    """Create an Anthropic key in the sandbox's console, as a person would; the value is
    shown once, like the real console shows it."""
    request = urllib.request.Request(  # noqa: S310
        f"{info['providers']['console']}/keys", data=json.dumps({"name": name}).encode(),
        method="POST", headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        key: str = json.loads(response.read())["key"]
    return key
