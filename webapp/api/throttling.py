"""API rate limits: each token (one per person) may make ``REPLENS_API_RATE`` requests
(e.g. ``"10000/hour"``), read at request time so a deployment can change it; the counts live
in Django's cache (per process with the default local-memory cache; set ``CACHE_URL`` to a
Redis URL to share them between web processes)."""

from __future__ import annotations

from django.conf import settings
from rest_framework.throttling import AnonRateThrottle, UserRateThrottle


class TokenRateThrottle(UserRateThrottle):
    def get_rate(self) -> str:
        return settings.REPLENS_API_RATE


class AnonymousRateThrottle(AnonRateThrottle):
    def get_rate(self) -> str:
        return settings.REPLENS_API_ANON_RATE
