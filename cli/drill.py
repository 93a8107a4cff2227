"""``secretops leak --drill --via github``: an incident drill from detection to response,
against the sandbox (``--dir``, default ``.sandbox``) and the Prefect API in
``$PREFECT_API_URL``.

1. The current value of the secret (default ``openai``) in the environment (default
   ``staging``) is committed to a scratch git repository (a temporary folder, mode 0700).
2. The scanners found here scan it, and the drill prints one line per scanner (ran, or not
   found): detect-secrets (``pip install -e '.[dev]'``), gitleaks on the ``PATH`` or else the
   one ``secretops sandbox build-binaries`` builds into the cache, and TruffleHog when it is on
   the ``PATH``; each report is matched.
3. A receiver starts in this process and the sandbox's GitHub emulator raises the alert and
   delivers its signed webhooks to it; the receiver reads the literal from the emulator's REST
   API, revokes the value and emits the event that starts ``respond-to-leak`` (through the
   automation ``secretops setup`` makes, on a worker), then the detect-secrets baseline is
   posted to it too (it joins the same response).
4. The drill waits for the run and prints how it ended.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from secretops.errors import SecretopsError

VARIABLES = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY",
             "db-password": "DB_PASSWORD"}
TYPES = {"openai": "openai_api_key", "anthropic": "anthropic_api_key"}


def _git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "drill", "GIT_AUTHOR_EMAIL": "drill@example.com",
           "GIT_COMMITTER_NAME": "drill", "GIT_COMMITTER_EMAIL": "drill@example.com"}
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                          env=env, check=False, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise SecretopsError(f"git {args[0]} failed in the scratch repository")
    return done.stdout.strip()


def plant(value: Any, secret: str) -> tuple[Path, str]:
    """A scratch repository with the value committed in ``settings.py``; its commit."""
    repo = Path(tempfile.mkdtemp(prefix="secretops-drill-"))
    _git(repo, "init", "-q")
    settings = repo / "settings.py"
    fd = os.open(settings, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(f'{VARIABLES.get(secret, "SECRET")} = "{value.reveal()}"\n')
    _git(repo, "add", "settings.py")
    _git(repo, "commit", "-q", "-m", "settings for the drill")
    return repo, _git(repo, "rev-parse", "HEAD")


SCANNERS = ("detect-secrets", "gitleaks", "trufflehog")


def find_scanner(name: str) -> Path | None:
    """Where scanner ``name`` is: on the ``PATH``, or (gitleaks) in the binaries' cache."""
    from sandbox.realkube import binaries

    if name in binaries.SCANNERS:
        return binaries.find_scanner(name)
    on_path = shutil.which(name)
    return Path(on_path) if on_path else None


def scanner_command(name: str, executable: Path, repo: Path) -> list[str]:
    """The command that has scanner ``name`` report on ``repo``'s history to stdout."""
    if name == "gitleaks":
        return [str(executable), "git", "--report-format", "json", "--report-path", "-",
                "--no-banner", "--log-level", "error", "--exit-code", "0", str(repo)]
    if name == "trufflehog":
        return [str(executable), "git", f"file://{repo}", "--json", "--no-update"]
    return [str(executable), "scan", "--all-files"]


def scan(name: str, repo: Path) -> tuple[Path | None, bytes | str]:
    """Where scanner ``name`` was found and its report of the repository, or why there is
    none (``not found ...``, ``exit code N``)."""
    executable = find_scanner(name)
    if executable is None:
        where = "on PATH" + (" nor in the cache (`secretops sandbox build-binaries --only "
                             "gitleaks`)" if name == "gitleaks" else "")
        return None, f"not found {where}"
    done = subprocess.run(scanner_command(name, executable, repo), cwd=repo,
                          capture_output=True, check=False, stdin=subprocess.DEVNULL,
                          timeout=300)
    return executable, done.stdout if done.returncode == 0 else f"exit code {done.returncode}"


def scanners(repo: Path) -> dict[str, tuple[Path | None, bytes | str]]:
    """Each scanner's executable and report of the repository, or why there is none."""
    return {name: scan(name, repo) for name in SCANNERS}


def _post(url: str, body: dict[str, Any]) -> Any:
    import urllib.request

    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",  # noqa: S310
                                     headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as answer:  # noqa: S310
        return json.load(answer)


def _post_report(url: str, token: str, report: bytes) -> Any:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, data=report, method="POST",  # noqa: S310
                                     headers={"authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=120) as answer:  # noqa: S310
            return json.load(answer)
    except urllib.error.HTTPError as exc:
        return {"error": f"HTTP {exc.code}"}


def wait_for_run(fingerprint: str, timeout: float) -> Any:
    """The leak run for this value, once final (None if none appeared)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    from secretops import automations

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            runs = [r for r in client.read_flow_runs(flow_filter=FlowFilter(
                name=FlowFilterName(any_=[automations.LEAK_FLOW])), limit=50)
                if r.parameters.get("leaked_fingerprint") == fingerprint]
            if runs and runs[0].state is not None and runs[0].state.is_final():
                return runs[0]
            time.sleep(1)
    return None


def run(args: argparse.Namespace) -> int:
    from cli.installed import require_sandbox

    require_sandbox()
    from cli.alerts import BackgroundReceiver
    from secretops.alerts.app import create_app
    from secretops.alerts.findings import parse_report
    from secretops.alerts.serve import REPORT_CREDENTIAL, build_receiver
    from secretops.credentials import resolve_credential
    from secretops.inventory import load_inventory
    from secretops.models import Stage

    info_file = Path(args.dir) / "sandbox.json"
    if not info_file.is_file():
        raise SecretopsError(f"no sandbox in {args.dir} (secretops sandbox up --dir {args.dir})")
    info = json.loads(info_file.read_text())
    if "github" not in info:
        raise SecretopsError("this sandbox has no GitHub emulator: restart it")
    inventory = load_inventory(info["inventory"])
    secret, env = args.secret or "openai", (args.env or ["staging"])[0]
    receiver = build_receiver(inventory, info["github"], drill=True)
    try:
        held = receiver.wiring.stores(secret, env)[0].read(Stage.current)
        if held is None:
            raise SecretopsError(f"no current {secret} value in {env}")
        repo, commit = plant(held.secret, secret)
        print(f"planted the current {secret} value of {env} ({held.secret.fingerprint()}) in "
              f"{repo}/settings.py, commit {commit[:12]}", flush=True)
        reports = scanners(repo)
        for name, (executable, report) in reports.items():
            if isinstance(report, str):
                ran = "" if executable is None else f"ran ({executable}), "
                print(f"scanner {name}: {ran}{report}", flush=True)
                continue
            findings = parse_report(report)
            print(f"scanner {name}: ran ({executable}), {len(findings)} finding(s)",
                  flush=True)
            for finding in findings:
                print(f"{name}: {receiver.config.responder.index.match(finding).describe()}",
                      flush=True)
        with BackgroundReceiver(create_app(receiver.config)) as url:
            answer = _post(f"{info['github']}/sandbox/alerts", {
                "repository": f"intelliprompt/drill-{int(time.time())}",
                "secret": held.secret.reveal(), "secret_type": TYPES.get(secret, "generic"),
                "path": "settings.py", "line": 1, "commit_sha": commit,
                "hook_url": f"{url}/github", "partner": args.partner})
            print(f"GitHub alert #{answer['number']}: deliveries " + ", ".join(
                f"{d['guid']} -> HTTP {d['status']}" for d in answer["deliveries"]), flush=True)
            baseline = reports["detect-secrets"][1]
            if isinstance(baseline, bytes):
                token = resolve_credential(inventory, REPORT_CREDENTIAL).reveal()
                outcome = _post_report(f"{url}/report", token, baseline)
                print(f"detect-secrets baseline posted: {outcome.get('findings', outcome)}",
                      flush=True)
        shutil.rmtree(repo, ignore_errors=True)
        leak_run = wait_for_run(held.secret.fingerprint(), args.timeout)
    finally:
        receiver.close()
    if leak_run is None:
        print(f"no respond-to-leak run within {args.timeout:.0f} s: run `secretops setup` after "
              "`prefect deploy --all` and start a worker (the value is revoked already)",
              flush=True)
        return 1
    assert leak_run.state is not None
    print(f"respond-to-leak run {leak_run.name} ({leak_run.id}): {leak_run.state.name}",
          flush=True)
    return 0 if leak_run.state.is_completed() else 1
