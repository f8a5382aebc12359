"""imgsim settings: one file, every knob an environment variable with a sensible default.

The defaults run the embedded set-up (SQLite + django-q2's ORM broker) with nothing else to start;
`DATABASE_URL` and `IMGSIM_REDIS_URL` switch to PostgreSQL and Redis. Every variable is listed in
.env.example. A bad value raises ImproperlyConfigured naming the variable.
"""

from __future__ import annotations

import math
import os
import socket
from collections import Counter
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false, yes/no, on/off), got {raw!r}")


def env_int(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, got {raw!r}") from None
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ImproperlyConfigured(f"{name} must be between {minimum} and {maximum}, got {value}")
    return value


def env_float(name: str, default: float, *, minimum: float | None = None, maximum: float | None = None) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, got {raw!r}") from None
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ImproperlyConfigured(f"{name} must be between {minimum} and {maximum}, got {value}")
    return value


def env_optional_float(name: str, *, minimum: float | None = None, maximum: float | None = None) -> float | None:
    """None when unset: the consumer's own (measured, model-specific) default applies."""
    if os.environ.get(name, "") == "":
        return None
    return env_float(name, 0.0, minimum=minimum, maximum=maximum)


def env_optional_int(name: str, *, minimum: int | None = None) -> int | None:
    """None when unset: the consumer's own measured default applies."""
    if os.environ.get(name, "") == "":
        return None
    return env_int(name, 0, minimum=minimum)


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


_DEV_SECRET = "imgsim-dev-only-secret-key-change-me-in-production-0123456789"


def secret_key_weakness(key: str) -> str | None:
    """Why a secret key is too weak for production, or None.

    At least 50 characters, 10 of them distinct, about 200 bits of estimated entropy (length times the
    Shannon entropy of its characters; Django's and secrets.token_urlsafe keys have 220+), and no
    repeated runs (a pattern typed twice).
    """
    if len(key) < 50:
        return f"it has {len(key)} characters; use at least 50"
    counts = Counter(key)
    if len(counts) < 10:
        return f"it uses only {len(counts)} distinct characters; use at least 10"
    bits = len(key) * -sum(n / len(key) * math.log2(n / len(key)) for n in counts.values())
    if bits < 200:
        return f"its estimated entropy is {bits:.0f} bits; use at least 200"
    runs = [key[i : i + 4] for i in range(len(key) - 3)]
    if len(set(runs)) < 0.9 * len(runs):
        return "it repeats itself"
    if key.startswith("django-insecure-") or key == _DEV_SECRET:
        return "it is a development key"
    return None


# --- Django core ---------------------------------------------------------------------------------------
# IMGSIM_PROFILE=production: a strong DJANGO_SECRET_KEY and explicit DJANGO_ALLOWED_HOSTS are required,
# DEBUG must be off, and HTTPS-only defaults apply (each overridable below); `manage.py check --deploy`
# is then clean.
IMGSIM_PROFILE = env_str("IMGSIM_PROFILE", "development")
if IMGSIM_PROFILE not in ("development", "production"):
    raise ImproperlyConfigured(f"IMGSIM_PROFILE must be development or production, got {IMGSIM_PROFILE!r}")
PRODUCTION = IMGSIM_PROFILE == "production"
DEBUG = env_bool("DJANGO_DEBUG", False)
if PRODUCTION and DEBUG:
    raise ImproperlyConfigured("DJANGO_DEBUG must be off with IMGSIM_PROFILE=production")
SECRET_KEY = env_str("DJANGO_SECRET_KEY", "") or _DEV_SECRET
if (PRODUCTION or env_bool("IMGSIM_REQUIRE_SECRET_KEY", False)) and not DEBUG:
    if not os.environ.get("DJANGO_SECRET_KEY"):
        raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set in production (IMGSIM_PROFILE=production)")
    _weakness = secret_key_weakness(SECRET_KEY)
    if _weakness is not None:
        raise ImproperlyConfigured(
            f"DJANGO_SECRET_KEY is too weak for production: {_weakness}. Generate one with: "
            "python -c 'import secrets; print(secrets.token_urlsafe(64))'"
        )
if PRODUCTION and not os.environ.get("DJANGO_ALLOWED_HOSTS"):
    raise ImproperlyConfigured("DJANGO_ALLOWED_HOSTS must name the site's host(s) in production")
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", "")

# HTTPS: on by default in the production profile. Behind a proxy that terminates TLS, set
# DJANGO_SECURE_PROXY_SSL_HEADER=X-Forwarded-Proto (the proxy must set it and strip it from clients).
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", PRODUCTION)
SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 31_536_000 if PRODUCTION else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", PRODUCTION)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", PRODUCTION)
SESSION_COOKIE_SECURE = env_bool("DJANGO_SESSION_COOKIE_SECURE", PRODUCTION)
CSRF_COOKIE_SECURE = env_bool("DJANGO_CSRF_COOKIE_SECURE", PRODUCTION)
_proxy_header = env_str("DJANGO_SECURE_PROXY_SSL_HEADER", "").strip()
if _proxy_header:
    SECURE_PROXY_SSL_HEADER = ("HTTP_" + _proxy_header.upper().replace("-", "_"), "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True

INSTALLED_APPS = [
    "imgsim_site.apps.ImgsimAdminConfig",  # Django's admin with our site (its sign-in throttled)
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    # worker before django_q: its `qcluster` command (django-q2's cluster plus a watchdog) replaces django-q2's.
    "worker",
    "search",
    "django_q",
    "core",
    "gallery",
    "duplicates",
    "pipeline",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "core.request_limits.RequestLimitMiddleware",  # before CSRF: see its docstring
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "core.middleware.DatabaseUnavailableMiddleware",
]

ROOT_URLCONF = "imgsim_site.urls"
WSGI_APPLICATION = "imgsim_site.wsgi.application"
ASGI_APPLICATION = "imgsim_site.asgi.application"

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
            ],
        },
    },
]

# --- Storage -------------------------------------------------------------------------------------------
# var/ holds everything the running product writes; in production point these at shared storage.
VAR_DIR = Path(env_str("IMGSIM_VAR_DIR", str(BASE_DIR / "var")))
MEDIA_ROOT = Path(env_str("IMGSIM_MEDIA_ROOT", str(VAR_DIR / "media")))
MEDIA_URL = "/media/"
STATIC_ROOT = Path(env_str("IMGSIM_STATIC_ROOT", str(VAR_DIR / "static")))
STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG and env_bool("IMGSIM_MANIFEST_STATIC", True)
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = True
# The index files must live where every web and worker machine sees them (like MEDIA_ROOT).
IMGSIM_INDEX_DIR = Path(env_str("IMGSIM_INDEX_DIR", str(VAR_DIR / "index")))

# --- Database ------------------------------------------------------------------------------------------
_default_sqlite = f"sqlite:///{VAR_DIR / 'imgsim.sqlite3'}"
try:
    # Persistent connections, checked before each request reuses one (a connection the server dropped, by a
    # restart or a failover, is replaced instead of failing the request).
    DATABASES = {
        "default": dj_database_url.parse(
            env_str("DATABASE_URL", _default_sqlite),
            conn_max_age=env_int("IMGSIM_DB_CONN_MAX_AGE", 60, minimum=0),
            conn_health_checks=True,
        )
    }
except ValueError as error:
    raise ImproperlyConfigured(f"DATABASE_URL is not a valid database URL: {error}") from None
# Seconds an SQLite write waits for another process's write to finish before "database is locked".
IMGSIM_SQLITE_TIMEOUT = env_int("IMGSIM_SQLITE_TIMEOUT", 30, minimum=1)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL + a busy timeout + IMMEDIATE transactions: the web server and the worker write concurrently
    # without "database is locked".
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    if DATABASES["default"]["NAME"] not in ("", ":memory:"):
        Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    # The busy timeout is set by the driver from "timeout" alone (a PRAGMA busy_timeout here would override it).
    DATABASES["default"]["OPTIONS"] = {
        "timeout": IMGSIM_SQLITE_TIMEOUT,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "gallery:image-list"
LOGOUT_REDIRECT_URL = "login"
# Sign-in throttling (core/login_throttle.py): this many failures per username and address, per window.
IMGSIM_LOGIN_MAX_FAILURES = env_int("IMGSIM_LOGIN_MAX_FAILURES", 5, minimum=1)
IMGSIM_LOGIN_WINDOW_SECONDS = env_int("IMGSIM_LOGIN_WINDOW_SECONDS", 900, minimum=1)

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("DJANGO_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

# --- First admin account (manage.py ensure_admin, run by make run when no superuser exists) -------------
IMGSIM_ADMIN_USER = env_str("IMGSIM_ADMIN_USER", "admin")
IMGSIM_ADMIN_PASSWORD = env_str("IMGSIM_ADMIN_PASSWORD", "")  # empty: a random one, printed once

# --- Upload limits -------------------------------------------------------------------------------------
IMGSIM_MAX_UPLOAD_BYTES = env_int("IMGSIM_MAX_UPLOAD_BYTES", 50 * 1024 * 1024, minimum=1024)
IMGSIM_MAX_PIXELS = env_int("IMGSIM_MAX_PIXELS", 100_000_000, minimum=10_000)
IMGSIM_MAX_FILES_PER_REQUEST = env_int("IMGSIM_MAX_FILES_PER_REQUEST", 100, minimum=1)
# The whole request body (all files and fields), checked from CONTENT_LENGTH and again while streaming.
IMGSIM_MAX_REQUEST_BYTES = env_int("IMGSIM_MAX_REQUEST_BYTES", 100 * 1024 * 1024, minimum=1024)
if IMGSIM_MAX_REQUEST_BYTES < IMGSIM_MAX_UPLOAD_BYTES:
    raise ImproperlyConfigured(
        f"IMGSIM_MAX_REQUEST_BYTES ({IMGSIM_MAX_REQUEST_BYTES}) must be at least IMGSIM_MAX_UPLOAD_BYTES "
        f"({IMGSIM_MAX_UPLOAD_BYTES}): a request must be able to carry one allowed file"
    )
# Files are counted while they stream (core.request_limits.UploadLimitHandler aborts at the first byte
# over a cap); small ones stay in memory, larger ones go to a temporary file that is deleted afterwards.
FILE_UPLOAD_HANDLERS = [
    "core.request_limits.UploadLimitHandler",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440  # Django's default: 2.5 MB per file in memory, then a temp file
DATA_UPLOAD_MAX_MEMORY_SIZE = 2_621_440  # the non-file form fields of one request (no field needs more)
DATA_UPLOAD_MAX_NUMBER_FIELDS = 1000
DATA_UPLOAD_MAX_NUMBER_FILES = IMGSIM_MAX_FILES_PER_REQUEST
IMGSIM_THUMBNAIL_SIZE = env_int("IMGSIM_THUMBNAIL_SIZE", 480, minimum=64, maximum=1024)

# --- Quality checks (unset: the measured defaults in gallery/quality.py) ---
# 0 for a size, the colour spread or the sharpness, and 1 for a black/white fraction, switch a check off.
IMGSIM_MIN_WIDTH = env_int("IMGSIM_MIN_WIDTH", 64, minimum=0)
IMGSIM_MIN_HEIGHT = env_int("IMGSIM_MIN_HEIGHT", 64, minimum=0)
IMGSIM_SOLID_COLOR_MAX_STD = env_optional_float("IMGSIM_SOLID_COLOR_MAX_STD", minimum=0.0, maximum=255.0)
IMGSIM_BLUR_MIN_SCORE = env_optional_float("IMGSIM_BLUR_MIN_SCORE", minimum=0.0, maximum=1.0)
IMGSIM_DARK_MAX_FRACTION = env_optional_float("IMGSIM_DARK_MAX_FRACTION", minimum=0.0, maximum=1.0)
IMGSIM_BRIGHT_MAX_FRACTION = env_optional_float("IMGSIM_BRIGHT_MAX_FRACTION", minimum=0.0, maximum=1.0)

# --- Embedding -----------------------------------------------------------------------------------------
IMGSIM_MODEL = env_str("IMGSIM_MODEL", "resnet18")
IMGSIM_WEIGHTS = env_str("IMGSIM_WEIGHTS", "") or None
IMGSIM_TORCH_THREADS = env_int("IMGSIM_TORCH_THREADS", 0, minimum=0)  # 0: the cores this process may use
IMGSIM_EMBED_BATCH_SIZE = env_int("IMGSIM_EMBED_BATCH_SIZE", 16, minimum=1, maximum=256)
IMGSIM_EMBED_MAX_ATTEMPTS = env_int("IMGSIM_EMBED_MAX_ATTEMPTS", 3, minimum=1)
IMGSIM_EMBED_LEASE_SECONDS = env_int("IMGSIM_EMBED_LEASE_SECONDS", 600, minimum=10)
# An embedding run stops after IMGSIM_EMBED_RUN_SECONDS (between batches) and queues the next one behind the
# detection run its batches queued, so a worker alternates between the two instead of embedding a whole
# upload session while detection waits (measured: 122 s runs held back detection on both clusters).
IMGSIM_EMBED_RUN_SECONDS = env_int("IMGSIM_EMBED_RUN_SECONDS", 20, minimum=1)
# ... or sooner, once more than this many images embedded in the last 10 minutes await detection (it lags).
IMGSIM_EMBED_AHEAD_OF_DETECTION = env_int("IMGSIM_EMBED_AHEAD_OF_DETECTION", 128, minimum=1)
# Detection works in steps of about IMGSIM_DETECT_STEP_SECONDS (the images this worker checks in that time),
# each under a claim whose lease is renewed while the step makes progress and taken over by another worker
# soon after it ends; a run stops after IMGSIM_DETECT_RUN_SECONDS and queues the next one behind whatever was
# queued meanwhile (embedding, index rebuilds), so no task waits long behind detection.
IMGSIM_DETECT_STEP_SECONDS = env_int("IMGSIM_DETECT_STEP_SECONDS", 5, minimum=1)
IMGSIM_DETECT_RUN_SECONDS = env_int("IMGSIM_DETECT_RUN_SECONDS", 20, minimum=1)
IMGSIM_DETECT_LEASE_SECONDS = env_int("IMGSIM_DETECT_LEASE_SECONDS", 30, minimum=10)
if IMGSIM_DETECT_LEASE_SECONDS < 2 * IMGSIM_DETECT_STEP_SECONDS:
    raise ImproperlyConfigured(
        f"IMGSIM_DETECT_LEASE_SECONDS ({IMGSIM_DETECT_LEASE_SECONDS}) must be at least twice "
        f"IMGSIM_DETECT_STEP_SECONDS ({IMGSIM_DETECT_STEP_SECONDS}): a step's lease must outlast the step"
    )
# Web workers load the model and the index in a background thread at start (no slow first search).
IMGSIM_WARM_MODEL = env_bool("IMGSIM_WARM_MODEL", True)

# --- Search and duplicates -----------------------------------------------------------------------------
IMGSIM_PCA_DIM = env_int("IMGSIM_PCA_DIM", 128, minimum=8)
# Below this many images search is exact on the full vectors (unset: the measured default in
# search/index/vector_index.py).
IMGSIM_EXACT_SEARCH_BELOW = env_optional_int("IMGSIM_EXACT_SEARCH_BELOW", minimum=0)
IMGSIM_RATING_WEIGHT = env_float("IMGSIM_RATING_WEIGHT", 0.05, minimum=0.0, maximum=1.0)
IMGSIM_MATCH_THRESHOLD = env_optional_float("IMGSIM_MATCH_THRESHOLD", minimum=-1.0, maximum=1.0)
IMGSIM_SEARCH_MAX_K = env_int("IMGSIM_SEARCH_MAX_K", 100, minimum=1, maximum=1000)
IMGSIM_REBUILD_FRACTION = env_float("IMGSIM_REBUILD_FRACTION", 0.1, minimum=0.0, maximum=10.0)
IMGSIM_REBUILD_MAX_PENDING = env_int("IMGSIM_REBUILD_MAX_PENDING", 20_000, minimum=0)
# From this many vectors since the build, each process searches the older ones through an HNSW graph it makes in
# a background thread (candidates re-scored exactly; the newest ones scanned exactly). 0: always exact.
# Below this the graph saves too little of a search to be worth an approximate tail; above it the saving grows
# with the tail (one query, one thread, bench vectors: figures in bench/README.md, search_product.py).
IMGSIM_TAIL_GRAPH_FROM = env_int("IMGSIM_TAIL_GRAPH_FROM", 8_000, minimum=0)
IMGSIM_NEAR_DUPLICATE_THRESHOLD = env_optional_float("IMGSIM_NEAR_DUPLICATE_THRESHOLD", minimum=-1.0, maximum=1.0)
IMGSIM_SIMILAR_THRESHOLD = env_optional_float("IMGSIM_SIMILAR_THRESHOLD", minimum=-1.0, maximum=1.0)
# A model without measured thresholds (search/thresholds.py) calibrates them on the library by itself, once it
# holds this many indexed images, and applies them (0: never; calibrate on the Duplicates page instead).
IMGSIM_AUTO_CALIBRATE_MIN_IMAGES = env_int("IMGSIM_AUTO_CALIBRATE_MIN_IMAGES", 200, minimum=0)
# Pairs between the similar and near-duplicate thresholds are checked with local features + RANSAC (OpenCV).
IMGSIM_DUPLICATE_GEOMETRY = env_bool("IMGSIM_DUPLICATE_GEOMETRY", True)
# Images moved to the trash (duplicate review, an image page's Delete) are purged for good after this many days
# (a daily task).
IMGSIM_TRASH_DAYS = env_int("IMGSIM_TRASH_DAYS", 30, minimum=1)
# Library sources (folders read in place): a file gone from a source that is online stays in the library, marked
# missing, this many days before it leaves it (it comes back with its history if it returns meanwhile).
IMGSIM_SOURCE_MISSING_GRACE_DAYS = env_int("IMGSIM_SOURCE_MISSING_GRACE_DAYS", 30, minimum=0)
# Every source is rescanned when its last scan is this old (a schedule looks every 15 minutes; 0: on demand only).
IMGSIM_SOURCE_RESCAN_MINUTES = env_int("IMGSIM_SOURCE_RESCAN_MINUTES", 60, minimum=0)
# A scan's claim on its source, renewed as it goes; a scan whose worker died is taken over once it expires.
IMGSIM_SOURCE_SCAN_LEASE_SECONDS = env_int("IMGSIM_SOURCE_SCAN_LEASE_SECONDS", 300, minimum=10)
# This machine's name where the Sources page says which machine cannot read a folder (each web and worker
# process records whether it could read every source's root): the host name unless set.
IMGSIM_MACHINE_NAME = env_str("IMGSIM_MACHINE_NAME", "").strip()[:255] or socket.gethostname()

# --- Task queue and shared cache -----------------------------------------------------------------------
IMGSIM_REDIS_URL = env_str("IMGSIM_REDIS_URL", "")
# One cache shared by every web and worker process: rate limits and failed sign-ins count across all of
# them. The default database holds it on the embedded set-up (its table is made by `migrate`); Redis
# holds it when IMGSIM_REDIS_URL is set.
if IMGSIM_REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": IMGSIM_REDIS_URL,
            "KEY_PREFIX": "imgsim",
        }
    }
else:
    CACHES = {
        "default": {
            # Django's DatabaseCache, with one statement per set and an atomic incr (core/cache.py)
            "BACKEND": "core.cache.SharedDatabaseCache",
            "LOCATION": "imgsim_cache",
            "OPTIONS": {"MAX_ENTRIES": 100_000},
        }
    }
CACHES["django_q_stats"] = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "django-q-stats"}
IMGSIM_TASKS_SYNC = env_bool("IMGSIM_TASKS_SYNC", False)
IMGSIM_TASK_TIMEOUT = env_int("IMGSIM_TASK_TIMEOUT", 900, minimum=10)
Q_CLUSTER: dict[str, object] = {
    "name": env_str("IMGSIM_QUEUE_NAME", "imgsim"),
    "workers": env_int("IMGSIM_WORKERS", 1, minimum=1),
    "timeout": IMGSIM_TASK_TIMEOUT,
    # A task is handed out again only well after its own timeout, so a slow one never runs twice at once.
    "retry": IMGSIM_TASK_TIMEOUT + 300,
    "max_attempts": 2,
    "recycle": 200,
    "save_limit": 500,
    "queue_limit": 50,
    "label": "Background tasks",
    "catch_up": False,
    "sync": IMGSIM_TASKS_SYNC,
    "poll": 1,
    # django-q2 saves its cluster statistics twice a second into this cache; in the shared database cache that
    # would be a steady stream of writes (and of errors while the database is down). The watchdog's heartbeat
    # rows (worker.WorkerHeartbeat) are what the pages and the API read instead.
    "cache": "django_q_stats",
}
# The qcluster watchdog (worker/watchdog.py): a cluster whose fetched tasks wait this long with every worker
# idle, or that stops reporting this long, is restarted; pages say "no worker" after this long without a beat.
IMGSIM_WORKER_STALL_SECONDS = env_int("IMGSIM_WORKER_STALL_SECONDS", 60, minimum=5)
IMGSIM_WORKER_HEARTBEAT_SECONDS = env_int("IMGSIM_WORKER_HEARTBEAT_SECONDS", 10, minimum=1)
# Pages warn when queued images have waited this long while no image was embedded.
IMGSIM_QUEUE_STUCK_SECONDS = env_int("IMGSIM_QUEUE_STUCK_SECONDS", 300, minimum=10)
if IMGSIM_REDIS_URL:
    Q_CLUSTER["redis"] = IMGSIM_REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"

# --- REST API ------------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "core.api.pagination.CappedPageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_THROTTLE_RATES": {
        "upload": env_str("IMGSIM_UPLOAD_RATE", "600/hour"),
        "search": env_str("IMGSIM_SEARCH_RATE", "1200/hour"),
    },
    "EXCEPTION_HANDLER": "core.api.errors.api_exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "imgsim API",
    "DESCRIPTION": "Upload images, search for visually similar ones, review near-duplicates.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "DuplicateKindEnum": "duplicates.models.DuplicatePair.Kind",
        "DuplicateReviewStatusEnum": "duplicates.models.DuplicatePair.ReviewStatus",
        "DuplicateGroupStatusEnum": "duplicates.models.DuplicateGroup.Status",
        "DuplicateDecisionActionEnum": "duplicates.models.DuplicateDecision.Action",
        "ImageStatusEnum": "gallery.models.Image.Status",
        "DuplicateGroupDecisionActionEnum": "duplicates.models.DuplicateGroupDecision.Action",
        "DuplicateGroupResolveActionEnum": "duplicates.services.group_review.GroupAction.CHOICES",
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("IMGSIM_LOG_LEVEL", "INFO")},
    "loggers": {"django.request": {"level": "ERROR"}, "faiss.loader": {"level": "WARNING"}},
}
