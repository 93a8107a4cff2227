"""What the receiver does with a finding, once matched (:mod:`secretops.alerts.matching`):

- not ours: recorded as the event ``secretops.alert.received`` (outcome ``not ours``);
- already rotated out: recorded the same way (outcome ``already rotated``); nothing changes;
- live (current or pending): the value is revoked at once in each environment that holds it
  (``secretops.revocation``, by fingerprint: only that value), then the event
  ``secretops.leak.alerted`` asks the automation ``secretops setup`` made for a run of the
  ``respond-to-leak`` deployment, which replaces the value under the secret's lock, audits and
  writes the post-mortem. The receiver's revocation is the run's ``revoked_before`` evidence,
  as the CLI's is.

One response per leaked value: findings of one value are taken one at a time; while its
response is running (known here, or a non-final run of the deployment with that
``leaked_fingerprint``) a later alert joins it (outcome ``joined``, the run named in the
event) and starts nothing. Events carry fingerprints, ids and locations, never a value.
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from secretops import automations
from secretops.alerts.findings import Finding
from secretops.alerts.matching import FingerprintIndex, Match, Verdict, live_fingerprint
from secretops.revocation import ROTATED_OUT, revoke
from secretops.wiring import Wiring

RECEIVED_EVENT = "secretops.alert.received"
Emit = Callable[[dict[str, Any]], None]
FindRun = Callable[[str], str | None]


class AlertOutcome(enum.StrEnum):
    """What became of one finding, in the words the receiver answers, logs and records."""

    not_ours = "not ours"
    rotated = "already rotated"
    started = "started"
    joined = "joined"


@dataclass(frozen=True)
class Outcome:
    """What became of one finding (:class:`AlertOutcome`)."""

    outcome: AlertOutcome
    where: str
    secret: str | None = None
    environments: tuple[str, ...] = ()
    run: str | None = None
    evidence: tuple[str, ...] = ()

    def line(self) -> str:
        what = f"{self.secret} in {', '.join(self.environments)}: " if self.secret else ""
        run = f" (run {self.run})" if self.run else ""
        return f"{self.where}: {what}{self.outcome.value}{run}"

    def json(self) -> dict[str, Any]:
        return {"outcome": self.outcome.value, "where": self.where, "secret": self.secret,
                "environments": list(self.environments), "run": self.run}


@dataclass
class _Response:
    started: float
    event: str
    run: str | None = None
    looked: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)


def event(name: str, resource: dict[str, str], payload: dict[str, Any],
          related: list[dict[str, str]] | None = None) -> dict[str, Any]:
    """A Prefect event as ``POST /api/events`` takes it."""
    return {"id": str(uuid4()), "occurred": datetime.now(UTC).isoformat(), "event": name,
            "resource": resource, "related": related or [], "payload": payload}


class PrefectApi:
    """The Prefect API of the current settings through one client, opened on first use and
    kept (each ``get_client`` would open a connection). Thread-safe."""

    def __init__(self) -> None:
        self._client: Any = None
        self._lock = threading.Lock()

    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                from prefect.client.orchestration import get_client

                self._client = get_client(sync_client=True)
                self._client.__enter__()
            return self._client

    def emit(self, body: dict[str, Any]) -> None:
        """Send one event, waiting for the API's answer."""
        self.client().request("POST", "/events", json=[body]).raise_for_status()

    def running_response(self, fingerprint: str) -> str | None:
        """The id of a non-final run of the leak flow for this value, if any."""
        from prefect.client.schemas.filters import (
            FlowFilter,
            FlowFilterName,
            FlowRunFilter,
            FlowRunFilterState,
            FlowRunFilterStateType,
        )
        from prefect.client.schemas.objects import StateType

        waiting = [StateType.SCHEDULED, StateType.PENDING, StateType.RUNNING, StateType.PAUSED,
                   StateType.CANCELLING]
        runs = self.client().read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[automations.LEAK_FLOW])),
            flow_run_filter=FlowRunFilter(state=FlowRunFilterState(
                type=FlowRunFilterStateType(any_=waiting))), limit=200)
        found = [r for r in runs if r.parameters.get("leaked_fingerprint") == fingerprint]
        return str(found[0].id) if found else None


class Responder:
    """Matches findings and starts or joins responses (see the module doc). Thread-safe."""

    def __init__(self, wiring: Wiring, index: FingerprintIndex, emit: Emit | None = None,
                 find_run: FindRun | None = None, drill: bool = False,
                 window_seconds: float | None = None) -> None:
        api = PrefectApi()
        self.wiring, self.index = wiring, index
        self.emit, self.find_run = emit or api.emit, find_run or api.running_response
        self.drill = drill
        self.window = (automations.ALERT_WINDOW.total_seconds() if window_seconds is None
                       else window_seconds)
        self._responses: dict[str, _Response] = {}
        self._lock = threading.Lock()

    def handle(self, finding: Finding, alert: dict[str, str]) -> Outcome:
        match = self.index.match(finding)
        if match.verdict is Verdict.live:
            return self._live(match, alert)
        said = (AlertOutcome.not_ours if match.verdict is Verdict.not_ours
                else AlertOutcome.rotated)
        outcome = Outcome(said, finding.where(), match.secret, tuple(match.environments))
        self._record(outcome, alert, match)
        return outcome

    def _record(self, outcome: Outcome, alert: dict[str, str], match: Match | None) -> None:
        resource = {"prefect.resource.id": f"secretops.alert.{alert.get('source', 'report')}."
                                           f"{alert.get('delivery') or uuid4()}",
                    "prefect.resource.name": outcome.where[:200]}
        related = []
        if outcome.run:
            related.append({"prefect.resource.id": f"prefect.flow-run.{outcome.run}",
                            "prefect.resource.role": "flow-run"})
        if outcome.secret:
            related.append({"prefect.resource.id": f"secretops.secret.{outcome.secret}",
                            "prefect.resource.role": "secret"})
        payload = {**outcome.json(), "alert": alert}
        if match is not None and match.holdings:
            payload["fingerprint"] = match.fingerprint
        self.emit(event(RECEIVED_EVENT, resource, payload, related))

    def _slot(self, fingerprint: str) -> _Response:
        with self._lock:
            slot = self._responses.get(fingerprint)
            if slot is None or time.monotonic() - slot.started > self.window:
                slot = self._responses[fingerprint] = _Response(time.monotonic(), "")
            return slot

    def _live(self, match: Match, alert: dict[str, str]) -> Outcome:
        secret, envs = str(match.secret), tuple(match.environments)
        fingerprint = live_fingerprint(self.wiring, match)
        if fingerprint is None:
            self.index.refresh()
            outcome = Outcome(AlertOutcome.rotated, match.finding.where(), secret, envs)
            self._record(outcome, alert, match)
            return outcome
        slot = self._slot(fingerprint)
        with slot.lock:
            if not slot.run and time.monotonic() - slot.looked >= 1.0:
                slot.run, slot.looked = self.find_run(fingerprint), time.monotonic()
            if slot.event or slot.run:
                slot.event = slot.event or "found running"
                outcome = Outcome(AlertOutcome.joined, match.finding.where(), secret, envs,
                                  slot.run)
                self._record(outcome, alert, match)
                return outcome
            outcome = self._start(match, alert, fingerprint, secret, envs)
            slot.event = outcome.run or "emitted"
            return outcome

    def _start(self, match: Match, alert: dict[str, str], fingerprint: str, secret: str,
               envs: tuple[str, ...]) -> Outcome:
        reported = datetime.now(UTC)
        since = _time(alert.get("created_at")) or reported
        revoked = {env: revoke(self.wiring, secret, env, None, since, fingerprint)
                   for env in envs}
        revoked_at = datetime.now(UTC)
        if all(lines == [ROTATED_OUT] for lines in revoked.values()):
            self.index.refresh()
            outcome = Outcome(AlertOutcome.rotated, match.finding.where(), secret, envs)
            self._record(outcome, alert, match)
            return outcome
        body = event(automations.ALERT_EVENT, {
            "prefect.resource.id": f"secretops.secret.{secret}", "secretops.secret": secret,
            automations.ALERT_FINGERPRINT_LABEL: fingerprint,
        }, {
            "secret": secret, "environments": list(envs), "fingerprint": fingerprint,
            "exposed_since": since.isoformat(), "drill": self.drill,
            "reason": f"{match.finding.where()}"[:200], "alert": alert,
            "revoked_before": revoked, "revoked_before_at": revoked_at.isoformat(),
        })
        self.emit(body)
        evidence = tuple(f"{env}: {line}" for env, lines in revoked.items() for line in lines)
        return Outcome(AlertOutcome.started, match.finding.where(), secret, envs, None, evidence)


def _time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        found = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    found = found if found.tzinfo else found.replace(tzinfo=UTC)
    return min(found, datetime.now(UTC))


def event_id(body: dict[str, Any]) -> UUID:
    return UUID(str(body["id"]))
