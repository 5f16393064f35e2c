"""API key scopes: a key does only what its scope says, and an everyday key cannot mint keys.

The finding: any API key could `POST /api/keys/`, so a leaked key could make a fresh one and
revoking the leaked key did not end the attacker's access. Scopes, narrowest first:
`inference` (/v1/ only), `api` (the default: REST API and /v1/, no key management) and `keys`
(everything). A session, i.e. the browser, still manages keys as before.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from rftconsole.models import ApiKey, ApiKeyScope, AuditEvent
from rftconsole.services import create_api_key

NO_KEY_MANAGEMENT = (
    "This API key may not manage keys; create a key with the 'keys' scope on the API keys page."
)


def bearer(raw_key: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {raw_key}"}


def new_key_in_the_ui(browser: Client, name: str, scope: str | None = None) -> str:
    form = {"name": name} if scope is None else {"name": name, "scope": scope}
    response = browser.post("/keys/", form)
    assert response.status_code == 200
    return response.context["new_key"]


def test_a_leaked_default_key_cannot_mint_a_key_so_revoking_it_ends_the_leak(
    alice_client: Client, client: Client
) -> None:
    leaked = new_key_in_the_ui(alice_client, "laptop")
    assert ApiKey.objects.get().scope == "api"

    minted = client.post("/api/keys/", {"name": "backdoor"}, **bearer(leaked))
    assert minted.status_code == 403
    assert minted.json() == {"detail": NO_KEY_MANAGEMENT}
    assert list(ApiKey.objects.values_list("name", flat=True)) == ["laptop"]
    assert client.get("/api/keys/", **bearer(leaked)).status_code == 403
    assert (
        client.delete(f"/api/keys/{ApiKey.objects.get().pk}/", **bearer(leaked)).status_code == 403
    )
    assert client.get("/api/jobs/", **bearer(leaked)).status_code == 200  # still a working key

    alice_client.post(f"/keys/{ApiKey.objects.get().pk}/revoke/")
    for path in ("/api/me/", "/api/jobs/", "/api/keys/"):
        assert client.get(path, **bearer(leaked)).status_code == 401, path
    assert client.get("/v1/models", **bearer(leaked)).status_code == 401
    assert ApiKey.objects.filter(revoked_at=None).count() == 0  # nothing left that it made


def test_a_keys_scope_key_can_list_and_mint_keys_of_its_scope_or_narrower(
    client: Client, alice: User
) -> None:
    _, admin_key = create_api_key(alice, "provisioner", ApiKeyScope.KEYS)
    for scope in ("inference", "api", "keys"):
        created = client.post("/api/keys/", {"name": scope, "scope": scope}, **bearer(admin_key))
        assert created.status_code == 201, created.content
        assert created.json()["scope"] == scope
        assert ApiKey.objects.get(name=scope).scope == scope
    default = client.post("/api/keys/", {"name": "plain"}, **bearer(admin_key))
    assert default.json()["scope"] == "api"
    assert default.json()["scope_description"] == "REST API and /v1/; cannot manage keys"

    listed = client.get("/api/keys/", **bearer(admin_key))
    assert listed.status_code == 200
    assert {k["name"]: k["scope"] for k in listed.json()["results"]} == {
        "provisioner": "keys", "inference": "inference", "api": "api", "keys": "keys",
        "plain": "api",
    }  # fmt: skip


def test_a_key_can_never_mint_a_wider_one() -> None:
    # Only `keys` keys reach POST /api/keys/, and `keys` is the widest scope, so the rule is
    # stated here on the scopes themselves: it keeps holding if a scope is added between.
    order = ["inference", "api", "keys"]
    for have in order:
        key = ApiKey(scope=have)
        for want in order:
            assert key.covers(want) == (order.index(want) <= order.index(have)), (have, want)


def test_a_wider_key_requested_by_a_narrower_key_is_refused(
    client: Client, alice: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Let an `api` key past the key-management gate to show the minting check on its own.
    monkeypatch.setattr(
        "rftconsole.security.api_scopes.ManagesKeys.has_permission", lambda *_: True
    )
    _, api_key = create_api_key(alice, "everyday")
    response = client.post("/api/keys/", {"name": "wider", "scope": "keys"}, **bearer(api_key))
    assert response.status_code == 403
    assert "may not create a key with the wider scope 'keys'" in response.json()["detail"]
    assert not ApiKey.objects.filter(name="wider").exists()


@pytest.mark.parametrize(
    "path", ["/api/jobs/", "/api/me/", "/api/models/", "/api/datasets/", "/api/keys/",
             "/api/rewards/", "/api/invocation-logs/", "/api/system/", "/api/schema/"],
)  # fmt: skip
def test_an_inference_key_gets_403_on_the_rest_api(client: Client, alice: User, path: str) -> None:
    _, raw_key = create_api_key(alice, "chat app", ApiKeyScope.INFERENCE)
    response = client.get(path, **bearer(raw_key))
    assert response.status_code == 403
    assert "may only call /v1/" in response.content.decode()  # /api/schema/ answers in YAML
    assert client.post(path, {}, **bearer(raw_key)).status_code in {403, 405}


def test_an_inference_key_works_on_v1(client: Client, alice: User) -> None:
    _, raw_key = create_api_key(alice, "chat app", ApiKeyScope.INFERENCE)
    response = client.get("/v1/models", **bearer(raw_key))
    assert response.status_code == 200
    assert response.json()["object"] == "list"


def test_a_session_still_manages_keys_of_any_scope(alice_client: Client) -> None:
    created = alice_client.post(
        "/api/keys/", {"name": "ops", "scope": "keys"}, content_type="application/json"
    )
    assert created.status_code == 201 and created.json()["scope"] == "keys"
    assert alice_client.get("/api/keys/").status_code == 200
    assert alice_client.delete(f"/api/keys/{created.json()['id']}/").status_code == 204


def test_the_keys_page_offers_the_scopes_and_lists_each_keys_scope_in_words(
    alice_client: Client,
) -> None:
    page = alice_client.get("/keys/").content.decode()
    assert 'name="scope"' in page and "api — REST API and /v1/; cannot manage keys" in page
    new_key_in_the_ui(alice_client, "chat app", "inference")
    new_key_in_the_ui(alice_client, "laptop")
    page = alice_client.get("/keys/").content.decode()
    assert "/v1/ (OpenAI-compatible endpoint) only; no REST API" in page
    assert "REST API and /v1/; cannot manage keys" in page
    assert dict(ApiKey.objects.values_list("name", "scope")) == {
        "chat app": "inference", "laptop": "api",
    }  # fmt: skip


def test_a_bad_scope_is_refused_with_a_clear_message(
    alice_client: Client, client: Client, alice: User
) -> None:
    _, admin_key = create_api_key(alice, "provisioner", ApiKeyScope.KEYS)
    response = client.post("/api/keys/", {"name": "x", "scope": "root"}, **bearer(admin_key))
    assert response.status_code == 400
    assert response.json() == {
        "scope": ["Unknown scope 'root': use one of 'inference', 'api', 'keys'."]
    }
    page = alice_client.post("/keys/", {"name": "x", "scope": "root"}).content.decode()
    assert "Unknown scope “root”: pick one from the list." in page
    assert not ApiKey.objects.filter(name="x").exists()


def test_the_audit_log_records_each_keys_scope_and_what_made_it(
    alice_client: Client, client: Client
) -> None:
    admin_key = new_key_in_the_ui(alice_client, "provisioner", "keys")
    client.post("/api/keys/", {"name": "ci", "scope": "inference"}, **bearer(admin_key))
    made = [e.detail for e in AuditEvent.objects.filter(action="api_key.create").order_by("pk")]
    provisioner = ApiKey.objects.get(name="provisioner")
    assert made == [
        {"scope": "keys", "made_with_key": None},
        {"scope": "inference", "made_with_key": provisioner.lookup},
    ]
