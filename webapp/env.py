"""Typed readers for settings from environment variables: bad values fail loudly at start-up."""

from __future__ import annotations

import os
import re
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, got {raw!r}")


def env_int(name: str, default: int, minimum: int = 0) -> int:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {value}")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = os.environ.get(name, default)
    if value not in choices:
        listed = ", ".join(repr(c) for c in choices)
        raise ImproperlyConfigured(f"{name} must be one of {listed}, got {value!r}")
    return value


RATE = re.compile(r"^\d+/(s|sec|second|m|min|minute|h|hour|d|day)$")


def env_rate(name: str, default: str) -> str:
    """A request rate as DRF reads it: ``<count>/<second|minute|hour|day>`` (``10000/hour``)."""
    value = os.environ.get(name, default).strip()
    if not RATE.match(value):
        raise ImproperlyConfigured(
            f"{name} must be a rate such as 10000/hour (a count per second, minute, hour or "
            f"day), got {value!r}"
        )
    return value


def env_url(name: str, default: str, schemes: tuple[str, ...]) -> str:
    """A URL with one of ``schemes`` (or "" where that is the default)."""
    value = os.environ.get(name, default)
    parts = urlsplit(value)
    if value and (parts.scheme not in schemes or not parts.netloc):
        raise ImproperlyConfigured(
            f"{name} must be a {' or '.join(s + '://' for s in schemes)} URL, got {value!r}"
        )
    return value
