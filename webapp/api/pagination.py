"""List pages: ``?limit=`` and ``?offset=``, the limit capped so that no request can ask the
database for more rows than it can count."""

from rest_framework.pagination import LimitOffsetPagination


class CappedLimitOffsetPagination(LimitOffsetPagination):
    max_limit = 1000
