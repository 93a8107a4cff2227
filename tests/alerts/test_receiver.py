"""The receiver over real HTTP (uvicorn on loopback), with the sandbox's GitHub delivering and
the session's Prefect server recording: bad deliveries and reports are refused with the right
status and one log line without the body, and nothing is emitted or changed; a value that is
not ours is answered 202 and recorded; a value already rotated out is reported and nothing
is rotated."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from secretops.alerts.respond import AlertOutcome, Outcome
from secretops.models import SecretValue, Stage
from tests.alerts.conftest import Alerts, World, alert_events

BODY_MARK = "body-marker-" + secrets.token_hex(8)
PAYLOAD = {"action": "created", "alert": {"number": 1, "created_at": "2026-12-01T00:00:00Z"},
           "repository": {"full_name": "intelliprompt/app"}, "note": BODY_MARK}


def signed(alerts: Alerts, body: bytes) -> str:
    key = alerts.credential("github-webhook-secret").encode()
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def headers(event: str = "secret_scanning_alert", **extra: str) -> dict[str, str]:
    return {"content-type": "application/json", "x-github-event": event,
            "x-github-delivery": secrets.token_hex(16), **extra}


def staging_key(world: World) -> SecretValue:
    credential = world.wiring.stores("openai", "staging")[0].read(Stage.current)
    assert credential is not None
    return credential.secret


def bad_requests(alerts: Alerts) -> list[tuple[str, str, dict[str, str], bytes, int]]:
    body = json.dumps(PAYLOAD).encode()
    not_json = b'{"action": "created", ' + BODY_MARK.encode()
    token = {"authorization": f"Bearer {alerts.credential('alerts-report-token')}"}
    return [
        ("unsigned", "/github", headers(), body, 401),
        ("wrongly signed", "/github", headers(**{"x-hub-signature-256": "sha256=" + "0" * 64}),
         body, 401),
        ("signed with another secret", "/github", headers(**{"x-hub-signature-256": "sha256=" +
         hmac.new(b"other", body, hashlib.sha256).hexdigest()}), body, 401),
        ("oversized", "/github", headers(), b"{" + b" " * (2 * 1024 * 1024) + b"}", 413),
        ("malformed JSON", "/github", headers(**{"x-hub-signature-256": signed(alerts, not_json)}),
         not_json, 400),
        ("unknown event", "/github", headers("push", **{"x-hub-signature-256": signed(
            alerts, body)}), body, 400),
        ("report without token", "/report", {}, b"[]", 401),
        ("report in an unknown format", "/report", token,
         json.dumps({"findings": [BODY_MARK]}).encode(), 422),
        ("report not JSON", "/report", token, not_json, 400),
        ("oversized report", "/report", token, b"[" + b" " * (2 * 1024 * 1024) + b"]", 413),
    ]


@pytest.mark.usefixtures("clean_prefect")
def test_bad_input_is_refused_logged_once_and_changes_nothing(
        world: World, alerts: Alerts, alert_log: pytest.LogCaptureFixture) -> None:
    key = staging_key(world)
    since = datetime.now(UTC) - timedelta(seconds=1)
    answered = {}
    for name, path, extra, body, status in bad_requests(alerts):
        alert_log.clear()
        answer = httpx.post(f"{alerts.url}{path}", content=body, headers=extra, timeout=30)
        answered[name] = answer.status_code
        lines = [r.getMessage() for r in alert_log.records if r.name == "secretops.alerts"]
        assert answer.status_code == status, (name, answer.text)
        assert len(lines) == 1 and "refused" in lines[0], (name, lines)
        assert BODY_MARK not in lines[0] and BODY_MARK not in answer.text, name
    print(f"bad input answered: {answered}")
    time.sleep(0.5)
    assert alert_events(since) == []
    assert staging_key(world) == key and world.wiring.provider("openai").check_key(key)


@pytest.mark.usefixtures("clean_prefect")
def test_a_replayed_delivery_is_refused(world: World, alerts: Alerts,
                                        alert_log: pytest.LogCaptureFixture) -> None:
    stranger = SecretValue("sk-proj-" + secrets.token_urlsafe(40), remember=False)
    first = alerts.raise_alert("someone/else", stranger)
    assert [d["status"] for d in first["deliveries"]] == [202, 202]
    since = datetime.now(UTC)
    alert_log.clear()
    for delivery in first["deliveries"]:
        assert alerts.redeliver(delivery["guid"]) == 409
    lines = [r.getMessage() for r in alert_log.records if r.name == "secretops.alerts"]
    assert len(lines) == 2 and all("replayed delivery" in line for line in lines), lines
    time.sleep(0.5)
    assert alert_events(since) == []


@pytest.mark.usefixtures("clean_prefect")
def test_a_value_that_is_not_ours_is_recorded_and_answered_202(
        world: World, alerts: Alerts, alert_log: pytest.LogCaptureFixture) -> None:
    stranger = SecretValue("sk-proj-" + secrets.token_urlsafe(40), remember=False)
    since = datetime.now(UTC) - timedelta(seconds=1)
    answer = alerts.raise_alert("someone/other-repo", stranger, path="app/config.py", line=7)
    assert [d["status"] for d in answer["deliveries"]] == [202, 202]
    events = _wait_events(since, 2)
    assert {e["payload"]["outcome"] for e in events} == {"not ours"}
    assert all(e["event"] == "secretops.alert.received" for e in events)
    where = events[0]["payload"]["where"]
    assert "someone/other-repo" in where and "app/config.py:7" in where
    assert all("fingerprint" not in e["payload"] for e in events)
    lines = [r.getMessage() for r in alert_log.records if r.name == "secretops.alerts"]
    said = [line for line in lines if "someone/other-repo" in line]
    assert len(said) == 2 and all(line.endswith(": not ours") for line in said), lines


def _wait_events(since: datetime, count: int, timeout: float = 15) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = alert_events(since)
        if len(found) >= count:
            return found
        time.sleep(0.2)
    raise AssertionError(f"fewer than {count} secretops events since {since}: {found}")


@pytest.mark.usefixtures("clean_prefect")
def test_a_value_already_rotated_out_is_reported_and_nothing_is_rotated(
        world: World, alerts: Alerts) -> None:
    from flows.common import run_in_process
    from flows.rotate_api_key import rotate_api_key

    old = world.wiring.stores("openai", "development")[0].read(Stage.current)
    assert old is not None
    world.seen.append(old.secret)
    state = run_in_process(rotate_api_key(secret="openai", environment="development",
                                          inventory=world.path, return_state=True))
    assert state.is_completed(), state
    new = world.wiring.stores("openai", "development")[0].read(Stage.current)
    assert new is not None and new != old
    since = datetime.now(UTC) - timedelta(seconds=1)
    answer = alerts.raise_alert("intelliprompt/old-fork", old.secret)
    assert [d["status"] for d in answer["deliveries"]] == [200, 200]
    events = _wait_events(since, 2)
    assert {e["payload"]["outcome"] for e in events} == {"already rotated"}
    assert {e["payload"]["secret"] for e in events} == {"openai"}
    assert events[0]["payload"]["environments"] == ["development"]
    assert world.wiring.stores("openai", "development")[0].read(Stage.current) == new
    assert world.wiring.provider("openai").check_key(new.secret)


def test_outcomes_are_answered_and_recorded_as_plain_words() -> None:
    """The enum's members go out as today's words: plain strings in the JSON answer and the
    event payload, and in the log line."""
    assert [str(o) for o in AlertOutcome] == ["not ours", "already rotated", "started",
                                               "joined"]
    joined = Outcome(AlertOutcome.joined, "org/repo app.py:3", "openai", ("staging",), "r-1")
    assert joined.line() == "org/repo app.py:3: openai in staging: joined (run r-1)"
    assert joined.json() == {"outcome": "joined", "where": "org/repo app.py:3",
                             "secret": "openai", "environments": ["staging"], "run": "r-1"}
    assert type(joined.json()["outcome"]) is str
    assert json.loads(json.dumps(joined.json()))["outcome"] == "joined"
    stranger = Outcome(AlertOutcome.not_ours, "someone/other app.py:7")
    assert stranger.line() == "someone/other app.py:7: not ours"
