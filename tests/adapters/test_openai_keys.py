"""OpenAI keys minted on an environment's service account, with an expiry and scopes; the
fallback to a service account per key; what each refusal says; keys near their expiry are
due; both redaction forms. Against the sandbox's OpenAI emulator over real HTTP."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from sandbox.openai_api import OpenAIState
from secretops.adapters.openai_admin import OpenAIProvider
from secretops.adapters.providers import ProviderRefused
from secretops.models import KeyCheck, SecretValue, keys_with_value
from tests.sandbox.asgi_server import serve

PROJECT = "proj_intelliprompt"
NAME = "secretops-intelliprompt-staging-openai-20261206T120000Z"


@pytest.fixture()
def account(openai_world: tuple[OpenAIState, str]) -> str:
    state, _ = openai_world
    key_id, _ = state.mint_service_account_key(PROJECT, "intelliprompt-staging-backend")
    return state.keys[key_id].service_account_id


@pytest.fixture()
def provider(openai_world: tuple[OpenAIState, str], account: str) -> Iterator[OpenAIProvider]:
    state, url = openai_world
    state.per_account_keys = True
    built = OpenAIProvider(url, SecretValue(state.create_admin_key()), PROJECT,
                           {"staging": account})
    yield built
    built.close()


def test_a_key_is_minted_on_the_account_with_expiry_and_scopes(
    openai_world: tuple[OpenAIState, str], provider: OpenAIProvider, account: str
) -> None:
    state, _ = openai_world
    began = int(time.time())
    new = provider.create_key(NAME, environment="staging", lifetime=timedelta(days=45),
                              scopes=["api.model.read", "api.responses.write"])
    stored = state.keys[new.key.id]
    assert stored.service_account_id == account and stored.value == new.value.reveal()
    assert stored.scopes == ("api.model.read", "api.responses.write")
    assert stored.expires_at is not None
    assert began + 45 * 86400 <= stored.expires_at <= int(time.time()) + 45 * 86400
    assert new.key.expires_at == datetime.fromtimestamp(stored.expires_at, UTC)
    listed = {key.id: key for key in provider.list_keys()}
    assert listed[new.key.id].name == NAME and listed[new.key.id].expires_at == new.key.expires_at
    assert provider.check_key(new.value)

    assert provider.revoke_key(new.key.id)
    assert new.key.id not in state.keys and account in state.service_accounts
    assert not provider.check_key(new.value)


def test_without_per_account_keys_a_service_account_is_made_per_key(
    openai_world: tuple[OpenAIState, str], provider: OpenAIProvider, account: str
) -> None:
    state, _ = openai_world
    state.per_account_keys = False
    new = provider.create_key(NAME, environment="staging", lifetime=timedelta(days=10))
    own = new.key.extra["service_account_id"]
    assert own != account and state.service_accounts[own].name == NAME
    assert new.key.expires_at is not None and state.keys[new.key.id].expires_at is not None
    assert provider.revoke_key(new.key.id)
    assert own not in state.service_accounts and account in state.service_accounts


def test_checks_say_what_they_know(
    openai_world: tuple[OpenAIState, str], provider: OpenAIProvider
) -> None:
    """Only a refusal of the key itself is "refused": a key restricted to scopes without
    ``api.model.read`` is checked again with a call its scopes allow."""
    state, _ = openai_world
    full = provider.create_key(NAME + "-full", environment="staging")
    requests = provider.create_key(NAME + "-req", environment="staging",
                                   scopes=["model.request"])
    files = provider.create_key(NAME + "-files", environment="staging",
                                scopes=["api.files.read"])
    short = provider.create_key(NAME + "-short", environment="staging",
                                lifetime=timedelta(seconds=1))
    state.keys[short.key.id].expires_at = int(time.time()) - 1
    deleted = provider.create_key(NAME + "-gone", environment="staging")
    assert provider.revoke_key(deleted.key.id)
    checks = {name: provider.check_key(made.value) for name, made in
              [("full", full), ("requests", requests), ("files", files), ("expired", short),
               ("deleted", deleted)]}
    assert checks == {"full": KeyCheck.WORKS, "requests": KeyCheck.SCOPED,
                      "files": KeyCheck.AUTHENTICATED, "expired": KeyCheck.REFUSED,
                      "deleted": KeyCheck.REFUSED}
    assert [bool(check) for check in checks.values()] == [True, True, True, False, False]


def _answers_401(message: str, code: str) -> Starlette:
    async def refuse(request: Request) -> JSONResponse:
        error = {"message": message, "type": "invalid_request_error", "param": None,
                 "code": code}
        return JSONResponse({"error": error}, status_code=401)

    return Starlette(routes=[Route("/v1/models", refuse, methods=["GET"]),
                             Route("/v1/chat/completions", refuse, methods=["POST"])])


@pytest.mark.parametrize(("message", "code", "expected"), [
    ("You have insufficient permissions for this operation. Missing scopes: api.model.read.",
     None, KeyCheck.AUTHENTICATED),
    ("Incorrect API key provided: sk-proj-****abcd.", "invalid_api_key", KeyCheck.REFUSED),
])
def test_a_401_that_names_missing_scopes_is_not_a_refused_key(
    message: str, code: str | None, expected: KeyCheck
) -> None:
    """Some restricted keys are answered 401, not 403, when a scope is missing."""
    with (serve(_answers_401(message, code or "")) as url,
          OpenAIProvider(url, SecretValue("sk-admin-unused-0000"), PROJECT, {}) as provider):
        assert provider.check_key(SecretValue("sk-proj-restricted-0000abcd")) is expected


@pytest.mark.parametrize("case", ["read-only admin", "unknown project", "unknown account",
                                  "expiry too long"])
def test_refusals_are_one_clear_line_and_change_nothing(
    openai_world: tuple[OpenAIState, str], account: str, case: str
) -> None:
    state, url = openai_world
    state.per_account_keys = True  # as the organization allows (another test turns it off)
    admin = SecretValue(state.create_admin_key(read_only=case == "read-only admin"))
    project = "proj_missing" if case == "unknown project" else PROJECT
    accounts = {"staging": "svc_acct_missing" if case == "unknown account" else account}
    keys_before = set(state.keys)
    lifetime = timedelta(days=4000) if case == "expiry too long" else None
    with (OpenAIProvider(url, admin, project, accounts) as provider,
          pytest.raises(ProviderRefused) as refused):
        provider.create_key(NAME, environment="staging", lifetime=lifetime)
    text = str(refused.value)
    assert "\n" not in text and "sk-" not in text
    expected = {"read-only admin": "HTTP 403 (insufficient_permissions)",
                "unknown project": "HTTP 404", "unknown account": "HTTP 404",
                "expiry too long": "HTTP 400 (invalid_expiration)"}[case]
    assert expected in text
    assert set(state.keys) == keys_before


def test_a_key_id_that_no_longer_exists(provider: OpenAIProvider) -> None:
    assert provider.get_key("key_doesnotexist0") is None
    assert provider.revoke_key("key_doesnotexist0") is False


def test_both_redaction_forms_identify_the_key(
    openai_world: tuple[OpenAIState, str], provider: OpenAIProvider
) -> None:
    state, _ = openai_world
    new = provider.create_key(NAME, environment="staging")
    for form, mark in (("dots", "..."), ("stars", "****")):
        state.redaction = lambda form=form: form  # type: ignore[misc]
        listing = provider.list_keys()
        mine = [key for key in listing if key.id == new.key.id]
        assert mine and mark in str(mine[0].redacted_value)
        assert [key.id for key in keys_with_value(listing, new.value)] == [new.key.id]
    state.redaction = lambda: "dots"
