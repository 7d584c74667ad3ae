from django.apps import AppConfig


class OutboundConfig(AppConfig):
    name = "generation.outbound"
    label = "outbound"
    verbose_name = "Outgoing webhooks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers the job-finished hook, the delivery task and its recovery step.
        from generation.outbound import services, tasks  # noqa: F401
