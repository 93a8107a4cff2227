"""The OpenAI emulator against the official ``openai`` client's own types.

Every call goes through the client over real HTTP (``with_raw_response`` where the JSON is
checked, so the paths, query parameters and bodies are the client's), and every answer,
listing envelope and error body is held by :func:`tests.contract.shapes.exact` to the
client's model: no undeclared field, none missing."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from openai.pagination import SyncConversationCursorPage, SyncPage
from openai.types.admin.organization.projects.api_key_delete_response import (
    APIKeyDeleteResponse,
)
from openai.types.admin.organization.projects.project_api_key import ProjectAPIKey
from openai.types.admin.organization.projects.project_service_account import (
    ProjectServiceAccount,
)
from openai.types.admin.organization.projects.service_account_create_response import (
    ServiceAccountCreateResponse,
)
from openai.types.admin.organization.projects.service_account_delete_response import (
    ServiceAccountDeleteResponse,
)
from openai.types.admin.organization.projects.service_accounts.api_key_create_response import (
    APIKeyCreateResponse,
)
from openai.types.model import Model
from openai.types.shared.error_object import ErrorObject
from pydantic import BaseModel

from sandbox.faults import FaultMiddleware, Faults
from sandbox.openai_api import OpenAIState, openai_app
from tests.contract.shapes import body, error_json, exact
from tests.sandbox.asgi_server import serve

PROJECT = "proj_intelliprompt"
LIST_EXTRA = ("object", "first_id")  # sent by the API, undeclared by the cursor page model
USD = {"currency": "USD", "interval": "month", "threshold_amount": 5000}


class ErrorBody(BaseModel):
    error: ErrorObject


def error(exc: Any, status: int, code: str | None = None) -> ErrorObject:
    """The error body of ``exc``: an ``ErrorObject`` of ``status`` and ``code``, naming no
    key but in a redacted form (first 8 and last 4 characters)."""
    assert exc.status_code == status
    parsed = exact(ErrorBody, error_json(exc), omissible={"misalignment"}).error
    assert parsed.code == code, parsed
    assert not re.search(r"sk-[A-Za-z0-9_-]{10,}", parsed.message), parsed.message
    return parsed


def keys_page(raw: Any) -> list[ProjectAPIKey]:
    page = exact(SyncConversationCursorPage[ProjectAPIKey], body(raw), extra=LIST_EXTRA)
    return list(page.data)


@pytest.fixture(scope="module")
def world() -> Iterator[tuple[OpenAIState, Faults, str]]:
    state, faults = OpenAIState(), Faults()
    state.redaction = lambda: faults.get("openai").redaction
    with serve(FaultMiddleware(openai_app(state), faults, "openai")) as url:
        yield state, faults, f"{url}/v1"


@pytest.fixture()
def client(world: tuple[OpenAIState, Faults, str]) -> Iterator[openai.OpenAI]:
    state, faults, url = world
    faults.clear()
    state.per_account_keys = True
    with openai.OpenAI(admin_api_key=state.create_admin_key(), api_key="", base_url=url,
                       max_retries=0) as made:
        yield made


@pytest.fixture()
def state(world: tuple[OpenAIState, Faults, str]) -> OpenAIState:
    return world[0]


def user(client: openai.OpenAI, value: str) -> openai.OpenAI:
    return client.with_options(api_key=value)


def test_service_account_create_retrieve_update_list(client: openai.OpenAI) -> None:
    accounts = client.admin.organization.projects.service_accounts
    created = exact(ServiceAccountCreateResponse, body(accounts.with_raw_response.create(
        PROJECT, name="contract-sa", expires_in_seconds=3600, spend_limit=USD)))  # type: ignore[arg-type]
    assert created.role == "member" and created.api_key is not None
    assert created.api_key.value.startswith("sk-svcacct-")
    assert created.api_key.expires_at is not None and created.api_key.spend_limit is not None
    assert created.api_key.spend_limit.threshold_amount == 5000

    bare = exact(ServiceAccountCreateResponse, body(accounts.with_raw_response.create(
        PROJECT, name="contract-sa-only", create_service_account_only=True)))
    assert bare.role == "none" and bare.api_key is None

    got = exact(ProjectServiceAccount, body(
        accounts.with_raw_response.retrieve(created.id, project_id=PROJECT)))
    assert got.name == "contract-sa"
    renamed = exact(ProjectServiceAccount, body(accounts.with_raw_response.update(
        created.id, project_id=PROJECT, name="contract-sa-renamed", role="owner")))
    assert (renamed.name, renamed.role) == ("contract-sa-renamed", "owner")
    page = exact(SyncConversationCursorPage[ProjectServiceAccount],
                 body(accounts.with_raw_response.list(PROJECT, limit=100)), extra=LIST_EXTRA)
    assert {created.id, bare.id} <= {account.id for account in page.data}
    assert {created.id, bare.id} <= {a.id for a in accounts.list(PROJECT, limit=1)}  # paging
    gone = exact(ServiceAccountDeleteResponse, body(
        accounts.with_raw_response.delete(bare.id, project_id=PROJECT)))
    assert gone.deleted and gone.id == bare.id


def test_account_key_lifecycle(client: openai.OpenAI, state: OpenAIState) -> None:
    projects = client.admin.organization.projects
    account = projects.service_accounts.create(PROJECT, name="contract-owner")
    assert account.api_key is not None
    minted = exact(APIKeyCreateResponse, body(
        projects.service_accounts.api_keys.with_raw_response.create(
            account.id, project_id=PROJECT, name="contract-key", expires_in_seconds=86400,
            scopes=["api.model.read"])))
    assert minted.value.startswith("sk-svcacct-") and minted.spend_limit is None
    assert minted.expires_at is not None and minted.expires_at - minted.created_at == 86400
    assert state.keys[minted.id].scopes == ("api.model.read",)

    models = exact(SyncPage[Model], body(user(client, minted.value).models.with_raw_response
                                         .list()))
    assert models.object == "list" and models.data

    listed = {key.id: key for key in keys_page(projects.api_keys.with_raw_response.list(
        PROJECT, owner_project_access="any", limit=100))}
    key = listed[minted.id]
    assert key.owner.type == "service_account" and key.owner.service_account is not None
    assert key.owner.service_account.id == account.id and key.last_used_at is not None
    assert minted.value not in key.redacted_value and key.redacted_value.endswith(
        minted.value[-4:])

    got = exact(ProjectAPIKey, body(projects.api_keys.with_raw_response.retrieve(
        minted.id, project_id=PROJECT)))
    assert got.expires_at == minted.expires_at
    updated = exact(ProjectAPIKey, body(projects.api_keys.with_raw_response.update(
        minted.id, project_id=PROJECT, expires_in_seconds=3600, scopes=["api.files.read"],
        spend_limit=USD)))  # type: ignore[arg-type]
    assert updated.expires_at is not None and updated.expires_at <= int(time.time()) + 3600
    assert updated.spend_limit is not None and updated.spend_limit.enforcement.status
    with pytest.raises(openai.PermissionDeniedError) as lacking:
        user(client, minted.value).models.list()
    assert "api.model.read" in error(lacking.value, 403, "insufficient_permissions").message
    projects.api_keys.update(minted.id, project_id=PROJECT, scopes=["api.all.read"],
                             spend_limit=None)
    assert user(client, minted.value).models.list().data
    assert projects.api_keys.retrieve(minted.id, project_id=PROJECT).spend_limit is None

    deleted = exact(APIKeyDeleteResponse, body(projects.api_keys.with_raw_response.delete(
        minted.id, project_id=PROJECT)))
    assert deleted.deleted and deleted.id == minted.id
    # the key alone: its service account and the account's first key stay
    assert projects.service_accounts.retrieve(account.id, project_id=PROJECT).id == account.id
    assert projects.api_keys.retrieve(account.api_key.id, project_id=PROJECT)
    with pytest.raises(openai.AuthenticationError) as refused:
        user(client, minted.value).models.list()
    assert minted.value[-10:] not in error(refused.value, 401, "invalid_api_key").message
    exact(ServiceAccountDeleteResponse, body(projects.service_accounts.with_raw_response.delete(
        account.id, project_id=PROJECT)))
    with pytest.raises(openai.NotFoundError):
        projects.api_keys.retrieve(account.api_key.id, project_id=PROJECT)


def test_owner_project_access_filter(client: openai.OpenAI, state: OpenAIState) -> None:
    keys = client.admin.organization.projects.api_keys
    stayed, _ = state.mint_service_account_key(PROJECT, "contract-stayed")
    left, _ = state.mint_service_account_key(PROJECT, "contract-left")
    state.set_owner_project_access(state.keys[left].service_account_id, False)

    def ids(**access: Any) -> dict[str, str]:
        listed = keys_page(keys.with_raw_response.list(PROJECT, limit=100, **access))
        return {key.id: key.owner_project_access for key in listed}

    assert stayed in ids() and left not in ids()  # omitted: only owners with access
    assert ids(owner_project_access="active")[stayed] == "active"
    assert left not in ids(owner_project_access="active")
    assert ids(owner_project_access="inactive") == {left: "inactive"}
    assert ids(owner_project_access="any")[left] == "inactive"
    every = [key.id for key in keys.list(PROJECT, owner_project_access="any", limit=2)]
    assert {stayed, left} <= set(every) and len(every) == len(set(every))
    state.set_owner_project_access(state.keys[left].service_account_id, True)
    assert ids()[left] == "active"


def test_refusals_are_error_objects(client: openai.OpenAI, state: OpenAIState) -> None:
    projects = client.admin.organization.projects
    account = projects.service_accounts.create(PROJECT, name="contract-refusals")
    create = projects.service_accounts.api_keys.create
    with pytest.raises(openai.NotFoundError) as no_project:
        create(account.id, project_id="proj_missing", name="k")
    assert "proj_missing" in error(no_project.value, 404).message
    with pytest.raises(openai.NotFoundError) as no_account:
        create("svc_acct_missing", project_id=PROJECT, name="k")
    error(no_account.value, 404)
    with pytest.raises(openai.BadRequestError) as too_long:
        create(account.id, project_id=PROJECT, name="k",
               expires_in_seconds=state.max_key_lifetime_seconds + 1)
    parsed = error(too_long.value, 400, "invalid_expiration")
    assert parsed.type == "invalid_request_error" and parsed.param == "expires_in_seconds"
    state.per_account_keys = False
    with pytest.raises(openai.BadRequestError) as unsupported:
        create(account.id, project_id=PROJECT, name="k")
    error(unsupported.value, 400, "per_account_keys_disabled")
    state.per_account_keys = True
    with pytest.raises(openai.NotFoundError) as no_key:
        projects.api_keys.retrieve("key_missing", project_id=PROJECT)
    error(no_key.value, 404)
    with pytest.raises(openai.BadRequestError) as nothing:
        projects.api_keys.update(account.api_key.id, project_id=PROJECT)  # type: ignore[union-attr]
    error(nothing.value, 400)
    with pytest.raises(openai.AuthenticationError) as no_admin:
        client.with_options(admin_api_key="sk-admin-unknown-0000").admin.organization \
            .projects.api_keys.list(PROJECT)
    error(no_admin.value, 401, "invalid_api_key")


def test_chat_completion_checks_scope_then_body(client: openai.OpenAI,
                                              state: OpenAIState) -> None:
    """The call a restricted key's check falls back to: the official client's own request,
    answered with the error objects the API gives (nothing is generated)."""
    _, reads = state.mint_service_account_key(PROJECT, "contract-reads",
                                              scopes=["api.model.read"])
    _, requests = state.mint_service_account_key(PROJECT, "contract-requests",
                                                 scopes=["model.request"])
    messages: Any = [{"role": "user", "content": "hi"}]
    with pytest.raises(openai.PermissionDeniedError) as lacking:
        user(client, reads).chat.completions.create(model="gpt-4o-mini", messages=messages)
    assert "model.request" in error(lacking.value, 403, "insufficient_permissions").message
    with pytest.raises(openai.BadRequestError) as empty:
        user(client, requests).post("/chat/completions", body={}, cast_to=object)
    assert "model" in error(empty.value, 400).message
    with pytest.raises(openai.BadRequestError) as no_messages:
        user(client, requests).post("/chat/completions", body={"model": "gpt-4o-mini"},
                                    cast_to=object)
    assert error(no_messages.value, 400, "missing_required_parameter").param == "messages"
    with pytest.raises(openai.NotFoundError) as unknown:
        user(client, requests).chat.completions.create(model="gpt-4o-mini", messages=messages)
    error(unknown.value, 404, "model_not_found")
    with pytest.raises(openai.AuthenticationError) as refused:
        user(client, "sk-proj-unknown-00000000").post("/chat/completions", body={},
                                                      cast_to=object)
    error(refused.value, 401, "invalid_api_key")


def test_expired_keys(client: openai.OpenAI, state: OpenAIState) -> None:
    keys = client.admin.organization.projects.api_keys
    key_id, value = state.mint_service_account_key(PROJECT, "contract-expiring",
                                                   expires_in_seconds=60, scopes=["api.all.read"])
    assert user(client, value).models.list().data
    state.keys[key_id].expires_at = int(time.time()) - 1
    with pytest.raises(openai.AuthenticationError) as expired:
        user(client, value).models.list()
    error(expired.value, 401, "invalid_api_key")
    with pytest.raises(openai.BadRequestError) as update:
        keys.update(key_id, project_id=PROJECT, expires_in_seconds=60)
    error(update.value, 400, "key_expired")
    listed = exact(ProjectAPIKey, body(keys.with_raw_response.retrieve(key_id,
                                                                       project_id=PROJECT)))
    assert listed.expires_at is not None and listed.expires_at < time.time()


def test_read_only_admin_reads_but_cannot_write(client: openai.OpenAI,
                                                state: OpenAIState) -> None:
    key_id, value = state.mint_service_account_key(PROJECT, "contract-read-only")
    reader = client.with_options(admin_api_key=state.create_admin_key(read_only=True))
    projects = reader.admin.organization.projects
    assert key_id in [key.id for key in projects.api_keys.list(PROJECT, limit=100)]
    account = state.keys[key_id].service_account_id
    writes = (
        lambda: projects.service_accounts.create(PROJECT, name="nope"),
        lambda: projects.service_accounts.api_keys.create(account, project_id=PROJECT),
        lambda: projects.api_keys.update(key_id, project_id=PROJECT, expires_in_seconds=60),
        lambda: projects.api_keys.delete(key_id, project_id=PROJECT),
        lambda: projects.service_accounts.delete(account, project_id=PROJECT),
    )
    for write in writes:
        with pytest.raises(openai.PermissionDeniedError) as refused:
            write()
        error(refused.value, 403, "insufficient_permissions")
    assert key_id in state.keys and account in state.service_accounts
    with pytest.raises(openai.PermissionDeniedError) as project_key:
        client.with_options(admin_api_key=value).admin.organization.projects.api_keys.list(
            PROJECT)
    error(project_key.value, 403, "insufficient_permissions")


@pytest.mark.parametrize("form", ["dots", "stars"])
def test_both_redaction_forms_parse(client: openai.OpenAI, state: OpenAIState,
                                    world: tuple[OpenAIState, Faults, str], form: str) -> None:
    _, value = state.mint_service_account_key(PROJECT, f"contract-redaction-{form}")
    world[1].set("openai", redaction=form)
    listed = keys_page(client.admin.organization.projects.api_keys.with_raw_response.list(
        PROJECT, owner_project_access="any", limit=100))
    shown = {key.redacted_value for key in listed}
    expected = (f"{value[:14]}...{value[-4:]}" if form == "dots"
                else f"{value[:8]}{'*' * 16}{value[-4:]}")
    assert expected in shown and value not in shown


@pytest.mark.parametrize(("status", "raised"), [
    (429, openai.RateLimitError), (500, openai.InternalServerError),
    (503, openai.InternalServerError)])
def test_injected_faults_are_error_objects(client: openai.OpenAI,
                                           world: tuple[OpenAIState, Faults, str],
                                           status: int, raised: type[Exception]) -> None:
    world[1].set("openai", error_rate=1.0, codes=[status])
    with pytest.raises(raised) as failed:
        client.admin.organization.projects.api_keys.list(PROJECT)
    error(failed.value, status, "rate_limit_exceeded" if status == 429 else None)
