"""Security-relevant actions land in an audit log that admins can read and nobody can edit."""

from __future__ import annotations

import json
from pathlib import Path

from django.contrib.auth.models import User
from django.test import Client

from jobs.actions import request_stop
from jobs.models import Dataset, Job, ModelEntry
from rewards.services import create_reward
from rftconsole.models import AuditEvent
from tests.conftest import PASSWORD


def actions() -> list[str]:
    return list(AuditEvent.objects.order_by("pk").values_list("action", flat=True))


def test_logins_failed_logins_and_logouts_are_recorded_with_the_address(
    client: Client, alice: User
) -> None:
    client.post("/login/", {"username": "alice", "password": "wrong"})
    client.post("/login/", {"username": "alice", "password": PASSWORD})
    client.post("/logout/")
    assert actions() == ["login_failed", "login", "logout"]
    failed = AuditEvent.objects.get(action="login_failed")
    assert (
        failed.actor is None and failed.actor_name == "alice" and failed.ip_address == "127.0.0.1"
    )


def test_api_keys_jobs_and_downloads_are_recorded(
    alice: User, alice_client: Client, tmp_path: Path
) -> None:
    created = alice_client.post("/api/keys/", {"name": "ci"}, content_type="application/json")
    alice_client.delete(f"/api/keys/{created.json()['id']}/")
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}]}) + "\n")
    dataset = Dataset.objects.create(
        owner=alice, name="d", path=str(rows), row_count=1, size_bytes=1
    )
    assert alice_client.get(f"/datasets/{dataset.pk}/download/").status_code == 200
    assert alice_client.get(f"/api/datasets/{dataset.pk}/download/").status_code == 200
    model = ModelEntry.objects.create(owner=alice, name="m", status="ready", path=str(tmp_path))
    code = "def grade(sample, item):\n    return 1.0\n"
    version = create_reward(alice, "r", "code", code=code)
    job = Job.objects.create(
        owner=alice, name="j", base_model=model, train_dataset=dataset, reward_version=version
    )
    request_stop(job)
    assert actions() == [
        "login",  # the test client's sign-in
        "api_key.create", "api_key.revoke", "dataset.download", "dataset.download", "job.stop",
    ]  # fmt: skip
    assert AuditEvent.objects.filter(actor=alice).count() == 6


def test_admins_read_the_log_and_cannot_change_it(client: Client, admin: User) -> None:
    client.force_login(admin)
    event = AuditEvent.objects.create(action="login", actor_name="alice")
    assert client.get("/admin/rftconsole/auditevent/").status_code == 200
    page = client.get(f"/admin/rftconsole/auditevent/{event.pk}/change/")
    assert page.status_code == 200 and b'name="_save"' not in page.content
    client.post(f"/admin/rftconsole/auditevent/{event.pk}/delete/", {"post": "yes"})
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_other_users_cannot_read_the_audit_log(alice_client: Client) -> None:
    assert alice_client.get("/admin/rftconsole/auditevent/").status_code == 302
