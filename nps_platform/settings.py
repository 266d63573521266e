"""Every setting, read from environment variables.

Production differs from a laptop only by its environment: see the configuration table in
README.md. With nothing set, the app runs on SQLite under var/, runs Celery tasks in-process
and prints email to the console.
"""

import os
import secrets
from datetime import timedelta
from pathlib import Path

import dj_database_url
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer, got {value!r}") from exc


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


DEBUG = env_bool("DEBUG", True)

SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")
    # Only for a laptop: sessions and signed links do not survive a restart with another key.
    SECRET_KEY = "insecure-development-key-not-for-production-use-0123456789"  # noqa: S105

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    # Full-text search in comments on PostgreSQL (SQLite falls back to a substring match).
    "django.contrib.postgres",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "axes",
    "anymail",
    "nps_platform",
    "accounts",
    "responses",
    "surveys",
    "followups",
    "insights",
    "compat",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "nps_platform.middleware.TenantMiddleware",
    # Last, as django-axes asks: it turns a lockout into its response.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "nps_platform.urls"
WSGI_APPLICATION = "nps_platform.wsgi.application"
ASGI_APPLICATION = "nps_platform.asgi.application"

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
                "nps_platform.context_processors.shell",
            ],
        },
    },
]

# --- Database --------------------------------------------------------------------------

VAR_DIR = BASE_DIR / "var"
VAR_DIR.mkdir(exist_ok=True)
DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'nps.sqlite3'}")
DATABASES = {
    "default": dj_database_url.parse(
        DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60), conn_health_checks=True
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and env_bool(
    "DB_PREPARED_STATEMENTS", True
):
    # Lets the few fixed statements every recorded answer runs be prepared once per
    # connection (responses.services.prepared_cursor; the ORM's queries never are). Turn it
    # off behind a connection pooler in transaction mode that cannot keep prepared
    # statements (PgBouncer before 1.21).
    DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = 5
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Django's backend, minus the per-request health check on a connection in steady use.
    DATABASES["default"]["ENGINE"] = "nps_platform.postgresql"
# The exec dashboard runs some of its reads on a second database connection, in a thread,
# while it computes the rest (PostgreSQL, outside transactions): its time is then nearer
# the longer of the two than their sum. Off: every read runs in turn on one connection.
DASHBOARD_READS_ASIDE = env_bool("DASHBOARD_READS_ASIDE", True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: Celery broker and cache -------------------------------------------------------

REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "nps",
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Celery reads every CELERY_* setting below (see nps_platform/celery.py).
CELERY_BROKER_URL = REDIS_URL or "memory://localhost/"  # in-process mode: never used
if REDIS_URL and REDIS_URL.startswith("redis://"):
    # kombu's Redis transport, minus a new client per published message (broker.py).
    CELERY_BROKER_TRANSPORT = "nps_platform.broker:Transport"
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# A task is acknowledged after it ran, and given back when its worker dies, so a crash
# re-runs it (tasks are idempotent). One message at a time per worker process.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# On Redis, priority 0 (every task's default) is served first: under a burst of answers the
# worker opens follow-ups (their drafts compute the comment's themes themselves) before it
# analyses the comments and counts the dashboard's rollups, which then lag by seconds.
CELERY_TASK_ROUTES = {
    "responses.analyze": {"priority": 6},
    "insights.rollup_responses": {"priority": 6},
    "insights.rollup_followups": {"priority": 6},
    "insights.rollup_days": {"priority": 6},
    "insights.rollup_invitations": {"priority": 6},
}
# Redis re-delivers an unacknowledged message after the visibility timeout; every time
# limit stays well below it so a slow task is never delivered twice while it still runs.
CELERY_BROKER_VISIBILITY_TIMEOUT = env_int("CELERY_VISIBILITY_TIMEOUT", 3600)
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_BROKER_VISIBILITY_TIMEOUT}
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_SOFT_TIME_LIMIT", 300)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TIME_LIMIT", 360)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_TIMEZONE = "UTC"
# The beat schedule, in one place. Each later feature adds its periodic task here.
CELERY_BEAT_SCHEDULE = {
    "purge-expired-teammate-invitations": {
        "task": "nps_platform.tasks.purge_expired_teammate_invitations",
        "schedule": timedelta(hours=6),
    },
    "requeue-stuck-webhook-deliveries": {
        "task": "responses.webhooks_requeue_stuck",
        "schedule": timedelta(minutes=5),
    },
    "purge-idempotency-keys": {
        "task": "responses.tasks_idempotency.purge_idempotency_keys",
        "schedule": timedelta(hours=1),
    },
    "plan-survey-programmes": {"task": "surveys.tick", "schedule": timedelta(minutes=15)},
    "dispatch-due-invitations": {"task": "surveys.dispatch_tick", "schedule": timedelta(minutes=1)},
    "escalate-overdue-followups": {
        "task": "followups.sweep",
        "schedule": timedelta(hours=1),
        "args": ["escalate"],
    },
    "daily-followup-digests": {
        "task": "followups.sweep",
        "schedule": crontab(hour=7, minute=0),
        "args": ["digest"],
    },
    # The dashboard's rollups follow every answer within seconds; a nightly exact rebuild
    # also absorbs any bulk change made outside the response service.
    "rebuild-insights-rollups": {
        "task": "insights.rebuild_all",
        "schedule": crontab(hour=2, minute=30),
    },
    # Monday morning: each organization's executives get last week's NPS digest (once).
    "weekly-exec-digests": {
        "task": "insights.weekly_digest_sweep",
        "schedule": crontab(hour=7, minute=15, day_of_week="mon"),
    },
}

# Outbound webhooks and Slack alerts refuse private and loopback addresses (SSRF) unless
# this is on: only for tests and local receivers.
WEBHOOKS_ALLOW_PRIVATE_NETWORKS = env_bool("WEBHOOKS_ALLOW_PRIVATE_NETWORKS", False)

# --- Email (django-anymail) -------------------------------------------------------------

EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "NPS Loop <no-reply@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
# Every ANYMAIL_<NAME> variable becomes ANYMAIL["<NAME>"], e.g.
# EMAIL_BACKEND=anymail.backends.postmark.EmailBackend with ANYMAIL_POSTMARK_SERVER_TOKEN.
ANYMAIL = {
    key.removeprefix("ANYMAIL_"): value
    for key, value in os.environ.items()
    if key.startswith("ANYMAIL_")
}
# The ESP tracking webhooks (/anymail/<esp>/tracking/) need HTTP basic auth with this
# "user:password". Until ANYMAIL_WEBHOOK_SECRET is set, a random one refuses every call.
ANYMAIL.setdefault("WEBHOOK_SECRET", f"{secrets.token_urlsafe(12)}:{secrets.token_urlsafe(24)}")

# --- People ----------------------------------------------------------------------------

AUTH_USER_MODEL = "nps_platform.User"
AUTHENTICATION_BACKENDS = [
    # django-axes first: it refuses a locked-out account or address before the password check.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
PASSWORD_RESET_TIMEOUT = env_int("PASSWORD_RESET_TIMEOUT", 60 * 60 * 24)
TEAMMATE_INVITATION_MAX_AGE = timedelta(days=env_int("TEAMMATE_INVITATION_MAX_AGE_DAYS", 7))

# Failed sign-ins: after AXES_FAILURE_LIMIT failures for one account, or from one address,
# further attempts are refused until the cool-off has passed.
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("AXES_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_USERNAME_CALLABLE = "nps_platform.forms.axes_username"
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_VERBOSE = False
AXES_IPWARE_PROXY_COUNT = env_int("PROXY_COUNT", 0) or None
AXES_IPWARE_META_PRECEDENCE_ORDER = (
    ["HTTP_X_FORWARDED_FOR", "REMOTE_ADDR"] if env_int("PROXY_COUNT", 0) else ["REMOTE_ADDR"]
)

# --- Security ------------------------------------------------------------------------------

SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("USE_X_FORWARDED_PROTO", False) else None
)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
# Load balancers probe health over plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 60 * 60 * 24 * 365)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", not DEBUG)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 60 * 60 * 24 * 14)
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"

# --- Locale and static ---------------------------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Without collectstatic (a laptop, the tests) whitenoise serves straight from the sources.
WHITENOISE_USE_FINDERS = DEBUG
# Uploaded files (CSV imports and their error reports). Never served directly: views check
# the tenant first. Web and worker processes must share this directory (a volume in compose).
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media")))
MEDIA_URL = "/media/"
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
IMPORT_MAX_UPLOAD_MB = env_int("IMPORT_MAX_UPLOAD_MB", 100)
# An imported answer older than this is history: recorded, analysed and counted, but it opens
# no follow-up and sends no Slack alert (responses.services.responses_record).
IMPORT_FOLLOWUP_MAX_AGE_DAYS = env_int("IMPORT_FOLLOWUP_MAX_AGE_DAYS", 14)
DATA_UPLOAD_MAX_MEMORY_SIZE = 20 * 1024 * 1024  # JSON bodies of up to 1,000 items

STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# --- REST API ------------------------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["nps_platform.api_auth.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["nps_platform.api_auth.HasOrganizationApiKey"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "nps_platform.api_pagination.CursorPagination",
    "PAGE_SIZE": 100,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "nps_platform.api_errors.exception_handler",
    "DEFAULT_THROTTLE_CLASSES": ["nps_platform.api_auth.ApiKeyRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"api_key": env_str("API_RATE_LIMIT", "1200/min")},
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "NPS Loop API",
    "DESCRIPTION": (
        "Post responses, accounts, contacts, support tickets and touchpoint events; read "
        "metrics. Authenticate with `Authorization: Bearer <key>`; an admin creates keys "
        "under Settings → API keys."
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SCHEMA_PATH_PREFIX": r"/api/v1",
}

# How many answers `seed_demo` records (the demo's follow-ups and invitations scale with it).
DEMO_RESPONSES = env_int("DEMO_RESPONSES", 4000)

# --- Logging -------------------------------------------------------------------------------

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    # django-axes logs every sign-in at INFO; lockouts still show as warnings.
    "loggers": {
        "axes": {"level": "WARNING"},
        # In-process (eager) tasks would log every success into the web server's output.
        "celery.app.trace": {"level": "WARNING" if CELERY_TASK_ALWAYS_EAGER else "INFO"},
    },
}
