"""Brenia's one settings module.

With nothing set, Brenia runs embedded: SQLite and media in ``data/`` inside the
checkout, an in-memory channel layer, jobs inside the serving process. The
scale-out profile is chosen by environment only (``DATABASE_URL``, ``REDIS_URL``,
``BRENIA_JOBS=procrastinate``, ``AWS_STORAGE_BUCKET_NAME``). See README.md for the
full table.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from datetime import timedelta
from pathlib import Path

from brenia.env import (
    EnvError,
    database_from_url,
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_list,
    env_str,
    env_url,
    write_private,
)

BASE_DIR = Path(__file__).resolve().parent.parent

BRENIA_ENV = env_choice("BRENIA_ENV", "development", ("development", "production"))
PRODUCTION = BRENIA_ENV == "production"
# Off unless asked for: the debug page shows settings and tracebacks to anyone.
DEBUG = env_bool("DEBUG", default=False)
if DEBUG and PRODUCTION:
    raise EnvError("DEBUG cannot be on when BRENIA_ENV=production")

DATA_DIR = Path(env_str("BRENIA_DATA_DIR") or BASE_DIR / "data")


def _secret_key() -> str:
    """The env wins; in production it is required; otherwise one is kept in DATA_DIR."""
    from_env = env_str("SECRET_KEY")
    if from_env:
        return from_env
    if PRODUCTION:
        raise EnvError("SECRET_KEY must be set when BRENIA_ENV=production")
    key_file = DATA_DIR / "secret_key"
    if not key_file.exists():
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        write_private(key_file, secrets.token_urlsafe(50))
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
# Where the outside world reaches this deployment; enables fal completion webhooks.
BRENIA_PUBLIC_URL = env_url("BRENIA_PUBLIC_URL").rstrip("/")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "django_filters",
    "django_htmx",
    "csp",
    "axes",
    "brenia",
    "brenia.accounts",
    "generation",
    "generation.outbound",
    "brenia.billing",
    "templates_app",
]
AUTH_USER_MODEL = "accounts.User"

MIDDLEWARE = [
    "brenia.metrics.MetricsMiddleware",  # first: it times everything below
    "brenia.logs.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "csp.middleware.CSPMiddleware",
    "brenia.csp.AdminInlineStylesMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as axes asks: it turns a locked-out login into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "brenia.urls"
ASGI_APPLICATION = "brenia.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "brenia" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "brenia.billing.context.budget_warnings",
            ],
        },
    },
]

# --- database ---------------------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL")
if DATABASE_URL:
    DATABASES = {"default": database_from_url(DATABASE_URL, pool_timeout=env_float(
        "BRENIA_DB_POOL_TIMEOUT", 10.0, minimum=0.1))}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": Path(env_str("SQLITE_PATH") or DATA_DIR / "brenia.sqlite3"),
            # Tests run daphne in a child process against the same file, so the test
            # database must be a file too (SQLite's default test database is in memory).
            "TEST": {"NAME": DATA_DIR / "test.sqlite3"},
            # Kept open between calls: async code would otherwise reopen it every time.
            "CONN_MAX_AGE": None,
            "CONN_HEALTH_CHECKS": True,
            "OPTIONS": {
                # WAL lets the serving process read while a job writes; the timeout rides
                # out short write locks instead of failing with "database is locked".
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "timeout": 20,
                "transaction_mode": "IMMEDIATE",
            },
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- channel layer ----------------------------------------------------------------------
REDIS_URL = env_url("REDIS_URL", schemes=("redis", "rediss", "unix"))
# "pubsub": one PUBLISH per group_send, fanned out to the process's own sockets, one
# subscription per group and process (no per-socket Redis traffic, no blocking reads
# that time out under load). Events are not kept in Redis: after losing Redis, each
# socket catches up from the job's event rows (brenia/channel_layer.py). "core":
# channels-redis' list-based layer, for deployments that rely on its buffering.
BRENIA_CHANNEL_LAYER = env_choice("BRENIA_CHANNEL_LAYER", "pubsub", ("pubsub", "core"))
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": ("brenia.channel_layer.ResyncingPubSubChannelLayer"
                        if BRENIA_CHANNEL_LAYER == "pubsub"
                        else "channels_redis.core.RedisChannelLayer"),
            "CONFIG": {
                # redis-py's async pool fails instead of waiting when it is full (core:
                # each socket's group add/discard takes a connection).
                "hosts": [{"address": REDIS_URL,
                           "max_connections": env_int("BRENIA_REDIS_MAX_CONNECTIONS", 1000,
                                                      minimum=10)}],
                "prefix": env_str("BRENIA_REDIS_PREFIX", "brenia"),
            },
        }
    }
    # The shared cache: per-key request rates count across every web process.
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                          "LOCATION": REDIS_URL,
                          "KEY_PREFIX": env_str("BRENIA_REDIS_PREFIX", "brenia")}}
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# --- jobs -------------------------------------------------------------------------------
# "inprocess": the serving process runs jobs on its own event loop (embedded profile).
# "procrastinate": jobs are deferred to PostgreSQL and run by `manage.py worker`.
BRENIA_JOBS = env_choice("BRENIA_JOBS", "inprocess", ("inprocess", "procrastinate"))
if BRENIA_JOBS == "procrastinate" and not DATABASE_URL:
    raise EnvError("BRENIA_JOBS=procrastinate needs DATABASE_URL (PostgreSQL)")
# How many jobs one worker process runs at once; they mostly wait on remote queues.
BRENIA_WORKER_CONCURRENCY = env_int("BRENIA_WORKER_CONCURRENCY", 200, minimum=1)
# How many background tasks (job runs, webhook deliveries) the serving process runs at
# once in the embedded profile; the rest wait their turn, in order.
BRENIA_INPROCESS_CONCURRENCY = env_int("BRENIA_INPROCESS_CONCURRENCY", 50, minimum=1)
# How many webhook deliveries one worker process sends at once (a pool of their own).
BRENIA_WEBHOOK_CONCURRENCY = env_int("BRENIA_WEBHOOK_CONCURRENCY", 20, minimum=1)
# Seconds between status polls of a remote queue.
BRENIA_POLL_INTERVAL = env_float("BRENIA_POLL_INTERVAL", 0.5, minimum=0.01)
# Follow fal requests by their SSE status stream (polled only when it breaks); off: polled
# every BRENIA_POLL_INTERVAL (generation/providers/fal_stream.py).
BRENIA_FAL_STATUS_STREAM = env_bool("BRENIA_FAL_STATUS_STREAM", default=True)
# Upper bound on one job's life once submitted; past it the job errors out.
BRENIA_JOB_TIMEOUT = env_float("BRENIA_JOB_TIMEOUT", 900.0, minimum=1.0)
# A provider endpoint's circuit breaker opens after this many transient failures in a
# row, and lets one probe through this many seconds later (generation/routing/breaker.py).
BRENIA_BREAKER_FAILURES = env_int("BRENIA_BREAKER_FAILURES", 5, minimum=1)
BRENIA_BREAKER_RESET_SECONDS = env_float("BRENIA_BREAKER_RESET_SECONDS", 30.0, minimum=0.01)
# ?wait=N on the generate endpoint is capped at this many seconds.
BRENIA_MAX_WAIT = env_int("BRENIA_MAX_WAIT", 60, minimum=0)
# A seeded request identical to one completed this many seconds ago gets that result,
# at no cost (generation/routing/cache.py); 0 turns the result cache off.
BRENIA_RESULT_CACHE_SECONDS = env_int("BRENIA_RESULT_CACHE_SECONDS", 86_400, minimum=0)
# Reference images (uploads normalised, URLs fetched for Gemini) kept in each process's
# memory by content hash, least recently used out first; a URL's bytes are reused for
# this many seconds (generation/providers/reference_cache.py).
BRENIA_REFERENCE_CACHE_MB = env_float("BRENIA_REFERENCE_CACHE_MB", 64.0, minimum=0.0)
BRENIA_REFERENCE_CACHE_SECONDS = env_float("BRENIA_REFERENCE_CACHE_SECONDS", 300.0,
                                           minimum=0.0)
# A worker whose heartbeat is older than this is dead; its tasks go back to the queue.
BRENIA_STALLED_WORKER_TIMEOUT = env_float("BRENIA_STALLED_WORKER_TIMEOUT", 30.0, minimum=1.0)
# Seconds between recovery passes in scale-out (stalled tasks, jobs and deliveries
# nothing carries); whole seconds, since they run as procrastinate periodic tasks.
BRENIA_RECOVERY_INTERVAL = env_int("BRENIA_RECOVERY_INTERVAL", 10, minimum=1)
# On SIGTERM a worker stops taking jobs and waits this long for running ones.
BRENIA_SHUTDOWN_GRACE = env_float("BRENIA_SHUTDOWN_GRACE", 20.0, minimum=0.0)
# Outgoing webhooks (a job's webhook_url): tries per delivery, the first retry's delay
# in seconds (doubling, with jitter), and the seconds one POST may take.
BRENIA_WEBHOOK_MAX_ATTEMPTS = env_int("BRENIA_WEBHOOK_MAX_ATTEMPTS", 6, minimum=1)
BRENIA_WEBHOOK_BACKOFF = env_float("BRENIA_WEBHOOK_BACKOFF", 5.0, minimum=0.0)
BRENIA_WEBHOOK_TIMEOUT = env_float("BRENIA_WEBHOOK_TIMEOUT", 10.0, minimum=0.1)
# host or host:port webhook targets may use although they resolve to internal addresses
# (tests, a receiver on the same private network). Empty: public addresses only.
BRENIA_WEBHOOK_ALLOWED_HOSTS = env_list("BRENIA_WEBHOOK_ALLOWED_HOSTS")
if DATABASE_URL:
    # procrastinate keeps its queue in PostgreSQL; its migrations need PostgreSQL too.
    INSTALLED_APPS.insert(INSTALLED_APPS.index("brenia"), "procrastinate.contrib.django")

# --- providers --------------------------------------------------------------------------
# The provider classes a registry row may pick (by its provider, or by naming a key or a
# path here in provider_class). Admins edit rows, so this list, not the row, decides
# what gets imported. Code, not configuration: it stays out of the environment.
BRENIA_PROVIDER_CLASSES: dict[str, str] = {
    "fal": "generation.providers.fal.FalProvider",
    "gemini": "generation.providers.gemini.GeminiProvider",
}
FAL_KEY = env_str("FAL_KEY")
FAL_QUEUE_URL = env_url("FAL_QUEUE_URL", "https://queue.fal.run").rstrip("/")
# The keys that sign fal's webhooks. https only in production; elsewhere http is also
# taken, and fetched only from a provider host (the emulator in development and tests).
FAL_WEBHOOK_JWKS_URL = env_url("FAL_WEBHOOK_JWKS_URL", "https://rest.fal.ai/.well-known/jwks.json",
                               schemes=("https",) if PRODUCTION else ("http", "https"))
FAL_WEBHOOK_TOLERANCE = env_int("FAL_WEBHOOK_TOLERANCE", 300, minimum=1)
# Brenia's fal account id, as fal sends it in X-Fal-Webhook-User-Id (the emulator sends
# FAL_KEY's id, before the ":"): a webhook fal signed for any other account is refused.
# Unset: webhooks of any account are taken.
FAL_USER_ID = env_str("FAL_USER_ID")
# Seconds a fal request may wait to start before fal gives up on it (0: no limit).
BRENIA_FAL_START_TIMEOUT = env_float("BRENIA_FAL_START_TIMEOUT", 0.0, minimum=0.0)
GEMINI_API_KEY = env_str("GEMINI_API_KEY")
GEMINI_BASE_URL = env_url("GEMINI_BASE_URL", "https://generativelanguage.googleapis.com").rstrip("/")
# Largest result image Brenia will download from a provider.
BRENIA_MAX_DOWNLOAD_BYTES = env_int("BRENIA_MAX_DOWNLOAD_BYTES", 40 * 1024 * 1024, minimum=1024)
# Seconds one download (a result or reference image) may take from connecting to its
# last byte, however steadily the bytes trickle in.
BRENIA_DOWNLOAD_TIMEOUT = env_float("BRENIA_DOWNLOAD_TIMEOUT", 120.0, minimum=1.0)
# Hosts a provider may hand back result URLs on even when they resolve to loopback
# (the built-in emulators); user-supplied URLs never get this exemption.
BRENIA_TRUSTED_RESULT_HOSTS = env_list("BRENIA_TRUSTED_RESULT_HOSTS")

# --- storage ----------------------------------------------------------------------------
MEDIA_ROOT = Path(env_str("MEDIA_ROOT") or DATA_DIR / "media")
# A form carries an uploaded product photo back as a data URI when it is shown again with
# errors, and the API takes images as data URIs of up to 8 MB of text: room for both.
DATA_UPLOAD_MAX_MEMORY_SIZE = 12 * 1024 * 1024
# Every request body, files included, is refused past this before Django reads it (413).
BRENIA_MAX_BODY_BYTES = env_int("BRENIA_MAX_BODY_BYTES", 16 * 1024 * 1024, minimum=1024)
MEDIA_URL = "/media/"
STATIC_URL = "/static/"
STATIC_ROOT = DATA_DIR / "staticfiles"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # WhiteNoise expects it to exist
STATICFILES_DIRS = [BASE_DIR / "static"]
AWS_STORAGE_BUCKET_NAME = env_str("AWS_STORAGE_BUCKET_NAME")
if AWS_STORAGE_BUCKET_NAME:
    default_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": AWS_STORAGE_BUCKET_NAME,
            "endpoint_url": env_url("AWS_S3_ENDPOINT_URL") or None,
            "region_name": env_str("AWS_S3_REGION_NAME") or None,
            "default_acl": None,
            "querystring_auth": True,
            "file_overwrite": True,  # names are content hashes: same name, same bytes
        },
    }
else:
    default_storage = {"BACKEND": "django.core.files.storage.FileSystemStorage"}
STORAGES = {
    "default": default_storage,
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"
                    if PRODUCTION else "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = not PRODUCTION

# --- auth -------------------------------------------------------------------------------
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Axes first: it refuses a locked-out login before any password is checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# --- login throttling (django-axes), on the site's and the admin's log-in alike.
# Failures are counted per username *and* client address, so a wrong guess from one
# place neither locks that user out everywhere nor locks out others behind the same
# address. Counted in the database: every process sees the same count. A success
# clears the count; the lockout page (429) says when to try again.
AXES_FAILURE_LIMIT = env_int("BRENIA_LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_float("BRENIA_LOGIN_COOLOFF_MINUTES", 15.0,
                                                  minimum=0.1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
AXES_LOCKOUT_CALLABLE = "brenia.lockout.lockout_response"
AXES_CLIENT_IP_CALLABLE = "brenia.lockout.client_ip"
# Proxies in front of Brenia that append to X-Forwarded-For; the client's address is
# the one that many entries from the right. 0: REMOTE_ADDR, the direct peer.
BRENIA_PROXY_COUNT = env_int("BRENIA_PROXY_COUNT", 0, minimum=0)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = PRODUCTION

# --- mail (budget warnings). Development prints mail to the console; production sends
# it through EMAIL_HOST over SMTP. The password comes from the environment only.
EMAIL_BACKEND = env_str("BRENIA_EMAIL_BACKEND",
                        "django.core.mail.backends.smtp.EmailBackend" if PRODUCTION
                        else "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", default=False)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Brenia <brenia@localhost>")
# Mail the user (or a team's owners) when a job crosses a plan's soft monthly budget.
BRENIA_BUDGET_EMAILS = env_bool("BRENIA_BUDGET_EMAILS", default=True)

# --- transport security (production sits behind a TLS-terminating proxy) --------------
if PRODUCTION:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("BRENIA_SSL_REDIRECT", default=True)
    # Load balancers probe, and Prometheus may scrape, over plain HTTP.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
    SECURE_HSTS_SECONDS = env_int("BRENIA_HSTS_SECONDS", 31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("BRENIA_HSTS_SUBDOMAINS", default=True)
    SECURE_HSTS_PRELOAD = env_bool("BRENIA_HSTS_PRELOAD", default=True)
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# --- Content-Security-Policy (django-csp): only Brenia's own scripts, styles and sockets.
# Images may also be data: (a carried upload) and blob: (an upload's preview). The API
# docs page loads Swagger UI from its CDN, so it keeps Django's defaults only.
CONTENT_SECURITY_POLICY = {
    "EXCLUDE_URL_PREFIXES": ["/api/docs"],
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:", "blob:"],
        "connect-src": ["'self'"],
        "font-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- metrics (Prometheus, at /metrics) -------------------------------------------------
# Every Brenia process of one machine (daphne, workers) writes its series to files here
# and /metrics adds them up: prometheus_client's multiprocess mode. One folder per
# machine, shared by processes that see each other's pids (a dead one's files are
# dropped by pid). prometheus_client reads PROMETHEUS_MULTIPROC_DIR when first imported,
# which is after settings; the processes `serve` starts inherit it.
BRENIA_METRICS_DIR = Path(env_str("BRENIA_METRICS_DIR") or DATA_DIR / "metrics")
BRENIA_METRICS_DIR.mkdir(parents=True, exist_ok=True)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(BRENIA_METRICS_DIR)


def _metrics_token() -> str:
    """The bearer token /metrics asks for. Unset in production: /metrics is off (404),
    never open. Unset in development: one is made and kept in DATA_DIR/metrics_token."""
    from_env = env_str("BRENIA_METRICS_TOKEN")
    if from_env or PRODUCTION:
        return from_env
    token_file = DATA_DIR / "metrics_token"
    if not token_file.exists():
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):  # another process made it first
            write_private(token_file, secrets.token_urlsafe(32))
    return token_file.read_text().strip()


BRENIA_METRICS_TOKEN = _metrics_token()

# --- logging ----------------------------------------------------------------------------
LOG_FORMAT = env_choice("LOG_FORMAT", "json" if PRODUCTION else "text", ("json", "text"))
LOG_LEVEL = env_choice("LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR"))
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "brenia.logs.RequestIdFilter"}},
    "formatters": {
        "json": {"()": "brenia.logs.JsonFormatter"},
        "text": {"format": "%(asctime)s %(levelname)-7s [%(request_id)s] %(name)s: %(message)s"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["request_id"],
        },
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # httpx logs every request line with its full URL at INFO; keep it quiet.
        "httpx": {"level": "WARNING"},
        "httpx2": {"level": "WARNING"},
        "daphne": {"level": "WARNING"},
        "django.channels.server": {"level": "WARNING"},
        # Django's own console handler (plain text, DEBUG only) goes: its lines reach
        # the root's handler like every other, in LOG_FORMAT, once. INFO, as Django has
        # it, whatever LOG_LEVEL says: with DEBUG on, django.db.backends logs each SQL
        # statement at DEBUG with its parameters (webhook secrets, session keys).
        "django": {"level": "INFO"},
        # One INFO line per Gemini call about its function-calling loop: noise.
        "google_genai": {"level": "WARNING"},
    },
}
