"""Websocket routes of every app, gathered for rftconsole.asgi."""

from django.urls import URLPattern, path

from jobs.consumers import JobConsumer
from playground.consumers import PlaygroundConsumer

websocket_urlpatterns: list[URLPattern] = [
    path("ws/jobs/<int:job_id>/", JobConsumer.as_asgi()),
    path("ws/playground/<int:session_id>/", PlaygroundConsumer.as_asgi()),
]
