"""Fault knobs, over real HTTP: error rate, codes, latency, down, conflicts, control endpoint,
and the OpenAI listing's redaction form set from the command line."""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from sandbox.faults import FaultMiddleware, Faults, Knobs, control_app, parse_spec
from tests.sandbox.asgi_server import serve


async def ok(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


def echo_app() -> Starlette:
    return Starlette(routes=[Route("/{path:path}", ok, methods=["GET", "POST", "PATCH"])])


@pytest.fixture(scope="module")
def world() -> Iterator[tuple[Faults, dict[str, str]]]:
    """One registry, one faulty echo app per emulator, and the control app."""
    faults = Faults(seed=7)
    with (
        serve(FaultMiddleware(echo_app(), faults, "openai")) as openai,
        serve(FaultMiddleware(echo_app(), faults, "anthropic")) as anthropic,
        serve(FaultMiddleware(echo_app(), faults, "aws")) as aws,
        serve(FaultMiddleware(echo_app(), faults, "kubernetes")) as kubernetes,
        serve(control_app(faults)) as control,
    ):
        urls = {
            "openai": openai,
            "anthropic": anthropic,
            "aws": aws,
            "kubernetes": kubernetes,
            "control": control,
        }
        yield faults, urls


@pytest.fixture(autouse=True)
def no_faults(world: tuple[Faults, dict[str, str]]) -> None:
    world[0].clear()


def test_parse_spec() -> None:
    assert parse_spec("openai:error_rate=0.3,codes=429|503,latency_ms=50") == (
        "openai",
        {"error_rate": "0.3", "codes": "429|503", "latency_ms": "50"},
    )
    faults = Faults()
    knobs = faults.apply_spec("openai:error_rate=0.3,codes=429|503,latency_ms=50")
    assert knobs == Knobs(error_rate=0.3, codes=(429, 503), latency_ms=50)
    for bad in (
        "openai",
        "openai:error_rate",
        "openai:error_rate=2",
        "openai:codes=200",
        "openai:wobble=1",
    ):
        with pytest.raises(ValueError):
            faults.apply_spec(bad)
    with pytest.raises(KeyError):
        faults.apply_spec("gitlab:error_rate=0.1")


def test_error_rate_and_codes_within_tolerance(world: tuple[Faults, dict[str, str]]) -> None:
    faults, urls = world
    faults.set("openai", error_rate=0.3, codes=[429, 503])
    with httpx.Client(base_url=urls["openai"]) as client:
        statuses = Counter(client.get("/v1/models").status_code for _ in range(400))
    assert set(statuses) <= {200, 429, 503}
    failed = statuses[429] + statuses[503]
    assert 0.22 * 400 <= failed <= 0.38 * 400, statuses
    assert statuses[429] > 0 and statuses[503] > 0


def test_errors_are_provider_shaped(world: tuple[Faults, dict[str, str]]) -> None:
    faults, urls = world
    for name in ("openai", "anthropic", "aws", "kubernetes"):
        faults.set(name, error_rate=1.0, codes=[429], retry_after_ms=200)
    openai = httpx.get(urls["openai"] + "/v1/models")
    assert openai.status_code == 429
    assert openai.headers["retry-after"] == "1" and openai.headers["retry-after-ms"] == "200"
    assert openai.json()["error"]["code"] == "rate_limit_exceeded"
    assert set(openai.json()["error"]) == {"message", "type", "param", "code"}
    anthropic = httpx.get(urls["anthropic"] + "/v1/models")
    assert anthropic.json() == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "Too Many Requests"},
        "request_id": anthropic.json()["request_id"],
    }
    assert anthropic.json()["request_id"].startswith("req_")
    aws = httpx.post(urls["aws"] + "/", headers={"content-type": "application/x-amz-json-1.1"})
    assert aws.json()["__type"] == "ThrottlingException"
    assert aws.headers["x-amzn-errortype"] == "ThrottlingException"
    iam = httpx.post(urls["aws"] + "/", data={"Action": "GetRole"})
    assert "<Code>ThrottlingException</Code>" in iam.text
    kube = httpx.get(urls["kubernetes"] + "/api/v1/namespaces")
    assert kube.json()["kind"] == "Status" and kube.json()["code"] == 429


def test_latency(world: tuple[Faults, dict[str, str]]) -> None:
    faults, urls = world
    with httpx.Client(base_url=urls["anthropic"]) as client:
        client.get("/")
        started = time.perf_counter()
        for _ in range(5):
            client.get("/")
        baseline = (time.perf_counter() - started) / 5
        faults.set("anthropic", latency_ms=80)
        started = time.perf_counter()
        for _ in range(5):
            assert client.get("/").status_code == 200
        slowed = (time.perf_counter() - started) / 5
    assert 0.08 <= slowed < 0.08 + baseline + 0.1


def test_down_for_seconds_then_back(world: tuple[Faults, dict[str, str]]) -> None:
    faults, urls = world
    faults.set("aws", down_seconds=0.5)
    assert faults.get("aws").is_down()
    response = httpx.post(urls["aws"] + "/", headers={"content-type": "application/x-amz-json-1.1"})
    assert response.status_code == 503
    assert response.json()["__type"] == "ServiceUnavailable"
    assert response.headers["retry-after"] == "1"
    time.sleep(0.55)
    assert httpx.post(urls["aws"] + "/").status_code == 200


def test_conflicts_only_on_writes(world: tuple[Faults, dict[str, str]]) -> None:
    faults, urls = world
    faults.set("kubernetes", conflict_rate=1.0)
    with httpx.Client(base_url=urls["kubernetes"]) as client:
        assert client.get("/api/v1/namespaces/x/secrets/y").status_code == 200
        response = client.patch("/api/v1/namespaces/x/secrets/y", json={})
    assert response.status_code == 409
    assert response.json()["reason"] == "Conflict"
    assert "the object has been modified" in response.json()["message"]


def test_same_seed_same_faults() -> None:
    def roll() -> list[int | None]:
        faults = Faults(seed=3)
        faults.set("openai", error_rate=0.5)
        return [faults.roll_error("openai") for _ in range(50)]

    assert roll() == roll()


def test_control_endpoint(world: tuple[Faults, dict[str, str]]) -> None:
    _faults, urls = world
    with httpx.Client(base_url=urls["control"]) as control:
        put = control.put("/faults/openai", json={"error_rate": 1, "codes": [500]})
        assert put.status_code == 200 and put.json()["codes"] == [500]
        assert httpx.get(urls["openai"] + "/v1/models").status_code == 500
        shown = control.get("/faults").json()
        assert shown["openai"]["error_rate"] == 1.0 and shown["aws"]["error_rate"] == 0.0
        assert control.put("/faults/openai", json={"error_rate": 7}).status_code == 400
        assert control.put("/faults/openai", json={"nonsense": 1}).status_code == 400
        assert control.put("/faults/gitlab", json={"error_rate": 0.1}).status_code == 404
        down = control.put("/faults/anthropic", json={"down_seconds": 30}).json()
        assert 29 < down["down_seconds"] <= 30
        assert control.delete("/faults").status_code == 200
    assert httpx.get(urls["openai"] + "/v1/models").status_code == 200
    assert httpx.get(urls["anthropic"] + "/v1/models").status_code == 200


def test_boto3_reads_injected_aws_errors(world: tuple[Faults, dict[str, str]]) -> None:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError

    faults, urls = world
    faults.set("aws", error_rate=1.0, codes=[429])
    options = {
        "endpoint_url": urls["aws"],
        "region_name": "us-east-1",
        "aws_access_key_id": "AKIATEST",
        "aws_secret_access_key": "test",
        "config": Config(retries={"max_attempts": 1}),
    }
    for service, call in (("secretsmanager", "list_secrets"), ("iam", "list_roles")):
        with pytest.raises(ClientError) as caught:
            getattr(boto3.client(service, **options), call)()
        assert caught.value.response["Error"]["Code"] == "ThrottlingException"
        assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429


def test_cli_redaction_switches_the_openai_listing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``secretops sandbox fault openai --redaction stars|dots``: the parser, the command, the
    control endpoint, the knob, the listing; the official client parses both forms."""
    import openai
    from openai.types.admin.organization.projects.project_api_key import ProjectAPIKey

    from cli import build_parser
    from sandbox.openai_api import OpenAIState, openai_app

    faults, state = Faults(), OpenAIState()
    state.redaction = lambda: faults.get("openai").redaction
    _, value = state.mint_service_account_key("proj_intelliprompt", "redaction-cli")
    control = Starlette(routes=[Route("/healthz", ok), Mount("/", control_app(faults))])
    forms = {"stars": f"{value[:8]}{'*' * 16}{value[-4:]}",
             "dots": f"{value[:14]}...{value[-4:]}"}
    assert forms["stars"].startswith("sk-svcac****")
    with (serve(openai_app(state)) as api, serve(control) as control_url,
          openai.OpenAI(admin_api_key=state.create_admin_key(), api_key="",
                        base_url=f"{api}/v1", max_retries=0) as client):
        info = {"pids": {"supervisor": os.getpid()}, "control": control_url}
        (tmp_path / "sandbox.json").write_text(json.dumps(info))
        for form in ("stars", "dots"):
            args = build_parser().parse_args(
                ["sandbox", "fault", "openai", "--dir", str(tmp_path), "--redaction", form])
            assert args.run(args) == 0
            assert json.loads(capsys.readouterr().out)["redaction"] == form
            keys = client.admin.organization.projects.api_keys
            raw = json.loads(keys.with_raw_response.list("proj_intelliprompt").http_response
                             .content)["data"]
            assert [ProjectAPIKey.model_validate(item).redacted_value for item in raw] == [
                forms[form]]
            assert [key.redacted_value for key in keys.list("proj_intelliprompt")] == [
                forms[form]]
    with pytest.raises(SystemExit):
        build_parser().parse_args(["sandbox", "fault", "openai", "--help"])
    assert "--redaction {dots,stars}" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        build_parser().parse_args(["sandbox", "fault", "openai", "--redaction", "hashes"])
