"""Websocket routes of every app, gathered for rftconsole.asgi."""

from django.urls import URLPattern

websocket_urlpatterns: list[URLPattern] = []
