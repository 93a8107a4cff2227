"""The record of one run: each step with its timing and evidence, rendered as markdown.

Only ids, fingerprints, pod names and counts go in: never a value.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from secretops.redaction import redact


@dataclass(frozen=True)
class StepResult:
    """What one runbook step did: when, how long, and the evidence (ids, counts, pod names)."""

    name: str
    started_at: datetime
    seconds: float
    outcome: str = "ok"
    evidence: tuple[str, ...] = ()


@dataclass
class RunReport:
    title: str
    facts: dict[str, str] = field(default_factory=dict)
    steps: list[StepResult] = field(default_factory=list)
    outcome: str = "running"
    notes: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def add(self, result: StepResult) -> StepResult:
        self.steps.append(result)
        return result

    def failed(self, name: str, error: BaseException) -> None:
        message = redact(str(error)) or type(error).__name__
        self.steps.append(StepResult(name, datetime.now(UTC), 0.0, f"failed: {message}"))

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started

    def markdown(self) -> str:
        lines = [f"# {self.title}", ""]
        lines += [f"- **{key}**: {value}" for key, value in self.facts.items()]
        lines += [f"- **outcome**: {self.outcome}", f"- **wall time**: {self.seconds:.1f} s", ""]
        lines += ["| # | step | started (UTC) | seconds | outcome |", "|---|---|---|---|---|"]
        for number, step in enumerate(self.steps, 1):
            started = step.started_at.strftime("%H:%M:%S.%f")[:-3]
            lines.append(
                f"| {number} | {step.name} | {started} | {step.seconds:.2f} | {step.outcome} |"
            )
        evidence = [(s.name, e) for s in self.steps for e in s.evidence]
        if evidence:
            lines += ["", "## Evidence", ""]
            lines += [f"- {name}: {item}" for name, item in evidence]
        if self.notes:
            lines += ["", "## Notes", ""]
            lines += [f"- {note}" for note in self.notes]
        return redact("\n".join(lines) + "\n")
