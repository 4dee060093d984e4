"""Settings, read from environment variables.

With nothing set, the hub runs embedded: SQLite, the in-memory channel layer and a
Celery broker on the local filesystem. `DATABASE_URL` and `REDIS_URL` switch it to
PostgreSQL and Redis (channel layer and Celery broker) without code changes.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def envbool(name: str, default: str) -> bool:
    value = os.environ.get(name, default)
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off", ""):
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean, got {value!r}")


def envint(name: str, default: int) -> int:
    value = os.environ.get(name, str(default))
    try:
        return int(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer, got {value!r}") from exc


def envnetworks(name: str) -> list[str]:
    """A comma-separated list of CIDR networks, normalized ("10.0.0.0/8")."""
    networks = []
    for part in os.environ.get(name, "").split(","):
        if not part.strip():
            continue
        try:
            networks.append(str(ipaddress.ip_network(part.strip())))
        except ValueError as exc:
            raise ImproperlyConfigured(
                f"{name} must be comma-separated CIDR networks such as "
                f"10.0.0.0/8,fd12::/16; {part.strip()!r} is not one ({exc})"
            ) from exc
    return networks


VAR_DIR = Path(os.environ.get("HUB_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def _secret_key() -> str:
    if key := os.environ.get("DJANGO_SECRET_KEY"):
        return key
    # Embedded mode: keep one random key per checkout so sessions survive restarts.
    path = VAR_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
# Off by default: debug mode keeps every SQL query in memory (about 14% of the
# hub's CPU per run) and shows tracebacks to anyone.
DEBUG = envbool("DEBUG", "false")
ALLOWED_HOSTS = os.environ.get("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",")
# Behind a TLS-terminating proxy (docs/deployment.md): trust its
# X-Forwarded-Proto and send cookies over HTTPS only.
if envbool("HUB_BEHIND_TLS_PROXY", "false"):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = True
CSRF_TRUSTED_ORIGINS = [
    o for o in os.environ.get("CSRF_TRUSTED_ORIGINS", "").split(",") if o
]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "django_htmx",
    "template_partials",
    # Listed so /api/docs serves Swagger UI from ninja's own static files
    # instead of a CDN: the docs work on a hub without internet access.
    "ninja",
    "plugins_app",
    "plugins_app.workspace",
    "plugins_app.plugins",
    "plugins_app.runs",
    "plugins_app.hosted",
    "plugins_app.exports",
    "plugins_app.evaluation",
    "plugins_app.dashboard",
    "plugins_app.wire",
    "plugins_app.web",
]

MIDDLEWARE = [
    # First: SDK calls made with a HOST that has a query string (see the module).
    "plugins_app.ango_api.middleware.SdkHostQueryMiddleware",
    # Django's own and WhiteNoise, with no thread hop per request where they
    # reach no database (plugins_app/ops/loop_middleware.py, static_files.py).
    "plugins_app.ops.loop_middleware.SecurityMiddleware",
    "plugins_app.ops.static_files.AsyncWhiteNoiseMiddleware",
    "plugins_app.ops.loop_middleware.SessionMiddleware",
    "plugins_app.ops.loop_middleware.CommonMiddleware",
    "plugins_app.ops.loop_middleware.CsrfViewMiddleware",
    "plugins_app.ops.loop_middleware.AuthenticationMiddleware",
    "plugins_app.ops.loop_middleware.MessageMiddleware",
    "plugins_app.ops.loop_middleware.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "plugins_app.urls"
ASGI_APPLICATION = "plugins_app.asgi.application"

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
                # Open plugin alerts shown as a banner (dashboard/context.py).
                "plugins_app.dashboard.context.plugin_alerts",
            ],
        },
    },
]

DATABASE_URL = os.environ.get("DATABASE_URL", f"sqlite:///{VAR_DIR / 'hub.sqlite3'}")
# Seconds a thread keeps its database connection. Reopening one costs ~1 ms of
# CPU, and the threads that live as long as the process (Channels' database
# thread, protocol.run_later's pool, the pong saver, Celery workers) reopened
# theirs up to five times a run. Each HTTP request's own thread, which ends with
# the request, still closes its connection (plugins_app/db_threads.py); health
# checks drop a connection a database restart broke before it is used again.
# 0: a new connection for each request and message, as before.
HUB_DB_CONN_MAX_AGE = envint("HUB_DB_CONN_MAX_AGE", 300)
DATABASES = {
    "default": dj_database_url.parse(
        DATABASE_URL, conn_max_age=HUB_DB_CONN_MAX_AGE, conn_health_checks=True
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Django's backend, with a health check that looks at the socket instead
    # of a `SELECT 1` round trip before each request's first query
    # (plugins_app/ops/postgres/base.py).
    DATABASES["default"]["ENGINE"] = "plugins_app.ops.postgres"
    # Parameters bound by the server (psycopg's Cursor), not quoted into the
    # SQL text by the client (its ClientCursor, Django's default): the create
    # route's CPU fell by ~1.5-2 ms (docs/benchmarks.md, stage 6 "prod").
    # Prepared statements stay off (Django's default prepare_threshold None):
    # measured, they did not lower the hub's CPU, and a prepared `SELECT r.*`
    # breaks when a migration adds a column under a running process.
    # Added to what DATABASE_URL set (its ?sslmode=… and the like), not in place of it.
    DATABASES["default"].setdefault("OPTIONS", {})["server_side_binding"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL plus IMMEDIATE transactions let the ASGI server, the Celery worker and
    # the CLI share one SQLite file without "database is locked" errors.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    if test_name := os.environ.get("HUB_TEST_DB"):
        DATABASES["default"]["TEST"] = {"NAME": test_name}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
# Password logins: the throttle first (ops/login_throttle.py), then the users.
AUTHENTICATION_BACKENDS = [
    "plugins_app.ops.login_throttle.ThrottleBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Failed password logins per account and per client address in a window before
# every password login for that account or address is refused until it ends.
HUB_LOGIN_FAILURES_PER_ACCOUNT = envint("HUB_LOGIN_FAILURES_PER_ACCOUNT", 10)
HUB_LOGIN_FAILURES_PER_ADDRESS = envint("HUB_LOGIN_FAILURES_PER_ADDRESS", 50)
HUB_LOGIN_WINDOW_SECONDS = envint("HUB_LOGIN_WINDOW_SECONDS", 900)
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "web:home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)
MEDIA_ROOT = Path(os.environ.get("HUB_MEDIA_ROOT", VAR_DIR / "media"))

# Export files (the NDJSON exports the hub builds and the files export plugins
# upload): below MEDIA_ROOT/exports, or in an S3-compatible bucket when
# HUB_EXPORT_S3_BUCKET is set (django-storages; credentials from the usual
# AWS_* variables or the instance role).
HUB_EXPORT_S3_BUCKET = os.environ.get("HUB_EXPORT_S3_BUCKET", "")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    "exports": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": MEDIA_ROOT / "exports"},
    },
}
if HUB_EXPORT_S3_BUCKET:
    STORAGES["exports"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": HUB_EXPORT_S3_BUCKET,
            "endpoint_url": os.environ.get("HUB_EXPORT_S3_ENDPOINT_URL") or None,
            "region_name": os.environ.get("HUB_EXPORT_S3_REGION") or None,
            "location": os.environ.get("HUB_EXPORT_S3_PREFIX", "exports"),
            "default_acl": None,
            "querystring_auth": True,
        },
    }

# --- Channels -----------------------------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "")
CHANNEL_LAYER_BACKEND = os.environ.get("CHANNEL_LAYER", "pubsub")


def _layer_host(url: str) -> str | dict[str, object]:
    if CHANNEL_LAYER_BACKEND == "pubsub":
        return url
    # RedisChannelLayer waits for a message with BZPOPMIN for 5 s, and redis-py
    # 8 gives up reading after 5 s (its default socket_timeout): every socket
    # idle for 5 s died with "Timeout reading" (bench/relay.py --production core).
    return {"address": url, "socket_timeout": 30}


if REDIS_URL:
    CHANNEL_LAYERS: dict[str, dict[str, object]] = {
        "default": {
            "BACKEND": (
                "channels_redis.pubsub.RedisPubSubChannelLayer"
                if CHANNEL_LAYER_BACKEND == "pubsub"
                else "channels_redis.core.RedisChannelLayer"
            ),
            "CONFIG": {"hosts": [_layer_host(REDIS_URL)]},
        }
    }
else:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels.layers.InMemoryChannelLayer",
            "CONFIG": {"capacity": 10_000},
        }
    }
# The in-memory layer lives inside one ASGI process; other processes (Celery,
# the CLI) hand their messages to it through the database outbox (wire/outbox.py).
CHANNEL_LAYER_IS_PROCESS_LOCAL = not REDIS_URL

# --- Celery -------------------------------------------------------------------
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
else:
    _broker_dir = VAR_DIR / "celery-broker"
    for sub in ("out", "processed", "control"):
        (_broker_dir / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://"
    # kombu's filesystem transport with atomic message files (broker.py).
    CELERY_BROKER_TRANSPORT = "plugins_app.broker:Transport"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "out"),
        "data_folder_out": str(_broker_dir / "out"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
        "polling_interval": 0.2,
    }
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ALWAYS_EAGER = envbool("CELERY_TASK_ALWAYS_EAGER", "false")
# REST connectors: how often Celery beat probes GET <url>/heartbeat.
HUB_CONNECTOR_PROBE_SECONDS = float(os.environ.get("HUB_CONNECTOR_PROBE_SECONDS", "30"))
CELERY_BEAT_SCHEDULE = {
    "sweep-runs": {
        "task": "plugins_app.tasks.sweep_runs",
        "schedule": float(os.environ.get("HUB_SWEEP_SECONDS", "2")),
    },
    "probe-connectors": {
        "task": "plugins_app.tasks.probe_connectors",
        "schedule": HUB_CONNECTOR_PROBE_SECONDS,
        # A busy worker drops stale probes instead of queueing them ahead of
        # connector jobs.
        "options": {"expires": HUB_CONNECTOR_PROBE_SECONDS},
    },
    "retrigger-missed-events": {
        "task": "plugins_app.tasks.retrigger_missed_events",
        "schedule": float(os.environ.get("HUB_TRIGGER_RECOVERY_SECONDS", "30")),
    },
    "check-plugin-alerts": {
        "task": "plugins_app.tasks.check_plugin_alerts",
        "schedule": float(os.environ.get("HUB_ALERT_CHECK_SECONDS", "60")),
    },
    "expire-export-snapshots": {
        "task": "plugins_app.tasks.expire_export_snapshots",
        "schedule": 600.0,
    },
    # Comparisons whose worker died: re-queued or failed (evaluation/recovery.py).
    "sweep-comparisons": {
        "task": "plugins_app.evaluation.sweep_comparisons",
        "schedule": float(os.environ.get("HUB_SWEEP_SECONDS", "2")) * 5,
    },
}
# A comparison pending or running this long without a progress step lost its
# worker (a step is 1,000 tasks read, or one run's figures).
HUB_COMPARISON_STALE_SECONDS = float(
    os.environ.get("HUB_COMPARISON_STALE_SECONDS", "300")
)
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

# --- Plugin hub ---------------------------------------------------------------
# Engine.IO timing sent to plugins in the OPEN packet (milliseconds).
HUB_PING_INTERVAL_MS = envint("HUB_PING_INTERVAL_MS", 25_000)
HUB_PING_TIMEOUT_MS = envint("HUB_PING_TIMEOUT_MS", 20_000)
# A plugin socket that has not sent a valid heartbeat this long after it opened
# (or after its secret stopped matching), or that sends more frames than this
# before it does, is closed (docs/security-auth.md). The SDK authenticates with
# its second frame, right after connecting.
HUB_SOCKET_AUTH_SECONDS = float(os.environ.get("HUB_SOCKET_AUTH_SECONDS", "30"))
HUB_SOCKET_PREAUTH_FRAMES = envint("HUB_SOCKET_PREAUTH_FRAMES", 32)
# uvicorn closes a connection whose request head has not arrived this long after
# it opened (or after the previous response): slowloris (ops/http_protocol.py).
HUB_HTTP_HEAD_TIMEOUT_SECONDS = float(
    os.environ.get("HUB_HTTP_HEAD_TIMEOUT_SECONDS", "10")
)
# ... and answers 431 to a request head (request line and headers) above this.
HUB_HTTP_MAX_HEAD_BYTES = envint("HUB_HTTP_MAX_HEAD_BYTES", 64 * 1024)
# Frames above this are refused with a clear run error (the ASGI server's own cap,
# set in the Makefile/Procfile, is larger so the hub gets to say why).
HUB_MAX_FRAME_BYTES = envint("HUB_MAX_FRAME_BYTES", 16 * 1024 * 1024)
# Input bounds (plugins_app/inputs.py, docs/input-limits.md): how deep any JSON
# a user or plugin sends may nest (Python's recursion stops near 1,000), how big
# a config JSON may be, how much of a log line's `extra` is kept, and how many
# objects one answer may hold (applying and drawing 150,000 took 15-20 s).
HUB_MAX_JSON_DEPTH = envint("HUB_MAX_JSON_DEPTH", 64)
HUB_MAX_CONFIG_BYTES = envint("HUB_MAX_CONFIG_BYTES", 256 * 1024)
HUB_MAX_LOG_EXTRA_BYTES = envint("HUB_MAX_LOG_EXTRA_BYTES", 16 * 1024)
HUB_MAX_OBJECTS_PER_ANSWER = envint("HUB_MAX_OBJECTS_PER_ANSWER", 10_000)
# Export runs: how long the export link and upload URLs stay valid, the largest
# file a plugin may upload, how long GET /v2/export waits for its Celery build.
HUB_EXPORT_LINK_SECONDS = envint("HUB_EXPORT_LINK_SECONDS", 3600)
HUB_UPLOAD_URL_SECONDS = envint("HUB_UPLOAD_URL_SECONDS", 3600)
# How long getSignedUrl's link to an export plugin's file stays valid.
HUB_SIGNED_URL_SECONDS = envint("HUB_SIGNED_URL_SECONDS", 7 * 24 * 3600)
HUB_EXPORT_MAX_UPLOAD_BYTES = envint("HUB_EXPORT_MAX_UPLOAD_BYTES", 2 * 1024**3)
HUB_EXPORT_WAIT_SECONDS = envint("HUB_EXPORT_WAIT_SECONDS", 600)
# If no Celery worker has started an export's build after this long (every one
# busy, e.g. holding REST connector jobs, whose plugin is the one asking), the
# web process that is waiting builds it itself, on a worker thread.
HUB_EXPORT_BUILD_HERE_AFTER_SECONDS = envint("HUB_EXPORT_BUILD_HERE_AFTER_SECONDS", 10)
# The largest body of one POST /v2/import/labels (10,000 records fit easily).
HUB_IMPORT_MAX_BYTES = envint("HUB_IMPORT_MAX_BYTES", 256 * 1024 * 1024)
# A plugin is shown live while its last heartbeat (sent every 60 s) is this recent.
HUB_LIVE_HEARTBEAT_SECONDS = envint("HUB_LIVE_HEARTBEAT_SECONDS", 180)
# Base URL plugins use to fetch asset files; by default the Host they connected to.
HUB_PUBLIC_URL = os.environ.get("HUB_PUBLIC_URL", "")
HUB_DEFAULT_CONCURRENCY = envint("HUB_DEFAULT_CONCURRENCY", 8)
# Embedded mode: writers of the outbox wake the ASGI process's drain at once
# (plugins_app/wire/bell.py); it also reads the outbox this often, in case a
# wake-up was lost.
HUB_OUTBOX_POLL_SECONDS = float(os.environ.get("HUB_OUTBOX_POLL_SECONDS", "1.0"))
# Extra life of a run's API key beyond the plugin's timeout.
HUB_API_KEY_GRACE_SECONDS = envint("HUB_API_KEY_GRACE_SECONDS", 60)
# Triggered events whose Celery task never ran (the broker was down at commit,
# the process died in between) get their run from beat if they are this recent.
HUB_TRIGGER_RECOVERY_WINDOW_SECONDS = envint(
    "HUB_TRIGGER_RECOVERY_WINDOW_SECONDS", 15 * 60
)
# Fernet keys for cloud storage credentials (workspace/crypto.py); the first
# encrypts. Unset: one key derived from SECRET_KEY.
HUB_STORAGE_KEYS = [
    k for k in os.environ.get("HUB_STORAGE_KEYS", "").split(",") if k.strip()
]
# REST connectors: the HTTP timeout of one heartbeat probe.
HUB_CONNECTOR_PROBE_TIMEOUT = float(os.environ.get("HUB_CONNECTOR_PROBE_TIMEOUT", "5"))
# REST connectors (and any URL a tenant gives the hub, plugins_app/ops/egress.py):
# internal addresses (loopback, private, link-local, ...) are refused unless in
# one of these comma-separated CIDR networks, e.g. "10.20.0.0/16,fd12::/16".
# Empty by default; `make run` and the tests allow 127.0.0.0/8 and ::1.
HUB_CONNECTOR_ALLOWED_NETWORKS = envnetworks("HUB_CONNECTOR_ALLOWED_NETWORKS")

# --- Hosted plugins (plugins_app/hosted/) --------------------------------------
# Uploaded code and per-plugin virtual environments. The sandbox user must be
# able to reach it (every parent directory executable by others); keep nothing
# else in it.
HUB_HOSTED_DIR = Path(os.environ.get("HUB_HOSTED_DIR", VAR_DIR / "hosted"))
# The interpreter handlers run on (and virtual environments are made from):
# Debian's, outside the hub's own virtual environment and its packages.
HUB_HOSTED_PYTHON = os.environ.get("HUB_HOSTED_PYTHON", "/usr/bin/python3")
# When the worker is root, each plugin's sandboxes run as a user of their own,
# BASE + plugin id % RANGE (docs/hosted-security.md): the process limit is per
# uid, so one plugin's fork bomb cannot starve another's. Nothing else on the
# machine may use these uids (the default range is above the usual login,
# subuid and systemd-nspawn ranges and below 2**31).
HUB_HOSTED_UID_BASE = envint("HUB_HOSTED_UID_BASE", 1_900_000_000)
HUB_HOSTED_UID_RANGE = envint("HUB_HOSTED_UID_RANGE", 1_000_000)
# The bubblewrap binary (a path or a name on PATH).
HUB_HOSTED_BWRAP = os.environ.get("HUB_HOSTED_BWRAP", "bwrap")
# Times a worker tries to start a handler's sandbox (fork or bwrap failing,
# e.g. EAGAIN), a second apart and then more, before the run fails saying so.
HUB_HOSTED_START_ATTEMPTS = envint("HUB_HOSTED_START_ATTEMPTS", 3)
HUB_HOSTED_MAX_UPLOAD_BYTES = envint("HUB_HOSTED_MAX_UPLOAD_BYTES", 5 * 1024 * 1024)
HUB_HOSTED_BUILD_TIMEOUT_SECONDS = envint("HUB_HOSTED_BUILD_TIMEOUT_SECONDS", 600)

# --- Operations (plugins_app/ops/) --------------------------------------------
# Shared by every process with Redis; the heartbeat guard keeps its counters here.
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "hub",
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
# /metrics names every organization's plugins. With a token set it needs
# "Authorization: Bearer <token>" from everyone; without one it answers only
# loopback clients, and only the embedded mode (SQLite, no Redis) or DEBUG may run
# without one: a production hub refuses to start (docs/deployment.md).
HUB_METRICS_TOKEN = os.environ.get("HUB_METRICS_TOKEN", "")
HUB_EMBEDDED = (
    DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3" and not REDIS_URL
)
if not HUB_METRICS_TOKEN and not HUB_EMBEDDED and not DEBUG:
    raise ImproperlyConfigured(
        "HUB_METRICS_TOKEN is not set: a production hub (PostgreSQL or Redis, "
        "DEBUG off) serves /metrics only with a bearer token. Set it to a long "
        "random string (`python -c 'import secrets; print(secrets.token_hex(32))'`) "
        "and give it to your Prometheus scrape job."
    )
# Failed heartbeats one IP may make per plugin id (unknown ids together) and
# window before further failures go unrecorded (ops/auth_guard.py).
HUB_AUTH_FAILURES_PER_WINDOW = envint("HUB_AUTH_FAILURES_PER_WINDOW", 10)
HUB_AUTH_WINDOW_SECONDS = envint("HUB_AUTH_WINDOW_SECONDS", 300)
# Who gets the brute-force alert; empty means the warning is only logged.
ADMINS = [
    (a.strip(), a.strip())
    for a in os.environ.get("HUB_ADMINS", "").split(",")
    if a.strip()
]
SERVER_EMAIL = os.environ.get("SERVER_EMAIL", "root@localhost")
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = envint("EMAIL_PORT", 25)
# Django waits forever by default; the alert is sent from the socket consumer.
EMAIL_TIMEOUT = envint("EMAIL_TIMEOUT", 10)
# Plugin alerts mail the organization's admins: printed to the console unless
# a mail server is configured (EMAIL_HOST set: SMTP, as before) or another
# backend is named.
EMAIL_BACKEND = os.environ.get(
    "EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend"
    if "EMAIL_HOST" in os.environ
    else "django.core.mail.backends.console.EmailBackend",
)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "webmaster@localhost")

HUB_LOG_FORMAT = os.environ.get("HUB_LOG_FORMAT", "plain")
if HUB_LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured(
        f"HUB_LOG_FORMAT must be plain or json, got {HUB_LOG_FORMAT!r}"
    )

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "plugins_app.ops.logging.JsonFormatter"},
    },
    "filters": {
        "client_errors": {"()": "plugins_app.ops.logging.ClientErrorsWithoutTraceback"}
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": HUB_LOG_FORMAT}
    },
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "plugins_app": {"level": os.environ.get("HUB_LOG_LEVEL", "INFO")},
        # A 403 is one log line, not a traceback (see the filter).
        "django.request": {"filters": ["client_errors"]},
        # The embedded broker is a directory: kombu warns on every connection
        # that no hostname was given, which is expected there.
        "kombu.connection": {"level": "ERROR"},
    },
}
