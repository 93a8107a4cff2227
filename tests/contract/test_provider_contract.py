"""The provider emulators against the official clients' own types.

Every answer the OpenAI and Anthropic emulators give to a call secretops makes (and the
listing envelopes and error bodies) is fetched through the official client over real HTTP
(``with_raw_response``: the client's own paths, query parameters and bodies), then parsed
with the client's pydantic model for it. A field the model does not declare fails, anywhere
in the answer; a required field missing fails; and for the key objects secretops reads,
every declared field must be present (``null`` where it has no value), as the APIs send
them. The emulators cannot drift from the published types without this failing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest
from anthropic.types.beta.organization.beta_api_key import BetaAPIKey
from anthropic.types.beta_error_response import BetaErrorResponse
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
from pydantic import BaseModel

from sandbox.anthropic_api import AnthropicState, anthropic_app
from sandbox.openai_api import OpenAIState, openai_app
from tests.sandbox.asgi_server import serve

PROJECT = "proj_intelliprompt"
EVERY_FIELD = (ProjectAPIKey, APIKeyCreateResponse, BetaAPIKey)


def exact(model: type[BaseModel], data: Any, where: str = "") -> BaseModel:
    """``data`` parsed by ``model``, with no field it does not declare, at any depth."""
    parsed = model.model_validate(data)
    _no_extra(parsed, data, where or model.__name__)
    return parsed


def _no_extra(parsed: BaseModel, data: dict[str, Any], where: str) -> None:
    declared = set(type(parsed).model_fields)
    assert not set(data) - declared, f"{where}: fields the type lacks: {set(data) - declared}"
    if isinstance(parsed, EVERY_FIELD):
        assert not declared - set(data), f"{where}: fields missing: {declared - set(data)}"
    for name in data:
        value, raw = getattr(parsed, name), data[name]
        if isinstance(value, BaseModel):
            _no_extra(value, raw, f"{where}.{name}")
        elif isinstance(value, list):
            for index, (item, item_raw) in enumerate(zip(value, raw, strict=True)):
                if isinstance(item, BaseModel):
                    _no_extra(item, item_raw, f"{where}.{name}[{index}]")


def body(raw: Any) -> Any:
    return json.loads(raw.http_response.content)


def listing(raw: Any, item: type[BaseModel], envelope: set[str]) -> list[Any]:
    data = body(raw)
    assert set(data) == envelope, set(data)
    return [exact(item, entry, f"{item.__name__}[{n}]") for n, entry in enumerate(data["data"])]


@pytest.fixture(scope="module")
def openai_api() -> Iterator[tuple[OpenAIState, openai.OpenAI]]:
    state = OpenAIState()
    with serve(openai_app(state)) as url, openai.OpenAI(
            admin_api_key=state.create_admin_key(), api_key="", base_url=f"{url}/v1",
            max_retries=0) as client:
        yield state, client


@pytest.fixture(scope="module")
def anthropic_api() -> Iterator[tuple[AnthropicState, anthropic.Anthropic]]:
    state = AnthropicState()
    with serve(anthropic_app(state)) as url, anthropic.Anthropic(
            api_key=state.create_admin_key(), base_url=url, max_retries=0) as client:
        yield state, client


def test_openai_service_accounts_and_their_keys(
        openai_api: tuple[OpenAIState, openai.OpenAI]) -> None:
    state, client = openai_api
    projects = client.admin.organization.projects
    created = exact(ServiceAccountCreateResponse, body(
        projects.service_accounts.with_raw_response.create(PROJECT, name="contract-sa")))
    account = created.id  # type: ignore[attr-defined]
    exact(ProjectServiceAccount, body(
        projects.service_accounts.with_raw_response.retrieve(account, project_id=PROJECT)))
    listing(projects.service_accounts.with_raw_response.list(PROJECT),
            ProjectServiceAccount, {"object", "data", "first_id", "last_id", "has_more"})

    minted = exact(APIKeyCreateResponse, body(
        projects.service_accounts.api_keys.with_raw_response.create(
            account, project_id=PROJECT, name="contract-key", expires_in_seconds=86400,
            scopes=["api.model.read"])))
    key_id = minted.id  # type: ignore[attr-defined]
    for access in ("any", "active", "inactive"):
        listing(projects.api_keys.with_raw_response.list(
            PROJECT, owner_project_access=access),  # type: ignore[arg-type]
            ProjectAPIKey, {"object", "data", "first_id", "last_id", "has_more"})
    exact(ProjectAPIKey, body(
        projects.api_keys.with_raw_response.retrieve(key_id, project_id=PROJECT)))
    updated = exact(ProjectAPIKey, body(projects.api_keys.with_raw_response.update(
        key_id, project_id=PROJECT, expires_in_seconds=3600)))
    assert updated.expires_at is not None  # type: ignore[attr-defined]
    exact(APIKeyDeleteResponse, body(
        projects.api_keys.with_raw_response.delete(key_id, project_id=PROJECT)))
    assert account in state.service_accounts  # deleting a key keeps its account
    exact(ServiceAccountDeleteResponse, body(
        projects.service_accounts.with_raw_response.delete(account, project_id=PROJECT)))


def test_openai_both_redaction_forms_parse(
        openai_api: tuple[OpenAIState, openai.OpenAI]) -> None:
    state, client = openai_api
    state.mint_service_account_key(PROJECT, "contract-redaction")
    try:
        for form in ("dots", "stars"):
            state.redaction = lambda form=form: form  # type: ignore[misc]
            keys = listing(client.admin.organization.projects.api_keys.with_raw_response.list(
                PROJECT, owner_project_access="any"), ProjectAPIKey,
                {"object", "data", "first_id", "last_id", "has_more"})
            assert keys and all(("..." if form == "dots" else "****") in k.redacted_value
                                for k in keys)
    finally:
        state.redaction = lambda: "dots"


def test_openai_errors_have_the_error_object(
        openai_api: tuple[OpenAIState, openai.OpenAI]) -> None:
    _, client = openai_api
    with pytest.raises(openai.NotFoundError) as missing:
        client.admin.organization.projects.api_keys.retrieve("key_missing", project_id=PROJECT)
    assert set(missing.value.response.json()) == {"error"}
    assert set(missing.value.response.json()["error"]) == {"message", "type", "param", "code"}


def test_anthropic_keys(anthropic_api: tuple[AnthropicState, anthropic.Anthropic]) -> None:
    state, client = anthropic_api
    key_id, _ = state.mint_key("contract-key", workspace_id="wrkspc_01contract")
    state.mint_key("contract-org-key",
                   principal={"type": "user_actor", "user_id": "user_01contract"})
    keys = client.beta.organization.api_keys
    listed = listing(keys.with_raw_response.list(limit=10), BetaAPIKey,
                     {"data", "has_more", "first_id", "last_id"})
    assert {k.scope.type for k in listed} == {"workspace", "organization"}  # type: ignore[attr-defined]
    exact(BetaAPIKey, body(keys.with_raw_response.retrieve(key_id)))
    updated = exact(BetaAPIKey, body(keys.with_raw_response.update(key_id, status="inactive")))
    assert updated.status == "inactive"  # type: ignore[attr-defined]
    exact(BetaAPIKey, body(keys.with_raw_response.update(key_id, status="archived")))
    with pytest.raises(anthropic.BadRequestError) as final:
        keys.update(key_id, status="active")
    exact(BetaErrorResponse, final.value.response.json())
    with pytest.raises(anthropic.NotFoundError) as missing:
        keys.retrieve("apikey_01missing")
    exact(BetaErrorResponse, missing.value.response.json())


def test_anthropic_expired_keys(anthropic_api: tuple[AnthropicState, anthropic.Anthropic],
                                ) -> None:
    from datetime import timedelta

    state, client = anthropic_api
    key_id, value = state.mint_key("contract-expiring", expires_in=timedelta(seconds=-1))
    key = exact(BetaAPIKey, body(client.beta.organization.api_keys.with_raw_response.retrieve(
        key_id)))
    assert key.status == "expired" and key.expires_at is not None  # type: ignore[attr-defined]
    with pytest.raises(anthropic.AuthenticationError):
        client.with_options(api_key=value).models.list()
