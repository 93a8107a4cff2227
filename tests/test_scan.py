"""``secretops scan`` against a real Prefect server: a flow that leaks values in every way the
design warns about is caught at each place (API and SQLite), and a flow that handles a value
the right way leaves nothing to find."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote
from uuid import UUID

import pytest
from prefect import flow, get_run_logger, runtime, task
from prefect.artifacts import create_markdown_artifact
from prefect.blocks.core import Block
from prefect.blocks.system import Secret
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import LogCreate, WorkPoolCreate
from prefect.input.actions import create_flow_run_input
from prefect.variables import Variable
from pydantic import SecretStr

from secretops.models import Credential, SecretValue, Stage
from secretops.scan import (
    Finding,
    Matcher,
    ScanError,
    ScanReport,
    collect_store_values,
    format_report,
    search_json,
)
from secretops.scan_api import scan_prefect
from tests.fixtures_prefect import PrefectServer, settle


def new_value() -> SecretValue:
    return SecretValue(secrets.token_urlsafe(24))


def scan(server: PrefectServer, values: list[SecretValue], **kw: Any) -> ScanReport:
    return scan_prefect(
        values, api_url=server.api_url, database_path=server.database_path, **kw
    )


def places(report: ScanReport, value: SecretValue) -> list[Finding]:
    return [f for f in report.findings if f.fingerprint == value.fingerprint()]


def found(report: ScanReport, value: SecretValue, where: str, form: str = "plain") -> bool:
    return any(
        f.where.startswith(where) and f.form == form for f in places(report, value)
    )


_STORE: dict[str, SecretValue] = {}


@flow(persist_result=False)
def leaky(token: str) -> None:
    """Leaks one value per place; every other value comes from the store by name."""
    flow_run_id = UUID(runtime.flow_run.id)
    with get_client(sync_client=True) as client:
        client.create_logs(
            [
                LogCreate(
                    flow_run_id=flow_run_id,
                    name="bypass",
                    level=20,
                    timestamp=datetime.now(UTC),
                    message=f"raw {_STORE['log'].reveal()}",
                )
            ]
        )
    encoded = base64.b64encode(_STORE["base64"].reveal().encode()).decode()
    get_run_logger().info("header Basic %s", encoded)
    create_markdown_artifact(
        markdown=f"# New key\n\n`{_STORE['artifact'].reveal()}`",
        description=f"see {quote(_STORE['url'].reveal())}",
    )
    Variable.set(f"leak_{secrets.token_hex(4)}", _STORE["variable"].reveal())
    create_flow_run_input(key="form", value={"anthropic_key": _STORE["input"].reveal()})
    raise ValueError(f"key {_STORE['state'].reveal()} was refused")


def test_scan_finds_every_leak_where_it_is(prefect_server: PrefectServer, tmp_path: Path) -> None:
    names = ("parameter", "log", "base64", "artifact", "url", "variable", "input", "state")
    values = {name: new_value() for name in names}
    # passwords with characters that URL quoting and JSON escaping change
    values["url"] = SecretValue("p@ss/w+rd" + secrets.token_urlsafe(18))
    values["input"] = SecretValue('say "' + secrets.token_urlsafe(18))
    _STORE.update(values)
    state: Any = leaky(values["parameter"].reveal(), return_state=True)
    assert state.is_failed()
    run = f"flow_run {state.state_details.flow_run_id}"
    settle(state.state_details.flow_run_id)
    leaked_file = tmp_path / "worker.log"
    leaked_file.write_text(f"one\ntwo {values['log'].reveal()}\n")

    report = scan(prefect_server, list(values.values()), extra_files=[leaked_file])

    assert not report.ok
    assert found(report, values["parameter"], f"{run}/parameters.token")
    assert found(report, values["parameter"], "sqlite table flow_run column parameters")
    assert any(
        f.where.startswith("log ") and f.where.endswith(f"(flow run {run[9:]})/message")
        for f in places(report, values["log"])
    )
    assert found(report, values["log"], "sqlite table log column message")
    assert found(report, values["log"], f"file {leaked_file} line 2")
    assert found(report, values["base64"], "log ", form="base64")
    assert found(report, values["artifact"], "artifact ")
    assert any(f.where.endswith("/data") for f in places(report, values["artifact"]))
    assert found(report, values["artifact"], "sqlite table artifact column data")
    assert found(report, values["url"], "artifact ", form="url-path")
    assert any(f.where.endswith("/description") for f in places(report, values["url"]))
    assert found(report, values["variable"], "variable ")
    assert found(report, values["variable"], "sqlite table variable column value")
    assert found(report, values["input"], f"run input of {run}/value", "json")
    assert found(report, values["input"], "sqlite table flow_run_input column value", "json")
    assert found(report, values["state"], f"{run}/state.message")
    assert found(report, values["state"], f"{run} state ")
    assert found(report, values["state"], "event ")
    assert found(report, values["state"], "sqlite table flow_run_state column message")

    text = format_report(report)
    assert "finding(s)" in text
    for value in values.values():
        assert value.reveal() not in text
        assert value.fingerprint() in text
        assert all(value.reveal() not in f.where for f in report.findings)


@task(persist_result=False, cache_policy=NO_CACHE, retries=1, retry_delay_seconds=0)
def use_key(ref: str, attempt: list[int]) -> SecretValue:
    """Reads the value by reference, logs it (masked by the filter), fails once with the
    value's masked repr in the exception, and returns it without persisting it."""
    value = _STORE[ref]
    get_run_logger().info("using key %s", value.reveal())
    attempt.append(1)
    if len(attempt) == 1:
        raise ConnectionError(f"provider refused {value!r}")
    return value


@flow(log_prints=True, persist_result=False)
def careful(ref: str) -> str:
    key = use_key(ref, [])
    print("rotated to", key.reveal())
    return key.fingerprint()


def test_a_flow_that_handles_a_value_correctly_leaves_nothing(
    assert_prefect_clean: Callable[..., ScanReport],
) -> None:
    value = new_value()
    _STORE["careful"] = value
    state: Any = careful("careful", return_state=True)
    assert state.is_completed()

    report = assert_prefect_clean([value], state.state_details.flow_run_id)

    for source in ("flow runs", "flow run states", "task runs", "logs", "events", "sqlite rows"):
        assert report.scanned.get(source, 0) > 0, source
    assert "file lines" in report.scanned
    assert "clean" in format_report(report)


@task(persist_result=True)
def careless_step(ref: str) -> str:
    return _STORE[ref].reveal()


@flow
def careless(ref: str) -> None:
    careless_step(ref)


def test_a_persisted_result_is_found_in_the_result_storage(
    prefect_server: PrefectServer,
) -> None:
    value = new_value()
    _STORE["careless"] = value
    state: Any = careless("careless", return_state=True)
    assert state.is_completed()
    files = [p for p in prefect_server.storage_path.rglob("*") if p.is_file()]

    report = scan(prefect_server, [value], extra_files=files)

    assert found(report, value, f"file {prefect_server.storage_path}", "inside-base64")
    assert not any(f.where.startswith(("flow_run", "task_run", "sqlite")) for f in report.findings)


class ProviderSettings(Block):
    """A block with a secret field and fields that are not secret."""

    admin_key: SecretStr
    endpoint: str
    headers: dict[str, str]


def test_block_secret_fields_are_skipped_but_other_fields_are_searched(
    prefect_server: PrefectServer,
) -> None:
    in_secret, in_field, in_header, in_pool = (new_value() for _ in range(4))
    Secret(value=in_secret.reveal()).save(f"secret-{secrets.token_hex(4)}")
    ProviderSettings(
        admin_key=SecretStr(in_secret.reveal()),
        endpoint=f"https://127.0.0.1/{in_field.reveal()}",
        headers={"Authorization": f"Bearer {in_header.reveal()}"},
    ).save(f"provider-{secrets.token_hex(4)}")
    template = {
        "job_configuration": {"env": "{{ env }}"},
        "variables": {
            "type": "object",
            "properties": {"env": {"type": "object", "default": {"KEY": in_pool.reveal()}}},
        },
    }
    with get_client(sync_client=True) as client:
        client.create_work_pool(
            WorkPoolCreate(
                name=f"pool-{secrets.token_hex(4)}", type="process", base_job_template=template
            )
        )

    report = scan(prefect_server, [in_secret, in_field, in_header, in_pool])

    # block data is encrypted in the database, so only the API shows it
    assert places(report, in_secret) == []
    assert any(f.where.endswith("/data.endpoint") for f in places(report, in_field))
    assert any(
        f.where.endswith("/data.headers.Authorization") for f in places(report, in_header)
    )
    assert any(
        f.where.startswith("work_pool ") and "/base_job_template.variables" in f.where
        for f in places(report, in_pool)
    )
    assert found(report, in_pool, "sqlite table work_pool column base_job_template")


def test_no_values_is_a_clean_report_without_any_work() -> None:
    report = scan_prefect([], api_url="http://127.0.0.1:9/api", database_path=None)
    assert report.ok
    assert report.scanned == {}
    assert "no secret values" in format_report(report)


def test_an_unreachable_server_is_an_error_not_a_clean_report(tmp_path: Path) -> None:
    value = new_value()
    with pytest.raises(ScanError) as raised:
        scan_prefect([value], api_url="http://127.0.0.1:9/api", database_path=None)
    assert "127.0.0.1:9" in str(raised.value)
    assert value.reveal() not in str(raised.value)


def test_a_key_holding_a_value_is_named_as_key_and_nothing_else_is_echoed() -> None:
    value = new_value()
    report = ScanReport()
    document = {"headers": {value.reveal(): "x"}, "list": ["a", f"b {value.reveal()} c"]}
    search_json(document, "thing 1", Matcher([value]), report)
    assert [f.where for f in report.findings] == ["thing 1/headers.[key]", "thing 1/list[1]"]


def test_values_inside_overlapping_and_beside_each_other_are_each_found() -> None:
    """All values are searched at once: a value that is part of another, values that overlap
    and values side by side are each reported, in the order they were given, once."""
    outer = SecretValue("sk-proj-outer-0123456789abcdef")
    inner = SecretValue("outer-0123456789")  # inside ``outer``
    tail = SecretValue("abcdef-and-more-text")  # overlaps the end of ``outer``
    other = SecretValue("an-unrelated-value-42")
    data = f"x {outer.reveal()}-and-more-text y {other.reveal()}".encode()
    hits = Matcher([outer, inner, tail, other, new_value()]).in_bytes(data)
    assert hits == [(v.fingerprint(), "plain") for v in (outer, inner, tail, other)]
    inside = base64.b64encode(f"pickled {inner.reveal()} result".encode())
    assert Matcher([inner]).in_bytes(b"data " + inside) == [(inner.fingerprint(),
                                                              "inside-base64")]


def test_values_nested_hundreds_deep_are_still_searched() -> None:
    values = [SecretValue("a" * n) for n in range(8, 508)]  # each one longer by one
    hits = Matcher(values).in_bytes(b"x" + b"a" * 20 + b"x")
    assert [fingerprint for fingerprint, _ in hits] == [v.fingerprint() for v in values[:13]]


class MemoryStore:
    """A store held in a dict: enough to show which stages a scan collects."""

    def __init__(self, versions: dict[Stage, SecretValue]) -> None:
        self.versions = versions

    def read(self, stage: Stage = Stage.current) -> Credential | None:
        value = self.versions.get(stage)
        return Credential(value) if value is not None else None


def test_collect_store_values_takes_every_stage_once() -> None:
    current, pending, previous = new_value(), new_value(), new_value()
    stores = [
        MemoryStore({Stage.current: current, Stage.pending: pending}),
        MemoryStore({Stage.current: current, Stage.previous: previous}),
    ]
    collected = collect_store_values(stores)
    assert collected == [current, pending, previous]
