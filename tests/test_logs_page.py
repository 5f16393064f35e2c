"""The invocation logs page lists and filters a user's logs, and only theirs."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.test import Client

from tests.test_logs_dataset import log


def test_logs_are_listed_newest_first_and_filtered(
    alice: User, bob: User, alice_client: Client
) -> None:
    log(alice, "Where is my order?", "On its way.", metadata={"team": "support"}, feedback="up")
    log(alice, "Reset password?", "Use the link.", metadata={"team": "billing"}, deployment="bot-2")
    log(bob, "Bob's secret question", "Bob's answer", metadata={"team": "support"})
    html = alice_client.get("/deployments/logs/").content.decode()
    assert "2 logs" in html and html.index("Reset password?") < html.index("Where is my order?")
    assert "Bob&#x27;s secret question" not in html and "Bob's secret question" not in html
    support = alice_client.get("/deployments/logs/?key=team&value=support").content.decode()
    assert "1 log" in support and "On its way." in support and "Use the link." not in support
    liked = alice_client.get("/deployments/logs/?feedback=up").content.decode()
    assert "On its way." in liked and "Use the link." not in liked
    bot2 = alice_client.get("/deployments/logs/?deployment=bot-2").content.decode()
    assert "Use the link." in bot2 and "On its way." not in bot2
    bad = alice_client.get("/deployments/logs/?key=bad%20key!&value=x").content.decode()
    assert "is not allowed" in bad and "0 logs" in bad


def test_the_deployment_filter_lists_each_deployment_once(
    alice: User, alice_client: Client
) -> None:
    for number in range(5):
        log(alice, f"question {number}", "answer", deployment="bot-1")
    log(alice, "other", "answer", deployment="bot-2")
    html = alice_client.get("/deployments/logs/").content.decode()
    select = html[html.index('<select name="deployment">') :]
    select = select[: select.index("</select>")]
    assert select.count("<option") == 3  # "any", bot-1, bot-2: not one per log
    assert select.count(">bot-1<") == 1 and select.count(">bot-2<") == 1


def test_a_log_opens_in_full_with_usage_and_feedback(
    alice: User, alice_client: Client, bob_client: Client
) -> None:
    question = "Please explain " + "in great detail " * 20 + "the END OF THE PROMPT"
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": question},
    ]
    entry = log(alice, question, "A long answer " * 30, messages=messages, feedback="down")
    listing = alice_client.get("/deployments/logs/").content.decode()
    assert "the END OF THE PROMPT" not in listing  # cut at 160 characters in the list
    assert f"/deployments/logs/{entry.pk}/" in listing
    page = alice_client.get(f"/deployments/logs/{entry.pk}/")
    html = page.content.decode()
    assert page.status_code == 200
    assert "the END OF THE PROMPT" in html and "You are terse." in html
    assert "flash" not in html  # the prompt is not taken for flash messages
    assert html.count("A long answer") == 30
    assert "5 prompt + 1 completion = 6" in html and "13 ms" in html
    assert "temperature=0.7" in html and "▼ bad" in html
    assert bob_client.get(f"/deployments/logs/{entry.pk}/").status_code == 404
    assert alice_client.get(f"/deployments/logs/{entry.pk + 999}/").status_code == 404
