"""The OpenAI and Anthropic emulators and the Anthropic console, over real HTTP."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from sandbox.anthropic_api import AnthropicState, anthropic_app, console_app
from sandbox.openai_api import OpenAIState, openai_app
from tests.sandbox.asgi_server import serve

PROJECT = "proj_intelliprompt"
ADMIN_PATH = f"/v1/organization/projects/{PROJECT}"
ANTHROPIC_VERSION = {"anthropic-version": "2023-06-01"}


@pytest.fixture(scope="module")
def openai() -> Iterator[tuple[OpenAIState, httpx.Client, str]]:
    state = OpenAIState()
    admin_key = state.create_admin_key()
    with serve(openai_app(state)) as url, httpx.Client(base_url=url) as client:
        yield state, client, admin_key


@pytest.fixture(scope="module")
def anthropic() -> Iterator[tuple[AnthropicState, httpx.Client, httpx.Client, str]]:
    state = AnthropicState()
    admin_key = state.create_admin_key()
    with (
        serve(anthropic_app(state)) as api_url,
        serve(console_app(state)) as console_url,
        httpx.Client(base_url=api_url) as api,
        httpx.Client(base_url=console_url) as console,
    ):
        yield state, api, console, admin_key


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_openai_key_lifecycle(openai: tuple[OpenAIState, httpx.Client, str]) -> None:
    state, client, admin = openai
    created = client.post(
        f"{ADMIN_PATH}/service_accounts",
        headers=bearer(admin),
        json={"name": "intelliprompt-staging-2"},
    )
    assert created.status_code == 201
    body = created.json()
    assert body["object"] == "organization.project.service_account"
    assert body["id"].startswith("svc_acct_") and body["role"] == "member"
    api_key = body["api_key"]
    assert api_key["object"] == "organization.project.service_account.api_key"
    assert api_key["name"] == "Secret Key" and api_key["id"].startswith("key_")
    value = api_key["value"]
    assert value.startswith("sk-svcacct-")

    listed = client.get(f"{ADMIN_PATH}/api_keys", headers=bearer(admin)).json()
    entry = next(item for item in listed["data"] if item["id"] == api_key["id"])
    assert entry["last_used_at"] is None
    assert entry["redacted_value"] == f"{value[:14]}...{value[-4:]}"
    assert value not in str(listed)
    assert entry["owner"]["type"] == "service_account"
    assert entry["owner"]["service_account"]["id"] == body["id"]

    models = client.get("/v1/models", headers=bearer(value))
    assert models.status_code == 200 and models.json()["object"] == "list"
    used = client.get(f"{ADMIN_PATH}/api_keys/{api_key['id']}", headers=bearer(admin)).json()
    assert isinstance(used["last_used_at"], int)

    deleted = client.delete(f"{ADMIN_PATH}/api_keys/{api_key['id']}", headers=bearer(admin))
    assert deleted.json() == {
        "object": "organization.project.api_key.deleted",
        "id": api_key["id"],
        "deleted": True,
    }
    refused = client.get("/v1/models", headers=bearer(value))
    assert refused.status_code == 401
    assert refused.json() == {
        "error": {
            "message": f"Incorrect API key provided: {value[:8]}...{value[-4:]}. You can find your "
            "API key at https://platform.openai.com/account/api-keys.",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_api_key",
        }
    }
    assert value not in refused.text
    gone = client.get(f"{ADMIN_PATH}/api_keys/{api_key['id']}", headers=bearer(admin))
    assert gone.status_code == 404 and gone.json()["error"]["type"] == "invalid_request_error"
    assert state.key_for_value(value) is None


def test_openai_service_account_delete_removes_key(
    openai: tuple[OpenAIState, httpx.Client, str],
) -> None:
    state, client, admin = openai
    key_id, value = state.mint_service_account_key(PROJECT, "intelliprompt-production")
    account_id = state.keys[key_id].service_account_id
    path = f"{ADMIN_PATH}/service_accounts/{account_id}"
    assert client.get(path, headers=bearer(admin)).json()["name"] == "intelliprompt-production"
    assert client.get("/v1/models", headers=bearer(value)).status_code == 200
    deleted = client.delete(path, headers=bearer(admin)).json()
    assert deleted["object"] == "organization.project.service_account.deleted"
    assert client.get(path, headers=bearer(admin)).status_code == 404
    assert client.get("/v1/models", headers=bearer(value)).status_code == 401
    listed = client.get(f"{ADMIN_PATH}/api_keys", headers=bearer(admin)).json()
    assert key_id not in [item["id"] for item in listed["data"]]


def test_openai_pagination(openai: tuple[OpenAIState, httpx.Client, str]) -> None:
    state, client, admin = openai
    for number in range(5):
        state.mint_service_account_key(PROJECT, f"paging-{number}")
    every = client.get(f"{ADMIN_PATH}/api_keys?limit=100", headers=bearer(admin)).json()
    ids = [item["id"] for item in every["data"]]
    assert len(ids) >= 5 and every["has_more"] is False
    seen: list[str] = []
    after = None
    while True:
        query = "?limit=2" + (f"&after={after}" if after else "")
        chunk = client.get(f"{ADMIN_PATH}/api_keys{query}", headers=bearer(admin)).json()
        seen += [item["id"] for item in chunk["data"]]
        assert chunk["first_id"] == chunk["data"][0]["id"]
        assert chunk["last_id"] == chunk["data"][-1]["id"]
        if not chunk["has_more"]:
            break
        after = chunk["last_id"]
    assert seen == ids
    accounts = client.get(f"{ADMIN_PATH}/service_accounts?limit=1", headers=bearer(admin))
    assert accounts.json()["has_more"] is True and len(accounts.json()["data"]) == 1


def test_openai_auth_errors(openai: tuple[OpenAIState, httpx.Client, str]) -> None:
    state, client, admin = openai
    _, project_key = state.mint_service_account_key(PROJECT, "not-an-admin")
    no_key = client.get("/v1/models")
    assert no_key.status_code == 401 and "didn't provide an API key" in no_key.text
    for path in (f"{ADMIN_PATH}/api_keys", f"{ADMIN_PATH}/service_accounts"):
        assert client.get(path, headers=bearer(project_key)).status_code == 403
        assert client.get(path, headers=bearer("sk-admin-wrong-0000")).status_code == 401
    missing = client.get("/v1/organization/projects/proj_nope/api_keys", headers=bearer(admin))
    assert missing.status_code == 404 and "proj_nope" in missing.json()["error"]["message"]
    bad = client.post(f"{ADMIN_PATH}/service_accounts", headers=bearer(admin), json={})
    assert bad.status_code == 400
    unknown = client.get("/v1/nothing", headers=bearer(admin))
    assert unknown.json()["error"]["message"] == "Invalid URL (GET /v1/nothing)"
    short = client.get("/v1/models", headers=bearer("sk-bad"))
    assert short.status_code == 401 and "sk-bad" not in short.text


KEY_SHAPE = re.compile(r"^sk-ant-api03-[A-Za-z0-9_-]{95}AA$")


def test_anthropic_key_deactivation(
    anthropic: tuple[AnthropicState, httpx.Client, httpx.Client, str],
) -> None:
    state, api, console, admin = anthropic
    minted = console.post(
        "/keys", json={"name": "intelliprompt-staging", "workspace_id": "wrkspc_staging"}
    )
    assert minted.status_code == 201
    key_id, value = minted.json()["id"], minted.json()["key"]
    assert KEY_SHAPE.match(value) and key_id.startswith("apikey_")
    user = {"x-api-key": value, **ANTHROPIC_VERSION}
    assert api.get("/v1/models", headers=user).status_code == 200
    assert state.keys[key_id].last_used_at is not None

    admin_headers = {"x-api-key": admin, **ANTHROPIC_VERSION}
    listed = api.get(
        "/v1/organizations/api_keys",
        headers=admin_headers,
        params={"workspace_id": "wrkspc_staging"},
    ).json()
    assert [item["id"] for item in listed["data"]] == [key_id]
    item = listed["data"][0]
    assert item["partial_key_hint"] == f"{value[:16]}...{value[-4:]}"
    assert item["status"] == "active" and item["type"] == "api_key"
    assert item["created_by"]["type"] == "user" and item["created_at"].endswith("Z")
    assert value not in str(listed)

    update = api.post(
        f"/v1/organizations/api_keys/{key_id}", headers=admin_headers, json={"status": "inactive"}
    )
    assert update.status_code == 200 and update.json()["status"] == "inactive"
    refused = api.get("/v1/models", headers=user)
    assert refused.status_code == 401
    assert refused.json() == {
        "type": "error",
        "error": {"type": "authentication_error", "message": "invalid x-api-key"},
        "request_id": refused.headers["request-id"],
    }
    inactive = api.get(
        "/v1/organizations/api_keys", headers=admin_headers, params={"status": "inactive"}
    ).json()
    assert key_id in [entry["id"] for entry in inactive["data"]]
    archived = api.post(
        f"/v1/organizations/api_keys/{key_id}",
        headers=admin_headers,
        json={"status": "archived", "name": "old staging"},
    ).json()
    assert archived["status"] == "archived" and archived["name"] == "old staging"
    again = api.post(
        f"/v1/organizations/api_keys/{key_id}", headers=admin_headers, json={"status": "active"}
    )
    assert again.status_code == 400
    assert api.get("/v1/models", headers=user).status_code == 401


def test_anthropic_admin_rules(
    anthropic: tuple[AnthropicState, httpx.Client, httpx.Client, str],
) -> None:
    state, api, _, admin = anthropic
    _, plain = state.mint_key("plain")
    admin_headers = {"x-api-key": admin, **ANTHROPIC_VERSION}
    assert (
        api.post(
            "/v1/organizations/api_keys", headers=admin_headers, json={"name": "x"}
        ).status_code
        == 405
    )
    forbidden = api.get(
        "/v1/organizations/api_keys", headers={"x-api-key": plain, **ANTHROPIC_VERSION}
    )
    assert forbidden.status_code == 403
    assert forbidden.json()["error"]["type"] == "permission_error"
    unknown = api.get(
        "/v1/organizations/api_keys",
        headers={"x-api-key": "sk-ant-admin01-nope", **ANTHROPIC_VERSION},
    )
    assert unknown.status_code == 401
    assert api.get("/v1/models", headers={"x-api-key": plain}).status_code == 400
    assert api.get("/v1/models", headers=ANTHROPIC_VERSION).status_code == 401
    missing = api.get("/v1/organizations/api_keys/apikey_01nope", headers=admin_headers)
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found_error"
    bad = api.post(
        f"/v1/organizations/api_keys/{state.mint_key('b')[0]}",
        headers=admin_headers,
        json={"status": "deleted"},
    )
    assert bad.status_code == 400


def test_anthropic_pagination(
    anthropic: tuple[AnthropicState, httpx.Client, httpx.Client, str],
) -> None:
    state, api, _, admin = anthropic
    for number in range(5):
        state.mint_key(f"page-{number}", workspace_id="wrkspc_paging")
    headers = {"x-api-key": admin, **ANTHROPIC_VERSION}
    params = {"workspace_id": "wrkspc_paging", "limit": "2"}
    first = api.get("/v1/organizations/api_keys", headers=headers, params=params).json()
    assert [item["name"] for item in first["data"]] == ["page-4", "page-3"]
    assert first["has_more"] is True
    second = api.get(
        "/v1/organizations/api_keys",
        headers=headers,
        params=params | {"after_id": first["last_id"]},
    ).json()
    assert [item["name"] for item in second["data"]] == ["page-2", "page-1"]
    back = api.get(
        "/v1/organizations/api_keys",
        headers=headers,
        params=params | {"before_id": second["first_id"]},
    ).json()
    assert [item["name"] for item in back["data"]] == ["page-4", "page-3"]


def test_console_form(anthropic: tuple[AnthropicState, httpx.Client, httpx.Client, str]) -> None:
    _state, api, console, _ = anthropic
    home = console.get("/")
    assert home.status_code == 200 and '<form method="post" action="keys">' in home.text
    shown = console.post("/keys", data={"name": "from the browser"})
    assert shown.status_code == 201
    match = re.search(r'<code id="key">([^<]+)</code>', shown.text)
    assert match and KEY_SHAPE.match(match.group(1))
    user = {"x-api-key": match.group(1), **ANTHROPIC_VERSION}
    assert api.get("/v1/models", headers=user).status_code == 200
    assert console.post("/keys", json={}).status_code == 400
