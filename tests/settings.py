"""Test settings: the real settings, pointed at a throwaway data dir.

pytest-django imports this before any conftest, so this is the one place that can keep tests away
from ./var (and from the Redis socket of a console the developer may be running).
"""

import atexit
import os
import shutil
import tempfile

if "RFT_DATA_DIR" not in os.environ:
    _data_dir = tempfile.mkdtemp(prefix="rft-test-")
    os.environ["RFT_DATA_DIR"] = _data_dir
    atexit.register(shutil.rmtree, _data_dir, ignore_errors=True)

# Starter artifacts take minutes to build: build them once and share them across test runs and
# the data dirs of the processes tests start (which inherit this environment).
os.environ.setdefault(
    "RFT_STARTER_CACHE",
    os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".cache", "starter"),
)

from rftconsole.settings import *  # noqa: E402, F403
from rftconsole.settings import DATA_DIR, DATABASES  # noqa: E402

# A file (not in-memory) test database, so that worker processes started by tests share it.
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test.sqlite3")}

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins in tests

# In-process tests have no Redis unless a stack test started one: count the /v1/ rate limit in
# this process's memory, as one web process would. Processes that tests start use the real
# settings (Redis); tests/test_rate_limit_shared.py covers the shared count.
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
# A test that adds a point to a running job sees it on the next load; tests/test_page_cache.py
# covers the moment a running job's row is kept.
RFT_LIVE_PAGE_CACHE_SECONDS = 0
