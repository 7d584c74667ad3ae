from django.apps import AppConfig


class GenerationConfig(AppConfig):
    name = "generation"
    verbose_name = "Generation"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers the job engine's background tasks and its resume-on-start step, and
        # the job-finished hooks that count jobs for /metrics and judge canaries.
        from generation.jobs import canary_hooks, metrics, tasks  # noqa: F401
