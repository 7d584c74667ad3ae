from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from generation.registry.services import policy_seed, registry_seed


class Command(BaseCommand):
    help = "Load Brenia's seed model registry (keeps admin edits unless --update)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--update", action="store_true",
                            help="Overwrite existing seed models with the shipped values")

    def handle(self, *args: Any, **options: Any) -> None:
        created, updated = registry_seed(update=options["update"])
        self.stdout.write(f"registry: {created} model(s) created, {updated} updated, "
                          f"{policy_seed()} provider policy(ies) created")
