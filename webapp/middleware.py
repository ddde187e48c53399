"""Requests no view should see, and what every answer must tell a browser's cache."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.utils.cache import patch_vary_headers


class RejectNulMiddleware:
    """A NUL character in the path or query string cannot be stored or compared by
    PostgreSQL: answer 400 at once rather than let a view fail on it."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if "\x00" in request.path or "%00" in request.META.get("QUERY_STRING", ""):
            return HttpResponseBadRequest("NUL characters are not allowed in URLs")
        return self.get_response(request)


class VaryOnHtmxMiddleware:
    """A page answers an htmx request (a poll, a swap) with a part of itself under its own URL.
    Without ``Vary: HX-Request`` a browser's cache may hand that part back for the page itself:
    Back to a comparison that polled itself to its result then showed the bare result, without
    the site's layout, styles or scripts (so no heatmap)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        patch_vary_headers(response, ("HX-Request",))
        return response
