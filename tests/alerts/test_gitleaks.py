"""The real gitleaks (on the ``PATH``, or built into the binaries' cache by ``secretops sandbox
build-binaries --only gitleaks``) scans the drill's scratch repository holding a sandbox-shaped
OpenAI key, and its JSON report, through the receiver's parsing and fingerprint index, names
the planted value; a scanner found nowhere is one line saying where the drill looked."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli import drill
from sandbox.openai_state import new_key_value
from sandbox.realkube import binaries
from secretops.adapters.files import DotenvStore
from secretops.alerts.findings import parse_report
from secretops.alerts.matching import FingerprintIndex, Verdict
from secretops.models import SecretValue


@pytest.fixture()
def gitleaks() -> Path:
    try:
        return binaries.find("gitleaks")
    except binaries.MissingBinary as exc:
        reason = str(exc)  # names PATH, the cache and how to build it
    if os.environ.get("CI") == "true":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


@pytest.fixture()
def planted() -> Iterator[tuple[SecretValue, Path, str]]:
    value = SecretValue(new_key_value("sk-svcacct-"))
    repo, commit = drill.plant(value, "openai")
    try:
        yield value, repo, commit
    finally:
        shutil.rmtree(repo, ignore_errors=True)


def test_the_real_gitleaks_report_matches_the_planted_fingerprint(
        gitleaks: Path, planted: tuple[SecretValue, Path, str], tmp_path: Path) -> None:
    value, repo, commit = planted
    executable, report = drill.scan("gitleaks", repo)
    assert executable == gitleaks
    assert isinstance(report, bytes), report
    findings = parse_report(report)
    assert findings, report.decode()
    assert {f.source for f in findings} == {"gitleaks"}
    ours = [f for f in findings if f.location.get("rule") == "openai-api-key"]
    assert len(ours) == 1, [f.location for f in findings]
    assert ours[0].location["path"] == "settings.py"
    assert ours[0].location["line"] == "1"
    assert ours[0].location["commit"] == commit

    env = tmp_path / ".env"
    env.write_text(f"OPENAI_API_KEY={value.reveal()}\n")
    store = DotenvStore(env, "OPENAI_API_KEY")
    index = FingerprintIndex(lambda: [("openai", "staging", store)])
    match = index.match(ours[0])
    assert match.verdict is Verdict.live
    assert match.fingerprint == value.fingerprint()
    assert (match.secret, match.environments) == ("openai", ["staging"])

    env.write_text(f"OPENAI_API_KEY={new_key_value('sk-svcacct-')}\n")  # rotated elsewhere
    index.refresh()
    assert index.match(ours[0]).verdict is Verdict.not_ours


def test_a_scanner_found_nowhere_is_one_line(
        planted: tuple[SecretValue, Path, str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    _, repo, _ = planted
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(binaries.SCANNERS["gitleaks"].envtest_variable, raising=False)
    for name in ("gitleaks", "trufflehog"):
        executable, report = drill.scan(name, repo)
        assert executable is None
        assert isinstance(report, str) and report.startswith("not found on PATH")
        assert "\n" not in report
    assert "secretops sandbox build-binaries --only gitleaks" in drill.scan("gitleaks", repo)[1]
