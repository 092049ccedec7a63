"""orweb settings: one file, driven by environment variables (see README for the list)."""

from __future__ import annotations

from pathlib import Path

import environ
from redis.connection import parse_url

from orweb.schedules import BEAT_SCHEDULE

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# Beside a running `make run`, `manage.py` finds that stack's database, Redis and key in the file it keeps in
# the data directory while it runs (orweb.devstack.RUNNING_FILE); what the environment sets wins.
RUNNING_STACK = Path(env.str("ORWEB_DATA_DIR", default=str(BASE_DIR / ".data"))) / "running.env"
if RUNNING_STACK.is_file():
    environ.Env.read_env(RUNNING_STACK)

DEBUG = env.bool("DEBUG", default=False)
# SECRET_KEY, or SECRET_KEY_FILE naming a file that holds it (`make run` keeps a generated one in .data/,
# mode 0600). The fixed development key is only for DEBUG=1 without either (building static files).
SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY and env.str("SECRET_KEY_FILE", default=""):
    SECRET_KEY = Path(env.str("SECRET_KEY_FILE")).read_text().strip()
SECRET_KEY = SECRET_KEY or ("dev-only-insecure-key" if DEBUG else "")
if not SECRET_KEY:
    raise environ.ImproperlyConfigured("Set SECRET_KEY or SECRET_KEY_FILE (or DEBUG=1 for a development key).")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

DATABASES = {"default": env.db_url("DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/orweb")}
# A psycopg connection pool per process (DB_POOL=0 turns it off): the metered path runs its database
# work in short-lived executor threads, and a fresh connection per thread and call cost ~4 ms each, while
# persistent per-thread connections (CONN_MAX_AGE > 0) pile up past max_connections. With the pool,
# closing a connection hands it back; CONN_MAX_AGE must then stay 0.
if env.bool("DB_POOL", default=True):
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": env.int("DB_POOL_MIN", default=2),
        "max_size": env.int("DB_POOL_MAX", default=20),
        "timeout": env.float("DB_POOL_TIMEOUT", default=10.0),
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=0)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")

# OpenRouter: the key lives here and nowhere else.
OPENROUTER_API_KEY = env.str("OPENROUTER_API_KEY", default="")
OPENROUTER_BASE_URL = env.str("OPENROUTER_BASE_URL", default="https://openrouter.ai/api/v1")
OPENROUTER_SIMULATED = env.bool("OPENROUTER_SIMULATED", default=False)
OPENROUTER_IDLE_TIMEOUT = env.float("OPENROUTER_IDLE_TIMEOUT", default=60.0)
OPENROUTER_ANSWER_TIMEOUT = env.float("OPENROUTER_ANSWER_TIMEOUT", default=600.0)
OPENROUTER_DEFAULT_MAX_TOKENS = env.int("OPENROUTER_DEFAULT_MAX_TOKENS", default=2048)
ORWEB_SITE_URL = env.str("ORWEB_SITE_URL", default="http://127.0.0.1:8000")
ORWEB_APP_TITLE = env.str("ORWEB_APP_TITLE", default="orweb")

# Request bodies: the web server answers 413 to one over its route's limit before reading it
# (orweb.body_limits). Pages' forms get ORWEB_MAX_BODY; /v1 JSON ORWEB_MAX_API_BODY (room for images sent
# inline as base64); a chat attachment upload ORWEB_MAX_ATTACHMENT_BODY (chat.uploads' 5 MB image plus
# the multipart framing); batch files (/batches/, /v1/files) ORWEB_MAX_BATCH_BODY. Django's own cap on
# a body it reads into memory is the largest of the JSON limits, so it agrees under any server.
ORWEB_MAX_BODY = env.int("ORWEB_MAX_BODY", default=1024 * 1024)
ORWEB_MAX_API_BODY = env.int("ORWEB_MAX_API_BODY", default=10 * 1024 * 1024)
ORWEB_MAX_ATTACHMENT_BODY = env.int("ORWEB_MAX_ATTACHMENT_BODY", default=5 * 1024 * 1024 + 64 * 1024)
ORWEB_MAX_BATCH_BODY = env.int("ORWEB_MAX_BATCH_BODY", default=200 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = max(ORWEB_MAX_BODY, ORWEB_MAX_API_BODY)

# Batch jobs (batches/): uploaded files are streamed to ORWEB_BATCH_DIR (each user's own folder), never
# held whole in memory; a file may have at most ORWEB_BATCH_MAX_LINES lines. Each job runs at most
# ORWEB_BATCH_CONCURRENCY lines at once (a job may ask for less, or up to ORWEB_BATCH_MAX_CONCURRENCY), and
# all of one user's jobs together at most ORWEB_BATCH_USER_CONCURRENCY. A worker claims lines for
# ORWEB_BATCH_CLAIM_SECONDS: if it dies, they go back to the queue when the claim lapses. A line whose call
# fails for a reason that may pass (5xx, timeouts) is tried up to ORWEB_BATCH_MAX_TRIES times.
ORWEB_BATCH_DIR = env.path(
    "ORWEB_BATCH_DIR", default=str(Path(env.str("ORWEB_DATA_DIR", default=str(BASE_DIR / ".data"))) / "batches")
)
ORWEB_BATCH_MAX_LINES = env.int("ORWEB_BATCH_MAX_LINES", default=50_000)
ORWEB_BATCH_MAX_BYTES = env.int("ORWEB_BATCH_MAX_BYTES", default=200 * 1024 * 1024)
ORWEB_BATCH_CONCURRENCY = env.int("ORWEB_BATCH_CONCURRENCY", default=8)
ORWEB_BATCH_MAX_CONCURRENCY = env.int("ORWEB_BATCH_MAX_CONCURRENCY", default=64)
ORWEB_BATCH_USER_CONCURRENCY = env.int("ORWEB_BATCH_USER_CONCURRENCY", default=16)
ORWEB_BATCH_CLAIM_SECONDS = env.int("ORWEB_BATCH_CLAIM_SECONDS", default=180)
ORWEB_BATCH_MAX_TRIES = env.int("ORWEB_BATCH_MAX_TRIES", default=3)
# A job is worked by up to this many runs at once, each in a batch worker process of its own (they share its
# concurrency), so a big job uses more than one core: match it to the batch worker's processes.
ORWEB_BATCH_RUNS_PER_JOB = env.int("ORWEB_BATCH_RUNS_PER_JOB", default=2)
# A job's end is POSTed to its webhook URL, if it has one, signed with HMAC-SHA256 under
# ORWEB_BATCH_WEBHOOK_SECRET (webhooks can't be set while it is empty), tried at most
# ORWEB_BATCH_WEBHOOK_TRIES times with growing waits. Addresses on this machine or a private network are
# refused unless ORWEB_BATCH_WEBHOOK_ALLOW_PRIVATE is on (a user could otherwise make orweb call them).
ORWEB_BATCH_WEBHOOK_SECRET = env.str("ORWEB_BATCH_WEBHOOK_SECRET", default="")
ORWEB_BATCH_WEBHOOK_TRIES = env.int("ORWEB_BATCH_WEBHOOK_TRIES", default=6)
ORWEB_BATCH_WEBHOOK_ALLOW_PRIVATE = env.bool("ORWEB_BATCH_WEBHOOK_ALLOW_PRIVATE", default=False)
# Batch lines run on a queue of their own, so a big job never delays chat's and billing's tasks.
CELERY_TASK_ROUTES = {"batches.tasks.run_job": {"queue": "batches"}}

# Prometheus metrics at /metrics (orweb.metrics): served only when METRICS_TOKEN (or METRICS_TOKEN_FILE, a
# file holding it) is set, and then only to `Authorization: Bearer <token>`; otherwise the page is a 404.
# Several processes add up through PROMETHEUS_MULTIPROC_DIR (see orweb.metrics and README).
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
if not METRICS_TOKEN and env.str("METRICS_TOKEN_FILE", default=""):
    METRICS_TOKEN = Path(env.str("METRICS_TOKEN_FILE")).read_text().strip()

# Budget alerts go out by e-mail; by default they are only written to the worker's log (console backend).
EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="orweb <orweb@localhost>")

# The metered path (gateway/, billing/): default policy, auto's per-request cap, default rate limits.
ORWEB_DEFAULT_ALLOW_ALL = env.bool("ORWEB_DEFAULT_ALLOW_ALL", default=True)
ORWEB_AUTO_MAX_REQUEST_USD = env.str("ORWEB_AUTO_MAX_REQUEST_USD", default="0.50")
ORWEB_DEFAULT_RPM = env.int("ORWEB_DEFAULT_RPM", default=60)
ORWEB_DEFAULT_TPM = env.int("ORWEB_DEFAULT_TPM", default=200_000)
ORWEB_DEFAULT_CONCURRENT = env.int("ORWEB_DEFAULT_CONCURRENT", default=4)
# Web search for the whole workspace (gateway.policy.web_search_allowed); group policies can turn it off
# for their members (GroupPolicy.allow_web_search).
ORWEB_ALLOW_WEB_SEARCH = env.bool("ORWEB_ALLOW_WEB_SEARCH", default=True)
# Chat's caps (chat.conversations, chat.history): a message's length, a conversation's stored size, and the
# context assumed for a model whose context is unknown (orweb/auto*) when fitting the history to it.
ORWEB_CHAT_MAX_MESSAGE_CHARS = env.int("ORWEB_CHAT_MAX_MESSAGE_CHARS", default=60_000)
# The model that titles conversations (chat.titles); empty: the cheapest priced non-reasoning model allowed.
ORWEB_TITLE_MODEL = env.str("ORWEB_TITLE_MODEL", default="")
ORWEB_CHAT_MAX_CONVERSATION_BYTES = env.int("ORWEB_CHAT_MAX_CONVERSATION_BYTES", default=10 * 1024 * 1024)
ORWEB_CHAT_MAX_CONVERSATION_MESSAGES = env.int("ORWEB_CHAT_MAX_CONVERSATION_MESSAGES", default=4_000)
ORWEB_CHAT_UNKNOWN_CONTEXT = env.int("ORWEB_CHAT_UNKNOWN_CONTEXT", default=32_000)
# Websockets (chat.socket_limits, chat.consumers): sockets per user across processes, and each socket's
# frame budget (a burst, then a steady rate); floods get error frames, then close 4429.
ORWEB_WS_SOCKETS_PER_USER = env.int("ORWEB_WS_SOCKETS_PER_USER", default=20)
ORWEB_WS_FRAMES_PER_SECOND = env.float("ORWEB_WS_FRAMES_PER_SECOND", default=5.0)
ORWEB_WS_FRAME_BURST = env.int("ORWEB_WS_FRAME_BURST", default=20)
# Where each process journals its upstream attempts until they are in the ledger (billing.journal). Every
# web and worker process of one deployment must see the same directory (a shared volume), so that any of
# them can settle what a dead one left.
ORWEB_JOURNAL_DIR = env.path(
    "ORWEB_JOURNAL_DIR", default=str(Path(env.str("ORWEB_DATA_DIR", default=str(BASE_DIR / ".data"))) / "journal")
)

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "django_htmx",
    "template_partials",
    "csp",
    "orweb",
    "catalog",
    "billing",
    "gateway",
    "chat",
    "batches",
    "console",
]

# Every request gets the first two; the rest run for pages only, not /v1 (see orweb.middleware).
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "orweb.middleware.check_host",
    "orweb.middleware.WhiteNoise",
    "orweb.middleware.Sessions",
    "orweb.middleware.Common",
    "orweb.middleware.Csrf",
    "orweb.middleware.Authentication",
    "orweb.middleware.Messages",
    "orweb.middleware.FrameOptions",
    "orweb.middleware.Htmx",
    "orweb.middleware.Csp",
]
# The admin checks look for the session, auth and messages middleware by class in MIDDLEWARE; they are
# there, wrapped by orweb.middleware.pages_only (tests/orweb/test_middleware.py proves the admin works).
# For the same reason `check --deploy` can't see the CSRF and frame-options middleware (security.W002,
# W003); tests/orweb/test_middleware.py proves pages get both.
SILENCED_SYSTEM_CHECKS = ["admin.E408", "admin.E409", "admin.E410", "security.W002", "security.W003"]

ROOT_URLCONF = "orweb.urls"
ASGI_APPLICATION = "orweb.asgi.application"

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
                "orweb.context_processors.site",
            ],
            "builtins": ["orweb.templatetags.money"],
        },
    }
]

CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
# Pub/sub (the channel layer's groups, chat's Stop requests) ignores the Redis database: sites sharing one
# server on different databases keep apart by a prefix that names theirs (database 0 keeps channels' own).
REDIS_DATABASE = parse_url(REDIS_URL).get("db") or 0
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        "CONFIG": {"hosts": [REDIS_URL], "prefix": f"asgi-db{REDIS_DATABASE}" if REDIS_DATABASE else "asgi"},
    }
}

CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL)
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# A task a killed worker held (acks_late) goes back to the queue after this long; reconciliations wait up
# to 5 minutes between tries, so it must be longer. The beat sweeps, and each worker's start, catch up
# sooner (orweb.celery.recover_on_start).
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 900}
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_BEAT_SCHEDULE = BEAT_SCHEDULE
CELERY_BEAT_SCHEDULE_FILENAME = env.str("CELERY_BEAT_SCHEDULE_FILENAME", default="celerybeat-schedule")

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
# Login throttling (orweb.login_throttle): this many failed sign-ins for one username, or from one client
# address, within LOGIN_LOCKOUT_SECONDS lock it for LOGIN_LOCKOUT_SECONDS, the right password included.
LOGIN_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=20)
LOGIN_LOCKOUT_SECONDS = env.int("LOGIN_LOCKOUT_SECONDS", default=900)

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
# Served over HTTPS (SECURE_COOKIES=1): plain HTTP is redirected (but /health, for load balancers' probes)
# and browsers are told to use HTTPS only (HSTS; HSTS_SECONDS=0 turns it off). Behind a reverse proxy that
# ends TLS, set PROXY_SSL_HEADER=X-Forwarded-Proto so that a request the proxy marks `https` counts as
# secure; only with a proxy that sets that header itself, or clients could claim HTTPS.
SECURE_SSL_REDIRECT = SESSION_COOKIE_SECURE
SECURE_REDIRECT_EXEMPT = [r"^health$"]
SECURE_HSTS_SECONDS = env.int("HSTS_SECONDS", default=31_536_000 if SESSION_COOKIE_SECURE else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
if env.str("PROXY_SSL_HEADER", default=""):
    SECURE_PROXY_SSL_HEADER = ("HTTP_" + env.str("PROXY_SSL_HEADER").upper().replace("-", "_"), "https")
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

# No inline script anywhere; model output images may only be data: URLs or our own.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "font-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"httpx": {"level": "WARNING"}, "httpcore": {"level": "WARNING"}},
}

# Books that balance (billing.books): the ledger's UTC day and OpenRouter's `usage_daily` for the key have
# drifted when they differ by more than the larger of BOOKS_DRIFT_PERCENT % of OpenRouter's figure and
# BOOKS_DRIFT_USD, on BOOKS_DRIFT_CHECKS checks in a row (one check alone may catch a call in flight or an
# estimate not yet reconciled). Amounts are strings, read as Decimal.
BOOKS_DRIFT_PERCENT = env.str("BOOKS_DRIFT_PERCENT", default="1")
BOOKS_DRIFT_USD = env.str("BOOKS_DRIFT_USD", default="0.10")
BOOKS_DRIFT_CHECKS = env.int("BOOKS_DRIFT_CHECKS", default=2)

# Single sign-on with any OpenID Connect issuer (orweb.sso): set ORWEB_OIDC_ISSUER (its discovery document
# gives the endpoints), ORWEB_OIDC_CLIENT_ID and ORWEB_OIDC_CLIENT_SECRET (or ORWEB_OIDC_CLIENT_SECRET_FILE),
# and register `<site>/oidc/callback/` as the redirect URI at the IdP. ORWEB_OIDC_GROUPS_CLAIM (e.g.
# `groups`, empty = groups are managed here) makes each sign-in set the person's groups to the claim's, and
# ORWEB_OIDC_STAFF_GROUP makes staff whoever is in that group. ORWEB_SSO_ONLY hides the password form and
# refuses password sign-in to all but superusers, who keep it at /login/password/ (break glass).
ORWEB_OIDC_ISSUER = env.str("ORWEB_OIDC_ISSUER", default="")
ORWEB_OIDC_PROVIDER_NAME = env.str("ORWEB_OIDC_PROVIDER_NAME", default="single sign-on")
ORWEB_OIDC_GROUPS_CLAIM = env.str("ORWEB_OIDC_GROUPS_CLAIM", default="")
ORWEB_OIDC_STAFF_GROUP = env.str("ORWEB_OIDC_STAFF_GROUP", default="")
ORWEB_OIDC_USERNAME_CLAIM = env.str("ORWEB_OIDC_USERNAME_CLAIM", default="preferred_username")
ORWEB_SSO_ONLY = env.bool("ORWEB_SSO_ONLY", default=False)
OIDC_RP_CLIENT_ID = env.str("ORWEB_OIDC_CLIENT_ID", default="")
OIDC_RP_CLIENT_SECRET = env.str("ORWEB_OIDC_CLIENT_SECRET", default="")
if not OIDC_RP_CLIENT_SECRET and env.str("ORWEB_OIDC_CLIENT_SECRET_FILE", default=""):
    OIDC_RP_CLIENT_SECRET = Path(env.str("ORWEB_OIDC_CLIENT_SECRET_FILE")).read_text().strip()
OIDC_RP_SCOPES = env.str("ORWEB_OIDC_SCOPES", default="openid email profile")
OIDC_RP_SIGN_ALGO = env.str("ORWEB_OIDC_SIGN_ALGO", default="RS256")
OIDC_USE_PKCE = True
OIDC_TIMEOUT = env.float("ORWEB_OIDC_TIMEOUT", default=10.0)
OIDC_AUTHENTICATE_CLASS = "orweb.sso.SignInView"
LOGIN_REDIRECT_URL_FAILURE = "/login/?sso=failed"
AUTHENTICATION_BACKENDS = ["orweb.sso.PasswordBackend", "orweb.sso.OIDCBackend"]
if ORWEB_OIDC_ISSUER and not OIDC_RP_CLIENT_ID:
    raise environ.ImproperlyConfigured("ORWEB_OIDC_ISSUER is set: set ORWEB_OIDC_CLIENT_ID too.")
if ORWEB_SSO_ONLY and not ORWEB_OIDC_ISSUER:
    raise environ.ImproperlyConfigured("ORWEB_SSO_ONLY needs single sign-on: set ORWEB_OIDC_ISSUER.")

# Budget alerts (billing.alerts_webhook): when ORWEB_ALERT_WEBHOOK_URL is set, each budget period crossing a
# threshold (its alert percentage, then 100%) is POSTed there once, signed with HMAC-SHA256 under
# ORWEB_ALERT_WEBHOOK_SECRET (required with the URL), tried up to ORWEB_ALERT_WEBHOOK_TRIES times.
ORWEB_ALERT_WEBHOOK_URL = env.str("ORWEB_ALERT_WEBHOOK_URL", default="")
ORWEB_ALERT_WEBHOOK_SECRET = env.str("ORWEB_ALERT_WEBHOOK_SECRET", default="")
ORWEB_ALERT_WEBHOOK_TRIES = env.int("ORWEB_ALERT_WEBHOOK_TRIES", default=6)

# Spend anomalies (console.anomalies): a person's or API key's day above ORWEB_ANOMALY_FACTOR times its
# trailing 14-day median is flagged for the admins, unless it cost less than ORWEB_ANOMALY_FLOOR_USD.
ORWEB_ANOMALY_FACTOR = env.float("ORWEB_ANOMALY_FACTOR", default=3.0)
ORWEB_ANOMALY_FLOOR_USD = env.str("ORWEB_ANOMALY_FLOOR_USD", default="1.00")
