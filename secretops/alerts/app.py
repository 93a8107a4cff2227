"""The alert receiver, an ASGI app (Starlette, served by uvicorn: ``secretops alerts serve``).

- ``POST /github``: GitHub's webhook deliveries (:mod:`secretops.alerts.github`); the alert's
  literal is read from the REST API with the inventory's token, matched, then dropped.
- ``POST /report``: a scanner's report (:mod:`secretops.alerts.findings`), with
  ``Authorization: Bearer`` and the inventory's report token.
- ``GET /healthz``: the receiver answers.

Bad input (unsigned 401, wrongly signed 401, replayed 409, too large 413, not JSON 400, an
unknown event 400, an unknown report format 422) is answered with one log line that names the
delivery and the reason, never the body; nothing is matched, emitted or changed.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from secretops.alerts.findings import Finding, ReportError, parse_report
from secretops.alerts.github import (
    AlertEvent,
    DeliveryRefused,
    SeenDeliveries,
    check_delivery,
    check_signature,
    location_of,
    parse_event,
)
from secretops.alerts.respond import AlertOutcome, Outcome, Responder
from secretops.errors import SecretopsError
from secretops.models import SecretValue

LOG = logging.getLogger("secretops.alerts")
MAX_BODY = 1024 * 1024
"""GitHub caps webhook payloads at 25 MB but secret scanning events are a few kB; a report of
10 000 findings fits in 1 MB."""

AlertReader = Callable[[str, int], Any]
"""``read(repository, number)``: the REST alert (``secretops.adapters.github.Alert``)."""


@dataclass
class ReceiverConfig:
    webhook_secret: SecretValue
    report_token: SecretValue | None
    read_alert: AlertReader
    responder: Responder
    max_body: int = MAX_BODY


async def _body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise DeliveryRefused(413, f"body larger than {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise DeliveryRefused(413, f"body larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        raise DeliveryRefused(400, "the body is not JSON") from None


def _reason(exc: Exception) -> str:
    """A failure in one line: a secretops error's message (it holds no value), else only the
    exception's type."""
    if isinstance(exc, SecretopsError):
        return (str(exc).splitlines() or [""])[0][:300]
    return type(exc).__name__


def _refused(route: str, who: str, exc: DeliveryRefused) -> JSONResponse:
    LOG.warning("%s %s refused: %s (HTTP %d)", route, who, exc.reason, exc.status)
    return JSONResponse({"error": exc.reason}, status_code=exc.status)


def _answer(route: str, who: str, outcomes: list[Outcome]) -> JSONResponse:
    LOG.info("%s %s: %s", route, who, "; ".join(o.line() for o in outcomes) or "nothing found")
    started = any(o.outcome in (AlertOutcome.started, AlertOutcome.joined) for o in outcomes)
    return JSONResponse({"findings": [o.json() for o in outcomes]},
                        status_code=202 if started or not outcomes or any(
                            o.outcome is AlertOutcome.not_ours for o in outcomes) else 200)


def _alert_fields(event: AlertEvent, created_at: str, url: str) -> dict[str, str]:
    fields = {"source": "github", "number": str(event.number), "repository": event.repository,
              "delivery": event.delivery, "created_at": created_at or event.created_at,
              "url": event.location.get("url") or url or event.html_url}
    fields.update({k: v for k, v in event.location.items() if k in ("path", "line", "commit")})
    return {k: v for k, v in fields.items() if v}


def create_app(config: ReceiverConfig) -> Starlette:
    seen = SeenDeliveries()

    def handle_alert(event: AlertEvent) -> list[Outcome]:
        alert = config.read_alert(event.repository, event.number)
        if alert.secret is None:
            raise DeliveryRefused(422, f"alert #{event.number} of {event.repository} hides its "
                                  "secret (the token cannot read it)")
        if not event.location and alert.first_location:
            event = replace(event, location=location_of({"details": alert.first_location}))
        finding = Finding("github", {"repository": event.repository, "alert": str(event.number),
                                     **event.location}, alert.secret)
        return [config.responder.handle(finding, _alert_fields(event, alert.created_at,
                                                               alert.html_url))]

    async def github(request: Request) -> JSONResponse:
        who = f"delivery {str(request.headers.get('x-github-delivery', '?'))[:100]!r}"
        try:
            body = await _body(request, config.max_body)
            check_signature(config.webhook_secret.reveal().encode(), body,
                            request.headers.get("x-hub-signature-256"))
            kind, _ = check_delivery(request.headers, seen)
            event = parse_event(kind, request.headers["x-github-delivery"], _json(body))
            if event is None:
                LOG.info("github %s: ping", who)
                return JSONResponse({"ok": True})
            if not event.starts:
                LOG.info("github %s: %s %s of alert #%d ignored", who, kind, event.action,
                         event.number)
                return JSONResponse({"ignored": f"{kind} {event.action}"}, status_code=202)
            return _answer("github", f"{who} alert #{event.number} {event.repository}",
                           await run_in_threadpool(handle_alert, event))
        except DeliveryRefused as exc:
            return _refused("github", who, exc)
        except Exception as exc:  # one line, never a traceback's context
            LOG.error("github %s failed: %s", who, _reason(exc))
            return JSONResponse({"error": "could not act on the alert; see the receiver's "
                                 "log"}, status_code=503)

    async def report(request: Request) -> JSONResponse:
        who = f"from {request.client.host if request.client else '?'}"
        try:
            token = config.report_token
            given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
            if token is None or not hmac.compare_digest(given.encode(),
                                                        token.reveal().encode()):
                raise DeliveryRefused(401, "no or wrong report token")
            body = await _body(request, config.max_body)
            try:
                findings = parse_report(body)
            except ReportError as exc:
                raise DeliveryRefused(400 if "not JSON" in str(exc) else 422, str(exc)) from None
            source = findings[0].source if findings else "report"

            def handle() -> list[Outcome]:
                return [config.responder.handle(f, {"source": f.source, **f.location})
                        for f in findings]

            return _answer("report", f"{who} ({source}, {len(findings)} finding(s))",
                           await run_in_threadpool(handle))
        except DeliveryRefused as exc:
            return _refused("report", who, exc)
        except Exception as exc:  # one line, never a traceback's context
            LOG.error("report %s failed: %s", who, _reason(exc))
            return JSONResponse({"error": "could not act on the report; see the receiver's "
                                 "log"}, status_code=503)

    async def healthz(_: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    return Starlette(routes=[Route("/github", github, methods=["POST"]),
                             Route("/report", report, methods=["POST"]),
                             Route("/healthz", healthz)])
