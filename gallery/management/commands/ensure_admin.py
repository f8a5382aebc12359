"""Create the first admin account on a fresh install, so the product can be used at once."""

from __future__ import annotations

import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create a superuser 'admin' when there is none; print its password once (and keep it in var/)."

    def handle(self, *args: Any, **options: Any) -> None:
        users = get_user_model().objects
        if users.filter(is_superuser=True).exists():
            self.stdout.write(
                "An admin account exists already (reset a password: python manage.py changepassword NAME)."
            )
            return
        username = settings.IMGSIM_ADMIN_USER
        password = settings.IMGSIM_ADMIN_PASSWORD or secrets.token_urlsafe(12)
        users.create_superuser(username=username, email="", password=password)
        secret_file = settings.VAR_DIR / "admin-password.txt"
        secret_file.parent.mkdir(parents=True, exist_ok=True)
        secret_file.write_text(f"{username}\n{password}\n")
        secret_file.chmod(0o600)
        self.stdout.write(self.style.SUCCESS(f"Created admin account '{username}' with password: {password}"))
        self.stdout.write(f"(also saved in {secret_file}; change it with: python manage.py changepassword {username})")
