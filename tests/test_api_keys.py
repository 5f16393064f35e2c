"""Per-user API keys: made and revoked in the UI or API, stored hashed, private to their owner."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.test import Client

from rftconsole.models import ApiKey, ApiKeyScope
from rftconsole.services import create_api_key


def bearer(raw_key: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {raw_key}"}


def test_a_key_created_in_the_ui_is_shown_once_and_stored_only_as_a_hash(
    alice_client: Client,
) -> None:
    response = alice_client.post("/keys/", {"name": "laptop"})
    assert response.status_code == 200
    raw_key = response.context["new_key"]
    assert raw_key.startswith("rft_") and raw_key.encode() in response.content
    stored = ApiKey.objects.get(name="laptop")
    assert raw_key not in {stored.key_hash, stored.lookup}
    assert raw_key.encode() not in alice_client.get("/keys/").content


def test_a_key_needs_a_name(alice_client: Client) -> None:
    response = alice_client.post("/keys/", {"name": ""})
    assert b"This field is required." in response.content
    assert not ApiKey.objects.exists()


def test_the_api_accepts_a_valid_key_and_knows_its_owner(client: Client, alice: User) -> None:
    _, raw_key = create_api_key(alice, "ci")
    response = client.get("/api/me/", **bearer(raw_key))
    assert response.status_code == 200
    assert response.json()["username"] == "alice"
    assert ApiKey.objects.get(name="ci").last_used_at is not None


def test_the_api_rejects_a_forged_key_with_a_known_prefix(client: Client, alice: User) -> None:
    api_key, raw_key = create_api_key(alice, "ci")
    forged = raw_key[:-4] + ("aaaa" if not raw_key.endswith("aaaa") else "bbbb")
    response = client.get("/api/me/", **bearer(forged))
    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid or revoked API key."}


def test_a_revoked_key_stops_working(alice_client: Client, client: Client, alice: User) -> None:
    api_key, raw_key = create_api_key(alice, "old")
    response = alice_client.post(f"/keys/{api_key.pk}/revoke/", follow=True)
    assert "Revoked “old”" in response.content.decode()
    assert client.get("/api/me/", **bearer(raw_key)).status_code == 401


def test_a_key_of_a_deactivated_user_stops_working(client: Client, alice: User) -> None:
    _, raw_key = create_api_key(alice, "ci")
    alice.is_active = False
    alice.save()
    assert client.get("/api/me/", **bearer(raw_key)).status_code == 401


def test_keys_can_be_created_listed_and_revoked_through_the_api(
    client: Client, alice: User
) -> None:
    # Managing keys with a key needs the `keys` scope (tests/test_api_key_scopes.py).
    _, raw_key = create_api_key(alice, "bootstrap", ApiKeyScope.KEYS)
    created = client.post("/api/keys/", {"name": "script", "scope": "keys"}, **bearer(raw_key))
    assert created.status_code == 201
    new_key = created.json()["key"]
    names = [k["name"] for k in client.get("/api/keys/", **bearer(new_key)).json()["results"]]
    assert sorted(names) == ["bootstrap", "script"]
    assert "key" not in client.get("/api/keys/", **bearer(new_key)).json()["results"][0]
    deleted = client.delete(f"/api/keys/{created.json()['id']}/", **bearer(raw_key))
    assert deleted.status_code == 204
    assert client.get("/api/me/", **bearer(new_key)).status_code == 401


def test_alice_cannot_see_or_revoke_bobs_keys(
    alice_client: Client, client: Client, alice: User, bob: User
) -> None:
    bobs_key, bobs_raw = create_api_key(bob, "bob's laptop")
    _, alices_raw = create_api_key(alice, "alice's laptop", ApiKeyScope.KEYS)

    assert b"bob&#x27;s laptop" not in alice_client.get("/keys/").content
    assert alice_client.post(f"/keys/{bobs_key.pk}/revoke/").status_code == 404
    api_list = client.get("/api/keys/", **bearer(alices_raw)).json()["results"]
    assert [k["name"] for k in api_list] == ["alice's laptop"]
    assert client.get(f"/api/keys/{bobs_key.pk}/", **bearer(alices_raw)).status_code == 404
    assert client.delete(f"/api/keys/{bobs_key.pk}/", **bearer(alices_raw)).status_code == 404

    bobs_key.refresh_from_db()
    assert bobs_key.is_active
    assert client.get("/api/me/", **bearer(bobs_raw)).json()["username"] == "bob"
