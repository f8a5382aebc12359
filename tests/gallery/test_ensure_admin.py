"""ensure_admin: the first admin account comes from the IMGSIM_ADMIN_* settings, once."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

pytestmark = pytest.mark.django_db


def test_creates_the_configured_admin_once(settings, tmp_path):
    # given a fresh install with the admin name and password configured
    settings.VAR_DIR = tmp_path
    settings.IMGSIM_ADMIN_USER = "boss"
    settings.IMGSIM_ADMIN_PASSWORD = "a-long-test-password-42"
    # when ensure_admin runs twice (every `make run` does)
    first, second = StringIO(), StringIO()
    call_command("ensure_admin", stdout=first)
    call_command("ensure_admin", stdout=second)
    # then exactly that superuser exists, with that password, and the second run says it exists already
    (admin,) = get_user_model().objects.filter(is_superuser=True)
    assert admin.username == "boss"
    assert admin.check_password("a-long-test-password-42")
    assert "boss" in first.getvalue()
    assert "exists already" in second.getvalue()
    assert (tmp_path / "admin-password.txt").read_text() == "boss\na-long-test-password-42\n"


def test_empty_password_setting_makes_a_random_one(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    settings.IMGSIM_ADMIN_USER = "admin"
    settings.IMGSIM_ADMIN_PASSWORD = ""
    call_command("ensure_admin", stdout=StringIO())
    username, password = (tmp_path / "admin-password.txt").read_text().splitlines()
    admin = get_user_model().objects.get(username=username)
    assert username == "admin"
    assert len(password) >= 12
    assert admin.check_password(password)
