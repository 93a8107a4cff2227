"""What a detector found: one :class:`Finding` per exposed value, from a GitHub secret scanning
alert or a scanner's report (gitleaks JSON, TruffleHog v3 JSON lines, a detect-secrets
baseline).

A finding carries the exposed value only as a :class:`~secretops.models.SecretValue` that is
never remembered by the log filter (a flood of strangers' values must not grow it), or, for
detect-secrets, only the SHA-1 the baseline holds. Where it was found (repository, file, line,
commit) is plain text; nothing in :meth:`Finding.where` or an error message comes from a
value.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from secretops.errors import SecretopsError
from secretops.models import SecretValue

MAX_FINDINGS = 10_000
_TEXT = 200


class ReportError(SecretopsError):
    """A report that is not one of the known formats, or not well formed."""


@dataclass(frozen=True)
class Finding:
    """One exposed value and where it was seen."""

    source: str
    """``github``, ``gitleaks``, ``trufflehog`` or ``detect-secrets``."""
    location: dict[str, str] = field(default_factory=dict)
    """repository, path, line, commit, rule, alert number, url: as the detector gave them."""
    value: SecretValue | None = None
    sha1: str | None = None

    def digests(self) -> tuple[str, str]:
        """``("sha256", hex)`` for a literal, ``("sha1", hex)`` for a baseline's hash."""
        if self.value is not None:
            return "sha256", hashlib.sha256(self.value.reveal().encode()).hexdigest()
        return "sha1", str(self.sha1)

    def where(self) -> str:
        """The location in one line: ``owner/repo config.py:3 (commit 1a2b3c4d)``."""
        loc = self.location
        parts = [loc.get("repository", ""), loc.get("path", "")]
        text = " ".join(p for p in parts if p)
        if loc.get("line"):
            text += f":{loc['line']}"
        if loc.get("commit"):
            text += f" (commit {loc['commit'][:12]})"
        if loc.get("alert"):
            text = f"alert #{loc['alert']} " + text
        return f"{self.source}: {text.strip() or 'no location given'}"


def _text(value: Any) -> str:
    """A location field as short plain text (numbers too); anything else is dropped."""
    if isinstance(value, bool) or value is None:
        return ""
    if isinstance(value, int | float | str):
        return "".join(c for c in str(value) if c.isprintable())[:_TEXT]
    return ""


def _literal(value: Any) -> SecretValue | None:
    return SecretValue(value, remember=False) if isinstance(value, str) and value else None


def _location(**fields: Any) -> dict[str, str]:
    return {k: t for k, v in fields.items() if (t := _text(v))}


def _gitleaks(items: list[Any]) -> list[Finding]:
    found = []
    for item in items:
        if not isinstance(item, dict) or "RuleID" not in item:
            raise ReportError("a gitleaks finding is an object with RuleID and Secret")
        value = _literal(item.get("Secret"))
        if value is None:
            continue
        found.append(Finding("gitleaks", _location(
            path=item.get("File"), line=item.get("StartLine"), commit=item.get("Commit"),
            rule=item.get("RuleID"), repository=item.get("Repository")), value))
    return found


def _trufflehog(lines: list[str]) -> list[Finding]:
    found = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError:
            raise ReportError(f"line {number} of the TruffleHog report is not JSON") from None
        if not isinstance(item, dict) or "DetectorName" not in item:
            raise ReportError(f"line {number} of the TruffleHog report has no DetectorName")
        value = _literal(item.get("Raw")) or _literal(item.get("RawV2"))
        if value is None:
            continue
        data = (item.get("SourceMetadata") or {}).get("Data") or {}
        git = next((v for v in data.values() if isinstance(v, dict)), {}) if isinstance(
            data, dict) else {}
        found.append(Finding("trufflehog", _location(
            path=git.get("file"), line=git.get("line"), commit=git.get("commit"),
            repository=git.get("repository"), rule=item.get("DetectorName")), value))
    return found


def _detect_secrets(baseline: dict[str, Any]) -> list[Finding]:
    results = baseline.get("results")
    if not isinstance(results, dict):
        raise ReportError("a detect-secrets baseline has a 'results' object")
    found = []
    for path, items in results.items():
        if not isinstance(items, list):
            raise ReportError("each file of a detect-secrets baseline lists its findings")
        for item in items:
            digest = item.get("hashed_secret") if isinstance(item, dict) else None
            if not (isinstance(digest, str) and len(digest) == 40
                    and all(c in "0123456789abcdef" for c in digest)):
                raise ReportError("a detect-secrets finding has a 40-digit hex hashed_secret")
            found.append(Finding("detect-secrets", _location(
                path=path, line=item.get("line_number"), rule=item.get("type")),
                sha1=digest))
    return found


def parse_report(body: bytes) -> list[Finding]:
    """The findings of a report, whichever of the three formats it is (told by its shape)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ReportError("the report is not UTF-8 text") from None
    try:
        data: Any = json.loads(text)
    except ValueError:
        lines = text.splitlines()
        if len(lines) > 1 and lines[0].lstrip().startswith("{"):
            found = _trufflehog(lines)
        else:
            raise ReportError("the report is not JSON, nor JSON lines") from None
    else:
        if isinstance(data, list):
            found = _gitleaks(data)
        elif isinstance(data, dict) and "DetectorName" in data:
            found = _trufflehog([text])
        elif isinstance(data, dict) and "results" in data and "plugins_used" in data:
            found = _detect_secrets(data)
        else:
            raise ReportError("unknown report format: expected gitleaks JSON (a list), "
                              "TruffleHog v3 JSON lines or a detect-secrets baseline")
    if len(found) > MAX_FINDINGS:
        raise ReportError(f"the report has more than {MAX_FINDINGS} findings")
    return found
