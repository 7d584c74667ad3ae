"""A deactivated or deleted user's sockets close, and a member who leaves a team stops
following its jobs, however it happened.

A signal rather than a service call, because accounts are deactivated where no service
runs: the admin's change form, ``manage.py shell``, a password-reset flow. Only the
notification hangs here; it is sent on commit. (``QuerySet.update(is_active=False)``
sends no signal: call ``account_sockets_close`` after it.)
"""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_delete, post_save

from brenia.accounts.models import Membership, User
from brenia.accounts.realtime import sockets_recheck_on_commit
from brenia.accounts.services import account_sockets_close


def _on_user_saved(sender: Any, instance: User, created: bool,
                   update_fields: frozenset[str] | None = None, **kwargs: Any) -> None:
    if created or instance.is_active:
        return
    if update_fields is not None and "is_active" not in update_fields:
        return  # e.g. last_login: nothing about the account's access changed
    account_sockets_close(user_id=instance.pk)


def _on_user_deleted(sender: Any, instance: User, **kwargs: Any) -> None:
    account_sockets_close(user_id=instance.pk)


def _on_membership_deleted(sender: Any, instance: Membership, **kwargs: Any) -> None:
    """Out of a team (by an owner, the admin, or the team's deletion): their open sockets
    stop following the team's jobs."""
    sockets_recheck_on_commit(instance.user_id)


def connect() -> None:
    post_save.connect(_on_user_saved, sender=User, dispatch_uid="accounts.user_saved")
    post_delete.connect(_on_user_deleted, sender=User, dispatch_uid="accounts.user_deleted")
    post_delete.connect(_on_membership_deleted, sender=Membership,
                        dispatch_uid="accounts.membership_deleted")
