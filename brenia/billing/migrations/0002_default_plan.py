"""The default plan every user without an assignment is on: no limits, as before plans
existed. Operators tighten it (or assign other plans) in the admin."""

from typing import Any

from django.db import migrations


def create_default_plan(apps: Any, schema_editor: Any) -> None:
    Plan = apps.get_model("billing", "Plan")
    if not Plan.objects.filter(is_default=True).exists():
        Plan.objects.create(name="default", is_default=True)


class Migration(migrations.Migration):
    dependencies = [("billing", "0001_initial")]

    operations = [migrations.RunPython(create_default_plan, migrations.RunPython.noop)]
