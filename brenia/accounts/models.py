"""Accounts: Brenia's own user model and API keys.

A custom user model from the start (``AUTH_USER_MODEL = "accounts.User"``), so teams,
time zones and plans can hang off it without a painful swap later.
"""

from __future__ import annotations

import hashlib
import secrets
import zoneinfo
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

KEY_PREFIX = "brn_"

# What a key may do. GET requests need "read"; requests that create, cancel or retry
# work or rate images "generate"; account management (keys, the webhook secret, brand
# kit writes) "admin". A browser session has every scope.
SCOPES = ("generate", "read", "admin")
DEFAULT_SCOPES = ("generate", "read")


def default_scopes() -> list[str]:
    return list(DEFAULT_SCOPES)


def _valid_time_zone(name: str) -> None:
    if name not in zoneinfo.available_timezones():
        raise ValidationError(f"{name!r} is not an IANA time zone, like Europe/Paris.")


class User(AbstractUser):
    """A person who signs in to Brenia (marketer or admin)."""

    # Where the person's day begins and ends: daily caps reset at their midnight, and
    # pages show their times. An IANA name, not an offset, so summer time follows.
    time_zone = models.CharField(max_length=64, default="UTC", validators=[_valid_time_zone],
                                 help_text="IANA time zone, like America/Los_Angeles")

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.time_zone)


class TeamRole(models.TextChoices):
    OWNER = "owner", "Owner"
    MEMBER = "member", "Member"


class Team(models.Model):
    """People who share their runs, images and brand kits, and a monthly budget.

    Work is filed under a team when it is submitted (``team`` on a request; by default
    the submitter's only team, if they have exactly one). Every member sees the team's
    work; nobody else does. Owners also manage the members and read the team's usage.
    """

    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=60, unique=True)
    # The team's month, for its budget, begins at midnight here.
    time_zone = models.CharField(max_length=64, default="UTC", validators=[_valid_time_zone],
                                 help_text="IANA time zone of the team's budget month")
    members: models.ManyToManyField[Any, Any] = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="Membership", related_name="teams")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.time_zone)


class Membership(models.Model):
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                             related_name="memberships")
    role = models.CharField(max_length=10, choices=TeamRole.choices, default=TeamRole.MEMBER)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["team", "user"]
        constraints = [models.UniqueConstraint(fields=["team", "user"],
                                               name="membership_once_per_team")]

    def __str__(self) -> str:
        return f"{self.user} in {self.team} ({self.role})"


def hash_api_key(raw: str) -> str:
    # Keys are 256 bits of randomness, so a plain SHA-256 is enough (as for GitHub
    # tokens): there is nothing to brute-force, and lookups stay one indexed query.
    return hashlib.sha256(raw.encode()).hexdigest()


class ApiKey(models.Model):
    """A bearer key for the JSON API. Only its hash is stored; the key is shown once."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                             related_name="api_keys")
    name = models.CharField(max_length=100, default="default")
    prefix = models.CharField(max_length=16, help_text="First characters, to tell keys apart")
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    scopes = models.JSONField(default=default_scopes,
                              help_text='Some of "generate", "read", "admin"')
    expires_at = models.DateTimeField(null=True, blank=True,
                                      help_text="Refused from this time on; empty: never")

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"

    def has_scope(self, scope: str) -> bool:
        return scope in (self.scopes or [])

    def is_live(self, now: datetime | None = None) -> bool:
        now = now or timezone.now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)

    @staticmethod
    def generate_raw() -> str:
        return KEY_PREFIX + secrets.token_urlsafe(32)
