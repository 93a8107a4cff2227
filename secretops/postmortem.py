"""The post-mortem draft a leak response leaves behind: a markdown document with the incident's
facts, a timeline of every step (start and end), what was revoked and rotated (ids and
fingerprints, never values), the audit findings, the time from the report to revocation, and
the sections the people fill in.

It is written as a run artifact and as a file (``postmortems/`` beside the inventory unless
another folder is given), named after the day, the secret and the run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from secretops.redaction import redact
from secretops.report import StepResult


@dataclass(frozen=True)
class TimedStep:
    """One step of the response, in one environment (or for all of them)."""

    environment: str
    result: StepResult

    @property
    def ended_at(self) -> datetime:
        return self.result.started_at + timedelta(seconds=self.result.seconds)


@dataclass
class PostMortem:
    secret: str
    environments: list[str]
    reported_at: datetime
    exposed_since: datetime
    reason: str
    drill: bool
    run: str
    steps: list[TimedStep] = field(default_factory=list)
    outcome: str = "running"
    alert: dict[str, str] = field(default_factory=dict)
    """The detector's alert that reported the leak: source, number, repository, location
    (path, line, commit, url) and created_at; empty when a person reported it."""

    def add(self, environment: str, result: StepResult) -> StepResult:
        self.steps.append(TimedStep(environment, result))
        return result

    def _evidence(self, *prefixes: str, exclude: bool = False) -> list[str]:
        return [f"{s.environment}: {line}" for s in self.steps for line in s.result.evidence
                if s.result.name.startswith(prefixes) != exclude]

    @property
    def revoked_at(self) -> datetime | None:
        """When the last environment's revocation ended (the target refused the credential)."""
        ends = [s.ended_at for s in self.steps if s.result.name.startswith("1.")
                and s.result.outcome == "ok"]
        return max(ends) if ends else None

    def source_line(self) -> str:
        """The exposure's source and time, in one line (empty without an alert)."""
        a = self.alert
        if not a:
            return ""
        what = {"github": "GitHub secret scanning alert"}.get(a.get("source", ""),
                                                              f"{a.get('source', '')} finding")
        number = f" #{a['number']}" if a.get("number") else ""
        where = a.get("path", "")
        where += f":{a['line']}" if a.get("line") else ""
        where += f" (commit {a['commit'][:12]})" if a.get("commit") else ""
        parts = [f"{what}{number}", f"in {a['repository']}" if a.get("repository") else "",
                 f"at {where}" if where else "", f"<{a['url']}>" if a.get("url") else "",
                 f"raised at {a['created_at']}" if a.get("created_at") else ""]
        return "exposure source: " + " ".join(p for p in parts if p)

    @property
    def refused_before_revocation(self) -> bool:
        """Whether the provider refused the key before secretops revoked it (the earliest
        revocation found it already refused)."""
        from secretops.revocation import ALREADY_REFUSED

        first = sorted((s for s in self.steps if s.result.name.startswith("1.")),
                       key=lambda s: s.result.started_at)
        return bool(first) and any(line.startswith(ALREADY_REFUSED)
                                   for line in first[0].result.evidence)

    def replaced_at(self) -> datetime | None:
        """When the last replacement step ended (the new credential verified and in use)."""
        ends = [s.ended_at for s in self.steps if s.result.outcome == "ok"
                and not s.result.name.startswith(("1.", "4.", "5."))]
        return max(ends) if ends else None

    def time_to_revoke(self) -> str:
        revoked = self.revoked_at
        if revoked is None:
            return "not revoked"
        return f"{(revoked - self.reported_at).total_seconds():.1f} s"

    def markdown(self) -> str:
        title = f"{'DRILL: ' if self.drill else ''}Post-mortem: leak of `{self.secret}`"
        lines = [
            f"# {title}", "",
            f"- **reported at**: {self.reported_at.isoformat()}",
            f"- **exposed since**: {self.exposed_since.isoformat()}",
            f"- **environments**: {', '.join(self.environments)}",
            f"- **reason**: {self.reason}",
            f"- **flow run**: {self.run}",
            f"- **time from report to revocation**: {self.time_to_revoke()}",
            f"- **outcome**: {self.outcome}",
        ]
        if self.alert:
            lines.insert(3, f"- **source**: {self.source_line().removeprefix('exposure source: ')}")
        replaced = self.replaced_at()
        if replaced is not None:
            lines.append("- **time from report to replacement verified**: "
                         f"{(replaced - self.reported_at).total_seconds():.1f} s")
        lines.append("")
        if self.refused_before_revocation:
            lines.append("The provider had already revoked the key when the response began (for "
                         "example through GitHub's secret scanning partner program): secretops "
                         "went straight to the replacement, and the application's downtime is "
                         "the replacement's time above.")
        else:
            lines.append("Revocation came first, before any replacement existed: the consumers "
                         "failed until the new credential was in place (the runbook accepts "
                         "that downtime).")
        lines += [
            "", "## Timeline", "",
            "| started (UTC) | ended (UTC) | environment | step | outcome |",
            "|---|---|---|---|---|",
        ]
        for step in sorted(self.steps, key=lambda s: s.result.started_at):
            lines.append(f"| {step.result.started_at:%H:%M:%S.%f} | {step.ended_at:%H:%M:%S.%f} "
                         f"| {step.environment} | {step.result.name} | {step.result.outcome} |")
        sections = [
            ("What was revoked", self._evidence("1.")),
            ("What was rotated", self._evidence("1.", "4.", exclude=True)),
            ("Audit findings", self._evidence("4.")),
        ]
        for heading, items in sections:
            lines += ["", f"## {heading}", ""]
            lines += [f"- {item}" for item in items] or ["- nothing recorded"]
        lines += [
            "", "## To be filled in by the people involved", "",
            "### Root cause", "", "_How did the secret leak?_", "",
            "### Impact", "", "_What could the exposure have reached? Was it used?_", "",
            "### Action items", "", "- [ ] _owner: action (due date)_", "",
        ]
        return redact("\n".join(lines))

    def file_name(self) -> str:
        return f"{self.reported_at:%Y-%m-%dT%H%M%S}-leak-{self.secret}-{self.run[:8]}.md"

    def write(self, folder: Path) -> Path:
        """Write the post-mortem into ``folder`` (created if needed); returns the file."""
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / self.file_name()
        partial = path.with_suffix(".partial")
        partial.write_text(self.markdown(), encoding="utf-8")
        partial.replace(path)
        return path
