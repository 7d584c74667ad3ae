from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from brenia.accounts.models import DEFAULT_SCOPES, SCOPES
from brenia.accounts.services import api_key_create


class Command(BaseCommand):
    help = "Create an API key for USERNAME and print it once (only its hash is kept)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="default", help="A label to tell keys apart")
        parser.add_argument("--scope", action="append", choices=SCOPES, dest="scopes",
                            help="What the key may do; repeat for several "
                                 "(default: generate and read)")

    def handle(self, *args: Any, **options: Any) -> None:
        user = get_user_model().objects.filter(username=options["username"]).first()
        if user is None:
            raise CommandError(f"There is no user {options['username']!r}.")
        _key, raw = api_key_create(user=user, name=options["name"],
                                   scopes=options["scopes"] or DEFAULT_SCOPES)
        self.stdout.write(raw)
