"""Issue 7 point 10: failed sign-ins are throttled per username and address (site login and admin login).
Issue 20 point 3: attempts arriving at once get no more password checks than the limit."""

from __future__ import annotations

import itertools

import pytest
from django.contrib.auth import forms as auth_forms
from django.test import Client

pytestmark = pytest.mark.django_db


def sign_in(client: Client, username: str, password: str, url: str = "/accounts/login/"):
    return client.post(url, {"username": username, "password": password})


def test_the_right_password_is_refused_after_too_many_wrong_ones(user, settings):
    settings.IMGSIM_LOGIN_MAX_FAILURES = 5
    client = Client(REMOTE_ADDR="203.0.113.7")
    for attempt in range(5):
        response = sign_in(client, "ana", f"wrong-{attempt}")
        assert response.status_code == 200
        assert "didn't match" in response.content.decode()
    locked = sign_in(client, "ana", "pw-ana-12345")
    assert locked.status_code == 429
    assert int(locked["Retry-After"]) == settings.IMGSIM_LOGIN_WINDOW_SECONDS
    assert "Too many failed sign-ins for this account from your address" in locked.content.decode()
    assert "_auth_user_id" not in client.session


def test_the_lock_is_per_username_and_address(user, settings):
    settings.IMGSIM_LOGIN_MAX_FAILURES = 2
    attacker = Client(REMOTE_ADDR="203.0.113.7")
    for _ in range(3):
        sign_in(attacker, "ana", "wrong")
    assert sign_in(attacker, "ana", "pw-ana-12345").status_code == 429
    assert sign_in(attacker, "ANA ", "pw-ana-12345").status_code == 429  # same account, other spelling
    owner = Client(REMOTE_ADDR="198.51.100.9")
    assert sign_in(owner, "ana", "pw-ana-12345").status_code == 302  # the owner elsewhere is not locked out


def test_a_success_clears_the_count(user, settings):
    settings.IMGSIM_LOGIN_MAX_FAILURES = 2
    client = Client(REMOTE_ADDR="203.0.113.8")
    sign_in(client, "ana", "wrong")
    assert sign_in(client, "ana", "pw-ana-12345").status_code == 302
    client.logout()
    sign_in(client, "ana", "wrong")
    assert sign_in(client, "ana", "pw-ana-12345").status_code == 302


def test_the_admin_login_is_throttled_too(staff, settings):
    settings.IMGSIM_LOGIN_MAX_FAILURES = 3
    client = Client(REMOTE_ADDR="203.0.113.9")
    for _ in range(3):
        assert sign_in(client, "sam", "wrong", "/admin/login/").status_code == 200
    locked = sign_in(client, "sam", "pw-sam-12345", "/admin/login/")
    assert locked.status_code == 429  # as the site's login page
    assert int(locked["Retry-After"]) == settings.IMGSIM_LOGIN_WINDOW_SECONDS
    assert "Too many failed sign-ins" in locked.content.decode()
    assert 'id="login-form"' in locked.content.decode()  # the admin's own page, with its form
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db(transaction=True)
def test_concurrent_wrong_passwords_check_at_most_the_limit(user, settings, at_once, monkeypatch):
    settings.IMGSIM_LOGIN_MAX_FAILURES = 5
    checked = itertools.count()
    authenticate = auth_forms.authenticate

    def counted(*args, **kwargs):
        next(checked)
        return authenticate(*args, **kwargs)

    monkeypatch.setattr(auth_forms, "authenticate", counted)
    statuses = at_once(24, lambda n: sign_in(Client(REMOTE_ADDR="203.0.113.10"), "ana", f"wrong-{n}").status_code)
    assert next(checked) == 5
    assert sorted(statuses) == [200] * 5 + [429] * 19


def test_a_post_without_a_password_does_not_clear_the_count(user, settings):
    settings.IMGSIM_LOGIN_MAX_FAILURES = 2
    client = Client(REMOTE_ADDR="203.0.113.11")
    for attempt in range(2):
        sign_in(client, "ana", f"wrong-{attempt}")
        sign_in(client, "ana", "")
    assert sign_in(client, "ana", "pw-ana-12345").status_code == 429
