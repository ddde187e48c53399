"""Health checks for load balancers and orchestrators: no login, and nothing said beyond which
part fails (the reason goes to the log).

``/healthz``: this web process can query the database and connect to the broker.
``/healthz/workers``: how many Celery workers are alive (503 when none is): each writes that
it is alive every few seconds (:mod:`webapp.status`).
"""

from __future__ import annotations

import logging

from django.db import DatabaseError, connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from webapp.status import broker_reachable, live_workers

logger = logging.getLogger(__name__)


def database_reachable() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:
        logger.warning("the database is unreachable", exc_info=True)
        return False
    return True


@never_cache
@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    parts = {"database": database_reachable(), "broker": broker_reachable()}
    healthy = all(parts.values())
    body = {"status": "ok" if healthy else "error"}
    body.update({part: "ok" if ok else "error" for part, ok in parts.items()})
    return JsonResponse(body, status=200 if healthy else 503)


@never_cache
@require_safe
def healthz_workers(request: HttpRequest) -> JsonResponse:
    workers = len(live_workers())
    return JsonResponse(
        {"status": "ok" if workers else "error", "workers": workers}, status=200 if workers else 503
    )
