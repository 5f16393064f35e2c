"""ASGI entry point: HTTP through Django, websockets through Channels (authenticated by session,
and only from the exact origins the console is served from: rftconsole/security/ws_origin.py).

`/v1/` (the OpenAI-compatible endpoint) goes through its own Django handler with only the
middleware it needs (playground/v1/handler.py); every other HTTP path through the console's.
"""

import os
from typing import Any

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rftconsole.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402  (needs Django set up first)
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from playground.v1.handler import PREFIX, OpenAIEndpointHandler  # noqa: E402
from rftconsole.routing import websocket_urlpatterns  # noqa: E402
from rftconsole.security.ws_origin import ExactOriginMiddleware  # noqa: E402

v1_asgi_app = OpenAIEndpointHandler()


async def http_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    app = v1_asgi_app if scope["path"].startswith(PREFIX) else django_asgi_app
    await app(scope, receive, send)


application = ProtocolTypeRouter(
    {
        "http": http_app,
        "websocket": ExactOriginMiddleware(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
