"""First-run setup for the embedded profile: seed registry and demo accounts."""

from __future__ import annotations

import json
import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from brenia.env import write_private
from generation.registry.services import policy_seed, registry_seed
from templates_app.services import ad_template_seed

DEMO_ACCOUNTS = (("marketer", False), ("admin", True))


class Command(BaseCommand):
    help = "Load the seed registry; on first run create a demo marketer and an admin."

    def handle(self, *args: Any, **options: Any) -> None:
        created, _ = registry_seed()
        self.stdout.write(f"registry: {created} new model(s), "
                          f"{policy_seed()} new provider policy(ies)")
        self.stdout.write(f"templates: {ad_template_seed()} new template(s)")
        if settings.PRODUCTION:
            return
        credentials_file = settings.DATA_DIR / "demo_credentials.json"
        credentials: dict[str, str] = (
            json.loads(credentials_file.read_text()) if credentials_file.exists() else {}
        )
        users = get_user_model().objects
        created_now: dict[str, str] = {}
        for username, is_admin in DEMO_ACCOUNTS:
            if users.filter(username=username).exists():
                continue
            password = secrets.token_urlsafe(12)
            if is_admin:
                users.create_superuser(username=username, password=password,
                                       email=f"{username}@example.com")
            else:
                users.create_user(username=username, password=password,
                                  email=f"{username}@example.com")
            credentials[username] = created_now[username] = password
        if not created_now:
            return
        # Replaced whole, by a file that was private from its first byte.
        fresh = credentials_file.with_suffix(".new")
        fresh.unlink(missing_ok=True)
        write_private(fresh, json.dumps(credentials, indent=2))
        fresh.replace(credentials_file)
        # Printed once, when made; afterwards they are only in the private file.
        for username, password in created_now.items():
            self.stdout.write(f"account: {username} / {password} (kept in {credentials_file})")
