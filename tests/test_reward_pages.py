"""Reward pages: the gallery, creating from a template, editing into versions, judge keys."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.contrib.staticfiles import finders
from django.test import Client

from rewards.library import TEMPLATES
from rewards.models import RewardFunction, RewardVersion
from rewards.services import create_reward
from rftconsole.security.crypto import decrypt_text

GRADE = "def grade(sample, item):\n    return 1.0\n"


def test_the_gallery_offers_every_template(alice_client: Client) -> None:
    html = alice_client.get("/rewards/new/").content.decode()
    for template in TEMPLATES:
        assert f'href="/rewards/new/{template.slug}/"' in html


def test_a_reward_is_created_from_a_template_page(alice: User, alice_client: Client) -> None:
    form = alice_client.get("/rewards/new/math-ground-truth/").content.decode()
    assert 'data-editor="python"' in form and "lambda_handler" in form
    template = next(t for t in TEMPLATES if t.slug == "math-ground-truth")
    response = alice_client.post(
        "/rewards/new/math-ground-truth/",
        {"name": "math", "description": "", "code": template.code, "pass_threshold": 1.0},
    )
    reward = RewardFunction.objects.get(owner=alice, name="math")
    assert response.status_code == 302 and response.url == f"/rewards/{reward.pk}/"
    assert reward.latest_version().code == template.code


def test_saving_the_editor_adds_a_version_and_old_ones_stay_viewable(
    alice: User, alice_client: Client
) -> None:
    reward = create_reward(alice, "r", "code", code=GRADE).reward
    changed = GRADE.replace("1.0", "0.5")
    url = f"/rewards/{reward.pk}/"
    response = alice_client.post(url, {"name": "r", "code": changed, "pass_threshold": 0.5})
    assert response.status_code == 302
    assert [v.number for v in reward.versions.all()] == [2, 1]
    assert "return 0.5" in alice_client.get(url).content.decode()
    old = alice_client.get(url + "?version=1").content.decode()
    assert "return 1.0" in old and "older version" in old
    assert alice_client.get(url + "?version=9").status_code == 404


def test_broken_code_is_shown_with_its_error_and_saves_nothing(
    alice: User, alice_client: Client
) -> None:
    reward = create_reward(alice, "r", "code", code=GRADE).reward
    response = alice_client.post(
        f"/rewards/{reward.pk}/", {"name": "r", "code": "def grade(:\n", "pass_threshold": 1}
    )
    assert response.status_code == 200
    assert "line 1" in response.content.decode()
    assert RewardVersion.objects.filter(reward=reward).count() == 1


def test_a_judge_key_typed_in_the_form_is_stored_encrypted_and_never_shown(
    alice: User, alice_client: Client
) -> None:
    template = next(t for t in TEMPLATES if t.slug == "judge-reasoning")
    fields = {
        "name": "judge",
        "description": "",
        "instructions": template.config["instructions"],
        "score_min": 0,
        "score_max": 10,
        "judge_type": "endpoint",
        "base_url": "http://127.0.0.1:9/v1",
        "model": "judge-model",
        "api_key": "sk-typed-secret",
        "concurrency": 2,
        "max_retries": 1,
        "timeout_seconds": 10,
        "pass_threshold": 0.7,
    }
    response = alice_client.post("/rewards/new/judge-reasoning/", fields)
    assert response.status_code == 302, response.content.decode()[:2000]
    version = RewardVersion.objects.get(reward__owner=alice, reward__name="judge")
    assert decrypt_text(version.config["api_key_encrypted"]) == "sk-typed-secret"
    page = alice_client.get(response.url).content.decode()
    assert "sk-typed-secret" not in page and "api_key_encrypted" not in page
    assert '<span class="badge ok">stored</span>' in page
    # saving again without typing the key keeps it
    alice_client.post(response.url, {**fields, "api_key": ""})
    latest = RewardFunction.objects.get(owner=alice, name="judge").latest_version()
    assert latest.number == 2
    assert decrypt_text(latest.config["api_key_encrypted"]) == "sk-typed-secret"


def test_the_list_shows_only_your_rewards(alice: User, bob: User, alice_client: Client) -> None:
    create_reward(alice, "alices-reward", "code", code=GRADE)
    create_reward(bob, "bobs-reward", "code", code=GRADE)
    html = alice_client.get("/rewards/").content.decode()
    assert "alices-reward" in html and "bobs-reward" not in html


def test_the_code_editor_is_served_from_a_package_not_a_cdn(alice_client: Client) -> None:
    assert finders.find("django_ace/ace/ace.js") and finders.find("js/code-editor.js")
    html = alice_client.get("/rewards/new/lambda-boilerplate/").content.decode()
    assert "/static/django_ace/ace/ace.js" in html
