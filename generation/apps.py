from django.apps import AppConfig


class GenerationConfig(AppConfig):
    name = "generation"
    verbose_name = "Generation"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers the job engine's background tasks and its resume-on-start step, and
        # the job-finished hook that counts jobs for /metrics.
        from generation.jobs import metrics, tasks  # noqa: F401
