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
