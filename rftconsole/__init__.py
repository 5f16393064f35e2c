"""The project shell: settings, the URL and websocket routing, the Celery app, the `up`, `status`
and `rotate_encryption_key` commands, API keys, the Overview page, and the small helpers every app
uses (ownership scoping, paths from names, strict JSON parsing, pagination, queueing tasks by name).

Subpackages: `security/` (encryption, sign-in, audit, outbound HTTP, origins, API-key scopes) and
`processes/` (the supervisor and the embedded Redis that `up` starts).

Imports: the helpers here import no app. Only the shell modules that wire the apps together
(urls, routing, asgi, system, security/key_rotation) import jobs, rewards and playground.
"""

from rftconsole.celery import app as celery_app

__all__ = ["celery_app"]
