"""Sign-in throttling: after ``REPLENS_SIGN_IN_FAILURES`` failed sign-ins for one user name
within ``REPLENS_SIGN_IN_WINDOW_S``, that name cannot sign in until the window has passed —
through the sign-in page and the admin alike (the check is in the authentication backend).
The counts live in Django's cache (shared by the web processes when ``CACHE_URL`` is set)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.signals import user_login_failed
from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError
from django.dispatch import receiver
from django.http import HttpRequest

if TYPE_CHECKING:
    from django.contrib.auth.models import User


def _key(username: str) -> str:
    return f"signin-failures:{username.strip().lower()}"


def locked(username: str | None) -> bool:
    """Whether sign-ins as ``username`` are refused for now."""
    if not username:
        return False
    return cache.get(_key(username), 0) >= settings.REPLENS_SIGN_IN_FAILURES


@receiver(user_login_failed)
def count_failure(
    sender: Any, credentials: dict, request: HttpRequest | None = None, **_: Any
) -> None:
    username = credentials.get("username")
    if username:
        key = _key(username)
        cache.add(key, 0, timeout=settings.REPLENS_SIGN_IN_WINDOW_S)  # the window starts
        try:
            cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.add(key, 1, timeout=settings.REPLENS_SIGN_IN_WINDOW_S)


class ThrottledModelBackend(ModelBackend):
    """Django's user-name-and-password backend, refusing a name with too many recent failures
    (without checking its password)."""

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> User | None:
        if locked(username):
            raise PermissionDenied  # authenticate() then refuses, and counts one more failure
        return super().authenticate(request, username=username, password=password, **kwargs)


class SignInForm(AuthenticationForm):
    """The sign-in form, saying so when a name is locked out instead of "wrong password"."""

    def clean(self) -> dict[str, Any]:
        if locked(self.cleaned_data.get("username")):
            minutes = -(-settings.REPLENS_SIGN_IN_WINDOW_S // 60)
            raise ValidationError(
                f"Too many failed sign-ins for this user name: try again in {minutes} minutes.",
                code="throttled",
            )
        return super().clean()
