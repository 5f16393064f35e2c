"""The console's left-hand navigation, built once per request from URL names.

A section whose URL is not installed yet is listed as unavailable rather than linking to a 404.
"""

from __future__ import annotations

from typing import TypedDict

from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse

SECTIONS: list[tuple[str, str]] = [
    ("Jobs", "jobs:list"),
    ("Datasets", "datasets:list"),
    ("Rewards", "rewards:list"),
    ("Models", "models:list"),
    ("Playground", "playground:index"),
    ("API keys", "keys:list"),
]


class NavItem(TypedDict):
    label: str
    url: str | None
    active: bool


def console_navigation(request: HttpRequest) -> dict[str, list[NavItem]]:
    items: list[NavItem] = []
    for label, url_name in SECTIONS:
        try:
            url: str | None = reverse(url_name)
        except NoReverseMatch:
            url = None
        active = bool(url) and request.path.startswith(url)
        items.append({"label": label, "url": url, "active": active})
    return {"nav_items": items}
