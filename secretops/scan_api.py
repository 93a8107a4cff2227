"""``secretops scan`` over Prefect: :func:`scan_prefect` searches the API, the SQLite file and
log files; the API is read page by page and searched with :func:`secretops.scan.search_json`.

Each object is searched whole (every field, nested), so a finding names the object and the
path inside it: ``flow_run <id>/parameters.token``, ``flow_run <id> state <id>/message``,
``log <id> (flow run <id>)/message``, ``event <id> prefect.flow-run.Failed/payload...``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.orchestration.routes import ServerRoutes

from secretops.models import SecretValue
from secretops.scan import (
    Matcher,
    ScanError,
    ScanReport,
    first_line,
    search_file,
    search_json,
    search_sqlite,
)

PAGE = 200
EVENT_PAGE = 50


def _pages(
    client: SyncPrefectClient, route: ServerRoutes, body: dict[str, Any] | None = None
) -> Iterator[dict[str, Any]]:
    offset = 0
    while True:
        payload = {**(body or {}), "limit": PAGE, "offset": offset}
        items: list[dict[str, Any]] = client.request("POST", route, json=payload).json()
        yield from items
        if len(items) < PAGE:
            return
        offset += PAGE


def _after(since: datetime | None, kind: str, field: str) -> dict[str, Any]:
    """A filter body keeping objects whose ``field`` is at or after ``since``."""
    return {kind: {field: {"after_": since.isoformat()}}} if since else {}


def _flow_runs(client: SyncPrefectClient, matcher: Matcher, report: ScanReport,
               since: datetime | None) -> None:
    for run in _pages(client, "/flow_runs/filter",
                      _after(since, "flow_runs", "expected_start_time")):
        run_id = run["id"]
        report.count("flow runs")
        search_json(run, f"flow_run {run_id}", matcher, report)
        states = client.request(
            "GET", "/flow_run_states/", params={"flow_run_id": run_id}
        ).json()
        for state in states:
            report.count("flow run states")
            search_json(state, f"flow_run {run_id} state {state['id']}", matcher, report)
        _run_inputs(client, run_id, matcher, report)


def _run_inputs(
    client: SyncPrefectClient, run_id: str, matcher: Matcher, report: ScanReport
) -> None:
    seen: list[str] = []
    while True:
        inputs = client.request(
            "POST",
            "/flow_runs/{id}/input/filter",
            path_params={"id": run_id},
            json={"prefix": "", "limit": PAGE, "exclude_keys": seen},
        ).json()
        for run_input in inputs:
            report.count("run inputs")
            search_json(run_input, f"run input of flow_run {run_id}", matcher, report)
            seen.append(run_input["key"])
        if len(inputs) < PAGE:
            return


def _task_runs(client: SyncPrefectClient, matcher: Matcher, report: ScanReport,
               since: datetime | None) -> None:
    for task_run in _pages(client, "/task_runs/filter",
                           _after(since, "task_runs", "expected_start_time")):
        report.count("task runs")
        where = f"task_run {task_run['id']} (flow run {task_run.get('flow_run_id')})"
        search_json(task_run, where, matcher, report)


def _logs(client: SyncPrefectClient, matcher: Matcher, report: ScanReport,
          since: datetime | None) -> None:
    for log in _pages(client, "/logs/filter", _after(since, "logs", "timestamp")):
        report.count("logs")
        search_json(log, f"log {log['id']} (flow run {log.get('flow_run_id')})", matcher, report)


def _events(client: SyncPrefectClient, matcher: Matcher, report: ScanReport,
            since: datetime | None) -> None:
    now = datetime.now(UTC)
    window = {
        "since": (since or now - timedelta(days=3650)).isoformat(),
        "until": (now + timedelta(days=1)).isoformat(),
    }
    page = client.request(
        "POST", "/events/filter", json={"filter": {"occurred": window}, "limit": EVENT_PAGE}
    ).json()
    while True:
        for event in page["events"]:
            report.count("events")
            search_json(event, f"event {event['id']} {event['event']}", matcher, report)
        next_page = page.get("next_page")
        if not next_page:
            return
        token = parse_qs(urlsplit(next_page).query)["page-token"][0]
        page = client.request("GET", "/events/filter/next", params={"page-token": token}).json()


def _is_secret_path(path: tuple[str, ...], secret_fields: list[str]) -> bool:
    """Whether a field path of block data is one the block schema marks as secret
    (``password``, ``credentials.token``, ``headers.*``)."""
    for secret_field in secret_fields:
        parts = secret_field.split(".")
        if parts[-1] == "*" and len(path) >= len(parts) - 1:
            prefix = parts[:-1]
        elif len(path) == len(parts):
            prefix = parts
        else:
            continue
        if all(want in ("*", have) for want, have in zip(prefix, path, strict=False)):
            return True
    return False


def _without_secret_fields(data: Any, secret_fields: list[str], path: tuple[str, ...]) -> Any:
    if not isinstance(data, dict):
        return data
    return {
        key: _without_secret_fields(value, secret_fields, (*path, key))
        for key, value in data.items()
        if not _is_secret_path((*path, key), secret_fields)
    }


def _block_documents(client: SyncPrefectClient, matcher: Matcher, report: ScanReport) -> None:
    body = {"include_secrets": True, "block_documents": {"is_anonymous": None}}
    for document in _pages(client, "/block_documents/filter", body):
        report.count("block documents")
        schema = document.get("block_schema") or {}
        secret_fields = list((schema.get("fields") or {}).get("secret_fields") or [])
        document["data"] = _without_secret_fields(document.get("data"), secret_fields, ())
        search_json(document, f"block_document {document['id']}", matcher, report)


_SIMPLE_SOURCES: tuple[tuple[str, ServerRoutes, str], ...] = (
    ("artifacts", "/artifacts/filter", "artifact"),
    ("variables", "/variables/filter", "variable"),
    ("deployments", "/deployments/filter", "deployment"),
    ("work pools", "/work_pools/filter", "work_pool"),
    ("automations", "/automations/filter", "automation"),
)


def search_api(api_url: str | None, matcher: Matcher, report: ScanReport,
               since: datetime | None = None) -> None:
    """Search everything the API at ``api_url`` (the configured one when None) shows; with
    ``since``, runs, task runs, logs and events from then on (the rest is small: whole)."""
    client = SyncPrefectClient(api_url) if api_url else get_client(sync_client=True)
    with client:
        _flow_runs(client, matcher, report, since)
        _task_runs(client, matcher, report, since)
        _logs(client, matcher, report, since)
        _events(client, matcher, report, since)
        _block_documents(client, matcher, report)
        for source, route, kind in _SIMPLE_SOURCES:
            for item in _pages(client, route):
                report.count(source)
                search_json(item, f"{kind} {item.get('id')}", matcher, report)


def scan_prefect(
    values: Iterable[SecretValue],
    *,
    api_url: str | None,
    database_path: Path | None,
    extra_files: Sequence[Path] = (),
    since: datetime | None = None,
) -> ScanReport:
    """Search Prefect for every value: through the API (at ``api_url``, or the configured
    ``PREFECT_API_URL`` when None), in the SQLite file at ``database_path`` when given, and in
    ``extra_files``. The report is clean (``ok``) when no form of any value was found."""
    matcher = Matcher(values)
    report = ScanReport()
    if not matcher:
        return report
    try:
        search_api(api_url, matcher, report, since)
    except Exception as error:
        where = api_url or "PREFECT_API_URL"
        message = f"could not read the Prefect API at {where}: {first_line(error)}"
        raise ScanError(message) from error
    if database_path is not None:
        try:
            search_sqlite(database_path, matcher, report, since)
        except sqlite3.Error as error:
            raise ScanError(f"could not read {database_path}: {first_line(error)}") from error
    for path in extra_files:
        try:
            search_file(path, matcher, report)
        except OSError as error:
            raise ScanError(f"could not read {path}: {first_line(error)}") from error
    report.findings = list(dict.fromkeys(report.findings))
    return report
