"""RFT Console settings: one file, every knob read from the environment (see .env.example)."""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

import plotly

from rftconsole.env import (
    database_from_url,
    env_bool,
    env_int,
    env_list,
    env_path,
    env_str,
    read_or_create_secret,
    sqlite_database,
)

BASE_DIR = Path(__file__).resolve().parent.parent

# --- Data directory: SQLite DB, datasets, models, checkpoints, logs, the embedded Redis. -------
DATA_DIR = env_path("RFT_DATA_DIR", BASE_DIR / "var")
LOG_DIR = DATA_DIR / "logs"
RUN_DIR = DATA_DIR / "run"

# --- Core Django ------------------------------------------------------------------------------
SECRET_KEY = env_str("SECRET_KEY") or read_or_create_secret(DATA_DIR / "secret_key")
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
# Exact origins (scheme://host[:port]) trusted for form posts and for websockets besides the one
# a request names in Host (rftconsole/security/ws_origin.py).
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "django_ace",  # ships the Ace code editor: vendored, served locally, no CDN
    "channels",
    "axes",  # sign-in throttling: see "Sign-in throttling" below
    "rftconsole",
    "jobs",
    "rewards",
    "playground",
]

MIDDLEWARE = [
    "rftconsole.middleware.SecurityHeadersMiddleware",
    "rftconsole.middleware.StaticFilesMiddleware",
    "rftconsole.middleware.ContentSecurityPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "rftconsole.middleware.ConsoleLoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last: turns a sign-in that axes refused into the lockout page
    # (rftconsole/security/accounts.py).
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "rftconsole.urls"
ASGI_APPLICATION = "rftconsole.asgi.application"
WSGI_APPLICATION = "rftconsole.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "rftconsole.navigation.console_navigation",
            ],
        },
    },
]

_database_url = env_str("DATABASE_URL")
DATABASES = {
    "default": database_from_url(_database_url)
    if _database_url
    else sqlite_database(DATA_DIR / "rftconsole.sqlite3")
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# --- Sign-in throttling (django-axes): failures are counted per account and, separately, per
# client address, in the database, so every web process sees the same counts. Both the console's
# and the admin's login go through authenticate(); API keys and /v1/ never do, and are unaffected.
# Axes first: it refuses a locked-out sign-in before ModelBackend checks the password.
# (AxesStandaloneBackend has no get_user, so sessions keep naming ModelBackend.)
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]  # either one reaching the limit locks
AXES_FAILURE_LIMIT = env_int("RFT_LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("RFT_LOGIN_COOLOFF_MINUTES", 15, minimum=1))
# A failure while locked out restarts the cool-off, so guessing on never gets through.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = True
# Not on success: one sign-in to an attacker's own account would also wipe its address's count,
# and with it the failures it made against other accounts from there.
AXES_RESET_ON_SUCCESS = False
AXES_LOCKOUT_CALLABLE = (
    "rftconsole.security.accounts.lockout_response"  # the login page, with the reason
)
# The client's address: REMOTE_ADDR, or the X-Forwarded-For entry set by the Nth trusted proxy.
# (Axes' own AXES_IPWARE_* settings need django-ipware, which the console does not install.)
RFT_TRUSTED_PROXY_COUNT = env_int("RFT_TRUSTED_PROXY_COUNT", 0, minimum=0)
AXES_CLIENT_IP_CALLABLE = "rftconsole.security.accounts.client_address"
AXES_DISABLE_ACCESS_LOG = True  # successful sign-ins are in the audit log already
AXES_VERBOSE = False  # no start-up banner on every manage.py command's output

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True

# --- TLS: one switch for a console served over HTTPS (usually a TLS-terminating reverse proxy). --
# RFT_HTTPS=true marks cookies Secure, sends HSTS, redirects plain HTTP to HTTPS and trusts the
# proxy's X-Forwarded-Proto (the proxy must set it and drop any copy the client sent).
RFT_HTTPS = env_bool("RFT_HTTPS", False)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = RFT_HTTPS
SECURE_SSL_REDIRECT = RFT_HTTPS
SECURE_HSTS_SECONDS = env_int("RFT_HSTS_SECONDS", 31_536_000, minimum=0) if RFT_HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("RFT_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if RFT_HTTPS else None
SECURE_REFERRER_POLICY = "same-origin"

# --- Content-Security-Policy (django-csp): scripts, styles, fonts and images from this origin
# only (Ace, Plotly and htmx are vendored), no inline script or style, no plugins, no framing.
# `'self'` in connect-src covers the console's own websockets (CSP level 3).
# The one hash is that of the empty string: Plotly adds its rules to an *empty* <style> element
# through the CSSOM (which the CSP does not govern); a style element with any content is refused.
EMPTY_STYLE_ELEMENT = "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='"
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", EMPTY_STYLE_ELEMENT],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "worker-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

# --- Static files: everything vendored from installed packages, served by WhiteNoise. ---------
STATIC_URL = "/static/"
STATIC_ROOT = DATA_DIR / "static"  # only for `collectstatic` behind a reverse proxy
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STATICFILES_DIRS = [
    BASE_DIR / "static",
    # plotly.min.js ships inside the plotly package: serve it from there, never from a CDN.
    ("vendor/plotly", Path(plotly.__file__).parent / "package_data"),
]
WHITENOISE_USE_FINDERS = True  # serve straight from the finders: no collectstatic step needed.
WHITENOISE_AUTOREFRESH = DEBUG
WHITENOISE_ALLOW_ALL_ORIGINS = False  # no `Access-Control-Allow-Origin: *` on static files

# --- Redis: external when REDIS_URL is set, otherwise the embedded one that `up` starts. -------
REDIS_URL = env_str("REDIS_URL")
EMBEDDED_REDIS = not REDIS_URL


def _embedded_redis_socket(run_dir: Path) -> Path:
    # Unix socket paths are limited to ~107 bytes; fall back to a short, stable path in /tmp.
    socket = run_dir / "redis.sock"
    if len(str(socket)) < 100:
        return socket
    digest = hashlib.sha256(str(run_dir).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"rft-redis-{digest}.sock"


EMBEDDED_REDIS_SOCKET = _embedded_redis_socket(RUN_DIR)

if EMBEDDED_REDIS:
    _channel_host: str = f"unix://{EMBEDDED_REDIS_SOCKET}"
    _broker_default = f"redis+socket://{EMBEDDED_REDIS_SOCKET}"
    CELERY_RESULT_BACKEND = f"redis+socket://{EMBEDDED_REDIS_SOCKET}"
else:
    _channel_host = REDIS_URL
    _broker_default = REDIS_URL
    CELERY_RESULT_BACKEND = REDIS_URL

# The default cache is Redis, so that every web process and host shares it: the /v1/ rate limit
# counts there (playground/v1/ratelimit.py, which falls back to a per-process count while Redis is
# unreachable). Short timeouts: an unreachable Redis must not hold a request up.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": f"unix://{EMBEDDED_REDIS_SOCKET}" if EMBEDDED_REDIS else REDIS_URL,
        "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
    }
}

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        # socket_timeout None: redis-py 8 defaults to 5 s, shorter than channels_redis's blocking
        # read, which would drop every idle websocket (django/channels_redis#422).
        "CONFIG": {
            "hosts": [{"address": _channel_host, "socket_timeout": None}],
            "capacity": 1500,
            "expiry": 60,
        },
    }
}

# --- Celery: queue "gpu" for training (one task per GPU), "default" for everything else. -------
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL") or _broker_default
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ACKS_LATE = True  # a worker killed mid-task leaves its message to be redelivered
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TRACK_STARTED = True
CELERY_RESULT_EXPIRES = 3600
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # How long an unacknowledged (running) task stays invisible before redelivery on Redis.
    "visibility_timeout": env_int("RFT_TASK_VISIBILITY_TIMEOUT", 3600, minimum=60),
}

CELERY_TASK_ROUTES = {"jobs.train_job": {"queue": "gpu"}}
CELERY_BEAT_SCHEDULE = {
    "reap-stale-jobs": {
        "task": "jobs.reap_stale_jobs",
        # how often beat looks for silent workers (tests that kill one shorten the wait)
        "schedule": float(env_int("RFT_REAP_INTERVAL", 30, minimum=1)),
    },
    "fail-stuck-deployments": {"task": "playground.fail_stuck_deployments", "schedule": 60.0},
    "sweep-incoming-uploads": {"task": "jobs.sweep_incoming_uploads", "schedule": 3600.0},
}
# A deployment still loading after this many seconds lost its loading thread (its web process
# was restarted): it is marked failed with that reason (playground/deployments.py).
RFT_DEPLOYMENT_LOAD_DEADLINE = env_int("RFT_DEPLOYMENT_LOAD_DEADLINE", 600, minimum=30)
# A training job whose worker has not beaten its heartbeat for this long is re-queued.
RFT_HEARTBEAT_TIMEOUT = env_int("RFT_HEARTBEAT_TIMEOUT", 90, minimum=10)
RFT_MAX_ATTEMPTS = env_int("RFT_MAX_ATTEMPTS", 3, minimum=1)
# Wall-clock seconds one batch of sandboxed reward code may take.
RFT_REWARD_TIMEOUT = env_int("RFT_REWARD_TIMEOUT", 30, minimum=1)
# The curated libraries reward code may import (numpy, sympy, …), installed apart from the
# console's own site-packages (`make` runs `pip install --target` here) and shown read-only.
RFT_REWARD_LIBS_DIR = env_path("RFT_REWARD_LIBS_DIR", Path(sys.prefix) / "reward-libs")
# Hosts a judge reward may call: names, IPs or CIDRs; "*" means any name, public addresses only.
# Every connection is checked (rftconsole/security/outbound.py): no redirects are followed, and each
# resolved address must be listed (IP/CIDR) or public with its name listed. Loopback by default.
RFT_JUDGE_ALLOWED_HOSTS = env_list("RFT_JUDGE_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "::1"])
# Where an OpenAI model grader (score_model, label_model) without its own base_url goes when its
# `model` is not in the owner's registry — e.g. "gpt-4o" in a grader brought from OpenAI. Off when
# empty. The key is the administrator's, used for every user's such graders; the host must still
# be in RFT_JUDGE_ALLOWED_HOSTS.
RFT_GRADER_BASE_URL = env_str("RFT_GRADER_BASE_URL")
RFT_GRADER_API_KEY = env_str("RFT_GRADER_API_KEY")
# Training data: the largest file and the most rows one dataset may have; fewer rows than the
# minimum only warns (Amazon Bedrock asks for at least 100).
RFT_DATASET_MAX_BYTES = env_int("RFT_DATASET_MAX_BYTES", 100 * 1024**2, minimum=1024)
RFT_DATASET_MAX_ROWS = env_int("RFT_DATASET_MAX_ROWS", 1_000_000, minimum=1)
RFT_DATASET_MIN_ROWS = env_int("RFT_DATASET_MIN_ROWS", 100, minimum=0)
# Uploads stream to a temporary file (never memory) and stop at the size limit while arriving.
FILE_UPLOAD_HANDLERS = [
    "jobs.datasets.transfers.SizeLimitUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]
# Encryption at rest (rftconsole/security/crypto.py): one or more comma-separated Fernet keys, or
# a file with one key per line; the first key encrypts, all decrypt. Unset: only judge API keys are
# encrypted, with a key derived from SECRET_KEY.
RFT_ENCRYPTION_KEY = env_str("RFT_ENCRYPTION_KEY")
RFT_ENCRYPTION_KEY_FILE = os.path.expanduser(env_str("RFT_ENCRYPTION_KEY_FILE"))
# Daphne processes `manage.py up` starts, all serving one listening socket (default: one per core).
RFT_WEB_PROCESSES = env_int("RFT_WEB_PROCESSES", os.cpu_count() or 1, minimum=1)
# How long a queued or running job's list row and page figures are kept (jobs/page_cache.py);
# 0 computes them on every load.
RFT_LIVE_PAGE_CACHE_SECONDS = env_int("RFT_LIVE_PAGE_CACHE_SECONDS", 2, minimum=0)
# Deployments (see playground/inference/pool.py for where inference runs and the GPU policy).
# Sets of full weights kept in memory per web process, least recently used evicted first.
RFT_INFERENCE_MAX_MODELS = env_int("RFT_INFERENCE_MAX_MODELS", 2, minimum=1)
# Generations at a time per web process; further requests wait their turn.
RFT_INFERENCE_THREADS = env_int("RFT_INFERENCE_THREADS", 1, minimum=1)
# CPU threads torch may use in the web process (0: torch's default, all cores).
RFT_INFERENCE_TORCH_THREADS = env_int("RFT_INFERENCE_TORCH_THREADS", 0, minimum=0)
# "cpu" (never touch a GPU: training keeps it), or "cuda:N" (a GPU, capped below when shared).
RFT_INFERENCE_DEVICE = env_str("RFT_INFERENCE_DEVICE", "cpu")
RFT_INFERENCE_GPU_MEMORY_PERCENT = env_int("RFT_INFERENCE_GPU_MEMORY_PERCENT", 30, minimum=1)
# Completion tokens when a request sets no max_tokens (a request may ask up to the context).
RFT_INFERENCE_MAX_TOKENS = env_int("RFT_INFERENCE_MAX_TOKENS", 512, minimum=1)
# Requests per minute per API key on /v1/ (fixed window in the Redis cache above: one limit for
# all web processes and hosts that share the Redis).
RFT_RATE_LIMIT_PER_MINUTE = env_int("RFT_RATE_LIMIT_PER_MINUTE", 60, minimum=1)

# --- REST API ---------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rftconsole.security.api_auth.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # JSON bodies refuse NaN/Infinity, numbers past a double and deep nesting with a 400.
    "DEFAULT_PARSER_CLASSES": [
        "rftconsole.parsers.StrictJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rftconsole.pagination.ConsolePagination",  # ?limit= ≤ 1000
    # JSON only: DRF's browsable HTML API needs inline script and style, which the CSP refuses;
    # /api/docs/ (Swagger UI) is the API's page for people.
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "PAGE_SIZE": 50,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "RFT Console API",
    "DESCRIPTION": "Self-hosted reinforcement fine-tuning: datasets, rewards, jobs, deployments.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    # Swagger UI and ReDoc come from drf-spectacular-sidecar, not from a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Console ----------------------------------------------------------------------------------
RFT_ADMIN_USERNAME = env_str("RFT_ADMIN_USERNAME", "admin")
# Built starter artifacts (demo datasets, tokenizer, model), reusable across data dirs.
STARTER_CACHE = env_path("RFT_STARTER_CACHE", DATA_DIR / "starter")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
