"""The redaction filter: unit behaviour, and every way a flow run's text reaches Prefect's logs
(run logger, ``print`` under ``log_prints``, exception tracebacks, retry messages, library
loggers) read back from a real server."""

from __future__ import annotations

import json
import logging
import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, LogFilter

from secretops import redaction
from secretops.models import MASK, SecretValue
from tests.fixtures_prefect import PrefectServer, settle

ROOT = Path(__file__).resolve().parent.parent


def new_value() -> SecretValue:
    return SecretValue(secrets.token_urlsafe(24))


def test_redact_masks_plain_json_and_repr_forms() -> None:
    value = SecretValue('pa"ss\\word-' + secrets.token_urlsafe(8))
    plain = value.reveal()
    text = f"plain {plain} json {plain!r} dict {({'k': plain})} end"
    text += f" {json.dumps({'k': plain})}"
    cleaned = redaction.redact(text)
    assert plain not in cleaned
    assert json.dumps(plain)[1:-1] not in cleaned
    assert repr(plain)[1:-1] not in cleaned
    assert cleaned.count(MASK) == 4


def test_a_fleets_hundreds_of_values_are_masked_in_every_form() -> None:
    """Past ``_SCAN_LIMIT`` forms a text is searched by the forms' last characters: every
    value of a fleet, sharing its first characters with all the others, is still masked, in
    each written form, and a text that only shares a prefix with them is left alone."""
    values = [SecretValue(f"sk-svcacct-{secrets.token_urlsafe(30)}") for _ in range(300)]
    quoted = SecretValue('pa"ss\\word-' + secrets.token_urlsafe(8))
    assert len(redaction.known_values()) > redaction._SCAN_LIMIT
    plain = [v.reveal() for v in (*values[::37], quoted)]
    text = " ".join(f"{p} {p!r} {json.dumps({'k': p})}" for p in plain)
    text += " sk-svcacct-not-a-value " + values[0].reveal()[:-1]
    cleaned = redaction.redact(text)
    for value in plain:
        assert value not in cleaned
        assert json.dumps(value)[1:-1] not in cleaned
        assert repr(value)[1:-1] not in cleaned
    assert cleaned.count(MASK) == 3 * len(plain)
    assert cleaned.endswith(" sk-svcacct-not-a-value " + values[0].reveal()[:-1])


def test_short_strings_are_never_registered() -> None:
    SecretValue("abc")
    assert "abc" not in redaction.known_values()
    assert redaction.redact("abc abc") == "abc abc"


def test_filter_masks_message_args_and_exception_text() -> None:
    value = new_value()
    try:
        raise RuntimeError(f"boom {value.reveal()}")
    except RuntimeError:
        record = logging.LogRecord(
            "x", logging.ERROR, __file__, 1, "got %s", (value.reveal(),), sys.exc_info()
        )
    assert redaction.RedactingFilter().filter(record)
    rendered = logging.Formatter().format(record)
    assert value.reveal() not in rendered
    assert "RuntimeError: boom " + MASK in rendered
    assert record.getMessage() == f"got {MASK}"


def test_install_is_idempotent_and_reaches_every_handler() -> None:
    handler = logging.StreamHandler()
    logging.getLogger("secretops.test.extra").addHandler(handler)
    try:
        redaction.install()
        redaction.install()
        for name in redaction.LOGGER_NAMES:
            filters = logging.getLogger(name).filters
            assert sum(isinstance(f, redaction.RedactingFilter) for f in filters) == 1
        assert sum(isinstance(f, redaction.RedactingFilter) for f in handler.filters) == 1
        api_handlers = logging.getLogger("prefect.flow_runs").handlers
        assert api_handlers and all(
            any(isinstance(f, redaction.RedactingFilter) for f in h.filters) for h in api_handlers
        )
    finally:
        logging.getLogger("secretops.test.extra").removeHandler(handler)


_STORE: dict[str, SecretValue] = {}


@task(persist_result=False, cache_policy=NO_CACHE, retries=1, retry_delay_seconds=0)
def flaky_step(ref: str, attempts: list[int]) -> None:
    """Fails once with the value in its exception (the retry log prints ``repr(exc)``)."""
    value = _STORE[ref]
    get_run_logger().info("task sees %s", value.reveal())
    print(f"task prints {value.reveal()}")
    attempts.append(1)
    if len(attempts) == 1:
        raise ConnectionError(f"provider refused {value.reveal()}")


@flow(log_prints=True, persist_result=False)
def chatty(ref: str) -> None:
    value = _STORE[ref]
    get_run_logger().info("flow sees %s", value.reveal())
    get_run_logger().info("as json %s", {"key": value.reveal()})
    print("flow prints", value.reveal())
    logging.getLogger("secretops.adapters.demo").warning("library says %s", value.reveal())
    flaky_step(ref, [])
    raise ValueError(f"flow gives up on {value.reveal()}")


def read_logs(flow_run_id: UUID) -> list[str]:
    with get_client(sync_client=True) as client:
        logs = client.read_logs(
            log_filter=LogFilter(flow_run_id={"any_": [flow_run_id]}), limit=200
        )
    return [log.message for log in logs]


def test_run_logs_prints_and_tracebacks_are_masked_on_the_server(
    prefect_server: PrefectServer,
) -> None:
    value = new_value()
    _STORE["chatty"] = value
    state: Any = chatty("chatty", return_state=True)
    assert state.is_failed()
    flow_run_id = state.state_details.flow_run_id
    settle(flow_run_id)

    messages = read_logs(flow_run_id)
    text = "\n".join(messages)
    assert value.reveal() not in text
    assert f"flow sees {MASK}" in messages
    assert f"as json {({'key': MASK})}" in messages
    assert f"flow prints {MASK}" in messages
    assert f"task sees {MASK}" in messages
    assert f"task prints {MASK}" in messages
    retry = [m for m in messages if "Retry 1/1" in m]
    assert retry and f"ConnectionError('provider refused {MASK}')" in retry[0]
    tracebacks = [m for m in messages if "Traceback" in m]
    assert tracebacks and all(f"flow gives up on {MASK}" in m for m in tracebacks)
    assert any(f"ValueError: flow gives up on {MASK}" in m for m in messages)


    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
    assert runs[0].state is not None
    # the filter guards logs only: the state message still holds the raw text, and scan
    # (tests/test_scan.py) is what catches that
    assert value.reveal() in (runs[0].state.message or "")


CHILD = """
import logging, os
from prefect import flow, get_run_logger
from secretops.models import SecretValue

value = SecretValue(os.environ.pop("TEST_SECRET_VALUE"))

@flow(log_prints=True)
def child() -> None:
    get_run_logger().info("child sees %s", value.reveal())
    print("child prints", value.reveal())
    logging.getLogger("secretops.adapters.demo").warning("library says %s", value.reveal())
    raise ValueError("child fails on " + value.reveal())

state = child(return_state=True)
print("FLOW_RUN", state.state_details.flow_run_id, flush=True)
"""


def test_fresh_process_masks_console_and_server_logs(
    prefect_server: PrefectServer, tmp_path: Path
) -> None:
    """A new process (as a worker starts one): the first SecretValue installs the filter, and
    neither the console nor the server ever sees the value."""
    value = new_value()
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, "TEST_SECRET_VALUE": value.reveal(), "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120
    )
    console = result.stdout + result.stderr
    assert value.reveal() not in console
    assert f"child sees {MASK}" in console
    assert f"library says {MASK}" in console
    assert f"ValueError: child fails on {MASK}" in console
    flow_run_id = UUID(result.stdout.split("FLOW_RUN", 1)[1].split()[0])
    settle(flow_run_id)
    messages = read_logs(flow_run_id)
    assert f"child prints {MASK}" in messages
    assert value.reveal() not in "\n".join(messages)
