"""RepLens settings, read from environment variables.

The defaults run the embedded demo: SQLite under ``var/``, a filesystem Celery broker under
``var/broker/`` and blobs under ``var/media/``. A team server sets ``DATABASE_URL``
(PostgreSQL), ``CELERY_BROKER_URL`` (Redis) and ``SECRET_KEY``, and keeps its blobs in
S3-compatible object storage shared by the web nodes and the workers:
``STORAGE_BACKEND=storages.backends.s3.S3Storage`` with ``AWS_STORAGE_BUCKET_NAME``
(required), ``AWS_S3_ENDPOINT_URL`` (MinIO, SeaweedFS...; unset for AWS),
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_S3_REGION_NAME`` (``us-east-1``) and
``AWS_S3_ADDRESSING_STYLE`` (``path``); ``REPLENS_PRESIGNED_DOWNLOADS=true`` then sends blob
downloads to presigned URLs of the bucket instead of streaming them through the web node.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from webapp.env import env_bool, env_choice, env_int, env_list, env_rate, env_str, env_url

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("REPLENS_VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)  # the embedded database, broker and blobs live here

DEBUG = env_bool("DEBUG", False)
LOCAL_HOSTS = ["localhost", "127.0.0.1", "[::1]", "testserver"]
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", LOCAL_HOSTS)
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
# A site others can reach (a host name beyond this machine's) signs sessions and invitation
# links with a key of its own: it does not start without one unless DEBUG is on. The insecure
# key serves the demo and the tests, which answer to this machine only.
SECRET_KEY = env_str("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG and set(ALLOWED_HOSTS) - set(LOCAL_HOSTS):
        raise ImproperlyConfigured(
            f"SECRET_KEY must be set: this site answers to {', '.join(ALLOWED_HOSTS)} "
            '(make one with python3 -c "import secrets; print(secrets.token_urlsafe(50))")'
        )
    SECRET_KEY = "replens-insecure-local-key"  # the embedded default only
elif SECRET_KEY.startswith("change-me"):
    raise ImproperlyConfigured("SECRET_KEY is still the example's placeholder: replace it")
# HTTPS (REPLENS_HTTPS=true): TLS ends at a proxy in front, which says so in
# X-Forwarded-Proto; requests over plain HTTP are redirected (the health checks, which a
# container's orchestrator makes over HTTP inside, excepted), cookies are sent over HTTPS only,
# browsers are told to use HTTPS for SECURE_HSTS_SECONDS, and links the site makes (invitations)
# start with https://.
REPLENS_HTTPS = env_bool("REPLENS_HTTPS", False)
if REPLENS_HTTPS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = True
    SECURE_REDIRECT_EXEMPT = [r"^healthz"]
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 365 * 24 * 3600)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "template_partials",
    "webapp.catalog",
    "webapp.runs",
    "webapp.pages",
    "webapp.api",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "webapp.middleware.RejectNulMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "webapp.middleware.VaryOnHtmxMiddleware",
]

ROOT_URLCONF = "webapp.urls"
WSGI_APPLICATION = "webapp.wsgi.application"

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

try:
    DATABASES = {
        "default": dj_database_url.parse(
            env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'replens.sqlite3'}"),
            conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 0),
        )
    }
except ValueError as err:
    raise ImproperlyConfigured(f"DATABASE_URL is not a valid database URL: {err}") from None
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web server and the worker share the file: wait for locks instead of failing.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 30, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTHENTICATION_BACKENDS = ["webapp.signin.ThrottledModelBackend"]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"  # collectstatic output, which WhiteNoise serves
STATIC_ROOT.mkdir(exist_ok=True)
# Front-end files, vendored ones (plotly.js) included: served from here, never from a CDN.
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media")))
S3_STORAGE = "storages.backends.s3.S3Storage"
STORAGES: dict[str, dict[str, Any]] = {
    "default": {
        "BACKEND": env_choice(
            "STORAGE_BACKEND",
            "django.core.files.storage.FileSystemStorage",
            ("django.core.files.storage.FileSystemStorage", "storages.backends.s3.S3Storage"),
        )
    },
    # collectstatic (the web image, `make demo`) writes each file under a name with a hash of
    # its content, cached by browsers for a year, and compressed beside it (webapp/static.py).
    "staticfiles": {"BACKEND": "webapp.static.StaticStorage"},
}
if STORAGES["default"]["BACKEND"] == S3_STORAGE:
    # Blobs and upload chunks in an S3-compatible bucket (AWS, MinIO, SeaweedFS, Ceph...)
    # shared by the web nodes and every worker.
    if not env_str("AWS_STORAGE_BUCKET_NAME", ""):
        raise ImproperlyConfigured(f"STORAGE_BACKEND={S3_STORAGE} needs AWS_STORAGE_BUCKET_NAME")
    if env_str("AWS_S3_ADDRESSING_STYLE", "path") not in ("path", "virtual", "auto"):
        raise ImproperlyConfigured("AWS_S3_ADDRESSING_STYLE must be path, virtual or auto")
    STORAGES["default"]["OPTIONS"] = {
        "bucket_name": env_str("AWS_STORAGE_BUCKET_NAME", ""),
        "endpoint_url": env_str("AWS_S3_ENDPOINT_URL", "") or None,  # None: AWS itself
        "access_key": env_str("AWS_ACCESS_KEY_ID", "") or None,  # None: boto3's own lookup
        "secret_key": env_str("AWS_SECRET_ACCESS_KEY", "") or None,
        "region_name": env_str("AWS_S3_REGION_NAME", "us-east-1"),
        "addressing_style": env_str("AWS_S3_ADDRESSING_STYLE", "path"),  # MinIO, SeaweedFS
        "signature_version": "s3v4",  # presigned URLs: boto3's default (v2) is refused
        # A blob read from the bucket spills to a temporary file past this size.
        "max_memory_size": env_int("AWS_S3_MAX_MEMORY_SIZE", 16 * 1024**2, minimum=1),
        "file_overwrite": True,  # a key names its bytes: a blob's sha256, a chunk's offset
    }
# Downloads of stored blobs (.npy results) redirect to a presigned URL of the object store,
# valid REPLENS_PRESIGNED_EXPIRY_S, instead of streaming through the web node: only where
# the clients can reach the object store.
REPLENS_PRESIGNED_DOWNLOADS = env_bool("REPLENS_PRESIGNED_DOWNLOADS", False)
REPLENS_PRESIGNED_EXPIRY_S = env_int("REPLENS_PRESIGNED_EXPIRY_S", 300, minimum=1)
if REPLENS_PRESIGNED_DOWNLOADS and STORAGES["default"]["BACKEND"] != S3_STORAGE:
    raise ImproperlyConfigured(f"REPLENS_PRESIGNED_DOWNLOADS needs STORAGE_BACKEND={S3_STORAGE}")
# Pages name the collected files; until collectstatic has run (tests, a first `runserver`)
# they name the sources, which the test server and DEBUG's runserver serve themselves.
WHITENOISE_MANIFEST_STRICT = False

# Uploads larger than this stream to a temporary file instead of memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
# A request's fields other than files (a form, a lasso's polygon) are read into memory up to
# this size; a larger one is a 400. Files stream to disk; API chunks are capped on their own
# (webapp.catalog.uploads.MAX_CHUNK_SIZE).
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
REPLENS_MAX_UPLOAD_BYTES = env_int("REPLENS_MAX_UPLOAD_BYTES", 2 * 1024**3, minimum=1)
REPLENS_ARCHIVE_MAX_FILES = env_int("REPLENS_ARCHIVE_MAX_FILES", 200_000, minimum=1)
REPLENS_ARCHIVE_MAX_BYTES = env_int("REPLENS_ARCHIVE_MAX_BYTES", 4 * 1024**3, minimum=1)

# Celery: the embedded default is a filesystem broker that needs no server.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
if not CELERY_BROKER_URL.startswith(("filesystem://", "redis://", "rediss://", "amqp://")):
    raise ImproperlyConfigured(f"CELERY_BROKER_URL has an unsupported scheme: {CELERY_BROKER_URL}")
BROKER_DIR = VAR_DIR / "broker"
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, Any] = (
    {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
    }
    if CELERY_BROKER_URL.startswith("filesystem://")
    else {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 6 * 3600, minimum=60)}
)
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 3 * 3600, minimum=1)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", CELERY_TASK_SOFT_TIME_LIMIT + 300)
REPLENS_DEVICE = env_str("REPLENS_DEVICE", "")  # "" picks CUDA when available
if not re.fullmatch(r"(cpu|cuda(:\d+)?)?", REPLENS_DEVICE):
    raise ImproperlyConfigured(
        f"REPLENS_DEVICE must be cpu, cuda, cuda:<index> or empty, got {REPLENS_DEVICE!r}"
    )
# The commit the code was built from, for provenance (webapp/version.py); set when an image
# is built, else read from the git checkout.
REPLENS_COMMIT = env_str("REPLENS_COMMIT", "")
# Every load or run of an uploaded model happens in a model host (analysis/host/__init__.py): a
# child process confined by Landlock and seccomp (REPLENS_HOST_SANDBOX=false only where the kernel
# has neither), killed when it runs past REPLENS_HOST_TIME_LIMIT_S, makes no progress for
# REPLENS_HOST_STALL_S or holds more than REPLENS_HOST_MEMORY_BYTES.
REPLENS_HOST_TIME_LIMIT_S = env_int("REPLENS_HOST_TIME_LIMIT_S", 2 * 3600, minimum=1)
REPLENS_HOST_STALL_S = env_int("REPLENS_HOST_STALL_S", 300, minimum=1)
REPLENS_HOST_MEMORY_BYTES = env_int("REPLENS_HOST_MEMORY_BYTES", 8 * 1024**3, minimum=2**31)
REPLENS_HOST_SANDBOX = env_bool("REPLENS_HOST_SANDBOX", True)
# A worker beats every REPLENS_HEARTBEAT_S while it computes a run; the reaper (Celery beat,
# every REPLENS_REAP_EVERY_S) queues again a run silent for REPLENS_STALE_AFTER_S, at most
# REPLENS_MAX_ATTEMPTS times in all, then fails it.
REPLENS_HEARTBEAT_S = env_int("REPLENS_HEARTBEAT_S", 10, minimum=1)
REPLENS_STALE_AFTER_S = env_int("REPLENS_STALE_AFTER_S", 120, minimum=2)
REPLENS_REAP_EVERY_S = env_int("REPLENS_REAP_EVERY_S", 60, minimum=1)
REPLENS_MAX_ATTEMPTS = env_int("REPLENS_MAX_ATTEMPTS", 3, minimum=1)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": [
        "webapp.api.parsers.BoundedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "webapp.api.views.exception_handler",
    "DEFAULT_PAGINATION_CLASS": "webapp.api.pagination.CappedLimitOffsetPagination",
    "PAGE_SIZE": 100,
    "DEFAULT_THROTTLE_CLASSES": [
        "webapp.api.throttling.TokenRateThrottle",
        "webapp.api.throttling.AnonymousRateThrottle",
    ],
}
REPLENS_API_RATE = env_rate("REPLENS_API_RATE", "10000/hour")  # per token
REPLENS_API_ANON_RATE = env_rate("REPLENS_API_ANON_RATE", "100/hour")
# Sign-in: after REPLENS_SIGN_IN_FAILURES failed attempts for one user name, or from one
# address, within REPLENS_SIGN_IN_WINDOW_S, further attempts are refused until it has passed.
REPLENS_SIGN_IN_FAILURES = env_int("REPLENS_SIGN_IN_FAILURES", 10, minimum=1)
REPLENS_SIGN_IN_WINDOW_S = env_int("REPLENS_SIGN_IN_WINDOW_S", 15 * 60, minimum=1)
CACHE_URL = env_url("CACHE_URL", "", ("redis", "rediss"))
CACHES = {
    "default": (
        {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": CACHE_URL,
        }
        if CACHE_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}
SPECTACULAR_SETTINGS = {
    "TITLE": "RepLens API",
    "DESCRIPTION": "Upload checkpoints and datasets, extract activations, compare representations.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # The API docs page (Swagger UI) from this site's static files; no outside validator.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "SWAGGER_UI_SETTINGS": {"validatorUrl": None},
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {  # one name per choice set that several fields share
        "PoolingEnum": "analysis.models.choices.POOLINGS",
        "ExtractionPoolingEnum": "analysis.models.choices.EXTRACTION_POOLINGS",
        "PositionsEnum": "analysis.measures.positions.REDUCTIONS",
        "PooledPositionsEnum": "analysis.measures.positions.POOLED_REDUCTIONS",
        "RunKindEnum": "webapp.runs.models.Run.Kind",
        "RunStateEnum": "webapp.runs.models.Run.State",
        "UploadStateEnum": "webapp.catalog.models.Upload.State",
        "UploadKindEnum": "webapp.catalog.models.Upload.Kind",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "webapp.api.schema.document_auth_and_throttling",
        "webapp.api.schema.add_messages",
    ],
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {
        "handlers": ["console"],
        "level": env_choice("LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")),
    },
}

# Operations. A Redis broker hands a message it delivered to another worker when it has not
# been acknowledged within the visibility timeout; tasks acknowledge when they end (acks_late),
# so a timeout shorter than the longest a task may run (the hard time limit) would run long
# tasks twice at once. Refuse to start rather than do that.
if CELERY_TASK_TIME_LIMIT <= CELERY_TASK_SOFT_TIME_LIMIT:
    raise ImproperlyConfigured(
        f"CELERY_TASK_TIME_LIMIT ({CELERY_TASK_TIME_LIMIT} s) must be above "
        f"CELERY_TASK_SOFT_TIME_LIMIT ({CELERY_TASK_SOFT_TIME_LIMIT} s)"
    )
_visibility_timeout = CELERY_BROKER_TRANSPORT_OPTIONS.get("visibility_timeout")
if _visibility_timeout is not None and _visibility_timeout <= CELERY_TASK_TIME_LIMIT:
    raise ImproperlyConfigured(
        f"CELERY_VISIBILITY_TIMEOUT ({_visibility_timeout} s) must be above "
        f"CELERY_TASK_TIME_LIMIT ({CELERY_TASK_TIME_LIMIT} s), the longest a task may run: "
        "else the broker hands a running task to a second worker"
    )
