"""The Anthropic emulator against the official ``anthropic`` client's own types.

Every call goes through the client over real HTTP (``with_raw_response`` where the JSON is
checked), and every key, listing envelope, model and error body is held by
:func:`tests.contract.shapes.exact` to the client's model: no undeclared field, none
missing (``null`` where there is no value)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import anthropic
import pytest
from anthropic.pagination import SyncPage
from anthropic.types.beta.organization.beta_api_key import BetaAPIKey
from anthropic.types.beta_error_response import BetaErrorResponse
from anthropic.types.model_info import ModelInfo

from sandbox.anthropic_api import DEFAULT_WORKSPACE, AnthropicState, anthropic_app
from sandbox.faults import FaultMiddleware, Faults
from tests.contract.shapes import body, error_json, exact
from tests.sandbox.asgi_server import serve

WORKSPACE = "wrkspc_01ContractWorkspace00"
PERSON = {"type": "user_actor", "user_id": "user_01ContractPerson000000"}
ROBOT = {"type": "service_account_actor", "service_account_id": "svcacct_01ContractRobot0"}


def error(exc: Any, status: int, kind: str) -> BetaErrorResponse:
    assert exc.status_code == status
    parsed = exact(BetaErrorResponse, error_json(exc))
    assert parsed.error.type == kind and parsed.request_id, parsed
    assert not re.search(r"sk-ant-[A-Za-z0-9_-]{10,}", parsed.error.message)
    return parsed


def keys_page(raw: Any) -> list[BetaAPIKey]:
    return list(exact(SyncPage[BetaAPIKey], body(raw)).data)


@pytest.fixture(scope="module")
def world() -> Iterator[tuple[AnthropicState, Faults, str]]:
    state, faults = AnthropicState(), Faults()
    with serve(FaultMiddleware(anthropic_app(state), faults, "anthropic")) as url:
        yield state, faults, url


@pytest.fixture()
def state(world: tuple[AnthropicState, Faults, str]) -> AnthropicState:
    return world[0]


@pytest.fixture()
def client(world: tuple[AnthropicState, Faults, str]) -> Iterator[anthropic.Anthropic]:
    state, faults, url = world
    faults.clear()
    with anthropic.Anthropic(api_key=state.create_admin_key(), base_url=url,
                             max_retries=0) as made:
        yield made


def test_key_shapes_and_scopes(client: anthropic.Anthropic, state: AnthropicState) -> None:
    keys = client.beta.organization.api_keys
    in_workspace, value = state.mint_key("contract-workspace", workspace_id=WORKSPACE)
    default, _ = state.mint_key("contract-default")
    person, _ = state.mint_key("contract-person", principal=PERSON)
    robot, _ = state.mint_key("contract-robot", principal=ROBOT, workspace_id=WORKSPACE,
                              expires_in=timedelta(days=30))

    got = {key_id: exact(BetaAPIKey, body(keys.with_raw_response.retrieve(key_id)))
           for key_id in (in_workspace, default, person, robot)}
    assert got[in_workspace].scope.type == "workspace"
    assert got[in_workspace].scope.workspace_id == WORKSPACE  # type: ignore[union-attr]
    assert got[default].scope.workspace_id == DEFAULT_WORKSPACE  # type: ignore[union-attr]
    assert got[person].scope.type == "organization"
    assert got[person].principal is not None and got[person].principal.type == "user_actor"
    assert got[robot].principal is not None
    assert got[robot].principal.type == "service_account_actor"
    assert got[robot].expires_at is not None and got[default].expires_at is None
    assert got[in_workspace].created_by is not None
    assert got[in_workspace].created_by.type == "user"
    hint = got[in_workspace].partial_key_hint
    assert hint == f"{value[:16]}...{value[-4:]}" and value not in str(got)
    assert {key.status for key in got.values()} == {"active"}

    listed = keys_page(keys.with_raw_response.list(workspace_id=WORKSPACE, limit=100))
    assert {key.id for key in listed} == {in_workspace, robot}
    assert {key.id for key in keys_page(keys.with_raw_response.list(limit=1000))} >= set(got)


def test_listing_pages_and_filters(client: anthropic.Anthropic, state: AnthropicState) -> None:
    keys = client.beta.organization.api_keys
    workspace = "wrkspc_01ContractPaging0000"
    minted = [state.mint_key(f"contract-page-{n}", workspace_id=workspace)[0] for n in range(5)]
    first = exact(SyncPage[BetaAPIKey], body(keys.with_raw_response.list(
        workspace_id=workspace, limit=2)))
    assert [key.id for key in first.data] == minted[:-3:-1] and first.has_more
    assert (first.first_id, first.last_id) == (first.data[0].id, first.data[-1].id)
    walked = [key.id for key in keys.list(workspace_id=workspace, limit=2)]  # after_id pages
    assert walked == minted[::-1]
    back = exact(SyncPage[BetaAPIKey], body(keys.with_raw_response.list(
        workspace_id=workspace, limit=2, before_id=walked[2])))
    assert [key.id for key in back.data] == walked[:2]
    empty = exact(SyncPage[BetaAPIKey], body(keys.with_raw_response.list(
        workspace_id="wrkspc_01Nothing", limit=2)))
    assert empty.data == [] and empty.first_id is None and empty.has_more is False
    keys.update(minted[0], status="inactive")
    for status in ("active", "inactive", "archived", "expired"):
        listed = keys_page(keys.with_raw_response.list(workspace_id=workspace, status=status))
        assert {key.status for key in listed} <= {status}
    assert [key.id for key in keys.list(workspace_id=workspace, status="inactive")] == [
        minted[0]]


def test_updates_and_archived_is_final(client: anthropic.Anthropic,
                                       state: AnthropicState) -> None:
    keys = client.beta.organization.api_keys
    key_id, value = state.mint_key("contract-update", workspace_id=WORKSPACE)
    user = client.with_options(api_key=value)
    assert user.models.list().data
    off = exact(BetaAPIKey, body(keys.with_raw_response.update(key_id, status="inactive")))
    assert off.status == "inactive"
    with pytest.raises(anthropic.AuthenticationError) as refused:
        user.models.list()
    error(refused.value, 401, "authentication_error")
    back = exact(BetaAPIKey, body(keys.with_raw_response.update(
        key_id, status="active", name="contract-renamed")))
    assert (back.status, back.name) == ("active", "contract-renamed")
    archived = exact(BetaAPIKey, body(keys.with_raw_response.update(key_id, status="archived")))
    assert archived.status == "archived"
    for change in ({"status": "active"}, {"status": "inactive"}, {"status": "archived"},
                   {"name": "again"}):
        with pytest.raises(anthropic.BadRequestError) as final:
            keys.update(key_id, **change)  # type: ignore[arg-type]
        assert "rchived" in error(final.value, 400, "invalid_request_error").error.message
    assert keys.retrieve(key_id).name == "contract-renamed"
    with pytest.raises(anthropic.AuthenticationError):
        user.models.list()


def test_expired_keys(client: anthropic.Anthropic, state: AnthropicState) -> None:
    keys = client.beta.organization.api_keys
    key_id, value = state.mint_key("contract-expired", workspace_id=WORKSPACE,
                                   expires_in=timedelta(seconds=-1))
    key = exact(BetaAPIKey, body(keys.with_raw_response.retrieve(key_id)))
    assert key.status == "expired" and key.expires_at is not None
    assert key_id in [k.id for k in keys.list(status="expired", workspace_id=WORKSPACE)]
    assert key_id not in [k.id for k in keys.list(status="active", workspace_id=WORKSPACE)]
    with pytest.raises(anthropic.AuthenticationError) as refused:
        client.with_options(api_key=value).models.list()
    error(refused.value, 401, "authentication_error")
    with pytest.raises(anthropic.BadRequestError) as revive:
        keys.update(key_id, status="active")
    error(revive.value, 400, "invalid_request_error")
    assert keys.update(key_id, status="archived").status == "archived"


def test_models(client: anthropic.Anthropic, state: AnthropicState) -> None:
    _, value = state.mint_key("contract-models", workspace_id=WORKSPACE)
    page = exact(SyncPage[ModelInfo], body(
        client.with_options(api_key=value).models.with_raw_response.list()))
    assert page.data and all(model.lifecycle == "active" for model in page.data)


def test_refusals_are_error_responses(client: anthropic.Anthropic,
                                      state: AnthropicState) -> None:
    keys = client.beta.organization.api_keys
    with pytest.raises(anthropic.NotFoundError) as missing:
        keys.retrieve("apikey_01missing")
    error(missing.value, 404, "not_found_error")
    _, plain = state.mint_key("contract-plain", workspace_id=WORKSPACE)
    with pytest.raises(anthropic.PermissionDeniedError) as not_admin:
        client.with_options(api_key=plain).beta.organization.api_keys.list()
    error(not_admin.value, 403, "permission_error")
    with pytest.raises(anthropic.AuthenticationError) as unknown:
        client.with_options(api_key="sk-ant-admin01-unknown").beta.organization.api_keys.list()
    error(unknown.value, 401, "authentication_error")
    with pytest.raises(anthropic.BadRequestError) as bad_status:
        keys.update(state.mint_key("contract-bad")[0], status="expired")  # type: ignore[arg-type]
    error(bad_status.value, 400, "invalid_request_error")
    with pytest.raises(anthropic.BadRequestError) as bad_limit:
        keys.list(limit=0)
    error(bad_limit.value, 400, "invalid_request_error")


def test_beta_markers_are_accepted(client: anthropic.Anthropic, state: AnthropicState) -> None:
    key_id, _ = state.mint_key("contract-beta", workspace_id=WORKSPACE)
    marked = client.beta.organization.api_keys.with_raw_response.retrieve(
        key_id, extra_query={"beta": "true"},
        extra_headers={"anthropic-beta": "admin-api-2026-01-01"})
    assert exact(BetaAPIKey, body(marked)).id == key_id
    listed = client.beta.organization.api_keys.with_raw_response.list(
        workspace_id=WORKSPACE, extra_query={"beta": "true"})
    assert key_id in {key.id for key in keys_page(listed)}


@pytest.mark.parametrize(("status", "raised", "kind"), [
    (429, anthropic.RateLimitError, "rate_limit_error"),
    (500, anthropic.InternalServerError, "api_error"),
    (529, anthropic.OverloadedError, "overloaded_error")])
def test_injected_faults_are_error_responses(
        client: anthropic.Anthropic, world: tuple[AnthropicState, Faults, str], status: int,
        raised: type[Exception], kind: str) -> None:
    world[1].set("anthropic", error_rate=1.0, codes=[status])
    with pytest.raises(raised) as failed:
        client.beta.organization.api_keys.list()
    error(failed.value, status, kind)


def test_the_check_refuses_undeclared_and_missing_fields(client: anthropic.Anthropic,
                                                         state: AnthropicState) -> None:
    key_id, _ = state.mint_key("contract-check", workspace_id=WORKSPACE)
    good = body(client.beta.organization.api_keys.with_raw_response.retrieve(key_id))
    exact(BetaAPIKey, good)
    bad = [good | {"workspace_id": WORKSPACE},  # the emulator's old top-level field
           {k: v for k, v in good.items() if k != "principal"},
           good | {"scope": good["scope"] | {"name": "Default"}}]
    for shape in bad:
        with pytest.raises(AssertionError):
            exact(BetaAPIKey, shape)
