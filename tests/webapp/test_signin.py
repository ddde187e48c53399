"""Sign-in is throttled per user name: guessing a password costs a lock-out, said plainly."""

from __future__ import annotations

import pytest
from django.core.cache import cache

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _counts():
    cache.clear()
    yield
    cache.clear()


def test_too_many_failed_sign_ins_lock_the_name_out_even_with_the_right_password(
    client, owner, settings
):
    settings.REPLENS_SIGN_IN_FAILURES = 3
    for _ in range(3):
        response = client.post("/accounts/login/", {"username": "owner", "password": "guess"})
        assert response.status_code == 200 and "correct username and password" in (
            response.content.decode()
        )
    response = client.post("/accounts/login/", {"username": "owner", "password": "owner-pass"})
    assert response.status_code == 200
    assert "Too many failed sign-ins for this user name: try again in 15 minutes." in (
        response.content.decode()
    )
    assert "_auth_user_id" not in client.session
    # The admin's sign-in goes through the same backend.
    admin = client.post("/admin/login/", {"username": "owner", "password": "owner-pass"})
    assert "_auth_user_id" not in client.session, admin.status_code


def test_the_lock_out_ends_with_its_window_and_other_names_are_untouched(client, owner, settings):
    settings.REPLENS_SIGN_IN_FAILURES = 2
    for _ in range(2):
        client.post("/accounts/login/", {"username": "owner", "password": "guess"})
    other = client.post("/accounts/login/", {"username": "nobody", "password": "x"})
    assert "Too many" not in other.content.decode()
    cache.clear()  # the window has passed
    response = client.post("/accounts/login/", {"username": "owner", "password": "owner-pass"})
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(owner.pk)
