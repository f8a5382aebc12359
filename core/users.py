"""Who did something, as services receive it (a signed-in user, a visitor, or nobody: a task or a command), and
whom a row records for it."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

Actor = AbstractBaseUser | AnonymousUser | None


def recorded_user(actor: Actor) -> AbstractBaseUser | None:
    """The signed-in user to record on a row, or None for a visitor and for system actions (tasks, commands)."""
    return actor if actor is not None and actor.is_authenticated else None  # type: ignore[return-value]
